"""The dashboard in a real browser, against the real service and a real receiver on loopback.

One walk-through follows a user from sign-in to sign-out; each step saves a screenshot to
test-artifacts/dashboard/ (git-ignored) so the pages can be looked at after the run.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer, ThreadReceiver

pytestmark = pytest.mark.browser

PARSED = "resume.parsed"
FAILING = "ats.check_failed"


def shot(page: Page, artifacts: Path, name: str) -> None:
    page.screenshot(path=artifacts / f"{name}.png", full_page=True)


def session_token(page: Page) -> str | None:
    token: str | None = page.evaluate("() => sessionStorage.getItem('hookline.token')")
    return token


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Webhook dashboard")).to_be_visible()


def wait_for_stats(server: LiveServer, token: str, successful: int, failed: int) -> None:
    """Wait (through the API) until every delivery is finished, before pressing Refresh."""
    deadline = time.monotonic() + 15
    while True:
        stats = httpx.get(
            f"{server.url}/api/webhooks/stats", headers={"Authorization": f"Bearer {token}"}
        ).json()
        if (stats["successful"], stats["failed"], stats["pending"]) == (successful, failed, 0):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries did not finish: {stats}")
        time.sleep(0.05)


def test_a_user_manages_their_webhook(
    page: Page, live_server: LiveServer, http_receiver: ThreadReceiver, artifacts: Path
) -> None:
    receiver = http_receiver
    user_id, _, token = live_server.user("dana")
    _, _, admin_token = live_server.user("publisher", admin=True)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    # 1) Sign in: a wrong token is refused with a message, the right one opens the dashboard.
    page.goto(f"{live_server.url}/dashboard")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API token").fill("hl_not_a_real_token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("signin-error")).to_have_text(
        "That token was rejected. Check it and try again."
    )
    assert session_token(page) is None
    shot(page, artifacts, "01-signin-rejected")

    sign_in(page, token)
    expect(page.get_by_test_id("empty-config")).to_contain_text("No webhook yet: add a URL")
    expect(page.get_by_test_id("empty-logs")).to_contain_text("No deliveries yet.")
    assert session_token(page) == token
    assert token not in page.url
    shot(page, artifacts, "02-signed-in")

    # 2) Configure: the API's 422 shows next to the URL field, then a good URL is saved.
    url_field = page.get_by_label("Endpoint URL")
    url_field.fill("ftp://x")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("field-error-url")).to_have_text(
        "must be an absolute http(s) URL, like https://example.com/webhooks"
    )
    expect(url_field).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("config-status")).to_contain_text("Not saved")
    shot(page, artifacts, "03-url-field-error")

    url_field.fill(receiver.url)
    expect(page.get_by_label(PARSED)).to_be_checked()
    expect(page.get_by_label(FAILING)).to_be_checked()
    page.get_by_label("operation.cancelled").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("config-status")).to_have_text(
        "Webhook configuration saved successfully"
    )
    expect(page.get_by_test_id("field-error-url")).to_have_text("")
    expect(page.get_by_test_id("empty-config")).to_be_hidden()
    first_secret = page.get_by_test_id("new-secret").inner_text()
    assert first_secret.startswith("whsec_")
    shot(page, artifacts, "04-webhook-saved")
    page.get_by_role("button", name="I have stored it, hide the secret").click()
    expect(page.get_by_text(first_secret)).to_have_count(0)
    page.reload()
    expect(page.get_by_label("Endpoint URL")).to_have_value(receiver.url)
    expect(page.get_by_label("operation.cancelled")).not_to_be_checked()
    expect(page.get_by_label(PARSED)).to_be_checked()

    # 3) Send a test: status and delivery id are shown, and the receiver got it.
    page.get_by_role("button", name="Send test webhook").click()
    result = page.get_by_test_id("test-result")
    expect(result).to_contain_text("Test webhook sent successfully (HTTP 200).")
    delivery_id = page.get_by_test_id("test-delivery-id").inner_text()
    assert delivery_id
    expect(result).to_contain_text(f"Delivery ID: {delivery_id}")
    (test_hit,) = receiver.wait_for(1)
    assert test_hit.event == "webhook.test"
    assert test_hit.headers["webhook-id"] == delivery_id
    shot(page, artifacts, "05-test-sent")

    # 4) Publish events through the API: two succeed, one fails for good (the receiver
    #    answers 500 to every attempt); after Refresh they show in the log and the statistics.
    receiver.fail_events.add(FAILING)
    for n in (1, 2):
        live_server.publish(
            admin_token,
            user_id,
            PARSED,
            {
                "resumeId": f"res_{n}",
                "fileName": f"cv-{n}.pdf",
                "parsedAt": "2025-01-15T10:30:00.000Z",
                "success": True,
            },
        )
    live_server.publish(
        admin_token,
        user_id,
        FAILING,
        {"resumeId": "res_3", "error": "Scanner unavailable", "failedAt": "2025-01-15T10:31:00Z"},
    )
    wait_for_stats(live_server, token, successful=3, failed=1)
    assert len(receiver.wait_for(1 + 2 + 4)) == 7
    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_test_id("stats-total")).to_have_text("4")
    expect(page.get_by_test_id("stats-successful")).to_have_text("3")
    expect(page.get_by_test_id("stats-failed")).to_have_text("1")
    expect(page.get_by_test_id("stats-pending")).to_have_text("0")
    expect(page.get_by_test_id("stats-success-rate")).to_have_text("75.00%")
    expect(page.get_by_test_id("stats-average-attempts")).to_have_text("1.75")
    by_event = page.get_by_test_id("stats-by-event")
    for event, counts in ((PARSED, "220"), (FAILING, "101"), ("webhook.test", "110")):
        cells = by_event.locator("tr", has_text=event).locator("td")
        expect(cells).to_have_text(list(counts))  # total, successful, failed
    rows = page.get_by_test_id("log-row")
    expect(rows).to_have_count(4)
    expect(rows.filter(has_text="Succeeded")).to_have_count(3)
    expect(rows.filter(has_text="Failed")).to_have_count(1)
    expect(page.get_by_test_id("logs-page-info")).to_have_text("Showing 1\u20134 of 4")
    summary = page.get_by_test_id("chart-summary")
    expect(summary).to_contain_text(
        "Last 7 days (one bar per 6 hours): 3 successful deliveries and 1 failed delivery."
    )
    expect(page.get_by_role("img", name=re.compile("Bar chart of successful"))).to_be_visible()
    shot(page, artifacts, "06-events-in-log-and-stats")

    # The chart window switch asks the timeseries API and redraws.
    with page.expect_response(
        lambda r: "/api/webhooks/stats/timeseries?window=24h" in r.url
    ) as answer:
        page.get_by_role("button", name="24 hours").click()
    assert answer.value.status == 200
    expect(page.get_by_role("button", name="24 hours")).to_have_attribute("aria-pressed", "true")
    expect(summary).to_contain_text(
        "Last 24 hours (one bar per hour): 3 successful deliveries and 1 failed delivery."
    )
    page.get_by_text("Show chart data as a table").click()
    expect(page.get_by_test_id("chart-table").locator("tbody tr")).to_have_count(24)
    shot(page, artifacts, "07-chart-24h")
    with page.expect_response(lambda r: "window=30d" in r.url):
        page.get_by_role("button", name="30 days").click()
    expect(summary).to_contain_text("Last 30 days (one bar per day)")
    expect(page.get_by_test_id("chart-table").locator("tbody tr")).to_have_count(30)
    page.get_by_text("Show chart data as a table").click()
    expect(page.get_by_test_id("chart-table")).to_be_hidden()

    # 5) Filter the log by event and by result.
    event_filter = page.get_by_label("Event", exact=True)
    result_filter = page.get_by_label("Result", exact=True)
    event_filter.select_option(PARSED)
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text=PARSED)).to_have_count(2)
    expect(page.get_by_test_id("logs-page-info")).to_have_text("Showing 1\u20132 of 2")
    shot(page, artifacts, "08-filter-by-event")
    event_filter.select_option("")
    result_filter.select_option(label="Succeeded")
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="Succeeded")).to_have_count(3)
    result_filter.select_option(label="Failed or pending")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(FAILING)
    expect(rows.first).to_contain_text("Failed")
    expect(rows.first).to_contain_text("500")
    shot(page, artifacts, "09-filter-failed")

    # 6) Open the failed delivery: every attempt is listed and the payload is exact.
    rows.first.click()
    detail = page.get_by_test_id("log-detail")
    expect(detail).to_be_visible()
    expect(detail.get_by_test_id("detail-status")).to_have_text("Failed")
    expect(detail.get_by_test_id("detail-attempt-count")).to_have_text("4")
    attempts = detail.get_by_test_id("attempt-row")
    expect(attempts).to_have_count(4)
    for n in range(4):
        expect(attempts.nth(n).locator("td").first).to_have_text(str(n + 1))
        expect(attempts.nth(n)).to_contain_text("500")
        expect(attempts.nth(n)).to_contain_text("HTTP 500 Internal Server Error")
        expect(attempts.nth(n)).to_contain_text(" ms")
    expect(detail.get_by_test_id("detail-error")).to_have_text("HTTP 500 Internal Server Error")
    failing_hits = [hit for hit in receiver.hits if hit.event == FAILING]
    assert len(failing_hits) == 4 and len({hit.body for hit in failing_hits}) == 1
    payload = failing_hits[0].body.decode()
    expect(detail.get_by_test_id("payload")).to_have_text(payload)
    assert detail.get_by_test_id("payload").text_content() == payload
    expect(detail.get_by_test_id("detail-delivery-id")).to_have_text(
        failing_hits[0].headers["webhook-id"]
    )
    shot(page, artifacts, "10-log-detail")
    page.get_by_role("button", name="Close details").click()
    expect(detail).to_be_hidden()

    # 7) Regenerate the secret: confirm first; the new one is shown once, with the grace time.
    page.get_by_role("button", name="Regenerate secret").click()
    expect(page.get_by_text("Create a new signing secret?")).to_be_visible()
    shot(page, artifacts, "11-regenerate-confirm")
    page.get_by_role("button", name="Yes, regenerate").click()
    expect(page.get_by_test_id("secret-panel")).to_be_visible()
    new_secret = page.get_by_test_id("new-secret").inner_text()
    assert new_secret.startswith("whsec_") and new_secret != first_secret
    # Precisely what keeps working: the old secret in webhook-signature until the grace ends;
    # X-Webhook-Signature has the new secret only (docs/receiving.md, "Secret rotation").
    expect(page.get_by_test_id("secret-old-until")).to_have_text(
        re.compile(
            r"^Until .*\d{4}.*, each delivery's webhook-signature header also carries a signature"
            r" made with the old secret: .* keeps working with the old secret until then, and needs"
            r" the new one after\. X-Webhook-Signature is signed with the new secret only, starting"
            r" now\.$"
        )
    )
    expect(page.get_by_test_id("secret-old-until").locator("time")).to_have_attribute(
        "datetime", re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
    )
    expect(page.get_by_role("button", name="Copy secret")).to_be_visible()
    shot(page, artifacts, "12-secret-regenerated")
    page.reload()
    expect(page.get_by_role("heading", name="Webhook dashboard")).to_be_visible()
    expect(page.get_by_label("Endpoint URL")).to_have_value(receiver.url)
    expect(page.get_by_text(new_secret)).to_have_count(0)

    # 8) Delete the endpoint: confirm first (the question names it); then the empty state says
    #    what to do. The dashboard manages several endpoints now, so the button and the question
    #    say "endpoint", and the outcome shows under the list rather than next to Save.
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.get_by_text(f"Delete the endpoint {receiver.url}?")).to_be_visible()
    shot(page, artifacts, "13-delete-confirm")
    page.get_by_role("button", name="Yes, delete").click()
    expect(page.get_by_test_id("empty-config")).to_contain_text("No webhook yet: add a URL")
    expect(page.get_by_test_id("endpoints-status")).to_have_text(
        f"Deleted the endpoint {receiver.url}. Its delivery log stays."
    )
    expect(page.get_by_label("Endpoint URL")).to_have_value("")
    expect(page.get_by_role("button", name="Send test webhook")).to_be_hidden()
    shot(page, artifacts, "14-deleted")

    # 9) Sign out: the token leaves sessionStorage and the sign-in form is back.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_test_id("signin-status")).to_have_text("You have signed out.")
    assert session_token(page) is None
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, artifacts, "15-signed-out")

    # Only the dashboard and the public API were used, and the token never was in a URL.
    for url in requested:
        path = urlsplit(url).path
        assert path.startswith(("/dashboard", "/api/webhooks/")), url
        assert token not in url


def test_a_revoked_token_sends_the_user_back_to_sign_in(
    page: Page, live_server: LiveServer, artifacts: Path
) -> None:
    _, token_id, token = live_server.user("rory")
    page.goto(f"{live_server.url}/dashboard")
    sign_in(page, token)
    # let the first load finish, so the Refresh below is what meets the revoked token
    expect(page.get_by_test_id("last-updated")).to_contain_text("Updated")
    live_server.call(live_server.store.revoke_token(token_id))

    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_test_id("signin-error")).to_have_text(
        "Your token was rejected; sign in again."
    )
    expect(page.get_by_role("heading", name="Webhook dashboard")).to_be_hidden()
    assert session_token(page) is None
    shot(page, artifacts, "16-token-revoked")

"""The dashboard with several endpoints per user, in a real browser against the real service.

A receiver on loopback records which path each delivery went to, so the test can tell the two
endpoints apart; screenshots go to test-artifacts/dashboard/ (git-ignored).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import LiveServer, ThreadReceiver
from tests.e2e.test_dashboard import shot, sign_in

pytestmark = pytest.mark.browser

PARSED = "resume.parsed"
CHECK_FAILED = "ats.check_failed"
PARSED_DATA = {
    "resumeId": "res_1",
    "fileName": "cv.pdf",
    "parsedAt": "2025-01-15T10:30:00.000Z",
    "success": True,
}
CHECK_FAILED_DATA = {
    "resumeId": "res_2",
    "error": "Scanner down",
    "failedAt": "2025-01-15T10:31:00Z",
}


@pytest.fixture(scope="module")
def receiver(http_receiver: ThreadReceiver) -> ThreadReceiver:
    """The e2e receiver: it records each delivery's path, so the test can tell the endpoints
    (each has its own path on it) apart."""
    return http_receiver


def publish(server: LiveServer, admin_token: str, user_id: str, event: str, data: Any) -> int:
    """Publish through the API; returns how many deliveries the event fanned out to."""
    response = httpx.post(
        f"{server.url}/api/events",
        json={"userId": user_id, "event": event, "data": data},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 202, response.text
    return len(response.json()["deliveryIds"])


def api_get(server: LiveServer, token: str, path: str) -> Any:
    response = httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def wait_until_finished(server: LiveServer, token: str, successful: int) -> None:
    deadline = time.monotonic() + 15
    while True:
        stats = api_get(server, token, "/api/webhooks/stats")
        if (stats["successful"], stats["failed"], stats["pending"]) == (successful, 0, 0):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries did not finish: {stats}")
        time.sleep(0.05)


def endpoint_row(page: Page, text: str) -> Locator:
    return page.get_by_test_id("endpoint-row").filter(has_text=text)


def manage(page: Page, text: str) -> None:
    endpoint_row(page, text).get_by_role("button", name=re.compile(r"^Manage ")).click()
    expect(page.get_by_test_id("editor-title")).to_have_text("Edit endpoint")


def expect_stats(page: Page, total: int, by_event: dict[str, str]) -> None:
    expect(page.get_by_test_id("stats-total")).to_have_text(str(total))
    expect(page.get_by_test_id("stats-pending")).to_have_text("0")
    table = page.get_by_test_id("stats-by-event")
    expect(table.locator("tbody tr")).to_have_count(len(by_event))
    for event, counts in by_event.items():
        expect(table.locator("tr", has_text=event).locator("td")).to_have_text(list(counts))


def test_a_user_manages_several_endpoints(
    page: Page, live_server: LiveServer, receiver: ThreadReceiver, artifacts: Path
) -> None:
    user_id, _, token = live_server.user("erin")
    _, _, admin_token = live_server.user("fanout-publisher", admin=True)
    url_a, url_b = f"{receiver.base}/orders", f"{receiver.base}/billing"
    page.goto(f"{live_server.url}/dashboard")
    sign_in(page, token)
    rows = page.get_by_test_id("endpoint-row")
    secret_panel = page.get_by_test_id("secret-panel")
    status = page.get_by_test_id("config-status")

    # 1) The first endpoint: created as the primary one; its secret is shown once.
    expect(page.get_by_test_id("empty-config")).to_be_visible()
    expect(page.get_by_test_id("editor-title")).to_have_text("Your first endpoint")
    page.get_by_label("Endpoint URL").fill(url_a)
    page.get_by_label("Description").fill("Orders")
    page.get_by_role("button", name="Save").click()
    expect(status).to_have_text("Webhook configuration saved successfully")
    expect(secret_panel).to_contain_text("Webhook created. This is your signing secret:")
    secret_a = page.get_by_test_id("new-secret").inner_text()
    assert secret_a.startswith("whsec_")
    expect(rows).to_have_count(1)
    expect(endpoint_row(page, url_a).get_by_test_id("endpoint-primary")).to_have_text("Primary")
    expect(page.get_by_test_id("view-bar")).to_be_hidden()  # one endpoint: nothing to choose
    page.get_by_role("button", name="I have stored it, hide the secret").click()
    expect(page.get_by_text(secret_a)).to_have_count(0)

    # 2) A second endpoint through "Add endpoint": a blank form, then its own secret, once.
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_test_id("editor-title")).to_have_text("New endpoint")
    expect(page.get_by_label("Endpoint URL")).to_have_value("")
    expect(page.get_by_label("Endpoint URL")).to_be_focused()
    expect(page.get_by_role("button", name="Send test webhook")).to_be_hidden()
    page.get_by_label("Endpoint URL").fill(url_b)
    page.get_by_label("Description").fill("Billing")
    page.get_by_role("button", name="Save").click()
    expect(secret_panel).to_contain_text("Endpoint created. This is its signing secret:")
    expect(page.get_by_test_id("secret-for")).to_have_text(f"For {url_b} (Billing)")
    secret_b = page.get_by_test_id("new-secret").inner_text()
    assert secret_b.startswith("whsec_") and secret_b != secret_a
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text(url_a)  # the primary first, then oldest first
    expect(rows.nth(1)).to_contain_text("Billing")
    expect(endpoint_row(page, url_b).get_by_test_id("endpoint-primary")).to_have_count(0)
    expect(endpoint_row(page, url_b).get_by_test_id("endpoint-state")).to_have_text("Enabled")
    shot(page, artifacts, "20-endpoints-second-secret")
    # Looking at another endpoint hides the secret; it never comes back.
    manage(page, url_a)
    expect(page.get_by_label("Endpoint URL")).to_have_value(url_a)
    expect(secret_panel).to_be_hidden()
    expect(page.get_by_text(secret_b)).to_have_count(0)
    page.reload()
    expect(rows).to_have_count(2)
    expect(page.get_by_label("Endpoint URL")).to_have_value(url_a)  # the primary is shown
    expect(page.get_by_text(secret_b)).to_have_count(0)

    # 3) Edit the second one's events, headers and rate limit; the API's errors show in place.
    manage(page, "Billing")
    expect(page.get_by_label("Endpoint URL")).to_have_value(url_b)
    page.get_by_label(CHECK_FAILED).uncheck()
    page.get_by_label("operation.cancelled").uncheck()
    page.get_by_role("button", name="Add header").click()
    expect(page.get_by_label("Header 1 name")).to_be_focused()
    page.get_by_label("Header 1 name").fill("X-Tenant")
    page.get_by_label("Header 1 value").fill("billing")
    page.get_by_role("button", name="Add header").click()
    page.get_by_label("Header 2 name").fill("Bad Header")
    page.get_by_label("Header 2 value").fill("x")
    rate = page.get_by_label("Rate limit")
    rate.fill("lots")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("field-error-rateLimit")).to_have_text(
        "Input should be a valid integer"
    )
    expect(rate).to_have_attribute("aria-invalid", "true")
    expect(status).to_have_text(re.compile(r"^Not saved: Invalid request: rateLimit"))
    rate.fill("50")
    page.get_by_role("button", name="Save").click()
    header_error = page.get_by_test_id("field-error-headers")
    expect(header_error).to_have_text(re.compile(r"^Bad Header: is not a valid header name"))
    expect(page.get_by_label("Header 2 name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("field-error-rateLimit")).to_have_text("")
    expect(status).to_contain_text("Not saved: Invalid endpoint: headers.Bad Header")
    shot(page, artifacts, "21-endpoint-field-errors")
    page.get_by_role("button", name="Remove header 2").click()
    expect(page.get_by_test_id("header-row")).to_have_count(1)
    page.get_by_role("button", name="Save").click()
    expect(status).to_have_text("Webhook configuration saved successfully")
    expect(header_error).to_have_text("")
    saved = api_get(live_server, token, "/api/webhooks/endpoints")["endpoints"]
    billing = next(ep for ep in saved if ep["url"] == url_b)
    assert billing["headers"] == {"X-Tenant": "billing"}
    assert billing["rateLimit"] == 50
    assert CHECK_FAILED not in billing["enabledEvents"] and PARSED in billing["enabledEvents"]
    assert "operation.cancelled" not in billing["enabledEvents"]
    orders = next(ep for ep in saved if ep["url"] == url_a)
    assert CHECK_FAILED in orders["enabledEvents"] and orders["headers"] == {}
    expect(endpoint_row(page, url_b)).to_contain_text("5 of 7 events")
    expect(endpoint_row(page, url_b)).to_contain_text("1 header · at most 50/s")
    page.reload()
    manage(page, "Billing")
    expect(page.get_by_label("Header 1 name")).to_have_value("X-Tenant")
    expect(page.get_by_label("Header 1 value")).to_have_value("billing")
    expect(page.get_by_label("Rate limit")).to_have_value("50")
    expect(page.get_by_label(CHECK_FAILED)).not_to_be_checked()

    # 4) A test to the non-primary endpoint goes to its URL, with its header.
    page.get_by_role("button", name="Send test webhook").click()
    expect(page.get_by_test_id("test-result")).to_contain_text(
        "Test webhook sent successfully (HTTP 200)."
    )
    (test_hit,) = receiver.wait_for(1)
    assert test_hit.path == "/billing"
    assert test_hit.headers["x-tenant"] == "billing"
    assert b'"webhook.test"' in test_hit.body

    # 5) Events fan out: resume.parsed to both endpoints, ats.check_failed to Orders only.
    assert publish(live_server, admin_token, user_id, PARSED, PARSED_DATA) == 2
    for _ in range(2):
        assert publish(live_server, admin_token, user_id, CHECK_FAILED, CHECK_FAILED_DATA) == 1
    wait_until_finished(live_server, token, successful=5)
    hits = receiver.wait_for(5)
    assert sorted(hit.path for hit in hits) == ["/billing", "/billing"] + ["/orders"] * 3
    page.get_by_role("button", name="Refresh").click()
    expect_stats(page, 5, {PARSED: "220", CHECK_FAILED: "220", "webhook.test": "110"})
    log_rows = page.get_by_test_id("log-row")
    expect(log_rows).to_have_count(5)

    # 6) Filter the statistics, the chart and the log by endpoint.
    view = page.get_by_label("Show deliveries to")
    expect(view.locator("option")).to_have_text(
        ["All endpoints", f"Orders ({url_a}) \u2013 primary", f"Billing ({url_b})"]
    )
    with page.expect_response(lambda r: "/api/webhooks/stats?endpointId=" in r.url):
        view.select_option(label=f"Billing ({url_b})")
    expect_stats(page, 2, {PARSED: "110", "webhook.test": "110"})
    expect(log_rows).to_have_count(2)
    expect(log_rows.filter(has_text="Billing")).to_have_count(2)
    expect(page.get_by_test_id("chart-summary")).to_contain_text("2 successful deliveries")
    shot(page, artifacts, "22-endpoints-filtered-billing")
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("document.querySelector('[data-testid=chart]').clientWidth < 390")
    shot(page, artifacts, "22b-endpoints-narrow")
    page.set_viewport_size({"width": 1280, "height": 900})
    view.select_option(label=f"Orders ({url_a}) \u2013 primary")
    expect_stats(page, 3, {PARSED: "110", CHECK_FAILED: "220"})
    expect(log_rows).to_have_count(3)
    expect(log_rows.filter(has_text="Orders")).to_have_count(3)
    expect(page.get_by_test_id("chart-summary")).to_contain_text("3 successful deliveries")
    # the event filter narrows within the chosen endpoint
    page.get_by_label("Event", exact=True).select_option(CHECK_FAILED)
    expect(log_rows).to_have_count(2)
    page.get_by_label("Event", exact=True).select_option("")
    view.select_option(label="All endpoints")
    expect_stats(page, 5, {PARSED: "220", CHECK_FAILED: "220", "webhook.test": "110"})
    expect(log_rows).to_have_count(5)

    # 7) Disable the primary endpoint from the list: events then go to Billing only.
    endpoint_row(page, url_a).get_by_role("button", name=re.compile(r"^Disable ")).click()
    expect(endpoint_row(page, url_a).get_by_test_id("endpoint-state")).to_have_text("Disabled")
    expect(page.get_by_test_id("endpoints-status")).to_have_text(
        f"Disabled Orders ({url_a}): no events are sent to it until you enable it."
    )
    expect(
        endpoint_row(page, url_a).get_by_role("button", name=re.compile(r"^Enable "))
    ).to_be_focused()
    assert publish(live_server, admin_token, user_id, PARSED, PARSED_DATA) == 1
    wait_until_finished(live_server, token, successful=6)
    assert receiver.wait_for(6)[-1].path == "/billing"
    shot(page, artifacts, "23-endpoint-disabled")

    # 8) Regenerate the second endpoint's secret: shown once, with the rotation note.
    manage(page, "Billing")
    page.get_by_role("button", name="Regenerate secret").click()
    page.get_by_role("button", name="Yes, regenerate").click()
    expect(page.get_by_test_id("secret-for")).to_have_text(f"For {url_b} (Billing)")
    rotated = page.get_by_test_id("new-secret").inner_text()
    assert rotated.startswith("whsec_") and rotated not in (secret_a, secret_b)
    expect(page.get_by_test_id("secret-old-until")).to_have_text(
        re.compile(r"^Until .*, each delivery's webhook-signature header also carries a signature")
    )

    # 9) Delete it (confirm first) while the view shows only its deliveries: the view goes
    #    back to all endpoints, and with one endpoint left the choice is hidden again.
    view.select_option(label=f"Billing ({url_b})")
    expect(page.get_by_test_id("stats-total")).to_have_text("3")
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.get_by_test_id("delete-question")).to_have_text(
        f"Delete the endpoint Billing ({url_b})? No more events will be sent to it;"
        " its delivery log stays."
    )
    shot(page, artifacts, "24-endpoint-delete-confirm")
    page.get_by_role("button", name="Yes, delete").click()
    expect(rows).to_have_count(1)
    expect(page.get_by_test_id("endpoints-status")).to_have_text(
        f"Deleted the endpoint Billing ({url_b}). Its delivery log stays."
    )
    expect(page.get_by_test_id("view-bar")).to_be_hidden()
    expect(page.get_by_test_id("stats-total")).to_have_text("6")
    expect(secret_panel).to_be_hidden()
    expect(page.get_by_label("Endpoint URL")).to_have_value(url_a)
    remaining = api_get(live_server, token, "/api/webhooks/endpoints")["endpoints"]
    assert [(ep["url"], ep["enabled"], ep["primary"]) for ep in remaining] == [(url_a, False, True)]
    shot(page, artifacts, "25-endpoint-deleted")

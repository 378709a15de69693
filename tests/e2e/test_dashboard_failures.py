"""The dashboard when deliveries fail, in a real browser against the real service and a real
receiver on loopback: retrying versus failed, the detail beside its row, resend, recover and
the banner on a disabled endpoint.

Each endpoint is a path on the e2e receiver, which answers as the test scripts it per path.
Screenshots go to test-artifacts/dashboard/ (git-ignored).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from hookline.api.app import create_app
from hookline.events import EXAMPLES
from tests.e2e.conftest import LiveServer, Reply, ThreadReceiver
from tests.e2e.test_dashboard import shot, sign_in
from tests.support import make_settings

pytestmark = pytest.mark.browser

# A response body that would run script if it were ever put into the page as HTML.
HOSTILE_BODY = '<b id="injected">boom</b><img src="x" onerror="window.__injected = 1">'


def call(server: LiveServer, token: str, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(
        method,
        f"{server.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.is_success, response.text
    return response.json()


def add_endpoint(server: LiveServer, token: str, url: str, event: str, description: str) -> str:
    body = {"url": url, "enabledEvents": [event], "description": description}
    endpoint: dict[str, Any] = call(server, token, "POST", "/api/webhooks/endpoints", body)[
        "endpoint"
    ]
    return str(endpoint["id"])


def publish(server: LiveServer, admin_token: str, user_id: str, event: str) -> None:
    server.publish(admin_token, user_id, event, dict(EXAMPLES[event]))


def logs_by_event(server: LiveServer, token: str) -> dict[str, dict[str, Any]]:
    logs = call(server, token, "GET", "/api/webhooks/logs?limit=100")["logs"]
    return {log["event"]: log for log in logs}


def wait_for_logs(
    server: LiveServer, token: str, ready: Callable[[dict[str, dict[str, Any]]], bool]
) -> dict[str, dict[str, Any]]:
    """Poll the API until the log is as ``ready`` wants it (before looking at the page)."""
    deadline = time.monotonic() + 20
    while True:
        logs = logs_by_event(server, token)
        if ready(logs):
            return logs
        if time.monotonic() > deadline:
            raise AssertionError(f"the log did not get there: {logs}")
        time.sleep(0.05)


def log_row(page: Page, event: str) -> Locator:
    return page.locator(f'tr[data-testid="log-row"][data-event="{event}"]')


def row_for(page: Page, log_id: str) -> Locator:
    return page.locator(f'tr[data-testid="log-row"][data-id="{log_id}"]')


def background(locator: Locator) -> str:
    color: str = locator.evaluate("el => getComputedStyle(el).backgroundColor")
    return color


DOWN = "ats.check_failed"  # to /down: 500 every time, so it fails for good
BUSY = "resume.parsed"  # to /busy: 503 with Retry-After: 120, so it waits for a retry
FINE = "tailoring.completed"  # to /fine: 200
SLOW = "resume.parse_failed"  # to /slow: answers only when the test lets it


def test_failed_retrying_and_pending_deliveries_their_detail_and_resend(
    page: Page, live_server: LiveServer, http_receiver: ThreadReceiver, artifacts: Path
) -> None:
    receiver = http_receiver
    user_id, _, token = live_server.user("fay")
    _, _, admin_token = live_server.user("failures-publisher", admin=True)
    release = threading.Event()
    receiver.replies.update(
        {
            "/down": Reply(500, HOSTILE_BODY.encode()),
            "/busy": Reply(503, b"busy, come back later", {"Retry-After": "120"}),
            "/fine": Reply(200, b"thanks"),
            "/slow": Reply(200, b"finally", hold=release),
        }
    )
    try:
        _walk_through(page, live_server, receiver, artifacts, user_id, token, admin_token, release)
    finally:
        release.set()
        for path in ("/down", "/busy", "/fine", "/slow"):
            receiver.replies.pop(path, None)


def _walk_through(
    page: Page,
    server: LiveServer,
    receiver: ThreadReceiver,
    artifacts: Path,
    user_id: str,
    token: str,
    admin_token: str,
    release: threading.Event,
) -> None:
    base = receiver.base
    add_endpoint(server, token, f"{base}/down", DOWN, "Down")
    add_endpoint(server, token, f"{base}/busy", BUSY, "Busy")
    fine_id = add_endpoint(server, token, f"{base}/fine", FINE, "Fine")
    add_endpoint(server, token, f"{base}/slow", SLOW, "Slow")
    for event in (DOWN, BUSY, FINE):
        publish(server, admin_token, user_id, event)
    logs = wait_for_logs(
        server,
        token,
        lambda logs: (
            logs.get(DOWN, {}).get("status") == "failed"
            and logs.get(BUSY, {}).get("status") == "retrying"
            and logs.get(FINE, {}).get("status") == "succeeded"
        ),
    )
    publish(server, admin_token, user_id, SLOW)  # newest: the top row
    deadline = time.monotonic() + 10
    while not any(hit.path == "/slow" for hit in receiver.hits):  # its attempt is under way
        assert time.monotonic() < deadline, "the slow endpoint got nothing"
        time.sleep(0.02)

    page.goto(f"{server.url}/dashboard")
    sign_in(page, token)
    rows = page.get_by_test_id("log-row")
    expect(rows).to_have_count(4)

    # 1) Each status has its own badge; retrying and pending say when the next attempt is.
    expected = {SLOW: "Pending", FINE: "Succeeded", BUSY: "Retrying", DOWN: "Failed"}
    for event, text in expected.items():
        badge = log_row(page, event).locator(".badge")
        expect(badge).to_have_text(text)
        expect(badge).to_have_attribute("data-status", text.lower())
    colors = {event: background(log_row(page, event).locator(".badge")) for event in expected}
    assert len(set(colors.values())) == 4, colors  # four looks, not a shared "failed" red

    busy_next = log_row(page, BUSY).get_by_test_id("next-attempt")
    # 120 s away when planned: "in 2 minutes" (less on a slow machine)
    expect(busy_next).to_have_text(
        re.compile(r"^Next attempt in (2 minutes|1 minute|\d+ seconds)$")
    )
    when = busy_next.locator("time")
    planned = logs[BUSY]["nextAttemptAt"]
    expect(when).to_have_attribute("datetime", planned)
    planned_at = datetime.fromisoformat(planned.replace("Z", "+00:00")).astimezone(UTC)
    exact = f"{planned_at:%b} {planned_at.day}, {planned_at.year}, "
    expect(when).to_have_attribute("title", re.compile(rf"^{exact}.*:\d\d:\d\d (AM|PM) UTC$"))
    # the exact second is in the title: the hover shows the very time
    assert f":{planned_at:%S} " in (when.get_attribute("title") or "")
    expect(log_row(page, SLOW).get_by_test_id("next-attempt")).to_have_text("Next attempt due now")
    for event in (DOWN, FINE):
        expect(log_row(page, event).get_by_test_id("next-attempt")).to_have_count(0)
        expect(log_row(page, event).get_by_role("button", name="Resend")).to_be_visible()
    for event in (BUSY, SLOW):  # unfinished: they will be attempted anyway
        expect(log_row(page, event).get_by_role("button", name="Resend")).to_have_count(0)
    shot(page, artifacts, "30-failures-statuses")

    # The held attempt is answered: after Refresh the pending row shows its success.
    release.set()
    wait_for_logs(server, token, lambda logs: logs[SLOW]["status"] == "succeeded")
    page.get_by_role("button", name="Refresh").click()
    expect(log_row(page, SLOW).locator(".badge")).to_have_text("Succeeded")
    expect(log_row(page, SLOW).get_by_test_id("next-attempt")).to_have_count(0)

    # 2) The detail opens right under the row that was clicked, in the middle of the log.
    busy_row = log_row(page, BUSY)
    busy_row.click()
    detail = page.get_by_test_id("log-detail")
    expect(detail).to_be_visible()
    detail_row = busy_row.locator("xpath=following-sibling::tr[1]")
    expect(detail_row).to_have_attribute("data-testid", "log-detail-row")
    expect(detail_row.locator("xpath=following-sibling::tr[1]")).to_have_attribute(
        "data-id", logs[DOWN]["id"]
    )
    expect(busy_row).to_have_attribute("aria-expanded", "true")
    row_box, detail_box = busy_row.bounding_box(), detail.bounding_box()
    assert row_box is not None and detail_box is not None
    assert 0 <= detail_box["y"] - (row_box["y"] + row_box["height"]) < 24, (row_box, detail_box)
    expect(detail.get_by_test_id("detail-status")).to_have_text("Retrying")
    expect(detail.get_by_test_id("detail-next-attempt")).to_contain_text("in ")
    busy_attempt = detail.get_by_test_id("attempt-row")
    expect(busy_attempt).to_have_count(1)
    expect(busy_attempt.get_by_test_id("attempt-trigger")).to_have_text("Scheduled")
    expect(busy_attempt).to_contain_text("503")
    expect(detail.get_by_test_id("attempt-response")).to_have_text("busy, come back later")
    shot(page, artifacts, "31-failures-detail-beside-row")

    # The failed one: every attempt with its trigger, the response as text (never as HTML),
    # the headers that were sent, and the payload pretty-printed (the exact bytes apart).
    down_row = log_row(page, DOWN)
    down_row.click()
    expect(busy_row).to_have_attribute("aria-expanded", "false")
    expect(down_row.locator("xpath=following-sibling::tr[1]")).to_have_attribute(
        "data-testid", "log-detail-row"
    )
    expect(page.get_by_test_id("log-detail-row")).to_have_count(1)
    attempts = detail.get_by_test_id("attempt-row")
    expect(attempts).to_have_count(4)
    down_hits = [hit for hit in receiver.hits if hit.path == "/down"]
    assert len(down_hits) == 4
    extras = detail.get_by_test_id("attempt-extras")
    for n in range(4):
        expect(attempts.nth(n).locator("td").first).to_have_text(str(n + 1))
        expect(attempts.nth(n).get_by_test_id("attempt-trigger")).to_have_text("Scheduled")
        expect(attempts.nth(n)).to_contain_text("HTTP 500")
        expect(extras.nth(n).get_by_test_id("attempt-response")).to_have_text(HOSTILE_BODY)
    assert page.locator("#injected").count() == 0
    assert page.evaluate("() => window.__injected") is None
    headers = extras.nth(2).get_by_test_id("attempt-headers")
    headers.locator("summary").click()
    sent = down_hits[2].headers
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature", "X-Webhook-Signature"):
        cells = headers.locator("tr", has=page.locator("th", has_text=re.compile(f"^{name}$")))
        expect(cells.locator("td")).to_have_text(sent[name.lower()])
    expect(headers.locator("tr", has_text="Content-Type").locator("td")).to_have_text(
        "application/json"
    )
    body = down_hits[0].body.decode()
    pretty = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    assert detail.get_by_test_id("payload-pretty").text_content() == pretty
    assert detail.get_by_test_id("payload").text_content() == body
    shot(page, artifacts, "32-failures-attempts")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(detail).to_be_visible()
    page.wait_for_function("document.querySelector('[data-testid=chart]').clientWidth < 390")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out
    shot(page, artifacts, "32b-failures-attempts-narrow")
    page.set_viewport_size({"width": 1280, "height": 900})

    # 3) Resend the failed delivery once its receiver is back: one more attempt, `manual`,
    #    with the same delivery id; the row and the open detail follow it to success.
    receiver.replies["/down"] = Reply(200, b"back again")
    down_row.get_by_role("button", name="Resend").focus()
    page.keyboard.press("Enter")  # from the keyboard: it resends, the detail stays open
    note = down_row.get_by_test_id("resend-result")
    expect(note).to_have_text("Sent again: it succeeded.")
    expect(down_row.locator(".badge")).to_have_text("Succeeded")
    expect(down_row.locator("td").nth(5)).to_have_text("5")
    expect(attempts).to_have_count(5)
    expect(attempts.nth(4).get_by_test_id("attempt-trigger")).to_have_text("Manual (resend)")
    expect(attempts.nth(4)).to_contain_text("200")
    expect(extras.nth(4).get_by_test_id("attempt-response")).to_have_text("back again")
    resent = [hit for hit in receiver.hits if hit.path == "/down"]
    assert len(resent) == 5 and resent[4].headers["webhook-id"] == resent[0].headers["webhook-id"]
    assert resent[4].body == resent[0].body
    expect(page.get_by_test_id("stats-failed")).to_have_text("0")
    assert down_row.evaluate("row => row.contains(document.activeElement)")  # focus kept
    shot(page, artifacts, "33-failures-resent")

    # A resend the API refuses (409: the endpoint was disabled meanwhile) shows its message.
    call(server, token, "PATCH", f"/api/webhooks/endpoints/{fine_id}", {"enabled": False})
    refused = httpx.post(
        f"{server.url}/api/webhooks/logs/{logs[FINE]['id']}/resend",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 409
    fine_row = log_row(page, FINE)
    fine_row.get_by_role("button", name="Resend").click()
    expect(fine_row.get_by_test_id("resend-result")).to_have_text(
        f"Not resent: {refused.json()['error']}"
    )
    expect(fine_row.locator(".badge")).to_have_text("Succeeded")
    expect(fine_row.get_by_role("button", name="Resend")).to_be_enabled()
    shot(page, artifacts, "34-failures-resend-refused")

    page.get_by_role("button", name="Close details").click()
    expect(page.get_by_test_id("log-detail-row")).to_have_count(0)
    expect(down_row).to_be_focused()


# --- recover and the disabled banner ---------------------------------------------------------


def serve(template: Path, directory: Path, **overrides: Any) -> LiveServer:
    """The service on a copy of the migrated template, with fast retries and ``overrides``."""
    path = directory / "hookline.db"
    shutil.copy(template, path)
    settings = make_settings(
        f"sqlite+aiosqlite:///{path}",
        retry_delays_s=[0.05, 0.05, 0.05],
        poll_interval_s=0.05,
        **overrides,
    )
    server = LiveServer(create_app(settings))
    server.start()
    return server


@pytest.fixture(scope="module")
def recovery_server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The service with recoveries paced at 2 a second, so their progress can be watched."""
    server = serve(sqlite_template, tmp_path_factory.mktemp("recovery"), recovery_rate=2.0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def strict_server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The service with the auto-disable rule at two failed deliveries in a row."""
    server = serve(
        sqlite_template, tmp_path_factory.mktemp("strict"), auto_disable_after_failures=2
    )
    try:
        yield server
    finally:
        server.stop()


def local_input(moment: datetime) -> str:
    """A datetime-local value; the browser's time zone is UTC in these tests."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


RECOVERED = 8


def test_recover_an_endpoint_with_live_progress_and_re_enable_it(
    page: Page, recovery_server: LiveServer, http_receiver: ThreadReceiver, artifacts: Path
) -> None:
    server, receiver = recovery_server, http_receiver
    user_id, _, token = server.user("rhea")
    _, _, admin_token = server.user("recovery-publisher", admin=True)
    url = f"{receiver.base}/flaky"
    receiver.replies["/flaky"] = Reply(500, b"down for maintenance")
    try:
        endpoint_id = add_endpoint(server, token, url, DOWN, "Flaky")
        for _ in range(RECOVERED):
            publish(server, admin_token, user_id, DOWN)
        wait_for_failed(server, token, RECOVERED)
        receiver.replies["/flaky"] = Reply(200, b"recovered")
        first_ids = {hit.headers["webhook-id"] for hit in receiver.hits if hit.path == "/flaky"}
        assert len(first_ids) == RECOVERED

        page.goto(f"{server.url}/dashboard")
        sign_in(page, token)
        row = page.get_by_test_id("endpoint-row").filter(has_text=url)
        expect(page.get_by_test_id("stats-failed")).to_have_text(str(RECOVERED))

        # 4) The Recover dialog: a window beyond retention is refused with the API's words.
        row.get_by_role("button", name=re.compile(r"^Recover ")).click()
        dialog = page.get_by_test_id("recover-dialog")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_test_id("recover-for")).to_contain_text(url)
        since = dialog.get_by_label("Since")
        expect(since).to_be_focused()
        default = datetime.fromisoformat(since.input_value()).replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - default).total_seconds() - 86400) < 120
        since.fill(local_input(datetime.now(UTC) - timedelta(days=200)))
        dialog.get_by_role("button", name="Start recovery").click()
        expect(dialog.get_by_test_id("recover-error")).to_have_text(
            "Not started: Invalid window: since is beyond retention (deliveries are kept 90 days)"
        )
        expect(dialog.get_by_test_id("field-error-since")).to_contain_text("beyond retention")
        expect(since).to_have_attribute("aria-invalid", "true")
        shot(page, artifacts, "40-recover-beyond-retention")
        # An until before since: the API's 422 again, next to the field it names.
        since.fill(local_input(datetime.now(UTC) - timedelta(hours=1)))
        dialog.get_by_label("Until").fill(local_input(datetime.now(UTC) - timedelta(hours=2)))
        dialog.get_by_role("button", name="Start recovery").click()
        expect(dialog.get_by_test_id("recover-error")).to_have_text(
            "Not started: Invalid window: since must be before until"
        )
        expect(dialog.get_by_test_id("field-error-since")).to_contain_text("must be before until")
        dialog.get_by_label("Until").fill("")

        # A good window: the progress bar moves from 0 to all of them, live.
        since.fill(local_input(datetime.now(UTC) - timedelta(hours=1)))
        dialog.get_by_role("button", name="Start recovery").click()
        bar = dialog.get_by_test_id("recover-progress")
        expect(bar).to_be_visible()
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while not any(0 < done < RECOVERED for done in seen):
            # one reading of the bar: what it says and how full it is
            state, total, done, value = bar.evaluate(
                "bar => [bar.dataset.state, bar.dataset.total, Number(bar.dataset.done), bar.value]"
            )
            assert time.monotonic() < deadline, f"no progress seen: {seen}"
            assert state in ("queued", "running"), (state, seen)  # not over in one jump
            assert total == str(RECOVERED) and value == done
            seen.add(done)
            time.sleep(0.1)
        shot(page, artifacts, "41-recover-in-progress")

        # A reload in the middle: the dialog finds the recovery again and follows it to the end.
        page.reload()
        expect(page.get_by_role("heading", name="Webhook dashboard")).to_be_visible()
        row.get_by_role("button", name=re.compile(r"^Recover ")).click()
        expect(dialog.get_by_test_id("recover-status")).to_have_text(
            re.compile(
                r"^Last recovery, started .+: (Recovering: \d of 8 deliveries done…|Done: .+)$"
            )
        )
        expect(dialog.get_by_test_id("recover-status")).to_have_text(
            re.compile(
                rf"^Last recovery, started .+: Done: {RECOVERED} of {RECOVERED} failed deliveries"
                r" queued to be sent again\.$"
            ),
            timeout=30_000,
        )
        expect(bar).to_have_js_property("value", RECOVERED)
        expect(bar).to_have_js_property("max", RECOVERED)
        deadline = time.monotonic() + 15
        while len([hit for hit in receiver.hits if hit.path == "/flaky"]) < 5 * RECOVERED:
            assert time.monotonic() < deadline, "recovered deliveries were not sent"
            time.sleep(0.05)
        hits = [hit for hit in receiver.hits if hit.path == "/flaky"]
        assert {hit.headers["webhook-id"] for hit in hits[-RECOVERED:]} == first_ids
        shot(page, artifacts, "42-recover-done")
        dialog.get_by_role("button", name="Close").click()
        expect(dialog).to_be_hidden()
        expect(row.get_by_role("button", name=re.compile(r"^Recover "))).to_be_focused()

        # The log follows: every delivery succeeded, its last attempt triggered by the recovery.
        page.get_by_role("button", name="Refresh").click()
        expect(page.get_by_test_id("stats-failed")).to_have_text("0")
        expect(page.get_by_test_id("log-row").locator(".badge")).to_have_text(
            ["Succeeded"] * RECOVERED
        )
        page.get_by_test_id("log-row").first.click()
        attempts = page.get_by_test_id("attempt-row")
        expect(attempts).to_have_count(5)
        expect(attempts.nth(4).get_by_test_id("attempt-trigger")).to_have_text("Recovery")

        # 5) Switched off by hand: a banner says so and when, in the list and in the editor
        #    (the primary endpoint, the guide's config), and the dialog shows the API's 409.
        row.get_by_role("button", name=re.compile(r"^Disable ")).click()
        config = call(server, token, "GET", "/api/webhooks/config")["config"]
        assert config["disabledReason"] == "user" and config["disabledAt"]
        list_banner = page.locator(f'tr[data-for="{endpoint_id}"]').get_by_test_id(
            "disabled-banner"
        )
        expect(list_banner).to_contain_text("Disabled by hand on ")
        expect(list_banner).to_contain_text("someone switched it off.")
        expect(list_banner.locator("time").first).to_have_attribute(
            "datetime", config["disabledAt"]
        )
        expect(page.get_by_test_id("editor-disabled-banner")).to_contain_text("Disabled by hand")
        row.get_by_role("button", name=re.compile(r"^Recover ")).click()
        dialog.get_by_role("button", name="Start recovery").click()
        expect(dialog.get_by_test_id("recover-error")).to_have_text(
            "Not started: The endpoint is disabled; enable it first"
        )
        shot(page, artifacts, "43-recover-disabled-endpoint")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        shot(page, artifacts, "44-disabled-banner-user")

        list_banner.get_by_role("button", name=re.compile(r"^Re-enable ")).click()
        expect(page.get_by_test_id("disabled-banner")).to_have_count(0)
        expect(page.get_by_test_id("editor-disabled-banner")).to_have_count(0)
        expect(row.get_by_test_id("endpoint-state")).to_have_text("Enabled")
        expect(page.get_by_test_id("endpoints-status")).to_have_text(
            f"Re-enabled Flaky ({url}): events are sent to it again."
        )
        config = call(server, token, "GET", "/api/webhooks/config")["config"]
        assert config["enabled"] and config["disabledAt"] is None
        assert config["disabledReason"] is None
    finally:
        receiver.replies.pop("/flaky", None)


def wait_for_failed(server: LiveServer, token: str, count: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        stats = call(server, token, "GET", "/api/webhooks/stats")
        if (stats["failed"], stats["pending"]) == (count, 0):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries did not fail: {stats}")
        time.sleep(0.05)


def test_an_endpoint_gone_410_shows_why_and_comes_back_with_re_enable(
    page: Page, live_server: LiveServer, http_receiver: ThreadReceiver, artifacts: Path
) -> None:
    server, receiver = live_server, http_receiver
    user_id, _, token = server.user("gil")
    _, _, admin_token = server.user("gone-publisher", admin=True)
    url = f"{receiver.base}/gone"
    receiver.replies["/gone"] = Reply(410, b"no such hook")
    try:
        endpoint_id = add_endpoint(server, token, url, FINE, "Old hook")
        publish(server, admin_token, user_id, FINE)
        deadline = time.monotonic() + 20
        while True:
            endpoint = call(server, token, "GET", f"/api/webhooks/endpoints/{endpoint_id}")[
                "endpoint"
            ]
            if endpoint["disabledReason"] == "gone":
                break
            assert time.monotonic() < deadline, f"a 410 did not disable the endpoint: {endpoint}"
            time.sleep(0.05)

        page.goto(f"{server.url}/dashboard")
        sign_in(page, token)
        banner = page.locator(f'tr[data-for="{endpoint_id}"]').get_by_test_id("disabled-banner")
        expect(banner).to_have_attribute("data-reason", "gone")
        expect(banner.get_by_test_id("disabled-reason")).to_have_text(
            re.compile(
                r"^Disabled automatically on .+ \(.+ ago\): its receiver answered 410 Gone, which"
                r" says the URL is no longer in use\. No events are sent to it until it is"
                r" re-enabled\. Fix the receiver, then re-enable it \(a successful test webhook"
                r" does too\); Recover then sends the deliveries that failed meanwhile\.$"
            )
        )
        expect(banner.locator("time").first).to_have_attribute("datetime", endpoint["disabledAt"])
        expect(page.get_by_test_id("editor-disabled-banner")).to_have_attribute(
            "data-reason", "gone"
        )  # the primary endpoint, as the guide's config shows it
        shot(page, artifacts, "45-disabled-banner-gone")

        receiver.replies["/gone"] = Reply(200, b"here again")
        page.get_by_test_id("editor-disabled-banner").get_by_role(
            "button", name=re.compile(r"^Re-enable ")
        ).click()
        expect(page.get_by_test_id("disabled-banner")).to_have_count(0)
        expect(page.get_by_test_id("editor-disabled-banner")).to_have_count(0)
        expect(page.get_by_label("Enabled (deliver events to this URL)")).to_be_checked()
        endpoint = call(server, token, "GET", f"/api/webhooks/endpoints/{endpoint_id}")["endpoint"]
        assert endpoint["enabled"] and endpoint["disabledReason"] is None
    finally:
        receiver.replies.pop("/gone", None)


def test_an_endpoint_disabled_for_failing_says_so_and_a_good_test_brings_it_back(
    page: Page, strict_server: LiveServer, http_receiver: ThreadReceiver, artifacts: Path
) -> None:
    server, receiver = strict_server, http_receiver
    user_id, _, token = server.user("hal")
    _, _, admin_token = server.user("failing-publisher", admin=True)
    url = f"{receiver.base}/broken"
    receiver.replies["/broken"] = Reply(500, b"still broken")
    try:
        endpoint_id = add_endpoint(server, token, url, DOWN, "Broken")
        for _ in range(2):
            publish(server, admin_token, user_id, DOWN)
        deadline = time.monotonic() + 20
        while True:
            endpoint = call(server, token, "GET", f"/api/webhooks/endpoints/{endpoint_id}")[
                "endpoint"
            ]
            if endpoint["disabledReason"] == "failing":
                break
            assert time.monotonic() < deadline, f"the endpoint was not disabled: {endpoint}"
            time.sleep(0.05)

        page.goto(f"{server.url}/dashboard")
        sign_in(page, token)
        banner = page.locator(f'tr[data-for="{endpoint_id}"]').get_by_test_id("disabled-banner")
        expect(banner).to_have_attribute("data-reason", "failing")
        expect(banner.get_by_test_id("disabled-reason")).to_contain_text(
            "Disabled automatically on "
        )
        expect(banner.get_by_test_id("disabled-reason")).to_contain_text(
            "): deliveries to it kept failing. No events are sent to it until it is re-enabled."
        )
        expect(page.get_by_test_id("endpoint-row").get_by_test_id("endpoint-state")).to_have_text(
            "Disabled"
        )
        shot(page, artifacts, "46-disabled-banner-failing")

        # The receiver is fixed; a test webhook that gets through switches the endpoint back
        # on, and the banners go without a reload.
        receiver.replies["/broken"] = Reply(200, b"fixed")
        page.get_by_role("button", name="Send test webhook").click()
        expect(page.get_by_test_id("test-result")).to_contain_text(
            "Test webhook sent successfully (HTTP 200)."
        )
        expect(page.get_by_test_id("disabled-banner")).to_have_count(0)
        expect(page.get_by_test_id("editor-disabled-banner")).to_have_count(0)
        expect(page.get_by_test_id("endpoint-row").get_by_test_id("endpoint-state")).to_have_text(
            "Enabled"
        )
        expect(page.get_by_label("Enabled (deliver events to this URL)")).to_be_checked()
    finally:
        receiver.replies.pop("/broken", None)

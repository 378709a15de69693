"""The interactive API docs in a real browser, with the network cut off outside loopback: /docs
(Swagger UI) and /redoc (ReDoc) must render from the service alone, as on a machine without
internet. Screenshots go to test-artifacts/dashboard/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.browser

OPERATIONS = [
    ("GET", "/api/webhooks/config", "getConfig"),
    ("POST", "/api/webhooks/config", "saveConfig"),
    ("DELETE", "/api/webhooks/config", "deleteConfig"),
    ("POST", "/api/webhooks/regenerate-secret", "regenerateSecret"),
    ("POST", "/api/webhooks/test", "sendTest"),
    ("GET", "/api/webhooks/logs", "listLogs"),
    ("GET", "/api/webhooks/logs/{log_id}", "getLog"),
    ("POST", "/api/webhooks/logs/{log_id}/resend", "resendDelivery"),
    ("GET", "/api/webhooks/stats", "getStats"),
    ("GET", "/api/webhooks/stats/timeseries", "getTimeseries"),
    ("GET", "/api/webhooks/endpoints", "listEndpoints"),
    ("POST", "/api/webhooks/endpoints", "createEndpoint"),
    ("GET", "/api/webhooks/endpoints/{endpoint_id}", "getEndpoint"),
    ("PATCH", "/api/webhooks/endpoints/{endpoint_id}", "updateEndpoint"),
    ("DELETE", "/api/webhooks/endpoints/{endpoint_id}", "deleteEndpoint"),
    ("POST", "/api/webhooks/endpoints/{endpoint_id}/regenerate-secret", "regenerateEndpointSecret"),
    ("POST", "/api/webhooks/endpoints/{endpoint_id}/test", "sendEndpointTest"),
    ("POST", "/api/events", "publishEvent"),
    ("POST", "/api/webhooks/endpoints/{endpoint_id}/recover", "recoverEndpoint"),
    ("GET", "/api/webhooks/tasks", "listTasks"),
    ("GET", "/api/webhooks/tasks/{task_id}", "getTask"),
    ("POST", "/api/events/batch", "publishEvents"),
    ("GET", "/api/admin/operational-webhooks", "listOperationalWebhooks"),
    ("POST", "/api/admin/operational-webhooks", "createOperationalWebhook"),
    ("GET", "/api/admin/operational-logs", "listOperationalLogs"),
    ("GET", "/api/admin/operational-logs/{log_id}", "getOperationalLog"),
    ("GET", "/api/admin/operational-webhooks/{hook_id}", "getOperationalWebhook"),
    ("PATCH", "/api/admin/operational-webhooks/{hook_id}", "updateOperationalWebhook"),
    ("DELETE", "/api/admin/operational-webhooks/{hook_id}", "deleteOperationalWebhook"),
]


@pytest.fixture
def offline_page(page: Page) -> Iterator[tuple[Page, list[str]]]:
    """The page, with every request that would leave 127.0.0.1 aborted and recorded."""
    outside: list[str] = []

    def guard(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", guard)
    yield page, outside


def test_swagger_ui_renders_every_operation_offline(
    offline_page: tuple[Page, list[str]], live_server: LiveServer, artifacts: Path
) -> None:
    page, outside = offline_page
    page.goto(f"{live_server.url}/docs")
    expect(page.locator(".opblock")).to_have_count(len(OPERATIONS))
    for method, path, operation_id in OPERATIONS:
        block = page.locator(f".opblock-{method.lower()}").filter(
            has=page.locator(".opblock-summary-path", has_text=re.compile(f"^{re.escape(path)}$"))
        )
        expect(block).to_have_count(1)
        expect(block.locator(".opblock-summary-operation-id")).to_have_text(operation_id)
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    # The styles applied: the bundled CSS colours a GET block's method badge.
    badge = page.locator(".opblock-get .opblock-summary-method").first
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"
    page.screenshot(path=artifacts / "docs-swagger-ui.png", full_page=True)
    assert outside == []


def test_redoc_renders_offline(
    offline_page: tuple[Page, list[str]], live_server: LiveServer, artifacts: Path
) -> None:
    page, outside = offline_page
    page.goto(f"{live_server.url}/redoc")
    expect(page.get_by_role("heading", name=re.compile(r"^hookline \(")).first).to_be_visible()
    menu = page.locator("[role=menuitem]")
    for summary in ("Get Config", "Save Config", "Publish"):
        expect(menu.filter(has_text=summary).first).to_be_attached()
    expect(page.locator("h2", has_text="Send Test").first).to_be_attached()
    page.screenshot(path=artifacts / "docs-redoc.png")
    assert outside == []


def test_the_docs_pages_name_only_their_own_assets(live_server: LiveServer) -> None:
    for path in ("/docs", "/redoc"):
        html = httpx.get(live_server.url + path).text
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)
        assert urls, html
        assert all(url.startswith("/") for url in urls), urls
        for url in urls:
            response = httpx.get(live_server.url + url)
            assert response.status_code == 200, url
    assert httpx.get(live_server.url + "/docs/assets/nothing.js").status_code == 404

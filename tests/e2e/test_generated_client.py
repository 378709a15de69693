"""A typed client generated from the running service's /openapi.json by openapi-python-client,
driven through every operation against the real service, answers parsed into their types.

The generator is not a project dependency (it pins typer below the CLI's version): ``uv tool
run`` fetches it into uv's cache and runs it isolated. The generated package needs only httpx,
attrs and python-dateutil, which the project's environment has. When the generator cannot be
fetched the test is skipped, except in CI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hookline.api.app import create_app
from hookline.events import DEFAULT_EVENTS
from tests.e2e.conftest import LiveServer, ThreadReceiver
from tests.support import make_settings

GENERATOR = "openapi-python-client==0.29.1"
ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "hookline_client"


def _uv() -> str | None:
    return shutil.which("uv") or next(
        (str(p) for p in [ROOT / ".tools" / "bin" / "uv"] if os.access(p, os.X_OK)), None
    )


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def generator() -> list[str]:
    """The command that runs openapi-python-client, fetched into uv's cache if need be."""
    uv = _uv()
    if uv is None:
        _unavailable("uv is not installed (make bootstraps it into .tools)")
    assert uv is not None
    command = [uv, "tool", "run", "--python", sys.executable, "--from", GENERATOR]
    command.append("openapi-python-client")
    fetched = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=600)
    if fetched.returncode != 0:
        _unavailable(f"cannot fetch {GENERATOR}: {fetched.stderr.strip()[-500:]}")
    return command


@contextlib.contextmanager
def generate(generator: list[str], base_url: str, out: Path, package: str) -> Iterator[Path]:
    """Generate ``package`` into ``out`` from the service's /openapi.json; importable inside."""
    document = httpx.get(f"{base_url}/openapi.json")
    assert document.status_code == 200
    (out / "openapi.json").write_bytes(document.content)
    command = [
        *generator,
        "generate",
        "--path",
        "openapi.json",
        "--output-path",
        package,
        "--meta",
        "none",
        "--fail-on-warning",
    ]
    result = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Warning" not in output, output
    sys.path.insert(0, str(out))
    try:
        yield out / package
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def generated(
    generator: list[str], live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The client package for the default catalog, importable as hookline_client."""
    with generate(generator, live_server.url, tmp_path_factory.mktemp("client"), PACKAGE) as path:
        yield path


@pytest.fixture
def closing() -> Iterator[contextlib.ExitStack]:
    """Closes the generated clients (each holds an httpx.Client) after the test."""
    with contextlib.ExitStack() as stack:
        yield stack


def test_the_generated_modules_are_named_after_the_operation_ids(generated: Path) -> None:
    modules = sorted(p.stem for p in generated.glob("api/*/*.py") if p.stem != "__init__")
    assert modules == sorted(
        [
            "get_config",
            "save_config",
            "delete_config",
            "regenerate_secret",
            "send_test",
            "list_logs",
            "get_log",
            "resend_delivery",
            "get_stats",
            "get_timeseries",
            "publish_event",
            "publish_events",
            "list_endpoints",
            "create_endpoint",
            "get_endpoint",
            "update_endpoint",
            "delete_endpoint",
            "regenerate_endpoint_secret",
            "send_endpoint_test",
            "recover_endpoint",
            "get_task",
            "list_tasks",
            "list_operational_webhooks",
            "create_operational_webhook",
            "list_operational_logs",
            "get_operational_log",
            "get_operational_webhook",
            "update_operational_webhook",
            "delete_operational_webhook",
        ]
    )


def _eventually(call: Any, done: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = call()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in time: {value}")
        time.sleep(0.05)


def test_a_round_trip_through_every_operation(
    generated: Path,
    live_server: LiveServer,
    http_receiver: ThreadReceiver,
    closing: contextlib.ExitStack,
) -> None:
    from hookline_client import AuthenticatedClient, Client
    from hookline_client.api.events import publish_event
    from hookline_client.api.webhooks import (
        delete_config,
        get_config,
        get_log,
        get_stats,
        get_timeseries,
        list_logs,
        regenerate_secret,
        resend_delivery,
        save_config,
        send_test,
    )
    from hookline_client.models import (
        ConfigIn,
        ConfigResponse,
        ConfigView,
        ErrorBody,
        EventCounts,
        EventName,
        LogDetailResponse,
        LogDetailStatus,
        LoggedEvent,
        LogsResponse,
        MessageResponse,
        PublishResponse,
        PublishResumeParsed,
        PublishTailoringFailed,
        RegenerateResponse,
        ResendResponse,
        ResumeParsedData,
        SaveConfigResponse,
        StatsResponse,
        TailoringFailedData,
        TestFailure,
        TestSuccess,
        TimeseriesResponse,
        Window,
    )

    receiver = http_receiver
    user_id, _, token = live_server.user("gen")
    _, _, admin_token = live_server.user("gen-publisher", admin=True)
    url = live_server.url
    user = closing.enter_context(
        AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True)
    )
    admin = closing.enter_context(
        AuthenticatedClient(base_url=url, token=admin_token, raise_on_unexpected_status=True)
    )
    anonymous = closing.enter_context(Client(base_url=url, raise_on_unexpected_status=True))
    started = datetime.now(UTC).replace(microsecond=0)

    # getConfig: nothing yet; the catalog comes back as the EventName enum.
    empty = get_config.sync(client=user)
    assert isinstance(empty, ConfigResponse)
    assert empty.configured is False and empty.config is None
    assert empty.available_events == [EventName(name) for name in DEFAULT_EVENTS]
    refused = get_config.sync(client=anonymous)  # type: ignore[arg-type]
    assert isinstance(refused, ErrorBody) and refused.success is False

    # saveConfig: refused, then saved; the answer carries the secret.
    invalid = save_config.sync(client=user, body=ConfigIn(url="ftp://example.com/hook"))
    assert isinstance(invalid, ErrorBody)
    assert "url" in invalid.fields.additional_properties
    saved = save_config.sync(
        client=user,
        body=ConfigIn(
            url=receiver.url,
            enabled=True,
            enabled_events=[EventName.RESUME_PARSED, EventName.ATS_CHECK_FAILED],
        ),
    )
    assert isinstance(saved, SaveConfigResponse) and saved.success is True
    assert saved.config.url == receiver.url and saved.config.secret
    assert saved.config.enabled_events == ["resume.parsed", "ats.check_failed"]
    current = get_config.sync(client=user)
    assert isinstance(current, ConfigResponse) and isinstance(current.config, ConfigView)
    assert current.config.created_at.tzinfo is not None
    assert current.config.created_at >= started

    # sendTest: the two shapes parse as two types.
    ok = send_test.sync(client=user)
    assert isinstance(ok, TestSuccess), ok
    assert ok.success is True and ok.status_code == 200
    receiver.fail_events.add("webhook.test")
    try:
        failed = send_test.sync(client=user)
    finally:
        receiver.fail_events.discard("webhook.test")
    assert isinstance(failed, TestFailure), failed
    assert failed.success is False and failed.status_code == 500
    assert failed.error == "Failed to deliver test webhook" and failed.details

    # publishEvent: one variant per event, typed data; a user token is refused.
    parsed_data = ResumeParsedData.from_dict(
        {
            "resumeId": "r1",
            "fileName": "cv.pdf",
            "parsedAt": "2024-11-14T10:05:00Z",
            "success": True,
        }
    )
    published = publish_event.sync(
        client=admin,
        body=PublishResumeParsed(user_id=user_id, event="resume.parsed", data=parsed_data),
    )
    assert isinstance(published, PublishResponse)
    assert len(published.delivery_ids) == 1 and published.reason is None
    not_enabled = publish_event.sync(
        client=admin,
        body=PublishTailoringFailed(
            user_id=user_id,
            event="tailoring.failed",
            data=TailoringFailedData.from_dict({"resumeId": "r1", "error": "e", "failedAt": "t"}),
        ),
    )
    assert isinstance(not_enabled, PublishResponse)
    assert not_enabled.delivery_ids == [] and not_enabled.reason
    forbidden = publish_event.sync(
        client=user,
        body=PublishResumeParsed(user_id=user_id, event="resume.parsed", data=parsed_data),
    )
    assert isinstance(forbidden, ErrorBody) and "admin" in forbidden.error

    # listLogs, filtered by the LoggedEvent enum, once the delivery has succeeded.
    logs = _eventually(
        lambda: list_logs.sync(client=user, event=LoggedEvent.RESUME_PARSED, success=True),
        lambda page: isinstance(page, LogsResponse) and page.logs,
    )
    (item,) = logs.logs
    assert item.event == "resume.parsed" and item.status_code == 200 and item.attempts == 1
    assert isinstance(item.delivered_at, datetime) and item.delivered_at >= started
    assert logs.pagination.total == 1 and logs.pagination.has_more is False
    tests = list_logs.sync(client=user, event=LoggedEvent.WEBHOOK_TEST, limit=1)
    assert isinstance(tests, LogsResponse)
    assert len(tests.logs) == 1 and tests.pagination.total == 2 and tests.pagination.has_more
    bad_filter = list_logs.sync(client=user, limit=0)
    assert isinstance(bad_filter, ErrorBody) and "limit" in bad_filter.fields.additional_properties

    # getLog: the delivery in full.
    detail = get_log.sync(client=user, log_id=item.id)
    assert isinstance(detail, LogDetailResponse)
    assert detail.log.status == LogDetailStatus.SUCCEEDED
    assert detail.log.attempt_count == 1 and len(detail.log.attempts) == 1
    assert detail.log.attempts[0].status_code == 200
    assert isinstance(detail.log.attempts[0].created_at, datetime)
    assert '"resumeId":"r1"' in detail.log.payload.replace(" ", "")
    missing = get_log.sync(client=user, log_id="c0000000000000000000000000")
    assert isinstance(missing, ErrorBody)

    # getStats and getTimeseries: two tests and one event, all finished.
    stats = get_stats.sync(client=user)
    assert isinstance(stats, StatsResponse)
    assert (stats.total, stats.successful, stats.failed, stats.pending) == (3, 2, 1, 0)
    assert stats.success_rate == "66.67" and stats.average_attempts == "1.00"
    counts = stats.by_event["resume.parsed"]
    assert isinstance(counts, EventCounts) and counts.successful == 1
    series = get_timeseries.sync(client=user, window=Window.HOURS_24)
    assert isinstance(series, TimeseriesResponse)
    assert series.window == Window.HOURS_24 and series.bucket_seconds == 3600
    assert len(series.buckets) == 24 and isinstance(series.buckets[0].start, datetime)
    assert sum(b.successful for b in series.buckets) == 2
    assert sum(b.failed for b in series.buckets) == 1
    default = get_timeseries.sync(client=user)
    assert isinstance(default, TimeseriesResponse) and default.window == Window.DAYS_7

    # resendDelivery: the succeeded delivery once more, as a manual attempt.
    resent = resend_delivery.sync(client=user, log_id=item.id)
    assert isinstance(resent, ResendResponse) and resent.success is True
    assert resent.log.delivery_id == item.delivery_id
    detail = _eventually(
        lambda: get_log.sync(client=user, log_id=item.id),
        lambda d: d.log.attempt_count == 2 and d.log.status == LogDetailStatus.SUCCEEDED,
    )
    assert [str(a.trigger) for a in detail.log.attempts] == ["scheduled", "manual"]
    assert detail.log.next_attempt_at is None
    assert detail.log.attempts[1].request_headers["webhook-id"] == item.delivery_id
    unknown = resend_delivery.sync(client=user, log_id="c0000000000000000000000000")
    assert isinstance(unknown, ErrorBody) and unknown.success is False

    # regenerateSecret: a new secret, the old one signing until a time.
    regenerated = regenerate_secret.sync(client=user)
    assert isinstance(regenerated, RegenerateResponse)
    assert regenerated.secret != saved.config.secret
    assert isinstance(regenerated.previous_secret_expires_at, datetime)
    assert regenerated.previous_secret_expires_at > datetime.now(UTC)

    # deleteConfig: gone, and a second delete finds nothing.
    deleted = delete_config.sync(client=user)
    assert isinstance(deleted, MessageResponse) and deleted.success is True
    again = delete_config.sync(client=user)
    assert isinstance(again, ErrorBody) and again.success is False
    after = get_config.sync(client=user)
    assert isinstance(after, ConfigResponse) and after.configured is False
    assert len(receiver.wait_for(3)) >= 3


def test_a_round_trip_through_every_endpoint_operation(
    generated: Path,
    live_server: LiveServer,
    http_receiver: ThreadReceiver,
    closing: contextlib.ExitStack,
) -> None:
    from hookline_client import AuthenticatedClient
    from hookline_client.api.endpoints import (
        create_endpoint,
        delete_endpoint,
        get_endpoint,
        list_endpoints,
        regenerate_endpoint_secret,
        send_endpoint_test,
        update_endpoint,
    )
    from hookline_client.api.events import publish_event
    from hookline_client.api.webhooks import get_log, get_stats, get_timeseries, list_logs
    from hookline_client.models import (
        CreatedEndpointResponse,
        EndpointIn,
        EndpointInHeadersType0,
        EndpointPatch,
        EndpointResponse,
        EndpointsResponse,
        ErrorBody,
        EventName,
        LogDetailResponse,
        LoggedEvent,
        LogsResponse,
        MessageResponse,
        PublishResponse,
        PublishResumeParsed,
        RegenerateResponse,
        ResumeParsedData,
        StatsResponse,
        TestFailure,
        TestSuccess,
        TimeseriesResponse,
        Window,
    )

    receiver = http_receiver
    user_id, _, token = live_server.user("gen-endpoints")
    _, _, admin_token = live_server.user("gen-endpoints-publisher", admin=True)
    url = live_server.url
    user = closing.enter_context(
        AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True)
    )
    admin = closing.enter_context(
        AuthenticatedClient(base_url=url, token=admin_token, raise_on_unexpected_status=True)
    )
    started = datetime.now(UTC).replace(microsecond=0)
    missing_id = "c0000000000000000000000000"

    # listEndpoints: none yet.
    empty = list_endpoints.sync(client=user)
    assert isinstance(empty, EndpointsResponse)
    assert empty.success is True and empty.endpoints == []

    # createEndpoint: refused, then two; the first becomes the primary. Each answer carries
    # the secret, once.
    invalid = create_endpoint.sync(client=user, body=EndpointIn(url="ftp://example.com/hook"))
    assert isinstance(invalid, ErrorBody)
    assert "url" in invalid.fields.additional_properties
    first = create_endpoint.sync(
        client=user,
        body=EndpointIn(
            url=receiver.url, description="Resumes", enabled_events=[EventName.RESUME_PARSED]
        ),
    )
    assert isinstance(first, CreatedEndpointResponse) and first.success is True
    assert first.endpoint.primary is True and first.secret.startswith("whsec_")
    assert first.endpoint.enabled_events == ["resume.parsed"]
    assert first.endpoint.created_at.tzinfo is not None
    assert first.endpoint.created_at >= started
    second = create_endpoint.sync(
        client=user,
        body=EndpointIn(
            url=receiver.url,
            description="Billing",
            enabled_events=[EventName.ATS_CHECK_FAILED],
            headers=EndpointInHeadersType0.from_dict({"X-Tenant": "acme"}),
            rate_limit=5,
        ),
    )
    assert isinstance(second, CreatedEndpointResponse)
    billing = second.endpoint
    assert billing.primary is False and billing.enabled is True and billing.rate_limit == 5
    assert billing.headers.additional_properties == {"X-Tenant": "acme"}
    assert second.secret != first.secret

    # listEndpoints and getEndpoint: the primary first; never a secret.
    listed = list_endpoints.sync(client=user)
    assert isinstance(listed, EndpointsResponse)
    assert listed.endpoints == [first.endpoint, billing]
    read = get_endpoint.sync(billing.id, client=user)
    assert isinstance(read, EndpointResponse) and read.endpoint == billing
    missing = get_endpoint.sync(missing_id, client=user)
    assert isinstance(missing, ErrorBody) and missing.success is False

    # updateEndpoint: only the fields sent change; a null rateLimit removes the limit.
    updated = update_endpoint.sync(
        billing.id, client=user, body=EndpointPatch(description="Billing v2", rate_limit=None)
    )
    assert isinstance(updated, EndpointResponse)
    assert updated.endpoint.description == "Billing v2" and updated.endpoint.rate_limit is None
    assert updated.endpoint.headers == billing.headers
    assert updated.endpoint.url == billing.url and updated.endpoint.created_at == billing.created_at
    assert updated.endpoint.updated_at >= billing.updated_at
    null_url = update_endpoint.sync(billing.id, client=user, body=EndpointPatch(url=None))
    assert isinstance(null_url, ErrorBody) and "url" in null_url.fields.additional_properties

    # sendEndpointTest: to the second endpoint, with its headers; the two shapes parse as two
    # types.
    hits = len(receiver.hits)
    ok = send_endpoint_test.sync(billing.id, client=user)
    assert isinstance(ok, TestSuccess), ok
    assert ok.success is True and ok.status_code == 200
    got = receiver.wait_for(hits + 1)[hits]
    assert got.event == "webhook.test" and got.headers["x-tenant"] == "acme"
    receiver.fail_events.add("webhook.test")
    try:
        failed = send_endpoint_test.sync(billing.id, client=user)
    finally:
        receiver.fail_events.discard("webhook.test")
    assert isinstance(failed, TestFailure), failed
    assert failed.success is False and failed.status_code == 500
    no_such = send_endpoint_test.sync(missing_id, client=user)
    assert isinstance(no_such, ErrorBody)

    # regenerateEndpointSecret: a new secret for that endpoint, the old one signing until a time.
    regenerated = regenerate_endpoint_secret.sync(billing.id, client=user)
    assert isinstance(regenerated, RegenerateResponse)
    assert regenerated.secret not in (second.secret, first.secret)
    assert isinstance(regenerated.previous_secret_expires_at, datetime)
    assert regenerated.previous_secret_expires_at > datetime.now(UTC)

    # An event the first endpoint takes and the second does not.
    published = publish_event.sync(
        client=admin,
        body=PublishResumeParsed(
            user_id=user_id,
            event="resume.parsed",
            data=ResumeParsedData.from_dict(
                {
                    "resumeId": "r1",
                    "fileName": "cv.pdf",
                    "parsedAt": "2024-11-14T10:05:00Z",
                    "success": True,
                }
            ),
        ),
    )
    assert isinstance(published, PublishResponse) and len(published.delivery_ids) == 1

    # listLogs, getStats and getTimeseries filtered by endpointId: each endpoint's own.
    resumes = _eventually(
        lambda: list_logs.sync(client=user, endpoint_id=first.endpoint.id, success=True),
        lambda page: isinstance(page, LogsResponse) and page.logs,
    )
    (resume,) = resumes.logs
    assert resume.event == "resume.parsed" and resume.endpoint_id == first.endpoint.id
    tests = list_logs.sync(client=user, endpoint_id=billing.id)
    assert isinstance(tests, LogsResponse) and tests.pagination.total == 2
    assert {(log.event, log.endpoint_id) for log in tests.logs} == {("webhook.test", billing.id)}
    assert [log.success for log in tests.logs] == [False, True]  # newest first
    unknown = list_logs.sync(client=user, endpoint_id=missing_id)
    assert isinstance(unknown, ErrorBody) and unknown.success is False
    stats = get_stats.sync(client=user, endpoint_id=billing.id)
    assert isinstance(stats, StatsResponse)
    assert (stats.total, stats.successful, stats.failed, stats.pending) == (2, 1, 1, 0)
    assert list(stats.by_event.additional_properties) == ["webhook.test"]
    resume_stats = get_stats.sync(client=user, endpoint_id=first.endpoint.id)
    assert isinstance(resume_stats, StatsResponse)
    assert (resume_stats.total, resume_stats.successful) == (1, 1)
    series = get_timeseries.sync(client=user, window=Window.HOURS_24, endpoint_id=billing.id)
    assert isinstance(series, TimeseriesResponse)
    assert sum(b.successful for b in series.buckets) == 1
    assert sum(b.failed for b in series.buckets) == 1

    # deleteEndpoint: gone, its log stays without it, and a second delete finds nothing.
    test_log = tests.logs[0]
    detail = get_log.sync(client=user, log_id=test_log.id)
    assert isinstance(detail, LogDetailResponse) and detail.log.endpoint_id == billing.id
    deleted = delete_endpoint.sync(billing.id, client=user)
    assert isinstance(deleted, MessageResponse)
    assert deleted.success is True and deleted.message == "Endpoint deleted"
    again = delete_endpoint.sync(billing.id, client=user)
    assert isinstance(again, ErrorBody) and again.success is False
    remaining = list_endpoints.sync(client=user)
    assert isinstance(remaining, EndpointsResponse)
    assert [e.id for e in remaining.endpoints] == [first.endpoint.id]
    kept = list_logs.sync(client=user, event=LoggedEvent.WEBHOOK_TEST)
    assert isinstance(kept, LogsResponse) and kept.pagination.total == 2
    assert {log.endpoint_id for log in kept.logs} == {None}
    after = get_log.sync(client=user, log_id=test_log.id)
    assert isinstance(after, LogDetailResponse) and after.log.endpoint_id is None


def test_a_round_trip_through_the_recovery_operations(
    generated: Path,
    live_server: LiveServer,
    http_receiver: ThreadReceiver,
    closing: contextlib.ExitStack,
) -> None:
    from hookline_client import AuthenticatedClient
    from hookline_client.api.endpoints import create_endpoint
    from hookline_client.api.events import publish_event
    from hookline_client.api.tasks import get_task, list_tasks, recover_endpoint
    from hookline_client.models import (
        CreatedEndpointResponse,
        EndpointIn,
        ErrorBody,
        EventName,
        PublishResponse,
        PublishResumeParseFailed,
        RecoverIn,
        ResumeParseFailedData,
        TasksResponse,
        TaskView,
        TaskViewStatus,
    )

    receiver = http_receiver
    user_id, _, token = live_server.user("gen-recover")
    _, _, admin_token = live_server.user("gen-recover-publisher", admin=True)
    url = live_server.url
    user = closing.enter_context(
        AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True)
    )
    admin = closing.enter_context(
        AuthenticatedClient(base_url=url, token=admin_token, raise_on_unexpected_status=True)
    )
    since = datetime.now(UTC)
    created = create_endpoint.sync(
        client=user,
        body=EndpointIn(
            url=f"{receiver.base}/recover", enabled_events=[EventName.RESUME_PARSE_FAILED]
        ),
    )
    assert isinstance(created, CreatedEndpointResponse)
    endpoint_id = created.endpoint.id
    receiver.fail_events.add("resume.parse_failed")
    published = publish_event.sync(
        client=admin,
        body=PublishResumeParseFailed(
            user_id=user_id,
            event="resume.parse_failed",
            data=ResumeParseFailedData(file_name="a.pdf", error="bad", failed_at="t"),
        ),
    )
    assert isinstance(published, PublishResponse)
    [delivery_id] = published.delivery_ids

    def arrivals() -> int:
        return sum(1 for hit in receiver.hits if hit.headers.get("webhook-id") == delivery_id)

    _eventually(arrivals, lambda n: n == 4)  # every attempt failed
    time.sleep(0.2)
    receiver.fail_events.discard("resume.parse_failed")

    # recoverEndpoint: a task, queued; getTask follows it to the end; listTasks lists it.
    task = recover_endpoint.sync(client=user, endpoint_id=endpoint_id, body=RecoverIn(since=since))
    assert isinstance(task, TaskView) and task.total == 1 and task.endpoint_id == endpoint_id
    done = _eventually(
        lambda: get_task.sync(client=user, task_id=task.id),
        lambda t: t.status == TaskViewStatus.SUCCEEDED,
    )
    assert isinstance(done, TaskView) and done.done == 1
    assert isinstance(done.finished_at, datetime) and isinstance(done.since, datetime)
    _eventually(arrivals, lambda n: n == 5)
    listed = list_tasks.sync(client=user, endpoint_id=endpoint_id)
    assert isinstance(listed, TasksResponse) and [t.id for t in listed.tasks] == [task.id]
    missing = get_task.sync(client=user, task_id="c0000000000000000000000000")
    assert isinstance(missing, ErrorBody) and missing.success is False


def test_a_custom_catalog_gets_its_own_enum_and_publishes_any_data(
    generator: list[str],
    sqlite_template: Path,
    tmp_path: Path,
    closing: contextlib.ExitStack,
) -> None:
    path = tmp_path / "hookline.db"
    shutil.copy(sqlite_template, path)
    catalog = ["resume.parsed", "invoice.paid", "invoice.voided"]
    server = LiveServer(create_app(make_settings(f"sqlite+aiosqlite:///{path}", events=catalog)))
    server.start()
    try:
        with generate(generator, server.url, tmp_path, "custom_client"):
            from custom_client import AuthenticatedClient
            from custom_client.api.events import publish_event
            from custom_client.api.webhooks import get_config, save_config
            from custom_client.models import (
                ConfigIn,
                ConfigResponse,
                EventName,
                PublishOtherEvent,
                PublishOtherEventData,
                PublishOtherEventEvent,
                PublishResponse,
            )

            user_id, _, token = server.user("custom")
            _, _, admin_token = server.user("custom-publisher", admin=True)
            user = closing.enter_context(AuthenticatedClient(base_url=server.url, token=token))
            admin = closing.enter_context(
                AuthenticatedClient(base_url=server.url, token=admin_token)
            )
            assert sorted(e.value for e in EventName) == sorted(catalog)
            saved = save_config.sync(
                client=user,
                body=ConfigIn(
                    url="http://127.0.0.1:9/hook", enabled_events=[EventName.INVOICE_PAID]
                ),
            )
            assert saved is not None and saved.config.enabled_events == ["invoice.paid"]
            config = get_config.sync(client=user)
            assert isinstance(config, ConfigResponse)
            assert config.available_events == [EventName(e) for e in catalog]
            published = publish_event.sync(
                client=admin,
                body=PublishOtherEvent(
                    user_id=user_id,
                    event=PublishOtherEventEvent.INVOICE_PAID,
                    data=PublishOtherEventData.from_dict({"invoice": 7, "lines": [{"n": 1}]}),
                ),
            )
            assert isinstance(published, PublishResponse), published
            assert len(published.delivery_ids) == 1
    finally:
        server.stop()


def test_a_round_trip_through_every_operational_webhook_operation(
    generated: Path,
    live_server: LiveServer,
    http_receiver: ThreadReceiver,
    closing: contextlib.ExitStack,
) -> None:
    from hookline_client import AuthenticatedClient
    from hookline_client.api.operational_webhooks import (
        create_operational_webhook,
        delete_operational_webhook,
        get_operational_log,
        get_operational_webhook,
        list_operational_logs,
        list_operational_webhooks,
        update_operational_webhook,
    )
    from hookline_client.models import (
        CreatedOperationalWebhookResponse,
        ErrorBody,
        LogsResponse,
        MessageResponse,
        OperationalWebhookIn,
        OperationalWebhookPatch,
        OperationalWebhookResponse,
        OperationalWebhooksResponse,
    )

    _, _, admin_token = live_server.user("gen-operator", admin=True)
    _, _, user_token = live_server.user("gen-operator-user")
    admin = closing.enter_context(AuthenticatedClient(base_url=live_server.url, token=admin_token))
    user = closing.enter_context(AuthenticatedClient(base_url=live_server.url, token=user_token))
    refused = list_operational_webhooks.sync(client=user)
    assert isinstance(refused, ErrorBody) and refused.success is False  # 403

    created = create_operational_webhook.sync(
        client=admin, body=OperationalWebhookIn(url=http_receiver.base + "/ops")
    )
    assert isinstance(created, CreatedOperationalWebhookResponse)
    assert created.secret.startswith("whsec_")
    hook_id = created.webhook.id
    assert created.webhook.enabled_events == [
        "endpoint.disabled",
        "endpoint.failing",
        "endpoint.recovered",
    ]
    listed = list_operational_webhooks.sync(client=admin)
    assert isinstance(listed, OperationalWebhooksResponse)
    assert hook_id in [hook.id for hook in listed.webhooks]
    one = get_operational_webhook.sync(hook_id, client=admin)
    assert isinstance(one, OperationalWebhookResponse) and one.webhook.disabled_at is None
    off = update_operational_webhook.sync(
        hook_id, client=admin, body=OperationalWebhookPatch(enabled=False)
    )
    assert isinstance(off, OperationalWebhookResponse)
    assert off.webhook.disabled_reason is not None and off.webhook.disabled_reason.value == "user"
    logs = list_operational_logs.sync(client=admin, webhook_id=hook_id)
    assert isinstance(logs, LogsResponse) and logs.logs == []
    missing = get_operational_log.sync("c0000000000000000000000000", client=admin)
    assert isinstance(missing, ErrorBody)
    deleted = delete_operational_webhook.sync(hook_id, client=admin)
    assert isinstance(deleted, MessageResponse)
    gone = get_operational_webhook.sync(hook_id, client=admin)
    assert isinstance(gone, ErrorBody)

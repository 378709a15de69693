"""The OpenAPI document as client generators read it, and the 405's Allow header.

The document must name each operation, mark what every answer always carries as required, tell
a failed test's answer from a successful one, give each enum one name, type the timestamps, and
list the configured event catalog, with the data each event needs, accepting what the app does.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs

from hookline.api.app import create_app
from hookline.events import DEFAULT_EVENTS, REQUIRED_FIELDS
from tests.support import make_settings, running_api

OPERATION_IDS = {
    ("GET", "/api/webhooks/config"): "getConfig",
    ("POST", "/api/webhooks/config"): "saveConfig",
    ("DELETE", "/api/webhooks/config"): "deleteConfig",
    ("POST", "/api/webhooks/regenerate-secret"): "regenerateSecret",
    ("POST", "/api/webhooks/test"): "sendTest",
    ("GET", "/api/webhooks/logs"): "listLogs",
    ("GET", "/api/webhooks/logs/{log_id}"): "getLog",
    ("POST", "/api/webhooks/logs/{log_id}/resend"): "resendDelivery",
    ("GET", "/api/webhooks/stats"): "getStats",
    ("GET", "/api/webhooks/stats/timeseries"): "getTimeseries",
    ("GET", "/api/webhooks/endpoints"): "listEndpoints",
    ("POST", "/api/webhooks/endpoints"): "createEndpoint",
    ("GET", "/api/webhooks/endpoints/{endpoint_id}"): "getEndpoint",
    ("PATCH", "/api/webhooks/endpoints/{endpoint_id}"): "updateEndpoint",
    ("DELETE", "/api/webhooks/endpoints/{endpoint_id}"): "deleteEndpoint",
    ("POST", "/api/webhooks/endpoints/{endpoint_id}/regenerate-secret"): "regenerateEndpointSecret",
    ("POST", "/api/webhooks/endpoints/{endpoint_id}/test"): "sendEndpointTest",
    ("POST", "/api/events"): "publishEvent",
    ("POST", "/api/webhooks/endpoints/{endpoint_id}/recover"): "recoverEndpoint",
    ("GET", "/api/webhooks/tasks"): "listTasks",
    ("GET", "/api/webhooks/tasks/{task_id}"): "getTask",
    ("POST", "/api/events/batch"): "publishEvents",
    ("GET", "/api/admin/operational-webhooks"): "listOperationalWebhooks",
    ("POST", "/api/admin/operational-webhooks"): "createOperationalWebhook",
    ("GET", "/api/admin/operational-logs"): "listOperationalLogs",
    ("GET", "/api/admin/operational-logs/{log_id}"): "getOperationalLog",
    ("GET", "/api/admin/operational-webhooks/{hook_id}"): "getOperationalWebhook",
    ("PATCH", "/api/admin/operational-webhooks/{hook_id}"): "updateOperationalWebhook",
    ("DELETE", "/api/admin/operational-webhooks/{hook_id}"): "deleteOperationalWebhook",
}

TIMESTAMPS = [
    ("ConfigView", "createdAt"),
    ("ConfigView", "updatedAt"),
    ("RegenerateResponse", "previousSecretExpiresAt"),
    ("LogItem", "deliveredAt"),
    ("LogItem", "createdAt"),
    ("LogDetail", "deliveredAt"),
    ("LogDetail", "createdAt"),
    ("LogItem", "nextAttemptAt"),
    ("LogDetail", "nextAttemptAt"),
    ("AttemptView", "createdAt"),
    ("Bucket", "start"),
    ("EndpointView", "createdAt"),
    ("EndpointView", "updatedAt"),
    ("RecoverIn", "since"),
    ("RecoverIn", "until"),
    ("TaskView", "since"),
    ("TaskView", "until"),
    ("TaskView", "createdAt"),
    ("TaskView", "updatedAt"),
    ("TaskView", "finishedAt"),
    ("EndpointView", "disabledAt"),
    ("ConfigView", "disabledAt"),
    ("OperationalWebhookView", "createdAt"),
    ("OperationalWebhookView", "updatedAt"),
    ("OperationalWebhookView", "disabledAt"),
]

REF = "#/components/schemas/"


def document(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", **overrides)
    schema: dict[str, Any] = create_app(settings, run_worker=False).openapi()
    return schema


def walk(node: Any) -> Any:
    """Every dict inside node, node included."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def refs_from(node: Any, schemas: dict[str, Any]) -> set[str]:
    """The names of every component schema node reaches, directly or through others."""
    found: set[str] = set()
    todo = [node]
    while todo:
        for child in walk(todo.pop()):
            name = child.get("$ref", "").removeprefix(REF)
            if name and name not in found:
                found.add(name)
                todo.append(schemas[name])
    return found


def test_every_operation_has_a_short_stable_id(tmp_path: Path) -> None:
    doc = document(tmp_path)
    ids = {
        (method.upper(), path): operation["operationId"]
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
    }
    assert ids == OPERATION_IDS


def test_every_field_an_answer_always_carries_is_required(tmp_path: Path) -> None:
    doc = document(tmp_path)
    schemas = doc["components"]["schemas"]
    answers: set[str] = set()
    for operations in doc["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    answers |= refs_from(response, schemas)
    answers -= {"EventName", "Window", "DisabledReason"}
    assert len(answers) == 32, sorted(answers)  # ResendResponse, TaskView, PublishBatchResult…
    optional = {
        f"{name}.{field}"
        for name in answers
        for field in schemas[name]["properties"]
        if field not in schemas[name].get("required", [])
    }
    assert optional == set()
    # Errors always carry success and error; fields only when a value was refused.
    assert schemas["ErrorBody"]["required"] == ["success", "error"]
    assert schemas["ErrorBody"]["properties"]["success"] == {"const": False, "title": "Success"}


def test_a_failed_test_answer_cannot_pass_for_a_success(tmp_path: Path) -> None:
    doc = document(tmp_path)
    schemas = doc["components"]["schemas"]
    for path in ("/api/webhooks/test", "/api/webhooks/endpoints/{endpoint_id}/test"):
        answer = doc["paths"][path]["post"]["responses"]["200"]["content"]
        union = answer["application/json"]["schema"]
        assert union["oneOf"] == [{"$ref": REF + "TestSuccess"}, {"$ref": REF + "TestFailure"}]
        assert union["discriminator"] == {
            "propertyName": "success",
            "mapping": {"true": REF + "TestSuccess", "false": REF + "TestFailure"},
        }
    success, failure = schemas["TestSuccess"], schemas["TestFailure"]
    # A bare const: beside `type: boolean`, openapi-python-client would drop it.
    assert success["properties"]["success"]["const"] is True
    assert failure["properties"]["success"]["const"] is False
    assert "type" not in success["properties"]["success"]
    bodies = {
        "success": {
            "success": True,
            "message": "Test webhook sent successfully",
            "statusCode": 200,
            "deliveryId": "d",
        },
        "failure": {
            "success": False,
            "error": "Failed to deliver test webhook",
            "details": "connect ECONNREFUSED 127.0.0.1:3000",
            "statusCode": None,
            "deliveryId": "d",
        },
    }
    valid = {
        (name, shape): validator(doc, shape).is_valid(body)
        for name, body in bodies.items()
        for shape in ("TestSuccess", "TestFailure")
    }
    assert valid == {
        ("success", "TestSuccess"): True,
        ("success", "TestFailure"): False,
        ("failure", "TestSuccess"): False,
        ("failure", "TestFailure"): True,
    }


def test_the_window_has_one_enum_with_named_members(tmp_path: Path) -> None:
    doc = document(tmp_path)
    enums = [node for node in walk(doc) if "24h" in node.get("enum", [])]
    assert enums == [doc["components"]["schemas"]["Window"]]
    assert enums[0]["enum"] == ["24h", "7d", "30d"]
    assert enums[0]["x-enum-varnames"] == ["HOURS_24", "DAYS_7", "DAYS_30"]
    parameters = doc["paths"]["/api/webhooks/stats/timeseries"]["get"]["parameters"]
    assert [p["name"] for p in parameters] == ["window", "endpointId"]
    window = parameters[0]
    assert window["schema"] == {"$ref": REF + "Window", "default": "7d"}
    answer = doc["components"]["schemas"]["TimeseriesResponse"]["properties"]["window"]
    assert answer == {"$ref": REF + "Window"}


def test_timestamps_are_date_times(tmp_path: Path) -> None:
    schemas = document(tmp_path)["components"]["schemas"]
    dated = sorted(
        (name, field)
        for name, schema in schemas.items()
        for field, prop in schema.get("properties", {}).items()
        if any(node.get("format") == "date-time" for node in walk(prop))
    )
    assert dated == sorted(TIMESTAMPS)
    for name, field in TIMESTAMPS:
        prop = schemas[name]["properties"][field]
        kinds = [(node.get("type"), node.get("format")) for node in [prop, *prop.get("anyOf", [])]]
        assert ("string", "date-time") in kinds, (name, field)


def test_event_names_are_the_configured_catalog(tmp_path: Path) -> None:
    for catalog in (list(DEFAULT_EVENTS), ["resume.parsed", "invoice.paid", "9lives"]):
        doc = document(tmp_path, events=catalog)
        schemas = doc["components"]["schemas"]
        assert schemas["EventName"]["enum"] == catalog
        assert schemas["LoggedEvent"]["enum"] == [*catalog, "webhook.test"]
        assert "x-hookline-catalog" not in json.dumps(doc)
        for body in ("ConfigIn", "EndpointIn", "EndpointPatch"):
            enabled = schemas[body]["properties"]["enabledEvents"]["anyOf"][0]
            assert enabled["items"] == {"$ref": REF + "EventName"}, body
        available = schemas["ConfigResponse"]["properties"]["availableEvents"]
        assert available["items"] == {"$ref": REF + "EventName"}
        logs = doc["paths"]["/api/webhooks/logs"]["get"]["parameters"]
        (event,) = [p for p in logs if p["name"] == "event"]
        assert event["schema"]["anyOf"] == [{"$ref": REF + "LoggedEvent"}, {"type": "null"}]


def test_publish_documents_each_events_data(tmp_path: Path) -> None:
    doc = document(tmp_path, events=["resume.parsed", "invoice.paid", "ats.check_failed"])
    schemas = doc["components"]["schemas"]
    publish = schemas["PublishIn"]
    assert publish["oneOf"] == [
        {"$ref": REF + "PublishResumeParsed"},
        {"$ref": REF + "PublishAtsCheckFailed"},
        {"$ref": REF + "PublishOtherEvent"},
    ]
    assert publish["discriminator"]["mapping"] == {
        "resume.parsed": REF + "PublishResumeParsed",
        "ats.check_failed": REF + "PublishAtsCheckFailed",
        "invoice.paid": REF + "PublishOtherEvent",
    }
    parsed = schemas["PublishResumeParsed"]["properties"]
    assert parsed["event"] == {"type": "string", "const": "resume.parsed"}
    assert parsed["data"] == {"$ref": REF + "ResumeParsedData"}
    assert schemas["ResumeParsedData"]["required"] == list(REQUIRED_FIELDS["resume.parsed"])
    assert schemas["PublishOtherEvent"]["properties"]["event"]["enum"] == ["invoice.paid"]
    assert "AtsCheckCompletedData" not in schemas  # not in this catalog


def validator(doc: dict[str, Any], name: str) -> Any:
    return jsonschema_rs.validator_for({**copy.deepcopy(doc), "$ref": REF + name})


PARSED = {"resumeId": "r1", "fileName": "cv.pdf", "parsedAt": "2024-11-14T10:05:00Z", "success": 1}

# (event, data): the documented schema and the app must agree on each.
PUBLISHED = [
    ("resume.parsed", PARSED),
    ("resume.parsed", {**PARSED, "extra": {"nested": [1, 2]}}),
    ("resume.parsed", {k: v for k, v in PARSED.items() if k != "fileName"}),
    ("resume.parsed", {}),
    ("ats.check_failed", {"resumeId": "r1", "error": "x", "failedAt": "t"}),
    ("ats.check_failed", PARSED),
    ("invoice.paid", {}),
    ("invoice.paid", {"anything": None}),
    ("resume.parse_failed", {"fileName": "a", "error": "b", "failedAt": "c"}),  # not configured
    ("webhook.test", {}),
]


async def test_the_publish_schema_accepts_what_the_app_accepts(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url, events=["resume.parsed", "invoice.paid", "ats.check_failed"]
    )
    async with running_api(settings, run_worker=False) as api:
        check = validator(api.app.openapi(), "PublishIn")
        user, admin = await api.user("publisher", admin=True)
        verdicts = []
        for event, data in PUBLISHED:
            body = {"userId": user.id, "event": event, "data": data}
            response = await api.client.post("/api/events", json=body, headers=admin)
            assert response.status_code in (202, 422), response.text
            verdicts.append((event, response.status_code == 202, check.is_valid(body)))
        assert [(e, app) for e, app, _ in verdicts] == [(e, doc) for e, _, doc in verdicts]
        assert [app for _, app, _ in verdicts] == [1, 1, 0, 0, 1, 0, 1, 1, 0, 0]


# A path of each route (path parameters filled in) and every method the app serves there.
ALLOW = {
    "/api/webhooks/config": "GET, POST, DELETE",
    "/api/webhooks/regenerate-secret": "POST",
    "/api/webhooks/test": "POST",
    "/api/webhooks/logs": "GET",
    "/api/webhooks/logs/c1": "GET",
    "/api/webhooks/logs/c1/resend": "POST",
    "/api/webhooks/stats": "GET",
    "/api/webhooks/stats/timeseries": "GET",
    "/api/webhooks/endpoints": "GET, POST",
    "/api/webhooks/endpoints/c1": "GET, PATCH, DELETE",
    "/api/webhooks/endpoints/c1/regenerate-secret": "POST",
    "/api/webhooks/endpoints/c1/test": "POST",
    "/api/webhooks/endpoints/c1/recover": "POST",
    "/api/webhooks/tasks": "GET",
    "/api/webhooks/tasks/c1": "GET",
    "/api/events": "POST",
    "/api/events/batch": "POST",
    "/api/admin/operational-webhooks": "GET, POST",
    "/api/admin/operational-webhooks/c1": "GET, PATCH, DELETE",
    "/api/admin/operational-logs": "GET",
    "/api/admin/operational-logs/c1": "GET",
    "/openapi.json": "GET, HEAD",
    "/docs": "GET",
    "/redoc": "GET",
    "/docs/assets/redoc.standalone.js": "GET",
    "/": "GET",
    "/dashboard": "GET",
    "/dashboard/static/app.js": "GET",
    "/healthz": "GET",
    "/readyz": "GET",
}


async def test_405_allows_every_method_served_at_the_path(database_url: str) -> None:
    async with running_api(make_settings(database_url), run_worker=False) as api:
        documented = {re.sub(r"\{[^}]+\}", "c1", path) for path in api.app.openapi()["paths"]}
        assert documented <= set(ALLOW)
        answers = {}
        for path, allow in ALLOW.items():
            unserved = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m not in allow)
            response = await api.client.request(unserved, path)
            assert response.status_code == 405, (unserved, path, response.text)
            assert response.json() == {"success": False, "error": "Method Not Allowed"}
            answers[path] = response.headers["allow"]
        assert answers == ALLOW

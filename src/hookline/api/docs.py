"""The API describing itself: the OpenAPI document, completed with this service's event catalog,
and the Swagger UI (/docs) and ReDoc (/redoc) pages, whose scripts and styles come from the
installed fastapi-offline package, so the docs work on a machine without internet."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from hookline.api.errors import ApiError
from hookline.api.schemas import CATALOG
from hookline.events import REQUIRED_FIELDS, TEST_EVENT, data_schema

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs/assets"
_ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
# ReDoc's sidebar shows Redocly's logo from their CDN. With an empty src the image fails at once
# and ReDoc hides it, so the page asks nothing of the internet (tests/e2e/test_api_docs.py).
_OFFLINE_EDITS = {
    "redoc.standalone.js": [(b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"', b'src:""')],
}
# Show the operation ids that generated clients name their functions after; no validator badge,
# which Swagger UI would fetch from validator.swagger.io.
_SWAGGER_PARAMETERS = {"displayOperationId": True, "validatorUrl": None}


def install(app: FastAPI, catalog: Sequence[str]) -> None:
    """Serve the docs pages and their assets, and complete the OpenAPI document with
    ``catalog``. Create ``app`` with ``docs_url=None, redoc_url=None``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(FastAPI.openapi(app), catalog)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=_SWAGGER_PARAMETERS,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in _ASSET_TYPES:
            raise ApiError(404, f"No docs asset named {name}")
        return Response(
            _asset(name),
            media_type=_ASSET_TYPES[name],
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )


@functools.cache
def _asset(name: str) -> bytes:
    content = (ASSETS / name).read_bytes()
    for old, new in _OFFLINE_EDITS.get(name, []):
        content = content.replace(old, new)
    return content


# --- the OpenAPI document -------------------------------------------------------------------

_REF = "#/components/schemas/"


def complete(document: dict[str, Any], catalog: Sequence[str]) -> dict[str, Any]:
    """Fill in what depends on the catalog: the EventName and LoggedEvent enums, in place of the
    schemas marked ``CATALOG``, and a variant of PublishIn per event with the data it needs."""
    schemas: dict[str, Any] = document["components"]["schemas"]
    schemas["EventName"] = {
        "type": "string",
        "enum": list(catalog),
        "title": "EventName",
        "description": "An event of this service's catalog (HOOKLINE_EVENTS).",
    }
    schemas["LoggedEvent"] = {
        "type": "string",
        "enum": list(dict.fromkeys([*catalog, TEST_EVENT])),
        "title": "LoggedEvent",
        "description": f"An event deliveries are logged under: the catalog's, or {TEST_EVENT}.",
    }
    _resolve_markers(document, {"events": "EventName", "logged": "LoggedEvent"})
    schemas["PublishIn"] = _publish_in(schemas, schemas["PublishIn"], catalog)
    return document


def _resolve_markers(node: Any, names: dict[str, str]) -> None:
    """Replace every schema marked ``CATALOG`` with a reference to the named enum."""
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        if isinstance(child, dict) and CATALOG in child:
            reference = _REF + names[child[CATALOG]]
            child.clear()
            child["$ref"] = reference
        else:
            _resolve_markers(child, names)


def _pascal(event: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", event))


def _publish_in(schemas: dict[str, Any], base: dict[str, Any], catalog: Sequence[str]) -> Any:
    """PublishIn as one variant per guide event (``event`` fixed, ``data`` with its fields) and
    one for the catalog's other events (any object); the app accepts exactly this."""
    variants: list[tuple[str, dict[str, Any]]] = []
    mapping: dict[str, str] = {}
    for event in catalog:
        if event not in REQUIRED_FIELDS:
            continue
        name = _pascal(event)
        schemas[f"{name}Data"] = {
            **data_schema(event),
            "title": f"{name}Data",
            "description": f"`data` of {event}: these fields, and any others.",
        }
        event_schema = {"type": "string", "const": event}
        variants.append((f"Publish{name}", _variant(base, event_schema, f"{name}Data")))
        mapping[event] = _REF + f"Publish{name}"
    others = [event for event in catalog if event not in REQUIRED_FIELDS]
    if others:
        variants.append(
            ("PublishOtherEvent", _variant(base, {"type": "string", "enum": others}, None))
        )
        mapping.update(dict.fromkeys(others, _REF + "PublishOtherEvent"))
    for name, variant in variants:
        schemas[name] = {**variant, "title": name}
    return {
        "title": "PublishIn",
        "description": "An event for a user. `data` carries the fields the guide lists for the "
        "event (more are fine); events added with HOOKLINE_EVENTS take any object.",
        "oneOf": [{"$ref": _REF + name} for name, _ in variants],
        "discriminator": {"propertyName": "event", "mapping": mapping},
    }


def _variant(base: dict[str, Any], event: dict[str, Any], data_name: str | None) -> dict[str, Any]:
    properties = dict(base["properties"])
    properties["event"] = event
    if data_name is not None:
        properties["data"] = {"$ref": _REF + data_name}
    return {**base, "properties": properties}

"""Every error the API returns has one JSON shape:
``{"success": false, "error": "<one line>", "fields": {"<name>": "<why>"}}`` (fields optional)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from hookline.api.schemas import Failed


class ErrorBody(BaseModel):
    """The error shape, for the schema (answers are built by error_response)."""

    success: Failed
    error: str
    fields: dict[str, str] = Field(
        default_factory=dict, description="Each offending field or parameter and why; 422 only."
    )


class ApiError(Exception):
    """Raise from a route to answer with ``status`` and the error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields
        self.headers = headers


def error_response(
    status: int,
    message: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"success": False, "error": message}
    if fields:
        body["fields"] = fields
    return JSONResponse(body, status_code=status, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    fields: dict[str, str] = {}
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        kind = err.get("type", "")
        if kind == "json_invalid":
            return error_response(400, "Request body is not valid JSON")
        if loc == ("body",) and kind in ("model_attributes_type", "dict_type", "missing"):
            return error_response(400, "Request body must be a JSON object")
        name = _field_name(loc)
        message = str(err.get("msg", "is invalid"))
        if kind == "extra_forbidden":
            message = "is not a known field"
        fields.setdefault(name, message)
    summary = "; ".join(f"{name}: {msg}" for name, msg in fields.items())
    return error_response(422, f"Invalid request: {summary}", fields)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method the app serves at the request's path, for a 405's ``Allow``: RFC 9110 wants
    them all, where Starlette names those of the first route with the path. Each method is asked
    of the router itself, so routes in included routers count too."""
    served = []
    for method in _METHODS:
        probe = {
            "type": "http",
            "method": method,
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "headers": [],
        }
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            served.append(method)
    return ", ".join(served)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the shape above."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.fields, exc.headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        content_type = request.headers.get("content-type", "")
        body_error = any(err.get("loc", ("",))[0] == "body" for err in exc.errors())
        if body_error and content_type and "json" not in content_type.lower():
            return error_response(
                415, "Send the request body as JSON, with Content-Type: application/json"
            )
        return _validation_error(exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405 and (allow := allowed_methods(request)):
            headers = {**(headers or {}), "Allow": allow}
        return error_response(exc.status_code, str(exc.detail), headers=headers)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)

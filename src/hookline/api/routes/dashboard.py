"""The dashboard: one static page that talks to the public JSON API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from hookline.api.errors import ApiError

STATIC = Path(__file__).resolve().parent.parent.parent / "dashboard" / "static"
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".html": "text/html",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/dashboard")


@router.get("/dashboard")
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_NO_CACHE)


@router.get("/dashboard/static/{name}")
async def asset(name: str) -> FileResponse:
    path = (STATIC / name).resolve()
    if path.parent != STATIC or not path.is_file() or path.suffix not in _TYPES:
        raise ApiError(404, f"No dashboard asset named {name}")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_NO_CACHE)


_NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

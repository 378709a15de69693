"""The API's vocabulary of dependencies: who is calling, and the objects routes use."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hookline.api.errors import ApiError
from hookline.config import Settings
from hookline.delivery.sender import Sender
from hookline.metrics import Metrics
from hookline.ssrf import TargetPolicy
from hookline.store import Store, User

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer hl_...`")

UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_sender(request: Request) -> Sender:
    sender: Sender = request.app.state.sender
    return sender


async def get_wake(request: Request) -> asyncio.Event:
    wake: asyncio.Event = request.app.state.wake
    return wake


async def get_policy(request: Request) -> TargetPolicy:
    policy: TargetPolicy = request.app.state.policy
    return policy


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SenderDep = Annotated[Sender, Depends(get_sender)]
WakeDep = Annotated[asyncio.Event, Depends(get_wake)]
PolicyDep = Annotated[TargetPolicy, Depends(get_policy)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def current_user(
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The owner of the request's bearer token; 401 for a missing, malformed or dead one."""
    header = request.headers.get("Authorization")
    if not header:
        raise ApiError(
            401, "Missing Authorization header: send 'Bearer <token>'", headers=UNAUTHORIZED
        )
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise ApiError(
            401, "Malformed Authorization header: expected 'Bearer <token>'", headers=UNAUTHORIZED
        )
    user = await store.authenticate(credentials.credentials)
    if user is None:
        raise ApiError(401, "Invalid or revoked token", headers=UNAUTHORIZED)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def current_admin(user: CurrentUser) -> User:
    """Like current_user, but only admin tokens (the publishing service) pass; 403 otherwise."""
    if not user.is_admin:
        raise ApiError(403, "This endpoint needs an admin token")
    return user


CurrentAdmin = Annotated[User, Depends(current_admin)]

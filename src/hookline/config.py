"""One Settings object: every knob of hookline, read from HOOKLINE_* environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hookline.events import DEFAULT_EVENTS

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/hookline.db"

# The URL schemes people paste, and the async driver each one runs on.
_DATABASE_SCHEMES = {
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "sqlite": "sqlite+aiosqlite",
}
_DATABASE_URL_FORMS = (
    "use postgresql://USER:PASSWORD@HOST:PORT/DB (postgres:// and postgresql+asyncpg:// too) "
    "or sqlite:///PATH (sqlite+aiosqlite:///PATH too)"
)


def _async_database_url(value: str) -> str:
    """``value`` with its scheme mapped to the async driver hookline runs on; ValueError for
    a database or driver hookline does not run on. The rest of the URL is kept as given."""
    scheme, sep, rest = value.strip().partition("://")
    driver = _DATABASE_SCHEMES.get(scheme.lower())
    if not sep or driver is None:
        # Name the scheme only: the URL may hold a password.
        shown = f"'{scheme}://'" if sep else "a URL without a scheme"
        raise ValueError(f"hookline cannot use {shown}: {_DATABASE_URL_FORMS}")
    if driver == "sqlite+aiosqlite" and not rest.startswith("/"):
        raise ValueError(f"a SQLite URL needs three slashes before its path: {_DATABASE_URL_FORMS}")
    return f"{driver}://{rest}"


def _split_list(value: object) -> object:
    """Accept a comma-separated string (or a JSON list) for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


#: Connections a worker uses at once: claiming, recording, maintenance, one to spare.
WORKER_DB_CONNECTIONS = 4


def _is_webhook_secret(value: str) -> bool:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 24 to 64 bytes."""
    import base64
    import binascii

    if not value.startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(key) <= 64


#: The guide's retry schedule: attempts 2, 3 and 4 follow after 1, 5 and 15 seconds.
DEFAULT_RETRY_DELAYS_S: tuple[float, ...] = (1.0, 5.0, 15.0)


class Settings(BaseSettings):
    """Everything configurable, with the guide's values as defaults."""

    model_config = SettingsConfigDict(env_prefix="HOOKLINE_", extra="ignore")

    env: Literal["development", "production"] = "production"
    database_url: str = DEFAULT_DATABASE_URL
    # Database connections each process keeps open, and never more: at least the API's
    # max_concurrent_requests plus the worker's few (db_pool_connections), so that steady load
    # opens no new connection.
    db_pool_size: int = Field(default=0, ge=0)
    # The HTTP API's admission limit: requests in progress at once. Others wait for a slot up
    # to request_queue_timeout_s, then get 503 with Retry-After (no latency runs away).
    max_concurrent_requests: int = Field(default=16, ge=1)
    request_queue_timeout_s: float = Field(default=0.25, gt=0)
    # PostgreSQL: a statement waiting longer than this for a lock gives up (the API answers
    # 503); 0 waits for ever.
    db_lock_timeout_s: float = Field(default=0.5, ge=0)
    # Log lines: readable text, or one JSON object per line for a log shipper.
    log_format: Literal["text", "json"] = "text"

    # The event catalog users may subscribe to; the guide's seven by default.
    events: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_EVENTS))

    # Delivery: the guide's limits.
    user_agent: str = "RoleReady-Webhook/1.0"
    timeout_s: float = Field(default=10.0, gt=0)
    retry_delays_s: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_DELAYS_S)
    )
    retry_after_cap_s: float = Field(default=300.0, ge=0)
    max_response_bytes: int = Field(default=64 * 1024, gt=0)
    response_excerpt_chars: int = Field(default=1024, ge=0)

    # Worker.
    worker_concurrency: int = Field(default=64, ge=1)
    worker_batch_size: int = Field(default=100, ge=1)
    lease_s: float = Field(default=60.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    retention_days: float = Field(default=90.0, gt=0)
    purge_interval_s: float = Field(default=3600.0, gt=0)
    # A recovery requeues at most this many failed deliveries per second (per task).
    recovery_rate: float = Field(default=10.0, gt=0)

    # Endpoints: how many one user may have.
    max_endpoints_per_user: int = Field(default=20, ge=1)

    # Auto-disable (reason "failing"): an endpoint whose every delivery has failed for this
    # long, or that failed this many deliveries in a row, is switched off; 0 turns a rule off.
    # One success resets both. A 410 Gone answer switches it off at once (reason "gone").
    auto_disable_after_s: float = Field(default=5 * 24 * 3600.0, ge=0)
    auto_disable_after_failures: int = Field(default=0, ge=0)
    # An endpoint.failing notice goes out when a streak reaches this many failed deliveries
    # (at most once a day per endpoint); 0: never.
    failing_notice_after: int = Field(default=5, ge=0)
    # The operational webhook set by settings (the admin API can add others): its URL and
    # its whsec_ secret, both or neither.
    operational_webhook_url: str | None = None
    operational_webhook_secret: str | None = None

    # Security.
    secret_grace_s: float = Field(default=24 * 3600.0, ge=0)
    max_old_secrets: int = Field(default=3, ge=1)
    secret_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allow_targets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    test_rate_per_minute: int = Field(default=10, ge=1)
    max_config_body_bytes: int = Field(default=64 * 1024, gt=0)
    max_event_data_bytes: int = Field(default=256 * 1024, gt=0)
    # POST /api/events/batch: the most its body may weigh (each event's data is held to
    # max_event_data_bytes besides).
    max_batch_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # The HTTP server: request line plus headers, their count, and the time for a whole request.
    max_header_bytes: int = Field(default=16 * 1024, gt=0)
    max_headers: int = Field(default=100, ge=1)
    request_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return _async_database_url(value)

    @field_validator("events", "retry_delays_s", "secret_keys", "allow_targets", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("retry_delays_s")
    @classmethod
    def _non_negative_delays(cls, value: list[float]) -> list[float]:
        if any(delay < 0 for delay in value):
            raise ValueError("retry delays must not be negative")
        return value

    @field_validator("allow_targets")
    @classmethod
    def _valid_allow_list(cls, value: list[str]) -> list[str]:
        from hookline.ssrf import TargetPolicy

        TargetPolicy.from_settings(False, value)  # raises ValueError naming the bad entry
        return value

    @model_validator(mode="after")
    def _lease_outlives_attempt(self) -> Settings:
        if self.lease_s <= self.timeout_s:
            raise ValueError("HOOKLINE_LEASE_S must be longer than HOOKLINE_TIMEOUT_S")
        return self

    @model_validator(mode="after")
    def _operational_webhook_pair(self) -> Settings:
        url, secret = self.operational_webhook_url, self.operational_webhook_secret
        if (url is None) != (secret is None):
            raise ValueError(
                "set HOOKLINE_OPERATIONAL_WEBHOOK_URL and HOOKLINE_OPERATIONAL_WEBHOOK_SECRET "
                "together, or neither"
            )
        if secret is not None and not _is_webhook_secret(secret):
            raise ValueError(
                "HOOKLINE_OPERATIONAL_WEBHOOK_SECRET must be whsec_ followed by base64 of "
                "24 to 64 bytes"
            )
        return self

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def db_pool_connections(self) -> int:
        """The connection pool's size: ``db_pool_size``, but never fewer than the API may use
        at once (``max_concurrent_requests``) plus the worker's own."""
        return max(self.db_pool_size, self.max_concurrent_requests + WORKER_DB_CONNECTIONS)

    @property
    def max_attempts(self) -> int:
        """The first attempt plus one per retry delay."""
        return 1 + len(self.retry_delays_s)

    @cached_property
    def sqlite_path(self) -> Path | None:
        """The database file when the store is SQLite, else None."""
        prefix = "sqlite+aiosqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        return Path(self.database_url.removeprefix(prefix))

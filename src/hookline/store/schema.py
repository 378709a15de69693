"""Tables. Every timestamp is stored as microseconds since the Unix epoch (BIGINT), which
sorts, compares and buckets the same way on SQLite and PostgreSQL."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

from hookline.timeutil import from_micros, to_micros

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Timestamp(TypeDecorator[datetime]):
    """An aware UTC datetime stored as epoch microseconds."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        return None if value is None else to_micros(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else from_micros(int(value))


class Status(enum.StrEnum):
    """Where a delivery is in its life."""

    PENDING = "pending"  #: waiting for its next attempt (next_attempt_at)
    IN_FLIGHT = "in_flight"  #: leased by a worker until lease_until
    SUCCEEDED = "succeeded"  #: a 2xx came back; final
    FAILED = "failed"  #: every attempt failed, or the target is blocked; final


class Trigger(enum.StrEnum):
    """What set off an attempt."""

    SCHEDULED = "scheduled"  #: the queue: the first attempt, a retry, a reclaimed lease
    MANUAL = "manual"  #: a person resent the delivery (POST /api/webhooks/logs/{id}/resend)
    RECOVERY = "recovery"  #: a recovery of an endpoint's failed deliveries


class DisabledReason(enum.StrEnum):
    """Why an endpoint is disabled."""

    GONE = "gone"  #: its receiver answered 410 Gone
    FAILING = "failing"  #: it kept failing past the auto-disable rule
    USER = "user"  #: its user (or an admin) switched it off


class TaskStatus(enum.StrEnum):
    """Where a background task is."""

    QUEUED = "queued"  #: waiting for a worker to take it
    RUNNING = "running"  #: a worker holds its lease and is working through it
    SUCCEEDED = "succeeded"  #: finished; final
    FAILED = "failed"  #: stopped with an error (the task's error says why); final


users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", Timestamp, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp, nullable=True),
    # Written by authentication at most once a minute per token (users.TOUCH_EVERY).
    Column("last_used_at", Timestamp, nullable=True),
)

#: The slot of a user's primary endpoint: the one the guide's /api/webhooks/config manages.
#: Every other endpoint's slot is its own id, so (user_id, slot) stays unique.
PRIMARY_SLOT = "default"

# A user's webhook endpoints, each with its own URL, secret, event filter and switch.
endpoints = Table(
    "endpoints",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("slot", String(64), nullable=False, server_default="default"),
    Column("url", String(2048), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("enabled_events", Text, nullable=False),  # JSON list of event names
    Column("secret_enc", Text, nullable=False),  # Fernet token of the current secret
    Column("old_secrets", Text, nullable=False, server_default="[]"),  # JSON [{enc, until}]
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("headers", Text, nullable=False, server_default="{}"),  # JSON {name: value}
    # At most rate_limit deliveries per second (none when NULL), counted per calendar second
    # across every worker: rate_count deliveries started in the second rate_window.
    Column("rate_limit", Integer, nullable=True),
    Column("rate_window", BigInteger, nullable=False, server_default="0"),
    Column("rate_count", Integer, nullable=False, server_default="0"),
    # Why the endpoint is off (a DisabledReason; NULL while enabled) and since when.
    Column("disabled_at", Timestamp, nullable=True),
    Column("disabled_reason", String(16), nullable=True),
    # The current failure streak: consecutive failed deliveries, when the first of them
    # finished, and when the last endpoint.failing notice about it was sent. A success
    # resets all three.
    Column("failure_streak", Integer, nullable=False, server_default="0"),
    Column("failing_since", Timestamp, nullable=True),
    Column("failing_notified_at", Timestamp, nullable=True),
    UniqueConstraint("user_id", "slot"),
)

# A published event's data, stored once however many endpoints it goes to; each delivery
# builds its body from it (the same bytes on every attempt).
messages = Table(
    "messages",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), nullable=False),
    Column("event", String(100), nullable=False),
    Column("data", LargeBinary, nullable=False),  # the data object as compact JSON bytes
    Column("created_at", Timestamp, nullable=False),  # the body's "timestamp"
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("delivery_id", String(36), nullable=False, unique=True),
    Column("user_id", String(32), nullable=False),
    Column(
        "endpoint_id",
        String(32),
        ForeignKey("endpoints.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("event", String(100), nullable=False),
    Column("url", String(2048), nullable=False),
    # The whole body for deliveries made before messages existed; empty when message_id
    # names the event data the body is built from.
    Column("body", LargeBinary, nullable=False),
    Column("message_id", String(32), nullable=True),  # messages.id; purge removes orphans
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("next_attempt_at", Timestamp, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Timestamp, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", Timestamp, nullable=True),
    Column("finished_at", Timestamp, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    # What sets off its next attempt (a Trigger); back to "scheduled" once it is recorded.
    Column("next_trigger", String(16), nullable=False, server_default="scheduled"),
    # The log page: a user's rows in (created_at, id) order, with or without an event filter.
    Index("ix_deliveries_user_created", "user_id", "created_at", "id"),
    Index("ix_deliveries_user_event_created", "user_id", "event", "created_at", "id"),
    Index("ix_deliveries_user_endpoint_created", "user_id", "endpoint_id", "created_at", "id"),
    Index("ix_deliveries_message", "message_id"),
    # Totals count a user's open deliveries only; purging reads finished rows by age.
    Index(
        "ix_deliveries_open",
        "user_id",
        "event",
        postgresql_where=text("status IN ('pending', 'in_flight')"),
        sqlite_where=text("status IN ('pending', 'in_flight')"),
    ),
    Index(
        "ix_deliveries_finished_created",
        "created_at",
        postgresql_where=text("status IN ('succeeded', 'failed')"),
        sqlite_where=text("status IN ('succeeded', 'failed')"),
    ),
    # Claiming reads only due pending rows: O(batch) however long the log grows. Queries
    # spell the status as a literal (queue.status_is) so planners can use these indexes.
    Index(
        "ix_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
    Index(
        "ix_deliveries_lease",
        "lease_until",
        postgresql_where=text("status = 'in_flight'"),
        sqlite_where=text("status = 'in_flight'"),
    ),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "delivery_pk",
        String(32),
        ForeignKey("deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("response_excerpt", Text, nullable=True),
    Column("trigger", String(16), nullable=False, server_default="scheduled"),  # a Trigger
    # The headers hookline sent, as a JSON object (NULL for attempts made before 0006, and
    # for attempts that sent nothing).
    Column("request_headers", Text, nullable=True),
    Index("ix_delivery_attempts_delivery", "delivery_pk", "attempt"),
)

# Counters of finished deliveries, kept in the transaction that finishes them, so stats and
# log totals never scan the log.
delivery_stats = Table(
    "delivery_stats",
    metadata,
    Column("user_id", String(32), primary_key=True),
    # "" for deliveries whose endpoint was deleted before they finished.
    Column("endpoint_id", String(32), primary_key=True),
    Column("event", String(100), primary_key=True),
    Column("successful", BigInteger, nullable=False, default=0),
    Column("failed", BigInteger, nullable=False, default=0),
    Column("attempts_sum", BigInteger, nullable=False, default=0),
)

# Background work a user asked for (a recovery of an endpoint's failed deliveries in the
# window [since, until)), carried out by any worker process: the lease says which one holds
# it; the cursor (created_at, id) says how far it has walked, oldest first.
tasks = Table(
    "tasks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column(
        "endpoint_id",
        String(32),
        ForeignKey("endpoints.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("kind", String(16), nullable=False),  # "recover"
    Column("status", String(16), nullable=False),  # a TaskStatus
    Column("since", Timestamp, nullable=False),
    Column("until", Timestamp, nullable=False),
    Column("total", Integer, nullable=False, server_default="0"),
    Column("done", Integer, nullable=False, server_default="0"),
    Column("cursor_created_at", BigInteger, nullable=True),
    Column("cursor_id", String(32), nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Timestamp, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp, nullable=True),
    Index("ix_tasks_user_created", "user_id", "created_at"),
    Index(
        "ix_tasks_open",
        "created_at",
        postgresql_where=text("status IN ('queued', 'running')"),
        sqlite_where=text("status IN ('queued', 'running')"),
    ),
)

# Idempotency keys a publisher sent with events it published (POST /api/events's
# Idempotency-Key, a batch item's idempotencyKey, hookline.publish's idempotency_key): a retry
# with the same key and the same request answers ``result`` again and creates nothing. Keys
# belong to their publisher (the admin user whose token published; "" for the Python API)
# and live 24 hours; the worker's purge pass deletes them after that.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("publisher", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),  # SHA-256 of userId, event and data
    # JSON {"deliveryIds": [...], "unsent": <Unsent or null>}; NULL only inside the
    # transaction that claimed the key and is publishing its event.
    Column("result", Text, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

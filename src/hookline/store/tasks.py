"""Task statements: background work a user asked for, carried out by whichever worker process
holds the task's lease. The one kind so far is a recovery: requeue an endpoint's failed
deliveries created in [since, until), oldest first, each as one more attempt (trigger
``recovery``), the way a resend does.

A recovery works on the deliveries that had failed when it was accepted (``finished_at`` at
or before the task's ``created_at``): ``total`` counts them then. It walks them in
(created_at, id) order; each step requeues the next few and moves the cursor past them in one
transaction, guarded by the lease, so a worker that dies, or loses its lease to another,
never has a delivery requeued twice. A delivery resent meanwhile is no longer among them; the
walk passes it by, and ``done`` reaches ``total`` when the walk ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline import ids
from hookline.store.db import Database
from hookline.store.queue import NOTIFY_CHANNEL, Requeued, requeue_sync, status_is
from hookline.store.schema import (
    Status,
    TaskStatus,
    Timestamp,
    Trigger,
    deliveries,
    endpoints,
    tasks,
)
from hookline.timeutil import from_micros, to_micros

RECOVER = "recover"  #: the kind of a recovery task

ENDPOINT_DELETED = "the endpoint was deleted; nothing left to send to"
ENDPOINT_DISABLED = (
    "the endpoint was disabled; enable it, then start a new recovery for what is still failed"
)


class EndpointDisabled(ValueError):
    """The endpoint to recover is switched off: nothing would be sent."""


@dataclass(frozen=True)
class TaskRow:
    """One task as stored."""

    id: str
    user_id: str
    endpoint_id: str | None  #: None once the endpoint was deleted
    kind: str
    status: TaskStatus
    since: datetime
    until: datetime
    total: int
    done: int
    cursor_created_at: int | None  #: epoch microseconds of the last delivery walked past
    cursor_id: str | None
    lease_owner: str | None
    lease_until: datetime | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def final(self) -> bool:
        return self.status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED)


def _task(row: Any) -> TaskRow:
    values = dict(row._mapping)
    return TaskRow(**{**values, "status": TaskStatus(values["status"])})


def _task_status_is(*wanted: TaskStatus) -> ColumnElement[bool]:
    """``tasks.status`` in ``wanted`` as SQL literals, so planners can use ``ix_tasks_open``."""
    literals = [literal_column(f"'{status.value}'", String) for status in wanted]
    return tasks.c.status.in_(literals)


OPEN = (TaskStatus.QUEUED, TaskStatus.RUNNING)

# The deliveries a recovery works on: failed when it was accepted, created in its window.
_MATCHING = and_(
    deliveries.c.user_id == bindparam("b_user"),
    deliveries.c.endpoint_id == bindparam("b_endpoint"),
    status_is(Status.FAILED),
    deliveries.c.created_at >= bindparam("b_since", type_=Timestamp()),
    deliveries.c.created_at < bindparam("b_until", type_=Timestamp()),
    deliveries.c.finished_at <= bindparam("b_accepted", type_=Timestamp()),
)

_COUNT_MATCHING = select(func.count()).select_from(deliveries).where(_MATCHING)

# The next deliveries past the cursor, oldest first.
_NEXT = (
    select(deliveries.c.id, deliveries.c.created_at)
    .where(
        _MATCHING,
        or_(
            deliveries.c.created_at > bindparam("b_cursor_at", type_=Timestamp()),
            and_(
                deliveries.c.created_at == bindparam("b_cursor_at", type_=Timestamp()),
                deliveries.c.id > bindparam("b_cursor_id"),
            ),
        ),
    )
    .order_by(deliveries.c.created_at, deliveries.c.id)
    .limit(bindparam("b_limit"))
)

# A task waiting for a worker: queued, or running under a lease that ran out.
_WAITING = and_(
    _task_status_is(*OPEN),
    or_(
        tasks.c.status == TaskStatus.QUEUED.value,
        tasks.c.lease_until < bindparam("b_now", type_=Timestamp()),
    ),
)

# Lease the oldest waiting task.
_TAKE = (
    update(tasks)
    .where(
        tasks.c.id
        == (
            select(tasks.c.id)
            .where(_WAITING)
            .order_by(tasks.c.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite's writer lock serialises
            .scalar_subquery()
        )
    )
    .values(
        status=TaskStatus.RUNNING.value,
        lease_owner=bindparam("b_worker"),
        lease_until=bindparam("b_lease_until", type_=Timestamp()),
        updated_at=bindparam("b_now", type_=Timestamp()),
    )
    .returning(*tasks.c)
)

_ANY_TO_TAKE = select(tasks.c.id).where(_WAITING).limit(1)


def _held(task_id: str, worker: str) -> ColumnElement[bool]:
    """The task is running under ``worker``'s lease."""
    return and_(
        tasks.c.id == task_id,
        tasks.c.status == TaskStatus.RUNNING.value,
        tasks.c.lease_owner == worker,
    )


_NOTIFY = text("SELECT pg_notify(:channel, '')")


# --- asked for by users ------------------------------------------------------------------


async def insert_recovery(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    since: datetime,
    until: datetime,
    now: datetime,
) -> TaskRow:
    """A queued recovery of the endpoint's deliveries failed by ``now`` in [since, until),
    with ``total`` counted."""
    total = (
        await conn.execute(
            _COUNT_MATCHING,
            {
                "b_user": user_id,
                "b_endpoint": endpoint_id,
                "b_since": since,
                "b_until": until,
                "b_accepted": now,
            },
        )
    ).scalar_one()
    row = (
        await conn.execute(
            insert(tasks)
            .values(
                id=ids.new_id(),
                user_id=user_id,
                endpoint_id=endpoint_id,
                kind=RECOVER,
                status=TaskStatus.QUEUED.value,
                since=since,
                until=until,
                total=total,
                done=0,
                created_at=now,
                updated_at=now,
            )
            .returning(*tasks.c)
        )
    ).one()
    if conn.dialect.name == "postgresql":  # wake a worker in any process (see Recovery)
        await conn.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL})
    return _task(row)


async def get(conn: AsyncConnection, user_id: str, task_id: str) -> TaskRow | None:
    """One task of a user."""
    row = (
        await conn.execute(select(tasks).where(tasks.c.id == task_id, tasks.c.user_id == user_id))
    ).first()
    return None if row is None else _task(row)


async def of_user(
    conn: AsyncConnection, user_id: str, endpoint_id: str | None, limit: int
) -> list[TaskRow]:
    """A user's tasks (of one endpoint, or all), newest first."""
    query = select(tasks).where(tasks.c.user_id == user_id)
    if endpoint_id is not None:
        query = query.where(tasks.c.endpoint_id == endpoint_id)
    query = query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit)
    return [_task(row) for row in await conn.execute(query)]


# --- carried out by workers ----------------------------------------------------------------


async def any_to_take(db: Database, now: datetime) -> bool:
    """Whether some task waits for a worker (a cheap read before the write that takes it)."""
    return bool(await db.read_rows(_ANY_TO_TAKE, {"b_now": now}))


def take_sync(
    conn: Connection, worker: str, now: datetime, lease_until: datetime
) -> TaskRow | None:
    """Lease the oldest waiting task (queued, or its lease ran out) to ``worker``."""
    params = {"b_worker": worker, "b_now": now, "b_lease_until": lease_until}
    row = conn.execute(_TAKE, params).first()
    return None if row is None else _task(row)


def renew_sync(conn: Connection, task_id: str, worker: str, now: datetime, until: datetime) -> bool:
    """Extend ``worker``'s lease on a task; False when it no longer holds it."""
    statement = (
        update(tasks).where(_held(task_id, worker)).values(lease_until=until, updated_at=now)
    )
    return conn.execute(statement).rowcount == 1


def release_sync(conn: Connection, task_id: str, worker: str, now: datetime) -> bool:
    """Give a task back, queued, for any worker to take at once (a worker stopping)."""
    statement = (
        update(tasks)
        .where(_held(task_id, worker))
        .values(status=TaskStatus.QUEUED.value, lease_owner=None, lease_until=None, updated_at=now)
    )
    released = conn.execute(statement).rowcount == 1
    if released and conn.dialect.name == "postgresql":  # another worker takes it at once
        conn.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL})
    return released


@dataclass(frozen=True)
class Step:
    """What one step of a recovery did."""

    task: TaskRow | None  #: the task after the step; None when the worker lost its lease
    requeued: int  #: deliveries made pending by this step


def recover_step_sync(
    conn: Connection, task_id: str, worker: str, now: datetime, lease_until: datetime, limit: int
) -> Step:
    """Requeue the next ``limit`` deliveries of a recovery ``worker`` holds and move its
    cursor past them, renewing the lease; or end the task (succeeded when nothing is left,
    failed when its endpoint is gone or disabled). One transaction: the requeues and the
    cursor commit together, or neither does."""
    renewed = conn.execute(
        update(tasks)
        .where(_held(task_id, worker))
        .values(lease_until=lease_until, updated_at=now)
        .returning(*tasks.c)
    ).first()
    if renewed is None:
        return Step(None, 0)
    task = _task(renewed)
    if task.endpoint_id is None:
        return Step(_finish(conn, task, now, ENDPOINT_DELETED), 0)
    enabled = conn.execute(
        select(endpoints.c.enabled).where(endpoints.c.id == task.endpoint_id)
    ).scalar()
    if enabled is None:
        return Step(_finish(conn, task, now, ENDPOINT_DELETED), 0)
    if not enabled:
        return Step(_finish(conn, task, now, ENDPOINT_DISABLED), 0)
    rows = conn.execute(
        _NEXT,
        {
            "b_user": task.user_id,
            "b_endpoint": task.endpoint_id,
            "b_since": task.since,
            "b_until": task.until,
            "b_accepted": task.created_at,
            "b_cursor_at": (
                task.since
                if task.cursor_created_at is None
                else from_micros(task.cursor_created_at)
            ),
            "b_cursor_id": task.cursor_id or "",
            "b_limit": limit,
        },
    ).all()
    if not rows:
        return Step(_finish(conn, task, now, None), 0)
    # A delivery resent meanwhile is no longer failed: the walk never meets it, and done
    # makes up for it when the walk ends. One resent between the read and its requeue (which
    # checks again, under a row lock) is passed by, and counts as done now.
    requeued = sum(
        requeue_sync(conn, task.user_id, row.id, now, Trigger.RECOVERY) is Requeued.REQUEUED
        for row in rows
    )
    last = rows[-1]
    moved = conn.execute(
        update(tasks)
        .where(tasks.c.id == task.id)
        .values(
            done=min(task.total, task.done + len(rows)),
            cursor_created_at=to_micros(last.created_at),
            cursor_id=last.id,
            updated_at=now,
        )
        .returning(*tasks.c)
    ).one()
    if requeued and conn.dialect.name == "postgresql":  # wake the workers, as an insert does
        conn.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL})
    return Step(_task(moved), requeued)


def _finish(conn: Connection, task: TaskRow, now: datetime, error: str | None) -> TaskRow:
    """End a task: succeeded (every delivery walked: done is total) or failed with ``error``."""
    values: dict[str, Any] = {
        "status": (TaskStatus.FAILED if error else TaskStatus.SUCCEEDED).value,
        "error": error,
        "lease_owner": None,
        "lease_until": None,
        "updated_at": now,
        "finished_at": now,
    }
    if error is None:
        values["done"] = tasks.c.total
    statement = update(tasks).where(tasks.c.id == task.id).values(**values)
    return _task(conn.execute(statement.returning(*tasks.c)).one())

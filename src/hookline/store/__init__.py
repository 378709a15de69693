"""The store: durable state behind one facade. Transactions and secret encryption live here;
the statements live in modules by subject (``users``, ``endpoints``, ``views``) and in the
queue, whose implementation (``queue_postgres`` or ``queue_sqlite``) is chosen here, once."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from hookline import ids
from hookline.config import Settings
from hookline.crypto import SecretBox, load_box
from hookline.events import TEST_EVENT
from hookline.payload import dumps
from hookline.store import endpoints as endpoint_sql
from hookline.store import idempotency, operational, users, views
from hookline.store import tasks as task_sql
from hookline.store.coalesce import GroupCommit
from hookline.store.db import Database
from hookline.store.endpoints import EndpointFields, EndpointRow
from hookline.store.listen import Listener
from hookline.store.queue import (
    AttemptRecord,
    Claimed,
    EndpointRules,
    Enqueued,
    NewEvent,
    Queue,
    Requeued,
    Stop,
    Unsent,
    delivery_row,
    insert_delivery_sync,
    insert_message_sync,
)
from hookline.store.queue_postgres import PostgresQueue
from hookline.store.queue_sqlite import SqliteQueue
from hookline.store.schema import DisabledReason, Status, TaskStatus, Trigger
from hookline.store.tasks import EndpointDisabled, TaskRow
from hookline.store.users import TokenListing, User, UserListing
from hookline.store.views import Counts, LogDetailRow, LogRow
from hookline.timeutil import utcnow

__all__ = [
    "AttemptRecord",
    "Claimed",
    "Counts",
    "EndpointDisabled",
    "EndpointFields",
    "EndpointRow",
    "Enqueued",
    "Job",
    "LogDetailRow",
    "LogRow",
    "NotFound",
    "Requeued",
    "Status",
    "Store",
    "TaskRow",
    "TaskStatus",
    "TokenListing",
    "TooMany",
    "Trigger",
    "Unsent",
    "User",
    "UserListing",
]

log = logging.getLogger("hookline.store")

T = TypeVar("T")

#: The most single publishes stored in one statement, and how many such statements may run at
#: once on PostgreSQL (SQLite has one writer).
PUBLISH_GROUP_MAX = 500
PUBLISH_GROUPS_RUNNING_POSTGRES = 2


class NotFound(LookupError):
    """The row an operation needs does not exist."""


class TooMany(ValueError):
    """A user reached a cap (endpoints per user)."""


@dataclass(frozen=True)
class Job:
    """A claimed delivery with what its attempt needs: the target URL, signing secrets and
    the endpoint's static headers."""

    delivery: Claimed
    url: str | None  #: None when the endpoint was deleted after the event was accepted
    secrets: list[str]  #: newest first
    enabled: bool = True  #: False when the endpoint was switched off: the worker sends nothing
    headers: Mapping[str, str] = field(default_factory=dict)


class Store:
    """Everything hookline keeps, for one database."""

    def __init__(self, settings: Settings, box: SecretBox | None = None) -> None:
        self.settings = settings
        self._box = box
        self.db = Database(
            settings.database_url,
            settings.db_pool_connections,
            pool_timeout_s=settings.request_queue_timeout_s,
            lock_timeout_s=settings.db_lock_timeout_s,
        )
        rules = EndpointRules(
            disable_after_s=settings.auto_disable_after_s,
            disable_after_failures=settings.auto_disable_after_failures,
            notice_after=settings.failing_notice_after,
            notice_attempts=settings.max_attempts,
        )
        self.queue: Queue = (
            SqliteQueue(self.db, rules) if self.db.sqlite else PostgresQueue(self.db, rules)
        )
        self._opened: dict[str, str] = {}  # ciphertext -> secret, so claims skip Fernet
        # Called when this process queues a task or gives one back (watch_tasks).
        self._task_watchers: list[Callable[[], None]] = []
        # token id -> time.monotonic() of this process's last write of its last_used_at, so
        # a burst of requests with one token writes once, not once per request in flight.
        self._touched: dict[str, float] = {}
        # How a request's token is found without the pool (users.TokenCache and
        # users.SqliteTokenReader); PostgreSQL's cache is trusted while its listener listens.
        self._token_listener: Listener | None = None
        self._token_listener_started = False
        self._token_cache = users.TokenCache(
            lambda: self._token_listener is not None and self._token_listener.listening
        )
        sqlite_path = make_url(settings.database_url).database if self.db.sqlite else None
        self._token_reader = (
            users.SqliteTokenReader(sqlite_path)
            if sqlite_path and sqlite_path != ":memory:"
            else None
        )
        # Events published one at a time while another publish is being stored are stored
        # together, in the next statement (SQLite: its one writer; PostgreSQL: a few at once).
        self._publishes: GroupCommit[NewEvent, Enqueued] = GroupCommit(
            self._enqueue_many,
            max_batch=PUBLISH_GROUP_MAX,
            max_running=1 if self.db.sqlite else PUBLISH_GROUPS_RUNNING_POSTGRES,
        )
        # The same for single publishes under idempotency keys, one transaction per group.
        self._keyed_publishes: GroupCommit[
            tuple[NewEvent, idempotency.Keyed | None], Enqueued | idempotency.KeyConflict
        ] = GroupCommit(
            self._publish_keyed,
            max_batch=PUBLISH_GROUP_MAX,
            max_running=1 if self.db.sqlite else PUBLISH_GROUPS_RUNNING_POSTGRES,
        )
        self._operational_synced = False  # sync_operational_settings has run

    @property
    def box(self) -> SecretBox:
        """The secret encryption keys, loaded when first needed."""
        if self._box is None:
            self._box = load_box(self.settings)
        return self._box

    async def close(self) -> None:
        if self._token_listener is not None:
            await self._token_listener.stop()
            self._token_listener = None
        if self._token_reader is not None:
            self._token_reader.close()
        await self.db.dispose()

    # --- users and tokens ---------------------------------------------------------------

    async def create_user(self, name: str, is_admin: bool) -> tuple[User, str, str]:
        """A new user and its first token: (user, token id, token)."""
        async with self.db.write() as conn:
            now = utcnow()
            user = await users.insert_user(conn, name, is_admin, now)
            token_id, token = await users.insert_token(conn, user.id, now)
        return user, token_id, token

    async def bootstrap_admin(self, name: str = "admin") -> tuple[User, str] | None:
        """On an empty database, create the first admin; None when users already exist."""
        async with self.db.write() as conn:
            if await users.count_users(conn):
                return None
            now = utcnow()
            user = await users.insert_user(conn, name, True, now)
            _, token = await users.insert_token(conn, user.id, now)
        return user, token

    async def count_users(self) -> int:
        async with self.db.read() as conn:
            return await users.count_users(conn)

    async def list_users(self) -> list[UserListing]:
        """Every user, oldest first."""
        async with self.db.read() as conn:
            return await users.list_users(conn)

    async def create_token(self, user_id: str) -> tuple[str, str]:
        async with self.db.write() as conn:
            if user_id == users.RESERVED_USER_ID or await users.get_user(conn, user_id) is None:
                raise NotFound(f"no user with id {user_id}")
            return await users.insert_token(conn, user_id, utcnow())

    async def list_tokens(self, user_id: str | None = None) -> list[TokenListing]:
        """Live tokens of one user (NotFound when there is no such user) or of everyone."""
        async with self.db.read() as conn:
            if user_id is not None and await users.get_user(conn, user_id) is None:
                raise NotFound(f"no user with id {user_id}")
            return await users.list_tokens(conn, user_id)

    async def revoke_token(self, token_id: str) -> None:
        """Revoke a token: refused from now on by this process, and by every other one once
        its notice arrives (on PostgreSQL; SQLite's are read fresh every time)."""
        async with self.db.write() as conn:
            if not await users.revoke_token(conn, token_id, utcnow()):
                raise NotFound(f"no live token with id {token_id}")
        self._token_cache.forget_all()

    async def authenticate(self, token: str) -> User | None:
        """The user a bearer token belongs to, if it is live.

        The lookup is by SHA-256 of the token through a unique index, so timing reveals
        nothing about stored tokens. It also notes when the token was last used, but writes
        that at most once a minute per token (``users.TOUCH_EVERY``): a request is a read.
        """
        found = await self._live_token(users.hash_token(token))
        if found is None:
            return None
        now = utcnow()
        if found.last_used_at is None or now - found.last_used_at >= users.TOUCH_EVERY:
            await self._touch_token(found.token_id, now)
        return found.user

    async def _live_token(self, token_hash: str) -> users.LiveToken | None:
        """A live token by hash: on SQLite read directly from this thread, on PostgreSQL from
        the cache while it is trusted, else through the pool."""
        if self._token_reader is not None:
            with contextlib.suppress(users.ReadBusy):
                return self._token_reader.live_token(token_hash)
        elif not self.db.sqlite:
            cached = self._token_cache.get(token_hash)
            if cached is not None:
                return cached
            await self._listen_for_revocations()
        generation = self._token_cache.generation
        async with self.db.read() as conn:
            found = await users.live_token(conn, token_hash)
        if found is not None and not self.db.sqlite:
            self._token_cache.put(token_hash, found, generation)
        return found

    async def _listen_for_revocations(self) -> None:
        """Start (once) listening for revocations on PostgreSQL; until it listens, and whenever
        it stops, the token cache is not used."""
        if self._token_listener_started:
            return
        self._token_listener_started = True
        dsn = make_url(self.db.url).set(drivername="postgresql")
        listener = Listener(
            dsn.render_as_string(hide_password=False),
            users.TOKENS_CHANNEL,
            self._token_cache.forget_all,
            subject="revoked tokens",
        )
        self._token_listener = listener
        await listener.start()

    async def _touch_token(self, token_id: str, now: datetime) -> None:
        """Record that a token was used; a failure is logged, never the request's."""
        moment = time.monotonic()
        last = self._touched.get(token_id)
        if last is not None and moment - last < users.TOUCH_EVERY.total_seconds():
            return  # this process wrote it (or is writing it) already
        if len(self._touched) >= 10_000:
            self._touched.clear()
        self._touched[token_id] = moment
        try:
            if self.db.sqlite:
                await self.db.run_write(lambda conn: users.touch_token_sync(conn, token_id, now))
            else:
                async with self.db.write_once() as conn:
                    await users.touch_token(conn, token_id, now)
        except Exception as exc:  # the request was authenticated: it goes on regardless
            log.warning("could not record that token %s was used: %s", token_id, exc)

    # --- endpoints ------------------------------------------------------------------------

    async def get_config(self, user_id: str) -> EndpointRow | None:
        """The user's primary endpoint (the guide's webhook)."""
        async with self.db.read() as conn:
            return await endpoint_sql.get_primary(conn, user_id)

    async def save_config(
        self,
        user_id: str,
        url: str | None,
        enabled: bool | None,
        events: Sequence[str] | None,
        default_events: Sequence[str],
    ) -> tuple[EndpointRow, str]:
        """Create or update the user's primary endpoint; omitted fields keep their value (or
        default). Returns the saved endpoint and its current secret; an update keeps it."""
        async with self.db.write() as conn:
            current = await endpoint_sql.get_primary(conn, user_id)
            fields = EndpointFields(url=url, enabled=enabled, enabled_events=events)
            if current is None:
                if url is None:
                    raise ValueError("url is required")
                await self._check_room(conn, user_id)
                fields = EndpointFields(
                    url=url,
                    enabled=enabled,
                    enabled_events=list(default_events) if events is None else events,
                )
                endpoint_id, secret = await self._insert(conn, user_id, fields, primary=True)
            else:
                endpoint_id, secret = current.id, self.box.decrypt(current.secret_enc)
                await endpoint_sql.update_one(conn, current.id, fields, utcnow())
            saved = await endpoint_sql.get(conn, user_id, endpoint_id)
            assert saved is not None
            if current is not None:
                await self._notice_if_reenabled(conn, current, saved)
        return saved, secret

    async def list_endpoints(self, user_id: str) -> list[EndpointRow]:
        """A user's endpoints, the primary first."""
        async with self.db.read() as conn:
            return await endpoint_sql.of_user(conn, user_id)

    async def get_endpoint(self, user_id: str, endpoint_id: str) -> EndpointRow:
        async with self.db.read() as conn:
            found = await endpoint_sql.get(conn, user_id, endpoint_id)
        if found is None:
            raise NotFound(f"no endpoint with id {endpoint_id}")
        return found

    async def create_endpoint(
        self, user_id: str, fields: EndpointFields
    ) -> tuple[EndpointRow, str]:
        """A new endpoint (``fields.url`` and ``fields.enabled_events`` set) and its secret.
        The user's first endpoint while they have no primary one becomes their primary."""
        async with self.db.write() as conn:
            await self._check_room(conn, user_id)
            primary = await endpoint_sql.get_primary(conn, user_id) is None
            endpoint_id, secret = await self._insert(conn, user_id, fields, primary=primary)
            created = await endpoint_sql.get(conn, user_id, endpoint_id)
        assert created is not None
        return created, secret

    async def update_endpoint(
        self, user_id: str, endpoint_id: str, fields: EndpointFields
    ) -> EndpointRow:
        """Change the fields that are set."""
        async with self.db.write() as conn:
            before = await endpoint_sql.get(conn, user_id, endpoint_id)
            if before is None:
                raise NotFound(f"no endpoint with id {endpoint_id}")
            await endpoint_sql.update_one(conn, endpoint_id, fields, utcnow())
            updated = await endpoint_sql.get(conn, user_id, endpoint_id)
            assert updated is not None
            await self._notice_if_reenabled(conn, before, updated)
        return updated

    async def _notice_if_reenabled(
        self, conn: AsyncConnection, before: EndpointRow, after: EndpointRow
    ) -> None:
        """An endpoint hookline switched off is on again: tell the operational webhooks
        (endpoint.recovered), in the caller's transaction."""
        if before.enabled or not after.enabled:
            return
        if before.disabled_reason not in (DisabledReason.GONE, DisabledReason.FAILING):
            return
        now = utcnow()
        notice = operational.Notice(
            event=operational.RECOVERED,
            endpoint_id=after.id,
            user_id=after.user_id,
            url=after.url,
            at=now,
            recovered_by=operational.BY_REENABLE,
        )
        await conn.run_sync(
            operational.enqueue_notices_sync, [notice], now, self.settings.max_attempts
        )

    async def delete_endpoint(self, user_id: str, endpoint_id: str) -> None:
        """Delete an endpoint; its log stays, and its waiting deliveries fail when due."""
        async with self.db.write() as conn:
            if not await endpoint_sql.delete_one(conn, user_id, endpoint_id):
                raise NotFound(f"no endpoint with id {endpoint_id}")

    async def _check_room(self, conn: AsyncConnection, user_id: str) -> None:
        cap = self.settings.max_endpoints_per_user
        if await endpoint_sql.count_of_user(conn, user_id) >= cap:
            raise TooMany(f"a user may have at most {cap} endpoints")

    async def _insert(
        self, conn: AsyncConnection, user_id: str, fields: EndpointFields, *, primary: bool
    ) -> tuple[str, str]:
        secret = ids.new_secret()
        endpoint_id = await endpoint_sql.insert_one(
            conn, user_id, fields, self.box.encrypt(secret), utcnow(), primary=primary
        )
        return endpoint_id, secret

    async def regenerate_secret(
        self, user_id: str, grace_s: float, endpoint_id: str | None = None
    ) -> tuple[str, datetime | None]:
        """Give an endpoint (the primary by default) a new secret; the old one keeps signing
        for ``grace_s`` seconds. Returns (new secret, when the old one stops, or None)."""
        async with self.db.write() as conn:
            now = utcnow()
            current = await self._endpoint_or_primary(conn, user_id, endpoint_id)
            until = now + timedelta(seconds=grace_s) if grace_s > 0 else None
            old = [o for o in current.old_secrets if o["until"] > now.timestamp()]
            if until is not None:
                old.insert(0, {"enc": current.secret_enc, "until": until.timestamp()})
            secret = ids.new_secret()
            await endpoint_sql.set_secrets(
                conn,
                current.id,
                self.box.encrypt(secret),
                old[: self.settings.max_old_secrets],
                now,
            )
        return secret, until

    async def reenable_after_test(self, endpoint_id: str) -> bool:
        """A test to ``endpoint_id`` succeeded: switch it back on if hookline switched it off
        (``gone`` or ``failing``). True when it did."""
        async with self.db.write() as conn:
            was = await endpoint_sql.reenable_automatic(conn, endpoint_id, utcnow())
            if was is None:
                return False
            found = await endpoint_sql.by_id(conn, [endpoint_id])
            await self._notice_if_reenabled(conn, was, found[endpoint_id])
        return True

    async def delete_config(self, user_id: str) -> None:
        """Delete the user's primary endpoint."""
        async with self.db.write() as conn:
            current = await endpoint_sql.get_primary(conn, user_id)
            if current is None or not await endpoint_sql.delete_one(conn, user_id, current.id):
                raise NotFound("no webhook configuration")

    @staticmethod
    async def _endpoint_or_primary(
        conn: AsyncConnection, user_id: str, endpoint_id: str | None
    ) -> EndpointRow:
        if endpoint_id is None:
            found = await endpoint_sql.get_primary(conn, user_id)
            if found is None:
                raise NotFound("no webhook configuration")
            return found
        found = await endpoint_sql.get(conn, user_id, endpoint_id)
        if found is None:
            raise NotFound(f"no endpoint with id {endpoint_id}")
        return found

    def signing_secrets(self, endpoint: EndpointRow, now: datetime) -> list[str]:
        """The secrets that sign a delivery now: the current one, then unexpired old ones."""
        secrets = [self._open(endpoint.secret_enc)]
        secrets += [
            self._open(old["enc"]) for old in endpoint.old_secrets if old["until"] > now.timestamp()
        ]
        return secrets

    def _open(self, ciphertext: str) -> str:
        """Decrypt a stored secret, remembering the answer (a bounded cache)."""
        secret = self._opened.get(ciphertext)
        if secret is None:
            if len(self._opened) >= 10_000:
                self._opened.clear()
            secret = self._opened[ciphertext] = self.box.decrypt(ciphertext)
        return secret

    async def unopened_secrets(self, sample: int = 1000) -> tuple[int, int]:
        """How many of (up to) ``sample`` endpoints' stored secrets the configured keys fail
        to open: (failed, checked). A database moved from development to production without
        its key fails every one."""
        async with self.db.read() as conn:
            stored = await endpoint_sql.some_secrets(conn, sample)
        failed = sum(1 for ciphertext in stored if not self.box.opens(ciphertext))
        return failed, len(stored)

    async def endpoint_ids(self) -> list[str]:
        """Every endpoint's id."""
        async with self.db.read() as conn:
            return await endpoint_sql.all_ids(conn)

    async def reencrypt(self, endpoint_id: str) -> None:
        """Re-encrypt one endpoint's secrets under the newest key."""
        box = self.box
        async with self.db.write() as conn:
            found = await endpoint_sql.by_id(conn, [endpoint_id])
            if endpoint_id not in found:
                return  # deleted meanwhile
            endpoint = found[endpoint_id]
            old = [{**o, "enc": box.rotate(o["enc"])} for o in endpoint.old_secrets]
            await endpoint_sql.set_secrets(conn, endpoint.id, box.rotate(endpoint.secret_enc), old)

    # --- operational webhooks -----------------------------------------------------------

    async def sync_operational_settings(self) -> None:
        """Make the operational webhook of the settings (HOOKLINE_OPERATIONAL_WEBHOOK_URL and
        _SECRET) the stored one: created, changed or removed. Once per process; a failure is
        logged and tried again next time."""
        url = self.settings.operational_webhook_url
        secret = self.settings.operational_webhook_secret
        try:
            secret_enc = None if secret is None else self.box.encrypt(secret)

            def opens(stored: str) -> bool:
                return self._open(stored) == secret

            async with self.db.write() as conn:
                await conn.run_sync(
                    operational.sync_settings_webhook_sync,
                    url,
                    secret_enc,
                    opens,
                    utcnow(),
                )
        except Exception:
            log.exception("storing the operational webhook of the settings failed")
            return
        self._operational_synced = True

    async def list_operational_webhooks(self) -> list[EndpointRow]:
        """Every operational webhook, the settings' one first."""
        if not self._operational_synced:
            await self.sync_operational_settings()
        async with self.db.read() as conn:
            return await conn.run_sync(operational.operational_endpoints_sync)

    async def create_operational_webhook(self, fields: EndpointFields) -> tuple[EndpointRow, str]:
        """A new operational webhook (``fields.url`` and ``fields.enabled_events`` set) and its
        secret."""
        async with self.db.write() as conn:
            await conn.run_sync(operational.ensure_operator_sync, utcnow())
            endpoint_id, secret = await self._insert(
                conn, operational.OPERATOR_USER_ID, fields, primary=False
            )
            created = await endpoint_sql.get(conn, operational.OPERATOR_USER_ID, endpoint_id)
        assert created is not None
        return created, secret

    # --- publishing ---------------------------------------------------------------------

    async def publish(
        self,
        user_id: str,
        event: str,
        data: Mapping[str, Any] | bytes,
        *,
        idempotency_key: str | None = None,
        publisher: str = idempotency.PYTHON_PUBLISHER,
    ) -> Enqueued:
        """Accept an event: one delivery per enabled endpoint of the user subscribed to it,
        durable when this returns. ``data`` may come already serialised (``payload.dumps``).
        Under an ``idempotency_key`` of ``publisher`` already used for the same request in
        the last 24 hours, answer that request's result and create nothing; KeyConflict when
        it was used for a different request."""
        data_json = data if isinstance(data, bytes) else dumps(data)
        new = NewEvent(user_id, event, data_json)
        if idempotency_key is None:
            return await self._publishes.submit(new)
        keyed = idempotency.Keyed(publisher, idempotency_key, idempotency.request_hash(new))
        result = await self._keyed_publishes.submit((new, keyed))
        if isinstance(result, idempotency.KeyConflict):
            raise result
        return result

    async def publish_batch(
        self, publisher: str, items: Sequence[tuple[NewEvent, str | None]]
    ) -> list[Enqueued | idempotency.KeyConflict]:
        """Accept events in one transaction, each under its idempotency key of ``publisher``
        (or None); a result per event, in order: what it made (or made before, for a repeated
        key), or KeyConflict for a key used for a different request."""
        if not items:
            return []
        events = [new for new, _ in items]
        if all(key is None for _, key in items):
            return list(await self._enqueue_many(events))
        keys = [
            None
            if key is None
            else idempotency.Keyed(publisher, key, idempotency.request_hash(new))
            for new, key in items
        ]
        return await self._publish_keyed(list(zip(events, keys, strict=True)))

    async def _publish_keyed(
        self, items: list[tuple[NewEvent, idempotency.Keyed | None]]
    ) -> list[Enqueued | idempotency.KeyConflict]:
        """Publish events under their keys, in one transaction."""
        events = [new for new, _ in items]
        keys = [keyed for _, keyed in items]
        max_attempts = self.settings.max_attempts

        def publish(conn: Connection) -> list[Enqueued | idempotency.KeyConflict]:
            return idempotency.publish_keyed_sync(conn, events, keys, utcnow(), max_attempts)

        if self.db.sqlite:
            return await self.db.run_write(publish)
        async with self.db.write() as conn:
            return await conn.run_sync(publish)

    async def start_test(
        self, user_id: str, data: Mapping[str, Any], endpoint_id: str | None = None
    ) -> tuple[Job, str]:
        """Store a test delivery to an endpoint (the primary by default) leased to a one-off
        owner, for one immediate attempt. Returns the job and the owner to record it under."""
        owner = "test-" + ids.new_id()
        data_json = dumps(data)
        async with self.db.write() as conn:
            now = utcnow()
            endpoint = await self._endpoint_or_primary(conn, user_id, endpoint_id)

            def insert(sync: Connection) -> dict[str, Any]:
                message_id = insert_message_sync(sync, user_id, TEST_EVENT, data_json, now)
                row = delivery_row(
                    message_id=message_id,
                    user_id=user_id,
                    endpoint=endpoint,
                    event=TEST_EVENT,
                    now=now,
                    max_attempts=1,
                    status=Status.IN_FLIGHT,
                    lease_owner=owner,
                    lease_until=now + timedelta(seconds=self.settings.lease_s),
                )
                insert_delivery_sync(sync, row)
                return row

            row = await conn.run_sync(insert)
        claimed = Claimed(
            id=row["id"],
            delivery_id=row["delivery_id"],
            event_id=row["message_id"],
            user_id=user_id,
            endpoint_id=endpoint.id,
            event=TEST_EVENT,
            body=b"",
            data_json=data_json,
            published_at=now,
            attempts=0,
            max_attempts=1,
        )
        return self._job(claimed, endpoint, now, test=True), owner

    # --- the worker ---------------------------------------------------------------------

    def _job(
        self, delivery: Claimed, endpoint: EndpointRow | None, now: datetime, test: bool = False
    ) -> Job:
        if endpoint is None:
            return Job(delivery, None, [])
        if not endpoint.enabled and not test:
            return Job(delivery, endpoint.url, [], enabled=False)
        secrets = self.signing_secrets(endpoint, now)
        return Job(delivery, endpoint.url, secrets, headers=endpoint.headers)

    async def claim(self, worker: str, limit: int) -> list[Job]:
        """Lease up to ``limit`` due deliveries to ``worker``, with their targets and secrets."""
        now = utcnow()
        lease_until = now + timedelta(seconds=self.settings.lease_s)
        claimed = await self.queue.claim(worker, limit, now, lease_until)
        return [self._job(delivery, endpoint, now) for delivery, endpoint in claimed]

    async def record(self, worker: str, records: Sequence[AttemptRecord]) -> list[str]:
        """Record attempts and their consequences atomically."""
        if not self._operational_synced:
            await self.sync_operational_settings()
        return await self.queue.record(worker, records, utcnow())

    async def release(self, worker: str, log_ids: Sequence[str]) -> int:
        return await self.queue.release(worker, log_ids, utcnow())

    async def resend(self, user_id: str, log_id: str) -> Requeued:
        """Send a finished delivery of ``user_id`` again now: pending, due now, allowed one more
        attempt, recorded as a manual one; out of the counters until that attempt is."""
        return await self.queue.requeue(user_id, log_id, utcnow(), Trigger.MANUAL)

    # --- tasks: recovering an endpoint's failed deliveries ------------------------------

    async def start_recovery(
        self, user_id: str, endpoint_id: str, since: datetime, until: datetime
    ) -> TaskRow:
        """Queue a recovery of the endpoint's failed deliveries created in [since, until);
        NotFound for no such endpoint of the user, EndpointDisabled when it is switched off."""
        async with self.db.write() as conn:
            endpoint = await endpoint_sql.get(conn, user_id, endpoint_id)
            if endpoint is None:
                raise NotFound(f"no endpoint with id {endpoint_id}")
            if not endpoint.enabled:
                raise EndpointDisabled(f"endpoint {endpoint_id} is disabled")
            task = await task_sql.insert_recovery(
                conn, user_id, endpoint_id, since, until, utcnow()
            )
        self._tasks_waiting()
        return task

    def watch_tasks(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` whenever this process queues a task or gives one back, so that a
        worker here takes it at once; returns a function that stops calling it. (Workers in
        other processes hear of it by NOTIFY on PostgreSQL, or find it on their next look.)"""
        self._task_watchers.append(callback)
        return lambda: self._task_watchers.remove(callback)

    def _tasks_waiting(self) -> None:
        for callback in list(self._task_watchers):
            callback()

    async def get_task(self, user_id: str, task_id: str) -> TaskRow:
        async with self.db.read() as conn:
            found = await task_sql.get(conn, user_id, task_id)
        if found is None:
            raise NotFound(f"no task with id {task_id}")
        return found

    async def list_tasks(
        self, user_id: str, endpoint_id: str | None = None, limit: int = 20
    ) -> list[TaskRow]:
        """A user's tasks, newest first."""
        async with self.db.read() as conn:
            return await task_sql.of_user(conn, user_id, endpoint_id, limit)

    async def take_task(self, worker: str) -> TaskRow | None:
        """Lease the oldest waiting task to ``worker`` for ``lease_s``, if there is one."""
        now = utcnow()
        if not await task_sql.any_to_take(self.db, now):
            return None
        lease_until = now + timedelta(seconds=self.settings.lease_s)
        return await self._task_write(task_sql.take_sync, worker, now, lease_until)

    async def renew_task(self, task_id: str, worker: str) -> bool:
        """Extend ``worker``'s lease on a task; False when it lost it."""
        now = utcnow()
        until = now + timedelta(seconds=self.settings.lease_s)
        return await self._task_write(task_sql.renew_sync, task_id, worker, now, until)

    async def release_task(self, task_id: str, worker: str) -> bool:
        """Give a task back for another worker to take at once."""
        released = await self._task_write(task_sql.release_sync, task_id, worker, utcnow())
        if released:
            self._tasks_waiting()
        return released

    async def recover_step(self, task_id: str, worker: str, limit: int) -> task_sql.Step:
        """Requeue the next ``limit`` deliveries of a recovery ``worker`` holds (trigger
        ``recovery``), or end it; see ``store.tasks``."""
        now = utcnow()
        lease_until = now + timedelta(seconds=self.settings.lease_s)
        return await self._task_write(
            task_sql.recover_step_sync, task_id, worker, now, lease_until, limit
        )

    async def _task_write(self, work: Callable[..., T], *args: Any) -> T:
        """Run a task statement in one write transaction, on either database."""
        if self.db.sqlite:
            return await self.db.run_write(lambda conn: work(conn, *args))
        async with self.db.write() as conn:
            return await conn.run_sync(work, *args)

    async def reclaim_expired(self) -> int:
        """Put deliveries of workers whose lease ran out back in the queue (one maintainer
        at a time; 0 when another process is doing it right now)."""
        return await self.queue.reclaim_expired(utcnow())

    async def next_due(self) -> datetime | None:
        return await self.queue.next_due()

    async def purge(self, older_than: timedelta, batch: int = 1000) -> int:
        """Delete finished deliveries older than ``older_than``; returns how many. One process
        purges at a time: another that is purging meanwhile makes this return early."""
        cutoff = utcnow() - older_than
        total = 0
        while True:
            deleted = await self.queue.purge(cutoff, batch)
            total += deleted
            if deleted < batch:
                break
        await self.purge_idempotency_keys()
        return total

    async def _enqueue_many(self, events: list[NewEvent]) -> list[Enqueued]:
        return await self.queue.enqueue_many(events, utcnow(), self.settings.max_attempts)

    async def purge_idempotency_keys(self) -> int:
        """Forget idempotency keys older than 24 hours; returns how many."""
        now = utcnow()
        if self.db.sqlite:
            return await self.db.run_write(lambda conn: idempotency.purge_sync(conn, now))
        async with self.db.write() as conn:
            return await conn.run_sync(idempotency.purge_sync, now)

    async def listen(
        self, on_notify: Callable[[], None], busy: Callable[[], bool] | None = None
    ) -> Stop | None:
        """Call ``on_notify`` soon after a delivery is enqueued, by any process. Returns a
        coroutine function that stops listening (None for an in-memory database). On
        PostgreSQL one listener at a time is woken; one that is ``busy()`` hands over."""
        return await self.queue.listen(on_notify, busy)

    # --- views --------------------------------------------------------------------------

    async def logs_page(
        self,
        user_id: str,
        limit: int,
        offset: int,
        event: str | None,
        success: bool | None,
        endpoint_id: str | None = None,
    ) -> tuple[list[LogRow], int]:
        async with self.db.read() as conn:
            return await views.logs_page(
                conn,
                user_id,
                limit,
                offset,
                event=event,
                success=success,
                endpoint_id=endpoint_id,
            )

    async def log_detail(self, user_id: str, log_id: str) -> LogDetailRow:
        async with self.db.read() as conn:
            found = await views.log_detail(conn, user_id, log_id)
        if found is None:
            raise NotFound(f"no delivery log with id {log_id}")
        return found

    async def stats(
        self, user_id: str, endpoint_id: str | None = None
    ) -> tuple[dict[str, Counts], int]:
        """(counters by event, open deliveries), of one endpoint or of all."""
        async with self.db.read() as conn:
            return await views.counts_and_open(conn, user_id, endpoint_id=endpoint_id)

    async def timeseries(
        self, user_id: str, start: datetime, bucket: timedelta, endpoint_id: str | None = None
    ) -> dict[tuple[int, str], int]:
        async with self.db.read() as conn:
            return await views.timeseries(conn, user_id, start, bucket, endpoint_id)

    async def queue_stats(self) -> views.QueueStats:
        """The whole queue by state, and the disabled endpoints, for metrics."""
        async with self.db.read() as conn:
            return await views.queue_stats(conn, utcnow())

"""The store: durable state behind one facade. Transactions and secret encryption live here;
the statements themselves live in ``queries``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, make_url

from hookline import ids
from hookline.config import Settings
from hookline.crypto import SecretBox, load_box
from hookline.events import TEST_EVENT
from hookline.store import queries, sqlite_watch, users
from hookline.store.db import Database
from hookline.store.queries import AttemptRecord, Claimed, EndpointRow, Enqueued, User
from hookline.store.schema import Status
from hookline.store.users import TokenListing, UserListing
from hookline.timeutil import utcnow

__all__ = [
    "AttemptRecord",
    "Claimed",
    "EndpointRow",
    "Enqueued",
    "Job",
    "NotFound",
    "Status",
    "Store",
    "TokenListing",
    "User",
    "UserListing",
]

log = logging.getLogger("hookline.store")


class NotFound(LookupError):
    """The row an operation needs does not exist."""


@dataclass(frozen=True)
class Job:
    """A claimed delivery with what its attempt needs: the target URL and signing secrets."""

    delivery: Claimed
    url: str | None  # None when the endpoint was deleted after the event was accepted
    secrets: list[str]  # newest first
    enabled: bool = True  # False when the webhook was switched off: the worker sends nothing


class Store:
    """Everything hookline keeps, for one database."""

    def __init__(self, settings: Settings, box: SecretBox | None = None) -> None:
        self.settings = settings
        self._box = box
        self.db = Database(settings.database_url, settings.db_pool_size)
        self._opened: dict[str, str] = {}  # ciphertext -> secret, so claims skip Fernet
        # token id -> time.monotonic() of this process's last write of its last_used_at, so
        # a burst of requests with one token writes once, not once per request in flight.
        self._touched: dict[str, float] = {}

    @property
    def box(self) -> SecretBox:
        """The secret encryption keys, loaded when first needed."""
        if self._box is None:
            self._box = load_box(self.settings)
        return self._box

    async def close(self) -> None:
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
            if await users.get_user(conn, user_id) is None:
                raise NotFound(f"no user with id {user_id}")
            return await users.insert_token(conn, user_id, utcnow())

    async def list_tokens(self, user_id: str | None = None) -> list[TokenListing]:
        """Live tokens of one user (NotFound when there is no such user) or of everyone."""
        async with self.db.read() as conn:
            if user_id is not None and await users.get_user(conn, user_id) is None:
                raise NotFound(f"no user with id {user_id}")
            return await users.list_tokens(conn, user_id)

    async def revoke_token(self, token_id: str) -> None:
        async with self.db.write() as conn:
            if not await users.revoke_token(conn, token_id, utcnow()):
                raise NotFound(f"no live token with id {token_id}")

    async def authenticate(self, token: str) -> User | None:
        """The user a bearer token belongs to, if it is live.

        The lookup is by SHA-256 of the token through a unique index, so timing reveals
        nothing about stored tokens. It also notes when the token was last used, but writes
        that at most once a minute per token (``users.TOUCH_EVERY``): a request is a read.
        """
        async with self.db.read() as conn:
            found = await users.live_token(conn, users.hash_token(token))
        if found is None:
            return None
        now = utcnow()
        if found.last_used_at is None or now - found.last_used_at >= users.TOUCH_EVERY:
            await self._touch_token(found.token_id, now)
        return found.user

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

    # --- the webhook configuration ------------------------------------------------------

    async def get_config(self, user_id: str) -> EndpointRow | None:
        async with self.db.read() as conn:
            return await queries.get_endpoint(conn, user_id)

    async def save_config(
        self,
        user_id: str,
        url: str | None,
        enabled: bool | None,
        events: Sequence[str] | None,
        default_events: Sequence[str],
    ) -> tuple[EndpointRow, str]:
        """Create or update the user's webhook; omitted fields keep their value (or default).

        Returns the saved endpoint and its current secret. An update keeps the secret.
        """
        async with self.db.write() as conn:
            now = utcnow()
            current = await queries.get_endpoint(conn, user_id)
            if current is None:
                if url is None:
                    raise ValueError("url is required")
                secret = ids.new_secret()
                await queries.insert_endpoint(
                    conn,
                    user_id,
                    url,
                    True if enabled is None else enabled,
                    list(default_events) if events is None else events,
                    self.box.encrypt(secret),
                    now,
                )
            else:
                secret = self.box.decrypt(current.secret_enc)
                await queries.update_endpoint(
                    conn,
                    current.id,
                    current.url if url is None else url,
                    current.enabled if enabled is None else enabled,
                    current.enabled_events if events is None else events,
                    now,
                )
            saved = await queries.get_endpoint(conn, user_id)
        assert saved is not None
        return saved, secret

    async def regenerate_secret(self, user_id: str, grace_s: float) -> tuple[str, datetime | None]:
        """Give the webhook a new secret; the old one keeps signing for ``grace_s`` seconds.

        Returns (new secret, when the old one stops being used or None when at once).
        """
        async with self.db.write() as conn:
            now = utcnow()
            current = await queries.get_endpoint(conn, user_id)
            if current is None:
                raise NotFound("no webhook configuration")
            until = now + timedelta(seconds=grace_s) if grace_s > 0 else None
            old = [o for o in current.old_secrets if o["until"] > now.timestamp()]
            if until is not None:
                old.insert(0, {"enc": current.secret_enc, "until": until.timestamp()})
            secret = ids.new_secret()
            await queries.set_secrets(
                conn,
                current.id,
                self.box.encrypt(secret),
                old[: self.settings.max_old_secrets],
                now,
            )
        return secret, until

    async def delete_config(self, user_id: str) -> None:
        async with self.db.write() as conn:
            if not await queries.delete_endpoint(conn, user_id):
                raise NotFound("no webhook configuration")

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
            stored = await queries.some_secrets(conn, sample)
        failed = sum(1 for ciphertext in stored if not self.box.opens(ciphertext))
        return failed, len(stored)

    async def endpoint_ids(self) -> list[str]:
        """Every endpoint's id."""
        async with self.db.read() as conn:
            return [e.id for e in await queries.all_endpoints(conn)]

    async def reencrypt(self, endpoint_id: str) -> None:
        """Re-encrypt one endpoint's secrets under the newest key."""
        box = self.box
        async with self.db.write() as conn:
            found = await queries.endpoints_by_id(conn, [endpoint_id])
            if endpoint_id not in found:
                return  # deleted meanwhile
            endpoint = found[endpoint_id]
            old = [{**o, "enc": box.rotate(o["enc"])} for o in endpoint.old_secrets]
            await queries.set_secrets(conn, endpoint.id, box.rotate(endpoint.secret_enc), old)

    # --- publishing ---------------------------------------------------------------------

    async def publish(self, user_id: str, event: str, data: Mapping[str, Any]) -> Enqueued:
        """Accept an event: its deliveries are durable when this returns."""

        def enqueue(conn: Connection) -> Enqueued:
            return queries.enqueue_sync(
                conn,
                user_id=user_id,
                event=event,
                data=data,
                now=utcnow(),
                max_attempts=self.settings.max_attempts,
            )

        if self.db.sqlite:
            return await self.db.run_write(enqueue)
        async with self.db.write_once() as conn:
            return await conn.run_sync(enqueue)

    async def start_test(self, user_id: str, data: Mapping[str, Any]) -> tuple[Job, str]:
        """Store a test delivery leased to a one-off owner, for one immediate attempt.

        Returns the job and the lease owner to record its attempt under.
        """
        owner = "test-" + ids.new_id()
        async with self.db.write() as conn:
            now = utcnow()
            endpoint = await queries.get_endpoint(conn, user_id)
            if endpoint is None:
                raise NotFound("no webhook configuration")
            row = queries.new_delivery_row(
                user_id=user_id,
                endpoint=endpoint,
                event=TEST_EVENT,
                data=data,
                now=now,
                max_attempts=1,
                status=Status.IN_FLIGHT,
                lease_owner=owner,
                lease_until=now + timedelta(seconds=self.settings.lease_s),
            )
            await queries.insert_delivery(conn, row)
            claimed = await queries.held_delivery(conn, row["id"], owner)
        assert claimed is not None
        return Job(claimed, endpoint.url, self.signing_secrets(endpoint, now)), owner

    # --- the worker ---------------------------------------------------------------------

    async def claim(self, worker: str, limit: int) -> list[Job]:
        """Lease up to ``limit`` due deliveries to ``worker``, with their targets and secrets."""
        now = utcnow()
        lease_until = now + timedelta(seconds=self.settings.lease_s)
        if self.db.sqlite:
            claimed = await self.db.run_write(
                lambda conn: queries.claim_due_sqlite(conn, worker, limit, now, lease_until)
            )
        else:
            async with self.db.write_once() as conn:
                claimed = await queries.claim_due_postgres(conn, worker, limit, now, lease_until)
        jobs = []
        for delivery, endpoint in claimed:
            if endpoint is None:
                jobs.append(Job(delivery, None, []))
            elif not endpoint.enabled:
                jobs.append(Job(delivery, endpoint.url, [], enabled=False))
            else:
                jobs.append(Job(delivery, endpoint.url, self.signing_secrets(endpoint, now)))
        return jobs

    async def record(self, worker: str, records: Sequence[AttemptRecord]) -> list[str]:
        """Record attempts and their consequences atomically."""
        if self.db.sqlite:
            return await self.db.run_write(
                lambda conn: queries.record_attempts_sqlite(conn, worker, records, utcnow())
            )
        async with self.db.write_once() as conn:
            return await queries.record_attempts_postgres(conn, worker, records, utcnow())

    async def release(self, worker: str, log_ids: Sequence[str]) -> int:
        async with self.db.write() as conn:
            return await queries.release(conn, worker, log_ids, utcnow())

    async def reclaim_expired(self) -> int:
        """Put deliveries of workers whose lease ran out back in the queue (one maintainer
        at a time; 0 when another process is doing it right now)."""
        async with self.db.write() as conn:
            if not await queries.take_maintenance_lock(conn):
                return 0
            return await queries.reclaim_expired(conn, utcnow())

    async def next_due(self) -> datetime | None:
        async with self.db.read() as conn:
            return await queries.next_due(conn)

    async def purge(self, older_than: timedelta, batch: int = 1000) -> int:
        """Delete finished deliveries older than ``older_than``; returns how many. One process
        purges at a time: another that is purging meanwhile makes this return early."""
        cutoff = utcnow() - older_than
        total = 0
        while True:
            async with self.db.write() as conn:
                if not await queries.take_maintenance_lock(conn):
                    return total  # another process is purging right now
                deleted = await queries.purge_before(conn, cutoff, batch)
            total += deleted
            if deleted < batch:
                return total

    async def listen(self, on_notify: Callable[[], None]) -> Callable[[], Awaitable[None]] | None:
        """Call ``on_notify`` soon after a delivery is enqueued, by any process: PostgreSQL's
        LISTEN/NOTIFY, or on SQLite a thread that watches the file (``sqlite_watch``).

        Returns a coroutine function that stops listening (None for an in-memory database).
        """
        if self.db.sqlite:
            path = make_url(self.settings.database_url).database
            if not path or path == ":memory:":
                return None
            return await sqlite_watch.watch(path, on_notify)
        # Imported here: asyncpg is only needed on PostgreSQL.
        from hookline.store.listen import listen

        dsn = make_url(self.settings.database_url).set(drivername="postgresql")
        return await listen(
            dsn.render_as_string(hide_password=False), queries.NOTIFY_CHANNEL, on_notify
        )

    # --- views --------------------------------------------------------------------------

    async def logs_page(
        self, user_id: str, limit: int, offset: int, event: str | None, success: bool | None
    ) -> tuple[list[Any], int]:
        async with self.db.read() as conn:
            return await queries.logs_page(conn, user_id, limit, offset, event, success)

    async def log_detail(self, user_id: str, log_id: str) -> tuple[Any, list[Any]]:
        async with self.db.read() as conn:
            found = await queries.log_detail(conn, user_id, log_id)
        if found is None:
            raise NotFound(f"no delivery log with id {log_id}")
        return found

    async def stats(self, user_id: str) -> tuple[dict[str, queries.Counts], int]:
        """(counters by event, open deliveries)."""
        async with self.db.read() as conn:
            return await queries.counters(conn, user_id), await queries.open_count(conn, user_id)

    async def timeseries(
        self, user_id: str, start: datetime, bucket: timedelta
    ) -> dict[tuple[int, str], int]:
        async with self.db.read() as conn:
            return await queries.timeseries(conn, user_id, start, bucket)

    async def queue_stats(self) -> queries.QueueStats:
        """The whole queue by state, and the disabled endpoints, for metrics."""
        async with self.db.read() as conn:
            return await queries.queue_stats(conn, utcnow())

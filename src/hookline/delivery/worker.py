"""The worker: claim due deliveries in batches, send them concurrently, record the outcomes
in batches. Leases make a dead worker's deliveries come back; a stop gives them back."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
from collections.abc import Mapping
from datetime import datetime, timedelta

import orjson

from hookline import ids
from hookline.config import Settings
from hookline.delivery.recovery import Recovery
from hookline.delivery.retry import RetryPolicy
from hookline.delivery.sender import Outcome, OutcomeKind, Sender
from hookline.logsetup import DELIVERY_ID
from hookline.metrics import Metrics
from hookline.payload import build_headers, delivery_body
from hookline.store import AttemptRecord, Job, Status, Store
from hookline.store.errors import classify
from hookline.timeutil import utcnow

log = logging.getLogger("hookline.worker")


def first_line(exc: BaseException) -> str:
    """An exception as one short line for a log message."""
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


MAINTENANCE_EVERY_S = 5.0
# At a trickle every new delivery wakes the worker. Claims at most this often once caught
# up, and outcome writes at most this often, so that a busy trickle shares transactions
# (a few deliveries per claim and per write) instead of paying two per delivery. The claim
# gap is all the latency this adds; the write gap adds none to sending (only to when the
# log shows the outcome), so it is the longer: at 200 deliveries/s a write carries about five.
# A batch's worth of outcomes (``Worker.batch``) is written at once: unwritten outcomes hold
# their slots, and a backlog paced by the write gap drained at slots / gap (64 / 25 ms).
CLAIM_GAP_S = 0.002
RECORD_GAP_S = 0.025
# Once a read of the next due time found nothing waiting at all, and nothing was claimed
# since, the next read is this many poll intervals later (new deliveries and the worker's own
# retries wake it sooner). Each read of an idle process costs a few wake-ups, dear on a VM.
IDLE_POLLS = 5
# An outcome the database refuses is retried alone after these delays; then it is recorded
# without the receiver's text (UNRECORDABLE), retried as often again, then given up (its
# lease expires and the delivery is attempted again: at least once, never lost).
RECORD_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
DISABLED = "webhook is disabled; not sent"
UNRECORDABLE = "the outcome of this attempt could not be recorded"
GONE = 410
#: What an attempt's recorded headers show for each of the endpoint's static headers: they
#: often carry the receiver's credentials, which must not outlive a change in attempt rows.
REDACTED = "[redacted]"
# While the database is unavailable, outcomes wait whole, backing off up to the cap.
RECORD_BACKOFF_S = 0.5
RECORD_BACKOFF_CAP_S = 5.0


def policy_for(settings: Settings) -> RetryPolicy:
    return RetryPolicy(settings.retry_delays_s, settings.retry_after_cap_s)


def decide(
    job: Job,
    outcome: Outcome,
    started_at: datetime,
    policy: RetryPolicy,
    request_headers: str | None = None,
) -> AttemptRecord:
    """Turn one attempt's outcome (and the headers it sent, as JSON) into the record that
    moves the delivery on."""
    attempt = job.delivery.attempts + 1
    failed_at = utcnow()
    retry_at = None
    # 410 Gone: the receiver says the URL is dead for good (Standard Webhooks): no retry,
    # and its endpoint is switched off in the same transaction that records this.
    gone = not outcome.ok and outcome.status_code == GONE
    if not outcome.ok and not gone:
        retry_at = policy.next_attempt_at(
            attempt, job.delivery.max_attempts, failed_at, outcome.retryable, outcome.retry_after_s
        )
    if outcome.ok:
        status = Status.SUCCEEDED
    elif retry_at is not None:
        status = Status.PENDING
    else:
        status = Status.FAILED
    return AttemptRecord(
        log_id=job.delivery.id,
        attempt=attempt,
        started_at=started_at,
        duration_ms=outcome.duration_ms,
        status_code=outcome.status_code,
        error=outcome.error,
        response_excerpt=outcome.response_excerpt,
        next_status=status,
        next_attempt_at=retry_at,
        delivery_id=job.delivery.delivery_id,
        trigger=job.delivery.trigger,
        request_headers=request_headers,
        gone=gone,
    )


def recorded_headers(static: Mapping[str, str], ours: dict[str, str]) -> str:
    """The headers of an attempt as its record keeps them: JSON, serialised once, with the
    endpoint's static header values redacted. The webhook secret is never in a header."""
    if not static:
        return orjson.dumps(ours).decode()
    shown = {name: REDACTED for name in static}
    return orjson.dumps({**shown, **ours}).decode()


def missed_its_second(job: Job, now: datetime) -> bool:
    """A rate-limited delivery whose start was granted for a second that has passed (its
    worker was held up between the claim and the send): sending it now could put more than
    the limit's share into the second it lands in."""
    start_before = job.delivery.start_before
    return start_before is not None and now.timestamp() >= start_before


async def attempt(
    job: Job, sender: Sender, settings: Settings, started_at: datetime | None = None
) -> tuple[Outcome, datetime, str | None]:
    """Sign and send one attempt of ``job`` (starting at ``started_at``, default now); returns
    its outcome, start time and the headers it sent (``recorded_headers``; None when it sent
    nothing)."""
    started_at = started_at or utcnow()
    if job.url is None:
        outcome = Outcome(OutcomeKind.BLOCKED, 0, error="webhook configuration was deleted")
        return outcome, started_at, None
    if not job.enabled:
        # Switched off after the event was accepted: fail it, visibly, without a request.
        return Outcome(OutcomeKind.BLOCKED, 0, error=DISABLED), started_at, None
    delivery = job.delivery
    body = delivery_body(
        delivery.body,
        event=delivery.event,
        delivery_id=delivery.delivery_id,
        published_at=delivery.published_at,
        user_id=delivery.user_id,
        data_json=delivery.data_json,
    )
    headers = build_headers(
        body=body,
        event=delivery.event,
        delivery_id=delivery.delivery_id,
        secrets=job.secrets,
        timestamp_s=int(started_at.timestamp()),
        user_agent=settings.user_agent,
        event_id=delivery.event_id,
    )
    sent = recorded_headers(job.headers, headers)
    if job.headers:
        # The endpoint's static headers; the API refuses any that would replace ours.
        headers = {**job.headers, **headers}
    return await sender.send(job.url, body, headers), started_at, sent


class Worker:
    """Moves deliveries from pending to a final state. One per process is plenty."""

    def __init__(
        self,
        store: Store,
        sender: Sender,
        settings: Settings,
        wake: asyncio.Event | None = None,
        name: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.settings = settings
        self.metrics = metrics or Metrics(settings.events)
        self.policy = policy_for(settings)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{ids.new_id()[-6:]}"
        self.wake = wake or asyncio.Event()
        self._stopping = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._slot_free = asyncio.Event()
        self._results: list[AttemptRecord] = []
        self._results_ready = asyncio.Event()
        self._results_full = asyncio.Event()  # a batch's worth waits to be written
        # While busy, claim and write in batches of this many: one claim or write per
        # delivery would cost more than the delivery itself.
        concurrency = settings.worker_concurrency
        self.batch = min(settings.worker_batch_size, max(1, concurrency // 4))
        # Outcomes the database refused, retried alone: (loop time due, tries, record).
        self._set_aside_records: list[tuple[float, int, AttemptRecord]] = []
        self.record_retry_delays_s: tuple[float, ...] = RECORD_RETRY_DELAYS_S
        self._unavailable_s = 0.0  # the last back-off while the database was unavailable
        self._closing = False
        # What the last next_due read said, in loop time (see _idle_wait_s).
        self._due_read_at: float | None = None
        self._next_due: float | None = None
        self._claimed_at = 0.0  # loop time of the last claim

    def stop(self) -> None:
        """Stop claiming; run() then finishes or releases what is in flight and returns."""
        self._stopping.set()
        self.wake.set()
        self._slot_free.set()

    async def run(self) -> None:
        """Work until stop() is called."""
        recovery = Recovery(self.store, self.settings, self.name, self.wake)

        def heard() -> None:  # a new delivery, or on PostgreSQL perhaps a task
            self.wake.set()
            recovery.prompt()

        stop_listening = await self.store.listen(heard, busy=self._busy)
        writer = asyncio.create_task(self._write_results(), name="hookline-results")
        upkeep = asyncio.create_task(self._maintain(), name="hookline-maintenance")
        recovering = asyncio.create_task(recovery.run(), name="hookline-recovery")
        log.info("worker %s started", self.name)
        try:
            await self._claim_loop()
        finally:
            upkeep.cancel()
            recovery.stop()
            await recovering
            await self._drain()
            # Let the writer finish what it holds; cancelling it mid-transaction would
            # drop a batch of outcomes and leave those deliveries leased.
            self._closing = True
            self._results_ready.set()
            await writer
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            if stop_listening is not None:
                await stop_listening()
            log.info("worker %s stopped", self.name)

    def _busy(self) -> bool:
        """No room to claim now: a NOTIFY is better answered by another worker."""
        held = len(self._inflight) + len(self._results) + len(self._set_aside_records)
        return self.settings.worker_concurrency - held < self.batch

    async def _claim_loop(self) -> None:
        concurrency = self.settings.worker_concurrency
        loop = asyncio.get_running_loop()
        caught_up = False  # the last claim found less than it asked for
        last_claim = 0.0
        while not self._stopping.is_set():
            # Outcomes not yet written count too: if the database falls behind the receivers,
            # claiming slows down instead of piling up unrecorded attempts in memory.
            held = len(self._inflight) + len(self._results) + len(self._set_aside_records)
            free = concurrency - held
            if free <= 0 or ((self._inflight or self._results) and free < self.batch):
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            if caught_up and (gap := last_claim + CLAIM_GAP_S - loop.time()) > 0:
                await asyncio.sleep(gap)
            self.wake.clear()
            want = min(free, self.settings.worker_batch_size)
            last_claim = self._claimed_at = loop.time()
            try:
                jobs = await self.store.claim(self.name, want)
            except Exception:
                self.metrics.claim_failed.inc()
                log.exception("claiming deliveries failed; retrying shortly")
                await self._sleep(self.settings.poll_interval_s)
                continue
            self.metrics.claim_batch.observe(len(jobs))
            for job in jobs:
                task = asyncio.create_task(self._run_job(job))
                self._inflight[job.delivery.id] = task
            caught_up = len(jobs) < want
            if not caught_up:
                continue  # there may be more due right now
            await self._wait_for_work()

    async def _wait_for_work(self) -> None:
        """Once caught up: return when woken (a new delivery, a stop) or when something is
        due. A poll that finds nothing due sleeps again without claiming, so an idle worker
        makes one small read per poll interval, not a claim as well."""
        while True:
            try:
                wait_s = await self._idle_wait_s()
            except Exception:
                log.exception("reading the next due time failed")
                await self._sleep(self.settings.poll_interval_s)
                return  # a claim then says whether the database is back
            if wait_s <= 0 or await self._sleep(wait_s):
                return

    async def _idle_wait_s(self) -> float:
        """How long to sleep when nothing is due: until the next retry, at most a poll.

        The next due time is read once per poll interval, not after every short claim: at a
        trickle of events each one wakes the worker, and a read per wake-up would cost as much
        as the claim. New deliveries wake the worker, and its own retries set a timer, so
        only other workers' retries wait for the re-read, at most a poll interval; when the
        last read found nothing waiting at all, ``IDLE_POLLS`` intervals."""
        loop = asyncio.get_running_loop()
        poll_s = self.settings.poll_interval_s
        if (
            self._due_read_at is not None
            and self._next_due is None
            and self._due_read_at > self._claimed_at
        ):
            # Nothing at all was waiting, and no claim since (one may have deferred deliveries
            # past an endpoint's rate limit): our retries set timers, new deliveries wake us.
            poll_s *= IDLE_POLLS
        now = loop.time()
        stale = self._due_read_at is None or now - self._due_read_at >= poll_s
        if stale or (self._next_due is not None and self._next_due <= now):
            due = await self.store.next_due()
            now = loop.time()
            self._due_read_at = now
            self._next_due = None
            if due is not None:
                self._next_due = now + max(0.0, (due - utcnow()).total_seconds())
        assert self._due_read_at is not None
        wait_s = self._due_read_at + poll_s - now
        if self._next_due is not None:
            wait_s = min(wait_s, self._next_due - now)
        return max(0.0, wait_s)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep until woken (new delivery, stop) or ``seconds`` pass; True when woken."""
        if seconds <= 0:
            return self.wake.is_set()
        try:
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    async def _run_job(self, job: Job) -> None:
        DELIVERY_ID.set(job.delivery.delivery_id)  # for log lines about this attempt
        try:
            started_at = utcnow()
            if missed_its_second(job, started_at):
                await self._give_back(job)
                return
            try:
                outcome, started_at, sent = await attempt(
                    job, self.sender, self.settings, started_at
                )
            except Exception as exc:
                # A bug must not leave the delivery leased forever: count it as a failed
                # attempt so the retry policy applies.
                log.exception("attempt of delivery %s crashed", job.delivery.delivery_id)
                outcome = Outcome(OutcomeKind.CONNECTION_FAILED, 0, error=f"internal error: {exc}")
                started_at, sent = utcnow(), None
            record = decide(job, outcome, started_at, self.policy, sent)
            self.metrics.attempted(job.delivery.event, outcome, record.next_status)
            self._results.append(record)
            self._results_ready.set()
            if len(self._results) >= self.batch:
                self._results_full.set()
            if record.next_status is Status.PENDING and record.next_attempt_at is not None:
                # Wake up for our own retry instead of waiting for the next poll.
                delay_s = (record.next_attempt_at - utcnow()).total_seconds()
                asyncio.get_running_loop().call_later(max(0.0, delay_s), self.wake.set)
        finally:
            self._inflight.pop(job.delivery.id, None)
            self._slot_free.set()

    async def _give_back(self, job: Job) -> None:
        """Return a delivery unsent, due now, to be claimed again under its endpoint's rate
        limit; if that fails, its lease expires and it comes back then."""
        try:
            await self.store.release(self.name, [job.delivery.id])
        except Exception as exc:
            log.warning(
                "giving back delivery %s failed (%s); it is sent once its lease expires",
                job.delivery.delivery_id,
                first_line(exc),
            )
            return
        log.debug("gave back delivery %s: its rate-limit second passed", job.delivery.delivery_id)
        self.wake.set()

    async def _write_results(self) -> None:
        loop = asyncio.get_running_loop()
        last_write = 0.0
        while True:
            if self._set_aside_records and not self._closing:
                wake_at = min(due for due, _, _ in self._set_aside_records)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._results_ready.wait(), timeout=max(0.0, wake_at - loop.time())
                    )
                await self._retry_set_aside()
                if not self._results_ready.is_set():
                    continue
            else:
                await self._results_ready.wait()
            if not self._closing and (gap := last_write + RECORD_GAP_S - loop.time()) > 0:
                await self._gathered(gap)  # let a trickle of outcomes share the write
            self._results_ready.clear()
            last_write = loop.time()
            await self._flush()
            if self._closing:
                if self._set_aside_records:
                    log.error(
                        "stopping with %d outcomes not recorded; their leases will expire and "
                        "they will be attempted again",
                        len(self._set_aside_records),
                    )
                return

    async def _gathered(self, timeout_s: float) -> None:
        """Until ``timeout_s`` passes or a batch's worth of outcomes waits to be written."""
        if len(self._results) >= self.batch:
            return
        self._results_full.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._results_full.wait()

    async def _flush(self) -> None:
        """Write every finished attempt so far in one transaction.

        A batch that fails while the database is unavailable waits and is tried again whole.
        A batch that fails otherwise is split, so that one outcome the database refuses
        never holds back the others: each is written alone, and one that still fails is
        set aside and retried on its own (``_retry_set_aside``).
        """
        while self._results:
            batch, self._results = self._results, []
            try:
                await self._record(batch)
            except Exception as exc:
                if self._closing:
                    # Their leases will expire and another worker sends them again.
                    log.exception("recording %d attempts failed at shutdown", len(batch))
                    return
                if classify(exc) is not None:
                    self._results = batch + self._results
                    await self._back_off(exc, len(batch))
                    continue
                log.warning(
                    "recording %d attempts failed (%s); writing them one by one",
                    len(batch),
                    exc.__class__.__name__,
                )
                if not await self._record_one_by_one(batch):
                    continue
            self._unavailable_s = 0.0
            self._slot_free.set()

    async def _record(self, records: list[AttemptRecord]) -> None:
        """Write ``records`` in one transaction, counted in the metrics."""
        try:
            await self.store.record(self.name, records)
        except Exception:
            self.metrics.record_failed.inc()
            raise
        self.metrics.record_batch.observe(len(records))

    async def _back_off(self, exc: Exception, count: int) -> None:
        """The database is unavailable: wait a little longer each time, up to a cap."""
        delay_s = min(RECORD_BACKOFF_CAP_S, max(RECORD_BACKOFF_S, self._unavailable_s * 2))
        self._unavailable_s = delay_s
        log.error(
            "recording %d attempts failed: the database is unavailable (%s); retrying in %gs",
            count,
            first_line(exc),
            delay_s,
        )
        await asyncio.sleep(delay_s)

    async def _record_one_by_one(self, batch: list[AttemptRecord]) -> bool:
        """Write each outcome of a refused batch alone; set aside those the database refuses.
        False when the database turned out to be unavailable (the rest is kept for later)."""
        for position, record in enumerate(batch):
            try:
                await self._record([record])
            except Exception as exc:
                if classify(exc) is not None:
                    self._results = batch[position:] + self._results
                    await self._back_off(exc, len(batch) - position)
                    return False
                self._set_aside(record, exc, tries=1)
        return True

    def _set_aside(self, record: AttemptRecord, exc: Exception, tries: int) -> None:
        """Keep an outcome the database refused, to retry alone after a growing delay."""
        delays = self.record_retry_delays_s
        if tries > len(delays):
            if record.response_excerpt is None and record.error == UNRECORDABLE:
                log.error(
                    "gave up recording attempt %d of delivery %s (%s): %s; its lease expires "
                    "and it will be attempted again",
                    record.attempt,
                    record.delivery_id,
                    record.log_id,
                    first_line(exc),
                    extra={"delivery_id": record.delivery_id},
                )
                self._slot_free.set()
                return
            # Its own outcome cannot be stored: store the least that can be, once more.
            log.error(
                "recording attempt %d of delivery %s failed %d times (%s); recording it "
                "without the receiver's text",
                record.attempt,
                record.delivery_id,
                tries - 1,
                first_line(exc),
                extra={"delivery_id": record.delivery_id},
            )
            record = dataclasses.replace(record, error=UNRECORDABLE, response_excerpt=None)
            tries = 1
        else:
            log.warning(
                "recording attempt %d of delivery %s failed (%s); retrying it alone",
                record.attempt,
                record.delivery_id,
                first_line(exc),
                extra={"delivery_id": record.delivery_id},
            )
        due = asyncio.get_running_loop().time() + delays[tries - 1]
        self._set_aside_records.append((due, tries, record))

    async def _retry_set_aside(self) -> None:
        """Try again, alone, each set-aside outcome whose delay has passed."""
        now = asyncio.get_running_loop().time()
        due = [item for item in self._set_aside_records if item[0] <= now]
        if not due:
            return
        self._set_aside_records = [item for item in self._set_aside_records if item[0] > now]
        for _, tries, record in due:
            try:
                await self._record([record])
            except Exception as exc:
                if classify(exc) is not None:
                    later = asyncio.get_running_loop().time() + RECORD_BACKOFF_CAP_S
                    self._set_aside_records.append((later, tries, record))
                    continue
                self._set_aside(record, exc, tries + 1)
            else:
                self._slot_free.set()

    async def _drain(self) -> None:
        """Let in-flight attempts finish within the grace period; give back the rest."""
        if not self._inflight:
            return
        pending = list(self._inflight.values())
        _, not_done = await asyncio.wait(pending, timeout=self.settings.shutdown_grace_s)
        if not_done:
            unfinished = [log_id for log_id, task in self._inflight.items() if task in not_done]
            for task in not_done:
                task.cancel()
            await asyncio.gather(*not_done, return_exceptions=True)
            try:
                released = await self.store.release(self.name, unfinished)
                log.info("released %d unfinished deliveries", released)
            except Exception:
                log.exception("releasing deliveries failed; their leases will expire")

    async def _maintain(self) -> None:
        """Bring back deliveries of dead workers; purge old logs now and then."""
        every_s = min(MAINTENANCE_EVERY_S, self.settings.lease_s / 4)
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if await self.store.reclaim_expired():
                    self.wake.set()
                if loop.time() - last_purge >= self.settings.purge_interval_s or not last_purge:
                    last_purge = loop.time()
                    purged = await self.store.purge(timedelta(days=self.settings.retention_days))
                    if purged:
                        log.info(
                            "purged %d deliveries older than %g days",
                            purged,
                            self.settings.retention_days,
                        )
            except Exception:
                log.exception("maintenance failed; trying again later")
            await asyncio.sleep(every_s)

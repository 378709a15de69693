"""One NOTIFY wakes one worker: PostgreSQL listeners take turns holding a token (an advisory
lock); a busy holder hands it over, and a stopped one frees it."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.engine import make_url

from hookline.store.listen import Listener
from hookline.store.queue import NOTIFY_CHANNEL
from hookline.store.queue_postgres import LISTEN_TOKEN_KEY
from tests.e2e.test_listen_reconnect import Wakes


async def test_one_listener_at_a_time_and_a_busy_one_hands_over(
    postgres_database_url: str,
) -> None:
    dsn = make_url(postgres_database_url).set(drivername="postgresql")
    dsn_text = dsn.render_as_string(hide_password=False)
    busy = {"first": False, "second": False}
    first_wakes, second_wakes = Wakes(), Wakes()
    first = Listener(
        dsn_text,
        NOTIFY_CHANNEL,
        first_wakes,
        token_key=LISTEN_TOKEN_KEY,
        busy=lambda: busy["first"],
        check_every_s=0.5,
    )
    second = Listener(
        dsn_text,
        NOTIFY_CHANNEL,
        second_wakes,
        token_key=LISTEN_TOKEN_KEY,
        busy=lambda: busy["second"],
        check_every_s=0.5,
    )
    notifier = await asyncpg.connect(dsn_text)

    async def notify() -> None:
        await notifier.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)

    await first.start()
    await second.start()
    stopped_second = False
    try:
        await asyncio.sleep(0.3)
        woken = first_wakes.count, second_wakes.count
        for _ in range(5):
            await notify()
        await first_wakes.wait_for(woken[0] + 5, timeout_s=2)
        await asyncio.sleep(0.3)
        assert second_wakes.count == woken[1]  # it waits for the token, unwoken

        busy["first"] = True  # the next NOTIFY finds the holder busy: it hands over
        woken = first_wakes.count, second_wakes.count
        await notify()
        await second_wakes.wait_for(woken[1] + 1, timeout_s=3)  # woken once on taking over
        busy["first"] = False
        woken = first_wakes.count, second_wakes.count
        for _ in range(3):
            await notify()
        await second_wakes.wait_for(woken[1] + 3, timeout_s=2)
        await asyncio.sleep(0.3)
        assert first_wakes.count == woken[0]

        woken = first_wakes.count, second_wakes.count
        await second.stop()  # its session ends, and the token goes back to the first
        stopped_second = True
        await first_wakes.wait_for(woken[0] + 1, timeout_s=3)
        await notify()
        await first_wakes.wait_for(woken[0] + 2, timeout_s=2)
    finally:
        await notifier.close()
        await first.stop()
        if not stopped_second:
            await second.stop()

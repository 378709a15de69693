"""Whether the database can serve: it answers, and its schema is at the newest migration."""

from __future__ import annotations

import asyncio
import functools
import logging

from hookline.store.db import Database
from hookline.store.errors import classify

log = logging.getLogger("hookline.store")

READY_TIMEOUT_S = 5.0


@functools.cache
def head_revision() -> str | None:
    """The newest migration this code knows (read from the scripts once per process)."""
    # Alembic is imported here, not at the top: only probes pay for it.
    from alembic.script import ScriptDirectory

    from hookline.store.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


async def current_revision(db: Database) -> str | None:
    """The revision in the database's ``alembic_version`` (None when it has none)."""
    from alembic.runtime.migration import MigrationContext

    async with db.read() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def not_ready(db: Database, timeout_s: float = READY_TIMEOUT_S) -> str | None:
    """Why the database cannot serve, in a sentence; None when it can."""
    head = head_revision()
    try:
        async with asyncio.timeout(timeout_s):
            current = await current_revision(db)
    except TimeoutError:
        return f"the database did not answer within {timeout_s:g} s"
    except Exception as exc:
        fault = classify(exc)
        log.warning("readiness: the database failed: %s: %s", type(exc).__name__, exc)
        return f"the database is {fault}" if fault else "the database failed; see the log"
    if current != head:
        return f"the database is at migration {current}, not {head}: run hookline migrate"
    return None

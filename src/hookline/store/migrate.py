"""Applying the Alembic migrations programmatically (``hookline migrate``)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "hookline.store:migrations")
    config.attributes["database_url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``. Call outside a running event loop."""
    command.upgrade(alembic_config(url), revision)


def is_current(url: str) -> bool:
    """Whether the database at ``url`` is at the newest revision."""
    import asyncio

    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from hookline.store.db import create_engines

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()

    async def current() -> str | None:
        writer, reader = create_engines(url)
        try:
            async with reader.connect() as conn:
                return await conn.run_sync(
                    lambda sync: MigrationContext.configure(sync).get_current_revision()
                )
        finally:
            await writer.dispose()
            await reader.dispose()

    return asyncio.run(current()) == head

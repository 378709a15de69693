"""Alembic environment: runs migrations over the async engine of the configured URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from hookline.store.db import create_engines
from hookline.store.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    url = str(config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url"))
    writer, reader = create_engines(url)
    try:
        async with writer.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await writer.dispose()
        await reader.dispose()


asyncio.run(_main())

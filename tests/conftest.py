"""Fixtures: every database test runs on a real SQLite file and, when
HOOKLINE_TEST_POSTGRES_URL is set, on the real PostgreSQL too."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from hookline.store.db import create_engines
from hookline.store.migrate import upgrade
from hookline.store.schema import metadata
from tests.support import Api, Receiver, make_settings, postgres_url, running_api, running_receiver

BACKENDS = ["sqlite"] + (["postgres"] if postgres_url() else [])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "hookline.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def _reset_postgres(url: str, drop: bool) -> None:
    writer, _ = create_engines(url)
    try:
        async with writer.begin() as conn:
            if drop:
                await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
                await conn.run_sync(metadata.drop_all)
            else:
                names = ", ".join(t.name for t in metadata.sorted_tables)
                await conn.execute(text(f"TRUNCATE {names} CASCADE"))
    finally:
        await writer.dispose()


@pytest.fixture(scope="session")
def postgres_migrated() -> str:
    url = postgres_url()
    assert url, "HOOKLINE_TEST_POSTGRES_URL is not set"
    asyncio.run(_reset_postgres(url, drop=True))
    upgrade(url)
    return url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "hookline.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_migrated")
    asyncio.run(_reset_postgres(url, drop=False))
    yield url


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    """The app with its worker, on fast retry settings."""
    settings = make_settings(database_url, retry_delays_s=[0.05, 0.1, 0.2], poll_interval_s=0.05)
    async with running_api(settings) as running:
        yield running

"""Fixtures: every database test runs on a real SQLite file and on the real PostgreSQL too,
whenever one answers (``tests.support.postgres_url``)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from hookline.store.db import create_engines
from hookline.store.migrate import upgrade
from hookline.store.schema import metadata
from tests.support import Api, Receiver, make_settings, postgres_url, running_api, running_receiver

#: A hang's asyncio tasks are written to stderr before pytest-timeout ends the test.
pytest_plugins = ["tests.taskdump"]

BACKENDS = ["sqlite"] + (["postgres"] if postgres_url() else [])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "hookline.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def reset_postgres(url: str) -> None:
    """Empty every table."""
    writer, _ = create_engines(url)
    try:
        async with writer.begin() as conn:
            names = ", ".join(t.name for t in metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} CASCADE"))
    finally:
        await writer.dispose()


async def _admin(url: str, statement: str) -> None:
    """Run a statement that cannot be in a transaction (CREATE/DROP DATABASE)."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_migrated() -> Iterator[str]:
    """A database of its own for this test session, inside the test PostgreSQL server, so
    concurrent runs never trample each other; dropped at the end."""
    base = postgres_url()
    assert base, "no PostgreSQL answers (see tests.support.postgres_url)"
    name = f"hookline_test_{os.getpid()}"
    asyncio.run(_admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    asyncio.run(_admin(base, f"CREATE DATABASE {name}"))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    asyncio.run(_admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(params=BACKENDS)
def unmigrated_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each backend with no schema: on SQLite a path where no file exists yet,
    on PostgreSQL an empty database of this test's own (dropped after it)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'unmigrated.db'}"
        return
    base = postgres_url()
    assert base
    name = f"hookline_unmigrated_{os.getpid()}"
    asyncio.run(_admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    asyncio.run(_admin(base, f"CREATE DATABASE {name}"))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "hookline.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_migrated")
    asyncio.run(reset_postgres(url))
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


@pytest.fixture
def postgres_database_url(request: pytest.FixtureRequest) -> str:
    """An empty migrated PostgreSQL database, for tests about PostgreSQL alone."""
    if not postgres_url():
        pytest.skip("needs PostgreSQL: none answers on 127.0.0.1:5432")
    url: str = request.getfixturevalue("postgres_migrated")
    asyncio.run(reset_postgres(url))
    return url

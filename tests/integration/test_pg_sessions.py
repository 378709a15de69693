"""How hookline's PostgreSQL sessions show to an operator in ``pg_stat_activity``."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

from tests.support import make_settings, running_api


async def _names(url: str) -> list[str]:
    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, database="postgres"
    )
    try:
        rows = await conn.fetch(
            "SELECT application_name FROM pg_stat_activity WHERE datname = $1", parsed.database
        )
    finally:
        await conn.close()
    return sorted(row["application_name"] for row in rows)


async def test_the_pool_sessions_are_named_hookline(postgres_database_url: str) -> None:
    async with running_api(make_settings(postgres_database_url)) as api:
        _, auth = await api.user()
        assert (await api.client.get("/api/webhooks/stats", headers=auth)).status_code == 200
        names = await _names(postgres_database_url)
    assert "hookline" in names, names
    assert "hookline-listen" in names, names  # the worker's
    assert "" not in names, names  # every session of this database is hookline's, and named

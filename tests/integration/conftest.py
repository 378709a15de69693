"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hookline.store import Store
from tests.support import make_settings


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A Store on a migrated, empty database of each backend (default settings)."""
    opened = Store(make_settings(database_url))
    try:
        yield opened
    finally:
        await opened.close()

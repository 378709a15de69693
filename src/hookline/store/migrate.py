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


def is_known(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations (a newer hookline may have
    migrated the database further)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config("")).get_revision(revision) is not None
    except CommandError:
        return False

"""PostgreSQL: a new delivery wakes the workers by itself

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

A statement-level trigger sends NOTIFY on the workers' channel after every INSERT into
deliveries, so publishing needs no pg_notify round trip of its own and any writer wakes the
workers. PostgreSQL delivers it at commit (and folds repeats within a transaction into one).
SQLite has no NOTIFY: its workers watch the file instead.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "hookline_deliveries"  # hookline.store.queries.NOTIFY_CHANNEL at this revision


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION hookline_notify_deliveries() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries
        FOR EACH STATEMENT EXECUTE FUNCTION hookline_notify_deliveries()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER deliveries_notify ON deliveries")
    op.execute("DROP FUNCTION hookline_notify_deliveries()")

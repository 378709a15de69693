"""indexes that keep log pages and totals per user

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

The log page orders by (created_at, id) within a user: index exactly that, so PostgreSQL no
longer walks the global created_at index past other users' newer rows. The global index is
replaced by one over finished rows only (purging reads it). Open deliveries get a partial
index so per-event totals count only them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status IN ('pending', 'in_flight')")
FINISHED = sa.text("status IN ('succeeded', 'failed')")


def upgrade() -> None:
    for name in (
        "ix_deliveries_created",
        "ix_deliveries_user_created",
        "ix_deliveries_user_event_created",
        "ix_deliveries_user_status",
    ):
        op.drop_index(name, "deliveries")
    op.create_index("ix_deliveries_user_created", "deliveries", ["user_id", "created_at", "id"])
    op.create_index(
        "ix_deliveries_user_event_created", "deliveries", ["user_id", "event", "created_at", "id"]
    )
    op.create_index(
        "ix_deliveries_open",
        "deliveries",
        ["user_id", "event"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    op.create_index(
        "ix_deliveries_finished_created",
        "deliveries",
        ["created_at"],
        postgresql_where=FINISHED,
        sqlite_where=FINISHED,
    )


def downgrade() -> None:
    for name in (
        "ix_deliveries_finished_created",
        "ix_deliveries_open",
        "ix_deliveries_user_event_created",
        "ix_deliveries_user_created",
    ):
        op.drop_index(name, "deliveries")
    op.create_index("ix_deliveries_user_status", "deliveries", ["user_id", "status"])
    op.create_index(
        "ix_deliveries_user_event_created", "deliveries", ["user_id", "event", "created_at"]
    )
    op.create_index("ix_deliveries_user_created", "deliveries", ["user_id", "created_at"])
    op.create_index("ix_deliveries_created", "deliveries", ["created_at"])

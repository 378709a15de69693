"""why an endpoint is off, its failure streak, and background tasks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

Endpoints record when and why they were disabled (``disabled_at``, ``disabled_reason``:
``gone``, ``failing`` or ``user``) and their current failure streak: consecutive failed
deliveries (``failure_streak``), when the streak began (``failing_since``) and when the last
``endpoint.failing`` notice about it went out (``failing_notified_at``). A success resets the
streak. Endpoints already disabled were disabled by their user, at their last update.

``tasks`` holds background work a user asked for, such as recovering an endpoint's failed
deliveries in a window: its progress (``total``, ``done``, a cursor in the order it walks)
and a lease, so that any worker process can carry it on after a restart.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns or constant defaults: both databases add them without a rewrite.
    op.add_column("endpoints", sa.Column("disabled_at", sa.BigInteger(), nullable=True))
    op.add_column("endpoints", sa.Column("disabled_reason", sa.String(16), nullable=True))
    op.add_column(
        "endpoints", sa.Column("failure_streak", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("endpoints", sa.Column("failing_since", sa.BigInteger(), nullable=True))
    op.add_column("endpoints", sa.Column("failing_notified_at", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE endpoints SET disabled_at = updated_at, disabled_reason = 'user' WHERE NOT enabled"
    )

    op.create_table(
        "tasks",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("endpoint_id", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("since", sa.BigInteger(), nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("done", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cursor_created_at", sa.BigInteger(), nullable=True),
        sa.Column("cursor_id", sa.String(32), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tasks_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name=op.f("fk_tasks_endpoint_id_endpoints"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index("ix_tasks_user_created", "tasks", ["user_id", "created_at"])
    op.create_index(
        "ix_tasks_open",
        "tasks",
        ["created_at"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
        sqlite_where=sa.text("status IN ('queued', 'running')"),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_open", "tasks")
    op.drop_index("ix_tasks_user_created", "tasks")
    op.drop_table("tasks")
    with op.batch_alter_table("endpoints") as batch:
        for name in (
            "failing_notified_at",
            "failing_since",
            "failure_streak",
            "disabled_reason",
            "disabled_at",
        ):
            batch.drop_column(name)

"""several endpoints per user, and an event's data stored once

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Endpoints gain a description, static headers and a rate limit (with the per-second window
that enforces it across workers). A user's existing webhook stays in slot "default": it is
their primary endpoint, which the guide's /api/webhooks/config manages, secret and previous
secrets included. Published events get a ``messages`` row holding their data once; new
deliveries point at it (``message_id``) with an empty ``body``, and existing deliveries keep
their stored body, so pending ones are delivered byte for byte as before. The counters gain
the endpoint: existing counts move to the user's primary endpoint ("" when it is gone).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns with constant defaults: both databases add them without rewriting the table.
    op.add_column(
        "endpoints", sa.Column("description", sa.Text(), nullable=False, server_default="")
    )
    op.add_column("endpoints", sa.Column("headers", sa.Text(), nullable=False, server_default="{}"))
    op.add_column("endpoints", sa.Column("rate_limit", sa.Integer(), nullable=True))
    op.add_column(
        "endpoints", sa.Column("rate_window", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.add_column(
        "endpoints", sa.Column("rate_count", sa.Integer(), nullable=False, server_default="0")
    )

    op.create_table(
        "messages",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.add_column("deliveries", sa.Column("message_id", sa.String(32), nullable=True))
    op.create_index("ix_deliveries_message", "deliveries", ["message_id"])
    op.create_index(
        "ix_deliveries_user_endpoint_created",
        "deliveries",
        ["user_id", "endpoint_id", "created_at", "id"],
    )

    # The counters' key gains the endpoint. SQLite rebuilds the table (batch mode); the
    # existing rows are the primary endpoint's.
    with op.batch_alter_table("delivery_stats", recreate="auto") as batch:
        batch.add_column(sa.Column("endpoint_id", sa.String(32), nullable=False, server_default=""))
    op.execute(
        """
        UPDATE delivery_stats SET endpoint_id = (
            SELECT e.id FROM endpoints AS e
            WHERE e.user_id = delivery_stats.user_id AND e.slot = 'default'
        )
        WHERE EXISTS (
            SELECT 1 FROM endpoints AS e
            WHERE e.user_id = delivery_stats.user_id AND e.slot = 'default'
        )
        """
    )
    with op.batch_alter_table("delivery_stats", recreate="auto") as batch:
        batch.drop_constraint("pk_delivery_stats", type_="primary")
        batch.create_primary_key("pk_delivery_stats", ["user_id", "endpoint_id", "event"])


def downgrade() -> None:
    # Counters fold back to (user, event); message-backed deliveries cannot be rebuilt
    # without hookline's body builder, so downgrading is refused once any exist.
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM deliveries WHERE message_id IS NOT NULL")).first():
        raise RuntimeError("deliveries made by this version exist; a downgrade would lose them")
    op.execute(
        """
        CREATE TABLE delivery_stats_old AS
        SELECT user_id, event, sum(successful) AS successful, sum(failed) AS failed,
               sum(attempts_sum) AS attempts_sum
        FROM delivery_stats GROUP BY user_id, event
        """
    )
    op.drop_table("delivery_stats")
    op.create_table(
        "delivery_stats",
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("successful", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("attempts_sum", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "event", name="pk_delivery_stats"),
    )
    op.execute("INSERT INTO delivery_stats SELECT * FROM delivery_stats_old")
    op.drop_table("delivery_stats_old")
    op.drop_index("ix_deliveries_user_endpoint_created", "deliveries")
    op.drop_index("ix_deliveries_message", "deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("message_id")
    op.drop_table("messages")
    with op.batch_alter_table("endpoints") as batch:
        for name in ("rate_count", "rate_window", "rate_limit", "headers", "description"):
            batch.drop_column(name)

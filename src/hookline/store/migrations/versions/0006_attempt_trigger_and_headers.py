"""what set off each attempt, and the headers it sent

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Each attempt records its trigger (``scheduled``, ``manual``, ``recovery``) and the request
headers hookline sent, as JSON; a delivery records what sets off its next attempt
(``next_trigger``), so that a resend's attempt is recorded as ``manual``. Existing attempts
were all scheduled and their headers were not kept (NULL).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns with constant defaults or none: both databases add them without a rewrite.
    op.add_column(
        "delivery_attempts",
        sa.Column("trigger", sa.String(16), nullable=False, server_default="scheduled"),
    )
    op.add_column("delivery_attempts", sa.Column("request_headers", sa.Text(), nullable=True))
    op.add_column(
        "deliveries",
        sa.Column("next_trigger", sa.String(16), nullable=False, server_default="scheduled"),
    )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("next_trigger")
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.drop_column("request_headers")
        batch.drop_column("trigger")

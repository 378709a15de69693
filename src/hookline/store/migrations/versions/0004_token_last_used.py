"""when each API token was last used

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``hookline tokens list`` shows it. Authentication writes it at most once a minute per token,
so the API's hot path stays a read. Existing tokens start as never used (NULL).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: both databases add it without rewriting the table.
    op.add_column("api_tokens", sa.Column("last_used_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("last_used_at")

"""retrain asks: via

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 21:41:36.721945
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("retrainer_asks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("via", sa.String(length=200), nullable=True))

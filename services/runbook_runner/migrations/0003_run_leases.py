"""runbook runs: lease_until, renewed by the runner executing the run

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Runs left in progress before leases existed have none: the first runner to look reports
    # them abandoned (their runner, a single replica then, is gone once this one runs).
    with op.batch_alter_table("runbook_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))

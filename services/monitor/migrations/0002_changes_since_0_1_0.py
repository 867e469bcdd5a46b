"""Since 0.1.0: outbox poison rows, set aside instead of retried forever.

Databases created before migrations existed may hold any state between 0.1.0 and this revision
(they were built by ``create_all`` of the code of their day, which added missing tables but no
columns), so each change here is made only if it is missing. Later revisions need no such care.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if _missing("outbox_poison"):  # outbox poison rows set aside (39dee78)
        op.create_table(
            "outbox_poison",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("event_id", sa.Uuid(), nullable=False),
            sa.Column("event_type", sa.String(), nullable=False),
            sa.Column("topic", sa.String(), nullable=False),
            sa.Column("payload", sa.String(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("reason", sa.String(), nullable=False),
            sa.Column("failure", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            op.f("ix_outbox_poison_event_id"), "outbox_poison", ["event_id"], unique=False
        )


def _missing(table: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(table)

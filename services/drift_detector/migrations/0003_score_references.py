"""Score references are kept with the episodes, so every replica judges against the same one.

Before, each replica kept a version's score reference in its own profile cache, and the next
owner of a partition collected its own from whatever traffic came then. A reference still in a
replica's cache is written here with that replica's next save
(``services/drift_detector/service.py``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_score_references",
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("scores", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", "version"),
    )

"""tokens with scopes and expiry, retrain answers, heartbeats, runbook approvals

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 21:41:33.647051
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
        "heartbeats",
        sa.Column("alert_event_id", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("echoed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("alert_event_id"),
    )
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.create_index("ix_heartbeats_echoed_at", ["echoed_at"], unique=False)

    op.create_table(
        "runbook_approvals",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("incident_id", sa.String(), nullable=False),
        sa.Column("runbook", sa.String(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
        ),
        sa.PrimaryKeyConstraint("run_id"),
    )
    with op.batch_alter_table("runbook_approvals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_runbook_approvals_incident_id"), ["incident_id"], unique=False
        )
        batch_op.create_index(
            "ix_runbook_approvals_state_expires", ["state", "expires_at"], unique=False
        )

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("created_by", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("revoked_by", sa.String(), nullable=True))
        batch_op.alter_column("role", existing_type=sa.VARCHAR(), nullable=True)

    with op.batch_alter_table("retrains", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ask_event_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("incident_id", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("answer", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("run_id", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("ended_because", sa.Text(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_retrains_ask_event_id"), ["ask_event_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_retrains_run_id"), ["run_id"], unique=False)

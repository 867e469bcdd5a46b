"""Baseline: the schema Vigil 0.1.0 created for the runbook runner's database.

Frozen: written from the 0.1.0 table modules, never from today's. A database created before
migrations existed is stamped at this revision and upgraded from here.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("payload", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["published_at", "id"], unique=False)
    op.create_table(
        "runbook_runs",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("request_digest", sa.String(), nullable=False),
        sa.Column("request_event_id", sa.Uuid(), nullable=False),
        sa.Column("correlation_id", sa.String(), nullable=False),
        sa.Column("incident_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("runbook", sa.String(), nullable=False),
        sa.Column("tier", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("approved_by", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("supplied", sa.JSON(), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=True),
        sa.Column("argv", sa.JSON(), nullable=True),
        sa.Column("verify_argv", sa.JSON(), nullable=True),
        sa.Column("script_sha256", sa.String(), nullable=True),
        sa.Column("verify_script_sha256", sa.String(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("verify_exit_code", sa.Integer(), nullable=True),
        sa.Column("stdout", sa.String(), nullable=False),
        sa.Column("stderr", sa.String(), nullable=False),
        sa.Column("verify_output", sa.String(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index(
        op.f("ix_runbook_runs_incident_id"), "runbook_runs", ["incident_id"], unique=False
    )
    op.create_index(
        "ix_runbook_runs_limit", "runbook_runs", ["runbook", "model", "state"], unique=False
    )
    op.create_index(
        op.f("ix_runbook_runs_requested_at"), "runbook_runs", ["requested_at"], unique=False
    )
    op.create_index(op.f("ix_runbook_runs_state"), "runbook_runs", ["state"], unique=False)

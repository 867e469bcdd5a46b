"""Baseline: the schema Vigil 0.1.0 created for the registry and retrainer's database.

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
        "processed_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index(
        "ix_processed_events_processed_at", "processed_events", ["processed_at"], unique=False
    )
    op.create_table(
        "registry_models",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "retrainer_asks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("incident_id", sa.String(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("admission", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_retrainer_asks_model_at", "retrainer_asks", ["model", "at"], unique=False)
    op.create_table(
        "retrainer_evaluations",
        sa.Column("evaluation_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("candidate_version", sa.Integer(), nullable=False),
        sa.Column("champion_version", sa.Integer(), nullable=True),
        sa.Column("dataset_digest", sa.String(length=71), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("failures", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("incident_id", sa.String(), nullable=True),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("evaluation_id"),
    )
    op.create_index(
        op.f("ix_retrainer_evaluations_model"), "retrainer_evaluations", ["model"], unique=False
    )
    op.create_table(
        "retrainer_live_examples",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("features", sa.Text(), nullable=True),
        sa.Column("label", sa.String(), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("model", "request_id"),
    )
    op.create_index(
        "ix_retrainer_live_examples_labelled",
        "retrainer_live_examples",
        ["model", "labelled_at"],
        unique=False,
    )
    op.create_index(
        "ix_retrainer_live_examples_seen", "retrainer_live_examples", ["seen_at"], unique=False
    )
    op.create_table(
        "retrainer_produced_datasets",
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("live_from", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_table(
        "retrainer_promotions",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("evaluation_id", sa.String(length=40), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("requesters", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("incident_id", sa.String(), nullable=True),
        sa.Column("rollout", sa.String(length=16), nullable=True),
        sa.Column("rollout_reason", sa.Text(), nullable=True),
        sa.Column("rollout_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("champion_version", sa.Integer(), nullable=True),
        sa.Column("canary_model", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
        sa.UniqueConstraint("canary_model"),
        sa.UniqueConstraint("evaluation_id"),
    )
    op.create_index(
        op.f("ix_retrainer_promotions_expires_at"),
        "retrainer_promotions",
        ["expires_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_retrainer_promotions_model"), "retrainer_promotions", ["model"], unique=False
    )
    op.create_table(
        "retrainer_runs",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("queued_model", sa.String(length=128), nullable=True),
        sa.Column("running_model", sa.String(length=128), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("causes", sa.Text(), nullable=False),
        sa.Column("requesters", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("incident_id", sa.String(), nullable=True),
        sa.Column("parameters", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dataset", sa.Text(), nullable=True),
        sa.Column("live_from", sa.Integer(), nullable=True),
        sa.Column("candidate_version", sa.Integer(), nullable=True),
        sa.Column("evaluation_id", sa.String(), nullable=True),
        sa.Column("cached_steps", sa.Text(), nullable=False),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("dataset_changes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id"),
        sa.UniqueConstraint("queued_model"),
        sa.UniqueConstraint("running_model"),
    )
    op.create_index(op.f("ix_retrainer_runs_model"), "retrainer_runs", ["model"], unique=False)
    op.create_table(
        "registry_deployment_revisions",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("incident_id", sa.String(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deployment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model"],
            ["registry_models.name"],
        ),
        sa.PrimaryKeyConstraint("model", "revision"),
    )
    op.create_index(
        op.f("ix_registry_deployment_revisions_at"),
        "registry_deployment_revisions",
        ["at"],
        unique=False,
    )
    op.create_table(
        "registry_versions",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model"],
            ["registry_models.name"],
        ),
        sa.PrimaryKeyConstraint("model", "version"),
    )
    op.create_index(
        op.f("ix_registry_versions_artifact_sha256"),
        "registry_versions",
        ["artifact_sha256"],
        unique=False,
    )
    op.create_table(
        "registry_aliases",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("alias", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model", "version"],
            ["registry_versions.model", "registry_versions.version"],
        ),
        sa.PrimaryKeyConstraint("model", "alias"),
        sa.UniqueConstraint("model", "version", name="uq_registry_alias_one_per_version"),
    )

"""Since 0.1.0: paging's tables, who ended a silence, outbox poison rows.

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
    if _missing("people"):  # paging (0ddb5ff)
        op.create_table(
            "people",
            sa.Column("name", sa.String(), nullable=False),
            sa.Column("display_name", sa.String(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    if _missing("contacts"):  # paging (0ddb5ff)
        op.create_table(
            "contacts",
            sa.Column("id", sa.String(), nullable=False),
            sa.Column("person", sa.String(), nullable=False),
            sa.Column("channel", sa.String(), nullable=False),
            sa.Column("address", sa.String(), nullable=False),
            sa.Column("secret", sa.String(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_contacts_person"), "contacts", ["person"], unique=False)
    if _missing("schedules"):  # paging (0ddb5ff)
        op.create_table(
            "schedules",
            sa.Column("name", sa.String(), nullable=False),
            sa.Column("tier", sa.String(), nullable=True),
            sa.Column("layers", sa.JSON(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_by", sa.String(), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    if _missing("schedule_overrides"):  # paging (0ddb5ff)
        op.create_table(
            "schedule_overrides",
            sa.Column("id", sa.String(), nullable=False),
            sa.Column("schedule", sa.String(), nullable=False),
            sa.Column("person", sa.String(), nullable=False),
            sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("created_by", sa.String(), nullable=False),
            sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("cancelled_by", sa.String(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            "ix_overrides_schedule_end", "schedule_overrides", ["schedule", "ends_at"], unique=False
        )
    if _missing("model_owners"):  # paging (0ddb5ff)
        op.create_table(
            "model_owners",
            sa.Column("model", sa.String(), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("owners", sa.JSON(), nullable=False),
            sa.PrimaryKeyConstraint("model"),
        )
    if _missing("pages"):  # paging (0ddb5ff)
        op.create_table(
            "pages",
            sa.Column("id", sa.String(), nullable=False),
            sa.Column("incident_id", sa.String(), nullable=False),
            sa.Column("tier", sa.String(), nullable=False),
            sa.Column("reason", sa.String(), nullable=False),
            sa.Column("targets", sa.JSON(), nullable=False),
            sa.Column("actor", sa.String(), nullable=True),
            sa.Column("snapshot", sa.JSON(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("expanded_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("recipients", sa.JSON(), nullable=True),
            sa.Column("unresolved", sa.JSON(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_pages_incident_id"), "pages", ["incident_id"], unique=False)
        op.create_index("ix_pages_pending", "pages", ["expanded_at", "created_at"], unique=False)
    if _missing("notifications"):  # paging (0ddb5ff)
        op.create_table(
            "notifications",
            sa.Column("id", sa.String(), nullable=False),
            sa.Column("page_id", sa.String(), nullable=False),
            sa.Column("incident_id", sa.String(), nullable=False),
            sa.Column("person", sa.String(), nullable=False),
            sa.Column("contact_id", sa.String(), nullable=True),
            sa.Column("channel", sa.String(), nullable=True),
            sa.Column("reason", sa.String(), nullable=False),
            sa.Column("tier", sa.String(), nullable=False),
            sa.Column("status", sa.String(), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("last_error", sa.String(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("digest_id", sa.String(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            "ix_notifications_due", "notifications", ["status", "next_attempt_at"], unique=False
        )
        op.create_index(
            op.f("ix_notifications_incident_id"), "notifications", ["incident_id"], unique=False
        )
        op.create_index(
            op.f("ix_notifications_page_id"), "notifications", ["page_id"], unique=False
        )
        op.create_index(
            "ix_notifications_person_created",
            "notifications",
            ["person", "created_at"],
            unique=False,
        )
    if _missing("paging_keys"):  # paging (0ddb5ff)
        op.create_table(
            "paging_keys",
            sa.Column("name", sa.String(), nullable=False),
            sa.Column("value", sa.String(), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    if _missing("used_links"):  # paging (0ddb5ff)
        op.create_table(
            "used_links",
            sa.Column("nonce", sa.String(), nullable=False),
            sa.Column("incident_id", sa.String(), nullable=False),
            sa.Column("person", sa.String(), nullable=False),
            sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("nonce"),
        )
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
    if _lacks_column("silences", "expired_by"):  # who ended a silence (79ffd6e)
        with op.batch_alter_table("silences") as batch:
            batch.add_column(sa.Column("expired_by", sa.String(), nullable=True))


def _missing(table: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(table)


def _lacks_column(table: str, column: str) -> bool:
    return column not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}

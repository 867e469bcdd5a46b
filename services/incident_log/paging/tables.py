"""Paging's tables, in the incident log's database.

``pages`` are intents written in the transaction of the incident change that causes them;
the dispatcher expands each into ``notifications`` (one per person and contact, with a stable
idempotency key as primary key, so expanding twice inserts nothing twice) and delivers those.
``used_links`` makes acknowledge links single-use: the nonce is its primary key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from services.runtime.database import UtcDateTime

__all__ = [
    "PAGING_TABLES",
    "ContactRow",
    "HeartbeatRow",
    "ModelOwnersRow",
    "NotificationRow",
    "OverrideRow",
    "PageRow",
    "PagingKeyRow",
    "PersonRow",
    "ScheduleRow",
    "UsedLinkRow",
]


class PersonRow(SQLModel, table=True):
    """Someone Vigil can page: the name their API token carries."""

    __tablename__ = "people"

    name: str = Field(primary_key=True)
    display_name: str | None = None
    created_at: datetime = Field(sa_type=UtcDateTime)


class ContactRow(SQLModel, table=True):
    """One way to reach a person: a webhook, a chat webhook, an e-mail address, a pager."""

    __tablename__ = "contacts"

    id: str = Field(primary_key=True)
    person: str = Field(index=True)
    channel: str
    address: str
    secret: str | None = Field(default=None, description="Webhook signing secret or pager key.")
    created_at: datetime = Field(sa_type=UtcDateTime)


class ScheduleRow(SQLModel, table=True):
    """An on-call schedule (its layers as JSON, validated by ``schedules.Schedule``)."""

    __tablename__ = "schedules"

    name: str = Field(primary_key=True)
    tier: str | None = None
    layers: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(sa_type=UtcDateTime)
    updated_by: str


class OverrideRow(SQLModel, table=True):
    """Someone covers a schedule for a time range."""

    __tablename__ = "schedule_overrides"
    __table_args__ = (Index("ix_overrides_schedule_end", "schedule", "ends_at"),)

    id: str = Field(primary_key=True)
    schedule: str
    person: str
    starts_at: datetime = Field(sa_type=UtcDateTime)
    ends_at: datetime = Field(sa_type=UtcDateTime)
    created_at: datetime = Field(sa_type=UtcDateTime)
    created_by: str
    cancelled_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    cancelled_by: str | None = None


class ModelOwnersRow(SQLModel, table=True):
    """A model's owners as its latest registration names them (who level three pages)."""

    __tablename__ = "model_owners"

    model: str = Field(primary_key=True)
    version: int
    owners: list[str] = Field(sa_column=Column(JSON, nullable=False))


class PageRow(SQLModel, table=True):
    """A decision to tell the people of a tier (or everyone paged) about an incident."""

    __tablename__ = "pages"
    __table_args__ = (Index("ix_pages_pending", "expanded_at", "created_at"),)

    id: str = Field(primary_key=True)
    incident_id: str = Field(index=True)
    tier: str
    reason: str
    targets: list[str] = Field(sa_column=Column(JSON, nullable=False))
    actor: str | None = None
    snapshot: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=UtcDateTime)
    expanded_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    recipients: list[str] | None = Field(default=None, sa_column=Column(JSON))
    unresolved: list[str] | None = Field(default=None, sa_column=Column(JSON))


class NotificationRow(SQLModel, table=True):
    """One notification to one contact of one person; its id is the idempotency key.

    Status: ``pending`` (due at ``next_attempt_at``), ``sending`` (an attempt in flight until
    ``next_attempt_at``; a crash leaves it to be retried), ``retrying``, ``delivered``,
    ``failed`` (gave up), ``held`` (over the person's rate limit, waiting for a digest),
    ``digested`` (told in digest ``digest_id``), ``skipped`` (the person has no contact).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_person_created", "person", "created_at"),
    )

    id: str = Field(primary_key=True)
    page_id: str = Field(index=True)
    incident_id: str = Field(index=True)
    person: str
    contact_id: str | None = None
    channel: str | None = None
    reason: str
    tier: str
    status: str
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    first_attempt_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_error: str | None = None
    created_at: datetime = Field(sa_type=UtcDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    digest_id: str | None = None


class UsedLinkRow(SQLModel, table=True):
    """An acknowledge link that was spent."""

    __tablename__ = "used_links"

    nonce: str = Field(primary_key=True)
    incident_id: str
    person: str
    used_at: datetime = Field(sa_type=UtcDateTime)


class HeartbeatRow(SQLModel, table=True):
    """A ``heartbeat`` alert taken off the alerts topic, until the dispatcher echoes it.

    Written in the transaction that marks the alert processed; the dispatcher stages its
    ``heartbeat.echoed`` and sets ``echoed_at`` in one transaction, and deletes echoed rows after
    an hour.
    """

    __tablename__ = "heartbeats"
    __table_args__ = (Index("ix_heartbeats_echoed_at", "echoed_at"),)

    alert_event_id: str = Field(primary_key=True)
    source: str
    sent_at: datetime = Field(sa_type=UtcDateTime)
    received_at: datetime = Field(sa_type=UtcDateTime)
    echoed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class PagingKeyRow(SQLModel, table=True):
    """The key acknowledge links are signed with, made once per database (shared by replicas)."""

    __tablename__ = "paging_keys"

    name: str = Field(primary_key=True)
    value: str


PAGING_TABLES: list[type[SQLModel]] = [
    PersonRow,
    ContactRow,
    ScheduleRow,
    OverrideRow,
    ModelOwnersRow,
    PageRow,
    NotificationRow,
    UsedLinkRow,
    PagingKeyRow,
    HeartbeatRow,
]

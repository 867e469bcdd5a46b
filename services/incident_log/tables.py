"""The incident log's tables (its own database; SQLite file by default, PostgreSQL by URL).

``signals.open_fingerprint`` holds the fingerprint while the incident is unresolved and NULL
after: its unique constraint is how the database itself guarantees at most one open incident per
fingerprint (NULLs never collide), whatever two consumers race.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from services.incident_log.paging.tables import PAGING_TABLES
from services.runtime.database import UtcDateTime

__all__ = [
    "TABLES",
    "AlertRow",
    "ApiTokenRow",
    "IncidentRow",
    "RetrainRow",
    "ReviewRow",
    "RunbookApprovalRow",
    "SignalRow",
    "SilenceRow",
    "TimelineRow",
    "TimerRow",
]


class IncidentRow(SQLModel, table=True):
    """Current state of an incident (its history is in ``timeline``)."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_model_status", "model", "status"),)

    id: str = Field(primary_key=True)
    model: str
    model_version: int | None = None
    title: str
    severity: str
    kind: str
    fingerprint: str
    status: str = Field(index=True)
    tier: str
    route: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    routed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    opened_at: datetime = Field(sa_type=UtcDateTime, index=True)
    last_seen: datetime = Field(sa_type=UtcDateTime)
    tier_entered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    mitigated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime, index=True)
    resolved_tier: str | None = None
    owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    claim_lease_seconds: float | None = None
    epoch: int = 0
    runbook_position: int = 0
    awaiting_version: int | None = None
    awaiting_since: datetime | None = Field(default=None, sa_type=UtcDateTime)
    alert_count: int = 0


class SignalRow(SQLModel, table=True):
    """One alert fingerprint on an incident."""

    __tablename__ = "signals"
    __table_args__ = (
        Index("ix_signals_incident_fingerprint", "incident_id", "fingerprint", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incidents.id", index=True)
    fingerprint: str = Field(index=True)
    open_fingerprint: str | None = Field(default=None, unique=True)
    kind: str
    severity: str
    model_version: int | None = None
    first_seen: datetime = Field(sa_type=UtcDateTime)
    last_seen: datetime = Field(sa_type=UtcDateTime)
    occurrences: int = 1
    recovered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    summary: str
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class TimelineRow(SQLModel, table=True):
    """One append-only line of an incident's history."""

    __tablename__ = "timeline"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incidents.id", index=True)
    at: datetime = Field(sa_type=UtcDateTime)
    actor: str
    action: str
    from_status: str | None = None
    to_status: str | None = None
    from_tier: str | None = None
    to_tier: str | None = None
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class TimerRow(SQLModel, table=True):
    """A stored timer: it survives restarts, fires once, and acts only at its epoch."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_pending", "fired_at", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incidents.id", index=True)
    kind: str
    tier: str
    due_at: datetime = Field(sa_type=UtcDateTime)
    epoch: int
    fired_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class AlertRow(SQLModel, table=True):
    """Every alert and recovery received, with what became of it (suppressed ones stay visible)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_model_received", "model", "received_at"),)

    event_id: UUID = Field(primary_key=True)
    type: str
    incident_id: str | None = Field(default=None, index=True)
    model: str
    model_version: int | None = None
    fingerprint: str = Field(index=True)
    kind: str
    severity: str | None = None
    summary: str
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    producer: str
    occurred_at: datetime = Field(sa_type=UtcDateTime)
    received_at: datetime = Field(sa_type=UtcDateTime)
    disposition: str
    suppressed_by: str | None = None


class SilenceRow(SQLModel, table=True):
    """A maintenance window that mutes matching alerts."""

    __tablename__ = "silences"

    id: str = Field(primary_key=True)
    matcher: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    starts_at: datetime = Field(sa_type=UtcDateTime)
    ends_at: datetime = Field(sa_type=UtcDateTime, index=True)
    created_by: str
    reason: str
    created_at: datetime = Field(sa_type=UtcDateTime)
    expired_by: str | None = Field(
        default=None, description="Who ended it early (``DELETE /silences/{id}``)."
    )


class RetrainRow(SQLModel, table=True):
    """A retrain ask seen on ``retrain.requests`` or answered on ``models``: in flight until it
    is refused, its run ends, or it lapses (:mod:`services.incident_log.retrains`)."""

    __tablename__ = "retrains"

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(index=True)
    cause: str
    requested_at: datetime = Field(sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    ask_event_id: UUID | None = Field(default=None, index=True)
    incident_id: str | None = None
    answer: str | None = None
    answered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    run_id: str | None = Field(default=None, index=True)
    ended_because: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class RunbookApprovalRow(SQLModel, table=True):
    """A runbook run held for a second person's approval, and its decision
    (``services/incident_log/approvals.py``)."""

    __tablename__ = "runbook_approvals"
    __table_args__ = (Index("ix_runbook_approvals_state_expires", "state", "expires_at"),)

    run_id: str = Field(primary_key=True)
    incident_id: str = Field(foreign_key="incidents.id", index=True)
    runbook: str
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    reason: str
    requested_by: str
    requested_at: datetime = Field(sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime)
    state: str
    decided_by: str | None = None
    decided_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    decision_reason: str | None = None


class ReviewRow(SQLModel, table=True):
    """The part of an incident's post-incident review people write: its action items
    (``services/incident_log/review.py``). ``version`` counts saves, so two editors cannot
    overwrite each other unseen."""

    __tablename__ = "incident_reviews"

    incident_id: str = Field(primary_key=True, foreign_key="incidents.id")
    action_items: str = Field(sa_column=Column(Text, nullable=False))
    version: int
    updated_by: str
    updated_at: datetime = Field(sa_type=UtcDateTime)


class ApiTokenRow(SQLModel, table=True):
    """An API token (only its hash is kept), with the name it acts as and either a role (a
    person's) or scopes (a service's); it works until revoked or expired."""

    __tablename__ = "api_tokens"

    token_sha256: str = Field(primary_key=True)
    name: str = Field(index=True)
    role: str | None = Field(default=None, description="None for a scoped token; added later.")
    scopes: list[str] | None = Field(
        default=None, sa_column=Column(JSON), description="A service's scopes; added later."
    )
    created_at: datetime = Field(sa_type=UtcDateTime)
    created_by: str | None = Field(
        default=None, description="Who created it (``settings`` when provisioned); added later."
    )
    expires_at: datetime | None = Field(
        default=None, sa_type=UtcDateTime, description="None: never; added later."
    )
    last_used_at: datetime | None = Field(
        default=None, sa_type=UtcDateTime, description="To the minute; added later."
    )
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    revoked_by: str | None = Field(default=None, description="Who revoked it; added later.")


TABLES: list[type[SQLModel]] = [
    IncidentRow,
    SignalRow,
    TimelineRow,
    TimerRow,
    AlertRow,
    SilenceRow,
    RetrainRow,
    RunbookApprovalRow,
    ReviewRow,
    ApiTokenRow,
    *PAGING_TABLES,
]
"""Every table of the incident log, paging's included."""

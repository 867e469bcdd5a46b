"""Incident facts published by the incident log on ``incidents`` (keyed by incident id).

Lifecycle (the incident log enforces it; these events report it)::

    open ──▶ acknowledged ──▶ mitigating ──▶ monitoring ──▶ resolved
      │            │               │              │             │
      └────────────┴───────────────┴──────────────┴─▶ resolved  └──▶ open (reopened)

Tiers: L1 operations (runbooks) ▶ L2 incident data scientists ▶ L3 the model's owners.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from contracts.alerts import AlertKind, Severity
from contracts.envelope import Envelope
from contracts.values import ModelName

__all__ = [
    "EscalationTrigger",
    "IncidentAcknowledged",
    "IncidentAlertAttached",
    "IncidentClaimed",
    "IncidentCommented",
    "IncidentEscalated",
    "IncidentEvent",
    "IncidentOpened",
    "IncidentReopened",
    "IncidentResolved",
    "IncidentStatus",
    "IncidentStatusChanged",
    "Tier",
]


class IncidentStatus(StrEnum):
    """Where an incident is in its lifecycle."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATING = "mitigating"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class Tier(StrEnum):
    """Response tier holding an incident."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"


class EscalationTrigger(StrEnum):
    """Why an incident moved up a tier."""

    NOT_ACKNOWLEDGED = "not_acknowledged"
    NOT_MITIGATED = "not_mitigated"
    RUNBOOK_FAILED = "runbook_failed"
    RUNBOOK_NOT_APPLIED = "runbook_not_applied"
    VERIFICATION_FAILED = "verification_failed"
    NO_RUNBOOK = "no_runbook"
    HUMAN = "human"


class IncidentEvent(Envelope):
    """Fields every incident fact carries: the incident's state after the fact, and who did it."""

    incident_id: str = Field(
        min_length=1, description="Incident id; the Kafka key.", examples=["inc-000042"]
    )
    model: ModelName
    model_version: int | None = Field(
        default=None, ge=1, description="Model version concerned.", examples=[3]
    )
    status: IncidentStatus = Field(
        description="Status after this fact.", examples=[IncidentStatus.OPEN]
    )
    tier: Tier = Field(description="Tier holding it after this fact.", examples=[Tier.L1])
    actor: str = Field(
        min_length=1,
        description="Who did it: a person's name, or `system:<component>`.",
        examples=["system:incident-log"],
    )


class IncidentOpened(IncidentEvent):
    """A new incident was opened from an alert."""

    type: Literal["incident.opened"] = "incident.opened"
    title: str = Field(
        description="One line for a person.", examples=["breast-cancer v3: recall decay"]
    )
    severity: Severity = Field(
        description="Severity of the opening alert.", examples=[Severity.CRITICAL]
    )
    kind: AlertKind = Field(
        description="Kind of the alert that opened it.", examples=[AlertKind.METRIC_DECAY]
    )
    fingerprint: str = Field(
        description="Fingerprint of the alert that opened it.",
        examples=["breast-cancer:v3:metric_decay:recall"],
    )


class IncidentAlertAttached(IncidentEvent):
    """An alert joined an open incident: a repeat of its fingerprint, or a correlated signal."""

    type: Literal["incident.alert_attached"] = "incident.alert_attached"
    fingerprint: str = Field(
        description="Fingerprint of the attached alert.",
        examples=["breast-cancer:v3:data_drift:mean radius"],
    )
    kind: AlertKind = Field(
        description="Kind of the attached alert.", examples=[AlertKind.DATA_DRIFT]
    )
    occurrences: int = Field(
        ge=1, description="Times this fingerprint was seen on the incident.", examples=[4]
    )
    correlated: bool = Field(
        description="True when a different signal was correlated into the incident.",
        examples=[True],
    )


class IncidentAcknowledged(IncidentEvent):
    """A responder acknowledged the incident."""

    type: Literal["incident.acknowledged"] = "incident.acknowledged"


class IncidentClaimed(IncidentEvent):
    """A responder took ownership of the incident for a while (renewed by activity)."""

    type: Literal["incident.claimed"] = "incident.claimed"
    owner: str = Field(description="Who holds it.", examples=["ana"])
    lease_expires_at: AwareDatetime = Field(
        description="When the claim lapses without activity.", examples=["2026-11-22T11:00:00Z"]
    )
    taken_over_from: str | None = Field(
        default=None, description="Previous holder, on an explicit take-over.", examples=["bo"]
    )


class IncidentEscalated(IncidentEvent):
    """The incident moved to a higher tier."""

    type: Literal["incident.escalated"] = "incident.escalated"
    from_tier: Tier = Field(description="Tier before.", examples=[Tier.L1])
    trigger: EscalationTrigger = Field(
        description="What caused it.", examples=[EscalationTrigger.VERIFICATION_FAILED]
    )
    reason: str = Field(
        description="Why, for a person.",
        examples=["rollback verified false: recall still 0.81"],
    )


class IncidentStatusChanged(IncidentEvent):
    """The incident moved between mitigation states (mitigating, monitoring)."""

    type: Literal["incident.status_changed"] = "incident.status_changed"
    from_status: IncidentStatus = Field(
        description="Status before.", examples=[IncidentStatus.ACKNOWLEDGED]
    )
    reason: str = Field(description="Why.", examples=["runbook rollback-model verified"])


class IncidentResolved(IncidentEvent):
    """The incident is resolved."""

    type: Literal["incident.resolved"] = "incident.resolved"
    from_status: IncidentStatus = Field(
        description="Status before.", examples=[IncidentStatus.MONITORING]
    )
    reason: str = Field(
        description="How it was resolved.", examples=["recall held above 0.95 for 3 windows"]
    )


class IncidentReopened(IncidentEvent):
    """A resolved incident was reopened: by a person, or by a recurrence soon after."""

    type: Literal["incident.reopened"] = "incident.reopened"
    reason: str = Field(description="Why.", examples=["recurred 4 min after resolution"])


class IncidentCommented(IncidentEvent):
    """A responder added a comment to the timeline."""

    type: Literal["incident.commented"] = "incident.commented"
    text: str = Field(
        min_length=1, max_length=10_000, description="The comment.", examples=["looking into it"]
    )

"""Pages: every attempt to tell a person about an incident, published on ``notifications``.

The incident log pages people when an incident reaches their tier, reminds them while nobody
acknowledges it, and tells everyone it paged when someone acknowledges it or it resolves. Each
delivery attempt to one contact is one :class:`NotificationAttempted` (keyed by incident id), so an
outside system can audit who was told what, when, and whether it arrived.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from contracts.envelope import Envelope
from contracts.incidents import Tier
from contracts.values import ModelName

__all__ = ["Channel", "DeliveryOutcome", "NotificationAttempted", "NotificationReason"]


class Channel(StrEnum):
    """How a contact is reached."""

    WEBHOOK = "webhook"
    CHAT = "chat"
    EMAIL = "email"
    PAGERDUTY = "pagerduty"


class NotificationReason(StrEnum):
    """Why a person is told."""

    PAGE = "page"
    REMINDER = "reminder"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    DIGEST = "digest"


class DeliveryOutcome(StrEnum):
    """What became of one attempt."""

    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"


class NotificationAttempted(Envelope):
    """One attempt to deliver a notification about an incident to one contact of one person."""

    type: Literal["notification.attempted"] = "notification.attempted"
    incident_id: str = Field(
        min_length=1, description="Incident id; the Kafka key.", examples=["inc-4f2a9c01d3"]
    )
    model: ModelName
    tier: Tier = Field(description="The tier the notification is about.", examples=[Tier.L1])
    person: str = Field(min_length=1, description="Who was told.", examples=["ana"])
    channel: Channel = Field(description="Through which channel.", examples=[Channel.WEBHOOK])
    reason: NotificationReason = Field(
        description="Why the person was told.", examples=[NotificationReason.PAGE]
    )
    idempotency_key: str = Field(
        min_length=1,
        description="Stable per notification; the receiver sees it on every attempt.",
        examples=["ntf-2b0c3c7e5d1f4a8b9c0d"],
    )
    attempt: int = Field(ge=1, description="Which attempt this was.", examples=[1])
    outcome: DeliveryOutcome = Field(
        description="Delivered, retrying later, or given up.", examples=[DeliveryOutcome.DELIVERED]
    )
    error: str | None = Field(
        default=None,
        max_length=2000,
        description="Why the attempt failed, if it did.",
        examples=["HTTP 503 from the receiver"],
    )

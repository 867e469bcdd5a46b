"""The dead man's switch: a heartbeat that came all the way through the alert path.

A watcher (the ``vigil up`` supervisor) publishes an :class:`~contracts.alerts.AlertRaised` of
kind ``heartbeat`` every interval. The incident log takes it off ``alerts`` like any alert, writes
it down instead of opening an incident, and its paging dispatcher answers each with one
:class:`HeartbeatEchoed` on ``heartbeats``, published through its outbox. An echo therefore proves
that the alerts topic, the incident log's consumer and database, its paging loop and its outbox
relay all work; their silence is what the watcher pages about.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from contracts.envelope import Envelope

__all__ = ["HeartbeatEchoed"]


class HeartbeatEchoed(Envelope):
    """The incident log's paging dispatcher answered a ``heartbeat`` alert."""

    type: Literal["heartbeat.echoed"] = "heartbeat.echoed"
    source: str = Field(
        min_length=1,
        max_length=200,
        description="Who sent the heartbeat alert (its fingerprint's subject); the Kafka key.",
        examples=["supervisor-5f0c2a"],
    )
    alert_event_id: UUID = Field(
        description="event_id of the heartbeat alert answered.",
        examples=["7d9f3c5e-8a41-4d2b-9c1e-2f6a8b0d4e11"],
    )
    sent_at: AwareDatetime = Field(
        description="When the heartbeat alert was sent (its occurred_at).",
        examples=["2026-12-04T20:00:00Z"],
    )
    received_at: AwareDatetime = Field(
        description="When the incident log took the alert off the alerts topic.",
        examples=["2026-12-04T20:00:00.150Z"],
    )

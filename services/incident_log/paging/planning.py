"""Whom an incident change pages, and when a failed delivery is tried again.

Pure. :func:`page_intents` reads what an operation did to an incident (its timeline entries) and
says which notifications it causes: a **page** when the incident reaches a tier (routed, escalated,
reopened; when one operation passes several tiers, only the last is paged), a **reminder** when a
tier's reminder falls due unacknowledged, and a **notice** to everyone paged so far when someone
acknowledges it or it resolves. :func:`resolve_recipients` turns a tier's targets into people at a
moment: on-call schedules, named people, or the model's owners (people or schedules), falling back
to the tier's schedules when no owner can be reached.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from contracts.incidents import Tier
from contracts.notifications import NotificationReason
from services.incident_log.domain import Effects, Incident
from services.incident_log.paging.schedules import Override, Schedule, on_call

__all__ = ["PAGED", "PageIntent", "Recipients", "page_intents", "resolve_recipients", "retry_delay"]

PAGED = "paged"
"""The target of a notice: everyone paged about the incident so far."""

_TIER_REACHED = {"routed", "escalated", "reopened"}


@dataclass(frozen=True)
class PageIntent:
    """A notification to send about an incident, before it is known who exactly gets it."""

    incident_id: str
    tier: Tier
    reason: NotificationReason
    targets: tuple[str, ...]
    at: datetime
    actor: str | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)


def page_intents(incident: Incident, effects: Effects) -> list[PageIntent]:
    """The notifications one operation on an incident causes (after the operation)."""
    if incident.route is None:
        return []  # not routed yet: nobody is paged before the group wait gathers the story
    intents: list[PageIntent] = []
    reached: PageIntent | None = None
    for entry in effects.timeline:
        if entry.action in _TIER_REACHED and entry.to_tier is not None:
            reached = _intent(incident, NotificationReason.PAGE, entry.at, entry.to_tier)
        elif entry.action == "reminder_due":
            tier = Tier(entry.details["tier"])
            intents.append(_intent(incident, NotificationReason.REMINDER, entry.at, tier))
        elif entry.action == "acknowledged":
            intents.append(
                _intent(
                    incident,
                    NotificationReason.ACKNOWLEDGED,
                    entry.at,
                    incident.tier,
                    actor=entry.actor,
                )
            )
        elif entry.action == "resolved":
            intents.append(
                _intent(
                    incident,
                    NotificationReason.RESOLVED,
                    entry.at,
                    incident.tier,
                    actor=entry.actor,
                )
            )
    if reached is not None and reached.tier is incident.tier:
        intents.insert(0, reached)
    return intents


def _intent(
    incident: Incident,
    reason: NotificationReason,
    at: datetime,
    tier: Tier,
    *,
    actor: str | None = None,
) -> PageIntent:
    assert incident.route is not None
    if reason in (NotificationReason.PAGE, NotificationReason.REMINDER):
        targets = tuple(incident.route.tiers[tier].notify_targets(tier))
    else:
        targets = (PAGED,)
    return PageIntent(
        incident_id=incident.id,
        tier=tier,
        reason=reason,
        targets=targets,
        at=at,
        actor=actor,
        snapshot={
            "title": incident.title,
            "model": incident.model,
            "model_version": incident.model_version,
            "status": incident.status.value,
            "severity": incident.severity.value,
            "route": incident.route.name,
            "epoch": incident.epoch,
        },
    )


@dataclass(frozen=True)
class Recipients:
    """The people a page reaches, and what could not be resolved (for the timeline)."""

    people: list[str]
    unresolved: list[str]


def resolve_recipients(
    targets: Sequence[str],
    tier: Tier,
    at: datetime,
    *,
    schedules: Mapping[str, Schedule],
    overrides: Sequence[Override],
    owners: Sequence[str],
    people: frozenset[str],
) -> Recipients:
    """Who ``targets`` name at ``at`` (each person once, in target order)."""
    found: list[str] = []
    unresolved: list[str] = []

    def from_schedule(name: str) -> bool:
        schedule = schedules.get(name)
        person = on_call(schedule, overrides, at).person if schedule else None
        if person is None:
            unresolved.append(
                f"schedule {name}: " + ("nobody on call" if schedule else "no such schedule")
            )
            return False
        found.append(person)
        return True

    def tier_schedules() -> None:
        names = sorted(name for name, s in schedules.items() if s.tier is tier)
        if not names:
            unresolved.append(f"no schedule answers for {tier.value}")
        for name in names:
            from_schedule(name)

    for target in targets:
        kind, _, name = target.partition(":")
        if kind == "schedule":
            from_schedule(name)
        elif kind == "person":
            (found if name in people else unresolved).append(
                name if name in people else f"person {name}: unknown"
            )
        elif kind == "tier":
            tier_schedules()
        elif kind == "owners":
            reached = False
            for owner in owners:
                if owner in people:
                    found.append(owner)
                    reached = True
                elif owner in schedules:
                    reached = from_schedule(owner) or reached
                else:
                    unresolved.append(f"owner {owner}: neither a person nor a schedule")
            if not reached:
                tier_schedules()
    return Recipients(list(dict.fromkeys(found)), unresolved)


def retry_delay(
    attempt: int, *, base: timedelta, cap: timedelta, rng: random.Random | None = None
) -> timedelta:
    """How long to wait after failed attempt number ``attempt`` (1-based): exponential, capped,
    with half of it jittered so that receivers coming back are not hit by every retry at once."""
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2 ** min(attempt - 1, 30))
    jitter = (rng or random).uniform(0, ceiling / 2)
    return timedelta(seconds=ceiling / 2 + jitter)

"""Response statistics from incidents and their timelines: MTTA and MTTR, and what L1 resolves.

Pure. **MTTA** at a tier is the time from an incident reaching the tier (opening, escalation,
reopening) to the first acknowledgement at that tier; **MTTR** is the time from opening to the
(last) resolution, counted at the tier that resolved it. Both are means in seconds, broken down
per tier, per model and per alert kind (the kind that opened the incident).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import fmean

__all__ = ["Breakdown", "IncidentFacts", "ResponseStats", "TimelineFact", "response_stats"]


@dataclass(frozen=True)
class IncidentFacts:
    """What the statistics need of an incident."""

    id: str
    model: str
    kind: str
    opened_at: datetime
    resolved_at: datetime | None
    resolved_tier: str | None


@dataclass(frozen=True)
class TimelineFact:
    """What the statistics need of a timeline entry."""

    incident_id: str
    at: datetime
    action: str
    tier: str | None


@dataclass
class Breakdown:
    """Figures for one group (a tier, a model or a kind)."""

    incidents: int = 0
    acknowledged: int = 0
    resolved: int = 0
    mtta_seconds: float | None = None
    mttr_seconds: float | None = None


@dataclass
class ResponseStats:
    """All the figures the console and API show."""

    incidents: int
    unresolved: int
    resolved: int
    resolved_at_l1: int
    share_resolved_at_l1: float | None
    mtta_seconds: float | None
    mttr_seconds: float | None
    by_tier: dict[str, Breakdown] = field(default_factory=dict)
    by_model: dict[str, Breakdown] = field(default_factory=dict)
    by_kind: dict[str, Breakdown] = field(default_factory=dict)


_ARRIVALS = frozenset({"opened", "escalated", "reopened"})


def response_stats(
    incidents: Sequence[IncidentFacts], timeline: Iterable[TimelineFact]
) -> ResponseStats:
    """Compute MTTA / MTTR overall and per tier, model and kind, and the share resolved at L1."""
    by_id = {incident.id: incident for incident in incidents}
    acks: list[tuple[IncidentFacts, str, float]] = []
    reached: dict[str, set[str]] = defaultdict(set)
    waiting: dict[str, tuple[str, datetime]] = {}
    for fact in timeline:
        if fact.incident_id not in by_id or fact.tier is None:
            continue
        if fact.action in _ARRIVALS:
            waiting[fact.incident_id] = (fact.tier, fact.at)
            reached[fact.tier].add(fact.incident_id)
        elif fact.action == "acknowledged" and fact.incident_id in waiting:
            tier, since = waiting.pop(fact.incident_id)
            if tier == fact.tier:
                acks.append((by_id[fact.incident_id], tier, (fact.at - since).total_seconds()))

    repairs = [
        (incident, (incident.resolved_at - incident.opened_at).total_seconds())
        for incident in incidents
        if incident.resolved_at is not None and incident.resolved_tier is not None
    ]

    by_tier: dict[str, Breakdown] = {
        tier: Breakdown(incidents=len(ids)) for tier, ids in reached.items()
    }
    by_model: dict[str, Breakdown] = defaultdict(Breakdown)
    by_kind: dict[str, Breakdown] = defaultdict(Breakdown)
    for incident in incidents:
        by_model[incident.model].incidents += 1
        by_kind[incident.kind].incidents += 1
    _fill(by_tier, [(tier, seconds) for _, tier, seconds in acks], "ack")
    _fill(by_model, [(incident.model, seconds) for incident, _, seconds in acks], "ack")
    _fill(by_kind, [(incident.kind, seconds) for incident, _, seconds in acks], "ack")
    _fill(by_tier, [(i.resolved_tier or "", seconds) for i, seconds in repairs], "repair")
    _fill(by_model, [(i.model, seconds) for i, seconds in repairs], "repair")
    _fill(by_kind, [(i.kind, seconds) for i, seconds in repairs], "repair")

    resolved = len(repairs)
    at_l1 = sum(1 for incident, _ in repairs if incident.resolved_tier == "L1")
    return ResponseStats(
        incidents=len(incidents),
        unresolved=len(incidents) - resolved,
        resolved=resolved,
        resolved_at_l1=at_l1,
        share_resolved_at_l1=at_l1 / resolved if resolved else None,
        mtta_seconds=fmean(s for _, _, s in acks) if acks else None,
        mttr_seconds=fmean(s for _, s in repairs) if repairs else None,
        by_tier=dict(by_tier),
        by_model=dict(by_model),
        by_kind=dict(by_kind),
    )


def _fill(groups: dict[str, Breakdown], samples: list[tuple[str, float]], what: str) -> None:
    collected: dict[str, list[float]] = defaultdict(list)
    for key, seconds in samples:
        collected[key].append(seconds)
    for key, values in collected.items():
        group = groups.setdefault(key, Breakdown())
        if what == "ack":
            group.acknowledged = len(values)
            group.mtta_seconds = fmean(values)
        else:
            group.resolved = len(values)
            group.mttr_seconds = fmean(values)

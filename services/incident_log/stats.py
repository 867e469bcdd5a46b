"""Response statistics from incidents and their timelines: MTTA and MTTR, and what L1 resolves.

Pure. **MTTA** at a tier is the time from an incident reaching the tier (opening, escalation,
reopening) to the first acknowledgement at that tier; **MTTR** is the time from opening to the
(last) resolution, counted at the tier that resolved it. Both are means in seconds, broken down
per tier, per model and per alert kind (the kind that opened the incident).

**Over time** (:func:`stats_over_time`), incidents fall in the time bucket they opened in, and
each bucket holds the same figures for its incidents, so a chart of MTTA per tier per day reads
one series per tier. **Runbook rates** (:func:`runbook_rates`) count finished runs per runbook:
the *success rate* is the share of runs that acted and whose verification confirmed the effect
(``succeeded``); the *verification rate* is, among the runs whose command worked and whose
verification ran (``succeeded`` or ``verify_failed``), the share it confirmed. Runs that never
acted (``expired``, ``skipped``, ``refused``) are counted apart and in neither rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import fmean

__all__ = [
    "BUCKETS",
    "Breakdown",
    "Bucket",
    "IncidentFacts",
    "ResponseStats",
    "RunFact",
    "RunbookRates",
    "TimelineFact",
    "bucket_span",
    "response_stats",
    "runbook_rates",
    "stats_over_time",
]


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
class RunbookRates:
    """How one runbook's finished runs went."""

    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    verify_failed: int = 0
    not_applied: int = 0
    success_rate: float | None = None
    verification_rate: float | None = None


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
    runbooks: dict[str, RunbookRates] = field(default_factory=dict)


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


@dataclass
class Bucket:
    """The figures of the incidents opened in ``[start, end)``."""

    start: datetime
    end: datetime
    stats: ResponseStats


BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
"""The bucket widths the API offers."""

_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)


def bucket_span(width: timedelta, count: int, until: datetime) -> tuple[datetime, datetime]:
    """The ``count`` whole buckets ending with the one that holds ``until`` (UTC; hours on
    the hour, days at midnight, weeks on Mondays).

    >>> bucket_span(timedelta(days=1), 2, datetime(2026, 1, 7, 15, tzinfo=UTC))
    (datetime.datetime(2026, 1, 6, 0, 0, tzinfo=datetime.timezone.utc), \
datetime.datetime(2026, 1, 8, 0, 0, tzinfo=datetime.timezone.utc))
    """
    end = _MONDAY + ((until - _MONDAY) // width + 1) * width
    return end - count * width, end


def stats_over_time(
    incidents: Sequence[IncidentFacts],
    timeline: Sequence[TimelineFact],
    *,
    width: timedelta,
    since: datetime,
    until: datetime,
) -> list[Bucket]:
    """Response figures per time bucket of ``width`` from ``since`` to ``until`` (every bucket,
    empty ones too, so a series has no gaps); an incident counts in the bucket it opened in."""
    if width <= timedelta(0):
        raise ValueError("the bucket width must be positive")
    # One pass over each list (not one per bucket): a year of hours over a long history.
    members: dict[int, list[IncidentFacts]] = defaultdict(list)
    for incident in incidents:
        if since <= incident.opened_at < until:
            members[(incident.opened_at - since) // width].append(incident)
    facts_of: dict[str, list[TimelineFact]] = defaultdict(list)
    for fact in timeline:
        facts_of[fact.incident_id].append(fact)
    buckets: list[Bucket] = []
    start, index = since, 0
    while start < until:
        end = start + width
        opened = members.get(index, [])
        facts = [fact for incident in opened for fact in facts_of.get(incident.id, [])]
        buckets.append(Bucket(start, end, response_stats(opened, facts)))
        start, index = end, index + 1
    return buckets


@dataclass(frozen=True)
class RunFact:
    """What the rates need of a finished run."""

    runbook: str
    state: str


_NOT_APPLIED = frozenset({"expired", "skipped", "refused"})


def runbook_rates(runs: Iterable[RunFact]) -> dict[str, RunbookRates]:
    """Success and verification rates per runbook.

    >>> rates = runbook_rates([RunFact("r", "succeeded"), RunFact("r", "verify_failed"),
    ...                        RunFact("r", "failed"), RunFact("r", "skipped")])
    >>> rates["r"].success_rate, rates["r"].verification_rate
    (0.3333333333333333, 0.5)
    """
    rates: dict[str, RunbookRates] = defaultdict(RunbookRates)
    for run in runs:
        figures = rates[run.runbook]
        figures.runs += 1
        if run.state == "succeeded":
            figures.succeeded += 1
        elif run.state == "verify_failed":
            figures.verify_failed += 1
        elif run.state in _NOT_APPLIED:
            figures.not_applied += 1
        else:
            figures.failed += 1
    for figures in rates.values():
        acted = figures.runs - figures.not_applied
        verified = figures.succeeded + figures.verify_failed
        figures.success_rate = figures.succeeded / acted if acted else None
        figures.verification_rate = figures.succeeded / verified if verified else None
    return dict(sorted(rates.items()))

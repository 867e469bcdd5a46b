"""When to retrain: admitting asks into runs, the maintenance schedule, the alert policy. Pure.

Asks come from ``retrain.requests`` (an incident's level two, the CLI), from the schedule in the
champion's maintenance instructions, and, when turned on, from alerts. Each names a *cause*, its
deduplication key. Per model there is at most one **queued** run (not started: every new ask joins
it) and at most one **running** run::

    ask ──▶ a queued or running run of the model has this cause ────────▶ merged (nothing new)
        ──▶ a finished run had this cause (however long ago) ──────────▶ refused (already retrained)
        ──▶ a run is queued ────────────────────────────────────────────▶ joins it
        ──▶ otherwise ───▶ a new queued run, not before the last run's end + cooldown

    queued ──(worker: no run running, not_before reached)──▶ running ──▶ finished

So concurrent duplicate asks make one run, a cause is retrained for once (a repeated alert cannot
loop retrains; asking again for the same incident needs a new cause, which the CLI can give), asks
that arrive while a run trains make one more run after it, and a model is not retrained more
often than the cooldown allows. Every decision, refusals included, is answered on ``models``
(``contracts.RetrainAnswered``): whoever asked learns whether a run will train for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import JsonValue

from contracts.alerts import AlertKind, AlertRaised, Severity
from contracts.retraining import RetrainRefusal, RetrainTrigger

__all__ = [
    "Admission",
    "AdmissionKind",
    "AlertPolicy",
    "RetrainAsk",
    "RunState",
    "RunView",
    "admit",
    "ask_for_alert",
    "scheduled_cause",
]


class RunState(StrEnum):
    """Where a run is."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self in (RunState.QUEUED, RunState.RUNNING)


@dataclass(frozen=True)
class RetrainAsk:
    """One ask to retrain a model, whatever its source."""

    model: str
    cause: str
    trigger: RetrainTrigger
    requested_by: str
    reason: str
    at: datetime
    incident_id: str | None = None
    parameters: Mapping[str, JsonValue] | None = None
    via: str | None = None


@dataclass(frozen=True)
class RunView:
    """What admission needs to know of a run of the model."""

    run_id: str
    state: RunState
    causes: frozenset[str]
    finished_at: datetime | None = None
    parameters: Mapping[str, JsonValue] | None = None


class AdmissionKind(StrEnum):
    """What became of an ask."""

    MERGED = "merged"
    JOINED = "joined"
    QUEUED = "queued"
    REFUSED = "refused"


@dataclass(frozen=True)
class Admission:
    """The decision on an ask: the run it belongs to (if any) and why."""

    kind: AdmissionKind
    reason: str
    run_id: str | None = None
    not_before: datetime | None = None
    refusal: RetrainRefusal | None = None


def admit(
    ask: RetrainAsk, runs: Sequence[RunView], *, cooldown: timedelta, now: datetime
) -> Admission:
    """Decide what an ask does, given the model's runs (any order): at least the queued and
    running ones, the last finished one, and every run that has the ask's cause."""
    queued = next((run for run in runs if run.state is RunState.QUEUED), None)
    running = next((run for run in runs if run.state is RunState.RUNNING), None)
    finished = sorted(
        (run for run in runs if run.finished_at is not None and not run.state.active),
        key=lambda run: run.finished_at or now,
    )
    for run in (queued, running):
        if run is not None and ask.cause in run.causes:
            return Admission(
                AdmissionKind.MERGED,
                f"{ask.cause} is in run {run.run_id} ({run.state.value})",
                run.run_id,
            )
    for run in reversed(finished):
        if ask.cause in run.causes:
            assert run.finished_at is not None
            return Admission(
                AdmissionKind.REFUSED,
                f"{ask.cause} was already retrained for in run {run.run_id} ({run.state.value} "
                f"{run.finished_at.isoformat()}); ask with a new cause to retrain again",
                run.run_id,
                refusal=RetrainRefusal.ALREADY_RETRAINED,
            )
    if queued is not None:
        if dict(queued.parameters or {}) != dict(ask.parameters or {}):
            return Admission(
                AdmissionKind.REFUSED,
                f"run {queued.run_id} of {ask.model} is queued with other training parameters; "
                "ask again once it has started",
                queued.run_id,
                refusal=RetrainRefusal.CONFLICTING_PARAMETERS,
            )
        return Admission(AdmissionKind.JOINED, f"joined queued run {queued.run_id}", queued.run_id)
    not_before = now
    if finished:
        last = finished[-1].finished_at
        assert last is not None
        not_before = max(now, last + cooldown)
    return Admission(AdmissionKind.QUEUED, "a new run", not_before=not_before)


def scheduled_cause(
    every_hours: float | None, *, last_asked: datetime | None, since: datetime, now: datetime
) -> str | None:
    """Return the cause of a scheduled retrain that is due now, if one is.

    The schedule counts from the last time the model was asked to retrain (by anyone), else
    from ``since`` (when the champion was registered). The cause names the due time, so
    replicas that look at the same moment ask for the same run.

    >>> from datetime import UTC, datetime
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> scheduled_cause(24, last_asked=None, since=t0, now=t0 + timedelta(hours=30))
    'schedule:2026-01-02T00:00:00+00:00'
    >>> scheduled_cause(24, last_asked=t0 + timedelta(hours=20), since=t0,
    ...                 now=t0 + timedelta(hours=30)) is None
    True
    """
    if every_hours is None:
        return None
    anchor = last_asked if last_asked is not None and last_asked > since else since
    period = timedelta(hours=every_hours)
    if now - anchor < period:
        return None
    # The latest due time at or before now, so a long outage makes one ask, not many.
    periods = math.floor((now - anchor) / period)
    return f"schedule:{(anchor + periods * period).isoformat()}"


@dataclass(frozen=True)
class AlertPolicy:
    """Retrain on alerts of these kinds at or above this severity (off by default: incidents,
    through their level-two responders, drive retraining)."""

    enabled: bool = False
    kinds: frozenset[AlertKind] = field(
        default_factory=lambda: frozenset({AlertKind.METRIC_DECAY, AlertKind.DATA_DRIFT})
    )
    min_severity: Severity = Severity.CRITICAL


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def ask_for_alert(alert: AlertRaised, policy: AlertPolicy) -> RetrainAsk | None:
    """Return the ask an alert makes under the policy, if any; its cause is the alert's
    fingerprint, so repeats of one signal make one retrain."""
    if not policy.enabled or alert.kind not in policy.kinds:
        return None
    if _SEVERITY_RANK[alert.severity] < _SEVERITY_RANK[policy.min_severity]:
        return None
    return RetrainAsk(
        model=alert.model,
        cause=f"alert:{alert.fingerprint}",
        trigger=RetrainTrigger.POLICY,
        requested_by="system:retrain-policy",
        reason=f"{alert.kind.value} alert: {alert.summary}",
        at=alert.occurred_at,
    )

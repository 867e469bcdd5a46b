"""What an incoming alert does: repeat, silence, inhibit, correlate, reopen, or open.

Pure. The rules, in order:

1. **repeat** — an unresolved incident already holds the alert's fingerprint: count it there
   (deduplication; nobody is paged again);
2. **silenced** — an active silence matches: record the alert, page no one;
3. **inhibited** — an inhibition rule's source is active (a signal on an open incident, or a
   retrain in flight) and the rule targets this alert: record it, page no one;
4. **correlated** — an unresolved incident about the same model version (or the champion a step
   taken for it put in place) saw an alert within the correlation window: the alert joins it, so
   drift + low confidence + decay — and the rolled-back-to version's troubles — tell one story;
5. **reopened** — an incident that held the fingerprint was resolved within the reopen window;
6. **opened** — a new incident, routed by the policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from contracts.alerts import AlertRaised
from services.incident_log.domain import Incident
from services.incident_log.routing import InhibitionRule, Matcher, RoutingPolicy

__all__ = ["Disposition", "Silence", "Triage", "triage"]


class Disposition(StrEnum):
    """What became of an alert."""

    OPENED = "opened"
    REPEATED = "repeated"
    CORRELATED = "correlated"
    REOPENED = "reopened"
    SILENCED = "silenced"
    INHIBITED = "inhibited"


@dataclass(frozen=True)
class Silence:
    """A maintenance window: matching alerts are recorded but page no one."""

    id: str
    matcher: Matcher
    starts_at: datetime
    ends_at: datetime
    created_by: str
    reason: str

    def silences(self, alert: AlertRaised, now: datetime) -> bool:
        """Whether this silence is active now and matches the alert."""
        return self.starts_at <= now < self.ends_at and self.matcher.matches(
            alert.model, alert.kind, alert.severity
        )


@dataclass(frozen=True)
class Triage:
    """The decision for one alert."""

    disposition: Disposition
    incident: Incident | None = None
    suppressed_by: str | None = None


def triage(
    alert: AlertRaised,
    *,
    unresolved: Sequence[Incident],
    resolved: Sequence[Incident],
    silences: Iterable[Silence],
    retraining_models: frozenset[str],
    policy: RoutingPolicy,
    now: datetime,
) -> Triage:
    """Decide what an alert does, given its model's unresolved and recently resolved incidents."""
    mine = [incident for incident in unresolved if incident.model == alert.model]
    for incident in mine:
        if alert.fingerprint in incident.signals:
            return Triage(Disposition.REPEATED, incident=incident)

    for silence in silences:
        if silence.silences(alert, now):
            return Triage(Disposition.SILENCED, suppressed_by=f"silence:{silence.id}")

    for rule in policy.inhibitions:
        if _inhibits(rule, alert, mine, retraining_models):
            return Triage(Disposition.INHIBITED, suppressed_by=f"inhibition:{rule.name}")

    related = [
        incident
        for incident in mine
        if incident.concerns_version(alert.model_version)
        and now - incident.last_seen <= policy.correlation_window
    ]
    if related:
        return Triage(Disposition.CORRELATED, incident=max(related, key=lambda i: i.last_seen))

    recent = [
        incident
        for incident in resolved
        if incident.model == alert.model
        and alert.fingerprint in incident.signals
        and incident.resolved_at is not None
        and now - incident.resolved_at <= policy.reopen_window
    ]
    if recent:
        return Triage(Disposition.REOPENED, incident=max(recent, key=_resolved_at))

    return Triage(Disposition.OPENED)


def _inhibits(
    rule: InhibitionRule,
    alert: AlertRaised,
    unresolved: Sequence[Incident],
    retraining_models: frozenset[str],
) -> bool:
    if not rule.target.matches(alert.model, alert.kind, alert.severity):
        return False
    if rule.retrain_in_flight:
        return alert.model in retraining_models
    assert rule.source is not None
    for incident in unresolved:
        for signal in incident.active_signals:
            if signal.fingerprint == alert.fingerprint:
                continue
            if "model_version" in rule.equal and signal.model_version != alert.model_version:
                continue
            if rule.source.matches(incident.model, signal.kind, signal.severity):
                return True
    return False


def _resolved_at(incident: Incident) -> datetime:
    assert incident.resolved_at is not None
    return incident.resolved_at

"""Incidents: what an alert does to them, and everything a person or a timer can do to one.

Pure: no I/O, no clock. Each operation takes ``now``, changes the :class:`Incident` in place and
returns :class:`Effects` — the timeline entries, the events to publish, and the timers to schedule —
which the store commits in one transaction.

An incident holds **signals**: one per alert fingerprint that joined it (the one that opened it, its
repeats, and correlated alerts about the same model version). It is resolved when no signal is
active any more, or by a person. Tiers::

    L1 operations (runbooks) ──▶ L2 incident data scientists ──▶ L3 the model's owners

An incident opens at level one and is **routed** ``group_wait`` later (or at once when that is
zero): the first policy route that matches any of its active signals is frozen into it, so alerts
that arrive together (drift, low confidence, decay) are routed as one story, and editing the policy
never changes a running escalation. A route without level-one runbooks escalates to L2 at once;
such an incident is re-routed when a later signal matches an earlier route (``_reroute``).

Escalation happens on timers (not acknowledged / not mitigated in time, per tier, from the frozen
route) and on semantic triggers (runbook failed, verification failed, runbook not applied, no
runbook, a person). Each escalation bumps the incident's ``epoch``; a timer scheduled under an
older epoch does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, assert_never

from contracts.alerts import AlertKind, AlertRaised, AlertRecovered, Severity
from contracts.envelope import Envelope
from contracts.incidents import (
    EscalationTrigger,
    IncidentAcknowledged,
    IncidentAlertAttached,
    IncidentClaimed,
    IncidentCommented,
    IncidentEscalated,
    IncidentOpened,
    IncidentReopened,
    IncidentResolved,
    IncidentStatus,
    IncidentStatusChanged,
    Tier,
)
from contracts.monitoring import MetricsComputed
from contracts.registry import (
    SUPPORTED_METRICS,
    CandidateEvaluated,
    ModelApproved,
    ModelPromoted,
    ModelRegistered,
    ModelRejected,
    ModelRolledBack,
    PromotionExpired,
    PromotionRequested,
    RetrainFinished,
    RetrainStarted,
)
from contracts.retraining import RetrainAnswered, RetrainRequest, RetrainTrigger
from contracts.runbooks import RunbookFinished, RunbookRequest, RunbookStarted, RunState
from contracts.values import Variant
from services.incident_log.approvals import ApprovalState, HeldRun
from services.incident_log.lifecycle import Action, InvalidTransition, next_status
from services.incident_log.retrains import answer_details
from services.incident_log.routing import Route, RoutingPolicy, route_for

__all__ = [
    "SYSTEM",
    "ClaimConflict",
    "DomainError",
    "Effects",
    "Incident",
    "InvalidTransition",
    "ModelNews",
    "NotResolvable",
    "Signal",
    "TimelineEntry",
    "TimerKind",
    "TimerRequest",
    "next_tier",
]

ModelNews = (
    RetrainAnswered
    | RetrainStarted
    | RetrainFinished
    | ModelRegistered
    | CandidateEvaluated
    | PromotionRequested
    | PromotionExpired
    | ModelApproved
    | ModelRejected
    | ModelPromoted
    | ModelRolledBack
)
"""What the registry and retrainer report about the model of an incident that caused it."""

SYSTEM = "system:incident-log"
PRODUCER = "incident-log"
_RETRAINER = "system:retrainer"

_TIER_ORDER = [Tier.L1, Tier.L2, Tier.L3]
_PERFORMANCE_KINDS = frozenset({AlertKind.METRIC_DECAY, AlertKind.CHALLENGER_WORSE})


class DomainError(ValueError):
    """An action the incident's state refuses; the message says why."""


class ClaimConflict(DomainError):
    """Someone else holds the incident; acting on it needs an explicit take-over."""


class NotResolvable(DomainError):
    """A performance incident cannot be resolved before labels confirm the fix."""


def next_tier(tier: Tier) -> Tier | None:
    """Return the tier above, or ``None`` at the top."""
    position = _TIER_ORDER.index(tier)
    return _TIER_ORDER[position + 1] if position + 1 < len(_TIER_ORDER) else None


class TimerKind(StrEnum):
    """What a timer checks when it fires."""

    ROUTE = "route"
    ACKNOWLEDGE = "acknowledge"
    MITIGATE = "mitigate"
    REMIND = "remind"


@dataclass(frozen=True)
class TimerRequest:
    """A timer to store: fire at ``due_at``; it only acts if the incident is still at ``epoch``."""

    incident_id: str
    kind: TimerKind
    tier: Tier
    due_at: datetime
    epoch: int


@dataclass(frozen=True)
class TimelineEntry:
    """One line of an incident's append-only history."""

    at: datetime
    actor: str
    action: str
    from_status: IncidentStatus | None = None
    to_status: IncidentStatus | None = None
    from_tier: Tier | None = None
    to_tier: Tier | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Effects:
    """What an operation produced, to be committed together."""

    timeline: list[TimelineEntry] = field(default_factory=list)
    events: list[Envelope] = field(default_factory=list)
    timers: list[TimerRequest] = field(default_factory=list)

    def record(self, entry: TimelineEntry, event: Envelope | None = None) -> None:
        """Add a line to the timeline and, when the step is published, its event: written as one
        call so that no event goes out without the timeline line that explains it."""
        self.timeline.append(entry)
        if event is not None:
            self.events.append(event)

    def __iadd__(self, other: Effects) -> Effects:
        self.timeline += other.timeline
        self.events += other.events
        self.timers += other.timers
        return self

    @property
    def empty(self) -> bool:
        """Whether nothing happened."""
        return not (self.timeline or self.events or self.timers)


@dataclass
class Signal:
    """One alert fingerprint on an incident, with its repeats and whether it recovered."""

    fingerprint: str
    kind: AlertKind
    severity: Severity
    model_version: int | None
    first_seen: datetime
    last_seen: datetime
    summary: str
    evidence: dict[str, Any]
    occurrences: int = 1
    recovered_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Whether the signal still reports a problem."""
        return self.recovered_at is None

    @property
    def about_performance(self) -> bool:
        """Whether only labels can confirm this signal is fixed."""
        return self.kind in _PERFORMANCE_KINDS


@dataclass
class Incident:
    """An incident and its signals; mutated by its methods, which return their effects."""

    id: str
    model: str
    model_version: int | None
    title: str
    severity: Severity
    kind: AlertKind
    fingerprint: str
    opened_at: datetime
    last_seen: datetime
    route: Route | None = None
    routed_at: datetime | None = None
    status: IncidentStatus = IncidentStatus.OPEN
    tier: Tier = Tier.L1
    tier_entered_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_tier: Tier | None = None
    owner: str | None = None
    lease_expires_at: datetime | None = None
    claim_lease: timedelta | None = None
    epoch: int = 0
    runbook_position: int = 0
    awaiting_version: int | None = None
    awaiting_since: datetime | None = None
    signals: dict[str, Signal] = field(default_factory=dict)

    # -- opening, repeats, correlation, recovery ---------------------------------------------

    @classmethod
    def open_from_alert(
        cls,
        incident_id: str,
        alert: AlertRaised,
        policy: RoutingPolicy,
        now: datetime,
        *,
        group_wait: timedelta = timedelta(0),
    ) -> tuple[Incident, Effects]:
        """Open an incident from an alert at level one; route it now or after ``group_wait``."""
        incident = cls(
            id=incident_id,
            model=alert.model,
            model_version=alert.model_version,
            title=_title(alert),
            severity=alert.severity,
            kind=alert.kind,
            fingerprint=alert.fingerprint,
            opened_at=now,
            last_seen=now,
            tier_entered_at=now,
        )
        incident.signals[alert.fingerprint] = _signal_from(alert, now)
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=SYSTEM,
                action="opened",
                to_status=IncidentStatus.OPEN,
                to_tier=Tier.L1,
                details=_alert_details(alert),
            ),
            IncidentOpened(
                **incident._envelope(SYSTEM, now),
                title=incident.title,
                severity=incident.severity,
                kind=incident.kind,
                fingerprint=incident.fingerprint,
            ),
        )
        if group_wait > timedelta(0):
            effects.timers.append(
                TimerRequest(
                    incident.id, TimerKind.ROUTE, Tier.L1, now + group_wait, incident.epoch
                )
            )
        else:
            effects += incident.route_by(policy, now)
        return incident, effects

    def route_by(self, policy: RoutingPolicy, now: datetime) -> Effects:
        """Freeze the first policy route matching any active signal; start the tier's timers.

        A route without level-one runbooks escalates to L2 at once (nothing scripted can help).
        """
        if self.route is not None or self.status is IncidentStatus.RESOLVED:
            return Effects()
        signals = self.active_signals or list(self.signals.values())
        route = route_for(policy, self.model, [(s.kind, s.severity) for s in signals])
        self.route = route
        self.routed_at = now
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=SYSTEM,
                action="routed",
                to_tier=self.tier,
                details={
                    "route": route.name,
                    "runbooks": list(route.runbooks),
                    "signals": sorted(s.fingerprint for s in signals),
                },
            )
        )
        if not route.runbooks and self.tier is Tier.L1:
            kinds = ", ".join(sorted({s.kind.value for s in signals}))
            effects += self.escalate(
                SYSTEM, EscalationTrigger.NO_RUNBOOK, f"no level-one runbook for {kinds}", now
            )
            return effects
        effects.timers += self._tier_timers(now)
        if self.tier is Tier.L1:
            effects += self._request_runbook(now)
        return effects

    def record_alert(self, alert: AlertRaised, policy: RoutingPolicy, now: datetime) -> Effects:
        """Attach an alert: a repeat of one of its signals, or a new, correlated signal (which
        may re-route the incident: :meth:`_reroute`)."""
        effects = Effects()
        self.last_seen = now
        signal = self.signals.get(alert.fingerprint)
        if signal is not None:
            signal.occurrences += 1
            signal.last_seen = now
            signal.summary = alert.summary
            signal.evidence = dict(alert.evidence)
            if signal.recovered_at is not None:
                signal.recovered_at = None
                effects.record(
                    TimelineEntry(
                        at=now,
                        actor=SYSTEM,
                        action="signal_refired",
                        details={"fingerprint": alert.fingerprint, "summary": alert.summary},
                    )
                )
            return effects
        self.signals[alert.fingerprint] = _signal_from(alert, now)
        if _more_severe(alert.severity, self.severity):
            self.severity = alert.severity
        effects.record(
            TimelineEntry(
                at=now, actor=SYSTEM, action="alert_correlated", details=_alert_details(alert)
            ),
            IncidentAlertAttached(
                **self._envelope(SYSTEM, now),
                fingerprint=alert.fingerprint,
                kind=alert.kind,
                occurrences=1,
                correlated=True,
            ),
        )
        effects += self._reroute(policy, now)
        return effects

    def _reroute(self, policy: RoutingPolicy, now: datetime) -> Effects:
        """Re-route a routed incident whose route has no runbooks when its signals now match an
        earlier route of the policy: the later evidence brings its own runbooks. An incident an
        ``estimated_decay`` or a drift opened takes the ``default`` route (no rollback on an
        estimate) and is at level two already; the realised ``metric_decay`` that joins it moves
        it to the route that rolls back, and while nobody has acknowledged it the route's first
        runbook is requested, as the policy asks for that evidence. Once a person has it, the
        runbook is theirs to run (no tier is given back either way). A route with runbooks is
        never swapped mid-flight (a runbook of it may be running), nor is a route the policy
        no longer has."""
        if self.route is None or self.route.runbooks or self.status is IncidentStatus.RESOLVED:
            return Effects()
        names = [route.name for route in policy.routes]
        signals = self.active_signals
        route = route_for(policy, self.model, [(s.kind, s.severity) for s in signals])
        if self.route.name not in names or names.index(route.name) >= names.index(self.route.name):
            return Effects()
        before, self.route = self.route, route
        self.runbook_position = 0
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=SYSTEM,
                action="rerouted",
                to_tier=self.tier,
                details={
                    "from_route": before.name,
                    "route": route.name,
                    "runbooks": list(route.runbooks),
                    "signals": sorted(s.fingerprint for s in signals),
                },
            )
        )
        if self.status is IncidentStatus.OPEN and route.runbooks:
            effects += self._request_runbook(now)
        return effects

    def recover(self, recovery: AlertRecovered, now: datetime) -> Effects:
        """Mark a signal recovered; resolve the incident once no signal is active."""
        signal = self.signals.get(recovery.fingerprint)
        if signal is None or not signal.active or self.status is IncidentStatus.RESOLVED:
            return Effects()
        signal.recovered_at = now
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=SYSTEM,
                action="signal_recovered",
                details={
                    "fingerprint": recovery.fingerprint,
                    "summary": recovery.summary,
                    "evidence": recovery.evidence,
                },
            )
        )
        if not self.active_signals:
            effects += self._resolve(SYSTEM, "every signal recovered", now)
        return effects

    def reopen_on_recurrence(
        self, alert: AlertRaised, policy: RoutingPolicy, now: datetime
    ) -> Effects:
        """Reopen a recently resolved incident because one of its signals fired again."""
        effects = self._reopen(SYSTEM, f"recurred: {alert.summary}", now)
        effects += self.record_alert(alert, policy, now)
        return effects

    # -- people and timers -------------------------------------------------------------------

    def acknowledge(self, actor: str, now: datetime, *, take_over: bool = False) -> Effects:
        """A responder acknowledges the incident at its current tier."""
        self._check_unresolved("acknowledge")
        if self.acknowledged_at is not None:
            raise DomainError(
                f"already acknowledged at {self.tier.value} by {self.acknowledged_by}"
            )
        effects = self._check_holder(actor, now, take_over)
        before = self.status
        self.status = next_status(before, Action.ACKNOWLEDGE)
        self.acknowledged_by = actor
        self.acknowledged_at = now
        effects.record(
            TimelineEntry(
                at=now,
                actor=actor,
                action="acknowledged",
                from_status=before,
                to_status=self.status,
                details={"tier": self.tier.value},
            ),
            IncidentAcknowledged(**self._envelope(actor, now)),
        )
        return effects

    def claim(
        self, actor: str, now: datetime, lease: timedelta, *, take_over: bool = False
    ) -> Effects:
        """A responder takes ownership for a while; others see who holds it."""
        self._check_unresolved("claim")
        previous = self.owner if self._held_by_other(actor, now) else None
        if previous is not None and not take_over:
            raise ClaimConflict(self._held_message())
        self.owner = actor
        self.lease_expires_at = now + lease
        self.claim_lease = lease
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=actor,
                action="took_over" if previous else "claimed",
                details={
                    "lease_expires_at": self.lease_expires_at.isoformat(),
                    **({"from": previous} if previous else {}),
                },
            ),
            IncidentClaimed(
                **self._envelope(actor, now),
                owner=actor,
                lease_expires_at=self.lease_expires_at,
                taken_over_from=previous,
            ),
        )
        return effects

    def comment(self, actor: str, text: str, now: datetime, *, take_over: bool = False) -> Effects:
        """Add a comment to the timeline."""
        effects = self._check_holder(actor, now, take_over)
        effects.record(
            TimelineEntry(at=now, actor=actor, action="commented", details={"text": text}),
            IncidentCommented(**self._envelope(actor, now), text=text),
        )
        return effects

    def start_mitigation(
        self, actor: str, reason: str, now: datetime, *, take_over: bool = False
    ) -> Effects:
        """Someone (or a level-one runbook) is working on a fix."""
        effects = self._check_holder(actor, now, take_over)
        effects += self._change_status(Action.MITIGATE, actor, reason, now)
        return effects

    def start_monitoring(
        self, actor: str, reason: str, now: datetime, *, take_over: bool = False
    ) -> Effects:
        """The fix is in; watch whether it holds (a performance incident waits for labels)."""
        effects = self._check_holder(actor, now, take_over)
        effects += self._change_status(Action.MONITOR, actor, reason, now)
        self.mitigated_at = now
        return effects

    def escalate(
        self,
        actor: str,
        trigger: EscalationTrigger,
        reason: str,
        now: datetime,
        *,
        take_over: bool = False,
    ) -> Effects:
        """Move the incident to the next tier, which must acknowledge it anew."""
        self._check_unresolved("escalate")
        effects = self._check_holder(actor, now, take_over) if actor != SYSTEM else Effects()
        target = next_tier(self.tier)
        if target is None:
            raise DomainError(f"already at {self.tier.value}, the highest tier")
        before_status, before_tier = self.status, self.tier
        self.status = next_status(self.status, Action.ESCALATE)
        self.tier = target
        self.tier_entered_at = now
        self.epoch += 1
        self.acknowledged_by = self.acknowledged_at = None
        self.owner = self.lease_expires_at = self.claim_lease = None
        effects.record(
            TimelineEntry(
                at=now,
                actor=actor,
                action="escalated",
                from_status=before_status,
                to_status=self.status,
                from_tier=before_tier,
                to_tier=target,
                details={"trigger": trigger.value, "reason": reason},
            ),
            IncidentEscalated(
                **self._envelope(actor, now), from_tier=before_tier, trigger=trigger, reason=reason
            ),
        )
        effects.timers += self._tier_timers(now)
        return effects

    def resolve(
        self,
        actor: str,
        reason: str,
        now: datetime,
        *,
        force: bool = False,
        take_over: bool = False,
    ) -> Effects:
        """A person resolves the incident; a performance signal still active needs ``force``."""
        self._check_unresolved("resolve")
        effects = self._check_holder(actor, now, take_over)
        waiting = [s.fingerprint for s in self.active_signals if s.about_performance]
        if waiting and not force:
            raise NotResolvable(
                "labels have not confirmed the fix yet (active: "
                + ", ".join(waiting)
                + "); wait for the recovery, or resolve with force and a reason"
            )
        effects += self._resolve(actor, reason, now, forced=bool(waiting))
        return effects

    def reopen(self, actor: str, reason: str, now: datetime) -> Effects:
        """A person reopens a resolved incident."""
        return self._reopen(actor, reason, now)

    def fire_timer(self, timer: TimerRequest, policy: RoutingPolicy, now: datetime) -> Effects:
        """Route or escalate if the timer is current and its condition still holds; else nothing."""
        if timer.epoch != self.epoch or self.status is IncidentStatus.RESOLVED:
            return Effects()
        if timer.kind is TimerKind.ROUTE:
            return self.route_by(policy, now)
        assert self.route is not None  # tier timers start when the incident is routed
        if timer.kind is TimerKind.REMIND:
            return self._remind(timer.tier, now)
        if timer.kind is TimerKind.ACKNOWLEDGE:
            if self.acknowledged_at is not None or self.status is not IncidentStatus.OPEN:
                return Effects()
            trigger = EscalationTrigger.NOT_ACKNOWLEDGED
            minutes = self.route.tiers[timer.tier].ack_timeout_minutes
            reason = f"not acknowledged at {timer.tier.value} within {minutes:g} min"
        else:
            if self.status in (IncidentStatus.MONITORING, IncidentStatus.RESOLVED):
                return Effects()
            trigger = EscalationTrigger.NOT_MITIGATED
            minutes = self.route.tiers[timer.tier].mitigate_timeout_minutes
            reason = f"not mitigated at {timer.tier.value} within {minutes:g} min"
        if next_tier(self.tier) is None:
            self.epoch += 1  # nothing above L3: record it once, and let no later timer repeat it
            effects = Effects()
            effects.record(
                TimelineEntry(
                    at=now,
                    actor=SYSTEM,
                    action="escalation_exhausted",
                    details={"trigger": trigger.value, "reason": reason},
                )
            )
            effects.timers += self._reminder_timer(now)  # the owners are still reminded
            return effects
        return self.escalate(SYSTEM, trigger, reason, now)

    # -- runbooks and follow-ups ---------------------------------------------------------------

    def automatic_run_id(self) -> str:
        """Run id of the level-one runbook the chain is at now (stable, so replays run it once)."""
        return f"{self.id}-rb{self.runbook_position}-e{self.epoch}"

    def runbook_started(self, started: RunbookStarted, now: datetime) -> Effects:
        """The runner started a run for this incident: mitigation is under way."""
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=f"runbook:{started.runbook}",
                action="runbook_started",
                details={
                    "run_id": started.run_id,
                    "runbook": started.runbook,
                    "script_sha256": started.script_sha256,
                    "argv": list(started.argv),
                },
            )
        )
        if started.run_id == self.automatic_run_id() and self.status in (
            IncidentStatus.OPEN,
            IncidentStatus.ACKNOWLEDGED,
        ):
            effects += self._change_status(
                Action.MITIGATE, SYSTEM, f"runbook {started.runbook} started", now
            )
        return effects

    def runbook_finished(self, finished: RunbookFinished, now: datetime) -> Effects:
        """A run ended: a verified level-one run means monitoring; a failed one tries the next
        runbook of the chain, and after the last escalates to L2 with the run's output.

        A run that did not act — ``expired`` in the runner's queue, or ``skipped`` because the
        situation it was asked for no longer held — is no failure of the runbook: it changes
        nothing while a fix is being monitored, and otherwise is handled like a run that could
        not run (next of the chain, then L2) under its own trigger.
        """
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=f"runbook:{finished.runbook}",
                action="runbook_finished",
                details={
                    "run_id": finished.run_id,
                    "runbook": finished.runbook,
                    "state": finished.state.value,
                    "script_sha256": finished.script_sha256,
                    "parameters": dict(finished.parameters),
                    "exit_code": finished.exit_code,
                    "verify_exit_code": finished.verify_exit_code,
                    "stdout": finished.stdout,
                    "stderr": finished.stderr,
                    "verify_output": finished.verify_output,
                    "truncated": finished.truncated,
                    "detail": finished.detail,
                },
            )
        )
        if (
            self.status is IncidentStatus.RESOLVED
            or self.route is None
            or finished.run_id != self.automatic_run_id()
        ):
            return effects
        if finished.state is RunState.SUCCEEDED:
            reason = f"runbook {finished.runbook} verified"
            if self.status in (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED):
                effects += self._change_status(Action.MITIGATE, SYSTEM, reason, now)
            if self.status is IncidentStatus.MITIGATING:
                effects += self.start_monitoring(SYSTEM, reason, now)
            return effects
        not_applied = finished.state in (RunState.EXPIRED, RunState.SKIPPED)
        if not_applied and self.status is IncidentStatus.MONITORING:
            return effects
        outcome = f"runbook {finished.runbook} ended {finished.state.value}"
        if finished.detail:
            outcome += f": {finished.detail}"
        if self.runbook_position + 1 < len(self.route.runbooks):
            self.runbook_position += 1
            effects.record(
                TimelineEntry(
                    at=now, actor=SYSTEM, action="runbook_chain_next", details={"after": outcome}
                )
            )
            effects += self._request_runbook(now)
            return effects
        trigger = (
            EscalationTrigger.VERIFICATION_FAILED
            if finished.state is RunState.VERIFY_FAILED
            else EscalationTrigger.RUNBOOK_NOT_APPLIED
            if not_applied
            else EscalationTrigger.RUNBOOK_FAILED
        )
        if next_tier(self.tier) is not None:
            effects += self.escalate(SYSTEM, trigger, outcome, now)
        return effects

    def request_runbook(
        self,
        actor: str,
        runbook: str,
        reason: str,
        parameters: dict[str, str | int | float | bool],
        run_id: str,
        now: datetime,
        *,
        take_over: bool = False,
    ) -> Effects:
        """A person asks for a catalogued runbook by hand (the runner checks the catalogue)."""
        self._check_unresolved("run a runbook on")
        effects = self._check_holder(actor, now, take_over)
        request = RunbookRequest(
            producer=PRODUCER,
            occurred_at=now,
            correlation_id=self.id,
            run_id=run_id,
            incident_id=self.id,
            model=self.model,
            model_version=self.model_version,
            runbook=runbook,
            parameters=parameters,
            requested_by=actor,
            tier=self.tier,
            reason=reason,
        )
        effects.record(_requested(request, now), request)
        return effects

    def hold_runbook(
        self,
        actor: str,
        runbook: str,
        reason: str,
        parameters: dict[str, str | int | float | bool],
        run_id: str,
        now: datetime,
        *,
        expires_at: datetime,
        take_over: bool = False,
    ) -> Effects:
        """A person asks for a runbook that needs approval: nothing is published yet; the run
        waits for a second person until ``expires_at`` (``services/incident_log/approvals.py``)."""
        self._check_unresolved("run a runbook on")
        effects = self._check_holder(actor, now, take_over)
        effects.record(
            TimelineEntry(
                at=now,
                actor=actor,
                action="runbook_approval_requested",
                details={
                    "run_id": run_id,
                    "runbook": runbook,
                    "parameters": dict(parameters),
                    "reason": reason,
                    "expires_at": expires_at.isoformat(),
                },
            )
        )
        return effects

    def approve_runbook(self, held: HeldRun, approver: str, now: datetime) -> Effects:
        """A second person approved a held run: ask the runner for it, with ``approved_by``."""
        self._check_unresolved("run a runbook on")
        request = RunbookRequest(
            producer=PRODUCER,
            occurred_at=now,
            correlation_id=self.id,
            run_id=held.run_id,
            incident_id=self.id,
            model=self.model,
            model_version=self.model_version,
            runbook=held.runbook,
            parameters=dict(held.parameters),
            requested_by=held.requested_by,
            approved_by=approver,
            tier=self.tier,
            reason=held.reason,
        )
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=approver,
                action="runbook_approved",
                details={
                    "run_id": held.run_id,
                    "runbook": held.runbook,
                    "requested_by": held.requested_by,
                    "reason": held.decision_reason,
                },
            )
        )
        effects.record(_requested(request, now), request)
        return effects

    def close_held_runbook(self, held: HeldRun, now: datetime) -> Effects:
        """A held run was rejected or its approval expired: it never runs."""
        action = (
            "runbook_rejected"
            if held.state is ApprovalState.REJECTED
            else "runbook_approval_expired"
        )
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=held.decided_by or SYSTEM,
                action=action,
                details={
                    "run_id": held.run_id,
                    "runbook": held.runbook,
                    "requested_by": held.requested_by,
                    "reason": held.decision_reason,
                },
            )
        )
        return effects

    def request_retrain(
        self,
        actor: str,
        reason: str,
        now: datetime,
        *,
        take_over: bool = False,
        via: str | None = None,
    ) -> Effects:
        """Ask the retrainer for a new version; requests for the same incident merge into one.
        ``via`` is the component that asks on ``actor``'s behalf (the runbook runner): the
        actor is the requester, who may not approve the candidate."""
        self._check_unresolved("request a retrain for")
        effects = self._check_holder(actor, now, take_over)
        request = RetrainRequest(
            producer=PRODUCER,
            occurred_at=now,
            correlation_id=self.id,
            model=self.model,
            trigger=RetrainTrigger.INCIDENT,
            cause=f"incident:{self.id}",
            incident_id=self.id,
            requested_by=actor,
            reason=reason,
            via=via,
        )
        details = {"cause": request.cause, "reason": reason}
        if via is not None:
            details["via"] = via
        effects.record(
            TimelineEntry(at=now, actor=actor, action="retrain_requested", details=details), request
        )
        return effects

    def attach_report(
        self, actor: str, title: str, report: dict[str, Any], now: datetime
    ) -> Effects:
        """Attach a diagnosis report (drift per feature, metrics by slice, ...) to the timeline."""
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=actor,
                action="report_attached",
                details={"title": title, "report": report},
            ),
            IncidentCommented(**self._envelope(actor, now), text=f"attached report: {title}"),
        )
        return effects

    def _request_runbook(self, now: datetime) -> Effects:
        assert self.route is not None
        name = self.route.runbooks[self.runbook_position]
        request = RunbookRequest(
            producer=PRODUCER,
            occurred_at=now,
            correlation_id=self.id,
            run_id=self.automatic_run_id(),
            incident_id=self.id,
            model=self.model,
            model_version=self.model_version,
            runbook=name,
            requested_by=SYSTEM,
            tier=Tier.L1,
            reason=(
                f"level-one runbook {self.runbook_position + 1} of {len(self.route.runbooks)} "
                f"of route {self.route.name}"
            ),
        )
        effects = Effects()
        effects.record(_requested(request, now), request)
        return effects

    # -- what the retrainer and the monitor report ---------------------------------------------

    def follow_model(self, news: ModelNews, now: datetime) -> Effects:
        """Put a retraining or registry step on the timeline. A new champion put in place for
        the incident is what live labels must then show healthy; a promotion (the governed fix)
        also means monitoring, while a rollback leaves the status to its runbook's verification."""
        action, actor, details = _news(news)
        effects = Effects()
        effects.record(TimelineEntry(at=now, actor=actor, action=action, details=details))
        champion = (
            news.version
            if isinstance(news, ModelPromoted)
            else news.to_version
            if isinstance(news, ModelRolledBack)
            else None
        )
        if champion is None or self.status is IncidentStatus.RESOLVED:
            return effects
        self.awaiting_version = champion
        self.awaiting_since = news.occurred_at
        if not isinstance(news, ModelPromoted):
            return effects
        reason = f"v{champion} is champion; waiting for live labels to confirm it is healthy"
        if self.status in (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED):
            effects += self._change_status(Action.MITIGATE, SYSTEM, reason, now)
        if self.status is IncidentStatus.MITIGATING:
            effects += self.start_monitoring(SYSTEM, reason, now)
        return effects

    def confirm_with_metrics(self, metrics: MetricsComputed, now: datetime) -> Effects:
        """Resolve a monitored incident once a window of the awaited champion, wholly after it
        took over, is healthy (a window that began before could still hold the old traffic)."""
        if (
            self.status is not IncidentStatus.MONITORING
            or self.awaiting_version is None
            or self.awaiting_since is None
            or metrics.window.start < self.awaiting_since
            or metrics.model_version != self.awaiting_version
            or metrics.variant is not Variant.CHAMPION
            or metrics.breaching is None
            or metrics.breaching
        ):
            return Effects()
        figures = ", ".join(
            f"{name} {value:.3f}"
            for name, value in sorted(metrics.metrics.items())
            if value is not None and name in SUPPORTED_METRICS
        )
        for signal in self.active_signals:
            signal.recovered_at = now
        return self._resolve(
            SYSTEM,
            f"v{metrics.model_version} healthy on {metrics.labelled} labels ({figures})",
            now,
        )

    # -- views -------------------------------------------------------------------------------

    @property
    def active_signals(self) -> list[Signal]:
        """Signals still reporting a problem."""
        return [signal for signal in self.signals.values() if signal.active]

    @property
    def alert_count(self) -> int:
        """Alerts received on this incident, repeats included."""
        return sum(signal.occurrences for signal in self.signals.values())

    def concerns_version(self, version: int | None) -> bool:
        """Whether an alert about this version belongs to this incident's story: the version it
        opened on, or the champion a step taken for it put in place (a rollback, a promotion)."""
        return (
            version is None
            or self.model_version is None
            or version in (self.model_version, self.awaiting_version)
        )

    def held_by(self, now: datetime) -> str | None:
        """Who holds the incident now, if anyone."""
        if self.owner is None or self.lease_expires_at is None or self.lease_expires_at <= now:
            return None
        return self.owner

    # -- internals ---------------------------------------------------------------------------

    def _envelope(self, actor: str, now: datetime) -> dict[str, Any]:
        return {
            "producer": PRODUCER,
            "occurred_at": now,
            "correlation_id": self.id,
            "incident_id": self.id,
            "model": self.model,
            "model_version": self.model_version,
            "status": self.status,
            "tier": self.tier,
            "actor": actor,
        }

    def _tier_timers(self, now: datetime) -> list[TimerRequest]:
        if self.route is None:
            return []  # not routed yet: the tier's timers start at routing
        timers = self.route.tiers[self.tier]
        return [
            TimerRequest(
                self.id, TimerKind.ACKNOWLEDGE, self.tier, now + timers.ack_timeout, self.epoch
            ),
            TimerRequest(
                self.id, TimerKind.MITIGATE, self.tier, now + timers.mitigate_timeout, self.epoch
            ),
            *self._reminder_timer(now),
        ]

    def _reminder_timer(self, now: datetime) -> list[TimerRequest]:
        every = self.route.tiers[self.tier].remind_every if self.route else None
        if every is None:
            return []
        return [TimerRequest(self.id, TimerKind.REMIND, self.tier, now + every, self.epoch)]

    def _remind(self, tier: Tier, now: datetime) -> Effects:
        """Nobody acknowledged yet: note a reminder (the tier's people are paged again)."""
        if tier is not self.tier or self.acknowledged_at is not None:
            return Effects()
        if self.status is not IncidentStatus.OPEN:
            return Effects()
        effects = Effects()
        waited = (now - self.tier_entered_at).total_seconds() / 60 if self.tier_entered_at else 0
        effects.record(
            TimelineEntry(
                at=now,
                actor=SYSTEM,
                action="reminder_due",
                details={"tier": tier.value, "unacknowledged_minutes": round(waited, 1)},
            )
        )
        effects.timers += self._reminder_timer(now)
        return effects

    def _check_unresolved(self, verb: str) -> None:
        if self.status is IncidentStatus.RESOLVED:
            raise InvalidTransition(f"cannot {verb} a resolved incident (reopen it first)")

    def _held_by_other(self, actor: str, now: datetime) -> bool:
        holder = self.held_by(now)
        return holder is not None and holder != actor and actor != SYSTEM

    def _held_message(self) -> str:
        assert self.lease_expires_at is not None
        return (
            f"held by {self.owner} until {self.lease_expires_at.isoformat()}; "
            "take over explicitly to act on it"
        )

    def _check_holder(self, actor: str, now: datetime, take_over: bool) -> Effects:
        """Refuse a non-holder's action unless it takes over; renew the holder's lease."""
        effects = Effects()
        if self._held_by_other(actor, now):
            if not take_over:
                raise ClaimConflict(self._held_message())
            previous = self.owner
            lease = (self.lease_expires_at or now) - now
            self.owner = actor
            self.lease_expires_at = now + max(lease, timedelta(minutes=1))
            effects.record(
                TimelineEntry(at=now, actor=actor, action="took_over", details={"from": previous}),
                IncidentClaimed(
                    **self._envelope(actor, now),
                    owner=actor,
                    lease_expires_at=self.lease_expires_at,
                    taken_over_from=previous,
                ),
            )
        elif self.held_by(now) == actor and self.lease_expires_at and self.claim_lease:
            self.lease_expires_at = max(self.lease_expires_at, now + self.claim_lease)
        return effects

    def _change_status(self, action: Action, actor: str, reason: str, now: datetime) -> Effects:
        before = self.status
        self.status = next_status(before, action)
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=actor,
                action=f"status_{self.status.value}",
                from_status=before,
                to_status=self.status,
                details={"reason": reason},
            ),
            IncidentStatusChanged(**self._envelope(actor, now), from_status=before, reason=reason),
        )
        return effects

    def _resolve(self, actor: str, reason: str, now: datetime, *, forced: bool = False) -> Effects:
        before = self.status
        self.status = next_status(before, Action.RESOLVE)
        self.resolved_at = now
        self.resolved_tier = self.tier
        self.owner = self.lease_expires_at = self.claim_lease = None
        self.epoch += 1
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=actor,
                action="resolved",
                from_status=before,
                to_status=self.status,
                details={"reason": reason, **({"forced": True} if forced else {})},
            ),
            IncidentResolved(**self._envelope(actor, now), from_status=before, reason=reason),
        )
        return effects

    def _reopen(self, actor: str, reason: str, now: datetime) -> Effects:
        before = self.status
        self.status = next_status(before, Action.REOPEN)
        self.resolved_at = self.resolved_tier = None
        self.mitigated_at = None
        self.acknowledged_by = self.acknowledged_at = None
        self.tier_entered_at = now
        self.epoch += 1
        effects = Effects()
        effects.record(
            TimelineEntry(
                at=now,
                actor=actor,
                action="reopened",
                from_status=before,
                to_status=self.status,
                to_tier=self.tier,
                details={"reason": reason},
            ),
            IncidentReopened(**self._envelope(actor, now), reason=reason),
        )
        effects.timers += self._tier_timers(now)
        return effects


def _news(news: ModelNews) -> tuple[str, str, dict[str, Any]]:
    """The timeline action, actor and details of a retraining or registry step."""
    actor = _RETRAINER
    details: dict[str, Any]
    match news:
        case RetrainAnswered():
            action, details = "retrain_answered", answer_details(news)
        case RetrainStarted():
            action = "retrain_started"
            details = {
                "run_id": news.run_id,
                "cause": news.cause,
                "dataset": news.dataset.model_dump(mode="json"),
            }
        case RetrainFinished():
            action = "retrain_finished"
            details = {
                "run_id": news.run_id,
                "candidate_version": news.candidate_version,
                "cached_steps": list(news.cached_steps),
                "failure": news.failure,
            }
        case ModelRegistered():
            action, actor = "model_registered", news.record.registered_by
            details = {
                "version": news.record.version,
                "reason": news.record.reason,
                "metrics": dict(news.record.metrics),
                "dataset": news.record.dataset.model_dump(mode="json"),
            }
        case CandidateEvaluated():
            action = "candidate_evaluated"
            details = {
                "evaluation_id": news.evaluation_id,
                "candidate_version": news.candidate_version,
                "champion_version": news.champion_version,
                "passed": news.passed,
                "failures": list(news.failures),
                "figures": dict(news.figures),
            }
        case PromotionRequested():
            action = "promotion_requested"
            details = {
                "request_id": news.request_id,
                "version": news.version,
                "summary": news.summary,
                "expires_at": news.expires_at.isoformat(),
                "requested_by": news.requested_by,
            }
        case PromotionExpired():
            action = "promotion_expired"
            details = {"request_id": news.request_id, "version": news.version}
        case ModelApproved() | ModelRejected():
            action = "model_approved" if isinstance(news, ModelApproved) else "model_rejected"
            actor = news.approver
            details = {"request_id": news.request_id, "version": news.version, "text": news.comment}
        case ModelPromoted():
            action, actor = "model_promoted", news.actor
            details = {
                "version": news.version,
                "previous_version": news.previous_version,
                "reason": news.reason,
            }
        case ModelRolledBack():
            action, actor = "model_rolled_back", news.actor
            details = {
                "from_version": news.from_version,
                "to_version": news.to_version,
                "reason": news.reason,
            }
        case _:
            assert_never(news)
    return action, actor, details


def _requested(request: RunbookRequest, now: datetime) -> TimelineEntry:
    return TimelineEntry(
        at=now,
        actor=request.requested_by,
        action="runbook_requested",
        details={
            "run_id": request.run_id,
            "runbook": request.runbook,
            "parameters": dict(request.parameters),
            "tier": request.tier.value,
            "reason": request.reason,
        },
    )


def _alert_details(alert: AlertRaised) -> dict[str, Any]:
    return {
        "alert_event_id": str(alert.event_id),
        "fingerprint": alert.fingerprint,
        "kind": alert.kind.value,
        "severity": alert.severity.value,
        "summary": alert.summary,
        "evidence": alert.evidence,
        "producer": alert.producer,
    }


def _signal_from(alert: AlertRaised, now: datetime) -> Signal:
    return Signal(
        fingerprint=alert.fingerprint,
        kind=alert.kind,
        severity=alert.severity,
        model_version=alert.model_version,
        first_seen=now,
        last_seen=now,
        summary=alert.summary,
        evidence=dict(alert.evidence),
    )


def _title(alert: AlertRaised) -> str:
    version = f" v{alert.model_version}" if alert.model_version is not None else ""
    return f"{alert.model}{version}: {alert.kind.value.replace('_', ' ')} — {alert.summary}"[:300]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def _more_severe(candidate: Severity, current: Severity) -> bool:
    return _SEVERITY_RANK[candidate] > _SEVERITY_RANK[current]

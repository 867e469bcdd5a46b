"""The incident log's use cases: each runs in one transaction that holds the state change, the
timeline entries, the timers, the outbox rows and the processed-event marks together.

Called by the Kafka handlers, the timer loop and the HTTP API alike, so every path through the
incident log keeps the same guarantees.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.alerts import AlertKind, AlertRaised, AlertRecovered
from contracts.envelope import utc_now
from contracts.monitoring import MetricsComputed
from contracts.registry import (
    ModelPromoted,
    ModelRegistered,
    ModelRolledBack,
    RetrainFinished,
)
from contracts.retraining import RetrainAnswered, RetrainRequest
from contracts.runbooks import RunbookFinished, RunbookRequest, RunbookStarted
from contracts.values import Variant
from services.incident_log.approval_store import ApprovalStore
from services.incident_log.approvals import ApprovalPolicy, ApprovalState, HeldRun, decide
from services.incident_log.domain import SYSTEM, Effects, Incident, ModelNews, TimelineEntry
from services.incident_log.manual import same_report
from services.incident_log.paging.store import PagingStore
from services.incident_log.paging.tables import HeartbeatRow
from services.incident_log.retrains import InFlight, lapse, lifted_details
from services.incident_log.routing import Matcher, RoutingPolicy
from services.incident_log.store import IncidentStore, new_incident_id
from services.incident_log.tables import AlertRow, RetrainRow, SilenceRow
from services.incident_log.triage import Disposition, triage
from services.runtime.consumer import Rejected
from services.runtime.database import Sessions
from services.runtime.idempotency import first_time, new_event_ids

__all__ = [
    "Clock",
    "IdempotencyConflict",
    "IncidentLog",
    "UnknownHeldRun",
    "UnknownIncident",
    "UnknownSilence",
]

Clock = Callable[[], datetime]


class UnknownIncident(LookupError):
    """No incident has this id."""


class UnknownSilence(LookupError):
    """No silence has this id."""


class IdempotencyConflict(ValueError):
    """An idempotency key was used before for a different request."""


class UnknownHeldRun(LookupError):
    """The incident holds no run with this id for approval."""


E = TypeVar("E", AlertRaised, AlertRecovered)


def _in_flight(row: RetrainRow) -> InFlight:
    return InFlight(
        model=row.model,
        cause=row.cause,
        asked_at=row.requested_at,
        answered_at=row.answered_at,
        run_id=row.run_id,
    )


def _first_of_each(events: Sequence[E], fresh_ids: set[UUID]) -> list[E]:
    """The events whose id is new, each id once, in order."""
    kept = []
    for event in events:
        if event.event_id in fresh_ids:
            fresh_ids.discard(event.event_id)
            kept.append(event)
    return kept


def heartbeat_row(alert: AlertRaised, *, received_at: datetime) -> HeartbeatRow:
    """The row that waits for the dispatcher to echo a heartbeat alert; its source is the
    fingerprint's subject (``vigil:v-:heartbeat:<source>``)."""
    parts = alert.fingerprint.split(":", 3)
    source = parts[3] if len(parts) == 4 and parts[3] else alert.fingerprint
    return HeartbeatRow(
        alert_event_id=str(alert.event_id),
        source=source[:200],
        sent_at=alert.occurred_at,
        received_at=received_at,
    )


class IncidentLog:
    """Applies alerts, recoveries, timers and people's actions to incidents, transactionally."""

    def __init__(
        self,
        sessions: Sessions,
        policy: RoutingPolicy,
        *,
        clock: Clock = utc_now,
        committed: Callable[[], None] = lambda: None,
        sign: Callable[[RunbookRequest], RunbookRequest] | None = None,
        approvals: ApprovalPolicy | None = None,
    ) -> None:
        """``sign`` signs the runbook requests the incident log publishes (none: they go out
        unsigned, and the runner refuses them); ``approvals`` says which runbooks wait for a
        second person's approval."""
        self._sessions = sessions
        self._sign = sign
        self.approvals = approvals or ApprovalPolicy()
        self.policy = policy
        sources = [rule.source for rule in policy.inhibitions if rule.source is not None]
        self._inhibiting_kinds: frozenset[str] | None = (
            None
            if any(not source.kinds for source in sources)
            else frozenset(kind.value for source in sources for kind in source.kinds)
        )
        self._clock = clock
        self._committed = committed

    def now(self) -> datetime:
        """The incident log's clock."""
        return self._clock()

    def _record(self, store: IncidentStore, incident: Incident, effects: Effects) -> None:
        """Record an operation's effects, its runbook requests signed for the runner."""
        if self._sign is not None:
            sign = self._sign
            effects.events = [
                sign(event) if isinstance(event, RunbookRequest) else event
                for event in effects.events
            ]
        store.record(incident, effects)

    async def on_alerts(self, alerts: Sequence[AlertRaised]) -> None:
        """Triage a batch of alerts into incidents, in order, in one transaction.

        ``heartbeat`` alerts (the dead man's switch) open nothing: each is written down for the
        paging dispatcher to echo (:meth:`~services.incident_log.paging.dispatcher.Dispatcher.\
echo_heartbeats`).
        """
        now = self._clock()
        async with self._sessions() as session, session.begin():
            fresh_ids = set(await new_event_ids(session, [alert.event_id for alert in alerts]))
            fresh = _first_of_each(alerts, fresh_ids)
            heartbeats = [alert for alert in fresh if alert.kind is AlertKind.HEARTBEAT]
            for heartbeat in heartbeats:
                session.add(heartbeat_row(heartbeat, received_at=now))
            fresh = [alert for alert in fresh if alert.kind is not AlertKind.HEARTBEAT]
            if fresh:
                await self._triage(session, fresh, now)
        if heartbeats or fresh:
            self._committed()

    async def _triage(
        self, session: AsyncSession, fresh: Sequence[AlertRaised], now: datetime
    ) -> None:
        store = IncidentStore(session, batched=True)
        unresolved = await store.unresolved_related(
            fresh,
            correlate_since=now - self.policy.correlation_window,
            inhibiting_kinds=self._inhibiting_kinds,
        )
        resolved = await store.resolved_holding(
            {alert.fingerprint for alert in fresh}, now - self.policy.reopen_window
        )
        silences = await store.active_silences(now)
        retraining = await store.retraining_models(
            now,
            answer_timeout=self.policy.retrain_answer_timeout,
            retrain_timeout=self.policy.retrain_timeout,
        )
        # Each alert is triaged against its own model's incidents only (triage filters by model;
        # handing it the whole batch's made the batch quadratic).
        unresolved_of: dict[str, list[Incident]] = {}
        for incident in unresolved:
            unresolved_of.setdefault(incident.model, []).append(incident)
        touched: dict[str, Incident] = {}
        for alert in fresh:
            mine = unresolved_of.setdefault(alert.model, [])
            decision = triage(
                alert,
                unresolved=mine,
                resolved=resolved,
                silences=silences,
                retraining_models=retraining,
                policy=self.policy,
                now=now,
            )
            if decision.disposition in (Disposition.SILENCED, Disposition.INHIBITED):
                store.log_alert(
                    alert,
                    received_at=now,
                    disposition=decision.disposition.value,
                    suppressed_by=decision.suppressed_by,
                )
                continue
            if decision.disposition is Disposition.OPENED:
                incident, effects = Incident.open_from_alert(
                    new_incident_id(),
                    alert,
                    self.policy,
                    now,
                    group_wait=self.policy.group_wait,
                )
                mine.append(incident)
            else:
                assert decision.incident is not None
                incident = decision.incident
                if decision.disposition is Disposition.REOPENED:
                    effects = incident.reopen_on_recurrence(alert, self.policy, now)
                    resolved.remove(incident)
                    mine.append(incident)
                else:
                    effects = incident.record_alert(alert, self.policy, now)
            if incident.id not in touched:
                touched[incident.id] = incident
                store.save(incident)  # the row first, so its history can refer to it
            self._record(store, incident, effects)
            store.log_alert(
                alert,
                received_at=now,
                disposition=decision.disposition.value,
                incident_id=incident.id,
            )
        for incident in touched.values():
            store.save(incident)
        await store.write()

    async def open_manual(self, alert: AlertRaised) -> tuple[Incident, bool]:
        """Open an incident from a person's ``manual`` alert (:mod:`.manual`); return it and
        whether it is new. An alert already logged (the same idempotency key) returns its
        incident; a different report under that key raises :class:`IdempotencyConflict`."""
        for attempt in range(3):
            try:
                return await self._open_manual(alert)
            except IntegrityError:  # a racing retry of the same key committed first
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _open_manual(self, alert: AlertRaised) -> tuple[Incident, bool]:
        now = self._clock()
        async with self._sessions() as session, session.begin():
            store = IncidentStore(session)
            logged = await session.get(AlertRow, alert.event_id)
            if logged is not None:
                if not same_report(alert, logged.model_dump()) or logged.incident_id is None:
                    raise IdempotencyConflict(
                        "this Idempotency-Key was used for a different report; use a new key"
                    )
                incident = await store.get(logged.incident_id, for_update=False)
                assert incident is not None
                return incident, False
            incident, effects = Incident.open_from_alert(
                new_incident_id(), alert, self.policy, now, group_wait=self.policy.group_wait
            )
            store.save(incident)
            self._record(store, incident, effects)
            store.save(incident)
            store.log_alert(alert, received_at=now, disposition="opened", incident_id=incident.id)
            await store.write_alert_log()
        self._committed()
        return incident, True

    async def on_recoveries(self, recoveries: Sequence[AlertRecovered]) -> None:
        """Mark signals recovered (resolving incidents whose every signal recovered)."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            fresh_ids = set(await new_event_ids(session, [r.event_id for r in recoveries]))
            fresh = _first_of_each(recoveries, fresh_ids)
            if not fresh:
                return
            store = IncidentStore(session)
            unresolved = await store.unresolved_holding({r.fingerprint for r in fresh})
            for recovery in fresh:
                incident = next((i for i in unresolved if recovery.fingerprint in i.signals), None)
                effects = incident.recover(recovery, now) if incident else Effects()
                store.log_alert(
                    recovery,
                    received_at=now,
                    disposition="recovered" if incident else "no_open_incident",
                    incident_id=incident.id if incident else None,
                )
                if incident is not None:
                    store.save(incident)
                    self._record(store, incident, effects)
            await store.write_alert_log()
        self._committed()

    async def fire_due_timers(self, *, limit: int = 100) -> int:
        """Fire the timers due now (each once); return how many were due."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            store = IncidentStore(session)
            due = await store.due_timers(now, limit)
            for row, timer in due:
                row.fired_at = now
                session.add(row)
                incident = await store.get(timer.incident_id)
                if incident is None:
                    continue
                effects = incident.fire_timer(timer, self.policy, now)
                if not effects.empty:
                    store.save(incident)
                    self._record(store, incident, effects)
        if due:
            self._committed()
        return len(due)

    async def act(
        self,
        incident_id: str,
        action: Callable[[Incident, datetime], Effects],
        *,
        within: Callable[[AsyncSession, datetime], Awaitable[None]] | None = None,
    ) -> Incident:
        """Apply a person's action to an incident (the domain refuses what it must). ``within``
        runs first in the same transaction (spending an acknowledge link, say); if it raises,
        or the action is refused, nothing is written."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            store = IncidentStore(session)
            incident = await store.get(incident_id)
            if incident is None:
                raise UnknownIncident(incident_id)
            if within is not None:
                await within(session, now)
            effects = action(incident, now)
            store.save(incident)
            self._record(store, incident, effects)
        self._committed()
        return incident

    async def hold_runbook(
        self,
        incident_id: str,
        held: Callable[[datetime], HeldRun],
        action: Callable[[Incident, HeldRun, datetime], Effects],
    ) -> HeldRun:
        """Hold a runbook run for approval: the held run and its timeline entry commit together
        (a refused action writes neither)."""
        now = self._clock()
        run = held(now)
        async with self._sessions() as session, session.begin():
            store = IncidentStore(session)
            incident = await store.get(incident_id)
            if incident is None:
                raise UnknownIncident(incident_id)
            effects = action(incident, run, now)
            store.save(incident)
            ApprovalStore(session).add(run)
            self._record(store, incident, effects)
        self._committed()
        return run

    async def decide_runbook(
        self,
        incident_id: str,
        run_id: str,
        decision: ApprovalState,
        actor: str,
        reason: str | None,
        *,
        allowed: Callable[[Incident, HeldRun], None],
    ) -> HeldRun:
        """Approve or reject a held run. ``allowed`` checks the caller against the incident and
        the run (it raises to refuse); an approval publishes the signed request in the same
        transaction. A run whose approval window closed is first recorded expired."""
        await self.expire_approvals()
        now = self._clock()
        async with self._sessions() as session, session.begin():
            store = IncidentStore(session)
            incident = await store.get(incident_id)
            if incident is None:
                raise UnknownIncident(incident_id)
            approvals = ApprovalStore(session)
            held = await approvals.get(run_id)
            if held is None or held.incident_id != incident_id:
                raise UnknownHeldRun(run_id)
            allowed(incident, held)
            decide(held, decision, actor, reason, now)
            if decision is ApprovalState.APPROVED:
                effects = incident.approve_runbook(held, actor, now)
            else:
                effects = incident.close_held_runbook(held, now)
            await approvals.save(held)
            store.save(incident)
            self._record(store, incident, effects)
        self._committed()
        return held

    async def expire_approvals(self, *, limit: int = 100) -> int:
        """Record the held runs nobody decided in time as expired (each on its incident's
        timeline); return how many."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            approvals = ApprovalStore(session)
            due = await approvals.due(now, limit)
            store = IncidentStore(session)
            for held in due:
                decide(
                    held,
                    ApprovalState.EXPIRED,
                    SYSTEM,
                    f"nobody approved it by {held.expires_at.isoformat()}",
                    now,
                )
                await approvals.save(held)
                incident = await store.get(held.incident_id)
                if incident is not None:
                    effects = incident.close_held_runbook(held, now)
                    store.save(incident)
                    self._record(store, incident, effects)
        if due:
            self._committed()
        return len(due)

    async def on_runbook_result(self, result: RunbookStarted | RunbookFinished) -> None:
        """Record what the runner did; a level-one run's outcome moves or escalates the incident."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            if not await first_time(session, result.event_id):
                return
            store = IncidentStore(session)
            incident = await store.get(result.incident_id)
            if incident is None:
                raise Rejected(f"no incident {result.incident_id!r} for run {result.run_id!r}")
            if isinstance(result, RunbookStarted):
                effects = incident.runbook_started(result, now)
            else:
                effects = incident.runbook_finished(result, now)
            store.save(incident)
            self._record(store, incident, effects)
        self._committed()

    async def on_retrain_request(self, request: RetrainRequest) -> None:
        """Follow a retrain ask: its model's decay alerts may be inhibited until the retrainer
        answers it and, if a run trains for it, until that run ends (:mod:`.retrains`)."""
        async with self._sessions() as session, session.begin():
            if not await first_time(session, request.event_id):
                return
            await IncidentStore(session).record_retrain_ask(request, self._clock())

    async def on_model_news(self, news: ModelNews) -> None:
        """A retraining or registry step: the retrainer's answer, the end of a run, or a champion
        change ends retrains in flight; the step goes on the timeline of the incident behind
        it, and an ended retrain of another incident on that one's."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            if not await first_time(session, news.event_id):
                return
            store = IncidentStore(session)
            if isinstance(news, ModelRegistered):
                owners = list(news.record.spec.owners)
                await PagingStore(session).set_owners(news.model, news.record.version, owners)
            ended: list[RetrainRow] = []
            if isinstance(news, RetrainAnswered):
                await store.record_retrain_answer(news, now)
            elif isinstance(news, RetrainFinished):
                outcome = (
                    f"failed: {news.failure}"
                    if news.failure
                    else f"registered candidate v{news.candidate_version}"
                )
                ended = await store.end_retrains(
                    now, f"run {news.run_id} ended ({outcome})", run_id=news.run_id
                )
            elif isinstance(news, ModelPromoted | ModelRolledBack):
                ended = await store.end_retrains(
                    now, f"the champion changed ({news.type})", model=news.model
                )
            incident_id = (
                news.record.incident_id if isinstance(news, ModelRegistered) else news.incident_id
            )
            for row in ended:
                if row.incident_id is not None and row.incident_id != incident_id:
                    await self._note_lifted(store, row, row.ended_because or "", now)
            incident = await store.get(incident_id) if incident_id else None
            if incident is None:
                return
            effects = incident.follow_model(news, now)
            store.save(incident)
            self._record(store, incident, effects)
        self._committed()

    async def lapse_retrains(self, *, limit: int = 100) -> int:
        """End the retrains that no longer count as in flight (unanswered too long, or asked
        longer ago than the retrain timeout), each on its incident's timeline; return how many."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            store = IncidentStore(session)
            rows = await store.lapsing_retrains(
                now,
                answer_timeout=self.policy.retrain_answer_timeout,
                retrain_timeout=self.policy.retrain_timeout,
                limit=limit,
            )
            for row in rows:
                why = lapse(
                    _in_flight(row),
                    now,
                    answer_timeout=self.policy.retrain_answer_timeout,
                    retrain_timeout=self.policy.retrain_timeout,
                )
                row.finished_at = now
                row.ended_because = why
                session.add(row)
                if row.incident_id is not None and why is not None:
                    await self._note_lifted(store, row, why, now)
        if rows:
            self._committed()
        return len(rows)

    @staticmethod
    async def _note_lifted(store: IncidentStore, row: RetrainRow, why: str, now: datetime) -> None:
        assert row.incident_id is not None
        incident = await store.get(row.incident_id)
        if incident is None:
            return
        entry = TimelineEntry(
            at=now,
            actor=SYSTEM,
            action="retrain_no_longer_in_flight",
            details=lifted_details(_in_flight(row), why),
        )
        store.record(incident, Effects(timeline=[entry]))

    async def on_metrics(self, reports: Sequence[MetricsComputed]) -> None:
        """Healthy windows of an awaited champion resolve the incidents waiting on it."""
        healthy = [r for r in reports if r.breaching == [] and r.variant is Variant.CHAMPION]
        if not healthy:
            return
        now = self._clock()
        changed = False
        async with self._sessions() as session, session.begin():
            fresh_ids = set(await new_event_ids(session, [r.event_id for r in healthy]))
            store = IncidentStore(session)
            waiting = await store.awaiting_confirmation({r.model for r in healthy})
            for report in healthy:
                if report.event_id not in fresh_ids:
                    continue
                for incident in waiting:
                    if incident.model != report.model:
                        continue
                    effects = incident.confirm_with_metrics(report, now)
                    if not effects.empty:
                        store.save(incident)
                        self._record(store, incident, effects)
                        changed = True
        if changed:
            self._committed()

    async def create_silence(
        self,
        matcher: Matcher,
        *,
        starts_at: datetime | None,
        ends_at: datetime,
        actor: str,
        reason: str,
    ) -> SilenceRow:
        """Mute matching alerts between two times."""
        now = self._clock()
        start = starts_at or now
        if ends_at <= start:
            raise ValueError("a silence must end after it starts")
        row = SilenceRow(
            id=f"sil-{secrets.token_hex(4)}",
            matcher=matcher.model_dump(mode="json"),
            starts_at=start,
            ends_at=ends_at,
            created_by=actor,
            reason=reason,
            created_at=now,
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
        return row

    async def expire_silence(self, silence_id: str, *, actor: str) -> SilenceRow:
        """End a silence now, recording who ended it; one already over is left as it is."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            row = (
                await session.exec(select(SilenceRow).where(SilenceRow.id == silence_id))
            ).first()
            if row is None:
                raise UnknownSilence(silence_id)
            if row.ends_at <= now:
                return row
            row.expired_by = actor
            row.ends_at = min(row.ends_at, now)
            row.starts_at = min(row.starts_at, row.ends_at - timedelta(microseconds=1))
            session.add(row)
        return row

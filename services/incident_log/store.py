"""Persistence of incidents: rows to domain objects and back, within one session's transaction.

Incidents are loaded ``FOR UPDATE`` when they may change (on SQLite every transaction already holds
the write lock), so an API action and an alert touching the same incident never lose an update.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement
from sqlmodel import SQLModel, and_, col, func, insert, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.alerts import AlertKind, AlertRaised, AlertRecovered, Severity
from contracts.incidents import IncidentStatus, Tier
from contracts.retraining import RetrainAnswered, RetrainRequest
from services.incident_log.domain import Effects, Incident, Signal, TimerKind, TimerRequest
from services.incident_log.paging.planning import page_intents
from services.incident_log.paging.store import page_row
from services.incident_log.retrains import answered_end
from services.incident_log.routing import Matcher, Route
from services.incident_log.tables import (
    AlertRow,
    IncidentRow,
    RetrainRow,
    SignalRow,
    SilenceRow,
    TimelineRow,
    TimerRow,
)
from services.incident_log.triage import Silence
from services.runtime.outbox import stage

__all__ = ["IncidentStore", "new_incident_id"]

RESOLVED = IncidentStatus.RESOLVED.value


def new_incident_id() -> str:
    """Return a fresh, short, URL-safe incident id."""
    return f"inc-{secrets.token_hex(5)}"


class IncidentStore:
    """Reads and writes incidents and their history in one session (one transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._rows: dict[str, IncidentRow] = {}
        self._signal_rows: dict[tuple[str, str], SignalRow] = {}
        self._alert_log: list[dict[str, Any]] = []

    # -- incidents ---------------------------------------------------------------------------

    async def unresolved_holding(self, fingerprints: Collection[str]) -> list[Incident]:
        """Unresolved incidents holding one of the fingerprints, locked for update."""
        holding = select(SignalRow.incident_id).where(
            col(SignalRow.open_fingerprint).in_(sorted(fingerprints))
        )
        query = (
            select(IncidentRow)
            .where(IncidentRow.status != RESOLVED, col(IncidentRow.id).in_(holding))
            .with_for_update()
        )
        return await self._load(list((await self.session.exec(query)).all()))

    async def unresolved_related(
        self,
        alerts: Sequence[AlertRaised],
        *,
        correlate_since: datetime,
        inhibiting_kinds: Collection[str] | None,
    ) -> list[Incident]:
        """The unresolved incidents a batch of alerts can touch, locked for update: those holding
        one of its fingerprints, those about the same model version seen since
        ``correlate_since``, and those with an active signal of a kind that can inhibit
        (``None``: any kind can). Far fewer than every open incident of the batch's models."""
        models = sorted({alert.model for alert in alerts})
        holding = select(SignalRow.incident_id).where(
            col(SignalRow.open_fingerprint).in_(sorted({alert.fingerprint for alert in alerts}))
        )
        same_version: list[ColumnElement[bool]] = []
        for model in models:
            versions = {alert.model_version for alert in alerts if alert.model == model}
            if None in versions:
                same_version.append(col(IncidentRow.model) == model)
            else:
                same_version.append(
                    and_(
                        IncidentRow.model == model,
                        or_(
                            col(IncidentRow.model_version).in_(sorted(v for v in versions if v)),
                            col(IncidentRow.model_version).is_(None),
                            col(IncidentRow.awaiting_version).in_(sorted(v for v in versions if v)),
                        ),
                    )
                )
        related = [
            col(IncidentRow.id).in_(holding),
            and_(or_(*same_version), IncidentRow.last_seen >= correlate_since),
        ]
        if inhibiting_kinds is None:
            related.append(col(IncidentRow.model).in_(models))
        elif inhibiting_kinds:
            inhibitors = (
                select(SignalRow.incident_id)
                .join(IncidentRow, col(IncidentRow.id) == col(SignalRow.incident_id))
                .where(
                    col(IncidentRow.model).in_(models),
                    col(SignalRow.kind).in_(sorted(inhibiting_kinds)),
                    col(SignalRow.recovered_at).is_(None),
                )
            )
            related.append(col(IncidentRow.id).in_(inhibitors))
        query = (
            select(IncidentRow)
            .where(IncidentRow.status != RESOLVED, or_(*related))
            .with_for_update()
        )
        return await self._load(list((await self.session.exec(query)).all()))

    async def resolved_holding(
        self, fingerprints: Collection[str], since: datetime
    ) -> list[Incident]:
        """Incidents resolved at or after ``since`` that hold one of the fingerprints, locked."""
        holding = select(SignalRow.incident_id).where(
            col(SignalRow.fingerprint).in_(sorted(fingerprints))
        )
        query = (
            select(IncidentRow)
            .where(
                IncidentRow.status == RESOLVED,
                col(IncidentRow.resolved_at) >= since,
                col(IncidentRow.id).in_(holding),
            )
            .with_for_update()
        )
        return await self._load(list((await self.session.exec(query)).all()))

    async def awaiting_confirmation(self, models: Collection[str]) -> list[Incident]:
        """Incidents of these models in monitoring, waiting for a champion to prove healthy."""
        query = (
            select(IncidentRow)
            .where(
                col(IncidentRow.model).in_(sorted(models)),
                IncidentRow.status == IncidentStatus.MONITORING.value,
                col(IncidentRow.awaiting_version).is_not(None),
            )
            .with_for_update()
        )
        return await self._load(list((await self.session.exec(query)).all()))

    async def get(self, incident_id: str, *, for_update: bool = True) -> Incident | None:
        """One incident with its signals, or ``None``."""
        query = select(IncidentRow).where(IncidentRow.id == incident_id)
        if for_update:
            query = query.with_for_update()
        rows = list((await self.session.exec(query)).all())
        loaded = await self._load(rows)
        return loaded[0] if loaded else None

    async def _load(self, rows: list[IncidentRow]) -> list[Incident]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        signal_rows = (
            await self.session.exec(select(SignalRow).where(col(SignalRow.incident_id).in_(ids)))
        ).all()
        signals: dict[str, dict[str, Signal]] = {row.id: {} for row in rows}
        for signal_row in signal_rows:
            self._signal_rows[(signal_row.incident_id, signal_row.fingerprint)] = signal_row
            signals[signal_row.incident_id][signal_row.fingerprint] = _signal(signal_row)
        incidents = []
        for row in rows:
            self._rows[row.id] = row
            incidents.append(_incident(row, signals[row.id]))
        return incidents

    def save(self, incident: Incident) -> None:
        """Write an incident's state and signals (insert or update) in this transaction."""
        row = self._rows.get(incident.id) or IncidentRow(
            id=incident.id,
            model=incident.model,
            title=incident.title,
            severity=incident.severity.value,
            kind=incident.kind.value,
            fingerprint=incident.fingerprint,
            status=incident.status.value,
            tier=incident.tier.value,
            opened_at=incident.opened_at,
            last_seen=incident.last_seen,
        )
        self._rows[incident.id] = row
        _assign(
            row,
            model_version=incident.model_version,
            title=incident.title,
            severity=incident.severity.value,
            status=incident.status.value,
            tier=incident.tier.value,
            route=incident.route.model_dump(mode="json") if incident.route else None,
            routed_at=incident.routed_at,
            last_seen=incident.last_seen,
            tier_entered_at=incident.tier_entered_at,
            acknowledged_by=incident.acknowledged_by,
            acknowledged_at=incident.acknowledged_at,
            mitigated_at=incident.mitigated_at,
            resolved_at=incident.resolved_at,
            resolved_tier=incident.resolved_tier.value if incident.resolved_tier else None,
            owner=incident.owner,
            lease_expires_at=incident.lease_expires_at,
            claim_lease_seconds=(
                incident.claim_lease.total_seconds() if incident.claim_lease else None
            ),
            epoch=incident.epoch,
            runbook_position=incident.runbook_position,
            awaiting_version=incident.awaiting_version,
            awaiting_since=incident.awaiting_since,
            alert_count=incident.alert_count,
        )
        self.session.add(row)
        is_open = incident.status is not IncidentStatus.RESOLVED
        for signal in incident.signals.values():
            key = (incident.id, signal.fingerprint)
            signal_row = self._signal_rows.get(key) or SignalRow(
                incident_id=incident.id,
                fingerprint=signal.fingerprint,
                kind=signal.kind.value,
                severity=signal.severity.value,
                first_seen=signal.first_seen,
                last_seen=signal.last_seen,
                summary=signal.summary,
            )
            self._signal_rows[key] = signal_row
            _assign(
                signal_row,
                open_fingerprint=signal.fingerprint if is_open else None,
                severity=signal.severity.value,
                model_version=signal.model_version,
                last_seen=signal.last_seen,
                occurrences=signal.occurrences,
                recovered_at=signal.recovered_at,
                summary=signal.summary,
                evidence=signal.evidence,
            )
            self.session.add(signal_row)

    def record(self, incident: Incident, effects: Effects) -> None:
        """Append the timeline entries, store the timers, stage the events of an operation, and
        write the pages it causes (in the same transaction, so none is lost or doubled)."""
        incident_id = incident.id
        for entry in effects.timeline:
            self.session.add(
                TimelineRow(
                    incident_id=incident_id,
                    at=entry.at,
                    actor=entry.actor,
                    action=entry.action,
                    from_status=entry.from_status.value if entry.from_status else None,
                    to_status=entry.to_status.value if entry.to_status else None,
                    from_tier=entry.from_tier.value if entry.from_tier else None,
                    to_tier=entry.to_tier.value if entry.to_tier else None,
                    details=entry.details,
                )
            )
        for timer in effects.timers:
            self.session.add(
                TimerRow(
                    incident_id=timer.incident_id,
                    kind=timer.kind.value,
                    tier=timer.tier.value,
                    due_at=timer.due_at,
                    epoch=timer.epoch,
                )
            )
        stage(self.session, effects.events)
        for intent in page_intents(incident, effects):
            self.session.add(page_row(intent))

    async def flush(self) -> None:
        """Send pending writes now, so that a constraint violation surfaces here."""
        await self.session.flush()

    # -- alerts, silences, retrains ------------------------------------------------------------

    def log_alert(
        self,
        alert: AlertRaised | AlertRecovered,
        *,
        received_at: datetime,
        disposition: str,
        incident_id: str | None = None,
        suppressed_by: str | None = None,
    ) -> None:
        """Keep an alert or recovery with what became of it (written by :meth:`write_alert_log`)."""
        self._alert_log.append(
            {
                "event_id": alert.event_id,
                "type": alert.type,
                "incident_id": incident_id,
                "model": alert.model,
                "model_version": alert.model_version,
                "fingerprint": alert.fingerprint,
                "kind": alert.kind.value,
                "severity": alert.severity.value if isinstance(alert, AlertRaised) else None,
                "summary": alert.summary,
                "evidence": dict(alert.evidence),
                "producer": alert.producer,
                "occurred_at": alert.occurred_at,
                "received_at": received_at,
                "disposition": disposition,
                "suppressed_by": suppressed_by,
            }
        )

    async def write_alert_log(self) -> None:
        """Insert the logged alerts in one statement."""
        if self._alert_log:
            await self.session.exec(insert(AlertRow), params=self._alert_log)
            self._alert_log = []

    async def active_silences(self, now: datetime) -> list[Silence]:
        """Silences in force now."""
        rows = (
            await self.session.exec(
                select(SilenceRow).where(SilenceRow.starts_at <= now, SilenceRow.ends_at > now)
            )
        ).all()
        return [silence_of(row) for row in rows]

    async def retraining_models(
        self, now: datetime, *, answer_timeout: timedelta, retrain_timeout: timedelta
    ) -> frozenset[str]:
        """Models with a retrain in flight now: asked and awaiting the answer (for at most
        ``answer_timeout``), or answered with a run, not ended, asked less than
        ``retrain_timeout`` ago (:func:`services.incident_log.retrains.lapse`)."""
        rows = (
            await self.session.exec(
                select(RetrainRow.model).where(
                    col(RetrainRow.finished_at).is_(None),
                    RetrainRow.requested_at > now - retrain_timeout,
                    or_(
                        col(RetrainRow.answered_at).is_not(None),
                        col(RetrainRow.requested_at) > now - answer_timeout,
                    ),
                )
            )
        ).all()
        return frozenset(rows)

    async def record_retrain_ask(self, request: RetrainRequest, now: datetime) -> None:
        """Follow a retrain ask, unless its answer came first and already did."""
        known = (
            await self.session.exec(
                select(RetrainRow.id).where(RetrainRow.ask_event_id == request.event_id)
            )
        ).first()
        if known is None:
            self.session.add(
                RetrainRow(
                    model=request.model,
                    cause=request.cause,
                    requested_at=now,
                    ask_event_id=request.event_id,
                    incident_id=request.incident_id,
                )
            )

    async def record_retrain_answer(self, answer: RetrainAnswered, now: datetime) -> None:
        """Record the retrainer's answer on the ask it answers (following the ask from here if
        its request has not been seen); a refusal ends it at once."""
        row = None
        if answer.ask_event_id is not None:
            row = (
                await self.session.exec(
                    select(RetrainRow)
                    .where(RetrainRow.ask_event_id == answer.ask_event_id)
                    .with_for_update()
                )
            ).first()
        if row is None:
            row = RetrainRow(
                model=answer.model,
                cause=answer.cause,
                requested_at=now,
                ask_event_id=answer.ask_event_id,
                incident_id=answer.incident_id,
            )
        row.answer = answer.answer.value
        row.answered_at = now
        row.run_id = answer.run_id
        ended = answered_end(answer)
        if ended is not None and row.finished_at is None:
            row.finished_at = now
            row.ended_because = ended
        self.session.add(row)

    async def end_retrains(
        self, now: datetime, why: str, *, run_id: str | None = None, model: str | None = None
    ) -> list[RetrainRow]:
        """End the retrains in flight of a run (its end) or of a model (a champion change);
        return them."""
        query = select(RetrainRow).where(col(RetrainRow.finished_at).is_(None))
        if run_id is not None:
            query = query.where(RetrainRow.run_id == run_id)
        if model is not None:
            query = query.where(RetrainRow.model == model)
        rows = list((await self.session.exec(query.with_for_update())).all())
        for row in rows:
            row.finished_at = now
            row.ended_because = why
            self.session.add(row)
        return rows

    async def lapsing_retrains(
        self, now: datetime, *, answer_timeout: timedelta, retrain_timeout: timedelta, limit: int
    ) -> list[RetrainRow]:
        """Retrains not ended that no longer count as in flight by now (unanswered for
        ``answer_timeout``, or asked ``retrain_timeout`` ago), locked, oldest first."""
        query = (
            select(RetrainRow)
            .where(
                col(RetrainRow.finished_at).is_(None),
                or_(
                    col(RetrainRow.requested_at) <= now - retrain_timeout,
                    and_(
                        col(RetrainRow.answered_at).is_(None),
                        col(RetrainRow.requested_at) <= now - answer_timeout,
                    ),
                ),
            )
            .order_by(col(RetrainRow.requested_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.exec(query)).all())

    # -- timers --------------------------------------------------------------------------------

    async def due_timers(self, now: datetime, limit: int) -> list[tuple[TimerRow, TimerRequest]]:
        """Unfired timers due by ``now``, oldest first, locked (skipping those others hold)."""
        query = (
            select(TimerRow)
            .where(col(TimerRow.fired_at).is_(None), TimerRow.due_at <= now)
            .order_by(col(TimerRow.due_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = (await self.session.exec(query)).all()
        return [
            (
                row,
                TimerRequest(
                    incident_id=row.incident_id,
                    kind=TimerKind(row.kind),
                    tier=Tier(row.tier),
                    due_at=row.due_at,
                    epoch=row.epoch,
                ),
            )
            for row in rows
        ]

    async def next_timer_due(self) -> datetime | None:
        """When the earliest unfired timer is due."""
        due = await self.session.exec(
            select(func.min(TimerRow.due_at)).where(col(TimerRow.fired_at).is_(None))
        )
        value: datetime | None = due.one()
        return value

    # -- reading ---------------------------------------------------------------------------------

    async def timeline(self, incident_id: str) -> Sequence[TimelineRow]:
        """An incident's history, oldest first."""
        query = (
            select(TimelineRow)
            .where(TimelineRow.incident_id == incident_id)
            .order_by(col(TimelineRow.id))
        )
        return (await self.session.exec(query)).all()

    async def search(
        self,
        *,
        status: str | None = None,
        tier: str | None = None,
        model: str | None = None,
        unresolved: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> Sequence[IncidentRow]:
        """Incidents matching the filters, newest first."""
        query = select(IncidentRow)
        if status is not None:
            query = query.where(IncidentRow.status == status)
        if unresolved:
            query = query.where(IncidentRow.status != RESOLVED)
        if tier is not None:
            query = query.where(IncidentRow.tier == tier)
        if model is not None:
            query = query.where(IncidentRow.model == model)
        query = query.order_by(col(IncidentRow.opened_at).desc()).offset(offset).limit(limit)
        return (await self.session.exec(query)).all()

    async def signals_of(self, incident_id: str) -> Sequence[SignalRow]:
        """Signals of an incident, first seen first."""
        query = (
            select(SignalRow)
            .where(SignalRow.incident_id == incident_id)
            .order_by(col(SignalRow.first_seen), col(SignalRow.id))
        )
        return (await self.session.exec(query)).all()

    async def alerts(
        self,
        *,
        incident_id: str | None = None,
        suppressed: bool | None = None,
        model: str | None = None,
        limit: int = 200,
    ) -> Sequence[AlertRow]:
        """Received alerts, newest first."""
        query = select(AlertRow)
        if incident_id is not None:
            query = query.where(AlertRow.incident_id == incident_id)
        if model is not None:
            query = query.where(AlertRow.model == model)
        if suppressed is True:
            query = query.where(col(AlertRow.suppressed_by).is_not(None))
        elif suppressed is False:
            query = query.where(col(AlertRow.suppressed_by).is_(None))
        query = query.order_by(col(AlertRow.received_at).desc()).limit(limit)
        return (await self.session.exec(query)).all()

    async def silences(
        self, *, now: datetime, include_expired: bool = False
    ) -> Sequence[SilenceRow]:
        """Silences, active and future (and expired ones when asked)."""
        query = select(SilenceRow)
        if not include_expired:
            query = query.where(SilenceRow.ends_at > now)
        return (await self.session.exec(query.order_by(col(SilenceRow.starts_at)))).all()

    async def all_incidents(self) -> Sequence[IncidentRow]:
        """Every incident (for statistics)."""
        return (await self.session.exec(select(IncidentRow))).all()

    async def all_timeline(self, actions: Collection[str]) -> Sequence[TimelineRow]:
        """Timeline entries of the given actions, in order (for statistics)."""
        query = (
            select(TimelineRow)
            .where(col(TimelineRow.action).in_(list(actions)))
            .order_by(col(TimelineRow.id))
        )
        return (await self.session.exec(query)).all()


def _assign(row: SQLModel, **values: Any) -> None:
    """Set the attributes that differ (setting an ORM attribute is not free, and saving an
    incident after each alert of a batch would otherwise rewrite every column every time)."""
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)


def silence_of(row: SilenceRow) -> Silence:
    """The domain view of a silence row."""
    return Silence(
        id=row.id,
        matcher=Matcher.model_validate(row.matcher),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        reason=row.reason,
    )


def _signal(row: SignalRow) -> Signal:
    return Signal(
        fingerprint=row.fingerprint,
        kind=AlertKind(row.kind),
        severity=Severity(row.severity),
        model_version=row.model_version,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        summary=row.summary,
        evidence=dict(row.evidence or {}),
        occurrences=row.occurrences,
        recovered_at=row.recovered_at,
    )


def _incident(row: IncidentRow, signals: dict[str, Signal]) -> Incident:
    fields: dict[str, Any] = {
        "id": row.id,
        "model": row.model,
        "model_version": row.model_version,
        "title": row.title,
        "severity": Severity(row.severity),
        "kind": AlertKind(row.kind),
        "fingerprint": row.fingerprint,
        "opened_at": row.opened_at,
        "last_seen": row.last_seen,
        "route": Route.model_validate(row.route) if row.route else None,
        "routed_at": row.routed_at,
        "status": IncidentStatus(row.status),
        "tier": Tier(row.tier),
        "tier_entered_at": row.tier_entered_at,
        "acknowledged_by": row.acknowledged_by,
        "acknowledged_at": row.acknowledged_at,
        "mitigated_at": row.mitigated_at,
        "resolved_at": row.resolved_at,
        "resolved_tier": Tier(row.resolved_tier) if row.resolved_tier else None,
        "owner": row.owner,
        "lease_expires_at": row.lease_expires_at,
        "claim_lease": (
            timedelta(seconds=row.claim_lease_seconds) if row.claim_lease_seconds else None
        ),
        "epoch": row.epoch,
        "runbook_position": row.runbook_position,
        "awaiting_version": row.awaiting_version,
        "awaiting_since": row.awaiting_since,
        "signals": signals,
    }
    return Incident(**fields)

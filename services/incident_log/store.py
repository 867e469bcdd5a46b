"""Persistence of incidents: rows to domain objects and back, within one session's transaction.

Incidents are loaded ``FOR UPDATE`` when they may change (on SQLite every transaction already holds
the write lock), so an API action and an alert touching the same incident never lose an update.

A store opened ``batched`` (the alert path, ADR 0016) reads and writes plain rows instead of ORM
objects: it keeps the columns it read, and :meth:`IncidentStore.write` sends what changed as a
few multi-row statements (one per table) instead of the ORM's per-object bookkeeping, which cost
more than the triage itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, bindparam, update
from sqlalchemy import select as select_rows
from sqlmodel import SQLModel, and_, col, func, insert, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.alerts import AlertKind, AlertRaised, AlertRecovered, Severity
from contracts.incidents import IncidentStatus, Tier
from contracts.retraining import RetrainAnswered, RetrainRequest
from services.incident_log.domain import (
    Effects,
    Incident,
    Signal,
    TimelineEntry,
    TimerKind,
    TimerRequest,
)
from services.incident_log.paging.planning import page_intents
from services.incident_log.paging.store import page_row, page_values
from services.incident_log.paging.tables import PageRow
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
from services.runtime.outbox import OutboxMessage, outbox_values, stage

__all__ = ["IncidentStore", "new_incident_id"]

RESOLVED = IncidentStatus.RESOLVED.value


def new_incident_id() -> str:
    """Return a fresh, short, URL-safe incident id."""
    return f"inc-{secrets.token_hex(5)}"


class IncidentStore:
    """Reads and writes incidents and their history in one session (one transaction)."""

    def __init__(self, session: AsyncSession, *, batched: bool = False) -> None:
        """``batched``: read plain rows, keep the writes until :meth:`write` (which must then be
        awaited before the transaction commits)."""
        self.session = session
        self._batched = batched
        self._rows: dict[str, IncidentRow] = {}
        self._signal_rows: dict[tuple[str, str], SignalRow] = {}
        self._alert_log: list[dict[str, Any]] = []
        # batched: the columns as read, the incidents saved, and the rows to insert
        self._read: dict[str, dict[str, Any]] = {}
        self._read_signals: dict[tuple[str, str], dict[str, Any]] = {}
        self._saved: dict[str, Incident] = {}
        self._timeline: list[dict[str, Any]] = []
        self._timers: list[dict[str, Any]] = []
        self._pages: list[dict[str, Any]] = []
        self._outbox: list[dict[str, Any]] = []

    # -- incidents ---------------------------------------------------------------------------

    async def unresolved_holding(self, fingerprints: Collection[str]) -> list[Incident]:
        """Unresolved incidents holding one of the fingerprints, locked for update."""
        holding = select(SignalRow.incident_id).where(
            col(SignalRow.open_fingerprint).in_(sorted(fingerprints))
        )
        return await self._select(IncidentRow.status != RESOLVED, col(IncidentRow.id).in_(holding))

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
        (``None``: any kind can). Far fewer than every open incident of the batch's models.

        The same-version ones are picked in Python from a narrow read of the models' incidents
        seen since ``correlate_since`` (an index range), then everything is loaded by id: one
        clause per model, or row-value ``IN`` lists, made the database compare every incident
        with every pair of the batch (a tenth of a second a batch on PostgreSQL)."""
        fingerprints = sorted({alert.fingerprint for alert in alerts})
        versions_of: dict[str, set[int | None]] = {}
        for alert in alerts:
            versions_of.setdefault(alert.model, set()).add(alert.model_version)
        models = sorted(versions_of)
        connection = await self.session.connection()
        ids = set(
            (
                await connection.execute(
                    select_rows(_SIGNALS.c.incident_id).where(
                        _SIGNALS.c.open_fingerprint.in_(fingerprints)
                    )
                )
            ).scalars()
        )
        recent = await connection.execute(
            select_rows(
                _INCIDENTS.c.id,
                _INCIDENTS.c.model,
                _INCIDENTS.c.model_version,
                _INCIDENTS.c.awaiting_version,
            ).where(
                _INCIDENTS.c.model.in_(models),
                _INCIDENTS.c.status != RESOLVED,
                _INCIDENTS.c.last_seen >= correlate_since,
            )
        )
        for incident_id, model, version, awaiting in recent:
            versions = versions_of[model]
            if (
                None in versions
                or version is None
                or (version and version in versions)
                or (awaiting and awaiting in versions)
            ):
                ids.add(incident_id)
        related: list[ColumnElement[bool]] = [col(IncidentRow.id).in_(sorted(ids))]
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
        return await self._select(IncidentRow.status != RESOLVED, or_(*related))

    async def resolved_holding(
        self, fingerprints: Collection[str], since: datetime
    ) -> list[Incident]:
        """Incidents resolved at or after ``since`` that hold one of the fingerprints, locked."""
        holding = select(SignalRow.incident_id).where(
            col(SignalRow.fingerprint).in_(sorted(fingerprints))
        )
        return await self._select(
            IncidentRow.status == RESOLVED,
            col(IncidentRow.resolved_at) >= since,
            col(IncidentRow.id).in_(holding),
        )

    async def awaiting_confirmation(self, models: Collection[str]) -> list[Incident]:
        """Incidents of these models in monitoring, waiting for a champion to prove healthy."""
        return await self._select(
            col(IncidentRow.model).in_(sorted(models)),
            IncidentRow.status == IncidentStatus.MONITORING.value,
            col(IncidentRow.awaiting_version).is_not(None),
        )

    async def get(self, incident_id: str, *, for_update: bool = True) -> Incident | None:
        """One incident with its signals, or ``None``."""
        loaded = await self._select(IncidentRow.id == incident_id, for_update=for_update)
        return loaded[0] if loaded else None

    async def _select(
        self, *conditions: ColumnElement[bool] | bool, for_update: bool = True
    ) -> list[Incident]:
        """The incidents matching the conditions, with their signals (locked for update)."""
        if self._batched:
            plain: Select[Any] = select_rows(_INCIDENTS).where(and_(*conditions))
            if for_update:
                plain = plain.with_for_update()
            connection = await self.session.connection()
            return await self._load_plain(list((await connection.execute(plain)).mappings()))
        query = select(IncidentRow).where(and_(*conditions))
        if for_update:
            query = query.with_for_update()
        return await self._load(list((await self.session.exec(query)).all()))

    async def _load_plain(self, rows: list[Any]) -> list[Incident]:
        """Domain incidents from plain rows, remembering the columns read (batched)."""
        if not rows:
            return []
        ids = [row["id"] for row in rows]
        connection = await self.session.connection()
        signal_rows = (
            await connection.execute(select_rows(_SIGNALS).where(_SIGNALS.c.incident_id.in_(ids)))
        ).mappings()
        signals: dict[str, dict[str, Signal]] = {incident_id: {} for incident_id in ids}
        for signal_row in signal_rows:
            values = dict(signal_row)
            incident_id, fingerprint = values["incident_id"], values["fingerprint"]
            self._read_signals[(incident_id, fingerprint)] = values
            signals[incident_id][fingerprint] = _signal(_Columns(values))
        incidents = []
        for row in rows:
            values = dict(row)
            self._read[values["id"]] = values
            incidents.append(_incident(_Columns(values), signals[values["id"]]))
        return incidents

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
        if self._batched:
            self._saved[incident.id] = incident
            return
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
        if self._batched:
            self._record_plain(incident, effects)
            return
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

    def _record_plain(self, incident: Incident, effects: Effects) -> None:
        incident_id = incident.id
        self._timeline.extend(_timeline_values(incident_id, entry) for entry in effects.timeline)
        self._timers.extend(
            {
                "incident_id": timer.incident_id,
                "kind": timer.kind.value,
                "tier": timer.tier.value,
                "due_at": timer.due_at,
                "epoch": timer.epoch,
                "fired_at": None,
            }
            for timer in effects.timers
        )
        self._outbox.extend(outbox_values(effects.events))
        self._pages.extend(page_values(intent) for intent in page_intents(incident, effects))

    async def write(self) -> None:
        """Send a batched store's writes: the incidents and signals saved (inserted, or the
        columns that changed updated), then the timeline, timers, pages, outbox rows and alert
        log, each table in one statement, in the order they were recorded."""
        incidents_new: list[dict[str, Any]] = []
        incidents_changed: list[dict[str, Any]] = []
        signals_new: list[dict[str, Any]] = []
        signals_changed: list[dict[str, Any]] = []
        for incident in self._saved.values():
            values = _incident_values(incident)
            read = self._read.get(incident.id)
            if read is None:
                incidents_new.append(values)
            else:
                _note_changes(incidents_changed, incident.id, read, values)
            self._read[incident.id] = values
            is_open = incident.status is not IncidentStatus.RESOLVED
            for signal in incident.signals.values():
                key = (incident.id, signal.fingerprint)
                values = _signal_values(incident.id, signal, is_open)
                read = self._read_signals.get(key)
                if read is None:
                    signals_new.append(values)
                else:
                    _note_changes(signals_changed, read["id"], read, values)
                self._read_signals[key] = {"id": None if read is None else read["id"], **values}
        self._saved = {}
        await self._insert(_INCIDENTS, incidents_new)
        await self._update(_INCIDENTS, incidents_changed)
        # Signals first released (open_fingerprint set to NULL), then taken: the unique
        # open_fingerprint never sees two holders in between.
        signals_changed.sort(key=lambda changes: changes.get("open_fingerprint", 0) is not None)
        await self._update(_SIGNALS, signals_changed)
        await self._insert(_SIGNALS, signals_new)
        for table, rows in (
            (_TIMELINE, self._timeline),
            (_TIMERS, self._timers),
            (_PAGES, self._pages),
            (_OUTBOX, self._outbox),
        ):
            await self._insert(table, rows)
        self._timeline, self._timers, self._pages, self._outbox = [], [], [], []
        await self.write_alert_log()

    async def _insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            connection = await self.session.connection()
            await connection.execute(insert(table), rows)

    async def _update(self, table: Table, changes: list[dict[str, Any]]) -> None:
        """Update rows by id, one statement per run of rows changing the same columns."""
        connection = await self.session.connection()
        start = 0
        while start < len(changes):
            columns = changes[start].keys()
            end = start + 1
            while end < len(changes) and changes[end].keys() == columns:
                end += 1
            await connection.execute(
                update(table).where(table.c.id == bindparam("row_id")), changes[start:end]
            )
            start = end

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
            connection = await self.session.connection()
            await connection.execute(insert(_ALERTS), self._alert_log)
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


def _table(model: type[SQLModel]) -> Table:
    """The table of a ``table=True`` model: statements on it skip the ORM's bookkeeping."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]  # set by SQLModel


_INCIDENTS = _table(IncidentRow)
_SIGNALS = _table(SignalRow)
_TIMELINE = _table(TimelineRow)
_TIMERS = _table(TimerRow)
_ALERTS = _table(AlertRow)
_PAGES = _table(PageRow)
_OUTBOX = _table(OutboxMessage)


class _Columns:
    """Attribute access to a dict of column values (what the converters below read)."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


def _note_changes(
    changes: list[dict[str, Any]], row_id: Any, read: dict[str, Any], values: dict[str, Any]
) -> None:
    """Add the columns of a row that differ from what was read (none: nothing to update)."""
    changed = {name: value for name, value in values.items() if read[name] != value}
    if changed:
        changes.append({"row_id": row_id, **changed})


def _incident_values(incident: Incident) -> dict[str, Any]:
    """Every column of an incident's row."""
    return {
        "id": incident.id,
        "model": incident.model,
        "model_version": incident.model_version,
        "title": incident.title,
        "severity": incident.severity.value,
        "kind": incident.kind.value,
        "fingerprint": incident.fingerprint,
        "status": incident.status.value,
        "tier": incident.tier.value,
        "route": incident.route.model_dump(mode="json") if incident.route else None,
        "routed_at": incident.routed_at,
        "opened_at": incident.opened_at,
        "last_seen": incident.last_seen,
        "tier_entered_at": incident.tier_entered_at,
        "acknowledged_by": incident.acknowledged_by,
        "acknowledged_at": incident.acknowledged_at,
        "mitigated_at": incident.mitigated_at,
        "resolved_at": incident.resolved_at,
        "resolved_tier": incident.resolved_tier.value if incident.resolved_tier else None,
        "owner": incident.owner,
        "lease_expires_at": incident.lease_expires_at,
        "claim_lease_seconds": (
            incident.claim_lease.total_seconds() if incident.claim_lease else None
        ),
        "epoch": incident.epoch,
        "runbook_position": incident.runbook_position,
        "awaiting_version": incident.awaiting_version,
        "awaiting_since": incident.awaiting_since,
        "alert_count": incident.alert_count,
    }


def _signal_values(incident_id: str, signal: Signal, is_open: bool) -> dict[str, Any]:
    """Every column of a signal's row but its id."""
    return {
        "incident_id": incident_id,
        "fingerprint": signal.fingerprint,
        "open_fingerprint": signal.fingerprint if is_open else None,
        "kind": signal.kind.value,
        "severity": signal.severity.value,
        "model_version": signal.model_version,
        "first_seen": signal.first_seen,
        "last_seen": signal.last_seen,
        "occurrences": signal.occurrences,
        "recovered_at": signal.recovered_at,
        "summary": signal.summary,
        "evidence": signal.evidence,
    }


def _timeline_values(incident_id: str, entry: TimelineEntry) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "from_status": entry.from_status.value if entry.from_status else None,
        "to_status": entry.to_status.value if entry.to_status else None,
        "from_tier": entry.from_tier.value if entry.from_tier else None,
        "to_tier": entry.to_tier.value if entry.to_tier else None,
        "details": entry.details,
    }


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


def _signal(row: SignalRow | _Columns) -> Signal:
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


def _incident(row: IncidentRow | _Columns, signals: dict[str, Signal]) -> Incident:
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

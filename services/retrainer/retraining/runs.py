"""Retraining runs in the database: admitting asks (the rules of :mod:`.triggers`), claiming due
runs for the worker, and recording their start and end with their events on ``models``.

Every ask is answered (``retrain.answered``) in the transaction that records it, refusals
included, and an ask already handled (by ``event_id``) is neither recorded nor answered again.
Whoever asks, directly or through a merge into an active run, becomes one of the run's requesters
(who may not approve its candidate).

Admission and claiming lean on the database for the "at most one" rules: the unique
``queued_model`` and ``running_model`` columns make a racing second admission or claim fail its
transaction, and the caller retries, finding the run the winner made. A claimed run holds a lease
the worker renews; a run whose worker died is claimed again when its lease runs out, and since
every pipeline step is cached it resumes where it stopped. Ending a run locks its row and checks
it is still running, so of two workers holding one run (the first stalled past its lease, not
dead) only the first to end it records an outcome; the other's transaction rolls back
(:class:`RunEnded`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from pydantic import JsonValue
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.registry import (
    DatasetChanges,
    DatasetRef,
    ModelTask,
    RetrainFinished,
    RetrainStarted,
)
from contracts.retraining import RetrainAnswer, RetrainAnswered, RetrainRefusal, RetrainTrigger
from services.retrainer.registry.store import NotFoundError, RegistryStore
from services.retrainer.retraining.recipes import RecipeError, parse_recipe
from services.retrainer.retraining.tables import RetrainAskRow, RetrainRunRow
from services.retrainer.retraining.triggers import (
    Admission,
    AdmissionKind,
    RetrainAsk,
    RunState,
    RunView,
    admit,
)
from services.runtime import Sessions, first_time, stage

__all__ = ["AskRefused", "RetrainRuns", "Run", "RunEnded", "UnknownModel"]

T = TypeVar("T")
_ATTEMPTS = 5


class UnknownModel(LookupError):
    """The registry has no such model."""


class RunEnded(RuntimeError):
    """A worker tried to end a run that is no longer running: its lease lapsed, another
    replica's worker claimed the run again and ended it first. The late conclusion (with its
    registration, evaluation and promotion request, in the same transaction) is dropped."""


class AskRefused(ValueError):
    """An ask that cannot be admitted (bad parameters, a conflicting queued run, a cause already
    retrained for); ``refusal`` says which. It was answered and recorded all the same."""

    def __init__(self, message: str, refusal: RetrainRefusal | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


@dataclass(frozen=True)
class Run:
    """A run as the worker and the API see it."""

    run_id: str
    model: str
    state: RunState
    trigger: RetrainTrigger
    causes: list[str]
    requesters: list[str]
    requested_by: str
    reason: str
    incident_id: str | None
    parameters: dict[str, JsonValue] | None
    requested_at: datetime
    not_before: datetime
    started_at: datetime | None
    finished_at: datetime | None
    dataset: DatasetRef | None
    live_from: int | None
    candidate_version: int | None
    evaluation_id: str | None
    cached_steps: list[str]
    failure: str | None
    dataset_changes: DatasetChanges | None


def _run(row: RetrainRunRow) -> Run:
    return Run(
        run_id=row.run_id,
        model=row.model,
        state=RunState(row.state),
        trigger=RetrainTrigger(row.trigger),
        causes=json.loads(row.causes),
        requesters=json.loads(row.requesters),
        requested_by=row.requested_by,
        reason=row.reason,
        incident_id=row.incident_id,
        parameters=json.loads(row.parameters) if row.parameters else None,
        requested_at=row.requested_at,
        not_before=row.not_before,
        started_at=row.started_at,
        finished_at=row.finished_at,
        dataset=DatasetRef.model_validate_json(row.dataset) if row.dataset else None,
        live_from=row.live_from,
        candidate_version=row.candidate_version,
        evaluation_id=row.evaluation_id,
        cached_steps=json.loads(row.cached_steps),
        failure=row.failure,
        dataset_changes=(
            DatasetChanges.model_validate_json(row.dataset_changes) if row.dataset_changes else None
        ),
    )


def _view(row: RetrainRunRow) -> RunView:
    return RunView(
        run_id=row.run_id,
        state=RunState(row.state),
        causes=frozenset(json.loads(row.causes)),
        finished_at=row.finished_at,
        parameters=json.loads(row.parameters) if row.parameters else None,
    )


class RetrainRuns:
    """Runs of every model, in the retrainer's database."""

    def __init__(
        self,
        sessions: Sessions,
        registry: RegistryStore,
        *,
        producer: str,
        cooldown: timedelta,
        lease: timedelta,
        clock: Callable[[], datetime],
        after_commit: Callable[[], None] = lambda: None,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._producer = producer
        self._cooldown = cooldown
        self._lease = lease
        self._clock = clock
        self._after_commit = after_commit
        self._on_queued = on_queued

    # ------------------------------------------------------------------ asking

    async def ask(self, ask: RetrainAsk, *, event_id: UUID | None = None) -> Admission:
        """Admit an ask: merge it, join it to the queued run, or queue a new run; record it and
        its answer either way.

        Raises :class:`UnknownModel` for a model the registry lacks and :class:`AskRefused`
        for parameters that make no recipe or that conflict with the queued run, and for a
        cause already retrained for (after recording the refusal and its answer).
        """
        refused = await self._refusal(ask)
        admission = await self._retrying(
            lambda session: self._admit(session, ask, event_id, refused)
        )
        if admission.kind is AdmissionKind.REFUSED:
            if admission.refusal is RetrainRefusal.UNKNOWN_MODEL:
                raise UnknownModel(admission.reason)
            raise AskRefused(admission.reason, admission.refusal)
        if admission.kind is not AdmissionKind.MERGED:
            self._on_queued()
        return admission

    async def _refusal(self, ask: RetrainAsk) -> Admission | None:
        """The refusal of an ask whatever the runs: an unknown model, parameters that make no
        recipe."""
        try:
            base_parameters, task = await self._base_parameters(ask.model)
        except UnknownModel as error:
            return Admission(
                AdmissionKind.REFUSED, str(error), refusal=RetrainRefusal.UNKNOWN_MODEL
            )
        try:
            parse_recipe(base_parameters, ask.parameters, task=task)
        except RecipeError as error:
            return Admission(
                AdmissionKind.REFUSED,
                f"training parameters: {error}",
                refusal=RetrainRefusal.INVALID_PARAMETERS,
            )
        return None

    async def _base_parameters(self, model: str) -> tuple[Mapping[str, JsonValue], ModelTask]:
        try:
            versions = await self._registry.versions(model)
        except NotFoundError:
            raise UnknownModel(f"the registry has no model named {model!r}") from None
        if not versions:
            raise UnknownModel(f"model {model!r} has no registered version")
        deployment = await self._registry.deployment(model)
        if deployment is not None and deployment.champion is not None:
            champion = deployment.champion.version
            base = next(v for v in versions if v.version == champion)
            return base.parameters, base.spec.task
        return versions[-1].parameters, versions[-1].spec.task

    async def _admit(
        self,
        session: AsyncSession,
        ask: RetrainAsk,
        event_id: UUID | None,
        refused: Admission | None,
    ) -> Admission:
        if event_id is not None and not await first_time(session, event_id):
            return Admission(AdmissionKind.MERGED, "this ask was already handled")
        now = self._clock()
        if refused is not None:
            rows: list[RetrainRunRow] = []
            admission = refused
        else:
            rows = await self._runs_for_admission(session, ask.model, ask.cause)
            admission = admit(ask, [_view(row) for row in rows], cooldown=self._cooldown, now=now)
        run_id = admission.run_id
        if admission.kind is AdmissionKind.QUEUED:
            run_id = f"rt-{uuid.uuid4().hex[:12]}"
            assert admission.not_before is not None
            session.add(
                RetrainRunRow(
                    run_id=run_id,
                    model=ask.model,
                    state=RunState.QUEUED.value,
                    queued_model=ask.model,
                    trigger=ask.trigger.value,
                    causes=json.dumps([ask.cause]),
                    requesters=json.dumps([ask.requested_by]),
                    requested_by=ask.requested_by,
                    reason=ask.reason,
                    incident_id=ask.incident_id,
                    parameters=json.dumps(dict(ask.parameters)) if ask.parameters else None,
                    requested_at=now,
                    not_before=admission.not_before,
                )
            )
            admission = Admission(
                admission.kind, f"queued run {run_id}", run_id, admission.not_before
            )
        elif admission.kind in (AdmissionKind.JOINED, AdmissionKind.MERGED):
            row = next(row for row in rows if row.run_id == run_id)
            if admission.kind is AdmissionKind.JOINED:
                row.causes = json.dumps([*json.loads(row.causes), ask.cause])
                row.incident_id = row.incident_id or ask.incident_id
            requesters = json.loads(row.requesters)
            if ask.requested_by not in requesters:
                row.requesters = json.dumps([*requesters, ask.requested_by])
            session.add(row)
        session.add(
            RetrainAskRow(
                model=ask.model,
                cause=ask.cause,
                trigger=ask.trigger.value,
                requested_by=ask.requested_by,
                reason=ask.reason,
                incident_id=ask.incident_id,
                at=ask.at,
                admission=admission.kind.value,
                run_id=run_id,
                detail=admission.reason,
                via=ask.via,
            )
        )
        stage(session, [self._answer(ask, event_id, admission, run_id, now)])
        await session.flush()
        return admission

    def _answer(
        self,
        ask: RetrainAsk,
        event_id: UUID | None,
        admission: Admission,
        run_id: str | None,
        now: datetime,
    ) -> RetrainAnswered:
        return RetrainAnswered(
            producer=self._producer,
            model=ask.model,
            ask_event_id=event_id,
            cause=ask.cause,
            answer=RetrainAnswer(admission.kind.value),
            run_id=run_id,
            not_before=admission.not_before if admission.kind is AdmissionKind.QUEUED else None,
            refusal=admission.refusal,
            reason=admission.reason,
            incident_id=ask.incident_id,
            correlation_id=ask.incident_id,
            requested_by=ask.requested_by,
            via=ask.via,
            occurred_at=now,
        )

    async def requesters(self, session: AsyncSession, run_id: str) -> list[str]:
        """Return a run's requesters as they stand, locking the run in the caller's transaction
        (an ask merged while the run trained counts; one arriving after its end is refused)."""
        row = (
            await session.exec(
                select(RetrainRunRow).where(RetrainRunRow.run_id == run_id).with_for_update()
            )
        ).first()
        assert row is not None
        return list(json.loads(row.requesters))

    async def _runs_for_admission(
        self, session: AsyncSession, model: str, cause: str
    ) -> list[RetrainRunRow]:
        """The model's active runs, its last finished run (the cooldown counts from it) and the
        runs an earlier ask with this cause went into."""
        with_cause = select(RetrainAskRow.run_id).where(
            RetrainAskRow.model == model,
            RetrainAskRow.cause == cause,
            col(RetrainAskRow.run_id).is_not(None),
        )
        query = (
            select(RetrainRunRow)
            .where(
                RetrainRunRow.model == model,
                col(RetrainRunRow.state).in_([RunState.QUEUED.value, RunState.RUNNING.value])
                | col(RetrainRunRow.run_id).in_(with_cause),
            )
            # Joining asks rewrite the queued run's causes: on PostgreSQL they wait for each
            # other here and read the winner's row (SQLite's BEGIN IMMEDIATE serialises anyway).
            .with_for_update()
        )
        rows = list((await session.exec(query)).all())
        latest = (
            await session.exec(
                select(RetrainRunRow)
                .where(RetrainRunRow.model == model, col(RetrainRunRow.finished_at).is_not(None))
                .order_by(col(RetrainRunRow.finished_at).desc())
                .limit(1)
            )
        ).first()
        if latest is not None and all(row.run_id != latest.run_id for row in rows):
            rows.append(latest)
        return rows

    async def last_asked(self, model: str) -> datetime | None:
        """Return when the model was last asked to retrain, by anyone."""
        async with self._sessions() as session:
            query = (
                select(RetrainAskRow.at)
                .where(RetrainAskRow.model == model)
                .order_by(col(RetrainAskRow.at).desc())
                .limit(1)
            )
            return (await session.exec(query)).first()

    # ------------------------------------------------------------------ the worker's side

    async def claim(self) -> Run | None:
        """Start the next due run: a queued run whose model has none running, or a running run
        whose lease ran out. Return it, or ``None`` if nothing is due."""
        now = self._clock()
        async with self._sessions() as session:
            due = (
                await session.exec(
                    select(RetrainRunRow.run_id)
                    .where(
                        (
                            (col(RetrainRunRow.state) == RunState.QUEUED.value)
                            & (col(RetrainRunRow.not_before) <= now)
                        )
                        | (
                            (col(RetrainRunRow.state) == RunState.RUNNING.value)
                            & (col(RetrainRunRow.lease_expires_at) < now)
                        )
                    )
                    .order_by(col(RetrainRunRow.requested_at))
                )
            ).all()
        for run_id in due:
            try:
                async with self._sessions() as session, session.begin():
                    row = (
                        await session.exec(
                            select(RetrainRunRow)
                            .where(RetrainRunRow.run_id == run_id)
                            .with_for_update(skip_locked=True)
                        )
                    ).first()
                    if row is None or not self._due(row, now):
                        continue
                    row.state = RunState.RUNNING.value
                    row.queued_model = None
                    row.running_model = row.model
                    row.started_at = row.started_at or now
                    row.lease_expires_at = now + self._lease
                    session.add(row)
                    await session.flush()
            except IntegrityError:
                continue  # another run of the model is running: this one waits
            return _run(row)
        return None

    @staticmethod
    def _due(row: RetrainRunRow, now: datetime) -> bool:
        if row.state == RunState.QUEUED.value:
            return row.not_before <= now
        return (
            row.state == RunState.RUNNING.value
            and row.lease_expires_at is not None
            and row.lease_expires_at < now
        )

    async def renew(self, run_id: str) -> None:
        """Extend a running run's lease."""
        async with self._sessions() as session, session.begin():
            row = await session.get(RetrainRunRow, run_id)
            if row is not None and row.state == RunState.RUNNING.value:
                row.lease_expires_at = self._clock() + self._lease
                session.add(row)

    async def started(
        self, run: Run, dataset: DatasetRef, live_from: int, changes: DatasetChanges
    ) -> None:
        """Record the snapshot a run trains on and announce the start (once per run)."""
        async with self._sessions() as session, session.begin():
            query = select(RetrainRunRow).where(RetrainRunRow.run_id == run.run_id)
            row = (await session.exec(query.with_for_update())).first()
            assert row is not None
            if row.state != RunState.RUNNING.value:
                raise RunEnded(f"run {run.run_id} was ended ({row.state}) by another worker")
            announce = row.dataset is None
            row.dataset = dataset.model_dump_json()
            row.live_from = live_from
            row.dataset_changes = changes.model_dump_json()
            session.add(row)
            if announce:
                stage(
                    session,
                    [
                        RetrainStarted(
                            producer=self._producer,
                            model=run.model,
                            run_id=run.run_id,
                            cause=", ".join(run.causes),
                            incident_id=run.incident_id,
                            correlation_id=run.incident_id,
                            dataset=dataset,
                            occurred_at=self._clock(),
                        )
                    ],
                )
        self._after_commit()

    async def finish(
        self,
        session: AsyncSession,
        run: Run,
        *,
        candidate_version: int | None,
        evaluation_id: str | None,
        cached_steps: list[str],
        failure: str | None,
        changes: DatasetChanges | None,
    ) -> None:
        """End a run in the caller's transaction and stage ``retrain.finished``; raise
        :class:`RunEnded` if another worker ended it first."""
        row = (
            await session.exec(
                select(RetrainRunRow).where(RetrainRunRow.run_id == run.run_id).with_for_update()
            )
        ).first()
        assert row is not None
        if row.state != RunState.RUNNING.value:
            raise RunEnded(f"run {run.run_id} was already ended ({row.state}) by another worker")
        now = self._clock()
        row.state = (RunState.FAILED if failure else RunState.SUCCEEDED).value
        row.running_model = None
        row.lease_expires_at = None
        row.finished_at = now
        row.candidate_version = candidate_version
        row.evaluation_id = evaluation_id
        row.cached_steps = json.dumps(cached_steps)
        row.failure = failure
        session.add(row)
        stage(
            session,
            [
                RetrainFinished(
                    producer=self._producer,
                    model=run.model,
                    run_id=run.run_id,
                    incident_id=run.incident_id,
                    correlation_id=run.incident_id,
                    candidate_version=candidate_version,
                    cached_steps=cached_steps,
                    failure=failure,
                    dataset_changes=changes,
                    occurred_at=now,
                )
            ],
        )

    async def fail(self, run: Run, failure: str, changes: DatasetChanges | None = None) -> None:
        """End a run that could not produce a candidate."""
        async with self._sessions() as session, session.begin():
            await self.finish(
                session,
                run,
                candidate_version=None,
                evaluation_id=None,
                cached_steps=[],
                failure=failure,
                changes=changes,
            )
        self._after_commit()

    async def latest_snapshot(self, model: str, *, before: str) -> tuple[DatasetRef, int] | None:
        """Return the snapshot of the model's last run that got one, other than ``before``."""
        async with self._sessions() as session:
            row = (
                await session.exec(
                    select(RetrainRunRow)
                    .where(
                        RetrainRunRow.model == model,
                        RetrainRunRow.run_id != before,
                        col(RetrainRunRow.dataset).is_not(None),
                        col(RetrainRunRow.started_at).is_not(None),
                    )
                    .order_by(col(RetrainRunRow.started_at).desc())
                    .limit(1)
                )
            ).first()
        if row is None or row.dataset is None:
            return None
        return DatasetRef.model_validate_json(row.dataset), row.live_from or 0

    # ------------------------------------------------------------------ reading

    async def get(self, run_id: str) -> Run | None:
        """Return a run by id."""
        async with self._sessions() as session:
            row = await session.get(RetrainRunRow, run_id)
        return _run(row) if row is not None else None

    async def recent(self, *, model: str | None = None, limit: int = 50) -> list[Run]:
        """Return runs, newest first."""
        query = select(RetrainRunRow).order_by(col(RetrainRunRow.requested_at).desc())
        if model is not None:
            query = query.where(RetrainRunRow.model == model)
        async with self._sessions() as session:
            rows = (await session.exec(query.limit(limit))).all()
        return [_run(row) for row in rows]

    async def asks(self, run_id: str) -> list[dict[str, Any]]:
        """Return the asks merged into a run, oldest first."""
        async with self._sessions() as session:
            rows = (
                await session.exec(
                    select(RetrainAskRow)
                    .where(RetrainAskRow.run_id == run_id)
                    .order_by(col(RetrainAskRow.id))
                )
            ).all()
        return [
            {
                "cause": row.cause,
                "trigger": row.trigger,
                "requested_by": row.requested_by,
                "reason": row.reason,
                "incident_id": row.incident_id,
                "at": row.at,
                "admission": row.admission,
                "via": row.via,
                "detail": row.detail,
            }
            for row in rows
        ]

    # ------------------------------------------------------------------ helpers

    async def _retrying(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run a transaction, again if a concurrent one won a unique constraint."""
        for attempt in range(_ATTEMPTS):
            try:
                async with self._sessions() as session, session.begin():
                    result = await work(session)
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
                continue
            self._after_commit()
            return result
        raise AssertionError("unreachable")

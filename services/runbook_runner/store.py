"""Persistence of runs, within one session's transaction.

Every state change goes through the transition table of :mod:`services.runbook_runner.runs` and
is written with the event that reports it (outbox), in the caller's transaction. Rows that may
change are read ``FOR UPDATE`` (on SQLite every transaction already holds the write lock).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.incidents import Tier
from contracts.runbooks import RunbookFinished, RunbookStarted, RunState
from services.runbook_runner.admission import Ask
from services.runbook_runner.runs import ACTIVE_STATES, transition
from services.runbook_runner.settings import SERVICE
from services.runbook_runner.tables import ResolutionRow, RunRow
from services.runtime.outbox import stage

__all__ = ["RunStore", "ask_of", "finished_event", "started_event"]

_CLAIM_LOCK = 0x72_75_6E_62_6F_6F_6B  # "runbook": held while a run is claimed (PostgreSQL)


class RunStore:
    """Reads and writes runs in one session (one transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, run_id: str) -> RunRow | None:
        """One run, locked for update, or ``None``."""
        query = select(RunRow).where(RunRow.run_id == run_id).with_for_update()
        return (await self.session.exec(query)).first()

    def add(self, row: RunRow) -> None:
        """Insert a new run (a second row with the same run id cannot commit)."""
        self.session.add(row)

    async def serialise_claims(self) -> None:
        """Make concurrent claims (several replicas on PostgreSQL) take turns, so concurrency
        limits counted inside a claim hold; SQLite transactions already do."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.exec(select(func.pg_advisory_xact_lock(_CLAIM_LOCK)))

    async def next_requested(self) -> RunRow | None:
        """The oldest run waiting to start, locked for update."""
        query = (
            select(RunRow)
            .where(RunRow.state == RunState.REQUESTED.value)
            .order_by(col(RunRow.requested_at), col(RunRow.run_id))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.exec(query)).first()

    async def active_count(self, runbook: str, model: str) -> int:
        """How many runs of a runbook for a model are running or verifying, on any runner."""
        query = select(func.count()).where(
            RunRow.runbook == runbook,
            RunRow.model == model,
            col(RunRow.state).in_([state.value for state in ACTIVE_STATES]),
        )
        return int((await self.session.exec(query)).one())

    async def active_of(self, owner: str) -> Sequence[RunRow]:
        """Runs an owner left running or verifying, locked for update."""
        query = (
            select(RunRow)
            .where(
                RunRow.owner == owner,
                col(RunRow.state).in_([state.value for state in ACTIVE_STATES]),
            )
            .order_by(col(RunRow.run_id))
            .with_for_update()
        )
        return (await self.session.exec(query)).all()

    async def lapsed(self, now: datetime) -> Sequence[RunRow]:
        """Runs in progress whose runner's lease ran out before ``now`` (or that never had one,
        left by a runner older than leases), locked for update; rows another runner is judging
        are skipped."""
        query = (
            select(RunRow)
            .where(
                col(RunRow.state).in_([state.value for state in ACTIVE_STATES]),
                or_(col(RunRow.lease_until).is_(None), col(RunRow.lease_until) < now),
            )
            .order_by(col(RunRow.run_id))
            .with_for_update(skip_locked=True)
        )
        return (await self.session.exec(query)).all()

    async def renew(self, owner: str, run_ids: Collection[str], until: datetime) -> set[str]:
        """Extend an owner's lease on the runs it executes; return the ids still its own and in
        progress (a run missing from the answer was judged abandoned by another runner)."""
        if not run_ids:
            return set()
        statement = (
            update(RunRow)
            .where(
                col(RunRow.run_id).in_(list(run_ids)),
                col(RunRow.owner) == owner,
                col(RunRow.state).in_([state.value for state in ACTIVE_STATES]),
            )
            .values(lease_until=until)
            .returning(col(RunRow.run_id))
        )
        return {run_id for (run_id,) in (await self.session.exec(statement)).all()}

    async def resolved_at(self, incident_id: str) -> datetime | None:
        """When an incident was last resolved, as far as this runner heard; ``None`` if never."""
        row = await self.session.get(ResolutionRow, incident_id)
        return row.resolved_at if row is not None else None

    async def record_resolution(self, incident_id: str, resolved_at: datetime) -> None:
        """Remember an incident's resolution; an older one (a replay) changes nothing."""
        query = (
            select(ResolutionRow).where(ResolutionRow.incident_id == incident_id).with_for_update()
        )
        row = (await self.session.exec(query)).first()
        if row is None:
            self.session.add(ResolutionRow(incident_id=incident_id, resolved_at=resolved_at))
        elif resolved_at > row.resolved_at:
            row.resolved_at = resolved_at
            self.session.add(row)

    def move(self, row: RunRow, target: RunState, **changes: Any) -> None:
        """Move a run to ``target`` (refused if the state machine forbids it), with changes,
        staging the event that reports the move: ``runbook.started`` on entering ``running``,
        ``runbook.finished`` on entering a final state."""
        row.state = transition(RunState(row.state), target).value
        for name, value in changes.items():
            setattr(row, name, value)
        self.session.add(row)
        if target is RunState.RUNNING:
            stage(self.session, [started_event(row)])
        elif target is not RunState.VERIFYING:
            stage(self.session, [finished_event(row)])


def ask_of(row: RunRow) -> Ask:
    """What a stored run asked for, to admit it again when it starts."""
    return Ask(
        run_id=row.run_id,
        incident_id=row.incident_id,
        model=row.model,
        model_version=row.model_version,
        runbook=row.runbook,
        parameters=dict(row.supplied),
        tier=Tier(row.tier),
        requested_by=row.requested_by,
        approved_by=row.approved_by,
    )


def started_event(row: RunRow) -> RunbookStarted:
    """The ``runbook.started`` event of a run that entered ``running``."""
    assert row.script_sha256 is not None
    return RunbookStarted(
        producer=SERVICE.value,
        correlation_id=row.correlation_id,
        run_id=row.run_id,
        incident_id=row.incident_id,
        model=row.model,
        runbook=row.runbook,
        script_sha256=row.script_sha256,
        argv=list(row.argv),
        verify_argv=list(row.verify_argv),
        verify_script_sha256=row.verify_script_sha256,
    )


def finished_event(row: RunRow) -> RunbookFinished:
    """The ``runbook.finished`` event of a run in a final state."""
    return RunbookFinished(
        producer=SERVICE.value,
        correlation_id=row.correlation_id,
        run_id=row.run_id,
        incident_id=row.incident_id,
        model=row.model,
        runbook=row.runbook,
        state=RunState(row.state),
        script_sha256=row.script_sha256,
        parameters=dict(row.parameters),
        exit_code=row.exit_code,
        verify_exit_code=row.verify_exit_code,
        stdout=row.stdout,
        stderr=row.stderr,
        verify_output=row.verify_output,
        truncated=row.truncated,
        started_at=row.started_at,
        detail=row.detail,
    )

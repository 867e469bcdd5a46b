"""Persistence of held runbook runs: rows to :class:`HeldRun` and back, in the caller's
transaction (held runs are loaded ``FOR UPDATE`` when they may change)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.incident_log.approvals import ApprovalState, HeldRun
from services.incident_log.tables import RunbookApprovalRow

__all__ = ["ApprovalStore"]


class ApprovalStore:
    """Held runbook runs in one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, held: HeldRun) -> None:
        """Store a new held run."""
        self.session.add(_row_of(held))

    async def get(self, run_id: str, *, for_update: bool = True) -> HeldRun | None:
        """A held run by its run id."""
        query = select(RunbookApprovalRow).where(RunbookApprovalRow.run_id == run_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.exec(query)).first()
        return _held_of(row) if row else None

    async def of_incident(self, incident_id: str) -> Sequence[HeldRun]:
        """An incident's held runs, oldest first."""
        rows = await self.session.exec(
            select(RunbookApprovalRow)
            .where(RunbookApprovalRow.incident_id == incident_id)
            .order_by(col(RunbookApprovalRow.requested_at))
        )
        return [_held_of(row) for row in rows]

    async def pending(self, limit: int = 200) -> Sequence[HeldRun]:
        """Runs waiting for approval, oldest first."""
        rows = await self.session.exec(
            select(RunbookApprovalRow)
            .where(RunbookApprovalRow.state == ApprovalState.PENDING.value)
            .order_by(col(RunbookApprovalRow.requested_at))
            .limit(limit)
        )
        return [_held_of(row) for row in rows]

    async def due(self, now: datetime, limit: int) -> Sequence[HeldRun]:
        """Pending runs whose approval window closed, locked (others' skipped on PostgreSQL)."""
        rows = await self.session.exec(
            select(RunbookApprovalRow)
            .where(
                RunbookApprovalRow.state == ApprovalState.PENDING.value,
                col(RunbookApprovalRow.expires_at) <= now,
            )
            .order_by(col(RunbookApprovalRow.expires_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_held_of(row) for row in rows]

    async def save(self, held: HeldRun) -> None:
        """Write a held run's decision."""
        row = await self.session.get(RunbookApprovalRow, held.run_id)
        assert row is not None
        row.state = held.state.value
        row.decided_by = held.decided_by
        row.decided_at = held.decided_at
        row.decision_reason = held.decision_reason
        self.session.add(row)


def _row_of(held: HeldRun) -> RunbookApprovalRow:
    return RunbookApprovalRow(
        run_id=held.run_id,
        incident_id=held.incident_id,
        runbook=held.runbook,
        parameters=dict(held.parameters),
        reason=held.reason,
        requested_by=held.requested_by,
        requested_at=held.requested_at,
        expires_at=held.expires_at,
        state=held.state.value,
        decided_by=held.decided_by,
        decided_at=held.decided_at,
        decision_reason=held.decision_reason,
    )


def _held_of(row: RunbookApprovalRow) -> HeldRun:
    return HeldRun(
        run_id=row.run_id,
        incident_id=row.incident_id,
        runbook=row.runbook,
        parameters=dict(row.parameters),
        reason=row.reason,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        expires_at=row.expires_at,
        state=ApprovalState(row.state),
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        decision_reason=row.decision_reason,
    )

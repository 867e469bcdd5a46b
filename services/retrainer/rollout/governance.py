"""Governed rollout: the gate's evaluation records, promotion requests and their decisions,
expiry, and the canary of an approved candidate until it is promoted or rolled back.

Each use case is one transaction holding the state change, the registry's deployment change (the
registry store joins the transaction) and the events on ``models`` in the outbox, so a crash
leaves either all of it or none. Every event of a candidate an incident caused carries that
incident's id as ``incident_id`` and ``correlation_id``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.monitoring import VariantsCompared
from contracts.registry import (
    CandidateEvaluated,
    DeploymentMode,
    ModelApproved,
    ModelRejected,
    PromotionExpired,
    PromotionRequested,
)
from services.retrainer.registry.store import RegistryStore
from services.retrainer.rollout.canary import CanaryAction, Rollout, judge_canary
from services.retrainer.rollout.promotions import (
    Promotion,
    PromotionRefused,
    PromotionState,
    expire,
)
from services.retrainer.rollout.promotions import decide as decide_promotion
from services.retrainer.rollout.tables import EvaluationRow, PromotionRow
from services.runtime import Sessions, first_time, stage

__all__ = ["SYSTEM_ACTOR", "Evaluation", "Governance", "PromotionView", "UnknownPromotion"]

SYSTEM_ACTOR = "system:retrainer"


class UnknownPromotion(LookupError):
    """No promotion request has that id."""


@dataclass(frozen=True)
class Evaluation:
    """An evaluation record (immutable)."""

    evaluation_id: str
    model: str
    candidate_version: int
    champion_version: int | None
    dataset_digest: str
    passed: bool
    figures: dict[str, Any]
    failures: list[str]
    summary: str
    incident_id: str | None
    run_id: str
    created_at: datetime


@dataclass(frozen=True)
class PromotionView:
    """A promotion request with its decision and the candidate's rollout."""

    promotion: Promotion
    rollout: Rollout | None
    rollout_reason: str | None
    rollout_at: datetime | None
    champion_version: int | None


def _evaluation(row: EvaluationRow) -> Evaluation:
    return Evaluation(
        evaluation_id=row.evaluation_id,
        model=row.model,
        candidate_version=row.candidate_version,
        champion_version=row.champion_version,
        dataset_digest=row.dataset_digest,
        passed=row.passed,
        figures=json.loads(row.figures),
        failures=json.loads(row.failures),
        summary=row.summary,
        incident_id=row.incident_id,
        run_id=row.run_id,
        created_at=row.created_at,
    )


def _promotion(row: PromotionRow) -> Promotion:
    return Promotion(
        request_id=row.request_id,
        model=row.model,
        version=row.version,
        evaluation_id=row.evaluation_id,
        requested_by=row.requested_by,
        requesters=frozenset(json.loads(row.requesters)),
        created_at=row.created_at,
        expires_at=row.expires_at,
        summary=row.summary,
        state=PromotionState(row.state),
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        comment=row.comment,
        incident_id=row.incident_id,
    )


def _view(row: PromotionRow) -> PromotionView:
    return PromotionView(
        promotion=_promotion(row),
        rollout=Rollout(row.rollout) if row.rollout else None,
        rollout_reason=row.rollout_reason,
        rollout_at=row.rollout_at,
        champion_version=row.champion_version,
    )


def _apply(row: PromotionRow, promotion: Promotion) -> None:
    row.state = promotion.state.value
    row.decided_by = promotion.decided_by
    row.decided_at = promotion.decided_at
    row.comment = promotion.comment


def _stable_id(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
    return f"{prefix}-{digest[:12]}"


class Governance:
    """Evaluations, promotion requests, decisions, expiry and canaries."""

    def __init__(
        self,
        sessions: Sessions,
        registry: RegistryStore,
        *,
        producer: str,
        clock: Callable[[], datetime],
        promotion_ttl: timedelta,
        canary_share: float,
        canary_min_labels: int,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._producer = producer
        self._clock = clock
        self._ttl = promotion_ttl
        self._share = canary_share
        self._min_labels = canary_min_labels
        self._after_commit = after_commit

    # ------------------------------------------------------------------ the gate's record

    async def record_evaluation(
        self,
        session: AsyncSession,
        *,
        model: str,
        candidate_version: int,
        champion_version: int | None,
        dataset_digest: str,
        verdict: dict[str, Any],
        evaluate_key: str,
        incident_id: str | None,
        run_id: str,
    ) -> Evaluation:
        """Write the verdict once (a cached rerun finds the same record) and stage it."""
        evaluation_id = _stable_id("ev", model, candidate_version, champion_version, evaluate_key)
        existing = await session.get(EvaluationRow, evaluation_id)
        if existing is not None:
            return _evaluation(existing)
        row = EvaluationRow(
            evaluation_id=evaluation_id,
            model=model,
            candidate_version=candidate_version,
            champion_version=champion_version,
            dataset_digest=dataset_digest,
            passed=bool(verdict["passed"]),
            figures=json.dumps(verdict["figures"]),
            failures=json.dumps(verdict["failures"]),
            summary=str(verdict["summary"]),
            incident_id=incident_id,
            run_id=run_id,
            created_at=self._clock(),
        )
        session.add(row)
        stage(
            session,
            [
                CandidateEvaluated(
                    producer=self._producer,
                    model=model,
                    evaluation_id=evaluation_id,
                    candidate_version=candidate_version,
                    champion_version=champion_version,
                    dataset_digest=dataset_digest,
                    passed=row.passed,
                    figures=verdict["figures"],
                    failures=verdict["failures"],
                    incident_id=incident_id,
                    correlation_id=incident_id,
                    occurred_at=row.created_at,
                )
            ],
        )
        return _evaluation(row)

    async def evaluation(self, evaluation_id: str) -> Evaluation | None:
        """Return an evaluation record."""
        async with self._sessions() as session:
            row = await session.get(EvaluationRow, evaluation_id)
        return _evaluation(row) if row is not None else None

    # ------------------------------------------------------------------ promotion requests

    async def request_promotion(
        self,
        session: AsyncSession,
        evaluation: Evaluation,
        *,
        requested_by: str,
        requesters: list[str],
    ) -> Promotion | None:
        """Open a promotion request for a passed candidate (once per evaluation)."""
        if not evaluation.passed:
            return None
        existing = (
            await session.exec(
                select(PromotionRow).where(PromotionRow.evaluation_id == evaluation.evaluation_id)
            )
        ).first()
        if existing is not None:
            return _promotion(existing)
        now = self._clock()
        row = PromotionRow(
            request_id=_stable_id("pr", evaluation.evaluation_id),
            model=evaluation.model,
            version=evaluation.candidate_version,
            evaluation_id=evaluation.evaluation_id,
            requested_by=requested_by,
            requesters=json.dumps(sorted(set(requesters))),
            summary=evaluation.summary,
            created_at=now,
            expires_at=now + self._ttl,
            state=PromotionState.PENDING.value,
            incident_id=evaluation.incident_id,
        )
        session.add(row)
        stage(
            session,
            [
                PromotionRequested(
                    producer=self._producer,
                    model=row.model,
                    request_id=row.request_id,
                    version=row.version,
                    evaluation_id=row.evaluation_id,
                    requested_by=requested_by,
                    expires_at=row.expires_at,
                    summary=row.summary,
                    incident_id=row.incident_id,
                    correlation_id=row.incident_id,
                    occurred_at=now,
                )
            ],
        )
        return _promotion(row)

    async def promotions(
        self,
        *,
        model: str | None = None,
        state: PromotionState | None = None,
        incident_id: str | None = None,
    ) -> list[PromotionView]:
        """Return promotion requests, newest first."""
        query = select(PromotionRow).order_by(col(PromotionRow.created_at).desc())
        if model is not None:
            query = query.where(PromotionRow.model == model)
        if state is not None:
            query = query.where(PromotionRow.state == state.value)
        if incident_id is not None:
            query = query.where(PromotionRow.incident_id == incident_id)
        async with self._sessions() as session:
            return [_view(row) for row in (await session.exec(query)).all()]

    async def promotion(self, request_id: str) -> PromotionView:
        """Return one promotion request."""
        async with self._sessions() as session:
            row = await session.get(PromotionRow, request_id)
        if row is None:
            raise UnknownPromotion(f"no promotion request {request_id!r}")
        return _view(row)

    async def decide(
        self, request_id: str, *, approve: bool, person: str, role: str, comment: str
    ) -> PromotionView:
        """Approve (and start the canary) or reject a request, as ``person`` with ``role``.

        Raises :class:`PromotionRefused` (403, 409) when the rules forbid it.
        """
        async with self._sessions() as session, session.begin():
            row = (
                await session.exec(
                    select(PromotionRow)
                    .where(PromotionRow.request_id == request_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise UnknownPromotion(f"no promotion request {request_id!r}")
            now = self._clock()
            decided = decide_promotion(
                _promotion(row), approve=approve, person=person, role=role, comment=comment, now=now
            )
            common = {
                "producer": self._producer,
                "model": row.model,
                "version": row.version,
                "request_id": row.request_id,
                "approver": person,
                "comment": comment,
                "incident_id": row.incident_id,
                "correlation_id": row.incident_id,
                "occurred_at": now,
            }
            if approve:
                stage(session, [ModelApproved(**common)])
                await self._start_rollout(session, row, person, now)
            else:
                stage(session, [ModelRejected(**common)])
            _apply(row, decided)
            session.add(row)
        self._after_commit()
        return _view(row)

    async def _start_rollout(
        self, session: AsyncSession, row: PromotionRow, approver: str, now: datetime
    ) -> None:
        deployment = await self._registry.deployment(row.model, session=session)
        champion = deployment.champion if deployment is not None else None
        if champion is not None and champion.version == row.version:
            raise PromotionRefused(409, f"v{row.version} is already the champion")
        challenger = deployment.challenger if deployment is not None else None
        if challenger is not None:
            raise PromotionRefused(
                409,
                f"v{challenger.version} is the challenger of {row.model} now; "
                "it must be promoted or rolled back first",
            )
        if champion is None:
            await self._registry.deploy(
                row.model,
                champion=row.version,
                challenger=None,
                share=0.0,
                mode=DeploymentMode.CANARY,
                actor=approver,
                reason=f"no champion to canary against: v{row.version} serves all traffic, "
                f"approved by {approver} ({row.request_id})",
                at=now,
                incident_id=row.incident_id,
                session=session,
            )
            self._set_rollout(row, Rollout.PROMOTED, "approved with no champion to compare", now)
            return
        await self._registry.deploy(
            row.model,
            champion=champion.version,
            challenger=row.version,
            share=self._share,
            mode=DeploymentMode.CANARY,
            actor=approver,
            reason=f"canary of v{row.version} at {self._share:.0%}, approved by {approver} "
            f"({row.request_id})",
            at=now,
            incident_id=row.incident_id,
            session=session,
        )
        row.champion_version = champion.version
        row.canary_model = row.model
        self._set_rollout(row, Rollout.CANARY, f"serving {self._share:.0%} of traffic", now)

    @staticmethod
    def _set_rollout(row: PromotionRow, rollout: Rollout, reason: str, now: datetime) -> None:
        row.rollout = rollout.value
        row.rollout_reason = reason
        row.rollout_at = now
        if rollout is not Rollout.CANARY:
            row.canary_model = None

    async def expire_due(self) -> int:
        """Expire pending requests past their time; return how many."""
        now = self._clock()
        count = 0
        async with self._sessions() as session, session.begin():
            rows = (
                await session.exec(
                    select(PromotionRow)
                    .where(
                        PromotionRow.state == PromotionState.PENDING.value,
                        col(PromotionRow.expires_at) <= now,
                    )
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                expired = expire(_promotion(row), now)
                if expired is None:
                    continue
                _apply(row, expired)
                session.add(row)
                stage(
                    session,
                    [
                        PromotionExpired(
                            producer=self._producer,
                            model=row.model,
                            request_id=row.request_id,
                            version=row.version,
                            incident_id=row.incident_id,
                            correlation_id=row.incident_id,
                            occurred_at=now,
                        )
                    ],
                )
                count += 1
        if count:
            self._after_commit()
        return count

    # ------------------------------------------------------------------ canary

    async def on_comparison(self, comparison: VariantsCompared) -> CanaryAction:
        """Act on the monitor's live comparison: roll back a worse canary, promote a
        non-inferior one with enough labels, else wait. Idempotent by event id."""
        async with self._sessions() as session, session.begin():
            if not await first_time(session, comparison.event_id):
                return CanaryAction.IGNORE
            row = (
                await session.exec(
                    select(PromotionRow)
                    .where(PromotionRow.canary_model == comparison.model)
                    .with_for_update()
                )
            ).first()
            if row is None:
                return CanaryAction.IGNORE
            now = self._clock()
            if await self._withdrawn(session, row, now):
                session.add(row)
                return CanaryAction.IGNORE
            assert row.champion_version is not None
            decision = judge_canary(
                comparison,
                candidate_version=row.version,
                champion_version=row.champion_version,
                rollout=Rollout(row.rollout) if row.rollout else None,
                min_labels=self._min_labels,
            )
            if decision.action is CanaryAction.ROLL_BACK:
                await self._registry.rollback(
                    row.model,
                    actor=SYSTEM_ACTOR,
                    reason=f"v{row.version} rolled back: {decision.reason}",
                    at=now,
                    incident_id=row.incident_id,
                    session=session,
                )
                self._set_rollout(row, Rollout.ROLLED_BACK, decision.reason, now)
            elif decision.action is CanaryAction.PROMOTE:
                await self._registry.promote(
                    row.model,
                    actor=SYSTEM_ACTOR,
                    reason=f"v{row.version} promoted (approved by {row.decided_by}): "
                    f"{decision.reason}",
                    at=now,
                    incident_id=row.incident_id,
                    session=session,
                )
                self._set_rollout(row, Rollout.PROMOTED, decision.reason, now)
            elif decision.action is CanaryAction.WAIT:
                row.rollout_reason = decision.reason
            session.add(row)
        if decision.action in (CanaryAction.ROLL_BACK, CanaryAction.PROMOTE):
            self._after_commit()
        return decision.action

    async def _withdrawn(self, session: AsyncSession, row: PromotionRow, now: datetime) -> bool:
        """Mark a canary withdrawn if someone else took its challenger out of the deployment."""
        deployment = await self._registry.deployment(row.model, session=session)
        challenger = deployment.challenger if deployment is not None else None
        if challenger is not None and challenger.version == row.version:
            return False
        self._set_rollout(
            row, Rollout.WITHDRAWN, "the challenger left the deployment by another change", now
        )
        return True

    async def reconcile_canaries(self) -> int:
        """Mark canaries withdrawn whose challenger a person (or runbook) took out."""
        changed = 0
        async with self._sessions() as session, session.begin():
            rows = (
                await session.exec(
                    select(PromotionRow)
                    .where(col(PromotionRow.canary_model).is_not(None))
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                if await self._withdrawn(session, row, self._clock()):
                    session.add(row)
                    changed += 1
        return changed

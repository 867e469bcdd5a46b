"""The registry's persistence: versions, aliases and deployment revisions in SQL, with the outbox.

Every change is one transaction that also stages its event on ``models``
(:func:`services.runtime.stage`), so a change is published exactly when it commits. The rules
come from :mod:`services.retrainer.registry.deployments`; this module loads what they need and
saves what they decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.registry import (
    Deployment,
    DeploymentMode,
    ModelRegistered,
    ModelVersionRecord,
    ServedVersion,
)
from services.retrainer.registry import deployments
from services.retrainer.registry.deployments import (
    Action,
    Alias,
    DeploymentRevision,
    RegistryRuleError,
)
from services.retrainer.registry.tables import (
    AliasRow,
    DeploymentRevisionRow,
    ModelRow,
    ModelVersionRow,
)
from services.runtime import Sessions, stage

__all__ = ["ConcurrentChangeError", "ModelSummary", "NotFoundError", "RegistryStore"]


class NotFoundError(LookupError):
    """The model or version does not exist."""


class ConcurrentChangeError(RuntimeError):
    """Another change of the same model committed first; retry."""


@dataclass(frozen=True)
class ModelSummary:
    """A model with its latest version and current deployment."""

    name: str
    versions: int
    latest_version: int | None
    deployment: Deployment | None


@dataclass(frozen=True)
class _Decision:
    deployment: Deployment
    action: Action


_Decide = Callable[[list[DeploymentRevision], dict[int, ServedVersion]], _Decision]


def _served(record: ModelVersionRecord) -> ServedVersion:
    return ServedVersion(
        version=record.version,
        artifact_uri=record.artifact_uri,
        artifact_sha256=record.artifact_sha256,
    )


def _revision(row: DeploymentRevisionRow) -> DeploymentRevision:
    return DeploymentRevision(
        model=row.model,
        deployment=Deployment.model_validate_json(row.deployment),
        action=Action(row.action),
        actor=row.actor,
        reason=row.reason,
        at=row.at,
        incident_id=row.incident_id,
    )


class RegistryStore:
    """Reads and changes the registry; ``after_commit`` runs after each committed change (the
    outbox relay's ``wake``)."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        producer: str,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._producer = producer
        self._after_commit = after_commit

    # Reading

    async def models(self) -> list[ModelSummary]:
        """Return every model with its version count and deployment, by name."""
        async with self._sessions() as session:
            names = (await session.exec(select(ModelRow.name).order_by(ModelRow.name))).all()
            latest = dict(
                (
                    await session.exec(
                        select(ModelVersionRow.model, func.max(ModelVersionRow.version)).group_by(
                            col(ModelVersionRow.model)
                        )
                    )
                ).all()
            )
            serving = await self._deployments(session)
        return [
            ModelSummary(
                name=name,
                versions=latest.get(name, 0),  # versions are numbered 1, 2, … without gaps
                latest_version=latest.get(name),
                deployment=serving.get(name),
            )
            for name in names
        ]

    async def version(
        self, model: str, version: int, *, session: AsyncSession | None = None
    ) -> ModelVersionRecord:
        """Return a version's record (reading in ``session`` when given)."""
        if session is not None:
            row = await session.get(ModelVersionRow, (model, version))
        else:
            async with self._sessions() as own:
                row = await own.get(ModelVersionRow, (model, version))
        if row is None:
            raise NotFoundError(f"model {model!r} has no version {version}")
        return ModelVersionRecord.model_validate_json(row.record)

    async def versions(
        self, model: str, *, session: AsyncSession | None = None
    ) -> list[ModelVersionRecord]:
        """Return every version of a model, oldest first (reading in ``session`` when given)."""
        if session is not None:
            await self._require_model(session, model)
            return await self._versions(session, model)
        async with self._sessions() as own:
            await self._require_model(own, model)
            return await self._versions(own, model)

    async def deployment(
        self, model: str, *, session: AsyncSession | None = None
    ) -> Deployment | None:
        """Return what serves a model now (``None``: never deployed; reading in ``session`` when
        given)."""
        if session is not None:
            history = await self._history(session, model)
        else:
            history = await self.history(model)
        return history[-1].deployment if history else None

    async def deployments(self) -> dict[str, Deployment]:
        """Return the current deployment of every deployed model."""
        async with self._sessions() as session:
            return await self._deployments(session)

    async def history(self, model: str) -> list[DeploymentRevision]:
        """Return every revision of a model's deployment, oldest first."""
        async with self._sessions() as session:
            await self._require_model(session, model)
            return await self._history(session, model)

    async def aliases(self, model: str) -> dict[Alias, int]:
        """Return the version each alias names now."""
        async with self._sessions() as session:
            rows = (await session.exec(select(AliasRow).where(AliasRow.model == model))).all()
        return {Alias(row.alias): row.version for row in rows}

    async def knows_artifact(self, sha256: str) -> bool:
        """Whether a registered version has this artifact (only those are served)."""
        async with self._sessions() as session:
            query = select(ModelVersionRow.model).where(ModelVersionRow.artifact_sha256 == sha256)
            return (await session.exec(query.limit(1))).first() is not None

    # Changing

    async def register(
        self,
        model: str,
        make_record: Callable[[int], ModelVersionRecord],
        *,
        session: AsyncSession | None = None,
    ) -> ModelVersionRecord:
        """Register the next version of a model (created if new) with the record made for it.

        With ``session``, the registration joins the caller's transaction (the caller commits
        and wakes the outbox relay); otherwise it commits on its own.
        """
        if session is not None:
            return await self._register_in(session, model, make_record)
        try:
            async with self._sessions() as own, own.begin():
                record = await self._register_in(own, model, make_record)
        except IntegrityError as error:
            raise ConcurrentChangeError(f"{model}: another registration committed first") from error
        self._after_commit()
        return record

    async def _register_in(
        self,
        session: AsyncSession,
        model: str,
        make_record: Callable[[int], ModelVersionRecord],
    ) -> ModelVersionRecord:
        if await self._lock_model(session, model) is None:
            session.add(ModelRow(name=model))
            await session.flush()
        latest = (
            await session.exec(
                select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model == model)
            )
        ).one()
        record = make_record((latest or 0) + 1)
        session.add(
            ModelVersionRow(
                model=model,
                version=record.version,
                artifact_sha256=record.artifact_sha256,
                registered_at=record.registered_at,
                record=record.model_dump_json(),
            )
        )
        stage(
            session,
            [
                ModelRegistered(
                    producer=self._producer,
                    model=model,
                    record=record,
                    occurred_at=record.registered_at,
                    correlation_id=record.incident_id,
                )
            ],
        )
        return record

    async def deploy(
        self,
        model: str,
        *,
        champion: int,
        challenger: int | None,
        share: float,
        mode: DeploymentMode,
        actor: str,
        reason: str,
        at: datetime,
        incident_id: str | None = None,
        session: AsyncSession | None = None,
    ) -> DeploymentRevision:
        """Serve ``champion`` (and ``challenger`` at ``share`` in ``mode``)."""

        def decide(
            history: list[DeploymentRevision], versions: dict[int, ServedVersion]
        ) -> _Decision:
            chosen = [champion] + ([challenger] if challenger is not None else [])
            for number in chosen:
                if number not in versions:
                    raise NotFoundError(f"model {model!r} has no version {number}")
            deployment = deployments.deploy(
                history,
                champion=versions[champion],
                challenger=versions[challenger] if challenger is not None else None,
                share=share,
                mode=mode,
            )
            return _Decision(deployment, Action.DEPLOYED)

        return await self._change(model, decide, actor, reason, at, incident_id, session)

    async def set_traffic(
        self,
        model: str,
        *,
        share: float,
        mode: DeploymentMode | None,
        actor: str,
        reason: str,
        at: datetime,
        incident_id: str | None = None,
    ) -> DeploymentRevision:
        """Change the challenger's share of traffic (and the mode, if given)."""

        def decide(history: list[DeploymentRevision], _: dict[int, ServedVersion]) -> _Decision:
            deployment = deployments.set_traffic(history, share=share, mode=mode)
            return _Decision(deployment, Action.TRAFFIC_CHANGED)

        return await self._change(model, decide, actor, reason, at, incident_id)

    async def promote(
        self,
        model: str,
        *,
        actor: str,
        reason: str,
        at: datetime,
        incident_id: str | None = None,
        session: AsyncSession | None = None,
    ) -> DeploymentRevision:
        """Make the challenger the champion."""

        def decide(history: list[DeploymentRevision], _: dict[int, ServedVersion]) -> _Decision:
            return _Decision(deployments.promote(history), Action.PROMOTED)

        return await self._change(model, decide, actor, reason, at, incident_id, session)

    async def rollback(
        self,
        model: str,
        *,
        actor: str,
        reason: str,
        at: datetime,
        incident_id: str | None = None,
        session: AsyncSession | None = None,
        expected_revision: int | None = None,
    ) -> DeploymentRevision:
        """Withdraw the challenger, or else put the previous champion back, in one step; only
        if ``expected_revision`` (when given) is still in force."""

        def decide(
            history: list[DeploymentRevision], versions: dict[int, ServedVersion]
        ) -> _Decision:
            deployment = deployments.rollback(
                history, versions, expected_revision=expected_revision
            )
            return _Decision(deployment, Action.ROLLED_BACK)

        return await self._change(model, decide, actor, reason, at, incident_id, session)

    async def _change(
        self,
        model: str,
        decide: _Decide,
        actor: str,
        reason: str,
        at: datetime,
        incident_id: str | None,
        session: AsyncSession | None = None,
    ) -> DeploymentRevision:
        if session is not None:
            return await self._change_in(session, model, decide, actor, reason, at, incident_id)
        try:
            async with self._sessions() as own, own.begin():
                entry = await self._change_in(own, model, decide, actor, reason, at, incident_id)
        except IntegrityError as error:
            raise ConcurrentChangeError(
                f"{model}: another deployment change committed first; retry"
            ) from error
        self._after_commit()
        return entry

    async def _change_in(
        self,
        session: AsyncSession,
        model: str,
        decide: _Decide,
        actor: str,
        reason: str,
        at: datetime,
        incident_id: str | None,
    ) -> DeploymentRevision:
        await self._require_model(session, model, lock=True)
        history = await self._history(session, model)
        versions = {r.version: _served(r) for r in await self._versions(session, model)}
        decision = decide(history, versions)
        if history and at < history[-1].at:
            raise RegistryRuleError("a change cannot be dated before the previous one")
        entry = DeploymentRevision(
            model=model,
            deployment=decision.deployment,
            action=decision.action,
            actor=actor,
            reason=reason,
            at=at,
            incident_id=incident_id,
        )
        session.add(
            DeploymentRevisionRow(
                model=model,
                revision=entry.revision,
                action=entry.action.value,
                actor=actor,
                reason=reason,
                incident_id=incident_id,
                at=at,
                deployment=entry.deployment.model_dump_json(),
            )
        )
        await self._replace_aliases(session, model, entry.deployment)
        previous = history[-1].deployment if history else None
        stage(session, [deployments.event_for(entry, previous, producer=self._producer)])
        return entry

    # Helpers

    async def _lock_model(self, session: AsyncSession, model: str) -> ModelRow | None:
        # FOR UPDATE serialises changes of one model on PostgreSQL; SQLite's BEGIN IMMEDIATE
        # already serialises every writer.
        query = select(ModelRow).where(ModelRow.name == model).with_for_update()
        return (await session.exec(query)).first()

    async def _require_model(
        self, session: AsyncSession, model: str, *, lock: bool = False
    ) -> None:
        if lock:
            found = await self._lock_model(session, model)
        else:
            found = await session.get(ModelRow, model)
        if found is None:
            raise NotFoundError(f"no model named {model!r}")

    async def _versions(self, session: AsyncSession, model: str) -> list[ModelVersionRecord]:
        query = (
            select(ModelVersionRow)
            .where(ModelVersionRow.model == model)
            .order_by(col(ModelVersionRow.version))
        )
        rows = (await session.exec(query)).all()
        return [ModelVersionRecord.model_validate_json(row.record) for row in rows]

    async def _history(self, session: AsyncSession, model: str) -> list[DeploymentRevision]:
        query = (
            select(DeploymentRevisionRow)
            .where(DeploymentRevisionRow.model == model)
            .order_by(col(DeploymentRevisionRow.revision))
        )
        return [_revision(row) for row in (await session.exec(query)).all()]

    async def _deployments(self, session: AsyncSession) -> dict[str, Deployment]:
        latest = (
            select(
                DeploymentRevisionRow.model,
                func.max(DeploymentRevisionRow.revision).label("revision"),
            )
            .group_by(col(DeploymentRevisionRow.model))
            .subquery()
        )
        query = select(DeploymentRevisionRow).join(
            latest,
            (col(DeploymentRevisionRow.model) == latest.c.model)
            & (col(DeploymentRevisionRow.revision) == latest.c.revision),
        )
        rows = (await session.exec(query)).all()
        return {
            row.model: Deployment.model_validate_json(row.deployment)
            for row in sorted(rows, key=lambda r: r.model)
        }

    async def _replace_aliases(
        self, session: AsyncSession, model: str, deployment: Deployment
    ) -> None:
        await session.exec(delete(AliasRow).where(col(AliasRow.model) == model))
        await session.flush()
        for alias, served in (
            (Alias.CHAMPION, deployment.champion),
            (Alias.CHALLENGER, deployment.challenger),
        ):
            if served is not None:
                session.add(AliasRow(model=model, alias=alias.value, version=served.version))
        await session.flush()

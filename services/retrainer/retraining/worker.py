"""The retraining worker: takes due runs and carries each one through to a candidate.

Asks are only recorded by the consumer and the API (they return at once); this background task
does the work, one run at a time per process, with the CPU-heavy steps in a worker thread so the
event loop keeps consuming and serving. For a run it

1. takes the training snapshot: the seed data (the rows of the base version's training set that
   a person registered; for a snapshot the retrainer made, its rows before ``live_from``)
   followed by the labelled live examples, stored as a dataset version by content digest, and
   compares it with the previous snapshot (``retrain.started``);
2. runs prepare → split → train → evaluate from the step cache (:mod:`.pipeline`);
3. in one transaction: registers the candidate (or finds it registered by an earlier run with
   the same inputs: the register step's cache is the registry itself), writes the gate's
   evaluation record, opens a promotion request if it passed, and ends the run
   (``model.registered``, ``candidate.evaluated``, ``promotion.requested``, ``retrain.finished``).

The base version is the deployed champion, or the latest version when none is deployed; it gives
the spec, the training recipe (with the ask's parameter changes on top) and the seed data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import sklearn
from sqlalchemy import Engine
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.registry import DatasetChanges, DatasetRef, ModelVersionRecord, ServedVersion
from services.retrainer.registry.artifacts import ArtifactStore, check_artifact
from services.retrainer.registry.datasets import DatasetStore, digest_of
from services.retrainer.registry.store import NotFoundError, RegistryStore
from services.retrainer.retraining.dataset_changes import describe_changes
from services.retrainer.retraining.gate import GatePolicy, with_measured_baselines
from services.retrainer.retraining.live_examples import LiveExamples
from services.retrainer.retraining.pipeline import (
    Champion,
    PipelineInputs,
    PipelineResult,
    Step,
    run_steps,
    step_key,
)
from services.retrainer.retraining.recipes import Recipe, parse_recipe
from services.retrainer.retraining.runs import RetrainRuns, Run, RunEnded
from services.retrainer.retraining.step_store import DatabaseStepStore
from services.retrainer.retraining.tables import ProducedDatasetRow
from services.retrainer.retraining.training_data import LabelledRows, parse_csv, to_csv, with_live
from services.retrainer.rollout.governance import SYSTEM_ACTOR, Governance
from services.runtime import DEFAULT_TRUSTED_TYPES, Sessions
from services.runtime.waiting import wait_at_most

__all__ = ["RetrainWorker", "code_version"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_PIPELINE_MODULES = (
    "retrainer/retraining/recipes.py",
    "retrainer/retraining/training.py",
    "retrainer/retraining/training_data.py",
    "retrainer/retraining/gate.py",
    "retrainer/retraining/pipeline.py",
    "runtime/model_inputs.py",  # what a named-column model is fitted and scored on
)


def code_version() -> str:
    """Return the training code's version: Vigil's, plus a digest of the modules that decide
    what a step computes (a change to them invalidates the cache even within one release)."""
    digest = hashlib.sha256()
    services = Path(__file__).parents[2]
    for name in _PIPELINE_MODULES:
        digest.update((services / name).read_bytes())
    return f"vigil {version('vigil')}+{digest.hexdigest()[:12]}"


class RetrainWorker:
    """Runs due retrains, one at a time."""

    def __init__(
        self,
        *,
        sessions: Sessions,
        runs: RetrainRuns,
        governance: Governance,
        registry: RegistryStore,
        live: LiveExamples,
        content: Engine,
        gate: GatePolicy,
        code: str,
        clock: Callable[[], datetime],
        poll_seconds: float,
        lease_seconds: float,
        after_commit: Callable[[], None] = lambda: None,
        trusted_types: Sequence[str] = DEFAULT_TRUSTED_TYPES,
    ) -> None:
        self._sessions = sessions
        self._runs = runs
        self._governance = governance
        self._registry = registry
        self._live = live
        self._datasets = DatasetStore(content)
        self._artifacts = ArtifactStore(content)
        self._steps = DatabaseStepStore(content, trusted_types=trusted_types)
        self._trusted_types = tuple(trusted_types)
        self._gate = gate
        self._code = code
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._lease_seconds = lease_seconds
        self._after_commit = after_commit
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due runs now rather than at the next poll."""
        self._wake.set()

    async def run_forever(self) -> None:
        """Run due retrains until cancelled."""
        while True:
            self._wake.clear()
            while await self.run_next():
                pass
            await wait_at_most(self._wake, self._poll_seconds)

    async def run_next(self) -> bool:
        """Claim and perform one due run; return whether there was one."""
        run = await self._runs.claim()
        if run is None:
            return False
        log.info("retraining %s (run %s, causes %s)", run.model, run.run_id, run.causes)
        try:
            async with self._holding(run):
                try:
                    await self._perform(run)
                except RunEnded:
                    raise
                except Exception as error:  # a run that cannot finish must end, visibly
                    log.exception("run %s failed", run.run_id)
                    await self._runs.fail(run, f"{type(error).__name__}: {error}")
        except RunEnded as ended:
            log.warning("%s; this worker's outcome is dropped", ended)
        return True

    # ------------------------------------------------------------------ one run

    async def _perform(self, run: Run) -> None:
        base, champion = await self._base(run.model)
        spec = base.spec
        recipe = parse_recipe(base.parameters, run.parameters, task=spec.task)
        if run.dataset is not None and run.live_from is not None and run.dataset_changes:
            snapshot, live_from, changes = run.dataset, run.live_from, run.dataset_changes
        else:
            snapshot, live_from, changes = await self._snapshot(run, base)
            await self._runs.started(run, snapshot, live_from, changes)
        inputs = PipelineInputs(
            snapshot_sha256=snapshot.digest.removeprefix("sha256:"),
            live_from=live_from,
            spec=spec,
            recipe=recipe,
            code_version=self._code,
            gate=self._gate,
            champion=(Champion(champion.version, champion.artifact_sha256) if champion else None),
            estimator_sha256=base.artifact_sha256,
        )
        result = await asyncio.to_thread(run_steps, inputs, self._steps)
        if champion is not None and result.artifact_sha256 == champion.artifact_sha256:
            await self._runs.fail(
                run,
                f"the retrained model is byte-identical to champion v{champion.version}: "
                "nothing new to propose",
                changes,
            )
            return
        artifact = await asyncio.to_thread(self._steps.artifact, result.artifact_sha256)
        await asyncio.to_thread(check_artifact, artifact, spec, trusted_types=self._trusted_types)
        await self._conclude(run, base, recipe, snapshot, result, champion, changes)

    async def _base(self, model: str) -> tuple[ModelVersionRecord, ServedVersion | None]:
        deployment = await self._registry.deployment(model)
        champion = deployment.champion if deployment is not None else None
        if champion is not None:
            return await self._registry.version(model, champion.version), champion
        versions = await self._registry.versions(model)
        if not versions:
            raise NotFoundError(f"model {model!r} has no registered version")
        return versions[-1], None

    async def _seed(self, base: ModelVersionRecord) -> tuple[LabelledRows, int]:
        """Return the seed rows and how many rows of the seed data do not fit the spec."""
        async with self._sessions() as session:
            produced = await session.get(ProducedDatasetRow, base.dataset.digest)
        content = await self._datasets.get(base.dataset.digest.removeprefix("sha256:"))
        if content is None:
            raise FileNotFoundError(f"training data {base.dataset.digest} of v{base.version}")
        if produced is None:
            return await asyncio.to_thread(parse_csv, content, base.spec)
        rows, dropped = await asyncio.to_thread(
            parse_csv, content, base.spec, live_from=produced.live_from
        )
        return rows.take(range(rows.live_from)), dropped

    async def _snapshot(
        self, run: Run, base: ModelVersionRecord
    ) -> tuple[DatasetRef, int, DatasetChanges]:
        spec = base.spec
        seed, seed_dropped = await self._seed(base)
        examples = await self._live.labelled(run.model)
        rows, left_out = await asyncio.to_thread(with_live, seed, examples, spec)
        sha256 = await self._datasets.put(await asyncio.to_thread(to_csv, rows, spec))
        snapshot = DatasetRef(
            name=run.model, version=f"snapshot-{sha256[:12]}", digest=digest_of(sha256)
        )
        previous = await self._runs.latest_snapshot(run.model, before=run.run_id)
        previous_ref = previous[0] if previous is not None else base.dataset
        previous_content = await self._datasets.get(previous_ref.digest.removeprefix("sha256:"))
        previous_rows = (
            (await asyncio.to_thread(parse_csv, previous_content, spec))[0]
            if previous_content is not None
            else None
        )
        changes = await asyncio.to_thread(
            describe_changes,
            spec,
            rows,
            snapshot,
            previous_rows,
            previous_ref if previous_rows is not None else None,
            dropped_rows=seed_dropped + left_out,
        )
        async with self._sessions() as session, session.begin():
            if await session.get(ProducedDatasetRow, snapshot.digest) is None:
                session.add(
                    ProducedDatasetRow(
                        digest=snapshot.digest,
                        model=run.model,
                        run_id=run.run_id,
                        live_from=rows.live_from,
                    )
                )
        return snapshot, rows.live_from, changes

    @contextlib.asynccontextmanager
    async def _holding(self, run: Run) -> AsyncIterator[None]:
        """Renew the run's lease for as long as this worker works on it (the snapshot, the
        steps, the artifact check and the conclusion alike), so no other replica's worker
        claims it while this one lives."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._lease_seconds / 3)
                try:
                    await self._runs.renew(run.run_id)
                except Exception:
                    log.warning("renewing run %s's lease failed", run.run_id, exc_info=True)

        renewer = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _conclude(
        self,
        run: Run,
        base: ModelVersionRecord,
        recipe: Recipe,
        snapshot: DatasetRef,
        result: PipelineResult,
        champion: ServedVersion | None,
        changes: DatasetChanges,
    ) -> None:
        verdict = result.outputs[Step.EVALUATE]
        evaluation_dataset = DatasetRef(
            name=run.model,
            version=f"heldout-{result.evaluation_sha256[:12]}",
            digest=digest_of(result.evaluation_sha256),
        )
        spec = with_measured_baselines(base.spec, verdict["metrics"])
        register_inputs = {
            "model": run.model,
            "artifact_sha256": result.artifact_sha256,
            "dataset": snapshot.digest,
            "evaluation_dataset": evaluation_dataset.digest,
            "parameters": recipe.parameters(),
            "code_version": self._code,
            "spec": spec.model_dump(mode="json"),
            "metrics": verdict["metrics"],
        }
        register_key = step_key(Step.REGISTER, register_inputs)
        cached = [step.value for step in result.cached]
        async with self._sessions() as session, session.begin():
            version = await self._registered(session, run.model, register_key, register_inputs)
            if version is not None:
                cached.append(Step.REGISTER.value)
            else:
                record = await self._registry.register(
                    run.model,
                    lambda number: ModelVersionRecord(
                        model=run.model,
                        version=number,
                        artifact_uri=self._artifacts.uri_of(result.artifact_sha256),
                        artifact_sha256=result.artifact_sha256,
                        sklearn_version=sklearn.__version__,
                        dataset=snapshot,
                        metrics=verdict["metrics"],
                        evaluation_dataset=evaluation_dataset,
                        parameters=recipe.parameters(),
                        code_version=self._code,
                        spec=spec,
                        registered_by=SYSTEM_ACTOR,
                        reason=f"retrain {run.run_id}: {run.reason}",
                        incident_id=run.incident_id,
                        registered_at=self._clock(),
                    ),
                    session=session,
                )
                version = record.version
            evaluation = await self._governance.record_evaluation(
                session,
                model=run.model,
                candidate_version=version,
                champion_version=champion.version if champion else None,
                dataset_digest=evaluation_dataset.digest,
                verdict=verdict,
                evaluate_key=result.keys[Step.EVALUATE],
                incident_id=run.incident_id,
                run_id=run.run_id,
            )
            await self._governance.request_promotion(
                session,
                evaluation,
                requested_by=run.requested_by,
                requesters=await self._runs.requesters(session, run.run_id),
            )
            await self._runs.finish(
                session,
                run,
                candidate_version=version,
                evaluation_id=evaluation.evaluation_id,
                cached_steps=cached,
                failure=None,
                changes=changes,
            )
        self._after_commit()
        await asyncio.to_thread(
            self._steps.record, Step.REGISTER, register_key, {"version": version}
        )
        log.info(
            "run %s: candidate %s v%d (%s), cached steps %s",
            run.run_id,
            run.model,
            version,
            "passed" if evaluation.passed else "failed the gate",
            cached,
        )

    async def _registered(
        self, session: AsyncSession, model: str, key: str, inputs: dict[str, Any]
    ) -> int | None:
        """Return the version an earlier run registered with these inputs, if any.

        The step record names it; failing that (a crash between the commit and the record),
        the registry is searched for a version with the same artifact, data and recipe.
        """
        found = await asyncio.to_thread(self._steps.outputs, Step.REGISTER, key)
        candidates = await self._registry.versions(model, session=session)
        if found is not None:
            for record in candidates:
                if (
                    record.version == found["version"]
                    and record.artifact_sha256 == inputs["artifact_sha256"]
                ):
                    return record.version
        for record in reversed(candidates):
            if (
                record.artifact_sha256 == inputs["artifact_sha256"]
                and record.dataset.digest == inputs["dataset"]
                and json.dumps(record.parameters, sort_keys=True)
                == json.dumps(inputs["parameters"], sort_keys=True)
                and record.code_version == inputs["code_version"]
            ):
                return record.version
        return None

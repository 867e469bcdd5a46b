"""The retrainer's database side on SQLite and PostgreSQL: labelled live examples, admission
under concurrency, claiming with leases, and the maintenance schedule (checked by one replica)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar
from uuid import uuid4

import httpx
import numpy as np
import pytest
from sqlmodel import col, select

from contracts import (
    DatasetChanges,
    DatasetRef,
    LabelRecorded,
    RetrainAnswer,
    RetrainAnswered,
    RetrainFinished,
    RetrainRefusal,
    RetrainTrigger,
    ValuePredicted,
    ValueRecorded,
    Variant,
)
from services.retrainer.migrations import HISTORY
from services.retrainer.retraining.live_examples import LiveExamples
from services.retrainer.retraining.runs import AskRefused, RetrainRuns, RunEnded, UnknownModel
from services.retrainer.retraining.schedules import check_schedules, run_schedules
from services.retrainer.retraining.training_data import targets, with_live
from services.retrainer.retraining.triggers import AdmissionKind, RetrainAsk, RunState
from services.runtime import OutboxMessage, create_engine, session_factory
from services.runtime.leases import Lease
from services.runtime.migrations import migrate
from tests.clock import FakeClock
from tests.database_tools import kill_holder
from tests.factories import T0
from tests.model_builders import train
from tests.polling import eventually
from tests.registry_tools import Registry, deploy, register, registry
from tests.retrainer.regression_data import FEATURES, diabetes
from tests.retrainer.regression_data import SPEC as REGRESSION_SPEC
from tests.retrainer.regression_data import rows as regression_rows
from tests.retrainer.retraining_data import SPEC, live_events

REGRESSION_ROWS = regression_rows()

MODEL = "breast-cancer"

T = TypeVar("T")


@dataclass
class Stores:
    registry: Registry
    live: LiveExamples
    runs: RetrainRuns
    clock: FakeClock[datetime]


@pytest.fixture
async def stores(database_url: str, tmp_path: Path) -> AsyncIterator[Stores]:
    async with registry(database_url) as reg:
        engine = create_engine(database_url)
        try:
            await migrate(engine, HISTORY)
            transport = httpx.ASGITransport(app=reg.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
                spec = SPEC.model_copy(update={"retrain_every_hours": 24.0})
                response = await register(http, MODEL, train(), spec=spec.model_dump(mode="json"))
                assert response.status_code == 201, response.text
                assert (await deploy(http, MODEL, 1)).status_code == 200
            live = LiveExamples(
                reg.sessions,
                dialect=engine.dialect.name,
                max_per_model=150,
                unlabelled_ttl=timedelta(hours=1),
            )
            runs = RetrainRuns(
                reg.sessions,
                reg.store,
                producer="retrainer",
                cooldown=timedelta(minutes=10),
                lease=timedelta(minutes=2),
                clock=reg.clock,
            )
            yield Stores(reg, live, runs, reg.clock)
        finally:
            await engine.dispose()


def ask(cause: str, at_minutes: float = 0, **overrides: object) -> RetrainAsk:
    fields: dict[str, object] = {
        "model": MODEL,
        "cause": cause,
        "trigger": RetrainTrigger.MANUAL,
        "requested_by": "ana",
        "reason": "test",
        "at": T0 + timedelta(minutes=at_minutes),
    }
    return RetrainAsk(**(fields | overrides))  # type: ignore[arg-type]


async def test_predictions_and_labels_join_in_either_order_and_redelivery_changes_nothing(
    stores: Stores,
) -> None:
    predictions, labels = live_events(MODEL, 0, 100)
    await stores.live.add_labels(labels[:50], T0)
    await stores.live.add_predictions(predictions, T0)
    await stores.live.add_labels(labels[50:], T0)
    await stores.live.add_predictions(predictions[:10], T0)  # redelivered
    await stores.live.add_labels(labels[:10], T0)
    assert await stores.live.count(MODEL) == (100, 100)
    examples = await stores.live.labelled(MODEL)
    assert [e.request_id for e in examples][:3] == ["live-0", "live-1", "live-2"]
    assert examples[0].features == predictions[0].features
    assert examples[0].label == labels[0].label


async def test_a_regressors_predictions_and_true_values_join_and_become_float_targets(
    stores: Stores,
) -> None:
    model = "diabetes"
    frame, target = diabetes()
    predicted = [
        ValuePredicted(
            producer="scorer",
            model=model,
            model_version=1,
            variant=Variant.CHAMPION,
            deployment_revision=1,
            request_id=f"d-{i}",
            features={name: float(frame.iloc[i][name]) for name in FEATURES},
            predicted_value=150.0,
            latency_ms=1.0,
        )
        for i in range(3)
    ]
    truths = [
        ValueRecorded(producer="clinic", model=model, request_id=f"d-{i}", value=float(target[i]))
        for i in range(3)
    ]
    corrected = truths[2].model_copy(update={"value": 1e300, "occurred_at": T0})
    await stores.live.add_labels(truths[:1], T0)  # a truth before its prediction
    await stores.live.add_predictions(predicted, T0)
    await stores.live.add_labels([*truths[1:], corrected], T0)
    await stores.live.add_labels(truths[:1], T0)  # redelivered
    examples = await stores.live.labelled(model)
    assert sorted(e.label for e in examples) == sorted(
        [repr(float(target[0])), repr(float(target[1])), "1e+300"]
    )
    seed = REGRESSION_ROWS.take(range(10))
    snapshot, left_out = with_live(seed, examples, REGRESSION_SPEC)
    assert (len(snapshot), snapshot.live_from, left_out) == (13, 10, 0)
    assert targets(snapshot, REGRESSION_SPEC)[10:].dtype == np.float64
    assert set(targets(snapshot, REGRESSION_SPEC)[10:]) == {target[0], target[1], 1e300}


async def test_shadow_and_probe_predictions_are_not_kept(stores: Stores) -> None:
    predictions, _ = live_events(MODEL, 0, 3)
    shadow = predictions[0].model_copy(update={"served": False, "request_id": "s-1"})
    probe = predictions[1].model_copy(update={"request_id": "vigil-probe:abc"})
    await stores.live.add_predictions([shadow, probe, predictions[2]], T0)
    assert await stores.live.count(MODEL) == (0, 1)


async def test_the_store_keeps_the_newest_labelled_examples_and_forgets_stale_unjoined_ones(
    stores: Stores,
) -> None:
    predictions, labels = live_events(MODEL, 0, 200)
    timed = [
        label.model_copy(update={"occurred_at": T0 + timedelta(seconds=i)})
        for i, label in enumerate(labels)
    ]
    await stores.live.add_predictions(predictions, T0)
    await stores.live.add_labels(timed, T0)
    orphans = [
        LabelRecorded(producer="clinic", model=MODEL, request_id=f"never-{i}", label="benign")
        for i in range(5)
    ]
    await stores.live.add_labels(orphans, T0)
    waiting, _ = live_events(MODEL, 300, 310, prefix="unlabelled")
    await stores.live.add_predictions(waiting, T0)
    await stores.live.prune(T0 + timedelta(hours=2))
    joined, total = await stores.live.count(MODEL)
    assert (joined, total) == (150, 150)
    kept = await stores.live.labelled(MODEL)
    assert kept[0].request_id == "live-50"
    assert kept[-1].request_id == "live-199"


async def test_concurrent_asks_with_new_causes_make_one_queued_run(stores: Stores) -> None:
    admissions = await asyncio.gather(*(stores.runs.ask(ask(f"manual:{n}")) for n in range(8)))
    kinds = sorted(a.kind for a in admissions)
    assert kinds.count(AdmissionKind.QUEUED) == 1
    assert {a.run_id for a in admissions} == {admissions[0].run_id}
    [run] = await stores.runs.recent(model=MODEL)
    assert sorted(run.causes) == sorted(f"manual:{n}" for n in range(8))


async def test_a_claimed_run_is_taken_over_only_after_its_lease_runs_out(stores: Stores) -> None:
    await stores.runs.ask(ask("manual:a"))
    claimed = await stores.runs.claim()
    assert claimed is not None
    assert claimed.state is RunState.RUNNING
    await stores.runs.ask(ask("manual:b"))  # queued behind the running one
    assert await stores.runs.claim() is None
    stores.clock.advance(timedelta(minutes=1))
    await stores.runs.renew(claimed.run_id)
    stores.clock.advance(timedelta(minutes=2))
    assert await stores.runs.claim() is None  # renewed a minute ago: still held
    stores.clock.advance(timedelta(minutes=1))
    again = await stores.runs.claim()
    assert again is not None
    assert again.run_id == claimed.run_id  # the dead worker's run resumes first


async def test_of_two_workers_holding_one_run_only_the_first_to_end_it_records_an_outcome(
    stores: Stores,
) -> None:
    await stores.runs.ask(ask("manual:a"))
    stalled = await stores.runs.claim()  # a worker that stalls past its lease, but lives
    assert stalled is not None
    stores.clock.advance(timedelta(minutes=4))
    taken = await stores.runs.claim()  # another replica's worker takes the run over
    assert taken is not None
    assert taken.run_id == stalled.run_id
    await stores.runs.fail(taken, "ended by the second worker")
    with pytest.raises(RunEnded):
        await stores.runs.fail(stalled, "ended by the first worker, too late")
    await stores.runs.renew(stalled.run_id)  # renewing an ended run changes nothing
    snapshot = DatasetRef(name=MODEL, version="late", digest="sha256:" + "0" * 64)
    changes = DatasetChanges(
        previous=None,
        current=snapshot,
        rows_before=0,
        rows_after=1,
        live_rows=0,
        label_balance_before={},
        label_balance_after={},
        features=[],
    )
    with pytest.raises(RunEnded):
        await stores.runs.started(stalled, snapshot, 0, changes)
    async with stores.registry.sessions() as session:
        finished = (
            await session.exec(
                select(OutboxMessage).where(OutboxMessage.event_type == "retrain.finished")
            )
        ).all()
    assert [RetrainFinished.model_validate_json(r.payload).failure for r in finished] == [
        "ended by the second worker"
    ]
    [run] = await stores.runs.recent(model=MODEL)
    assert run.failure == "ended by the second worker"


async def test_the_cooldown_holds_the_next_run_after_one_ends(stores: Stores) -> None:
    await stores.runs.ask(ask("manual:a"))
    run = await stores.runs.claim()
    assert run is not None
    await stores.runs.fail(run, "stopped for the test")
    admission = await stores.runs.ask(ask("manual:b"))
    assert admission.not_before == stores.clock.now + timedelta(minutes=10)
    assert await stores.runs.claim() is None
    stores.clock.advance(timedelta(minutes=10))
    assert await stores.runs.claim() is not None
    with pytest.raises(AskRefused) as refused:
        await stores.runs.ask(ask("manual:a"))
    assert refused.value.refusal is RetrainRefusal.ALREADY_RETRAINED
    assert run.run_id in str(refused.value)


async def test_the_maintenance_schedule_asks_once_per_period(stores: Stores) -> None:
    assert await check_schedules(stores.registry.store, stores.runs, T0 + timedelta(hours=23)) == []
    [due] = await check_schedules(stores.registry.store, stores.runs, T0 + timedelta(hours=25))
    assert due.kind is AdmissionKind.QUEUED
    again = await check_schedules(stores.registry.store, stores.runs, T0 + timedelta(hours=26))
    assert again == []
    [run] = await stores.runs.recent(model=MODEL)
    assert run.trigger is RetrainTrigger.SCHEDULE
    assert run.requested_by == "system:schedule"
    assert run.causes == [f"schedule:{(T0 + timedelta(hours=24)).isoformat()}"]


async def staged_answers(stores: Stores) -> list[RetrainAnswered]:
    async with stores.registry.sessions() as session:
        rows = (
            await session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.event_type == "retrain.answered")
                .order_by(col(OutboxMessage.id))
            )
        ).all()
    return [RetrainAnswered.model_validate_json(row.payload) for row in rows]


async def test_every_ask_is_answered_once_in_the_transaction_that_records_it(
    stores: Stores,
) -> None:
    first, replayed = uuid4(), uuid4()
    queued = await stores.runs.ask(ask("incident:inc-1", incident_id="inc-1"), event_id=first)
    joined = await stores.runs.ask(ask("manual:b", requested_by="bo"), event_id=replayed)
    again = await stores.runs.ask(ask("manual:b", requested_by="bo"), event_id=replayed)
    assert again.reason == "this ask was already handled"
    merged = await stores.runs.ask(ask("incident:inc-1", requested_by="cy", via="runbook-runner"))
    with pytest.raises(AskRefused):
        await stores.runs.ask(ask("manual:c", parameters={"C": 0.5}))  # the queued run has none
    with pytest.raises(UnknownModel):
        await stores.runs.ask(ask("manual:d", model="no-such-model"))
    with pytest.raises(AskRefused):
        await stores.runs.ask(ask("manual:e", parameters={"kernel": "rbf"}))
    run = await stores.runs.claim()
    assert run is not None
    await stores.runs.fail(run, "stopped for the test")
    with pytest.raises(AskRefused):
        await stores.runs.ask(ask("incident:inc-1"))

    answers = await staged_answers(stores)
    assert [(a.answer, a.refusal) for a in answers] == [
        (RetrainAnswer.QUEUED, None),
        (RetrainAnswer.JOINED, None),
        (RetrainAnswer.MERGED, None),
        (RetrainAnswer.REFUSED, RetrainRefusal.CONFLICTING_PARAMETERS),
        (RetrainAnswer.REFUSED, RetrainRefusal.UNKNOWN_MODEL),
        (RetrainAnswer.REFUSED, RetrainRefusal.INVALID_PARAMETERS),
        (RetrainAnswer.REFUSED, RetrainRefusal.ALREADY_RETRAINED),
    ]
    assert [a.ask_event_id for a in answers[:3]] == [first, replayed, None]
    assert {a.run_id for a in answers[:4]} == {queued.run_id} == {joined.run_id, merged.run_id}
    assert answers[-1].run_id == queued.run_id
    assert "already retrained for in run" in answers[-1].reason
    assert (answers[0].incident_id, answers[0].not_before) == ("inc-1", stores.clock.now)
    assert (answers[2].requested_by, answers[2].via) == ("cy", "runbook-runner")
    asks = await stores.runs.asks(run.run_id)
    assert [(a["requested_by"], a["via"], a["admission"]) for a in asks] == [
        ("ana", None, "queued"),
        ("bo", None, "joined"),
        ("cy", "runbook-runner", "merged"),
        ("ana", None, "refused"),  # the conflicting parameters: it names the queued run
        ("ana", None, "refused"),  # already retrained for
    ]


async def test_an_ask_merged_into_a_running_run_makes_its_asker_a_requester(
    stores: Stores,
) -> None:
    await stores.runs.ask(ask("incident:inc-1"))
    claimed = await stores.runs.claim()
    assert claimed is not None
    assert claimed.requesters == ["ana"]
    merged = await stores.runs.ask(ask("incident:inc-1", requested_by="bo"))
    assert (merged.kind, merged.run_id) == (AdmissionKind.MERGED, claimed.run_id)
    async with stores.registry.sessions() as session, session.begin():
        # What the worker reads when it opens the promotion request, not the claim's copy.
        assert await stores.runs.requesters(session, claimed.run_id) == ["ana", "bo"]
    run = await stores.runs.get(claimed.run_id)
    assert run is not None
    assert run.requesters == ["ana", "bo"]


async def schedule_asks(stores: Stores) -> list[RetrainAnswered]:
    return [a for a in await staged_answers(stores) if a.requested_by == "system:schedule"]


async def test_two_replicas_check_the_schedules_once_and_a_stand_by_takes_over_from_a_dead_one(
    stores: Stores, database_url: str
) -> None:
    """Each replica runs the schedule loop on an engine of its own (its own PostgreSQL
    sessions); only the holder of the ``retrainer-schedules`` lease asks."""
    if not database_url.startswith("postgresql"):
        pytest.skip("one process per SQLite file: it always holds the lease")
    engines = [create_engine(database_url) for _ in range(2)]
    leases = [Lease(engine, "retrainer-schedules") for engine in engines]
    replicas = [
        RetrainRuns(
            session_factory(engine),
            stores.registry.store,
            producer="retrainer",
            cooldown=timedelta(minutes=10),
            lease=timedelta(minutes=2),
            clock=stores.clock,
        )
        for engine in engines
    ]
    loops = [
        asyncio.create_task(run_schedules(stores.registry.store, runs, stores.clock, 0.02, lease)())
        for runs, lease in zip(replicas, leases, strict=True)
    ]
    try:
        stores.clock.advance(timedelta(hours=25))  # one scheduled retrain due
        await eventually(
            lambda: schedule_asks(stores), lambda asks: len(asks) == 1, timeout_s=10, every_s=0.02
        )
        await asyncio.sleep(0.3)  # many rounds of both replicas
        assert len(await schedule_asks(stores)) == 1
        (holder,) = [i for i, lease in enumerate(leases) if lease.holding]
        # The holder dies: its connection goes (as with SIGKILL) and its loop stops.
        await kill_holder(engines[1 - holder], "retrainer-schedules")
        loops[holder].cancel()
        with contextlib.suppress(BaseException):
            await loops[holder]
        stores.clock.advance(timedelta(hours=24))  # the next one due
        await eventually(
            lambda: schedule_asks(stores), lambda asks: len(asks) == 2, timeout_s=10, every_s=0.02
        )
        assert leases[1 - holder].holding
        await asyncio.sleep(0.3)
        assert len(await schedule_asks(stores)) == 2
    finally:
        for loop in loops:
            loop.cancel()
            with contextlib.suppress(BaseException):
                await loop
        for engine in engines:
            await engine.dispose()

"""The monitor service on a real database (SQLite file; PostgreSQL under ``integration``):
figures equal scikit-learn's, restarts neither lose nor double-count, failures leave no trace."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from contracts import (
    AlertKind,
    AlertRaised,
    AlertRecovered,
    LabelRecorded,
    MetricsComputed,
    ModelDeployed,
    PredictionMade,
    ProbeCompleted,
    Variant,
    VariantsCompared,
)
from services.monitor.service import NoGoldenSet, NotDeployed
from services.monitor.windows import WindowPolicy
from services.runtime import RegistryError
from tests.factories import MODEL, T0, make_deployment, make_spec, make_version_record
from tests.monitor.conftest import ServiceMaker
from tests.monitor.doubles import FakeRegistry, FakeScorer
from tests.monitor.replay import comparable, feed, uninterrupted
from tests.monitor.streams import Phase, champion_with_a_challenger, interleaved, scored_stream

NOW = T0 + timedelta(days=30)


def noisy_stream(seed: int, size: int) -> tuple[list[PredictionMade], list[LabelRecorded]]:
    rng = np.random.default_rng(seed)
    predictions, labels = [], []
    for index in range(size):
        truth = "malignant" if rng.random() < 0.4 else "benign"
        p = float(np.clip((0.7 if truth == "malignant" else 0.3) + rng.normal(0, 0.25), 0, 1))
        predicted = "malignant" if p >= 0.5 else "benign"
        predictions.append(
            PredictionMade(
                producer="scorer",
                occurred_at=T0 + timedelta(seconds=index),
                model=MODEL,
                model_version=1,
                variant=Variant.CHAMPION,
                deployment_revision=1,
                request_id=f"n-{index}",
                features={"mean radius": 1.0},
                predicted_class=predicted,
                probabilities={"malignant": p, "benign": 1 - p},
                confidence=max(p, 1 - p),
                latency_ms=float(rng.exponential(4.0)),
            )
        )
        labels.append(
            LabelRecorded(
                producer="labeller",
                occurred_at=T0 + timedelta(hours=1, seconds=index),
                model=MODEL,
                request_id=f"n-{index}",
                label=truth,
            )
        )
    order = rng.permutation(size)
    return predictions, [labels[i] for i in order]


async def test_published_figures_equal_scikit_learns_on_the_same_labelled_predictions(
    make_service: ServiceMaker,
) -> None:
    service, published = await make_service(window=WindowPolicy(max_events=300, span=None))
    predictions, labels = noisy_stream(seed=4, size=300)
    assert await feed(service, [*predictions, *labels]) == []
    prediction_window, label_window = published.of_type(MetricsComputed)
    assert (prediction_window.predictions, prediction_window.labelled) == (300, 0)
    assert (label_window.predictions, label_window.labelled) == (0, 300)

    by_request = {p.request_id: p for p in predictions}
    truth = [label.label for label in labels]
    predicted = [by_request[label.request_id].predicted_class for label in labels]
    p_malignant = [by_request[label.request_id].probabilities["malignant"] for label in labels]
    figures = label_window.metrics
    assert figures["accuracy"] == accuracy_score(truth, predicted)
    assert figures["precision"] == precision_score(truth, predicted, pos_label="malignant")
    assert figures["recall"] == recall_score(truth, predicted, pos_label="malignant")
    assert figures["f1"] == f1_score(truth, predicted, pos_label="malignant")
    assert figures["roc_auc"] == roc_auc_score([t == "malignant" for t in truth], p_malignant)
    assert figures["log_loss"] == pytest.approx(
        log_loss(truth, [[1 - p, p] for p in p_malignant], labels=["benign", "malignant"])
    )
    assert (
        label_window.confusion_matrix
        == confusion_matrix(truth, predicted, labels=["malignant", "benign"]).tolist()
    )
    latencies = [p.latency_ms for p in predictions]
    assert prediction_window.latency_ms.p95 == pytest.approx(np.percentile(latencies, 95))
    confidences = np.asarray([p.confidence for p in predictions])
    assert prediction_window.metrics["low_confidence_rate"] == pytest.approx(
        float(np.mean(confidences < 0.75))
    )
    assert prediction_window.throughput_per_s == pytest.approx(1.0)


async def test_a_restart_mid_stream_with_redelivery_gives_the_figures_of_an_uninterrupted_run(
    make_service: ServiceMaker, registry: FakeRegistry
) -> None:
    registry.deploy(MODEL, make_deployment())  # champion v1, challenger v2
    events = champion_with_a_challenger()
    # The wall clock stands at the start (so the comparison starts there) while event time runs
    # on for half an hour: the future tolerance covers the stream.
    tolerance = timedelta(hours=1)
    expected = uninterrupted(events, registry, now=T0, poll=100, future_tolerance=tolerance)
    assert any(isinstance(e, AlertRaised) for e in expected)
    assert any(isinstance(e, AlertRecovered) for e in expected)
    assert any(isinstance(e, VariantsCompared) and e.challenger_samples > 100 for e in expected)
    # the estimates (calibrated on the first labels, band seeded per window) replay exactly too
    assert any(isinstance(e, MetricsComputed) and e.estimated for e in expected)

    cut = len(events) // 200 * 100
    first, first_out = await make_service(clock=lambda: T0, future_tolerance=tolerance)
    await first.load_deployments()
    await feed(first, events[:cut], poll=100)
    # A new process on the same database; Kafka redelivers what was handled but not committed.
    second, second_out = await make_service(clock=lambda: T0, future_tolerance=tolerance)
    await second.load_deployments()
    await feed(second, events[cut - 300 :], poll=100)

    assert comparable(first_out.events + second_out.events) == comparable(expected)


async def test_a_redelivered_batch_changes_nothing(make_service: ServiceMaker) -> None:
    service, published = await make_service()
    events = interleaved(scored_stream([Phase(150)]), label_lag=10)
    await feed(service, events)
    before, status = len(published.events), await service.status()
    assert await feed(service, events) == []
    assert len(published.events) == before
    assert await service.status() == status


@pytest.mark.parametrize(
    "failure",
    [ConnectionError("database went away"), asyncio.CancelledError()],
    ids=["error", "cancelled"],  # cancelled: the step's task, at shutdown
)
async def test_a_failed_transaction_leaves_memory_as_the_database_has_it(
    make_service: ServiceMaker,
    registry: FakeRegistry,
    monkeypatch: pytest.MonkeyPatch,
    failure: BaseException,
) -> None:
    events = interleaved(scored_stream([Phase(450)]), label_lag=10)
    service, published = await make_service()
    await feed(service, events[:300])

    import services.monitor.service as module

    real_save = module.save_changes  # type: ignore[attr-defined]  # the module's own import, patched below
    calls = 0

    async def failing_once(session: Any, changes: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise failure
        await real_save(session, changes)

    monkeypatch.setattr(module, "save_changes", failing_once)
    with pytest.raises(type(failure)):
        await feed(service, events[300:])
    # The consumer redelivers from the failed batch on: nothing is refused as seen before.
    assert await feed(service, events[300:]) == []
    assert calls > 1
    assert comparable(published.events) == comparable(uninterrupted(events, registry))


async def test_an_unreachable_registry_fails_the_batch_so_that_it_is_retried(
    make_service: ServiceMaker, registry: FakeRegistry
) -> None:
    service, _ = await make_service()
    events = [s.prediction for s in scored_stream([Phase(5)])]
    registry.down = True
    with pytest.raises(RegistryError, match="unreachable"):
        await service.on_predictions(events)
    registry.down = False
    assert await service.on_predictions(events) == []
    assert (await service.status())["pending_predictions"] == 5


async def test_events_the_monitor_cannot_act_on_are_rejected_with_the_reason(
    make_service: ServiceMaker,
) -> None:
    service, _ = await make_service()
    (item,) = scored_stream([Phase(1)])
    unregistered = item.prediction.model_copy(update={"model_version": 7, "request_id": "x"})
    rejections = await service.on_predictions([item.prediction, unregistered])
    assert [(r.event_id, r.error) for r in rejections] == [
        (unregistered.event_id, f"model '{MODEL}' version 7 is not registered")
    ]
    wrong_class = item.label.model_copy(update={"label": "cyst"})
    (rejection,) = await service.on_labels([wrong_class])
    assert "'cyst' is not a class" in rejection.error


async def test_a_probe_passes_then_fails_on_a_broken_model_and_alerts_once(
    make_service: ServiceMaker, scorer: FakeScorer
) -> None:
    service, published = await make_service()
    await service.load_deployments()
    passed = await service.probe(MODEL, manual=True)
    assert (passed.passed, passed.accuracy, passed.model_version, passed.manual) == (
        True,
        1.0,
        1,
        True,
    )
    scorer.mode = "wrong"
    failed = await service.probe(MODEL, manual=False)
    assert not failed.passed
    assert failed.failure is not None
    assert failed.failure.startswith("regression: accuracy 0.000 below 1")
    await service.probe(MODEL, manual=False)
    scorer.mode = "right"
    await service.probe(MODEL, manual=False)
    alerts = [
        (type(e).__name__, e.kind)
        for e in published.events
        if isinstance(e, AlertRaised | AlertRecovered)
    ]
    assert alerts == [
        ("AlertRaised", AlertKind.PROBE_FAILED),
        ("AlertRecovered", AlertKind.PROBE_FAILED),
    ]
    assert len(published.of_type(ProbeCompleted)) == 4


async def test_a_probe_of_an_undeployed_model_or_one_without_golden_set_is_refused(
    make_service: ServiceMaker, registry: FakeRegistry
) -> None:
    service, _ = await make_service()
    with pytest.raises(NotDeployed, match="no deployed champion"):
        await service.probe("unknown-model", manual=True)
    registry.add(make_version_record(model="plain", version=1, spec=make_spec(probe=None)))
    registry.deploy("plain", make_deployment(challenger=None, challenger_share=0.0))
    with pytest.raises(NoGoldenSet, match="no probe"):
        await service.probe("plain", manual=True)


async def test_deployment_events_start_a_comparison_that_survives_a_restart(
    make_service: ServiceMaker,
) -> None:
    service, _ = await make_service()
    deployed = ModelDeployed(
        producer="retrainer", model=MODEL, deployment=make_deployment(), actor="ana", reason="ab"
    )
    await service.on_deployment_changed(deployed)
    challenger = scored_stream(  # after the deployment, before the wall clock
        [Phase(50)], version=2, variant=Variant.CHALLENGER, start=NOW - timedelta(hours=1)
    )
    await feed(service, interleaved(challenger, label_lag=0))
    again, _ = await make_service()
    assert (await again.status())["comparisons"] == {
        MODEL: {
            "champion_version": 1,
            "challenger_version": 2,
            "champion_outcomes": 0,
            "challenger_outcomes": 50,
        }
    }

"""``bench/scale.py --estimate``: replicas, partitions and PostgreSQL load from measured
per-replica rates (the arithmetic behind docs/scaling.md's "1,000 models" section)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner

# The benchmarks import their siblings as scripts do: their folder on the path (last, so it
# shadows nothing).
sys.path.append(str(Path(__file__).resolve().parents[1] / "bench"))
from scale import balanced_models, estimate


def test_a_thousand_models_at_a_hundred_requests_a_second() -> None:
    capacity = estimate(
        models=1_000,
        requests_per_s=100,
        monitor_per_replica=1_000,
        scorer_per_replica=500,
        utilisation=0.5,
    )
    assert capacity.predictions_per_s == 100_000
    assert capacity.monitor_events_per_s == 200_000  # each prediction and its label
    assert capacity.monitor_replicas == 400  # 200,000 / (1,000 x 0.5)
    assert capacity.scorer_replicas == 400  # 100,000 / (500 x 0.5)
    assert capacity.partitions == 400
    assert capacity.monitor_transactions_per_s == 100  # full batches of 2,000
    assert capacity.metrics_windows_per_s == 200  # count windows of 500 predictions
    assert capacity.hottest_model_fits  # 200 events/s of one model fit in 500


def test_replicas_round_up_and_partitions_follow_the_busiest_consumer() -> None:
    capacity = estimate(
        models=3, requests_per_s=10, monitor_per_replica=25, scorer_per_replica=100, utilisation=1
    )
    assert (capacity.monitor_replicas, capacity.scorer_replicas, capacity.partitions) == (3, 1, 3)
    unlabelled = estimate(
        models=3,
        requests_per_s=10,
        monitor_per_replica=25,
        scorer_per_replica=100,
        utilisation=1,
        labelled=False,
    )
    assert unlabelled.monitor_replicas == 2


def test_a_model_hotter_than_one_replica_is_flagged() -> None:
    capacity = estimate(
        models=2, requests_per_s=400, monitor_per_replica=500, scorer_per_replica=5_000
    )
    assert not capacity.hottest_model_fits  # 800 events/s of one model, one replica's 350


@pytest.mark.parametrize(
    "bad",
    [
        {"models": 0},
        {"requests_per_s": -1},
        {"monitor_per_replica": 0},
        {"scorer_per_replica": float("nan")},
        {"utilisation": 1.5},
        {"utilisation": 0},
    ],
)
def test_nonsense_inputs_are_refused(bad: dict[str, float]) -> None:
    arguments = {
        "models": 10,
        "requests_per_s": 10.0,
        "monitor_per_replica": 100.0,
        "scorer_per_replica": 100.0,
    } | bad
    with pytest.raises(ValueError, match="must"):
        estimate(**arguments)  # type: ignore[arg-type]


def test_the_benchmark_models_fill_every_partition_equally() -> None:
    models = balanced_models(2)
    partitions = list(range(6))
    placed = Counter(DefaultPartitioner()(m.encode(), partitions, partitions) for m in models)
    assert len(set(models)) == 12
    assert placed == dict.fromkeys(partitions, 2)

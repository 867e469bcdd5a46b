"""The monitor's decisions, pure: windows, alert episodes, late labels, refusals, comparisons."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar, cast

import pytest

from contracts import (
    AlertKind,
    AlertRaised,
    AlertRecovered,
    ComparisonVerdict,
    LabelRecorded,
    MetricsComputed,
    MetricTarget,
    ProbeCompleted,
    Variant,
    VariantsCompared,
    WindowKind,
)
from contracts.scoring_api import PROBE_REQUEST_ID_PREFIX
from services.monitor.domain import Monitor, Step
from services.monitor.windows import WindowPolicy
from tests.factories import MODEL, T0, make_deployment, make_spec, make_version_record
from tests.monitor.streams import Phase, interleaved, scored_stream, side_by_side
from tests.monitor.test_regression import feed, policy

NOW = T0 + timedelta(days=30)


def monitor(**overrides: Any) -> Monitor:
    made = Monitor(policy(**overrides))
    made.know(make_version_record(version=1))
    made.know(make_version_record(version=2))
    return made


E = TypeVar("E")


def of_type(step: Step, kind: type[E]) -> list[E]:
    return [event for event in step.outputs if isinstance(event, kind)]


def test_a_recall_decay_raises_one_alert_and_its_recovery_one_recovery() -> None:
    stream = scored_stream([Phase(1000), Phase(800, recall=0.7), Phase(1200)])
    step = feed(monitor(), interleaved(stream, label_lag=30))
    alerts = [e for e in step.outputs if isinstance(e, AlertRaised | AlertRecovered)]
    assert [(type(a).__name__, a.kind, a.fingerprint) for a in alerts] == [
        ("AlertRaised", AlertKind.METRIC_DECAY, f"{MODEL}:v1:metric_decay:recall"),
        ("AlertRecovered", AlertKind.METRIC_DECAY, f"{MODEL}:v1:metric_decay:recall"),
    ]
    raised = alerts[0]
    assert isinstance(raised, AlertRaised)
    assert raised.evidence["baseline"] == 0.97
    assert raised.evidence["threshold"] == 0.95
    assert raised.evidence["windows"] == 2
    assert all(value < 0.95 for value in cast(list[float], raised.evidence["values"]))
    assert raised.model_version == 1


def test_a_stream_without_decay_raises_nothing() -> None:
    step = feed(monitor(), interleaved(scored_stream([Phase(3000)]), label_lag=30))
    assert len(of_type(step, MetricsComputed)) >= 29
    assert of_type(step, AlertRaised) == []
    assert of_type(step, AlertRecovered) == []


def test_a_low_confidence_rate_above_its_maximum_raises_like_any_signal() -> None:
    stream = scored_stream([Phase(600), Phase(400, confidence=0.6), Phase(600)])
    step = feed(monitor(), interleaved(stream, label_lag=5))
    alerts = [
        (type(e).__name__, e.fingerprint)
        for e in step.outputs
        if isinstance(e, AlertRaised | AlertRecovered) and e.kind is AlertKind.LOW_CONFIDENCE
    ]
    fingerprint = f"{MODEL}:v1:low_confidence:low_confidence_rate"
    assert alerts == [("AlertRaised", fingerprint), ("AlertRecovered", fingerprint)]


def test_late_labels_are_joined_and_counted_in_the_window_open_when_they_arrive() -> None:
    stream = scored_stream([Phase(500)])
    target = monitor()
    early = feed(target, [s.prediction for s in stream])
    assert [m.labelled for m in of_type(early, MetricsComputed)] == [0] * 5
    late = feed(target, [s.label for s in stream[:300]])
    assert sum(m.labelled for m in of_type(late, MetricsComputed)) == 300
    assert target.status()["pending_predictions"] == 200


def test_predictions_past_the_ttl_expire_and_are_reported_in_the_figures() -> None:
    # One prediction a minute; labels come 10 minutes after their prediction; TTL 30 minutes.
    stream = scored_stream([Phase(60)], spacing=timedelta(minutes=1))
    target = monitor(join_ttl=timedelta(minutes=30), window=WindowPolicy(max_events=50, span=None))
    feed(target, [s.prediction for s in stream[:40]])
    feed(target, [s.label for s in stream[20:30]])
    step = feed(target, [s.prediction for s in stream[40:]])
    (closed,) = of_type(step, MetricsComputed)
    # By the 50th prediction (minute 49) predictions 0-18 are older than 30 minutes.
    assert (closed.predictions, closed.labelled, closed.expired_unjoined) == (50, 10, 19)
    (open_window,) = target.status()["open_windows"]
    assert (open_window["predictions"], open_window["expired_unjoined"]) == (10, 1)
    assert target.status()["pending_predictions"] == 30


def test_every_prediction_is_counted_once_in_closed_or_open_windows() -> None:
    stream = scored_stream([Phase(1234)], spacing=timedelta(seconds=30))
    target = monitor(
        join_ttl=timedelta(hours=1), window=WindowPolicy(max_events=100, span=timedelta(hours=1))
    )
    step = feed(
        target, interleaved(stream[:1000], label_lag=200) + [s.prediction for s in stream[1000:]]
    )
    closed = of_type(step, MetricsComputed)
    still_open = target.status()["open_windows"]
    predictions = sum(m.predictions for m in closed) + sum(w["predictions"] for w in still_open)
    labelled = sum(m.labelled for m in closed) + sum(w["labelled"] for w in still_open)
    expired = sum(m.expired_unjoined for m in closed) + sum(
        w["expired_unjoined"] for w in still_open
    )
    assert predictions == 1234
    assert labelled + expired + target.status()["pending_predictions"] == 1234
    assert {m.window.kind for m in closed} == {WindowKind.COUNT, WindowKind.TIME}


def test_an_event_time_window_closes_when_the_models_clock_passes_its_end() -> None:
    stream = scored_stream([Phase(30)], spacing=timedelta(seconds=20))
    target = monitor(window=WindowPolicy(max_events=None, span=timedelta(minutes=5)))
    step = feed(target, [s.prediction for s in stream])
    closed = of_type(step, MetricsComputed)
    assert [m.predictions for m in closed] == [15]
    assert closed[0].window.kind is WindowKind.TIME
    assert closed[0].window.end < T0 + timedelta(minutes=5)
    assert closed[0].throughput_per_s == pytest.approx(1 / 20)


def test_events_the_monitor_cannot_act_on_are_refused_with_a_reason() -> None:
    target = monitor()
    good = scored_stream([Phase(2)])
    unknown_version = good[0].prediction.model_copy(update={"model_version": 9})
    unknown_class = good[1].prediction.model_copy(
        update={"request_id": "x", "predicted_class": "cyst"}
    )
    step = feed(
        target,
        [
            good[0].prediction,
            good[0].prediction.model_copy(update={}),
            unknown_version,
            unknown_class,
        ],
    )
    reasons = [r.reason for r in step.refusals]
    assert len(reasons) == 3
    assert "duplicate prediction" in reasons[0]
    assert "version 9 is not registered" in reasons[1]
    assert "'cyst' is not a class" in reasons[2]
    bad_label = good[0].label.model_copy(update={"label": "cyst"})
    step = feed(target, [bad_label])
    assert [r.event_id for r in step.refusals] == [bad_label.event_id]
    assert target.status()["pending_predictions"] == 1  # the prediction still waits


def test_the_probes_golden_set_predictions_are_not_live_traffic() -> None:
    target = monitor()
    (item,) = scored_stream([Phase(1)])
    probe_prediction = item.prediction.model_copy(
        update={"request_id": f"{PROBE_REQUEST_ID_PREFIX}{MODEL}:run:g1"}
    )
    step = feed(target, [probe_prediction])
    assert step.refusals == []
    assert target.status()["open_windows"] == []
    assert target.status()["pending_predictions"] == 0


def probe_result(passed: bool) -> ProbeCompleted:
    return ProbeCompleted(
        producer="monitor",
        model=MODEL,
        model_version=1,
        passed=passed,
        accuracy=1.0 if passed else 0.0,
        min_accuracy=1.0,
        cases=[],
        failure=None if passed else "regression: accuracy 0.000 below 1",
    )


def test_a_failing_probe_alerts_once_per_episode_and_recovers_when_it_passes() -> None:
    target = monitor()
    kinds = []
    for passed in (True, False, False, True, True, False):
        step = target.record_probe(probe_result(passed), version=1, now=NOW)
        assert isinstance(step.outputs[0], ProbeCompleted)
        kinds += [type(e).__name__ for e in step.outputs[1:]]
    assert kinds == ["AlertRaised", "AlertRecovered", "AlertRaised"]


def test_a_worse_challenger_is_reported_and_alerted_once_and_recovered_when_withdrawn() -> None:
    target = monitor(comparison_min_samples=150)
    target.apply_deployment(MODEL, make_deployment(), at=T0, now=NOW)
    champion = scored_stream([Phase(1200, recall=0.98)], version=1, prefix="a")
    challenger = scored_stream(
        [Phase(1200, recall=0.8)], version=2, variant=Variant.CHALLENGER, prefix="b"
    )
    events = side_by_side(
        interleaved(champion, label_lag=10), interleaved(challenger, label_lag=10)
    )
    step = feed(target, events)
    comparisons = of_type(step, VariantsCompared)
    verdicts = [c.verdict for c in comparisons]
    assert verdicts[0] is ComparisonVerdict.INSUFFICIENT_DATA
    assert verdicts[-1] is ComparisonVerdict.CHALLENGER_WORSE
    assert all(
        c.verdict is ComparisonVerdict.INSUFFICIENT_DATA
        for c in comparisons
        if min(c.champion_samples, c.challenger_samples) < 150
    )
    worse = [a for a in of_type(step, AlertRaised) if a.kind is AlertKind.CHALLENGER_WORSE]
    assert [a.fingerprint for a in worse] == [f"{MODEL}:v2:challenger_worse:recall"]
    withdrawn = target.apply_deployment(
        MODEL, make_deployment(revision=3, challenger=None, challenger_share=0.0), at=NOW, now=NOW
    )
    assert [(type(e).__name__, getattr(e, "fingerprint", None)) for e in withdrawn.outputs] == [
        ("AlertRecovered", f"{MODEL}:v2:challenger_worse:recall")
    ]
    assert target.status()["comparisons"] == {}


def test_an_older_deployment_arriving_late_changes_nothing() -> None:
    target = monitor()
    target.apply_deployment(MODEL, make_deployment(revision=5), at=T0, now=NOW)
    target.apply_deployment(
        MODEL, make_deployment(revision=4, challenger=None, challenger_share=0.0), at=T0, now=NOW
    )
    assert target.status()["comparisons"][MODEL]["challenger_version"] == 2


def test_only_watched_metrics_alert_and_the_key_metric_is_critical() -> None:
    record = make_version_record(
        version=1,
        spec=make_spec(
            metrics=[
                MetricTarget(metric="recall", baseline=0.97, threshold=0.95),
                MetricTarget(metric="accuracy", baseline=0.97, threshold=0.95),
            ]
        ),
    )
    target = Monitor(policy())
    target.know(record)
    stream = scored_stream([Phase(400), Phase(400, recall=0.5)])
    step = feed(target, interleaved(stream, label_lag=5))
    severities = {a.evidence["metric"]: a.severity.value for a in of_type(step, AlertRaised)}
    assert severities == {"recall": "critical", "accuracy": "warning"}


def test_labels_without_a_prediction_that_expire_are_counted_in_the_next_window() -> None:
    target = monitor(join_ttl=timedelta(minutes=5), window=WindowPolicy(max_events=2, span=None))
    orphan = LabelRecorded(producer="x", occurred_at=T0, model=MODEL, request_id="gone", label=1)
    feed(target, [orphan])
    stream = scored_stream([Phase(2)], start=T0 + timedelta(hours=1))
    step = feed(target, [s.prediction for s in stream])
    (closed,) = of_type(step, MetricsComputed)
    assert closed.metrics["expired_labels"] == 1.0

"""What the detector publishes per window: a clean window outside any episode publishes its
decision figures only (``detail="compact"``); a drifted window, every window of an open episode,
and so every alert's and recovery's window, publish the full report. No report holds NaN or
infinity, whatever the window."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contracts import AlertRaised, AlertRecovered, DriftReported, Envelope, Topic
from contracts.alerts import AlertKind
from contracts.drift import ReportDetail
from contracts.monitoring import Window, WindowKind
from services.drift_detector import tracking
from services.drift_detector.detector import evaluate
from services.drift_detector.encoding import FeatureBatch
from services.drift_detector.episodes import Episode, Raised
from services.drift_detector.profiles import build_profile
from services.drift_detector.reporting import alert_event, drift_reported
from services.incident_log.chart_views import signal_charts
from services.runtime import EventPublisher, KafkaSettings
from tests.drift_detector.data import predictions, training_csv, training_rows
from tests.drift_detector.fakes import Registry
from tests.drift_detector.running import detector, publish
from tests.factories import T0
from tests.kafka_tools import read_events


def _refuse_constant(name: str) -> Any:
    raise AssertionError(f"{name} in a published report")


def strict_json(value: bytes | str) -> dict[str, Any]:
    """Parse JSON refusing NaN and infinities (Python's json accepts them by default)."""
    parsed: dict[str, Any] = json.loads(value, parse_constant=_refuse_constant)
    return parsed


def assert_compact(report: DriftReported) -> None:
    assert report.detail is ReportDetail.COMPACT
    assert not report.drifted
    for feature in report.features:
        assert feature.checks == []
        assert feature.statistics == {}
        assert feature.bins is None
        assert feature.psi is None
        assert not feature.drifted
        assert feature.reasons == []
        assert feature.statistic is not None
        assert feature.p_value is not None
        assert feature.adjusted_p_value is not None


def assert_full(report: DriftReported) -> None:
    assert report.detail is ReportDetail.FULL
    for feature in report.features:
        assert feature.checks, feature.feature
        assert feature.statistics, feature.feature
        assert feature.psi is not None, feature.feature
        if feature.kind == "numeric":
            assert feature.bins is not None, feature.feature


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_clean_windows_publish_compact_reports_and_an_episode_s_windows_full_ones(
    kafka_settings: KafkaSettings, publisher: EventPublisher, tmp_path: Path, unique: str
) -> None:
    model = f"m-{unique}"
    registry = Registry(model, training_csv(np.random.default_rng(10)))
    values, devices = training_rows(np.random.default_rng(11), 7000)
    values[2500:3500, [1, 3]] += 0.8  # two windows shifted, then clean again: raise, recover
    app = detector(kafka_settings, tmp_path, registry)
    events: list[Envelope] = list(predictions(values, devices, model=model))
    async with app.router.lifespan_context(app):
        await publish(publisher, events)
        # The detector's ids are derived from its input: only a relay's byte-identical copies
        # are left out, a decision published twice still counts twice.
        alert_records = await read_events(
            kafka_settings, Topic.ALERTS, count=2, timeout_s=60, identical_only=True
        )
        report_records = await read_events(
            kafka_settings, Topic.DRIFT, count=13, timeout_s=60, identical_only=True
        )
    reports = [DriftReported.model_validate(strict_json(r.value)) for r in report_records]
    raised = AlertRaised.model_validate(strict_json(alert_records[0].value))
    recovered = AlertRecovered.model_validate(strict_json(alert_records[1].value))
    by_id = {str(report.event_id): report for report in reports}
    raised_report = by_id[str(raised.evidence["report_event_id"])]
    recovered_report = by_id[str(recovered.evidence["report_event_id"])]
    assert raised_report.drifted
    assert_full(raised_report)
    assert not recovered_report.drifted
    assert_full(recovered_report)  # a clean window, but the episode was open until it
    # The raise's evidence still carries what the incident page draws: each driver's histogram.
    evidence_features = raised.evidence["features"]
    assert isinstance(evidence_features, dict)
    assert evidence_features
    for feature in evidence_features.values():
        assert isinstance(feature, dict)
        assert isinstance(feature["bins"], dict)

    shift_at = T0 + timedelta(seconds=2500)
    before = [r for r in reports if r.window.end < shift_at]
    episode = [r for r in reports if raised_report.window.start <= r.window.start]
    episode = [r for r in episode if r.window.end <= recovered_report.window.end]
    after = [r for r in reports if r.window.start > recovered_report.window.end]
    assert len(before) >= 4
    assert len(episode) >= 4
    assert after
    for report in before + after:
        if report.drifted:  # a false alarm is possible; it must then be published in full
            assert_full(report)
        else:
            assert_compact(report)
    for report in episode:
        assert_full(report)
    assert all(r.detail is ReportDetail.FULL for r in reports if r.drifted)


def _profile() -> Any:
    rng = np.random.default_rng(5)
    return build_profile(
        model="m",
        version=1,
        dataset_digest="sha256:" + "0" * 64,
        feature_order=["constant", "gone", "normal", "huge"],
        numeric={
            "constant": np.full(400, 3.0),
            "gone": rng.normal(size=400),
            "normal": rng.normal(size=400),
            "huge": rng.normal(size=400) * 1e150,
        },
        categorical={},
        max_rows=400,
    )


@pytest.mark.parametrize("in_episode", [False, True])
def test_reports_never_hold_nan_or_infinity(in_episode: bool) -> None:
    """A constant column, a column missing from the whole window, values near the float limit:
    the statistics that cannot be computed are null in both kinds of report, never NaN."""
    profile = _profile()
    rng = np.random.default_rng(6)
    numeric = np.column_stack(
        [
            np.full(300, 3.0),
            np.full(300, np.nan),
            rng.normal(size=300),
            rng.normal(size=300) * 1e150,
        ]
    )
    batch = FeatureBatch(
        numeric=numeric,
        categorical=np.zeros((300, 0), dtype=np.int64),
        unseen_text=np.full((300, 0), None, dtype=object),
    )
    report = evaluate(profile, batch)
    window = Window(kind=WindowKind.COUNT, start=T0, end=T0, size=300)
    tested = tracking.TestedWindow(window, report, None, report.drifted, report.drivers, in_episode)
    event = drift_reported(profile, tested, producer="drift-detector")
    published = DriftReported.model_validate(strict_json(event.model_dump_json()))
    full = tested.full_report
    assert published.detail is (ReportDetail.FULL if full else ReportDetail.COMPACT)
    assert full == (in_episode or report.drifted)
    gone = next(f for f in published.features if f.feature == "gone")
    assert gone.statistic is None
    assert gone.p_value is None
    assert gone.missing_rate_current == 1.0


def _window_of(profile: Any, shift: float) -> tracking.TestedWindow:
    rng = np.random.default_rng(8)
    numeric = np.column_stack(
        [
            np.full(300, 3.0),
            rng.normal(size=300),
            rng.normal(size=300) + shift,
            rng.normal(size=300) * 1e150,
        ]
    )
    batch = FeatureBatch(
        numeric=numeric,
        categorical=np.zeros((300, 0), dtype=np.int64),
        unseen_text=np.full((300, 0), None, dtype=object),
    )
    report = evaluate(profile, batch)
    window = Window(kind=WindowKind.COUNT, start=T0, end=T0, size=300)
    return tracking.TestedWindow(window, report, None, report.drifted, report.drivers)


def test_the_incident_page_draws_an_alert_from_a_drifted_window_s_full_report() -> None:
    """The incident log draws the drift alert's evidence, never a report: an alert's window is
    drifted, so its evidence carries the checks and histograms the charts need."""
    profile = _profile()
    tested = _window_of(profile, shift=1.0)
    assert tested.drifted
    assert tested.full_report
    episode = Episode(
        fingerprint="m:v1:data_drift:normal", features=("normal",), seen=(), started_at=T0
    )
    transition = tracking.Transition(AlertKind.DATA_DRIFT, Raised(episode), tested)
    alert = alert_event(profile, transition, producer="drift-detector", report_id="r")
    charts = signal_charts({"kind": "data_drift", "evidence": alert.evidence}, "m", 1, None)
    titles = [ET.fromstring(chart).findtext("figcaption") for chart in charts]
    assert titles == [
        "m data drift: effect size of the drifted features",
        "m data drift: significance (-log10 adjusted p)",
        "m data drift: normal, reference against current (reference deciles)",
    ]


def test_a_compact_report_s_features_still_chart_without_histograms() -> None:
    """Were a clean window's compact figures ever shown as evidence, the page still draws the
    effect and significance bars, and leaves out the histograms it has no bins for."""
    profile = _profile()
    tested = _window_of(profile, shift=0.0)
    assert not tested.full_report
    event = drift_reported(profile, tested, producer="drift-detector")
    assert event.detail is ReportDetail.COMPACT
    evidence = {
        "alpha": event.alpha,
        "features": {f.feature: f.model_dump(mode="json") for f in event.features},
    }
    charts = signal_charts({"kind": "data_drift", "evidence": evidence}, "m", 1, None)
    assert len(charts) == 2
    for chart in charts:
        ET.fromstring(chart)  # well-formed markup

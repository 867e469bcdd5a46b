"""The drift detector's handler: predictions in, reports and alerts out (committed with the
episode states they follow from), bad events refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import numpy as np
import pytest

from contracts import AlertRaised, AlertRecovered, DriftReported, FeatureValue, WindowKind
from contracts.envelope import utc_now
from services.drift_detector.service import VersionStreams
from tests.drift_detector.data import predictions, training_csv, training_rows
from tests.drift_detector.fakes import (
    InMemoryEpisodeStore,
    InMemoryProfileStore,
    Registry,
    version_streams,
)
from tests.factories import T0

MODEL = "churn"


def make_streams(
    registry: Registry, clock: Callable[[], datetime] = utc_now, **overrides: Any
) -> tuple[VersionStreams, InMemoryEpisodeStore, InMemoryProfileStore, InMemoryEpisodeStore]:
    """The handler, its committed events (the store), its profiles and its episode states."""
    profiles = InMemoryProfileStore()
    episodes = InMemoryEpisodeStore()
    streams = version_streams(registry, episodes, profiles, clock, **overrides)
    return streams, episodes, profiles, episodes


@pytest.fixture
def registry() -> Registry:
    return Registry(MODEL, training_csv(np.random.default_rng(0)))


async def test_a_shifted_stream_is_reported_per_window_and_alerted_once(registry: Registry) -> None:
    streams, publisher, profiles, episodes = make_streams(registry)
    values, devices = training_rows(np.random.default_rng(1), 4000)
    values[2000:, 2] += 1.0
    events = predictions(values, devices, model=MODEL)
    for start in range(0, 4000, 400):
        assert await streams.on_predictions(events[start : start + 400]) == []
    reports = [e for e in publisher.events if isinstance(e, DriftReported)]
    alerts = [e for e in publisher.events if isinstance(e, AlertRaised)]
    assert len(reports) >= 8
    assert [r.drifted for r in reports[:4]] == [False] * 4
    assert len(alerts) == 1
    assert alerts[0].fingerprint == f"{MODEL}:v1:data_drift:x2"
    assert alerts[0].evidence["drivers"] == ["x2"]
    assert alerts[0].model_version == 1
    assert profiles.saves == 1  # computed once; the score reference is kept with the episodes
    assert episodes.episodes[(MODEL, 1)].score_reference is not None
    assert registry.requests.count(f"/models/{MODEL}/versions/1") == 1
    assert episodes.episodes[(MODEL, 1)].episodes["data_drift"].episode is not None
    report = reports[-1]
    assert report.drivers == ["x2"]
    assert report.hypotheses is not None
    assert {f.feature for f in report.features} == {"x0", "x1", "x2", "x3", "device"}
    assert report.score is not None


async def test_events_off_the_schema_or_of_unknown_versions_are_refused_with_reasons(
    registry: Registry,
) -> None:
    streams, publisher, _, _ = make_streams(registry)
    values, devices = training_rows(np.random.default_rng(2), 3)
    good, unknown_feature, wrong_type = predictions(values, devices, model=MODEL)
    features: dict[str, FeatureValue] = dict(unknown_feature.features) | {"colour": "red"}
    unknown_feature = unknown_feature.model_copy(update={"features": features})
    wrong = dict(wrong_type.features) | {"x1": "high"}
    wrong_type = wrong_type.model_copy(update={"features": wrong})
    stranger = predictions(values[:1], devices[:1], model=MODEL, version=9)[0]
    rejections = await streams.on_predictions([good, unknown_feature, wrong_type, stranger])
    reasons = {rejection.event_id: rejection.error for rejection in rejections}
    assert set(reasons) == {unknown_feature.event_id, wrong_type.event_id, stranger.event_id}
    assert "unknown ['colour']" in reasons[unknown_feature.event_id]
    assert "feature 'x1': expected a number" in reasons[wrong_type.event_id]
    assert "model churn v9" in reasons[stranger.event_id]
    assert publisher.events == []  # one valid row: no window closed yet


async def test_a_failed_commit_leaves_the_state_as_it_was_for_the_redelivery(
    registry: Registry,
) -> None:
    streams, publisher, _, _ = make_streams(registry)
    values, devices = training_rows(np.random.default_rng(3), 1000)
    events = predictions(values, devices, model=MODEL)
    await streams.on_predictions(events[:400])
    publisher.fail_next = True
    with pytest.raises(ConnectionError):
        await streams.on_predictions(events[400:1000])
    await streams.on_predictions(events[400:1000])  # the consumer's retry
    reports = [e for e in publisher.events if isinstance(e, DriftReported)]
    assert [r.window.size for r in reports] == [500, 500]
    assert reports[1].window.start.timestamp() == events[500].occurred_at.timestamp()


async def test_a_failed_commit_of_the_score_reference_stores_the_same_reference_on_redelivery(
    registry: Registry,
) -> None:
    streams, publisher, _, episodes = make_streams(registry)
    values, devices = training_rows(np.random.default_rng(3), 1000)
    events = predictions(values, devices, model=MODEL)
    await streams.on_predictions(events[:200])  # 200 of the reference's 300 scores
    assert (MODEL, 1) not in episodes.episodes
    publisher.fail_next = True
    with pytest.raises(ConnectionError):
        await streams.on_predictions(events[200:600])
    await streams.on_predictions(events[200:600])  # the consumer's retry
    stored = episodes.episodes[(MODEL, 1)].score_reference
    assert stored == tuple(e.probabilities["yes"] for e in events[:300])
    await streams.on_predictions(events[600:1000])
    reports = [e for e in publisher.events if isinstance(e, DriftReported)]
    assert [r.window.size for r in reports] == [500, 500]  # the retry counted its rows once
    assert all(r.score is not None for r in reports)  # scores after the reference's are tested


@pytest.mark.parametrize(
    "intruder_at",
    [datetime(2099, 1, 1, tzinfo=UTC), T0 - timedelta(days=1)],
    ids=["2099", "a day behind"],
)
async def test_with_time_windows_a_mis_dated_prediction_is_refused_and_windows_keep_closing(
    registry: Registry, intruder_at: datetime
) -> None:
    values, devices = training_rows(np.random.default_rng(4), 3000)
    events = predictions(values, devices, model=MODEL)  # one a second from T0
    intruder = events[1000].model_copy(update={"event_id": uuid4(), "occurred_at": intruder_at})
    wall_clock = T0 + timedelta(hours=1)
    streams, publisher, _, _ = make_streams(
        registry, lambda: wall_clock, window_kind=WindowKind.TIME, window_seconds=300
    )
    rejections = []
    for batch in (events[:1000], [*events[1000:1200], intruder, *events[1200:2000]], events[2000:]):
        rejections += await streams.on_predictions(batch)
    assert [r.event_id for r in rejections] == [intruder.event_id]
    bound = "future tolerance of 0:05:00" if intruder_at > T0 else "horizon of 0:05:00"
    assert bound in rejections[0].error
    reports = [e for e in publisher.events if isinstance(e, DriftReported)]
    # Nine of the ten 300-second buckets closed (the last is open), none stretched by the intruder.
    assert [r.window.kind for r in reports] == [WindowKind.TIME] * 9
    assert [r.window.size for r in reports] == [300] * 9
    assert reports[-1].window.start == T0 + timedelta(seconds=2400)


async def test_two_replicas_deciding_the_same_episode_give_its_alert_and_recovery_the_same_ids(
    registry: Registry,
) -> None:
    """After a kill or a rebalance the next owner may decide an episode again: its events must
    carry the ids the first decision gave them, whenever it is decided, so they are discarded."""
    values, devices = training_rows(np.random.default_rng(5), 5000)
    values[1000:2500, 2] += 1.0
    events = predictions(values, devices, model=MODEL)
    decided = []
    for clock in (utc_now, lambda: utc_now() + timedelta(hours=3)):
        streams, committed, _, _ = make_streams(registry, clock)
        for start in range(0, 5000, 700):
            await streams.on_predictions(events[start : start + 700])
        decided.append(committed.events)
    first, second = decided
    alerts = [e for e in first if isinstance(e, AlertRaised | AlertRecovered)]
    assert [type(e) for e in alerts] == [AlertRaised, AlertRecovered]
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert len({e.event_id for e in first}) == len(first)
    assert alerts[0].event_id != alerts[1].event_id

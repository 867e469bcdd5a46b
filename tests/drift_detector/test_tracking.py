"""A model version's stream: one episode per shift, recovery, score reference, retry safety."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from contracts import AlertKind
from services.drift_detector.detector import DriftPolicy
from services.drift_detector.episodes import Raised, Recovered
from services.drift_detector.tracking import Progress, Tracker, TrackerConfig, TrackerState
from services.drift_detector.windows import WindowSpec
from tests.drift_detector.data import numeric_batch, numeric_profile
from tests.factories import T0

CONFIG = TrackerConfig(
    window=WindowSpec(size=500, min_rows=100),
    policy=DriftPolicy(min_rows=100),
    score_reference_rows=400,
    raise_after=2,
    recover_after=2,
)


def stream(
    tracker: Tracker, values: np.ndarray, scores: np.ndarray | None = None, batch_size: int = 250
) -> list[Progress]:
    state = tracker.start()
    results = []
    for start in range(0, len(values), batch_size):
        stop = min(start + batch_size, len(values))
        batch = numeric_batch(values[start:stop], None if scores is None else scores[start:stop])
        progress = tracker.advance(state, batch, np.arange(start, stop, dtype=float), now=T0)
        state = progress.state
        if progress.profile_changed:
            tracker.adopt(progress.profile)
        results.append(progress)
    return results


def test_a_shift_after_a_point_opens_one_episode_naming_the_shifted_features() -> None:
    rng = np.random.default_rng(0)
    tracker = Tracker(numeric_profile(rng.normal(size=(3000, 6))), CONFIG)
    values = rng.normal(size=(8000, 6))
    values[3000:6000, [1, 4]] += 0.8  # shifted for 3,000 rows, then back to normal
    progress = stream(tracker, values)
    transitions = [t for p in progress for t in p.transitions]
    assert [type(t.change) for t in transitions] == [Raised, Recovered]
    raised, recovered = transitions
    assert raised.kind is AlertKind.DATA_DRIFT
    assert raised.change.episode.fingerprint == "m:v1:data_drift:x1,x4"
    assert recovered.change.episode.fingerprint == raised.change.episode.fingerprint
    windows = [w for p in progress for w in p.windows]
    assert not any(w.drifted for w in windows[:6])  # before the shift
    first = next(w for w in windows if w.drifted)
    assert first.alarm is not None  # the sequential mode closed it before it was full
    assert first.window.size < 500
    assert first.window.end.timestamp() < 3500


def test_a_clean_stream_opens_no_episode() -> None:
    rng = np.random.default_rng(1)
    tracker = Tracker(numeric_profile(rng.normal(size=(3000, 6))), CONFIG)
    progress = stream(tracker, rng.normal(size=(10_000, 6)))
    assert [t for p in progress for t in p.transitions] == []
    assert len([w for p in progress for w in p.windows]) == 20


def test_the_first_live_scores_become_the_reference_and_later_ones_are_tested() -> None:
    rng = np.random.default_rng(2)
    tracker = Tracker(numeric_profile(rng.normal(size=(2000, 3))), CONFIG)
    scores = rng.beta(2, 5, size=4000)
    scores[2500:] = rng.beta(5, 2, size=1500)
    progress = stream(tracker, rng.normal(size=(4000, 3)), scores)
    changed = [p for p in progress if p.profile_changed]
    assert len(changed) == 1
    reference = changed[0].profile.scores
    assert reference is not None
    assert reference.rows == 400
    windows = [w for p in progress for w in p.windows]
    assert windows[0].report.score is not None  # 100 of its 500 rows are after the reference
    kinds = [t.kind for p in progress for t in p.transitions]
    assert kinds == [AlertKind.PREDICTION_DRIFT]


def test_advancing_twice_from_one_state_gives_the_same_result() -> None:
    rng = np.random.default_rng(3)
    tracker = Tracker(numeric_profile(rng.normal(size=(2000, 4))), CONFIG)
    values = rng.normal(size=(700, 4)) + 1.0
    state: TrackerState = tracker.start()
    first = tracker.advance(state, numeric_batch(values), np.arange(700.0), now=T0)
    again = tracker.advance(state, numeric_batch(values), np.arange(700.0), now=T0)
    assert [w.window for w in first.windows] == [w.window for w in again.windows]
    assert [w.drivers for w in first.windows] == [w.drivers for w in again.windows]
    assert first.state.data == again.state.data
    assert state.window.rows == 0  # the state that went in is untouched


def test_completing_the_score_reference_leaves_the_tracker_as_it_was_until_it_is_adopted() -> None:
    """The reference is adopted only once the caller stored it: a batch whose commit failed is
    judged again from the same state and completes the same reference."""
    rng = np.random.default_rng(6)
    tracker = Tracker(numeric_profile(rng.normal(size=(2000, 3))), CONFIG)
    values, scores = rng.normal(size=(600, 3)), rng.beta(2, 5, size=600)
    state = tracker.start()
    first = tracker.advance(state, numeric_batch(values, scores), np.arange(600.0), now=T0)
    again = tracker.advance(state, numeric_batch(values, scores), np.arange(600.0), now=T0)
    for progress in (first, again):
        assert progress.score_reference is not None
        assert progress.score_reference.tolist() == scores[:400].tolist()
    assert tracker.profile.scores is None
    tracker.adopt(first.profile)
    later = tracker.advance(first.state, numeric_batch(values, scores), np.arange(600.0), now=T0)
    assert later.score_reference is None
    assert [w.report.score is not None for w in later.windows] == [True]


def test_an_episode_restored_after_a_restart_recovers_instead_of_raising_again() -> None:
    rng = np.random.default_rng(4)
    tracker = Tracker(numeric_profile(rng.normal(size=(3000, 4))), CONFIG)
    values = rng.normal(size=(2000, 4))
    values[:, 2] += 1.0
    before = stream(tracker, values)[-1].state
    restarted = Tracker(tracker.profile, CONFIG)
    state = restarted.start(data=before.data)
    assert state.data.episode is not None
    progress = restarted.advance(
        replace(state), numeric_batch(rng.normal(size=(1000, 4))), np.arange(1000.0), now=T0
    )
    assert [type(t.change) for t in progress.transitions] == [Recovered]


def test_windows_alarms_and_alerts_do_not_depend_on_how_the_stream_is_batched() -> None:
    rng = np.random.default_rng(5)
    profile = numeric_profile(rng.normal(size=(3000, 5)))
    values = rng.normal(size=(5000, 5))
    values[2300:, 0] += np.linspace(0, 1.5, 2700)

    def outcome(batch_size: int) -> list[object]:
        progress = stream(Tracker(profile, CONFIG), values, batch_size=batch_size)
        windows = [
            (w.window, w.drivers, w.alarm and (w.alarm.rows, w.alarm.features))
            for p in progress
            for w in p.windows
        ]
        alerts = [
            (t.kind, type(t.change), t.tested.window) for p in progress for t in p.transitions
        ]
        return [windows, alerts]

    assert outcome(37) == outcome(250) == outcome(1000)

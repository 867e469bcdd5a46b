"""Episode states in the drift detector's database (SQLite and PostgreSQL): saved with a
compare-and-set, so a replica that lost a model's partition cannot overwrite the new owner's
state, and the next owner of the partition continues an open episode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import AlertRaised, AlertRecovered
from services.drift_detector.app import VersionStreams
from services.drift_detector.episode_store import (
    DatabaseEpisodeStore,
    EpisodesMoved,
    StoredEpisodes,
)
from services.drift_detector.episodes import Episode, EpisodeState
from services.drift_detector.migrations import HISTORY
from services.drift_detector.references import References
from services.drift_detector.settings import Settings
from services.runtime import KafkaSettings, create_engine, session_factory
from services.runtime.migrations import migrate
from tests.drift_detector.data import predictions, training_csv, training_rows
from tests.drift_detector.fakes import InMemoryProfileStore, RecordingPublisher, Registry

MODEL = "churn"
OPEN = EpisodeState(
    episode=Episode(
        fingerprint=f"{MODEL}:v1:data_drift:x2",
        features=("x2",),
        seen=("x2", "x1"),
        started_at=datetime(2026, 12, 5, 1, 2, 3, tzinfo=UTC),
        windows=3,
    ),
    clean_streak=1,
)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrate(engine, HISTORY)
    yield engine
    await engine.dispose()


@pytest.fixture
def store(engine: AsyncEngine) -> DatabaseEpisodeStore:
    return DatabaseEpisodeStore(session_factory(engine))


async def test_states_round_trip_and_each_save_raises_the_revision(
    store: DatabaseEpisodeStore,
) -> None:
    assert await store.load(MODEL, 1) == StoredEpisodes()
    assert await store.save(MODEL, 1, {"data_drift": OPEN}, read=0) == 1
    assert await store.save(MODEL, 1, {"data_drift": EpisodeState()}, read=1) == 2
    assert (
        await store.save(MODEL, 1, {"data_drift": OPEN, "prediction_drift": EpisodeState()}, read=2)
        == 3
    )
    loaded = await store.load(MODEL, 1)
    assert loaded == StoredEpisodes({"data_drift": OPEN, "prediction_drift": EpisodeState()}, 3)
    assert await store.revisions([(MODEL, 1), (MODEL, 2), ("other", 1)]) == {(MODEL, 1): 3}


async def test_a_save_from_a_stale_revision_is_refused_and_changes_nothing(
    store: DatabaseEpisodeStore,
) -> None:
    await store.save(MODEL, 1, {"data_drift": OPEN}, read=0)
    with pytest.raises(EpisodesMoved):
        await store.save(MODEL, 1, {"data_drift": EpisodeState()}, read=0)  # a second first save
    await store.save(MODEL, 1, {"data_drift": OPEN}, read=1)
    with pytest.raises(EpisodesMoved):
        await store.save(MODEL, 1, {"data_drift": EpisodeState()}, read=1)  # the zombie's save
    assert await store.load(MODEL, 1) == StoredEpisodes({"data_drift": OPEN}, 2)


def replica(
    registry: Registry, store: DatabaseEpisodeStore
) -> tuple[VersionStreams, RecordingPublisher]:
    settings = Settings(
        kafka=KafkaSettings(), window_size=500, min_window_rows=100, score_reference_rows=300
    )
    publisher = RecordingPublisher()
    client = registry.client()
    streams = VersionStreams(
        config=settings.tracker_config(),
        references=References(InMemoryProfileStore(), max_rows=5000),
        episodes=store,
        publisher=publisher,
        registry=lambda: client,
    )
    return streams, publisher


async def test_the_next_owner_of_the_partition_recovers_an_episode_opened_before_the_rebalance(
    store: DatabaseEpisodeStore,
) -> None:
    registry = Registry(MODEL, training_csv(np.random.default_rng(0)))
    first, first_out = replica(registry, store)
    second, second_out = replica(registry, store)
    values, devices = training_rows(np.random.default_rng(1), 6000)
    values[:3000, 2] += 1.0  # drifted, then clean again
    events = predictions(values, devices, model=MODEL)
    for start in range(0, 3000, 500):
        await first.on_predictions(events[start : start + 500])
    assert [type(e) for e in first_out.events if isinstance(e, AlertRaised)] == [AlertRaised]
    # Rebalance: the model's partition moves to the second replica, which opened nothing.
    for start in range(3000, 6000, 500):
        await second.on_predictions(events[start : start + 500])
    recovered = [e for e in second_out.events if isinstance(e, AlertRecovered)]
    raised = [e for e in first_out.events if isinstance(e, AlertRaised)]
    assert [r.fingerprint for r in recovered] == [raised[0].fingerprint]
    assert not any(isinstance(e, AlertRaised) for e in second_out.events)
    # The first replica gets the partition back later: it notices its cached state is stale
    # and continues from the stored state (no episode open) instead of its own.
    more_values, more_devices = training_rows(np.random.default_rng(2), 1000)
    await first.on_predictions(predictions(more_values, more_devices, model=MODEL))
    assert not any(isinstance(e, AlertRecovered) for e in first_out.events)
    stored = await store.load(MODEL, 1)
    assert stored.episodes["data_drift"].episode is None

"""Episode states in the drift detector's database (SQLite and PostgreSQL): saved with a
compare-and-set, so a replica that lost a model's partition cannot overwrite the new owner's
state, and the next owner of the partition continues an open episode; the events a batch decided
are staged in the outbox with the states, so a fenced replica's alerts are never published."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import partial

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from contracts import (
    AlertKind,
    AlertRaised,
    AlertRecovered,
    DriftReported,
    Envelope,
    PredictionMade,
)
from contracts.topics import EVENT_TYPES
from services.drift_detector.episode_store import (
    DatabaseEpisodeStore,
    EpisodesMoved,
    EpisodeStore,
    Save,
    ScoreReferenceRow,
    ScoreReferenceTaken,
    StoredEpisodes,
)
from services.drift_detector.episodes import Episode, EpisodeState
from services.drift_detector.migrations import HISTORY
from services.drift_detector.service import VersionStreams
from services.runtime import session_factory
from services.runtime.migrations import SchemaHistory
from services.runtime.outbox import OutboxMessage
from tests.drift_detector.data import predictions, training_csv, training_rows
from tests.drift_detector.fakes import InMemoryProfileStore, Registry, version_streams
from tests.factories import make_alert

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
def schema() -> SchemaHistory:
    return HISTORY


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


async def staged(engine: AsyncEngine) -> list[Envelope]:
    """The events committed to the outbox, in commit order."""
    async with session_factory(engine)() as session:
        rows = await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
        return [EVENT_TYPES[r.event_type].model_validate_json(r.payload) for r in rows.all()]


async def test_a_commit_stages_the_events_of_the_versions_it_saves_and_drops_a_fenced_ones(
    store: DatabaseEpisodeStore, engine: AsyncEngine
) -> None:
    await store.save(MODEL, 2, {"data_drift": OPEN}, read=0)
    kept, fenced, first = make_alert(), make_alert(), make_alert(model="other")
    revisions = await store.commit(
        [
            Save(MODEL, 1, {"data_drift": OPEN}, 0, [kept]),
            Save(MODEL, 2, {"data_drift": EpisodeState()}, 0, [fenced]),  # another replica's row
            Save("other", 1, {}, 0, [first]),
        ]
    )
    assert revisions == {(MODEL, 1): 1, (MODEL, 2): None, ("other", 1): 1}
    assert [e.event_id for e in await staged(engine)] == [kept.event_id, first.event_id]
    assert await store.load(MODEL, 2) == StoredEpisodes({"data_drift": OPEN}, 1)


def replica(registry: Registry, store: EpisodeStore) -> VersionStreams:
    return version_streams(registry, store, InMemoryProfileStore())


async def test_the_next_owner_of_the_partition_recovers_an_episode_opened_before_the_rebalance(
    store: DatabaseEpisodeStore, engine: AsyncEngine
) -> None:
    registry = Registry(MODEL, training_csv(np.random.default_rng(0)))
    first, second = replica(registry, store), replica(registry, store)
    values, devices = training_rows(np.random.default_rng(1), 6000)
    values[:3000, 2] += 1.0  # drifted, then clean again
    events = predictions(values, devices, model=MODEL)
    for start in range(0, 3000, 500):
        await first.on_predictions(events[start : start + 500])
    (raised,) = [e for e in await staged(engine) if isinstance(e, AlertRaised)]
    # Rebalance: the model's partition moves to the second replica, which opened nothing.
    for start in range(3000, 6000, 500):
        await second.on_predictions(events[start : start + 500])
    # The first replica gets the partition back later: it notices its cached state is stale
    # and continues from the stored state (no episode open) instead of its own.
    more_values, more_devices = training_rows(np.random.default_rng(2), 1000)
    await first.on_predictions(predictions(more_values, more_devices, model=MODEL))
    alerts = [e for e in await staged(engine) if isinstance(e, AlertRaised | AlertRecovered)]
    assert [(type(e), e.fingerprint) for e in alerts] == [
        (AlertRaised, raised.fingerprint),
        (AlertRecovered, raised.fingerprint),
    ]
    stored = await store.load(MODEL, 1)
    assert stored.episodes["data_drift"].episode is None


def shifted_scores(rng: np.random.Generator, rows: int, shift: float) -> list[PredictionMade]:
    """Predictions whose score (it follows ``x0``) moves by ``shift`` on the logit scale."""
    values, devices = training_rows(rng, rows)
    values[:, 0] += shift
    return predictions(values, devices, model=MODEL)


async def test_a_score_reference_is_stored_once_exactly_and_a_second_one_is_refused(
    store: DatabaseEpisodeStore, engine: AsyncEngine
) -> None:
    scores = (0.1, 1 / 3, 0.7000000000000001, 5e-324, 1.0)
    first = make_alert()
    assert await store.commit([Save(MODEL, 1, {}, 0, [first], scores)]) == {(MODEL, 1): 1}
    assert await store.load(MODEL, 1) == StoredEpisodes({}, 1, scores)  # to the bit
    # Only a failed fencing could propose a second: the whole commit is refused, not merged.
    second, other = make_alert(), make_alert(model="other")
    with pytest.raises(ScoreReferenceTaken):
        await store.commit(
            [Save("other", 1, {}, 0, [other]), Save(MODEL, 1, {}, 1, [second], (0.5,) * 5)]
        )
    assert await store.load(MODEL, 1) == StoredEpisodes({}, 1, scores)
    assert await store.revisions([("other", 1)]) == {}
    assert [e.event_id for e in await staged(engine)] == [first.event_id]


async def test_the_next_owner_of_the_partition_judges_scores_against_the_first_owners_reference(
    store: DatabaseEpisodeStore, engine: AsyncEngine
) -> None:
    """The first owner collects the score reference from the version's first, normal traffic;
    the scores shift just as the partition moves. The next owner raises prediction drift and
    recovers when the scores come back, instead of taking the shifted scores as its reference
    (and then alerting, without end, on the normal scores that follow)."""
    registry = Registry(MODEL, training_csv(np.random.default_rng(0)))
    first, second = replica(registry, store), replica(registry, store)
    rng = np.random.default_rng(3)
    normal, shifted, back = (shifted_scores(rng, 1000, s) for s in (0.0, 1.5, 0.0))
    for start in range(0, 1000, 250):
        await first.on_predictions(normal[start : start + 250])
    reference = (await store.load(MODEL, 1)).score_reference
    assert reference == tuple(e.probabilities["yes"] for e in normal[:300])
    for events in (shifted, back, back):
        for start in range(0, 1000, 250):
            await second.on_predictions(events[start : start + 250])
    alerts = [e for e in await staged(engine) if isinstance(e, AlertRaised | AlertRecovered)]
    score_alerts = [type(e) for e in alerts if e.kind is AlertKind.PREDICTION_DRIFT]
    assert score_alerts == [AlertRaised, AlertRecovered]
    assert (await store.load(MODEL, 1)).score_reference == reference


async def test_a_score_reference_cached_before_the_database_kept_them_is_stored_and_shared(
    store: DatabaseEpisodeStore,
) -> None:
    """A replica upgraded with a reference in its profile cache stores it with its next save
    (once) and drops it from the cache; a replica with none adopts it rather than collecting
    another; a replica whose cache holds another judges by the stored one."""
    registry = Registry(MODEL, training_csv(np.random.default_rng(0)))
    normal = shifted_scores(np.random.default_rng(4), 1500, 0.0)
    cache = InMemoryProfileStore()
    await version_streams(registry, store, cache).on_predictions(normal[:10])  # builds it
    profile = cache.profiles[(MODEL, 1)]
    reference = [e.probabilities["yes"] for e in normal[:300]]
    stale = InMemoryProfileStore()
    stale.profiles[(MODEL, 1)] = profile.with_scores([0.99] * 300)  # another replica's cache
    cache.profiles[(MODEL, 1)] = profile.with_scores(reference)  # as the cache once kept it
    upgraded = version_streams(registry, store, cache)
    await upgraded.on_predictions(normal[300:700])
    assert (await store.load(MODEL, 1)).score_reference == tuple(sorted(reference))
    assert cache.profiles[(MODEL, 1)].scores is None  # so a deleted reference is not proposed
    assert await upgraded.on_predictions(normal[700:900]) == []  # stored once, not again
    # Had they collected or proposed their own, storing it would fail the batch.
    assert await replica(registry, store).on_predictions(normal[900:1200]) == []
    other = version_streams(registry, store, stale)
    assert await other.on_predictions(normal[1200:1500]) == []
    assert (await store.load(MODEL, 1)).score_reference == tuple(sorted(reference))
    assert stale.profiles[(MODEL, 1)].scores is None


async def test_a_fenced_save_stores_no_score_reference(store: DatabaseEpisodeStore) -> None:
    await store.save(MODEL, 1, {"data_drift": OPEN}, read=0)
    revisions = await store.commit([Save(MODEL, 1, {}, 0, [], (0.5,) * 5)])  # a stale replica's
    assert revisions == {(MODEL, 1): None}
    assert await store.load(MODEL, 1) == StoredEpisodes({"data_drift": OPEN}, 1)


async def test_a_replica_finding_a_reference_stored_behind_its_fencing_judges_by_the_stored_one(
    store: DatabaseEpisodeStore, engine: AsyncEngine
) -> None:
    """Were the fencing ever to fail, the batch fails, and its retry reloads the version and
    judges by the stored reference instead of storing a second one."""
    registry = Registry(MODEL, training_csv(np.random.default_rng(0)))
    streams = replica(registry, store)
    events = shifted_scores(np.random.default_rng(5), 1000, 0.0)
    await streams.on_predictions(events[:200])  # collecting: nothing stored yet
    elsewhere = tuple(float(x) for x in np.linspace(0.2, 0.8, 300))
    async with session_factory(engine)() as session, session.begin():
        session.add(
            ScoreReferenceRow(model=MODEL, version=1, scores=np.asarray(elsewhere, "<f8").tobytes())
        )
    with pytest.raises(ScoreReferenceTaken):
        await streams.on_predictions(events[200:600])
    assert await streams.on_predictions(events[200:600]) == []  # the consumer's retry
    assert await streams.on_predictions(events[600:1000]) == []
    assert (await store.load(MODEL, 1)).score_reference == elsewhere
    reports = [e for e in await staged(engine) if isinstance(e, DriftReported)]
    assert [r.window.size for r in reports] == [500]  # the rows after the reload
    assert reports[0].score is not None


class CommitsAfter:
    """A store whose commits wait until another replica's batch has committed first: the
    interleaving of a rebalance while the old owner still runs its last batch."""

    def __init__(self, store: DatabaseEpisodeStore) -> None:
        self.store = store
        self.first: Callable[[], Awaitable[object]] | None = None

    async def load(self, model: str, version: int) -> StoredEpisodes:
        return await self.store.load(model, version)

    async def revisions(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return await self.store.revisions(keys)

    async def commit(self, saves: Sequence[Save]) -> dict[tuple[str, int], int | None]:
        if self.first is not None:
            first, self.first = self.first, None
            await first()
        return await self.store.commit(saves)


async def test_of_two_replicas_deciding_the_same_episode_only_the_first_to_commit_publishes_it(
    store: DatabaseEpisodeStore, engine: AsyncEngine
) -> None:
    """Both judge the same batch from the same episode state (the old owner's windows hold
    300 scored rows fewer: it collected the score reference the new owner adopted) and decide
    the same alert; the compare-and-set lets the first commit, and rolls the other's events back
    with its state."""
    registry = Registry(MODEL, training_csv(np.random.default_rng(0)))
    slow = CommitsAfter(store)
    old_owner, new_owner = replica(registry, slow), replica(registry, store)
    values, devices = training_rows(np.random.default_rng(1), 1500)
    values[500:, 2] += 1.0
    events = predictions(values, devices, model=MODEL)
    for owner in (old_owner, new_owner):
        await owner.on_predictions(events[:400])
    # The first to collect the score reference stored it; the other judges against it.
    assert await store.revisions([(MODEL, 1)]) == {(MODEL, 1): 1}
    slow.first = partial(new_owner.on_predictions, events[400:])
    await old_owner.on_predictions(events[400:])
    committed = await staged(engine)
    (raised,) = [e for e in committed if isinstance(e, AlertRaised)]
    assert raised.fingerprint == f"{MODEL}:v1:data_drift:x2"
    reports = [e for e in committed if isinstance(e, DriftReported)]
    assert sum(r.window.size for r in reports) <= 1500  # one replica's windows, not two
    assert len({r.window for r in reports}) == len(reports)
    assert (await store.load(MODEL, 1)).revision == 2  # the old owner's save was refused
    # The old owner dropped its copy: its next batch continues the stored, open episode.
    await old_owner.on_predictions(predictions(values[500:1000], devices[500:1000], model=MODEL))
    assert [e for e in await staged(engine) if isinstance(e, AlertRaised)] == [raised]

"""The drift detector's use case: predictions in, drift reports and alerts out.

:class:`VersionStreams` is an adapter: it groups a batch of ``prediction.made`` (a classifier's) or
``value.predicted`` (a regressor's) events by model version,
refuses events dated out of bounds (time windows only, against the wall clock it passes in),
encodes the rest against the version's profile (events off the schema are refused too: both go
to the dead-letter topic), lets each version's pure
:class:`~services.drift_detector.tracking.Tracker` advance, then saves the versions' episode
states and stages their reports and alerts in the outbox in one transaction
(:meth:`~services.drift_detector.episode_store.DatabaseEpisodeStore.commit`), and keeps the new
states in memory only once that committed. A failed commit leaves nothing half-done (the
redelivered batch is judged again from the same state); a version another replica saved since is
dropped with its events. The relay then publishes what was committed (ADR 0017).

The score stream is a classifier's probability of its positive class, or a regressor's
``predicted_value``: the same tests, with a score reference collected from the version's first
live predictions either way (ADR 0008, ADR 0022). The reference is saved in the commit of the
batch that completed it and loaded with the episodes, so the next owner of a partition, or a
restarted replica, judges against the same one (ADR 0017).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from contracts.alerts import AlertKind
from contracts.envelope import Envelope, utc_now
from contracts.scoring import PredictionMade, ValuePredicted
from services.drift_detector.encoding import encode_rows
from services.drift_detector.episode_store import EpisodeStore, Save, ScoreReferenceTaken
from services.drift_detector.episodes import EpisodeState
from services.drift_detector.profiles import ReferenceProfile
from services.drift_detector.references import References, ReferenceUnavailable
from services.drift_detector.reporting import alert_event, drift_reported
from services.drift_detector.settings import SERVICE
from services.drift_detector.tracking import Progress, Tracker, TrackerConfig, TrackerState
from services.runtime.consumer import Rejection
from services.runtime.outbox import OutboxRelay
from services.runtime.registry_client import RegistryClient

__all__ = ["Clock", "VersionStreams", "publish_committed"]

Clock = Callable[[], datetime]

log = logging.getLogger(__name__)


@dataclass
class _Stream:
    tracker: Tracker
    state: TrackerState
    revision: int
    """The revision of the stored episodes this state continues."""
    unsaved_reference: tuple[float, ...] | None = None
    """A score reference found only in this replica's profile cache (written before the
    database kept them), to be stored with the next save."""


class VersionStreams:
    """The drift detector's handler of predictions: one tracked stream per model version."""

    def __init__(
        self,
        *,
        config: TrackerConfig,
        references: References,
        episodes: EpisodeStore,
        registry: Callable[[], RegistryClient],
        committed: Callable[[], Awaitable[object]] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        """``committed`` publishes what a commit staged (the outbox relay's pass)."""
        self._config = config
        self._references = references
        self._episodes = episodes
        self._committed = committed
        self._registry = registry
        self._clock = clock
        self._streams: dict[tuple[str, int], _Stream] = {}

    async def on_predictions(
        self, events: list[PredictionMade] | list[ValuePredicted]
    ) -> list[Rejection]:
        """Judge a batch of predictions; refuse those that cannot be tested."""
        rejections: list[Rejection] = []
        advanced: list[tuple[tuple[str, int], _Stream, Progress, list[Envelope]]] = []
        versions = _by_version(events)
        await self._forget_stale([key for key in versions if key in self._streams])
        for key, group in versions.items():
            try:
                stream = await self._stream(*key)
            except ReferenceUnavailable as error:
                rejections += [Rejection(event.event_id, str(error)) for event in group]
                continue
            now = self._clock()
            profile = stream.tracker.profile
            refused = [
                _wrong_kind(event, profile) or why
                for event, why in zip(
                    group,
                    stream.tracker.refusals(stream.state, [e.occurred_at for e in group], now=now),
                    strict=True,
                )
            ]
            rejections += [
                Rejection(event.event_id, why)
                for event, why in zip(group, refused, strict=True)
                if why is not None
            ]
            group = [event for event, why in zip(group, refused, strict=True) if why is None]
            encoded = encode_rows(
                profile,
                [event.features for event in group],
                [_score(event, profile.positive_class) for event in group],
            )
            rejections += [Rejection(group[i].event_id, why) for i, why in encoded.errors.items()]
            if not encoded.accepted:
                continue
            times = np.array([group[i].occurred_at.timestamp() for i in encoded.accepted])
            progress = stream.tracker.advance(stream.state, encoded.batch, times, now=now)
            advanced.append((key, stream, progress, _events(progress, producer=SERVICE.value)))
        await self._commit(advanced)
        return rejections

    async def _commit(
        self, advanced: list[tuple[tuple[str, int], _Stream, Progress, list[Envelope]]]
    ) -> None:
        """Save the changed states with their events, all versions in one transaction; then
        keep the new states of the versions saved, and drop those another replica saved."""
        saves = []
        for key, stream, progress, events in advanced:
            reference = (
                stream.unsaved_reference
                if progress.score_reference is None
                else tuple(progress.score_reference.tolist())
            )
            if events or reference is not None or _episodes_changed(stream.state, progress.state):
                saves.append(
                    Save(*key, _signals(progress.state), stream.revision, events, reference)
                )
        try:
            revisions = await self._episodes.commit(saves)
        except ScoreReferenceTaken:
            # Start again from the stored reference. (Any other failure keeps the states: the
            # redelivered batch is judged again from them and completes the same reference.)
            for key, stream, progress, _ in advanced:
                if progress.profile_changed or stream.unsaved_reference is not None:
                    self._streams.pop(key, None)
            raise
        for key, stream, progress, _ in advanced:
            if key in revisions:
                revision = revisions[key]
                if revision is None:  # the partition moved on: the owner's state wins
                    log.warning(
                        "%s v%s: saved by another replica; this one's state is dropped", *key
                    )
                    self._streams.pop(key, None)
                    continue
                stream.revision = revision
            stream.state = progress.state
            stream.unsaved_reference = None
            if progress.profile_changed:
                stream.tracker.adopt(progress.profile)
        if saves and self._committed is not None:
            try:
                await self._committed()
            except Exception as error:  # committed rows wait for the relay's next pass
                log.warning("publishing the committed events failed, the relay retries: %s", error)

    async def _forget_stale(self, keys: list[tuple[str, int]]) -> None:
        """Drop cached streams whose episodes another replica saved since (it owned the
        model's partition for a while): they restart from the stored state."""
        stored = await self._episodes.revisions(keys)
        for key in keys:
            if stored.get(key, 0) != self._streams[key].revision:
                log.info("%s v%s: episodes changed elsewhere, reloading", *key)
                del self._streams[key]

    async def _stream(self, model: str, version: int) -> _Stream:
        key = (model, version)
        if key not in self._streams:
            profile = await self._references.get(self._registry(), model, version)
            cached = self._references.take_cached_scores(model, version)
            stored = await self._episodes.load(model, version)
            unsaved = None
            if stored.score_reference is not None:  # the database's wins over a cached one
                profile = profile.with_scores(stored.score_reference)
            elif cached is not None:
                unsaved = cached
                profile = profile.with_scores(cached)
            tracker = Tracker(profile, self._config)
            state = tracker.start(
                data=stored.episodes.get(AlertKind.DATA_DRIFT.value),
                score=stored.episodes.get(AlertKind.PREDICTION_DRIFT.value),
            )
            self._streams[key] = _Stream(tracker, state, stored.revision, unsaved)
        return self._streams[key]


def _score(event: PredictionMade | ValuePredicted, positive: str | None) -> float | None:
    """The number the score stream follows: a regressor's prediction, or a classifier's
    probability of its positive class (none without one)."""
    if isinstance(event, ValuePredicted):
        return event.predicted_value
    return event.probabilities.get(positive) if positive else None


Prediction = PredictionMade | ValuePredicted


def _wrong_kind(event: Prediction, profile: ReferenceProfile) -> str | None:
    """Refuse a number predicted for a classifier's version (it has a positive class): mixed
    into its score stream, it would corrupt the reference of probabilities."""
    if isinstance(event, ValuePredicted) and profile.positive_class is not None:
        return (
            f"model {event.model} v{event.model_version} is a classifier: value.predicted "
            "does not fit it"
        )
    return None


def _by_version(events: Sequence[Prediction]) -> dict[tuple[str, int], list[Prediction]]:
    groups: dict[tuple[str, int], list[Prediction]] = {}
    for event in events:
        groups.setdefault((event.model, event.model_version), []).append(event)
    return groups


def _signals(state: TrackerState) -> dict[str, EpisodeState]:
    return {
        AlertKind.DATA_DRIFT.value: state.data,
        AlertKind.PREDICTION_DRIFT.value: state.score,
    }


def _episodes_changed(before: TrackerState, after: TrackerState) -> bool:
    return (before.data, before.score) != (after.data, after.score)


def _events(progress: Progress, *, producer: str) -> list[Envelope]:
    profile: ReferenceProfile = progress.profile
    events: list[Envelope] = []
    reports = {}
    for tested in progress.windows:
        report = drift_reported(profile, tested, producer=producer)
        reports[id(tested)] = report
        events.append(report)
    for transition in progress.transitions:
        report_id = str(reports[id(transition.tested)].event_id)
        events.append(alert_event(profile, transition, producer=producer, report_id=report_id))
    return events


async def publish_committed(relay: OutboxRelay) -> None:
    """Publish every committed row now, so a batch's outputs are on the broker before its
    offsets are committed (in the steady state; the relay's own loop covers a failure)."""
    while await relay.publish_pending() > 0:
        pass

"""Composition root of the drift detector: predictions in, drift reports and alerts out.

The handler is an adapter: it groups a batch of ``prediction.made`` (a classifier's) or
``value.predicted`` (a regressor's) events by model version,
refuses events dated out of bounds (time windows only, against the wall clock it passes in),
encodes the rest against the version's profile (events off the schema are refused too: both go
to the dead-letter topic), lets each version's pure
:class:`~services.drift_detector.tracking.Tracker` advance, publishes the reports and alerts, and
only then keeps the new states, so a failed publish leaves nothing half-done and the redelivered
batch is judged again from the same state.

The score stream is a classifier's probability of its positive class, or a regressor's
``predicted_value``: the same tests, with a score reference collected from the version's first
live predictions either way (ADR 0008, ADR 0022).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from contracts.alerts import AlertKind
from contracts.envelope import Envelope, utc_now
from contracts.scoring import PredictionMade, ValuePredicted
from services.drift_detector.encoding import encode_rows
from services.drift_detector.episode_store import (
    DatabaseEpisodeStore,
    EpisodesMoved,
    EpisodeStore,
)
from services.drift_detector.migrations import HISTORY
from services.drift_detector.profiles import FileProfileStore, ProfileStore, ReferenceProfile
from services.drift_detector.references import References, ReferenceUnavailable
from services.drift_detector.reporting import alert_event, drift_reported
from services.drift_detector.settings import SERVICE, Settings
from services.drift_detector.tracking import Progress, Tracker, TrackerConfig, TrackerState
from services.runtime.consumer import Rejection
from services.runtime.database import create_engine, session_factory
from services.runtime.migrations import migrate
from services.runtime.publisher import Publisher
from services.runtime.readiness import database_check
from services.runtime.registry_client import RegistryClient
from services.runtime.serve import serve
from services.runtime.service import ServiceRuntime

__all__ = ["VersionStreams", "create_app", "main"]

Clock = Callable[[], datetime]

log = logging.getLogger(__name__)


@dataclass
class _Stream:
    tracker: Tracker
    state: TrackerState
    revision: int
    """The revision of the stored episodes this state continues."""


class VersionStreams:
    """The drift detector's handler of predictions: one tracked stream per model version."""

    def __init__(
        self,
        *,
        config: TrackerConfig,
        references: References,
        episodes: EpisodeStore,
        publisher: Publisher,
        registry: Callable[[], RegistryClient],
        clock: Clock = utc_now,
    ) -> None:
        self._config = config
        self._references = references
        self._episodes = episodes
        self._publisher = publisher
        self._registry = registry
        self._clock = clock
        self._streams: dict[tuple[str, int], _Stream] = {}

    async def on_predictions(
        self, events: list[PredictionMade] | list[ValuePredicted]
    ) -> list[Rejection]:
        """Judge a batch of predictions; refuse those that cannot be tested."""
        rejections: list[Rejection] = []
        outgoing: list[Envelope] = []
        advanced: list[tuple[tuple[str, int], _Stream, Progress]] = []
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
            outgoing += _events(progress, producer=SERVICE.value)
            advanced.append((key, stream, progress))
        await self._publisher.publish_many(outgoing)
        for key, stream, progress in advanced:
            await self._keep(key, stream, progress)
        return rejections

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
            tracker = Tracker(profile, self._config)
            stored = await self._episodes.load(model, version)
            state = tracker.start(
                data=stored.episodes.get(AlertKind.DATA_DRIFT.value),
                score=stored.episodes.get(AlertKind.PREDICTION_DRIFT.value),
            )
            self._streams[key] = _Stream(tracker, state, stored.revision)
        return self._streams[key]

    async def _keep(self, key: tuple[str, int], stream: _Stream, progress: Progress) -> None:
        before = stream.state
        stream.state = progress.state
        if progress.profile_changed:
            await self._references.update(progress.profile)
        if (before.data, before.score) != (progress.state.data, progress.state.score):
            signals = {
                AlertKind.DATA_DRIFT.value: progress.state.data,
                AlertKind.PREDICTION_DRIFT.value: progress.state.score,
            }
            try:
                stream.revision = await self._episodes.save(*key, signals, read=stream.revision)
            except EpisodesMoved as moved:  # the partition moved on: the owner's state wins
                log.warning("%s; this replica's state is dropped", moved)
                self._streams.pop(key, None)


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


def create_app(
    settings: Settings,
    *,
    registry: RegistryClient | None = None,
    profiles: ProfileStore | None = None,
    episodes: EpisodeStore | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """Build the drift detector (``registry`` and the stores may be given by tests)."""
    runtime = ServiceRuntime(SERVICE, settings)
    database_url = settings.resolved_database_url
    engine = create_engine(database_url)
    runtime.add_readiness_check("database", database_check(engine))
    clients: dict[str, RegistryClient] = {}
    if registry is not None:
        clients["registry"] = registry

    def current_registry() -> RegistryClient:
        return clients["registry"]

    streams = VersionStreams(
        config=settings.tracker_config(),
        references=References(
            profiles or FileProfileStore(settings.state_dir), max_rows=settings.max_reference_rows
        ),
        episodes=episodes or DatabaseEpisodeStore(session_factory(engine)),
        publisher=runtime.publisher,
        registry=current_registry,
        clock=clock,
    )
    runtime.consumer.on_batch(PredictionMade, streams.on_predictions)
    runtime.consumer.on_batch(ValuePredicted, streams.on_predictions)

    @asynccontextmanager
    async def resources() -> AsyncIterator[None]:
        url = make_url(database_url)
        if url.drivername.startswith("sqlite") and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        try:
            await migrate(engine, HISTORY)
            if "registry" in clients:
                yield
                return
            async with httpx.AsyncClient(timeout=30.0) as http:
                token = settings.service_token
                clients["registry"] = RegistryClient(
                    http, settings.registry_url, token=token.get_secret_value() if token else None
                )
                try:
                    yield
                finally:
                    clients.pop("registry", None)
        finally:
            await engine.dispose()

    app = runtime.http_app(title="Vigil drift detector", resources=resources)
    app.state.runtime = runtime  # tests drive the broker through it
    return app


def main() -> None:
    """Run the drift detector in this process."""
    settings = Settings()
    serve(create_app(settings), settings, service=SERVICE.value)

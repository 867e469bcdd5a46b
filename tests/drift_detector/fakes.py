"""Hand-written fakes of the drift detector's ports, and a registry double serving one version."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from contracts import DatasetRef, Envelope, ModelVersionRecord, MonitoringSpec
from contracts.envelope import utc_now
from services.drift_detector.episode_store import (
    EpisodeStore,
    Save,
    ScoreReferenceTaken,
    StoredEpisodes,
)
from services.drift_detector.profiles import ReferenceProfile
from services.drift_detector.references import References
from services.drift_detector.service import Clock, VersionStreams
from services.drift_detector.settings import Settings
from services.runtime import KafkaSettings, RegistryClient
from tests.drift_detector.data import digest_of, service_spec
from tests.factories import make_version_record


class InMemoryProfileStore:
    def __init__(self) -> None:
        self.profiles: dict[tuple[str, int], ReferenceProfile] = {}
        self.saves = 0

    def load(self, model: str, version: int) -> ReferenceProfile | None:
        return self.profiles.get((model, version))

    def save(self, profile: ReferenceProfile) -> None:
        self.saves += 1
        self.profiles[(profile.model, profile.version)] = profile


class InMemoryEpisodeStore:
    """Episode states and an outbox in memory: ``events`` are the events committed with them."""

    def __init__(self) -> None:
        self.episodes: dict[tuple[str, int], StoredEpisodes] = {}
        self.events: list[Envelope] = []
        self.fail_next = False

    async def load(self, model: str, version: int) -> StoredEpisodes:
        return self.episodes.get((model, version), StoredEpisodes())

    async def revisions(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return {key: self.episodes[key].revision for key in keys if key in self.episodes}

    async def commit(self, saves: Sequence[Save]) -> dict[tuple[str, int], int | None]:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database unreachable")
        revisions: dict[tuple[str, int], int | None] = {}
        for save in saves:  # all or nothing, as the database's transaction
            stored = self.episodes.get((save.model, save.version), StoredEpisodes())
            fenced = stored.revision != save.read
            if not fenced and save.score_reference is not None and stored.score_reference:
                raise ScoreReferenceTaken(f"{save.model} v{save.version}: one is stored already")
        for save in saves:
            key = (save.model, save.version)
            stored = self.episodes.get(key, StoredEpisodes())
            if stored.revision != save.read:
                revisions[key] = None
                continue
            reference = save.score_reference or stored.score_reference
            self.episodes[key] = StoredEpisodes(dict(save.episodes), save.read + 1, reference)
            self.events.extend(save.events)
            revisions[key] = save.read + 1
        return revisions


class Registry:
    """The registry's read API for one model version and its training data (a test double)."""

    def __init__(
        self, model: str, data: bytes, *, version: int = 1, spec: MonitoringSpec | None = None
    ) -> None:
        self.data = data
        self.record: ModelVersionRecord = make_version_record(
            model=model,
            version=version,
            spec=spec or service_spec(),
            dataset=DatasetRef(name=model, version="1", digest=digest_of(data)),
        )
        self.requests: list[str] = []
        self.unavailable_for_s = 0.0
        """For this long from the first request, answer 503, as a registry cut off from its
        identity provider does (timed from the first request, not from set-up, so a slow start
        on a loaded machine cannot let the outage pass unseen)."""
        self.unavailable_answers = 0
        self._first_request_at: float | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append(path)
        now = time.monotonic()
        if self._first_request_at is None:
            self._first_request_at = now
        if now < self._first_request_at + self.unavailable_for_s:
            self.unavailable_answers += 1
            return httpx.Response(503, json={"detail": "identity provider unreachable"})
        if path == f"/models/{self.record.model}/versions/{self.record.version}":
            return httpx.Response(200, content=self.record.model_dump_json())
        if path == f"/datasets/{self.record.dataset.digest}":
            return httpx.Response(200, content=self.data)
        return httpx.Response(404, json={"detail": "not found"})

    def client(self) -> RegistryClient:
        return RegistryClient(
            httpx.AsyncClient(transport=httpx.MockTransport(self)), "http://registry.invalid"
        )


def version_streams(
    registry: Registry,
    episodes: EpisodeStore,
    profiles: InMemoryProfileStore,
    clock: Clock = utc_now,
    **overrides: Any,
) -> VersionStreams:
    """The detector's use cases on the registry double, with windows small enough for a test
    (500 rows, judged from 100, the score's reference from 300); ``overrides`` are settings."""
    fields: dict[str, Any] = {
        "window_size": 500,
        "min_window_rows": 100,
        "score_reference_rows": 300,
    }
    settings = Settings(kafka=KafkaSettings(), **(fields | overrides))
    client = registry.client()
    return VersionStreams(
        config=settings.tracker_config(),
        references=References(profiles, max_rows=5000),
        episodes=episodes,
        registry=lambda: client,
        clock=clock,
    )

"""The drift detector in a process of its own that SIGKILLs itself while committing the batch
that decided an alert, or the one that completed the score reference (for kill tests).

``python -m tests.drift_detector.killable_process MODEL KILL_AT``: settings from the environment
(``VIGIL_DRIFT_DETECTOR_*``, ``VIGIL_KAFKA_*``), the registry a double serving ``MODEL`` v1 with
the training data of seed 0. ``KILL_AT``: ``before-commit`` (the batch decided the alert, nothing
is saved yet), ``after-commit`` (the states and events are saved, nothing is published and the
batch's offsets are not committed), ``reference-before-commit`` / ``reference-after-commit`` (the
same around the batch that completed the score reference), or ``never``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterable, Sequence

import numpy as np

from contracts import AlertRaised
from services.drift_detector.app import create_app
from services.drift_detector.episode_store import DatabaseEpisodeStore, Save, StoredEpisodes
from services.drift_detector.settings import SERVICE, Settings
from services.runtime.database import create_engine, session_factory
from services.runtime.serve import serve
from tests.drift_detector.data import training_csv
from tests.drift_detector.fakes import Registry


class KilledWhileCommitting:
    """The database store, killing the process around the first commit that raises an alert
    (or that stores the score reference)."""

    def __init__(self, store: DatabaseEpisodeStore, kill_at: str) -> None:
        self._store = store
        self._kill_at = kill_at

    async def load(self, model: str, version: int) -> StoredEpisodes:
        return await self._store.load(model, version)

    async def revisions(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return await self._store.revisions(keys)

    async def commit(self, saves: Sequence[Save]) -> dict[tuple[str, int], int | None]:
        if self._kill_at.startswith("reference-"):
            chosen = any(save.score_reference is not None for save in saves)
        else:
            chosen = any(isinstance(e, AlertRaised) for save in saves for e in save.events)
        if chosen and self._kill_at.endswith("before-commit"):
            _die()
        revisions = await self._store.commit(saves)
        if chosen and self._kill_at.endswith("after-commit"):
            _die()
        return revisions


def _die() -> None:
    sys.stdout.write("killing myself\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main(model: str, kill_at: str) -> None:
    settings = Settings()
    store = DatabaseEpisodeStore(session_factory(create_engine(settings.resolved_database_url)))
    registry = Registry(model, training_csv(np.random.default_rng(0)))
    app = create_app(
        settings, registry=registry.client(), episodes=KilledWhileCommitting(store, kill_at)
    )
    serve(app, settings, service=SERVICE.value)


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""Keeping each model version's episode state across restarts.

An open episode must survive a restart: otherwise its recovery is never sent and the incident it
opened never resolves. The state is small and changes only when an episode opens, grows or
closes, so one JSON file per model version (written atomically) is enough.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from services.drift_detector.episodes import Episode, EpisodeState

__all__ = ["EpisodeStore", "FileEpisodeStore", "VersionEpisodes"]

VersionEpisodes = dict[str, EpisodeState]
"""Episode state per signal (alert kind) of one model version."""


class EpisodeStore(Protocol):
    """Where episode states are kept."""

    def load(self, model: str, version: int) -> VersionEpisodes:
        """Return the stored states of a model version (empty if none)."""
        ...

    def save(self, model: str, version: int, episodes: VersionEpisodes) -> None:
        """Store the states of a model version."""
        ...


class FileEpisodeStore:
    """Episode states as ``{state_dir}/drift/episodes/{model}/v{version}.json``."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / "drift" / "episodes"

    def path(self, model: str, version: int) -> Path:
        """Return the file of a model version."""
        return self.root / model / f"v{version}.json"

    def load(self, model: str, version: int) -> VersionEpisodes:
        path = self.path(model, version)
        if not path.exists():
            return {}
        document = json.loads(path.read_text())
        return {signal: _state_from(value) for signal, value in document.items()}

    def save(self, model: str, version: int, episodes: VersionEpisodes) -> None:
        path = self.path(model, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {signal: _state_to(state) for signal, state in episodes.items()}
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as file:
                json.dump(document, file)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _state_to(state: EpisodeState) -> dict[str, Any]:
    episode = state.episode
    return {
        "drifted_streak": state.drifted_streak,
        "clean_streak": state.clean_streak,
        "episode": None
        if episode is None
        else {
            "fingerprint": episode.fingerprint,
            "features": list(episode.features),
            "seen": list(episode.seen),
            "started_at": episode.started_at.isoformat(),
            "windows": episode.windows,
        },
    }


def _state_from(document: dict[str, Any]) -> EpisodeState:
    episode = document["episode"]
    return EpisodeState(
        drifted_streak=document["drifted_streak"],
        clean_streak=document["clean_streak"],
        episode=None
        if episode is None
        else Episode(
            fingerprint=episode["fingerprint"],
            features=tuple(episode["features"]),
            seen=tuple(episode["seen"]),
            started_at=datetime.fromisoformat(episode["started_at"]),
            windows=episode["windows"],
        ),
    )

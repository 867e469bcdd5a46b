"""Keeping each model version's episode state in the drift detector's database.

An open episode must outlive the process that opened it: otherwise its recovery is never sent
and the incident it opened never resolves. With several replicas the next owner of a model's
partition picks it up from the database (SQLite for one process, PostgreSQL shared by replicas;
ADR 0017). The state is small and changes only when an episode opens, grows or closes.

Each model version's row carries a ``revision``, raised on every save. A save names the revision
it read and fails with :class:`EpisodesMoved` if another replica saved since, so a replica that
lost the partition in a rebalance (and still runs its last batch) cannot overwrite the new
owner's state; and a replica compares revisions before each batch to notice that its cached
state is stale (:meth:`DatabaseEpisodeStore.revisions`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import JSON, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Column, Field, SQLModel, col, select

from contracts.envelope import utc_now
from services.drift_detector.episodes import Episode, EpisodeState
from services.runtime.database import Sessions, UtcDateTime

__all__ = [
    "TABLES",
    "DatabaseEpisodeStore",
    "EpisodeRow",
    "EpisodeStore",
    "EpisodesMoved",
    "StoredEpisodes",
    "VersionEpisodes",
]

VersionEpisodes = dict[str, EpisodeState]
"""Episode state per signal (alert kind) of one model version."""

VersionKey = tuple[str, int]


class EpisodesMoved(Exception):
    """Another replica saved the version's episodes since this one read them."""


@dataclass(frozen=True)
class StoredEpisodes:
    """A model version's episode states and the revision they were read at (0: none saved)."""

    episodes: VersionEpisodes = field(default_factory=dict)
    revision: int = 0


class EpisodeStore(Protocol):
    """Where episode states are kept."""

    async def load(self, model: str, version: int) -> StoredEpisodes:
        """Return the stored states of a model version (empty, revision 0, if none)."""
        ...

    async def revisions(self, keys: Iterable[VersionKey]) -> dict[VersionKey, int]:
        """Return the stored revision of each model version (absent: none saved)."""
        ...

    async def save(self, model: str, version: int, episodes: VersionEpisodes, *, read: int) -> int:
        """Store the states read at revision ``read``; return the new revision.

        Raises :class:`EpisodesMoved` if the stored revision is no longer ``read``.
        """
        ...


class EpisodeRow(SQLModel, table=True):
    """One model version's drift episode states (one entry per signal)."""

    __tablename__ = "drift_episodes"

    model: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    revision: int = Field(description="Raised by every save; a save names the one it read.")
    states: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)


TABLES: tuple[type[SQLModel], ...] = (EpisodeRow,)
"""Every table of the drift detector's database."""


class DatabaseEpisodeStore:
    """Episode states in the ``drift_episodes`` table, saved with a compare-and-set on revision."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def load(self, model: str, version: int) -> StoredEpisodes:
        async with self._sessions() as session:
            row = await session.get(EpisodeRow, (model, version))
            if row is None:
                return StoredEpisodes()
            states = {signal: _state_from(value) for signal, value in row.states.items()}
            return StoredEpisodes(states, row.revision)

    async def revisions(self, keys: Iterable[VersionKey]) -> dict[VersionKey, int]:
        wanted = set(keys)
        if not wanted:
            return {}
        models = {model for model, _ in wanted}
        async with self._sessions() as session:
            rows = await session.exec(
                select(EpisodeRow.model, EpisodeRow.version, EpisodeRow.revision).where(
                    col(EpisodeRow.model).in_(models)
                )
            )
            return {
                (model, version): revision
                for model, version, revision in rows.all()
                if (model, version) in wanted
            }

    async def save(self, model: str, version: int, episodes: VersionEpisodes, *, read: int) -> int:
        states = {signal: _state_to(state) for signal, state in episodes.items()}
        try:
            async with self._sessions() as session, session.begin():
                if read == 0:  # the first save: two replicas inserting collide on the key
                    session.add(EpisodeRow(model=model, version=version, revision=1, states=states))
                    await session.flush()
                    return 1
                changed = await session.exec(
                    update(EpisodeRow)
                    .where(col(EpisodeRow.model) == model)
                    .where(col(EpisodeRow.version) == version)
                    .where(col(EpisodeRow.revision) == read)
                    .values(revision=read + 1, states=states, updated_at=utc_now())
                )
                if changed.rowcount != 1:
                    raise EpisodesMoved(
                        f"{model} v{version}: saved by another replica since {read}"
                    )
                return read + 1
        except IntegrityError as error:
            raise EpisodesMoved(f"{model} v{version}: saved by another replica") from error


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

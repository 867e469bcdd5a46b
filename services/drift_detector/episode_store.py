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

A version's score reference (its first live scores, ADR 0008) is kept here too, written once
with the save of the batch that completed it, so it is fenced like that save: the first replica
to commit one sets it for every replica and restart. Were it collected again by the next owner
of the partition, it would be gathered from whatever traffic flows then, shifted traffic
included, and the prediction drift it should see would become the baseline.

The events a batch decided (drift reports, alerts, recoveries) are staged in the transactional
outbox (:mod:`services.runtime.outbox`) in the transaction that saves the states they follow
from (:meth:`DatabaseEpisodeStore.commit`): a replica killed before the commit published nothing
and saved nothing (the redelivered batch decides again), one killed after it left both (the
relay publishes them, the redelivered batch finds the episode already open; a report decided
again is left out by its derived id), and a fenced replica's events are rolled back with its
save. So an episode's alert is published once in
effect; a relay killed mid-pass publishes a row again with its (derived) event id, which the
incident log discards.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from sqlalchemy import JSON, LargeBinary, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Column, Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.envelope import Envelope, utc_now
from services.drift_detector.episodes import Episode, EpisodeState
from services.runtime.database import Sessions, UtcDateTime
from services.runtime.outbox import OUTBOX_TABLES, stage_once

__all__ = [
    "TABLES",
    "DatabaseEpisodeStore",
    "EpisodeRow",
    "EpisodeStore",
    "EpisodesMoved",
    "Save",
    "ScoreReferenceRow",
    "ScoreReferenceTaken",
    "StoredEpisodes",
    "VersionEpisodes",
]

VersionEpisodes = dict[str, EpisodeState]
"""Episode state per signal (alert kind) of one model version."""

VersionKey = tuple[str, int]


class EpisodesMoved(Exception):
    """Another replica saved the version's episodes since this one read them."""


class ScoreReferenceTaken(Exception):
    """A version's score reference was proposed where one is stored already; nothing of the
    commit was written."""


@dataclass(frozen=True)
class Save:
    """One model version's part of a batch: its states read at revision ``read``, and the events
    they were decided with (published only if the states are saved)."""

    model: str
    version: int
    episodes: VersionEpisodes
    read: int
    events: Sequence[Envelope] = ()
    score_reference: tuple[float, ...] | None = None
    """The version's score reference, when this batch completed it (stored once)."""


@dataclass(frozen=True)
class StoredEpisodes:
    """A model version's episode states and the revision they were read at (0: none saved),
    and its score reference once one was saved."""

    episodes: VersionEpisodes = field(default_factory=dict)
    revision: int = 0
    score_reference: tuple[float, ...] | None = None


class EpisodeStore(Protocol):
    """Where episode states are kept."""

    async def load(self, model: str, version: int) -> StoredEpisodes:
        """Return the stored states and score reference of a model version (empty, revision 0,
        if none)."""
        ...

    async def revisions(self, keys: Iterable[VersionKey]) -> dict[VersionKey, int]:
        """Return the stored revision of each model version (absent: none saved)."""
        ...

    async def commit(self, saves: Sequence[Save]) -> dict[VersionKey, int | None]:
        """Store every version's states (and score reference) and stage their events, all or
        nothing; return each version's new revision, or ``None`` for a version another replica
        saved since its ``read`` (its states and events are left out, the others are kept)."""
        ...


class EpisodeRow(SQLModel, table=True):
    """One model version's drift episode states (one entry per signal)."""

    __tablename__ = "drift_episodes"

    model: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    revision: int = Field(description="Raised by every save; a save names the one it read.")
    states: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)


class ScoreReferenceRow(SQLModel, table=True):
    """A model version's score reference: its first live scores, in the order they came (or
    sorted, for one carried over from a replica's profile cache)."""

    __tablename__ = "drift_score_references"

    model: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    scores: bytes = Field(
        sa_type=LargeBinary, description="Little-endian float64 values, exact to the bit."
    )
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)


TABLES: tuple[type[SQLModel], ...] = (EpisodeRow, ScoreReferenceRow, *OUTBOX_TABLES)
"""Every table of the drift detector's database."""


class DatabaseEpisodeStore:
    """Episode states in the ``drift_episodes`` table, saved with a compare-and-set on revision."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def load(self, model: str, version: int) -> StoredEpisodes:
        async with self._sessions() as session:
            # The revision before the reference: a reference committed between the two reads
            # comes with a later revision, so this replica's next save is fenced and reloads.
            row = await session.get(EpisodeRow, (model, version))
            reference = await session.get(ScoreReferenceRow, (model, version))
            scores = None if reference is None else _scores_from(reference.scores)
            if row is None:
                return StoredEpisodes(score_reference=scores)
            states = {signal: _state_from(value) for signal, value in row.states.items()}
            return StoredEpisodes(states, row.revision, scores)

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

    async def commit(self, saves: Sequence[Save]) -> dict[VersionKey, int | None]:
        if not saves:
            return {}
        revisions: dict[VersionKey, int | None] = {}
        async with self._sessions() as session, session.begin():
            for save in saves:
                saved = await _compare_and_set(session, save)
                revisions[(save.model, save.version)] = saved
                if saved is None:
                    continue
                if save.score_reference is not None:
                    await _add_score_reference(
                        session, save.model, save.version, save.score_reference
                    )
                await stage_once(session, save.events)
        return revisions

    async def save(
        self,
        model: str,
        version: int,
        episodes: VersionEpisodes,
        *,
        read: int,
        events: Sequence[Envelope] = (),
    ) -> int:
        """Store one version's states (and stage its events); return the new revision.

        Raises :class:`EpisodesMoved` if the stored revision is no longer ``read``.
        """
        saved = (await self.commit([Save(model, version, episodes, read, events)]))[
            (model, version)
        ]
        if saved is None:
            raise EpisodesMoved(f"{model} v{version}: saved by another replica since {read}")
        return saved


async def _compare_and_set(session: AsyncSession, save: Save) -> int | None:
    """Write a version's states if its revision is still the one read; the new revision, or
    ``None`` (another replica saved since: nothing written)."""
    states = {signal: _state_to(state) for signal, state in save.episodes.items()}
    if save.read == 0:  # the first save: of two replicas inserting, one creates the row
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        row = {
            "model": save.model,
            "version": save.version,
            "revision": 1,
            "states": states,
            "updated_at": utc_now(),
        }
        inserted = await session.exec(
            dialect.insert(EpisodeRow)
            .values(row)
            .on_conflict_do_nothing(index_elements=["model", "version"])
            .returning(col(EpisodeRow.revision))
        )
        return 1 if inserted.first() is not None else None
    changed = await session.exec(
        update(EpisodeRow)
        .where(col(EpisodeRow.model) == save.model)
        .where(col(EpisodeRow.version) == save.version)
        .where(col(EpisodeRow.revision) == save.read)
        .values(revision=save.read + 1, states=states, updated_at=utc_now())
    )
    return save.read + 1 if changed.rowcount == 1 else None


async def _add_score_reference(
    session: AsyncSession, model: str, version: int, scores: Sequence[float]
) -> None:
    """Store a version's score reference. Not "if absent": one is only ever proposed from a
    revision read without one, so a stored one means the fencing failed; better to fail the
    batch than to judge against a reference the other replicas do not share."""
    session.add(ScoreReferenceRow(model=model, version=version, scores=_scores_to(scores)))
    try:
        await session.flush()
    except IntegrityError as error:
        raise ScoreReferenceTaken(
            f"{model} v{version}: a score reference is stored already"
        ) from error


def _scores_to(scores: Sequence[float]) -> bytes:
    return np.asarray(scores, dtype="<f8").tobytes()


def _scores_from(data: bytes) -> tuple[float, ...]:
    return tuple(np.frombuffer(data, dtype="<f8").tolist())


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
            "opening": episode.opening,
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
            # Saved before episodes named their opening window: the decision's time names it.
            opening=episode.get("opening", episode["started_at"]),
        ),
    )

"""Loading the monitor's state from its database, and saving what changed, in bulk.

Both run inside the caller's transaction: the handler commits the state change, the handled
event ids and the staged outputs together, so a crash leaves either all of them or none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.monitor.comparison import outcome_from_dict
from services.monitor.domain import Changes, ModelClock, Pairing, Snapshot
from services.monitor.estimation import Reference
from services.monitor.join import PendingKey, PendingLabel, PendingPrediction
from services.monitor.loss_estimation import LossReference
from services.monitor.ownership import ModelRevisionRow
from services.monitor.residuals import ResidualReference
from services.monitor.tables import (
    ClockRow,
    ComparisonOutcomeRow,
    EpisodeRow,
    PairingRow,
    PendingRow,
    ReferenceRow,
    ResidualReferenceRow,
    WindowRow,
)
from services.monitor.thresholds import Episode
from services.monitor.windows import Window
from services.runtime import OUTBOX_TABLES, HandledBatch

__all__ = ["TABLES", "load_snapshot", "save_changes"]

TABLES: list[type[SQLModel]] = [
    PendingRow,
    WindowRow,
    EpisodeRow,
    ClockRow,
    PairingRow,
    ComparisonOutcomeRow,
    ReferenceRow,
    ResidualReferenceRow,
    HandledBatch,
    ModelRevisionRow,
    *OUTBOX_TABLES,
]
"""Every table the monitor's database holds."""

_PREDICTION, _LABEL = "p", "l"


def _table(model: type[SQLModel]) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]  # set by SQLModel for table=True classes


_pending = _table(PendingRow)
_windows = _table(WindowRow)
_episodes = _table(EpisodeRow)
_clocks = _table(ClockRow)
_pairings = _table(PairingRow)
_outcomes = _table(ComparisonOutcomeRow)
_references = _table(ReferenceRow)
_residual_references = _table(ResidualReferenceRow)


async def load_snapshot(session: AsyncSession) -> Snapshot:
    """Read everything the monitor restores at start."""
    snapshot = Snapshot()
    for pending in (await session.exec(select(PendingRow))).all():
        snapshot.pending.append(_entry(pending))
    for window in (await session.exec(select(WindowRow))).all():
        snapshot.windows.append(Window.from_dict(json.loads(window.state)))
    for episode in (await session.exec(select(EpisodeRow))).all():
        snapshot.episodes[episode.fingerprint] = Episode.from_dict(json.loads(episode.state))
    for clock in (await session.exec(select(ClockRow))).all():
        snapshot.clocks[clock.model] = ModelClock(clock.watermark, clock.expired_labels)
    for pairing in (await session.exec(select(PairingRow))).all():
        snapshot.pairings[pairing.model] = Pairing(
            champion_version=pairing.champion_version,
            challenger_version=pairing.challenger_version,
            started_at=pairing.started_at,
            alerted=pairing.alerted,
            next_seq=pairing.next_seq,
        )
    for reference in (await session.exec(select(ReferenceRow))).all():
        state = json.loads(reference.state)
        snapshot.references[(reference.model, reference.model_version)] = (
            LossReference.from_dict(state)
            if state.get("kind") == "loss"
            else Reference.from_dict(state)
        )
    for gathered in (await session.exec(select(ResidualReferenceRow))).all():
        key = (gathered.model, gathered.model_version)
        snapshot.residual_references[key] = ResidualReference.from_dict(json.loads(gathered.state))
    outcomes = select(ComparisonOutcomeRow).order_by(col(ComparisonOutcomeRow.seq))
    for row in (await session.exec(outcomes)).all():
        owner = snapshot.pairings.get(row.model)
        if owner is not None and owner.versions == (row.champion_version, row.challenger_version):
            owner.side(row.side).append((row.seq, outcome_from_dict(json.loads(row.payload))))
    return snapshot


async def save_changes(session: AsyncSession, changes: Changes) -> None:
    """Write what changed: deletions first, so a key removed and added again is replaced."""
    await _delete_pending(session, changes.join.removed)
    await _insert(session, _pending, [_pending_row(entry) for entry in changes.join.added])
    await _replace(
        session,
        _windows,
        ("model", "model_version", "variant"),
        [
            (
                {"model": s.model, "model_version": s.version, "variant": s.variant},
                None if w is None else {"state": json.dumps(w.to_dict())},
            )
            for s, w in changes.windows.items()
        ],
    )
    await _replace(
        session,
        _episodes,
        ("fingerprint",),
        [
            ({"fingerprint": fp}, {"state": json.dumps(e.to_dict())})
            for fp, e in changes.episodes.items()
        ],
    )
    await _replace(
        session,
        _clocks,
        ("model",),
        [
            ({"model": m}, {"watermark": c.watermark, "expired_labels": c.expired_labels})
            for m, c in changes.clocks.items()
        ],
    )
    await _replace(
        session,
        _references,
        ("model", "model_version"),
        [
            ({"model": m, "model_version": v}, {"state": json.dumps(r.to_dict())})
            for (m, v), r in changes.references.items()
        ],
    )
    await _replace(
        session,
        _residual_references,
        ("model", "model_version"),
        [
            ({"model": m, "model_version": v}, {"state": json.dumps(r.to_dict())})
            for (m, v), r in changes.residual_references.items()
        ],
    )
    await _save_pairings(session, changes)


async def _save_pairings(session: AsyncSession, changes: Changes) -> None:
    if changes.ended_pairings:
        await session.exec(
            delete(_outcomes).where(
                _outcomes.c.model == bindparam("m"),
                _outcomes.c.champion_version == bindparam("a"),
                _outcomes.c.challenger_version == bindparam("b"),
            ),
            params=[{"m": m, "a": a, "b": b} for m, a, b in changes.ended_pairings],
        )
    await _replace(
        session,
        _pairings,
        ("model",),
        [
            (
                {"model": model},
                None
                if p is None
                else {
                    "champion_version": p.champion_version,
                    "challenger_version": p.challenger_version,
                    "started_at": p.started_at,
                    "alerted": p.alerted,
                    "next_seq": p.next_seq,
                },
            )
            for model, p in changes.pairings.items()
        ],
    )
    await _insert(
        session,
        _outcomes,
        [
            {
                "model": model,
                "champion_version": champion,
                "challenger_version": challenger,
                "side": side,
                "seq": seq,
                "payload": json.dumps(outcome.to_dict()),
            }
            for model, champion, challenger, side, seq, outcome in changes.outcomes
        ],
    )
    # Keep storage as bounded as memory: drop outcomes that fell out of a side's newest samples.
    floors = [
        {"m": model, "a": p.champion_version, "b": p.challenger_version, "s": side, "f": q[0][0]}
        for model, p in changes.pairings.items()
        if p is not None
        for side, q in (("champion", p.champion), ("challenger", p.challenger))
        if q
    ]
    if floors:
        await session.exec(
            delete(_outcomes).where(
                _outcomes.c.model == bindparam("m"),
                _outcomes.c.champion_version == bindparam("a"),
                _outcomes.c.challenger_version == bindparam("b"),
                _outcomes.c.side == bindparam("s"),
                _outcomes.c.seq < bindparam("f"),
            ),
            params=floors,
        )


def _entry(row: PendingRow) -> PendingPrediction | PendingLabel:
    payload = json.loads(row.payload)
    if row.side == _LABEL:
        # A regressor's truth is stored as {"value": number}, a class as {"label": name}.
        truth = float(payload["value"]) if "value" in payload else payload["label"]
        return PendingLabel(row.model, row.request_id, row.occurred_at, truth)
    if "predicted_value" in payload:
        return PendingPrediction(
            model=row.model,
            request_id=row.request_id,
            version=row.model_version,
            variant=row.variant,
            occurred_at=row.occurred_at,
            predicted_class=None,
            probabilities={},
            confidence=None,
            predicted_value=float(payload["predicted_value"]),
            features=payload.get("features"),
        )
    return PendingPrediction(
        model=row.model,
        request_id=row.request_id,
        version=row.model_version,
        variant=row.variant,
        occurred_at=row.occurred_at,
        predicted_class=payload["predicted_class"],
        probabilities=payload["probabilities"],
        confidence=payload["confidence"],
    )


def _pending_row(entry: PendingPrediction | PendingLabel) -> dict[str, Any]:
    model, request_id, version, variant = entry.key
    payload: dict[str, Any]
    if isinstance(entry, PendingLabel):
        side = _LABEL
        payload = {"value": entry.label} if entry.is_value else {"label": entry.label}
    elif entry.predicted_value is not None:
        side, payload = _PREDICTION, {"predicted_value": entry.predicted_value}
        if entry.features is not None:  # while the version's loss reference gathers
            payload["features"] = dict(entry.features)
    else:
        side = _PREDICTION
        payload = {
            "predicted_class": entry.predicted_class,
            "probabilities": dict(entry.probabilities),
            "confidence": entry.confidence,
        }
    return {
        "model": model,
        "request_id": request_id,
        "model_version": version,
        "variant": variant,
        "side": side,
        "occurred_at": entry.occurred_at,
        "payload": json.dumps(payload),
    }


async def _delete_pending(session: AsyncSession, keys: Sequence[PendingKey]) -> None:
    if not keys:
        return
    await session.exec(
        delete(_pending).where(
            _pending.c.model == bindparam("m"),
            _pending.c.request_id == bindparam("r"),
            _pending.c.model_version == bindparam("v"),
            _pending.c.variant == bindparam("s"),
        ),
        params=[{"m": m, "r": r, "v": v, "s": s} for m, r, v, s in keys],
    )


async def _insert(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.exec(insert(table), params=rows)


async def _replace(
    session: AsyncSession,
    table: Table,
    key_columns: tuple[str, ...],
    rows: Iterable[tuple[dict[str, Any], dict[str, Any] | None]],
) -> None:
    """Delete each keyed row, then insert the new value of those that still exist."""
    rows = list(rows)
    if not rows:
        return
    await session.exec(
        delete(table).where(*(table.c[name] == bindparam(f"k_{name}") for name in key_columns)),
        params=[{f"k_{name}": key[name] for name in key_columns} for key, _ in rows],
    )
    await _insert(session, table, [key | value for key, value in rows if value is not None])

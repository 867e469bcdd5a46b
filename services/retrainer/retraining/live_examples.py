"""The retrainer's own store of labelled live data: served predictions joined with their labels.

Predictions and labels arrive on different topics in any order; each is an upsert of one row
keyed by (model, request id), so the join needs no waiting list and a redelivered event writes
the same values again (idempotent without recording event ids). Shadow predictions carry the same
features as the served one and probe requests are synthetic: neither is kept. A regressor's
``value.predicted`` and ``value.recorded`` join the same way; its true value is kept as text in
the label column (``repr`` of the float), which
:func:`~services.retrainer.retraining.training_data.label_text` reads back. The store is
bounded: the newest ``max_per_model`` labelled rows per model, and unlabelled rows for at most
``unlabelled_ttl``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from contracts.feedback import LabelRecorded, ValueRecorded
from contracts.scoring import PredictionMade, ValuePredicted
from contracts.scoring_api import PROBE_REQUEST_ID_PREFIX
from services.retrainer.retraining.tables import LiveExampleRow
from services.retrainer.retraining.training_data import LiveExample
from services.runtime import Sessions

__all__ = ["LiveExamples"]


class LiveExamples:
    """Upserts predictions and labels; reads labelled examples; prunes to its bounds."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        dialect: str,
        max_per_model: int,
        unlabelled_ttl: timedelta,
    ) -> None:
        self._sessions = sessions
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._max_per_model = max_per_model
        self._unlabelled_ttl = unlabelled_ttl

    async def add_predictions(
        self, events: Sequence[PredictionMade | ValuePredicted], now: datetime
    ) -> None:
        """Keep the features of served, non-probe predictions."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for event in events:
            if not event.served or event.request_id.startswith(PROBE_REQUEST_ID_PREFIX):
                continue
            rows[(event.model, event.request_id)] = {
                "model": event.model,
                "request_id": event.request_id,
                "features": json.dumps(event.features, sort_keys=True),
                "seen_at": now,
            }
        if rows:
            statement = self._insert(LiveExampleRow).values(list(rows.values()))
            statement = statement.on_conflict_do_update(
                index_elements=["model", "request_id"],
                set_={"features": statement.excluded.features},
            )
            await self._execute(statement)

    async def add_labels(
        self, events: Sequence[LabelRecorded | ValueRecorded], now: datetime
    ) -> None:
        """Keep the labels, a class or a true value (the last one wins if one is corrected)."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for event in events:
            rows[(event.model, event.request_id)] = {
                "model": event.model,
                "request_id": event.request_id,
                "label": (
                    event.label if isinstance(event, LabelRecorded) else repr(float(event.value))
                ),
                "seen_at": now,
                "labelled_at": event.occurred_at,
            }
        if rows:
            statement = self._insert(LiveExampleRow).values(list(rows.values()))
            statement = statement.on_conflict_do_update(
                index_elements=["model", "request_id"],
                set_={
                    "label": statement.excluded.label,
                    "labelled_at": statement.excluded.labelled_at,
                },
            )
            await self._execute(statement)

    async def _execute(self, statement: Any) -> None:
        async with self._sessions() as session, session.begin():
            await session.exec(statement)

    async def labelled(self, model: str) -> list[LiveExample]:
        """Return a model's newest labelled examples (up to the bound), oldest first."""
        if self._max_per_model == 0:
            return []
        query = (
            select(LiveExampleRow)
            .where(
                LiveExampleRow.model == model,
                col(LiveExampleRow.features).is_not(None),
                col(LiveExampleRow.label).is_not(None),
            )
            .order_by(col(LiveExampleRow.labelled_at).desc(), col(LiveExampleRow.request_id).desc())
            .limit(self._max_per_model)
        )
        async with self._sessions() as session:
            rows = (await session.exec(query)).all()
        return [
            LiveExample(row.request_id, json.loads(row.features or "{}"), row.label or "")
            for row in reversed(rows)
        ]

    async def count(self, model: str) -> tuple[int, int]:
        """Return how many rows a model has: (labelled with features, all)."""
        async with self._sessions() as session:
            total = (
                await session.exec(select(func.count()).where(LiveExampleRow.model == model))
            ).one()
            joined = (
                await session.exec(
                    select(func.count()).where(
                        LiveExampleRow.model == model,
                        col(LiveExampleRow.features).is_not(None),
                        col(LiveExampleRow.label).is_not(None),
                    )
                )
            ).one()
        return int(joined), int(total)

    async def prune(self, now: datetime) -> int:
        """Drop unlabelled rows past their time to live and labelled rows beyond the bound."""
        removed = 0
        async with self._sessions() as session, session.begin():
            stale = await session.exec(
                delete(LiveExampleRow).where(
                    col(LiveExampleRow.labelled_at).is_(None)
                    | col(LiveExampleRow.features).is_(None),
                    col(LiveExampleRow.seen_at) < now - self._unlabelled_ttl,
                )
            )
            removed += int(stale.rowcount or 0)
            models = (await session.exec(select(LiveExampleRow.model).distinct())).all()
            for model in models:
                cutoff = (
                    await session.exec(
                        select(LiveExampleRow.labelled_at)
                        .where(
                            LiveExampleRow.model == model,
                            col(LiveExampleRow.labelled_at).is_not(None),
                        )
                        .order_by(col(LiveExampleRow.labelled_at).desc())
                        .offset(self._max_per_model)
                        .limit(1)
                    )
                ).first()
                if cutoff is not None:
                    result = await session.exec(
                        delete(LiveExampleRow).where(
                            col(LiveExampleRow.model) == model,
                            col(LiveExampleRow.labelled_at) <= cutoff,
                        )
                    )
                    removed += int(result.rowcount or 0)
        return removed

"""Joining predictions with their labels by request id, in bounded memory.

Labels arrive minutes to days after their prediction, and Kafka orders nothing across the
``predictions`` and ``labels`` topics, so either side may wait for the other. Two bounds keep the
waiting room finite, and neither loses anything silently:

- **time to live**, measured in event time of the model's own stream: an entry older than the TTL
  when the model's clock passes it expires;
- **size cap** over all models: when more entries wait than the cap allows, the oldest goes.

Every entry that leaves unjoined comes back as :class:`Expired`, so the caller counts it.
The join does not care what is predicted: a classifier's class or a regressor's number waits and
joins the same way (the caller checks that a truth's kind fits its prediction's).
A label joins every prediction waiting under its request id (a shadow challenger scores the same
request as the champion). Pure: no I/O, time comes in with the events.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "DuplicateEntry",
    "Expired",
    "ExpiryReason",
    "JoinChanges",
    "Joined",
    "LabelJoin",
    "PendingKey",
    "PendingLabel",
    "PendingPrediction",
]

PendingKey = tuple[str, str, int, str]
"""Model, request id, model version and variant of a waiting entry (``0``, ``""`` for a label)."""


@dataclass(frozen=True, slots=True)
class PendingPrediction:
    """A prediction waiting for its label: what scoring it later needs. A classifier's has a
    class, probabilities and a confidence; a regressor's only ``predicted_value``."""

    model: str
    request_id: str
    version: int
    variant: str
    occurred_at: datetime
    predicted_class: str | None
    probabilities: Mapping[str, float]
    confidence: float | None
    predicted_value: float | None = None
    features: Mapping[str, Any] | None = None
    """A regressor's features, kept only while its reference for the loss estimate gathers."""

    @property
    def key(self) -> PendingKey:
        return (self.model, self.request_id, self.version, self.variant)


@dataclass(frozen=True, slots=True)
class PendingLabel:
    """A truth that arrived before its prediction: a class (``str``, from ``label.recorded``)
    or a number (``float``, from ``value.recorded``)."""

    model: str
    request_id: str
    occurred_at: datetime
    label: str | float

    @property
    def is_value(self) -> bool:
        """Whether this is a regressor's true number rather than a class."""
        return not isinstance(self.label, str)

    @property
    def key(self) -> PendingKey:
        return (self.model, self.request_id, 0, "")


@dataclass(frozen=True, slots=True)
class Joined:
    """A prediction with its true class."""

    prediction: PendingPrediction
    label: PendingLabel

    @property
    def at(self) -> datetime:
        """Event time of the join: when the later of the two happened."""
        return max(self.prediction.occurred_at, self.label.occurred_at)


class ExpiryReason(StrEnum):
    """Why an entry left the join unjoined."""

    TTL = "ttl"
    CAPACITY = "capacity"


@dataclass(frozen=True, slots=True)
class Expired:
    """An entry that left the join without its partner."""

    entry: PendingPrediction | PendingLabel
    reason: ExpiryReason


class DuplicateEntry(ValueError):
    """The same prediction (request, version, variant) or label (request) is already waiting."""


@dataclass
class JoinChanges:
    """Entries added and keys removed since the last drain, for the adapter to persist."""

    added: list[PendingPrediction | PendingLabel] = field(default_factory=list)
    removed: list[PendingKey] = field(default_factory=list)


@dataclass
class _ModelQueues:
    predictions: OrderedDict[PendingKey, PendingPrediction] = field(default_factory=OrderedDict)
    labels: OrderedDict[str, PendingLabel] = field(default_factory=OrderedDict)
    by_request: dict[str, list[PendingKey]] = field(default_factory=dict)
    versions: Counter[int] = field(default_factory=Counter)


class LabelJoin:
    """Predictions and labels waiting for each other, per model, bounded by a TTL and a cap.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> join = LabelJoin(ttl=timedelta(hours=1), max_pending=10)
    >>> prediction = PendingPrediction("m", "r1", 1, "champion", t0, "a", {"a": 0.9}, 0.9)
    >>> join.add_prediction(prediction)
    ([], [])
    >>> joined, _ = join.add_label(PendingLabel("m", "r1", t0 + timedelta(minutes=5), "b"))
    >>> joined[0].label.label, joined[0].prediction.predicted_class
    ('b', 'a')
    >>> _ = join.add_prediction(prediction)
    >>> [e.reason.value for e in join.expire("m", t0 + timedelta(hours=2))]
    ['ttl']
    """

    def __init__(self, *, ttl: timedelta, max_pending: int) -> None:
        if ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._ttl = ttl
        self._max_pending = max_pending
        self._models: dict[str, _ModelQueues] = {}
        self._size = 0
        self._added: dict[PendingKey, PendingPrediction | PendingLabel] = {}
        self._removed: set[PendingKey] = set()

    def __len__(self) -> int:
        return self._size

    @property
    def ttl(self) -> timedelta:
        return self._ttl

    def pending_predictions(self) -> int:
        """Return how many predictions wait for a label."""
        return sum(len(queues.predictions) for queues in self._models.values())

    def pending_labels(self) -> int:
        """Return how many labels wait for a prediction."""
        return sum(len(queues.labels) for queues in self._models.values())

    def waiting_for(self, model: str, request_id: str) -> list[PendingPrediction]:
        """Return the predictions a label for this request would join now."""
        queues = self._models.get(model)
        if queues is None:
            return []
        return [queues.predictions[key] for key in queues.by_request.get(request_id, ())]

    def holds(self, key: PendingKey) -> bool:
        """Return whether an entry with this key is waiting."""
        queues = self._models.get(key[0])
        if queues is None:
            return False
        if key[2] == 0:
            return key[1] in queues.labels
        return key in queues.predictions

    def versions_waiting(self, model: str) -> set[int]:
        """Return the model versions of the predictions waiting for a label."""
        queues = self._models.get(model)
        return set() if queues is None else {v for v, n in queues.versions.items() if n > 0}

    def add_prediction(self, prediction: PendingPrediction) -> tuple[list[Joined], list[Expired]]:
        """Join a prediction with its waiting label, or let it wait; return joins and evictions."""
        queues = self._queues(prediction.model)
        if prediction.key in queues.predictions:
            raise DuplicateEntry(
                f"prediction for request {prediction.request_id!r} by version "
                f"{prediction.version} ({prediction.variant}) is already waiting for its label"
            )
        label = queues.labels.pop(prediction.request_id, None)
        if label is not None:
            self._size -= 1
            self._note_removed(label.key)
            return [Joined(prediction, label)], []
        self._put_prediction(queues, prediction)
        self._note_added(prediction)
        return [], self._evict_over_cap()

    def add_label(self, label: PendingLabel) -> tuple[list[Joined], list[Expired]]:
        """Join a label with every prediction waiting for it, or let it wait."""
        queues = self._queues(label.model)
        keys = queues.by_request.pop(label.request_id, None)
        if keys:
            joined = []
            for key in keys:
                prediction = queues.predictions.pop(key)
                queues.versions[prediction.version] -= 1
                self._size -= 1
                self._note_removed(key)
                joined.append(Joined(prediction, label))
            return joined, []
        if label.request_id in queues.labels:
            raise DuplicateEntry(f"a label for request {label.request_id!r} is already waiting")
        queues.labels[label.request_id] = label
        self._size += 1
        self._note_added(label)
        return [], self._evict_over_cap()

    def expire(self, model: str, now: datetime) -> list[Expired]:
        """Remove a model's entries older than the TTL at event time ``now``."""
        queues = self._models.get(model)
        if queues is None:
            return []
        cutoff = now - self._ttl
        expired: list[Expired] = []
        while queues.predictions:
            oldest = next(iter(queues.predictions.values()))
            if oldest.occurred_at >= cutoff:
                break
            expired.append(Expired(self._pop_prediction(queues, oldest), ExpiryReason.TTL))
        while queues.labels:
            first = next(iter(queues.labels.values()))
            if first.occurred_at >= cutoff:
                break
            expired.append(Expired(self._pop_label(queues, first), ExpiryReason.TTL))
        return expired

    def restore(self, entries: Iterable[PendingPrediction | PendingLabel]) -> None:
        """Load waiting entries (from storage) without recording them as changes."""
        for entry in sorted(entries, key=lambda e: e.occurred_at):
            queues = self._queues(entry.model)
            if isinstance(entry, PendingPrediction):
                self._put_prediction(queues, entry)
            else:
                queues.labels[entry.request_id] = entry
                self._size += 1

    def entries(self) -> list[PendingPrediction | PendingLabel]:
        """Return every waiting entry."""
        found: list[PendingPrediction | PendingLabel] = []
        for queues in self._models.values():
            found.extend(queues.predictions.values())
            found.extend(queues.labels.values())
        return found

    def drain(self) -> JoinChanges:
        """Return and forget the changes since the last drain."""
        changes = JoinChanges(added=list(self._added.values()), removed=list(self._removed))
        self._added = {}
        self._removed = set()
        return changes

    def _queues(self, model: str) -> _ModelQueues:
        """The model's queues, made on first use (not ``setdefault``: that builds a new empty
        set of queues for every event, a fifth of the join's cost)."""
        queues = self._models.get(model)
        if queues is None:
            queues = self._models[model] = _ModelQueues()
        return queues

    def _put_prediction(self, queues: _ModelQueues, prediction: PendingPrediction) -> None:
        queues.predictions[prediction.key] = prediction
        queues.by_request.setdefault(prediction.request_id, []).append(prediction.key)
        queues.versions[prediction.version] += 1
        self._size += 1

    def _pop_prediction(
        self, queues: _ModelQueues, prediction: PendingPrediction
    ) -> PendingPrediction:
        del queues.predictions[prediction.key]
        siblings = queues.by_request[prediction.request_id]
        siblings.remove(prediction.key)
        if not siblings:
            del queues.by_request[prediction.request_id]
        queues.versions[prediction.version] -= 1
        self._size -= 1
        self._note_removed(prediction.key)
        return prediction

    def _pop_label(self, queues: _ModelQueues, label: PendingLabel) -> PendingLabel:
        del queues.labels[label.request_id]
        self._size -= 1
        self._note_removed(label.key)
        return label

    def _evict_over_cap(self) -> list[Expired]:
        evicted: list[Expired] = []
        while self._size > self._max_pending:
            queues, oldest = min(
                (
                    (queues, entry)
                    for queues in self._models.values()
                    for entry in (
                        next(iter(queues.predictions.values()), None),
                        next(iter(queues.labels.values()), None),
                    )
                    if entry is not None
                ),
                key=lambda pair: pair[1].occurred_at,
            )
            if isinstance(oldest, PendingPrediction):
                evicted.append(Expired(self._pop_prediction(queues, oldest), ExpiryReason.CAPACITY))
            else:
                evicted.append(Expired(self._pop_label(queues, oldest), ExpiryReason.CAPACITY))
        return evicted

    def _note_added(self, entry: PendingPrediction | PendingLabel) -> None:
        self._added[entry.key] = entry

    def _note_removed(self, key: PendingKey) -> None:
        if self._added.pop(key, None) is None or key in self._removed:
            # The entry is in storage (it was there before this batch): delete it there.
            self._removed.add(key)

"""Windows of one series (model, version, variant): what fell into them, and when they close.

A window collects, in arrival order, the predictions of its series (confidence, latency), the
labelled outcomes that joined in it (true class, predicted class, probabilities; for a regressor
the true and the predicted number) — whatever the
age of their prediction, so a late label counts in the window open when it arrives — and the
predictions that expired unjoined. It closes on whichever comes first:

- **count**: it holds ``max_events`` predictions, or ``max_events`` labelled outcomes;
- **event time**: the model's event-time clock reaches the end of the ``span``-long bucket
  (aligned to the Unix epoch) in which the window opened.

Event time never goes back: an event older than its open window still counts in that window.
Pure: no I/O, time comes in with the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from contracts.monitoring import WindowKind

__all__ = ["ClosedWindow", "Series", "Window", "WindowPolicy", "Windows"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Series(NamedTuple):
    """What a window measures: one version of one model in one deployment slot."""

    model: str
    version: int
    variant: str


@dataclass(frozen=True)
class WindowPolicy:
    """When windows close: after ``max_events`` of a kind, at ``span`` boundaries, or both."""

    max_events: int | None = 500
    span: timedelta | None = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.max_events is None and self.span is None:
            raise ValueError("a window needs a count, an event-time span, or both")
        if self.max_events is not None and self.max_events < 1:
            raise ValueError("max_events must be at least 1")
        if self.span is not None and self.span <= timedelta(0):
            raise ValueError("span must be positive")

    def bucket_end(self, at: datetime) -> datetime | None:
        """Return the end of the event-time bucket holding ``at``."""
        if self.span is None:
            return None
        buckets = (at - _EPOCH) // self.span
        return _EPOCH + (buckets + 1) * self.span


@dataclass
class Window:
    """An open window's contents."""

    series: Series
    start: datetime
    end: datetime
    closes_at: datetime | None
    confidences: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    first_prediction_at: datetime | None = None
    last_prediction_at: datetime | None = None
    y_true: list[str] = field(default_factory=list)
    y_pred: list[str] = field(default_factory=list)
    probabilities: list[list[float]] = field(default_factory=list)
    expired_unjoined: int = 0
    label_mismatches: int = 0
    positive_scores: list[float] = field(default_factory=list)
    """Each prediction's probability of the positive class (what the estimate is made from)."""
    predicted_positive: list[bool] = field(default_factory=list)
    first_labelled_prediction_at: datetime | None = None
    """When the oldest prediction among the labelled outcomes was made."""
    values_true: list[float] = field(default_factory=list)
    """A regressor's labelled outcomes: true numbers, and (below) the predicted ones."""
    values_pred: list[float] = field(default_factory=list)
    predicted_values: list[float] = field(default_factory=list)
    """A regressor's predictions, labelled or not, with their ``features`` (what the label-free
    loss estimate is made from; kept only while estimation is on)."""
    features: list[dict[str, Any]] = field(default_factory=list)

    @property
    def predictions(self) -> int:
        return len(self.latencies_ms)  # every prediction has a latency; only a class a confidence

    @property
    def labelled(self) -> int:
        return len(self.y_true) + len(self.values_true)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready copy."""
        return {
            "series": list(self.series),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "closes_at": _iso(self.closes_at),
            "confidences": self.confidences,
            "latencies_ms": self.latencies_ms,
            "first_prediction_at": _iso(self.first_prediction_at),
            "last_prediction_at": _iso(self.last_prediction_at),
            "y_true": self.y_true,
            "y_pred": self.y_pred,
            "probabilities": self.probabilities,
            "expired_unjoined": self.expired_unjoined,
            "label_mismatches": self.label_mismatches,
            "positive_scores": self.positive_scores,
            "predicted_positive": self.predicted_positive,
            "first_labelled_prediction_at": _iso(self.first_labelled_prediction_at),
            "values_true": self.values_true,
            "values_pred": self.values_pred,
            "predicted_values": self.predicted_values,
            "features": self.features,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        """Rebuild a window from :meth:`to_dict`."""
        model, version, variant = data["series"]
        return cls(
            series=Series(model, int(version), variant),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            closes_at=_from_iso(data["closes_at"]),
            confidences=list(data["confidences"]),
            latencies_ms=list(data["latencies_ms"]),
            first_prediction_at=_from_iso(data["first_prediction_at"]),
            last_prediction_at=_from_iso(data["last_prediction_at"]),
            y_true=list(data["y_true"]),
            y_pred=list(data["y_pred"]),
            probabilities=[list(row) for row in data["probabilities"]],
            expired_unjoined=int(data["expired_unjoined"]),
            label_mismatches=int(data["label_mismatches"]),
            # absent from windows saved before label-free estimation existed
            positive_scores=list(data.get("positive_scores", [])),
            predicted_positive=list(data.get("predicted_positive", [])),
            first_labelled_prediction_at=_from_iso(data.get("first_labelled_prediction_at")),
            # absent from windows saved before regression models existed
            values_true=[float(v) for v in data.get("values_true", [])],
            values_pred=[float(v) for v in data.get("values_pred", [])],
            # absent from windows saved before regressors' losses were estimated
            predicted_values=[float(v) for v in data.get("predicted_values", [])],
            features=[dict(row) for row in data.get("features", [])],
        )

    def note_labelled_prediction(self, predicted_at: datetime | None) -> None:
        """Keep the earliest prediction time among the window's labelled predictions."""
        if predicted_at is not None and (
            self.first_labelled_prediction_at is None
            or predicted_at < self.first_labelled_prediction_at
        ):
            self.first_labelled_prediction_at = predicted_at


@dataclass(frozen=True)
class ClosedWindow:
    """A window that closed, and why."""

    window: Window
    kind: WindowKind


class Windows:
    """The open window of every series, closing them by count and by event time.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> windows = Windows(WindowPolicy(max_events=2, span=timedelta(minutes=1)))
    >>> series = Series("m", 1, "champion")
    >>> windows.add_prediction(series, t0, confidence=0.9, latency_ms=3.0) is None
    True
    >>> windows.add_prediction(series, t0, confidence=0.6, latency_ms=4.0).kind.value
    'count'
    >>> _ = windows.add_prediction(series, t0 + timedelta(seconds=10), 0.8, 2.0)
    >>> [closed.kind.value for closed in windows.close_due("m", t0 + timedelta(minutes=1))]
    ['time']
    """

    def __init__(self, policy: WindowPolicy) -> None:
        self._policy = policy
        self._open: dict[Series, Window] = {}
        self._by_model: dict[str, set[Series]] = {}
        self._changed: set[Series] = set()

    @property
    def policy(self) -> WindowPolicy:
        return self._policy

    def add_prediction(
        self,
        series: Series,
        at: datetime,
        confidence: float | None,
        latency_ms: float,
        *,
        positive_score: float | None = None,
        predicted_positive: bool = False,
        predicted_value: float | None = None,
        features: dict[str, Any] | None = None,
    ) -> ClosedWindow | None:
        """Count a prediction; return the window if this closed it. ``positive_score`` (the
        positive class's probability), or a regressor's ``predicted_value`` with its
        ``features``, is kept for the label-free estimate; a regressor's prediction has no
        ``confidence``."""
        window = self._window(series, at)
        if confidence is not None:
            window.confidences.append(confidence)
        window.latencies_ms.append(latency_ms)
        if positive_score is not None:
            window.positive_scores.append(positive_score)
            window.predicted_positive.append(predicted_positive)
        if predicted_value is not None and features is not None:
            window.predicted_values.append(predicted_value)
            window.features.append(features)
        if window.first_prediction_at is None or at < window.first_prediction_at:
            window.first_prediction_at = at
        if window.last_prediction_at is None or at > window.last_prediction_at:
            window.last_prediction_at = at
        return self._close_if_full(window)

    def add_outcome(
        self,
        series: Series,
        at: datetime,
        *,
        y_true: str,
        y_pred: str,
        probabilities: list[float],
        predicted_at: datetime | None = None,
    ) -> ClosedWindow | None:
        """Count a labelled prediction; return the window if this closed it."""
        window = self._window(series, at)
        window.note_labelled_prediction(predicted_at)
        window.y_true.append(y_true)
        window.y_pred.append(y_pred)
        window.probabilities.append(probabilities)
        return self._close_if_full(window)

    def add_value_outcome(
        self,
        series: Series,
        at: datetime,
        *,
        y_true: float,
        y_pred: float,
        predicted_at: datetime | None = None,
    ) -> ClosedWindow | None:
        """Count a regressor's labelled prediction; return the window if this closed it."""
        window = self._window(series, at)
        window.note_labelled_prediction(predicted_at)
        window.values_true.append(y_true)
        window.values_pred.append(y_pred)
        return self._close_if_full(window)

    def add_expired(self, series: Series, at: datetime) -> None:
        """Count a prediction of this series whose label never came."""
        self._window(series, at).expired_unjoined += 1

    def add_label_mismatch(self, series: Series, at: datetime) -> None:
        """Count a label that named a class the version does not know, or a truth of the other
        kind (a number for a classifier, a class for a regressor): it is not scored."""
        self._window(series, at).label_mismatches += 1

    def close_due(self, model: str, now: datetime) -> list[ClosedWindow]:
        """Close the model's windows whose event-time bucket ended at ``now``."""
        due = [
            self._open[series]
            for series in sorted(self._by_model.get(model, ()))
            if (closes_at := self._open[series].closes_at) is not None and now >= closes_at
        ]
        return [self._close(window, WindowKind.TIME) for window in due]

    def open_windows(self) -> list[Window]:
        """Return every open window."""
        return list(self._open.values())

    def series_of(self, model: str) -> set[Series]:
        """Return the series of a model with an open window."""
        return set(self._by_model.get(model, ()))

    def restore(self, windows: list[Window]) -> None:
        """Load open windows (from storage) without recording them as changes."""
        for window in windows:
            self._open[window.series] = window
            self._by_model.setdefault(window.series.model, set()).add(window.series)

    def drain(self) -> dict[Series, Window | None]:
        """Return and forget the series changed since the last drain: open window, or ``None``."""
        changed = {series: self._open.get(series) for series in self._changed}
        self._changed = set()
        return changed

    def _window(self, series: Series, at: datetime) -> Window:
        self._changed.add(series)
        window = self._open.get(series)
        if window is None:
            window = Window(series, start=at, end=at, closes_at=self._policy.bucket_end(at))
            self._open[series] = window
            self._by_model.setdefault(series.model, set()).add(series)
            return window
        window.start = min(window.start, at)
        window.end = max(window.end, at)
        return window

    def _close_if_full(self, window: Window) -> ClosedWindow | None:
        limit = self._policy.max_events
        if limit is not None and (window.predictions >= limit or window.labelled >= limit):
            return self._close(window, WindowKind.COUNT)
        return None

    def _close(self, window: Window, kind: WindowKind) -> ClosedWindow:
        series = window.series
        del self._open[series]
        self._by_model[series.model].discard(series)
        self._changed.add(series)
        return ClosedWindow(window, kind)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _from_iso(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)

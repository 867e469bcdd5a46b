"""``dead_letters`` alerts: a service that sets messages aside says so on the alerts topic.

Dead letters are counted per source topic (one service, one consumer). A topic's first dead
letter raises an :class:`~contracts.alerts.AlertRaised` of kind ``dead_letters`` at once; later
ones are counted, and at most one alert per topic per ``interval_s`` carries the count since the
previous one (so a burst of 50 bad records raises one alert saying 50, not 50 alerts)::

    quiet ──dead letter──▶ due ──alert published──▶ resting ──interval over──▶ quiet / due
                                     │ publish failed: given back, due an interval later

The alert's ``model`` is the ``model`` field of the dead-lettered JSON when every letter of the
window named the same valid model name; otherwise (undecodable bytes, no model, several models)
it is :data:`PLATFORM_MODEL`, the reserved name of platform alerts. Its fingerprint is
``alert_fingerprint(model, None, DEAD_LETTERS, "<service>/<topic>")``.

A ``dead_letters`` alert that is itself dead-lettered (by a consumer of the alerts topic) raises
nothing: otherwise one broken consumer of alerts would alert about its alert forever.

Pure bookkeeping: the clock comes in as an argument; :class:`~services.runtime.consumer.\
EventConsumer` publishes what :meth:`DeadLetterAlerts.take_due` returns.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import TypeAdapter, ValidationError

from contracts.alerts import AlertKind, AlertRaised, Severity, alert_fingerprint
from contracts.dead_letter import DeadLetterReason
from contracts.values import ModelName

__all__ = ["PLATFORM_MODEL", "DeadLetterAlerts", "PendingAlert"]

PLATFORM_MODEL = "vigil"
"""The model name of alerts about the platform rather than one model."""

_MODEL_NAME: TypeAdapter[str] = TypeAdapter(ModelName)
_MAX_PEEK_BYTES = 1_000_000  # a larger record is not parsed for its model: it names none
_MAX_MODELS_IN_EVIDENCE = 20


@dataclass
class _Window:
    """Dead letters of one topic since its last alert."""

    count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    models: set[str] = field(default_factory=set)
    unnamed: int = 0
    last_error: str = ""
    raised_at: float | None = None


@dataclass(frozen=True)
class PendingAlert:
    """An alert taken for publishing, with the window it reports (given back if it fails)."""

    topic: str
    alert: AlertRaised
    window: _Window


class DeadLetterAlerts:
    """Counts one service's dead letters per topic and says which alerts are due."""

    def __init__(
        self,
        *,
        service: str,
        alerts_topic: str,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < interval_s < float("inf"):
            raise ValueError(f"interval_s must be positive and finite, got {interval_s}")
        self._service = service
        self._alerts_topic = alerts_topic
        self._interval_s = interval_s
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    @property
    def interval_s(self) -> float:
        """Least time between two alerts about one topic."""
        return self._interval_s

    def note(self, topic: str, value: bytes | None, reason: DeadLetterReason, error: str) -> bool:
        """Count one dead letter of ``topic``; ``False`` if it is one that raises nothing."""
        document = _peek(value)
        if topic == self._alerts_topic and _is_dead_letters_alert(document):
            return False
        window = self._windows.setdefault(topic, _Window())
        window.count += 1
        window.reasons[reason.value] += 1
        window.last_error = error[:500]
        model = _model_of(document)
        if model is None:
            window.unnamed += 1
        else:
            window.models.add(model)
        return True

    def take_due(self) -> list[PendingAlert]:
        """Take the alerts to publish now (topics with dead letters whose last alert is old
        enough) and start those topics' next windows."""
        now = self._clock()
        pending = []
        for topic, window in sorted(self._windows.items()):
            resting = window.raised_at is not None and now - window.raised_at < self._interval_s
            if window.count and not resting:
                alert = self._alert(topic, window)
                pending.append(PendingAlert(topic, alert, window))
                self._windows[topic] = _Window(raised_at=now)
        return pending

    def give_back(self, pending: PendingAlert) -> None:
        """The alert could not be published: its dead letters count into the topic's next alert,
        due one interval later (a broken alerts topic logs one failure per interval, not one a
        second)."""
        window = self._windows[pending.topic]
        taken = pending.window
        window.count += taken.count
        window.reasons.update(taken.reasons)
        window.models |= taken.models
        window.unnamed += taken.unnamed
        window.last_error = window.last_error or taken.last_error

    def _alert(self, topic: str, window: _Window) -> AlertRaised:
        named = len(window.models) == 1 and not window.unnamed
        model = next(iter(window.models)) if named else PLATFORM_MODEL
        subject = f"{self._service}/{topic}"
        since = (
            "its first dead letter"
            if window.raised_at is None
            else f"the last {self._interval_s:g} s or more"
        )
        return AlertRaised(
            producer=self._service,
            model=model,
            kind=AlertKind.DEAD_LETTERS,
            severity=Severity.WARNING,
            fingerprint=alert_fingerprint(model, None, AlertKind.DEAD_LETTERS, subject)[:500],
            summary=(
                f"{self._service} dead-lettered {window.count} message(s) of {topic} "
                f"({since}); last error: {window.last_error}"
            )[:1000],
            evidence={
                "service": self._service,
                "topic": topic,
                "count": window.count,
                "reasons": dict(sorted(window.reasons.items())),
                "models": sorted(window.models)[:_MAX_MODELS_IN_EVIDENCE],
                "without_model": window.unnamed,
                "last_error": window.last_error,
                "interval_s": self._interval_s,
            },
        )


def _peek(value: bytes | None) -> dict[str, object] | None:
    """The record as a JSON object, if it is one (dead letters are often not)."""
    if value is None or len(value) > _MAX_PEEK_BYTES:
        return None
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _model_of(document: dict[str, object] | None) -> str | None:
    model = None if document is None else document.get("model")
    if not isinstance(model, str):
        return None
    try:
        return _MODEL_NAME.validate_python(model)
    except ValidationError:
        return None


def _is_dead_letters_alert(document: dict[str, object] | None) -> bool:
    return (
        document is not None
        and document.get("type") == "alert.raised"
        and document.get("kind") == AlertKind.DEAD_LETTERS.value
    )

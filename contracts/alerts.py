"""Alerts: something is wrong with a model (raised), or is no longer wrong (recovered)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from contracts.envelope import Envelope
from contracts.values import FiniteJson, ModelName

__all__ = [
    "PLATFORM_KINDS",
    "AlertKind",
    "AlertRaised",
    "AlertRecovered",
    "Severity",
    "alert_fingerprint",
]


class AlertKind(StrEnum):
    """What was breached; the routing policy matches on it."""

    METRIC_DECAY = "metric_decay"
    ESTIMATED_DECAY = "estimated_decay"
    """The key metric *estimated from scores* (labels not yet in) crossed its threshold."""
    LOW_CONFIDENCE = "low_confidence"
    DATA_DRIFT = "data_drift"
    PREDICTION_DRIFT = "prediction_drift"
    RESIDUAL_DRIFT = "residual_drift"
    """A regressor's errors (truth - prediction) no longer match those of its first labelled
    outcomes (the monitor: docs/monitor.md, "Residual drift")."""
    PROBE_FAILED = "probe_failed"
    CHALLENGER_WORSE = "challenger_worse"
    DEAD_LETTERS = "dead_letters"
    MANUAL = "manual"
    CONSUMER_LAG = "consumer_lag"
    OUTBOX_STALLED = "outbox_stalled"
    OUTBOX_POISON = "outbox_poison"
    SERVICE_UNREADY = "service_unready"
    RESTART_LOOP = "restart_loop"
    PAGING_FAILED = "paging_failed"
    HEARTBEAT = "heartbeat"


PLATFORM_KINDS: frozenset[AlertKind] = frozenset(
    {
        AlertKind.DEAD_LETTERS,
        AlertKind.CONSUMER_LAG,
        AlertKind.OUTBOX_STALLED,
        AlertKind.OUTBOX_POISON,
        AlertKind.SERVICE_UNREADY,
        AlertKind.RESTART_LOOP,
        AlertKind.PAGING_FAILED,
    }
)
"""Kinds about Vigil itself rather than a model (docs/operations.md, "Platform alerts").

``heartbeat`` is not among them: it is the dead man's switch's synthetic alert, which the incident
log answers with a ``heartbeat.echoed`` event and never turns into an incident."""


class Severity(StrEnum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def alert_fingerprint(model: str, version: int | None, kind: AlertKind, subject: str) -> str:
    """Build the stable fingerprint of an alert signal: model, version, signal, and its subject.

    The subject names what breached: a metric (``recall``) or a sorted feature set.

    >>> alert_fingerprint("breast-cancer", 3, AlertKind.METRIC_DECAY, "recall")
    'breast-cancer:v3:metric_decay:recall'
    """
    version_part = f"v{version}" if version is not None else "v-"
    return f"{model}:{version_part}:{kind.value}:{subject}"


def _fingerprint_field() -> Any:
    return Field(
        min_length=1,
        max_length=500,
        description="Stable id of the signal (model, version, kind, subject); deduplicates.",
        examples=["breast-cancer:v3:metric_decay:recall"],
    )


def _evidence_field() -> Any:
    return Field(
        default_factory=dict,
        description="The figures behind the alert: window values, baseline, threshold, features.",
        examples=[{"recall": 0.81, "threshold": 0.95, "baseline": 0.97}],
    )


class AlertRaised(Envelope):
    """A monitor, drift detector, probe or person says something is wrong with a model."""

    type: Literal["alert.raised"] = "alert.raised"
    model: ModelName
    model_version: int | None = Field(
        default=None, ge=1, description="Version concerned, if one.", examples=[3]
    )
    kind: AlertKind = Field(description="What was breached.", examples=[AlertKind.METRIC_DECAY])
    severity: Severity = Field(description="How urgent.", examples=[Severity.CRITICAL])
    fingerprint: str = _fingerprint_field()
    summary: str = Field(
        min_length=1,
        max_length=1000,
        description="One line for a person.",
        examples=["recall 0.81 below threshold 0.95 for 3 windows"],
    )
    evidence: dict[str, FiniteJson] = _evidence_field()


class AlertRecovered(Envelope):
    """The signal behind an earlier alert is healthy again (after hysteresis)."""

    type: Literal["alert.recovered"] = "alert.recovered"
    model: ModelName
    model_version: int | None = Field(
        default=None, ge=1, description="Version concerned, if one.", examples=[3]
    )
    kind: AlertKind = Field(description="Signal that recovered.", examples=[AlertKind.METRIC_DECAY])
    fingerprint: str = _fingerprint_field()
    summary: str = Field(
        min_length=1,
        max_length=1000,
        description="One line for a person.",
        examples=["recall back to 0.96 for 2 windows"],
    )
    evidence: dict[str, FiniteJson] = _evidence_field()

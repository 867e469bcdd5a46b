"""Incidents a person opens by hand: their report becomes an alert of kind ``manual``.

Pure. ``POST /incidents`` turns what a person reports into an :class:`AlertRaised` of kind
``manual`` (producer ``person:<name>``), which opens an incident through the same domain code
as any alert (:meth:`Incident.open_from_alert`): timeline, ``incident.opened`` event, routing
after ``group_wait``, pages. Unlike an alert from a detector, a person's report is never
silenced, inhibited or merged into another incident: they chose to open one. Later alerts about
the same model version may still correlate into it.

Retries are safe: the report's alert gets an event id derived from the reporter and their
``Idempotency-Key``, and the alert log's primary key holds it, so the same key opens one
incident however often it is sent (a different report under a used key is refused).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.alerts import AlertKind, AlertRaised, Severity, alert_fingerprint

__all__ = ["ManualReport", "manual_alert", "same_report"]

_KEYS = uuid.UUID("0f6d7c1e-7b0a-4a59-9c43-5c1f1f6a8e20")
"""Namespace of the event ids derived from idempotency keys (fixed: replays must agree)."""


@dataclass(frozen=True)
class ManualReport:
    """What a person reports when they open an incident."""

    model: str
    model_version: int | None
    severity: Severity
    summary: str
    details: str


def manual_alert(
    report: ManualReport, reporter: str, now: datetime, *, idempotency_key: str | None
) -> AlertRaised:
    """The ``manual`` alert a person's report stands for; the same reporter and key always
    give the same event id.

    >>> from datetime import UTC
    >>> report = ManualReport(model="m", model_version=None, severity=Severity.WARNING,
    ...                       summary="odd answers", details="")
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> a = manual_alert(report, "ann", now, idempotency_key="k1")
    >>> b = manual_alert(report, "ann", now, idempotency_key="k1")
    >>> a.event_id == b.event_id, a.kind.value, a.fingerprint.startswith("m:v-:manual:ann:")
    (True, 'manual', True)
    >>> manual_alert(report, "bo", now, idempotency_key="k1").event_id == a.event_id
    False
    """
    event_id = (
        uuid.uuid5(_KEYS, f"{reporter}\n{idempotency_key}")
        if idempotency_key is not None
        else uuid.uuid4()
    )
    evidence: dict[str, Any] = {"reported_by": reporter}
    if report.details:
        evidence["details"] = report.details
    return AlertRaised(
        event_id=event_id,
        occurred_at=now,
        producer=f"person:{reporter}",
        model=report.model,
        model_version=report.model_version,
        kind=AlertKind.MANUAL,
        severity=report.severity,
        fingerprint=alert_fingerprint(
            report.model, report.model_version, AlertKind.MANUAL, f"{reporter}:{event_id.hex[:12]}"
        ),
        summary=report.summary,
        evidence=evidence,
    )


def same_report(alert: AlertRaised, logged: dict[str, Any]) -> bool:
    """Whether a logged alert (its row's fields) is this report's: a retry, not a new report
    under a used key."""
    return bool(
        logged["model"] == alert.model
        and logged["model_version"] == alert.model_version
        and logged["severity"] == alert.severity.value
        and logged["summary"] == alert.summary
        and logged["evidence"] == alert.evidence
    )

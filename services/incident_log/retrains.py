"""Retrains in flight, as the incident log follows them: the ask, the retrainer's answer, the end
of the run. While one is in flight, a ``retrain_in_flight`` inhibition mutes its model's decay
alerts (:mod:`.triage`); this module decides when that stops. Pure.

::

    asked ──answered queued / joined / merged──▶ in flight ──retrain.finished of its run─▶ ended
      │                                           ├──a champion change (promotion, rollback)─▶ ended
      │                                           └──retrain_timeout after the ask───────────▶ ended
      ├──answered refused────────────────────────────────────────────────────────────────────▶ ended
      └──no answer within retrain_answer_timeout (the retrainer is down)─────────────────────▶ ended

An ask is known from ``retrain.requests`` or from its answer, whichever arrives first (the
answer names the ask's ``event_id``); an answer to an ask made over HTTP or by the retrainer's
own policy starts a retrain in flight too. Every end is put on the timeline of the incident that
asked, so a person sees why that model's decay alerts page again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from contracts.retraining import RetrainAnswer, RetrainAnswered

__all__ = ["InFlight", "answer_details", "answered_end", "lapse", "lifted_details"]


@dataclass(frozen=True)
class InFlight:
    """A retrain ask the incident log follows, not yet ended."""

    model: str
    cause: str
    asked_at: datetime
    answered_at: datetime | None = None
    run_id: str | None = None


def answered_end(answer: RetrainAnswered) -> str | None:
    """Return why an answer ends its ask's retrain at once (a refusal), or ``None``."""
    if answer.answer.in_flight:
        return None
    return f"the retrainer refused the ask: {answer.reason}"


def lapse(
    retrain: InFlight, now: datetime, *, answer_timeout: timedelta, retrain_timeout: timedelta
) -> str | None:
    """Return why a retrain stops counting as in flight by now, or ``None`` if it still does.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> asked = InFlight("churn", "incident:inc-1", asked_at=t0)
    >>> limits = {"answer_timeout": timedelta(minutes=5), "retrain_timeout": timedelta(hours=2)}
    >>> lapse(asked, t0 + timedelta(minutes=4), **limits) is None
    True
    >>> lapse(asked, t0 + timedelta(minutes=5), **limits)
    'the retrainer did not answer within 5 min'
    >>> answered = InFlight("churn", "incident:inc-1", t0, t0 + timedelta(seconds=1), "rt-1")
    >>> lapse(answered, t0 + timedelta(minutes=30), **limits) is None
    True
    >>> lapse(answered, t0 + timedelta(hours=2), **limits)
    'run rt-1 did not end within 120 min of the ask'
    """
    if retrain.answered_at is None:
        if now - retrain.asked_at >= answer_timeout:
            return f"the retrainer did not answer within {_minutes(answer_timeout)} min"
        return None
    if now - retrain.asked_at >= retrain_timeout:
        return f"run {retrain.run_id} did not end within {_minutes(retrain_timeout)} min of the ask"
    return None


def lifted_details(retrain: InFlight, why: str) -> dict[str, Any]:
    """The timeline details of a retrain that stopped counting as in flight."""
    return {
        "model": retrain.model,
        "cause": retrain.cause,
        "run_id": retrain.run_id,
        "why": why,
        "decay_alerts": "no longer inhibited by this retrain",
    }


def answer_details(answer: RetrainAnswered) -> dict[str, Any]:
    """The timeline details of the retrainer's answer to an ask."""
    return {
        "answer": answer.answer.value,
        "run_id": answer.run_id,
        "cause": answer.cause,
        "reason": answer.reason,
        "refusal": answer.refusal.value if answer.refusal else None,
        "not_before": answer.not_before.isoformat() if answer.not_before else None,
        "requested_by": answer.requested_by,
        "via": answer.via,
        "in_flight": answer.answer is not RetrainAnswer.REFUSED,
    }


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g}"

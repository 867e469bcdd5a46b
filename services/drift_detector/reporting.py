"""Turning the tracker's results into the events the detector publishes.

Per tested window a ``drift.reported`` with every feature's evidence; per episode change an
``alert.raised`` or ``alert.recovered`` carrying the evidence a responder needs first (the
drivers, their checks, the joint and sequential results) and pointing to the window's report.
"""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue

from contracts.alerts import AlertKind, AlertRaised, AlertRecovered, Severity
from contracts.drift import DriftReported, FeatureDrift
from services.drift_detector.episodes import Raised
from services.drift_detector.profiles import ReferenceProfile
from services.drift_detector.tracking import TestedWindow, Transition

__all__ = ["alert_event", "drift_reported"]

_DRIVERS_IN_EVIDENCE = 10
_SIGNAL = {AlertKind.DATA_DRIFT: "data drift", AlertKind.PREDICTION_DRIFT: "prediction drift"}


def drift_reported(
    profile: ReferenceProfile, tested: TestedWindow, *, producer: str
) -> DriftReported:
    """The report of one tested window."""
    report = tested.report
    return DriftReported(
        producer=producer,
        model=profile.model,
        model_version=profile.version,
        window=tested.window,
        drifted=tested.drifted,
        drivers=list(tested.drivers),
        features=list(report.features),
        score=report.score,
        correction=report.policy.correction,
        alpha=report.policy.alpha,
        effect_size_floor=report.policy.numeric_effect_floor,
        joint=report.joint,
        sequential=tested.alarm,
        hypotheses=report.hypotheses,
    )


def alert_event(
    profile: ReferenceProfile, transition: Transition, *, producer: str, report_id: str
) -> AlertRaised | AlertRecovered:
    """The alert (or recovery) of an episode change, with its evidence."""
    change = transition.change
    episode = change.episode
    signal = _SIGNAL[transition.kind]
    where = f"{profile.model} v{profile.version}"
    window = transition.tested.window.model_dump(mode="json")
    if isinstance(change, Raised):
        evidence = _raise_evidence(transition)
        evidence |= {"window": window, "report_event_id": report_id}
        names = ", ".join(episode.features[:5]) or "the joint distribution"
        more = len(episode.features) - 5
        summary = f"{signal} in {where}: {names}" + (f" and {more} more" if more > 0 else "")
        return AlertRaised(
            producer=producer,
            model=profile.model,
            model_version=profile.version,
            kind=transition.kind,
            severity=Severity.WARNING,
            fingerprint=episode.fingerprint,
            summary=summary[:1000],
            evidence=evidence,
        )
    recovery: dict[str, JsonValue] = {
        "clean_windows": change.clean_windows,
        "episode_windows": episode.windows,
        "episode_started_at": episode.started_at.isoformat(),
        "features": list(episode.features),
        "features_seen": list(episode.seen),
        "window": window,
        "report_event_id": report_id,
    }
    return AlertRecovered(
        producer=producer,
        model=profile.model,
        model_version=profile.version,
        kind=transition.kind,
        fingerprint=episode.fingerprint,
        summary=(
            f"no {signal} in {where} for {change.clean_windows} windows "
            f"(episode of {episode.windows} drifted windows)"
        )[:1000],
        evidence=recovery,
    )


def _raise_evidence(transition: Transition) -> dict[str, JsonValue]:
    tested = transition.tested
    report = tested.report
    if transition.kind is AlertKind.PREDICTION_DRIFT:
        features = [report.score] if report.score is not None else []
    else:
        by_name = {feature.feature: feature for feature in report.features}
        features = [by_name[name] for name in tested.drivers if name in by_name]
    evidence: dict[str, Any] = {
        "drivers": list(tested.drivers),
        "rows": report.rows,
        "hypotheses": report.hypotheses,
        "alpha": report.policy.alpha,
        "correction": report.policy.correction.value,
        "features": {f.feature: _feature_evidence(f) for f in features[:_DRIVERS_IN_EVIDENCE]},
    }
    if report.joint is not None and transition.kind is AlertKind.DATA_DRIFT:
        evidence["joint"] = report.joint.model_dump(mode="json")
    if tested.alarm is not None and transition.kind is AlertKind.DATA_DRIFT:
        evidence["sequential"] = tested.alarm.model_dump(mode="json")
    return evidence


def _feature_evidence(feature: FeatureDrift) -> dict[str, JsonValue]:
    fired = [check for check in feature.checks if check.fired]
    return {
        "reasons": list(feature.reasons),
        "checks": [
            {
                "check": check.check,
                "test": check.test,
                "statistic": check.statistic,
                "p_value": check.p_value,
                "adjusted_p_value": check.adjusted_p_value,
                "effect_size": check.effect_size,
                "effect_measure": check.effect_measure,
                "effect_floor": check.effect_floor,
            }
            for check in fired
        ],
        "missing_rate_reference": feature.missing_rate_reference,
        "missing_rate_current": feature.missing_rate_current,
        "new_categories": list(feature.new_categories[:20]),
        "psi": feature.psi,
        "bins": feature.bins.model_dump(mode="json") if feature.bins is not None else None,
    }

"""Turning the tracker's results into the events the detector publishes.

Per tested window a ``drift.reported`` with every feature's evidence (a clean window outside
any episode: its decision figures only, ``detail="compact"``); per episode change an
``alert.raised`` or ``alert.recovered`` carrying the evidence a responder needs first (the
drivers, their checks, the joint and sequential results) and pointing to the window's report.

Event ids are derived from what the event is about (:func:`episode_event_id`,
:func:`report_event_id`), not drawn at random: a replica deciding the same episode (after a kill
or a rebalance) publishes it with the same id, which the incident log's handled ids discard.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import JsonValue

from contracts.alerts import AlertKind, AlertRaised, AlertRecovered, Severity
from contracts.drift import DriftReported, FeatureDrift, ReportDetail
from services.drift_detector.episodes import Episode, Raised, window_key
from services.drift_detector.profiles import ReferenceProfile
from services.drift_detector.tracking import TestedWindow, Transition

__all__ = ["alert_event", "drift_reported", "episode_event_id", "report_event_id"]

_EVENT_IDS = uuid5(NAMESPACE_URL, "https://vigil.invalid/drift-detector/events")

_DRIVERS_IN_EVIDENCE = 10
_SIGNAL = {AlertKind.DATA_DRIFT: "data drift", AlertKind.PREDICTION_DRIFT: "prediction drift"}


def drift_reported(
    profile: ReferenceProfile, tested: TestedWindow, *, producer: str
) -> DriftReported:
    """The report of one tested window: in full when it drifted or fell inside an episode,
    else its decision figures only (:attr:`TestedWindow.full_report`)."""
    report = tested.report
    full = tested.full_report
    return DriftReported(
        event_id=report_event_id(profile.model, profile.version, tested),
        producer=producer,
        model=profile.model,
        model_version=profile.version,
        window=tested.window,
        drifted=tested.drifted,
        drivers=list(tested.drivers),
        features=list(report.features if full else report.compact_features),
        score=report.score if full else report.compact_score,
        correction=report.policy.correction,
        alpha=report.policy.alpha,
        effect_size_floor=report.policy.numeric_effect_floor,
        joint=report.joint,
        sequential=tested.alarm,
        hypotheses=report.hypotheses,
        detail=ReportDetail.FULL if full else ReportDetail.COMPACT,
    )


def episode_event_id(
    model: str,
    version: int,
    kind: AlertKind,
    episode: Episode,
    change: Literal["raised", "recovered"] = "raised",
) -> UUID:
    """The id of an episode's alert (or recovery): the same wherever the episode is decided."""
    name = episode.opening or episode.started_at.isoformat()
    parts = (model, str(version), kind.value, episode.fingerprint, name, change)
    return uuid5(_EVENT_IDS, "\x00".join(parts))


def report_event_id(model: str, version: int, tested: TestedWindow) -> UUID:
    """The id of a window's report: the same for every replica that tests that window."""
    return uuid5(_EVENT_IDS, "\x00".join((model, str(version), window_key(tested.window))))


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
            event_id=episode_event_id(profile.model, profile.version, transition.kind, episode),
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
        event_id=episode_event_id(
            profile.model, profile.version, transition.kind, episode, change="recovered"
        ),
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

"""``estimated_decay`` under the shipped routing policy: it opens an incident on the default route
(no rollback on an estimate), the later ``metric_decay`` of the same version joins it, and a
retrain in flight mutes it like ``metric_decay``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from contracts import AlertKind, AlertRaised, Severity, alert_fingerprint
from services.incident_log.domain import Incident
from services.incident_log.routing import load_policy, route_for
from services.incident_log.triage import Disposition, triage
from tests.factories import MODEL, T0, make_alert

SHIPPED = load_policy(Path(__file__).resolve().parents[2] / "runbooks" / "routing.yaml")


def _alert(kind: AlertKind, severity: Severity) -> AlertRaised:
    return make_alert(
        model=MODEL,
        model_version=3,
        kind=kind,
        severity=severity,
        fingerprint=alert_fingerprint(MODEL, 3, kind, "recall"),
    )


def test_an_estimate_routes_to_people_not_to_a_rollback() -> None:
    route = route_for(SHIPPED, MODEL, [(AlertKind.ESTIMATED_DECAY, Severity.WARNING)])
    assert route.name == "default"
    assert route.runbooks == []


def test_the_later_metric_decay_joins_the_incident_the_estimate_opened() -> None:
    estimated = _alert(AlertKind.ESTIMATED_DECAY, Severity.WARNING)
    first = triage(
        estimated,
        unresolved=[],
        resolved=[],
        silences=[],
        retraining_models=frozenset(),
        policy=SHIPPED,
        now=T0,
    )
    assert first.disposition is Disposition.OPENED
    incident, _ = Incident.open_from_alert("inc-0001", estimated, SHIPPED, T0)
    later = triage(
        _alert(AlertKind.METRIC_DECAY, Severity.CRITICAL),
        unresolved=[incident],
        resolved=[],
        silences=[],
        retraining_models=frozenset(),
        policy=SHIPPED,
        now=T0 + timedelta(minutes=10),
    )
    assert later.disposition is Disposition.CORRELATED
    assert later.incident is incident


def test_a_retrain_in_flight_mutes_the_estimate() -> None:
    decision = triage(
        _alert(AlertKind.ESTIMATED_DECAY, Severity.WARNING),
        unresolved=[],
        resolved=[],
        silences=[],
        retraining_models=frozenset({MODEL}),
        policy=SHIPPED,
        now=T0,
    )
    assert decision.disposition is Disposition.INHIBITED

"""``residual_drift`` under the shipped routing policy: people on the default route (no rollback
on a change in a regressor's errors), muted while a retrain is in flight, and the later
``metric_decay`` of the same version joins its incident."""

from __future__ import annotations

from datetime import timedelta

from contracts import AlertKind, AlertRaised, Severity, alert_fingerprint
from services.incident_log.domain import Incident
from services.incident_log.routing import route_for
from services.incident_log.triage import Disposition
from tests.factories import MODEL, T0, make_alert
from tests.incident_log.policies import SHIPPED, triage_shipped


def _alert(kind: AlertKind, subject: str, severity: Severity = Severity.WARNING) -> AlertRaised:
    return make_alert(
        model=MODEL,
        model_version=3,
        kind=kind,
        severity=severity,
        fingerprint=alert_fingerprint(MODEL, 3, kind, subject),
    )


def test_residual_drift_routes_to_people_without_a_runbook() -> None:
    route = route_for(SHIPPED, MODEL, [(AlertKind.RESIDUAL_DRIFT, Severity.WARNING)])
    assert (route.name, route.runbooks) == ("default", [])


def test_a_retrain_in_flight_mutes_residual_drift() -> None:
    decision = triage_shipped(
        _alert(AlertKind.RESIDUAL_DRIFT, "residuals"), retraining=frozenset({MODEL})
    )
    assert decision.disposition is Disposition.INHIBITED
    assert decision.suppressed_by == "inhibition:retrain-mutes-decay"


def test_without_a_retrain_residual_drift_opens_an_incident_the_decay_then_joins() -> None:
    drift = _alert(AlertKind.RESIDUAL_DRIFT, "residuals")
    first = triage_shipped(drift)
    assert first.disposition is Disposition.OPENED
    incident, _ = Incident.open_from_alert("inc-0001", drift, SHIPPED, T0)
    later = triage_shipped(
        _alert(AlertKind.METRIC_DECAY, "mae", Severity.CRITICAL),
        unresolved=[incident],
        now=T0 + timedelta(minutes=10),
    )
    assert later.disposition is Disposition.CORRELATED

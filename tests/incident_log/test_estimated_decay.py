"""``estimated_decay`` under the shipped routing policy: it opens an incident on the default route
(no rollback on an estimate), the later ``metric_decay`` of the same version joins it, and a
retrain in flight mutes it like ``metric_decay``."""

from __future__ import annotations

from datetime import timedelta

from contracts import AlertKind, AlertRaised, RunbookRequest, Severity, Tier, alert_fingerprint
from services.incident_log.domain import Incident
from services.incident_log.routing import route_for
from services.incident_log.triage import Disposition
from tests.factories import MODEL, T0, make_alert
from tests.incident_log.policies import SHIPPED, triage_shipped


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
    first = triage_shipped(estimated)
    assert first.disposition is Disposition.OPENED
    incident, _ = Incident.open_from_alert("inc-0001", estimated, SHIPPED, T0)
    later = triage_shipped(
        _alert(AlertKind.METRIC_DECAY, Severity.CRITICAL),
        unresolved=[incident],
        now=T0 + timedelta(minutes=10),
    )
    assert later.disposition is Disposition.CORRELATED
    assert later.incident is incident


def test_a_retrain_in_flight_mutes_the_estimate() -> None:
    decision = triage_shipped(
        _alert(AlertKind.ESTIMATED_DECAY, Severity.WARNING), retraining=frozenset({MODEL})
    )
    assert decision.disposition is Disposition.INHIBITED


def test_the_realised_decay_reroutes_the_estimates_incident_to_its_rollback() -> None:
    incident, opened = Incident.open_from_alert(
        "inc-0001", _alert(AlertKind.ESTIMATED_DECAY, Severity.WARNING), SHIPPED, T0
    )
    assert incident.route is not None
    assert incident.route.name == "default"
    assert incident.tier is Tier.L2  # no level-one runbook for an estimate
    assert not [e for e in opened.events if isinstance(e, RunbookRequest)]

    joined = incident.record_alert(
        _alert(AlertKind.METRIC_DECAY, Severity.CRITICAL), SHIPPED, T0 + timedelta(minutes=10)
    )
    assert incident.route.name == "performance-decay"
    [rerouted] = [entry for entry in joined.timeline if entry.action == "rerouted"]
    assert rerouted.details["from_route"] == "default"
    assert rerouted.details["runbooks"] == ["rollback-model"]
    [request] = [e for e in joined.events if isinstance(e, RunbookRequest)]
    assert (request.runbook, request.incident_id) == ("rollback-model", "inc-0001")
    assert incident.tier is Tier.L2  # no tier is given back


def test_an_acknowledged_incident_is_rerouted_but_its_runbook_is_left_to_the_person() -> None:
    incident, _ = Incident.open_from_alert(
        "inc-0001", _alert(AlertKind.ESTIMATED_DECAY, Severity.WARNING), SHIPPED, T0
    )
    incident.acknowledge("ana", T0 + timedelta(minutes=1))
    joined = incident.record_alert(
        _alert(AlertKind.METRIC_DECAY, Severity.CRITICAL), SHIPPED, T0 + timedelta(minutes=10)
    )
    assert incident.route is not None
    assert incident.route.name == "performance-decay"
    assert [entry.action for entry in joined.timeline].count("rerouted") == 1
    assert not [e for e in joined.events if isinstance(e, RunbookRequest)]


def test_a_route_with_runbooks_is_not_swapped_nor_moved_to_a_later_route() -> None:
    incident, _ = Incident.open_from_alert(
        "inc-0001", _alert(AlertKind.METRIC_DECAY, Severity.CRITICAL), SHIPPED, T0
    )
    joined = incident.record_alert(
        _alert(AlertKind.PROBE_FAILED, Severity.CRITICAL), SHIPPED, T0 + timedelta(minutes=1)
    )
    assert incident.route is not None
    assert incident.route.name == "performance-decay"
    assert "rerouted" not in [entry.action for entry in joined.timeline]
    later, _ = Incident.open_from_alert(
        "inc-0002", _alert(AlertKind.DATA_DRIFT, Severity.WARNING), SHIPPED, T0
    )
    again = later.record_alert(
        _alert(AlertKind.LOW_CONFIDENCE, Severity.WARNING), SHIPPED, T0 + timedelta(minutes=1)
    )
    assert later.route is not None
    assert later.route.name == "default"
    assert "rerouted" not in [entry.action for entry in again.timeline]

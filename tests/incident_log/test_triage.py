"""What an alert does: repeat, silence, inhibit, correlate, reopen or open."""

from __future__ import annotations

from datetime import timedelta

from contracts import AlertKind, AlertRaised, AlertRecovered, Severity, alert_fingerprint
from services.incident_log.domain import Incident
from services.incident_log.routing import Matcher
from services.incident_log.triage import Disposition, Silence, triage
from tests.factories import MODEL, T0, make_alert
from tests.incident_log.policies import make_policy

POLICY = make_policy()
MINUTE = timedelta(minutes=1)


def alert_of(kind: AlertKind, version: int | None = 3, model: str = MODEL) -> AlertRaised:
    return make_alert(
        model=model,
        model_version=version,
        kind=kind,
        fingerprint=alert_fingerprint(model, version, kind, "subject"),
    )


def open_incident(alert: AlertRaised) -> Incident:
    incident, _ = Incident.open_from_alert(f"inc-{alert.kind.value}", alert, POLICY, T0)
    return incident


def decide(
    alert: AlertRaised,
    unresolved: list[Incident] = [],  # noqa: B006  # read-only defaults keep the tests short
    resolved: list[Incident] = [],  # noqa: B006
    silences: list[Silence] = [],  # noqa: B006
    retraining: frozenset[str] = frozenset(),
    now: timedelta = MINUTE,
) -> Disposition:
    return triage(
        alert,
        unresolved=unresolved,
        resolved=resolved,
        silences=silences,
        retraining_models=retraining,
        policy=POLICY,
        now=T0 + now,
    ).disposition


def test_a_first_alert_opens_and_its_repeat_joins_the_same_incident() -> None:
    decay = alert_of(AlertKind.METRIC_DECAY)
    assert decide(decay) is Disposition.OPENED
    assert decide(decay, [open_incident(decay)]) is Disposition.REPEATED


def test_alerts_on_the_same_model_version_within_the_window_correlate() -> None:
    incident = open_incident(alert_of(AlertKind.METRIC_DECAY))
    drift = alert_of(AlertKind.DATA_DRIFT)
    assert decide(drift, [incident]) is Disposition.CORRELATED
    assert (
        decide(alert_of(AlertKind.PROBE_FAILED, version=None), [incident]) is Disposition.CORRELATED
    )
    assert decide(drift, [incident], now=31 * MINUTE) is Disposition.OPENED
    assert decide(alert_of(AlertKind.DATA_DRIFT, version=4), [incident]) is Disposition.OPENED
    assert decide(alert_of(AlertKind.DATA_DRIFT, model="other"), [incident]) is Disposition.OPENED


def test_a_recurrence_soon_after_resolution_reopens_and_a_late_one_opens_anew() -> None:
    decay = alert_of(AlertKind.METRIC_DECAY)
    incident = open_incident(decay)
    incident.recover(
        AlertRecovered(
            producer="monitor",
            model=MODEL,
            kind=decay.kind,
            fingerprint=decay.fingerprint,
            summary="ok",
        ),
        T0,
    )
    assert decide(decay, resolved=[incident], now=59 * MINUTE) is Disposition.REOPENED
    assert decide(decay, resolved=[incident], now=61 * MINUTE) is Disposition.OPENED


def test_an_active_silence_records_the_alert_without_paging() -> None:
    silence = Silence(
        id="s1",
        matcher=Matcher(models=["breast-*"], kinds=[AlertKind.DATA_DRIFT]),
        starts_at=T0,
        ends_at=T0 + 10 * MINUTE,
        created_by="ana",
        reason="feature pipeline migration",
    )
    drift = alert_of(AlertKind.DATA_DRIFT)
    assert decide(drift, silences=[silence]) is Disposition.SILENCED
    assert decide(drift, silences=[silence], now=11 * MINUTE) is Disposition.OPENED
    assert decide(alert_of(AlertKind.METRIC_DECAY), silences=[silence]) is Disposition.OPENED


def test_a_failing_probe_inhibits_drift_alerts_on_the_same_model() -> None:
    probe = open_incident(alert_of(AlertKind.PROBE_FAILED, version=None))
    assert decide(alert_of(AlertKind.DATA_DRIFT, version=3), [probe]) is Disposition.INHIBITED
    assert decide(alert_of(AlertKind.DATA_DRIFT, model="other"), [probe]) is Disposition.OPENED


def test_a_retrain_in_flight_inhibits_decay_alerts_for_its_model() -> None:
    decay = alert_of(AlertKind.METRIC_DECAY)
    assert decide(decay, retraining=frozenset({MODEL})) is Disposition.INHIBITED
    assert decide(decay, retraining=frozenset({"other"})) is Disposition.OPENED


def test_a_repeat_is_counted_even_while_silenced() -> None:
    decay = alert_of(AlertKind.METRIC_DECAY)
    silence = Silence("s1", Matcher(), T0, T0 + 10 * MINUTE, "ana", "maintenance")
    assert decide(decay, [open_incident(decay)], silences=[silence]) is Disposition.REPEATED


def test_severity_is_part_of_the_match() -> None:
    silence = Silence("s1", Matcher(severities=[Severity.INFO]), T0, T0 + MINUTE * 10, "a", "r")
    assert decide(alert_of(AlertKind.METRIC_DECAY), silences=[silence]) is Disposition.OPENED


def test_after_a_rollback_alerts_on_the_restored_version_join_the_incident() -> None:
    incident = open_incident(alert_of(AlertKind.METRIC_DECAY, version=3))
    incident.awaiting_version = 2  # the incident's rollback put v2 back
    assert decide(alert_of(AlertKind.DATA_DRIFT, version=2), [incident]) is Disposition.CORRELATED
    assert decide(alert_of(AlertKind.DATA_DRIFT, version=1), [incident]) is Disposition.OPENED

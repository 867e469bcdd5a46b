"""Admission of retrain asks, the maintenance schedule and the alert policy (pure)."""

from __future__ import annotations

from datetime import timedelta

from contracts import AlertKind, RetrainRefusal, RetrainTrigger, Severity
from services.retrainer.retraining.triggers import (
    AdmissionKind,
    AlertPolicy,
    RetrainAsk,
    RunState,
    RunView,
    admit,
    ask_for_alert,
    scheduled_cause,
)
from tests.factories import T0, make_alert

COOLDOWN = timedelta(minutes=10)


def ask(cause: str = "incident:inc-1", **overrides: object) -> RetrainAsk:
    fields: dict[str, object] = {
        "model": "m",
        "cause": cause,
        "trigger": RetrainTrigger.INCIDENT,
        "requested_by": "ana",
        "reason": "decay",
        "at": T0,
    }
    return RetrainAsk(**(fields | overrides))  # type: ignore[arg-type]


def run(
    run_id: str,
    state: RunState,
    *causes: str,
    finished_minutes_ago: float | None = None,
    parameters: dict[str, object] | None = None,
) -> RunView:
    finished = T0 - timedelta(minutes=finished_minutes_ago) if finished_minutes_ago else None
    return RunView(run_id, state, frozenset(causes), finished, parameters)  # type: ignore[arg-type]


def test_the_first_ask_queues_a_run_that_may_start_at_once() -> None:
    admission = admit(ask(), [], cooldown=COOLDOWN, now=T0)
    assert admission.kind is AdmissionKind.QUEUED
    assert admission.not_before == T0


def test_an_ask_whose_cause_is_queued_or_running_is_merged_into_that_run() -> None:
    for state in (RunState.QUEUED, RunState.RUNNING):
        runs = [run("rt-1", state, "incident:inc-1", "manual:x")]
        admission = admit(ask(), runs, cooldown=COOLDOWN, now=T0)
        assert (admission.kind, admission.run_id) == (AdmissionKind.MERGED, "rt-1")


def test_an_ask_with_a_new_cause_joins_the_queued_run() -> None:
    runs = [run("rt-1", RunState.QUEUED, "manual:x"), run("rt-0", RunState.RUNNING, "manual:y")]
    admission = admit(ask(), runs, cooldown=COOLDOWN, now=T0)
    assert (admission.kind, admission.run_id) == (AdmissionKind.JOINED, "rt-1")


def test_an_ask_while_a_run_trains_queues_one_more_run() -> None:
    admission = admit(ask(), [run("rt-0", RunState.RUNNING, "manual:y")], cooldown=COOLDOWN, now=T0)
    assert admission.kind is AdmissionKind.QUEUED


def test_a_new_run_waits_for_the_cooldown_after_the_last_run() -> None:
    runs = [run("rt-0", RunState.SUCCEEDED, "manual:y", finished_minutes_ago=4)]
    admission = admit(ask(), runs, cooldown=COOLDOWN, now=T0)
    assert admission.kind is AdmissionKind.QUEUED
    assert admission.not_before == T0 + timedelta(minutes=6)


def test_a_cause_already_retrained_for_is_refused_naming_the_run_however_long_ago() -> None:
    for minutes in (4, 4000):
        done = [run("rt-0", RunState.FAILED, "incident:inc-1", finished_minutes_ago=minutes)]
        admission = admit(ask(), done, cooldown=COOLDOWN, now=T0)
        assert (admission.kind, admission.run_id) == (AdmissionKind.REFUSED, "rt-0")
        assert admission.refusal is RetrainRefusal.ALREADY_RETRAINED
        assert "already retrained for in run rt-0 (failed" in admission.reason
    other = [run("rt-0", RunState.SUCCEEDED, "manual:x", finished_minutes_ago=40)]
    admission = admit(ask(), other, cooldown=COOLDOWN, now=T0)
    assert (admission.kind, admission.not_before) == (AdmissionKind.QUEUED, T0)


def test_an_ask_with_other_parameters_than_the_queued_run_is_refused_not_lost_silently() -> None:
    runs = [run("rt-1", RunState.QUEUED, "manual:x", parameters={"C": 2.0})]
    admission = admit(ask(parameters={"C": 0.1}), runs, cooldown=COOLDOWN, now=T0)
    assert admission.kind is AdmissionKind.REFUSED
    assert admission.refusal is RetrainRefusal.CONFLICTING_PARAMETERS
    assert "other training parameters" in admission.reason


def test_the_schedule_asks_once_per_period_counting_from_the_last_ask() -> None:
    since = T0
    assert scheduled_cause(None, last_asked=None, since=since, now=T0 + timedelta(days=9)) is None
    assert scheduled_cause(24, last_asked=None, since=since, now=T0 + timedelta(hours=23)) is None
    due = scheduled_cause(24, last_asked=None, since=since, now=T0 + timedelta(hours=25))
    assert due == f"schedule:{(T0 + timedelta(hours=24)).isoformat()}"
    # A long outage asks once, for the latest due time.
    late = scheduled_cause(24, last_asked=None, since=since, now=T0 + timedelta(hours=75))
    assert late == f"schedule:{(T0 + timedelta(hours=72)).isoformat()}"
    asked = T0 + timedelta(hours=25)
    assert scheduled_cause(24, last_asked=asked, since=since, now=T0 + timedelta(hours=30)) is None


def test_alerts_retrain_only_under_a_policy_that_is_on_and_matches() -> None:
    alert = make_alert(kind=AlertKind.METRIC_DECAY, severity=Severity.CRITICAL)
    assert ask_for_alert(alert, AlertPolicy()) is None
    on = AlertPolicy(enabled=True)
    made = ask_for_alert(alert, on)
    assert made is not None
    assert made.cause == f"alert:{alert.fingerprint}"
    assert made.trigger is RetrainTrigger.POLICY
    assert ask_for_alert(make_alert(severity=Severity.WARNING), on) is None
    assert ask_for_alert(make_alert(kind=AlertKind.PROBE_FAILED), on) is None

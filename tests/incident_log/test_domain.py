"""Incidents without I/O: opening and routing, signals, actions, claims and fenced timers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import (
    AlertKind,
    AlertRaised,
    AlertRecovered,
    EscalationTrigger,
    IncidentEscalated,
    IncidentResolved,
    IncidentStatus,
    MetricsComputed,
    ModelApproved,
    RetrainRequest,
    RunbookFinished,
    RunbookRequest,
    RunbookStarted,
    RunState,
    Severity,
    Tier,
    alert_fingerprint,
)
from services.incident_log.domain import (
    SYSTEM,
    ClaimConflict,
    DomainError,
    Incident,
    InvalidTransition,
    NotResolvable,
    TimerKind,
    TimerRequest,
)
from tests.factories import (
    MODEL,
    T0,
    make_alert,
    make_metrics,
    make_promotion,
    make_rollback,
)
from tests.incident_log.policies import make_policy

POLICY = make_policy()
MINUTE = timedelta(minutes=1)


def drift_alert(**overrides: object) -> AlertRaised:
    fields: dict[str, object] = {
        "kind": AlertKind.DATA_DRIFT,
        "severity": Severity.WARNING,
        "fingerprint": alert_fingerprint(MODEL, 3, AlertKind.DATA_DRIFT, "mean radius"),
        "summary": "drift on mean radius",
    }
    return make_alert(**(fields | overrides))


def recovery_of(alert: AlertRaised) -> AlertRecovered:
    return AlertRecovered(
        producer=alert.producer,
        model=alert.model,
        model_version=alert.model_version,
        kind=alert.kind,
        fingerprint=alert.fingerprint,
        summary="healthy again",
    )


def opened(alert: AlertRaised | None = None, **kwargs: object) -> Incident:
    incident, _ = Incident.open_from_alert("inc-1", alert or make_alert(), POLICY, T0, **kwargs)  # type: ignore[arg-type]
    return incident


def due(incident: Incident, kind: TimerKind, effects_timers: list[TimerRequest]) -> TimerRequest:
    return next(timer for timer in effects_timers if timer.kind is kind)


def test_a_decay_alert_opens_an_incident_routed_to_level_one_with_its_timers() -> None:
    incident, effects = Incident.open_from_alert("inc-1", make_alert(), POLICY, T0)
    assert (incident.status, incident.tier) == (IncidentStatus.OPEN, Tier.L1)
    assert incident.route is not None
    assert incident.route.name == "performance-decay"
    assert [entry.action for entry in effects.timeline] == ["opened", "routed", "runbook_requested"]
    assert [type(event).__name__ for event in effects.events] == [
        "IncidentOpened",
        "RunbookRequest",
    ]
    request = effects.events[1]
    assert isinstance(request, RunbookRequest)
    assert (request.runbook, request.tier, request.run_id) == (
        "rollback-model",
        Tier.L1,
        incident.automatic_run_id(),
    )
    assert (request.model, request.model_version, request.parameters) == (MODEL, 3, {})
    assert sorted((t.kind, t.due_at - T0) for t in effects.timers) == [
        (TimerKind.ACKNOWLEDGE, 10 * MINUTE),
        (TimerKind.MITIGATE, 30 * MINUTE),
    ]


def test_an_alert_no_runbook_covers_goes_straight_to_level_two() -> None:
    incident, effects = Incident.open_from_alert("inc-1", drift_alert(), POLICY, T0)
    assert (incident.status, incident.tier) == (IncidentStatus.OPEN, Tier.L2)
    escalation = next(e for e in effects.events if isinstance(e, IncidentEscalated))
    assert escalation.trigger is EscalationTrigger.NO_RUNBOOK
    assert {t.tier for t in effects.timers} == {Tier.L2}


def test_routing_waits_for_correlated_alerts_and_takes_the_first_matching_route() -> None:
    incident, effects = Incident.open_from_alert(
        "inc-1", drift_alert(), POLICY, T0, group_wait=timedelta(seconds=30)
    )
    (route_timer,) = effects.timers
    assert route_timer.kind is TimerKind.ROUTE
    incident.record_alert(make_alert(), POLICY, T0 + timedelta(seconds=10))
    routed = incident.fire_timer(route_timer, POLICY, T0 + timedelta(seconds=30))
    assert incident.route is not None
    assert incident.route.name == "performance-decay"
    assert incident.tier is Tier.L1
    assert [entry.action for entry in routed.timeline] == ["routed", "runbook_requested"]


def test_a_repeat_counts_without_publishing_and_a_new_signal_is_attached() -> None:
    incident = opened()
    repeat = incident.record_alert(make_alert(), POLICY, T0 + MINUTE)
    assert repeat.empty
    assert incident.alert_count == 2
    attached = incident.record_alert(drift_alert(), POLICY, T0 + 2 * MINUTE)
    assert [entry.action for entry in attached.timeline] == ["alert_correlated"]
    assert len(incident.signals) == 2
    assert incident.last_seen == T0 + 2 * MINUTE


def test_the_incident_resolves_itself_when_every_signal_recovered() -> None:
    decay, drift = make_alert(), drift_alert()
    incident = opened(decay)
    incident.record_alert(drift, POLICY, T0)
    assert incident.recover(recovery_of(decay), T0 + MINUTE).events == []
    effects = incident.recover(recovery_of(drift), T0 + 2 * MINUTE)
    assert incident.status is IncidentStatus.RESOLVED
    assert isinstance(effects.events[-1], IncidentResolved)
    assert incident.resolved_tier is Tier.L1


def test_no_acknowledgement_by_the_timeout_escalates_exactly_once() -> None:
    incident, effects = Incident.open_from_alert("inc-1", make_alert(), POLICY, T0)
    ack_timer = due(incident, TimerKind.ACKNOWLEDGE, effects.timers)
    fired = incident.fire_timer(ack_timer, POLICY, ack_timer.due_at)
    assert incident.tier is Tier.L2
    assert [type(e) for e in fired.events] == [IncidentEscalated]
    assert fired.events[0].trigger is EscalationTrigger.NOT_ACKNOWLEDGED  # type: ignore[attr-defined]
    assert incident.fire_timer(ack_timer, POLICY, ack_timer.due_at + MINUTE).empty
    mitigate_timer = due(incident, TimerKind.MITIGATE, effects.timers)
    assert incident.fire_timer(mitigate_timer, POLICY, mitigate_timer.due_at).empty


def test_an_acknowledgement_before_the_timeout_prevents_the_escalation() -> None:
    incident, effects = Incident.open_from_alert("inc-1", make_alert(), POLICY, T0)
    incident.acknowledge("ana", T0 + MINUTE)
    ack_timer = due(incident, TimerKind.ACKNOWLEDGE, effects.timers)
    assert incident.fire_timer(ack_timer, POLICY, ack_timer.due_at).empty
    assert incident.tier is Tier.L1


def test_not_mitigated_in_time_escalates_but_monitoring_counts_as_mitigated() -> None:
    incident, effects = Incident.open_from_alert("inc-1", make_alert(), POLICY, T0)
    timer = due(incident, TimerKind.MITIGATE, effects.timers)
    incident.acknowledge("ana", T0 + MINUTE)
    incident.start_mitigation("ana", "rolling back", T0 + 2 * MINUTE)
    fired = incident.fire_timer(timer, POLICY, timer.due_at)
    assert fired.events[0].trigger is EscalationTrigger.NOT_MITIGATED  # type: ignore[attr-defined]

    other, effects = Incident.open_from_alert("inc-2", make_alert(), POLICY, T0)
    timer = due(other, TimerKind.MITIGATE, effects.timers)
    other.start_mitigation(SYSTEM, "runbook started", T0 + MINUTE)
    other.start_monitoring(SYSTEM, "runbook verified", T0 + 2 * MINUTE)
    assert other.fire_timer(timer, POLICY, timer.due_at).empty


def test_at_level_three_a_timeout_is_recorded_once_and_goes_nowhere() -> None:
    incident = opened()
    incident.escalate("ana", EscalationTrigger.HUMAN, "need data scientists", T0)
    effects = incident.escalate("bo", EscalationTrigger.HUMAN, "need the owners", T0)
    assert incident.tier is Tier.L3
    ack_timer = due(incident, TimerKind.ACKNOWLEDGE, effects.timers)
    fired = incident.fire_timer(ack_timer, POLICY, ack_timer.due_at)
    assert [entry.action for entry in fired.timeline] == ["escalation_exhausted"]
    mitigate_timer = due(incident, TimerKind.MITIGATE, effects.timers)
    assert incident.fire_timer(mitigate_timer, POLICY, mitigate_timer.due_at).empty
    with pytest.raises(DomainError, match="highest tier"):
        incident.escalate("cy", EscalationTrigger.HUMAN, "higher!", T0)


def test_escalation_needs_a_new_acknowledgement_at_the_next_tier() -> None:
    incident = opened()
    incident.acknowledge("ana", T0)
    incident.escalate("ana", EscalationTrigger.HUMAN, "out of my depth", T0 + MINUTE)
    assert (incident.status, incident.acknowledged_at) == (IncidentStatus.OPEN, None)
    incident.acknowledge("bo", T0 + 2 * MINUTE)
    with pytest.raises(DomainError, match="already acknowledged at L2 by bo"):
        incident.acknowledge("cy", T0 + 3 * MINUTE)


def test_a_claimed_incident_needs_an_explicit_take_over_and_the_claim_lapses() -> None:
    incident = opened()
    lease = timedelta(minutes=30)
    incident.claim("ana", T0, lease)
    assert incident.held_by(T0 + MINUTE) == "ana"
    with pytest.raises(ClaimConflict, match="held by ana"):
        incident.acknowledge("bo", T0 + MINUTE)
    with pytest.raises(ClaimConflict):
        incident.claim("bo", T0 + MINUTE, lease)
    taken = incident.acknowledge("bo", T0 + MINUTE, take_over=True)
    assert [entry.action for entry in taken.timeline] == ["took_over", "acknowledged"]
    assert incident.held_by(T0 + MINUTE) == "bo"
    assert incident.held_by(T0 + 2 * lease) is None
    incident.comment("ana", "back from lunch", T0 + 2 * lease)


def test_activity_renews_the_holders_lease() -> None:
    incident = opened()
    lease = timedelta(minutes=30)
    incident.claim("ana", T0, lease)
    incident.comment("ana", "still on it", T0 + 20 * MINUTE)
    assert incident.held_by(T0 + 45 * MINUTE) == "ana"


def test_a_performance_incident_resolves_only_once_labels_confirm_unless_forced() -> None:
    decay = make_alert()
    incident = opened(decay)
    with pytest.raises(NotResolvable, match="labels have not confirmed"):
        incident.resolve("ana", "looks fine to me", T0)
    effects = incident.resolve("ana", "false alarm: label pipeline bug", T0, force=True)
    assert effects.timeline[-1].details == {
        "reason": "false alarm: label pipeline bug",
        "forced": True,
    }

    drift = opened(drift_alert())
    drift.resolve("bo", "upstream fix deployed", T0)
    assert drift.status is IncidentStatus.RESOLVED


def test_resolved_incidents_refuse_actions_until_reopened() -> None:
    incident = opened(drift_alert())
    incident.resolve("bo", "fixed", T0)
    with pytest.raises(InvalidTransition, match="reopen it first"):
        incident.acknowledge("bo", T0)
    incident.reopen("bo", "not fixed after all", T0 + MINUTE)
    assert (incident.status, incident.resolved_at) == (IncidentStatus.OPEN, None)


def test_a_recurrence_reopens_and_reactivates_the_signal() -> None:
    decay = make_alert()
    incident = opened(decay)
    incident.recover(recovery_of(decay), T0 + MINUTE)
    assert incident.resolved_at == T0 + MINUTE
    effects = incident.reopen_on_recurrence(decay, POLICY, T0 + 5 * MINUTE)
    assert incident.status is IncidentStatus.OPEN
    assert incident.signals[decay.fingerprint].active
    assert [entry.action for entry in effects.timeline] == ["reopened", "signal_refired"]


def test_stale_timers_from_before_a_reopen_do_nothing() -> None:
    decay = make_alert()
    incident, effects = Incident.open_from_alert("inc-1", decay, POLICY, T0)
    old_ack = due(incident, TimerKind.ACKNOWLEDGE, effects.timers)
    incident.recover(recovery_of(decay), T0 + MINUTE)
    incident.reopen_on_recurrence(decay, POLICY, T0 + 2 * MINUTE)
    assert incident.fire_timer(old_ack, POLICY, old_ack.due_at).empty


def started(incident: Incident, run_id: str | None = None) -> RunbookStarted:
    return RunbookStarted(
        producer="runbook-runner",
        run_id=run_id or incident.automatic_run_id(),
        incident_id=incident.id,
        model=MODEL,
        runbook="rollback-model",
        script_sha256="ab" * 32,
        argv=["python", "runbooks/rollback_model.py"],
    )


def finished(incident: Incident, state: RunState, run_id: str | None = None) -> RunbookFinished:
    return RunbookFinished(
        producer="runbook-runner",
        run_id=run_id or incident.automatic_run_id(),
        incident_id=incident.id,
        model=MODEL,
        runbook="rollback-model",
        state=state,
        script_sha256="ab" * 32,
        exit_code=0,
        verify_exit_code=1 if state is RunState.VERIFY_FAILED else 0,
        stdout="rolled back to v2",
        verify_output="recall 0.81 < 0.95",
        detail="verification exited 1" if state is RunState.VERIFY_FAILED else "",
    )


def test_a_started_runbook_means_mitigation_and_a_verified_one_monitoring() -> None:
    incident = opened()
    effects = incident.runbook_started(started(incident), T0 + MINUTE)
    assert incident.status is IncidentStatus.MITIGATING
    assert [e.action for e in effects.timeline] == ["runbook_started", "status_mitigating"]
    incident.runbook_finished(finished(incident, RunState.SUCCEEDED), T0 + 2 * MINUTE)
    assert (incident.status, incident.tier) == (IncidentStatus.MONITORING, Tier.L1)


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        (RunState.VERIFY_FAILED, EscalationTrigger.VERIFICATION_FAILED),
        (RunState.FAILED, EscalationTrigger.RUNBOOK_FAILED),
        (RunState.TIMED_OUT, EscalationTrigger.RUNBOOK_FAILED),
        (RunState.ABANDONED, EscalationTrigger.RUNBOOK_FAILED),
        (RunState.REFUSED, EscalationTrigger.RUNBOOK_FAILED),
    ],
)
def test_a_failed_runbook_escalates_to_level_two_with_its_output(
    state: RunState, trigger: EscalationTrigger
) -> None:
    incident = opened()
    incident.runbook_started(started(incident), T0)
    effects = incident.runbook_finished(finished(incident, state), T0 + MINUTE)
    assert incident.tier is Tier.L2
    (escalation,) = [e for e in effects.events if isinstance(e, IncidentEscalated)]
    assert escalation.trigger is trigger
    assert state.value in escalation.reason
    output = effects.timeline[0].details
    assert (output["stdout"], output["verify_output"]) == (
        "rolled back to v2",
        "recall 0.81 < 0.95",
    )


@pytest.mark.parametrize(
    ("state", "detail"),
    [
        (RunState.EXPIRED, "asked for 2400 s ago, longer than the maximum queue age of 1800 s"),
        (
            RunState.SKIPPED,
            "command found nothing to do (exit 5): nothing to do: version 3 of breast-cancer "
            "no longer serves (now champion v2, revision 5)",
        ),
    ],
)
def test_a_run_that_did_not_act_escalates_like_one_that_could_not_run_but_not_as_a_failure(
    state: RunState, detail: str
) -> None:
    incident = opened()
    run = finished(incident, state).model_copy(
        update={"detail": detail, "exit_code": None, "verify_exit_code": None}
    )
    effects = incident.runbook_finished(run, T0 + MINUTE)
    assert incident.tier is Tier.L2
    (escalation,) = [e for e in effects.events if isinstance(e, IncidentEscalated)]
    assert escalation.trigger is EscalationTrigger.RUNBOOK_NOT_APPLIED
    assert escalation.reason == f"runbook rollback-model ended {state.value}: {detail}"
    assert effects.timeline[0].details["state"] == state.value


@pytest.mark.parametrize("state", [RunState.EXPIRED, RunState.SKIPPED])
def test_a_run_that_did_not_act_changes_nothing_while_a_fix_is_monitored(state: RunState) -> None:
    incident = opened()
    incident.follow_model(make_promotion(incident_id=incident.id), T0 + MINUTE)
    assert incident.status is IncidentStatus.MONITORING
    effects = incident.runbook_finished(finished(incident, state), T0 + 2 * MINUTE)
    assert (incident.status, incident.tier) == (IncidentStatus.MONITORING, Tier.L1)
    assert [e.action for e in effects.timeline] == ["runbook_finished"]
    assert effects.events == []


def test_the_level_one_request_names_the_version_the_incident_is_about() -> None:
    _, effects = Incident.open_from_alert("inc-1", make_alert(model_version=7), POLICY, T0)
    (request,) = [e for e in effects.events if isinstance(e, RunbookRequest)]
    assert (request.runbook, request.model_version) == ("rollback-model", 7)


def test_a_failed_runbook_tries_the_next_of_the_chain_first() -> None:
    policy = make_policy(
        routes=[
            {
                "name": "decay",
                "match": {"kinds": ["metric_decay"]},
                "runbooks": ["rollback-model", "recover-scorer"],
                "tiers": POLICY.routes[0].tiers,
            },
            {"name": "default", "tiers": POLICY.routes[0].tiers},
        ]
    )
    incident, _ = Incident.open_from_alert("inc-1", make_alert(), policy, T0)
    first = incident.automatic_run_id()
    effects = incident.runbook_finished(finished(incident, RunState.FAILED, first), T0 + MINUTE)
    (request,) = [e for e in effects.events if isinstance(e, RunbookRequest)]
    assert request.runbook == "recover-scorer"
    assert request.run_id != first
    assert incident.tier is Tier.L1


def test_results_of_other_runs_are_recorded_but_change_nothing() -> None:
    incident = opened()
    effects = incident.runbook_finished(finished(incident, RunState.FAILED, "someone-else"), T0)
    assert [e.action for e in effects.timeline] == ["runbook_finished"]
    assert incident.tier is Tier.L1


def test_people_can_run_runbooks_request_retrains_and_attach_reports() -> None:
    incident = opened(drift_alert())
    run = incident.request_runbook(
        "bo", "drift-diagnosis", "look closer", {"window": 500}, "r1", T0
    )
    (request,) = run.events
    assert isinstance(request, RunbookRequest)
    assert (request.requested_by, request.tier, request.parameters["window"]) == (
        "bo",
        Tier.L2,
        500,
    )
    retrain = incident.request_retrain("bo", "drift on 3 features", T0)
    (ask,) = retrain.events
    assert isinstance(ask, RetrainRequest)
    assert (ask.cause, ask.incident_id) == ("incident:inc-1", "inc-1")
    report = incident.attach_report("bo", "drift diagnosis", {"top": ["mean radius"]}, T0)
    assert report.timeline[0].details == {
        "title": "drift diagnosis",
        "report": {"top": ["mean radius"]},
    }


def healthy_window(version: int, breaching: list[str] | None) -> MetricsComputed:
    return make_metrics(model_version=version, breaching=breaching)


def test_a_promotion_means_monitoring_until_the_new_champion_proves_healthy() -> None:
    incident = opened()
    incident.escalate("ana", EscalationTrigger.HUMAN, "retrain needed", T0)
    promoted = make_promotion(incident_id=incident.id)
    effects = incident.follow_model(promoted, T0 + MINUTE)
    assert [e.action for e in effects.timeline] == [
        "model_promoted",
        "status_mitigating",
        "status_monitoring",
    ]
    assert incident.awaiting_version == 4
    assert incident.confirm_with_metrics(healthy_window(3, []), T0).empty  # the old champion
    assert incident.confirm_with_metrics(healthy_window(4, ["recall"]), T0).empty  # not healthy
    assert incident.confirm_with_metrics(healthy_window(4, None), T0).empty  # too few labels
    resolved = incident.confirm_with_metrics(healthy_window(4, []), T0 + 2 * MINUTE)
    assert incident.status is IncidentStatus.RESOLVED
    assert "v4 healthy on 200 labels (recall 0.970)" in resolved.timeline[-1].details["reason"]
    assert incident.resolved_tier is Tier.L2


def test_retraining_steps_land_on_the_timeline_with_their_actor() -> None:
    incident = opened()
    approved = ModelApproved(
        producer="retrainer",
        model=MODEL,
        version=4,
        request_id="pr-1",
        approver="kim",
        comment="gate passed",
        incident_id=incident.id,
    )
    effects = incident.follow_model(approved, T0)
    (entry,) = effects.timeline
    assert (entry.action, entry.actor, entry.details["text"]) == (
        "model_approved",
        "kim",
        "gate passed",
    )
    assert incident.status is IncidentStatus.OPEN


def test_a_window_that_began_before_the_new_champion_took_over_confirms_nothing() -> None:
    incident = opened()
    incident.escalate("ana", EscalationTrigger.HUMAN, "retrain needed", T0)
    promoted = make_promotion(incident_id=incident.id, occurred_at=T0 + MINUTE)
    incident.follow_model(promoted, T0 + MINUTE)
    assert incident.confirm_with_metrics(healthy_window(4, []), T0 + 2 * MINUTE).empty


def test_a_rollback_waits_for_its_runbooks_verification_before_monitoring() -> None:
    incident = opened()
    incident.runbook_started(started(incident), T0)
    rolled_back = make_rollback(incident_id=incident.id)
    incident.follow_model(rolled_back, T0)
    assert (incident.status, incident.awaiting_version) == (IncidentStatus.MITIGATING, 2)

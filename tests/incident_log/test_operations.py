"""The incident log's use cases on a real database (SQLite file and PostgreSQL), simulated clock."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select, update

from contracts import (
    AlertKind,
    AlertRaised,
    AlertRecovered,
    EscalationTrigger,
    HeartbeatEchoed,
    IncidentEscalated,
    IncidentOpened,
    IncidentStatus,
    RetrainRequest,
    RetrainTrigger,
    RunbookFinished,
    RunbookStarted,
    RunState,
    Severity,
    Tier,
    alert_fingerprint,
)
from services.incident_log.domain import Incident
from services.incident_log.paging.channels import Channels
from services.incident_log.paging.dispatcher import Dispatcher, PagingConfig
from services.incident_log.paging.health import paging_probe
from services.incident_log.paging.tables import NotificationRow
from services.incident_log.routing import Matcher, RoutingPolicy
from services.incident_log.service import IncidentLog, UnknownIncident
from services.incident_log.store import IncidentStore
from services.incident_log.tables import AlertRow, IncidentRow, SilenceRow, TimelineRow
from services.runtime import (
    OutboxMessage,
    Rejected,
    Sessions,
)
from tests.clock import FakeClock
from tests.factories import (
    MODEL,
    T0,
    make_alert,
    make_metrics,
    make_promotion,
    make_rollback,
)
from tests.incident_log.policies import make_policy

MINUTE = timedelta(minutes=1)


@pytest.fixture
def clock() -> FakeClock[datetime]:
    return FakeClock(T0)


def incident_log(
    sessions: Sessions, clock: FakeClock[datetime], policy: RoutingPolicy | None = None
) -> IncidentLog:
    return IncidentLog(sessions, policy or make_policy(), clock=clock)


async def incidents(sessions: Sessions) -> list[Incident]:
    async with sessions() as session:
        rows = (await session.exec(select(IncidentRow.id))).all()
        store = IncidentStore(session)
        loaded = [await store.get(row, for_update=False) for row in rows]
        return [incident for incident in loaded if incident is not None]


async def published(sessions: Sessions, event_type: str) -> int:
    async with sessions() as session:
        count = await session.exec(
            select(func.count()).where(col(OutboxMessage.event_type) == event_type)
        )
        return int(count.one())


async def actions(sessions: Sessions, incident_id: str) -> list[str]:
    async with sessions() as session:
        rows = await IncidentStore(session).timeline(incident_id)
        return [row.action for row in rows]


async def test_an_alert_opens_one_incident_routed_once_to_level_one(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    log = incident_log(sessions, clock)
    await log.on_alerts([make_alert()])
    (incident,) = await incidents(sessions)
    assert (incident.status, incident.tier) == (IncidentStatus.OPEN, Tier.L1)
    assert await actions(sessions, incident.id) == ["opened", "routed", "runbook_requested"]
    assert await published(sessions, "runbook.request") == 1
    assert await published(sessions, "incident.opened") == 1


async def test_no_acknowledgement_by_the_timeout_escalates_once_even_across_a_restart(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    await incident_log(sessions, clock).on_alerts([make_alert()])
    clock.advance(9 * MINUTE)
    restarted = incident_log(sessions, clock)  # a new process on the same database
    assert await restarted.fire_due_timers() == 0
    clock.advance(2 * MINUTE)
    assert await restarted.fire_due_timers() == 1
    assert await incident_log(sessions, clock).fire_due_timers() == 0
    (incident,) = await incidents(sessions)
    assert incident.tier is Tier.L2
    assert await published(sessions, "incident.escalated") == 1
    assert (await actions(sessions, incident.id)).count("escalated") == 1


async def test_an_acknowledgement_before_the_timeout_means_no_escalation(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    log = incident_log(sessions, clock)
    await log.on_alerts([make_alert()])
    (incident,) = await incidents(sessions)
    clock.advance(5 * MINUTE)
    await log.act(incident.id, lambda i, now: i.acknowledge("ana", now))
    clock.advance(6 * MINUTE)
    await incident_log(sessions, clock).fire_due_timers()
    (incident,) = await incidents(sessions)
    assert (incident.status, incident.tier) == (IncidentStatus.ACKNOWLEDGED, Tier.L1)
    assert await published(sessions, "incident.escalated") == 0


async def test_a_thousand_copies_of_an_alert_make_one_incident_with_the_right_count(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    unique_alerts = [make_alert(summary=f"copy {n}") for n in range(700)]
    redelivered = random.Random(7).sample(unique_alerts, 300)  # same event ids again
    stream = unique_alerts + redelivered
    random.Random(11).shuffle(stream)
    log = incident_log(sessions, clock)
    for start in range(0, len(stream), 64):
        await log.on_alerts(stream[start : start + 64])
    (incident,) = await incidents(sessions)
    assert incident.alert_count == 700
    assert await published(sessions, "incident.opened") == 1
    async with sessions() as session:
        logged = await session.exec(select(func.count()).select_from(AlertRow))
        assert logged.one() == 700


async def test_drift_low_confidence_and_decay_on_one_version_become_one_incident(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    policy = make_policy(group_wait_seconds=30)
    log = incident_log(sessions, clock, policy)

    def alert(kind: AlertKind) -> AlertRaised:
        return make_alert(kind=kind, fingerprint=alert_fingerprint(MODEL, 3, kind, "x"))

    await log.on_alerts([alert(AlertKind.DATA_DRIFT)])
    clock.advance(10 * timedelta(seconds=1))
    await log.on_alerts([alert(AlertKind.LOW_CONFIDENCE), alert(AlertKind.METRIC_DECAY)])
    clock.advance(timedelta(seconds=25))
    assert await log.fire_due_timers() == 1
    (incident,) = await incidents(sessions)
    assert len(incident.signals) == 3
    assert incident.route is not None
    assert incident.route.name == "performance-decay"
    assert incident.tier is Tier.L1
    assert await published(sessions, "incident.opened") == 1
    assert await published(sessions, "incident.alert_attached") == 2


async def test_a_drift_incident_goes_straight_to_level_two(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    drift = make_alert(
        kind=AlertKind.DATA_DRIFT,
        fingerprint=alert_fingerprint(MODEL, 3, AlertKind.DATA_DRIFT, "a"),
    )
    await incident_log(sessions, clock).on_alerts([drift])
    (incident,) = await incidents(sessions)
    assert incident.tier is Tier.L2
    async with sessions() as session:
        escalation = (
            await session.exec(select(TimelineRow).where(TimelineRow.action == "escalated"))
        ).one()
    assert escalation.details["trigger"] == EscalationTrigger.NO_RUNBOOK.value


async def test_recovery_resolves_and_a_recurrence_within_the_window_reopens(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    log = incident_log(sessions, clock)
    decay = make_alert()
    await log.on_alerts([decay])
    clock.advance(MINUTE)
    await log.on_recoveries(
        [
            AlertRecovered(
                producer="monitor",
                model=MODEL,
                model_version=3,
                kind=decay.kind,
                fingerprint=decay.fingerprint,
                summary="recall back",
            )
        ]
    )
    (incident,) = await incidents(sessions)
    assert incident.status is IncidentStatus.RESOLVED
    clock.advance(10 * MINUTE)
    await log.on_alerts([make_alert(summary="again")])
    (incident,) = await incidents(sessions)
    assert incident.status is IncidentStatus.OPEN
    assert "reopened" in await actions(sessions, incident.id)


async def test_silenced_and_inhibited_alerts_are_kept_but_page_no_one(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    log = incident_log(sessions, clock)
    await log.create_silence(
        Matcher(kinds=[AlertKind.LOW_CONFIDENCE]),
        starts_at=None,
        ends_at=T0 + 60 * MINUTE,
        actor="ana",
        reason="threshold being retuned",
    )
    await log.on_retrain_request(
        RetrainRequest(
            producer="incident-log",
            model=MODEL,
            trigger=RetrainTrigger.MANUAL,
            cause="manual:1",
            requested_by="ana",
            reason="refresh",
        )
    )
    low = make_alert(
        kind=AlertKind.LOW_CONFIDENCE,
        fingerprint=alert_fingerprint(MODEL, 3, AlertKind.LOW_CONFIDENCE, "rate"),
    )
    await log.on_alerts([low, make_alert()])
    assert await incidents(sessions) == []
    async with sessions() as session:
        rows = (await session.exec(select(AlertRow).order_by(col(AlertRow.received_at)))).all()
    assert {(row.disposition, row.suppressed_by) for row in rows} == {
        ("silenced", next(iter(await _silence_ids(sessions)))),
        ("inhibited", "inhibition:retrain-mutes-decay"),
    }


async def _silence_ids(sessions: Sessions) -> list[str]:
    async with sessions() as session:
        return [f"silence:{row}" for row in (await session.exec(select(SilenceRow.id))).all()]


async def test_acting_on_an_unknown_incident_is_refused(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    with pytest.raises(UnknownIncident):
        await incident_log(sessions, clock).act("inc-nope", lambda i, now: i.acknowledge("a", now))


async def test_two_incidents_cannot_hold_the_same_open_fingerprint(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    alert = make_alert()
    await incident_log(sessions, clock).on_alerts([alert])
    twin, effects = Incident.open_from_alert("inc-twin", alert, make_policy(), T0)

    async def save_twin() -> None:
        async with sessions() as session, session.begin():
            store = IncidentStore(session)
            store.save(twin)
            store.record(twin, effects)

    with pytest.raises(IntegrityError):
        await save_twin()
    assert len(await incidents(sessions)) == 1
    assert await published(sessions, IncidentOpened.model_fields["type"].default) == 1
    assert await published(sessions, IncidentEscalated.model_fields["type"].default) == 0


async def test_runbook_results_drive_a_level_one_incident(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    log = incident_log(sessions, clock)
    await log.on_alerts([make_alert()])
    (incident,) = await incidents(sessions)
    run_id = incident.automatic_run_id()
    common = {
        "producer": "runbook-runner",
        "run_id": run_id,
        "incident_id": incident.id,
        "model": MODEL,
        "runbook": "rollback-model",
    }
    await log.on_runbook_result(
        RunbookStarted(**common, script_sha256="ab" * 32, argv=["python", "x.py"])
    )
    (incident,) = await incidents(sessions)
    assert incident.status is IncidentStatus.MITIGATING
    finished = RunbookFinished(
        **common, state=RunState.VERIFY_FAILED, verify_exit_code=1, detail="recall still low"
    )
    await log.on_runbook_result(finished)
    await log.on_runbook_result(finished)  # redelivered: handled once
    (incident,) = await incidents(sessions)
    assert (incident.status, incident.tier) == (IncidentStatus.OPEN, Tier.L2)
    assert (await actions(sessions, incident.id)).count("escalated") == 1
    with pytest.raises(Rejected, match="no incident 'inc-gone'"):
        await log.on_runbook_result(
            RunbookFinished(**(common | {"incident_id": "inc-gone"}), state=RunState.SUCCEEDED)
        )


async def test_a_promotion_with_a_healthy_window_resolves_the_incident(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    log = incident_log(sessions, clock)
    await log.on_alerts([make_alert()])
    (incident,) = await incidents(sessions)
    promoted = make_promotion(incident_id=incident.id)
    await log.on_model_news(promoted)
    await log.on_model_news(promoted)  # redelivered: once
    window = make_metrics(model_version=4, predictions=210)
    await log.on_metrics([window])
    (incident,) = await incidents(sessions)
    assert incident.status is IncidentStatus.RESOLVED
    assert (await actions(sessions, incident.id)).count("model_promoted") == 1
    assert await published(sessions, "incident.resolved") == 1


async def test_alerts_on_the_version_a_rollback_restored_join_the_same_incident(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    log = incident_log(sessions, clock)
    await log.on_alerts([make_alert()])
    (incident,) = await incidents(sessions)
    await log.on_model_news(make_rollback(incident_id=incident.id))
    drift_on_v2 = make_alert(
        model_version=2,
        kind=AlertKind.DATA_DRIFT,
        fingerprint=alert_fingerprint(MODEL, 2, AlertKind.DATA_DRIFT, "mean radius"),
    )
    await log.on_alerts([drift_on_v2])
    (incident,) = await incidents(sessions)
    assert drift_on_v2.fingerprint in incident.signals


async def test_heartbeat_alerts_open_nothing_and_are_echoed_once_each_by_the_dispatcher(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    def heartbeat(fingerprint: str) -> AlertRaised:
        return make_alert(
            model="vigil",
            model_version=None,
            kind=AlertKind.HEARTBEAT,
            severity=Severity.INFO,
            fingerprint=fingerprint,
        )

    beats = [
        heartbeat("vigil:v-:heartbeat:supervisor-1"),
        heartbeat("vigil:v-:heartbeat:"),  # no subject: the fingerprint is the source
        heartbeat("vigil:v-:heartbeat:" + "x" * 480),  # longer than a source may be
    ]
    log = incident_log(sessions, clock)
    await log.on_alerts([beats[0], make_alert(), *beats[1:], beats[0]])
    await log.on_alerts(beats)  # redelivered: nothing new

    assert [incident.kind for incident in await incidents(sessions)] == [AlertKind.METRIC_DECAY]
    async with httpx.AsyncClient() as http:
        dispatcher = Dispatcher(sessions, Channels(http, None), PagingConfig(), clock=clock)
        assert await dispatcher.echo_heartbeats() == 3
        assert await dispatcher.echo_heartbeats() == 0
    assert await published(sessions, "heartbeat.echoed") == 3
    async with sessions() as session:
        rows = (await session.exec(select(OutboxMessage.payload))).all()
    echoes = [
        HeartbeatEchoed.model_validate_json(payload)
        for payload in rows
        if '"heartbeat.echoed"' in payload
    ]
    assert sorted(echo.source for echo in echoes) == sorted(
        ["supervisor-1", "vigil:v-:heartbeat:", "x" * 200]
    )
    assert {echo.alert_event_id for echo in echoes} == {beat.event_id for beat in beats}
    assert all(echo.received_at == clock.now for echo in echoes)


async def test_a_page_that_reached_nobody_on_an_open_incident_is_a_paging_failed_reading(
    sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    log = incident_log(sessions, clock)
    await log.on_alerts([make_alert()])
    (incident,) = await incidents(sessions)
    probe = paging_probe(sessions)
    (reading,) = await probe()
    assert (reading.kind, reading.bad) == (AlertKind.PAGING_FAILED, False)

    async with sessions() as session, session.begin():
        for number, status in enumerate(["failed", "delivered", "retrying"]):
            session.add(
                NotificationRow(
                    id=f"ntf-{number}",
                    page_id="page-1",
                    incident_id=incident.id,
                    person="ana",
                    reason="page",
                    tier="L1",
                    status=status,
                    last_error="HTTP 503 from the receiver" if status == "failed" else None,
                    created_at=clock.now,
                )
            )
    (reading,) = await probe()
    assert reading.bad
    assert reading.evidence == {
        "failed": 1,
        "incidents": [incident.id],
        "people": ["ana"],
        "last_error": "HTTP 503 from the receiver",
    }

    async with sessions() as session, session.begin():
        await session.exec(update(IncidentRow).values(status="resolved"))
    (reading,) = await probe()
    assert not reading.bad

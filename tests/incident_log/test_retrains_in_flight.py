"""The retrain-in-flight inhibition follows the retrainer's answers, on SQLite and PostgreSQL:
a refusal or the run's end lifts it at once, no answer in time lifts it too, and every end is on
the incident's timeline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from contracts import (
    AlertKind,
    AlertRaised,
    RetrainAnswer,
    RetrainAnswered,
    RetrainFinished,
    RetrainRefusal,
    RetrainRequest,
    RetrainTrigger,
    alert_fingerprint,
)
from services.incident_log.service import IncidentLog
from services.incident_log.store import IncidentStore
from services.incident_log.tables import AlertRow, RetrainRow
from services.runtime import (
    Sessions,
)
from tests.clock import FakeClock
from tests.factories import MODEL, T0, make_alert
from tests.incident_log.policies import make_policy

MINUTE = timedelta(minutes=1)


@pytest.fixture
def clock() -> FakeClock[datetime]:
    return FakeClock(T0)


@pytest.fixture
def log(sessions: Sessions, clock: FakeClock[datetime]) -> IncidentLog:
    return IncidentLog(sessions, make_policy(retrain_answer_timeout_minutes=5), clock=clock)


def ask(incident_id: str | None = "inc-1") -> RetrainRequest:
    return RetrainRequest(
        producer="incident-log",
        model=MODEL,
        trigger=RetrainTrigger.INCIDENT,
        cause=f"incident:{incident_id}",
        incident_id=incident_id,
        requested_by="ana",
        reason="decay",
    )


def answer(request: RetrainRequest, kind: RetrainAnswer, **fields: Any) -> RetrainAnswered:
    values: dict[str, Any] = {
        "producer": "retrainer",
        "model": request.model,
        "ask_event_id": request.event_id,
        "cause": request.cause,
        "answer": kind,
        "run_id": "rt-1",
        "reason": f"{kind.value} for the test",
        "incident_id": request.incident_id,
        "requested_by": request.requested_by,
    }
    return RetrainAnswered(**(values | fields))


def finished(run_id: str = "rt-1", incident_id: str | None = "inc-1") -> RetrainFinished:
    return RetrainFinished(
        producer="retrainer",
        model=MODEL,
        run_id=run_id,
        incident_id=incident_id,
        failure="the retrained model is byte-identical to champion v3",
    )


_metrics = iter(range(10_000))


def decay() -> AlertRaised:
    """A decay alert with a fingerprint no incident holds yet (a repeat is never inhibited)."""
    metric = f"metric-{next(_metrics)}"
    return make_alert(fingerprint=alert_fingerprint(MODEL, 3, AlertKind.METRIC_DECAY, metric))


async def disposition(log: IncidentLog, sessions: Sessions, alert: AlertRaised) -> str:
    await log.on_alerts([alert])
    async with sessions() as session:
        row = (
            await session.exec(select(AlertRow).where(AlertRow.event_id == alert.event_id))
        ).one()
    return row.disposition


async def opened_incident(log: IncidentLog, sessions: Sessions) -> str:
    """Open an incident (by a first decay alert) and return its id."""
    alert = decay()
    await log.on_alerts([alert])
    async with sessions() as session:
        row = (
            await session.exec(select(AlertRow).where(AlertRow.event_id == alert.event_id))
        ).one()
    assert row.incident_id is not None
    return row.incident_id


async def timeline(sessions: Sessions, incident_id: str) -> list[tuple[str, dict[str, Any]]]:
    async with sessions() as session:
        rows = await IncidentStore(session).timeline(incident_id)
    return [(row.action, dict(row.details)) for row in rows]


async def retrain_rows(sessions: Sessions) -> list[RetrainRow]:
    async with sessions() as session:
        return list((await session.exec(select(RetrainRow).order_by(col(RetrainRow.id)))).all())


async def test_an_ask_merged_into_a_finished_run_is_refused_and_lifts_the_inhibition_at_once(
    log: IncidentLog, sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    incident_id = await opened_incident(log, sessions)
    first = ask(incident_id)
    await log.on_retrain_request(first)
    await log.on_model_news(answer(first, RetrainAnswer.QUEUED))
    assert await disposition(log, sessions, decay()) == "inhibited"
    await log.on_model_news(finished(incident_id=incident_id))
    assert await disposition(log, sessions, decay()) != "inhibited"

    # The defect: the same cause asked again was merged into the finished run and never
    # answered, so decay alerts stayed muted for the whole retrain timeout.
    again = ask(incident_id)
    await log.on_retrain_request(again)
    assert await disposition(log, sessions, decay()) == "inhibited"  # awaiting the answer
    refused = answer(
        again,
        RetrainAnswer.REFUSED,
        refusal=RetrainRefusal.ALREADY_RETRAINED,
        reason="incident:x was already retrained for in run rt-1",
    )
    await log.on_model_news(refused)
    assert await disposition(log, sessions, decay()) != "inhibited"

    entries = await timeline(sessions, incident_id)
    answers = [details for action, details in entries if action == "retrain_answered"]
    assert [(a["answer"], a["in_flight"]) for a in answers] == [
        ("queued", True),
        ("refused", False),
    ]
    assert answers[1]["reason"] == "incident:x was already retrained for in run rt-1"
    assert [row.ended_because for row in await retrain_rows(sessions)] == [
        "run rt-1 ended (failed: the retrained model is byte-identical to champion v3)",
        "the retrainer refused the ask: incident:x was already retrained for in run rt-1",
    ]


async def test_no_answer_in_time_lifts_the_inhibition_and_says_so_on_the_timeline(
    log: IncidentLog, sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    incident_id = await opened_incident(log, sessions)
    await log.on_retrain_request(ask(incident_id))
    clock.advance(4 * MINUTE)
    assert await disposition(log, sessions, decay()) == "inhibited"
    assert await log.lapse_retrains() == 0
    clock.advance(1 * MINUTE)
    assert await disposition(log, sessions, decay()) != "inhibited"
    assert await log.lapse_retrains() == 1
    assert await log.lapse_retrains() == 0  # once
    [(action, details)] = [
        entry for entry in await timeline(sessions, incident_id) if "retrain_no" in entry[0]
    ]
    assert action == "retrain_no_longer_in_flight"
    assert details["why"] == "the retrainer did not answer within 5 min"
    # A late answer records what the retrainer did but does not bring the inhibition back.
    [row] = await retrain_rows(sessions)
    late = answer(ask(incident_id), RetrainAnswer.QUEUED, ask_event_id=row.ask_event_id)
    await log.on_model_news(late)
    assert await disposition(log, sessions, decay()) != "inhibited"


async def test_an_answered_run_holds_the_inhibition_until_it_ends_or_the_retrain_timeout(
    log: IncidentLog, sessions: Sessions, clock: FakeClock[datetime]
) -> None:
    incident_id = await opened_incident(log, sessions)
    request = ask(incident_id)
    await log.on_retrain_request(request)
    await log.on_model_news(answer(request, RetrainAnswer.MERGED, run_id="rt-7"))
    clock.advance(119 * MINUTE)
    await log.on_model_news(finished(run_id="rt-other", incident_id=None))  # another run
    assert await disposition(log, sessions, decay()) == "inhibited"
    assert await log.lapse_retrains() == 0
    clock.advance(1 * MINUTE)
    assert await disposition(log, sessions, decay()) != "inhibited"
    assert await log.lapse_retrains() == 1
    lifted = [d for a, d in await timeline(sessions, incident_id) if a.startswith("retrain_no")]
    assert lifted[0]["why"] == "run rt-7 did not end within 120 min of the ask"


async def test_an_answer_before_its_request_and_replays_of_either_count_once(
    log: IncidentLog, sessions: Sessions
) -> None:
    incident_id = await opened_incident(log, sessions)
    request = ask(incident_id)
    queued = answer(request, RetrainAnswer.QUEUED)
    await log.on_model_news(queued)
    await log.on_retrain_request(request)
    await log.on_model_news(queued)  # redelivered
    await log.on_retrain_request(request)
    [row] = await retrain_rows(sessions)
    assert (row.answer, row.run_id, row.ask_event_id) == ("queued", "rt-1", request.event_id)
    entries = await timeline(sessions, incident_id)
    assert [a for a, _ in entries].count("retrain_answered") == 1
    assert await disposition(log, sessions, decay()) == "inhibited"
    done = finished(incident_id=incident_id)
    await log.on_model_news(done)
    await log.on_model_news(done)
    assert [a for a, _ in await timeline(sessions, incident_id)].count("retrain_finished") == 1
    assert await disposition(log, sessions, decay()) != "inhibited"


async def test_a_run_that_ends_lifts_the_inhibition_of_every_incident_merged_into_it(
    log: IncidentLog, sessions: Sessions
) -> None:
    first = await opened_incident(log, sessions)
    other = ask("inc-other")
    mine = ask(first)
    for request in (mine, other):
        await log.on_retrain_request(request)
        await log.on_model_news(answer(request, RetrainAnswer.MERGED, run_id="rt-9"))
    await log.on_model_news(finished(run_id="rt-9", incident_id=first))
    assert await disposition(log, sessions, decay()) != "inhibited"
    rows = await retrain_rows(sessions)
    assert {row.incident_id for row in rows if row.finished_at is not None} == {
        first,
        "inc-other",
    }

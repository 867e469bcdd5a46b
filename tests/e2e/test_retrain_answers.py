"""Issue 15 item 7 and issue 16 (access) with the incident log, the retrainer and the runbook
runner as processes on the real broker:

- the retrainer answers every retrain ask, and the incident log's retrain-in-flight inhibition
  follows the answers: an ask for a cause already retrained for (merged into a finished run, and
  once left unanswered, muting decay alerts for two hours) is refused and lifts it at once; a
  replayed ask and a retrainer killed mid-ask give one answer;
- four-eyes holds through runbooks and merges: whoever runs ``request-retrain`` is its requester
  (via the runner), so is whoever's ask was merged into the run, and neither may approve the
  candidate; another level two may.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import (
    AlertKind,
    Envelope,
    PromotionRequested,
    RetrainAnswer,
    RetrainAnswered,
    RetrainFinished,
    RetrainRefusal,
    RetrainRequest,
    RetrainTrigger,
    Topic,
    alert_fingerprint,
)
from contracts.wire import decode
from services.runtime import EventPublisher, KafkaSettings, ServiceName
from services.runtime.scopes import SERVICE_SCOPES
from tests.factories import TEST_SIGNING_KEY, make_alert
from tests.kafka_tools import distinct_events, read_events_until_quiet, read_until
from tests.polling import eventually
from tests.processes import ServiceProcess, write_routing_policy
from tests.retrainer.retrainer_harness import GovernedProcesses, governed_processes
from tests.retrainer.retraining_data import live_events

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

MODEL = "breast-cancer"
ADMIN = "e2e-admin-token"
RUNNER = "e2e-runbook-runner-token"
RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
TIERS = {
    tier: {"ack_timeout_minutes": 60, "mitigate_timeout_minutes": 240}
    for tier in ("L1", "L2", "L3")
}


def incident_log_env(folder: Path) -> dict[str, str]:
    """No level-one runbook (nothing runs on its own), no group wait, the shipped inhibitions;
    the runner's token may act for others."""
    policy = write_routing_policy(
        folder / "policy",
        group_wait_seconds=0,
        routes=[{"name": "default", "runbooks": [], "tiers": TIERS}],
    )
    scopes = sorted(SERVICE_SCOPES[ServiceName.RUNBOOK_RUNNER])
    tokens = json.dumps([{"name": "runbook-runner", "scopes": scopes, "token": RUNNER}])
    return {
        "VIGIL_INCIDENT_LOG_POLICY_PATH": str(policy),
        "VIGIL_INCIDENT_LOG_SERVICE_TOKENS": tokens,
        "VIGIL_RUNBOOK_SIGNING_KEY": TEST_SIGNING_KEY,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def models_events(
    kafka: KafkaSettings, done: Callable[[list[Envelope]], bool], timeout_s: float = 120
) -> list[Envelope]:
    """The distinct events on ``models`` once ``done`` holds for them (the retrainer publishes
    from its outbox at least once: a kill between publishing and marking repeats an event id)."""
    records = await read_until(
        kafka,
        Topic.MODELS,
        lambda rs: done([decode(Topic.MODELS, r.value) for r in distinct_events(rs)]),
        timeout_s=timeout_s,
    )
    return [decode(Topic.MODELS, r.value) for r in distinct_events(records)]


def answers(events: list[Envelope]) -> list[RetrainAnswered]:
    return [event for event in events if isinstance(event, RetrainAnswered)]


async def open_incident(http: httpx.AsyncClient, publisher: EventPublisher) -> str:
    """A drift alert on the model opens an incident (straight to level two: no runbook)."""
    kind = AlertKind.DATA_DRIFT
    await publisher.publish(
        make_alert(
            model=MODEL,
            model_version=1,
            kind=kind,
            fingerprint=alert_fingerprint(MODEL, 1, kind, "dataset"),
        )
    )

    async def listed() -> list[dict[str, Any]]:
        response = await http.get("/incidents", params={"model": MODEL}, headers=bearer(ADMIN))
        result: list[dict[str, Any]] = response.json()
        return result

    [incident] = await eventually(listed, lambda found: len(found) == 1, timeout_s=90, every_s=0.2)
    return str(incident["id"])


async def timeline(http: httpx.AsyncClient, incident_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/incidents/{incident_id}/timeline", headers=bearer(ADMIN))
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


def actions(entries: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [entry for entry in entries if entry["action"] == action]


async def decay_disposition(http: httpx.AsyncClient, publisher: EventPublisher, metric: str) -> str:
    """Publish a decay alert with a new fingerprint; return what the incident log did with it."""
    kind = AlertKind.METRIC_DECAY
    alert = make_alert(
        model=MODEL,
        model_version=1,
        fingerprint=alert_fingerprint(MODEL, 1, kind, metric),
        summary=f"{metric} fell",
    )
    await publisher.publish(alert)

    async def logged() -> list[dict[str, Any]]:
        response = await http.get(
            "/alerts", params={"model": MODEL, "limit": 1000}, headers=bearer(ADMIN)
        )
        return [row for row in response.json() if row["event_id"] == str(alert.event_id)]

    [row] = await eventually(logged, lambda rows: len(rows) == 1, timeout_s=90, every_s=0.2)
    return str(row["disposition"])


async def test_an_ask_for_a_cause_already_retrained_is_refused_and_no_longer_mutes_decay_alerts(
    kafka_settings: KafkaSettings, tmp_path: Path, publisher: EventPublisher
) -> None:
    async with governed_processes(
        kafka_settings,
        tmp_path,
        admin_token=ADMIN,
        people={"ana": "l2"},
        gate_resamples=200,
        incident_log_env=incident_log_env(tmp_path),
        # A run the kill below interrupts is taken over this soon.
        retrainer_env={"VIGIL_RETRAINER_LEASE_SECONDS": "5"},
    ) as stack:
        async with httpx.AsyncClient(base_url=stack.incident_log.url, timeout=30) as http:
            incident_id = await open_incident(http, publisher)
            ask = f"/incidents/{incident_id}/retrain"
            as_ana = bearer(stack.tokens["ana"])
            first = await http.post(ask, json={"reason": "drift"}, headers=as_ana)
            assert first.status_code == 200, first.text
            # No live data: the run trains the champion again and ends (byte-identical).
            events = await models_events(
                kafka_settings, lambda es: any(isinstance(e, RetrainFinished) for e in es)
            )
            [queued] = answers(events)
            assert (queued.answer, queued.incident_id) == (RetrainAnswer.QUEUED, incident_id)
            await eventually(
                lambda: timeline(http, incident_id),
                lambda entries: bool(actions(entries, "retrain_finished")),
                timeout_s=90,
                every_s=0.2,
            )
            assert await decay_disposition(http, publisher, "recall") != "inhibited"

            # Asked again for the same incident: the cause's run has finished. This ask was
            # merged into it without an answer, and decay alerts stayed inhibited for 2 h.
            again = await http.post(ask, json={"reason": "still drifting"}, headers=as_ana)
            assert again.status_code == 200, again.text
            events = await models_events(kafka_settings, lambda es: len(answers(es)) == 2)
            refused = answers(events)[1]
            assert (refused.answer, refused.refusal, refused.run_id) == (
                RetrainAnswer.REFUSED,
                RetrainRefusal.ALREADY_RETRAINED,
                queued.run_id,
            )
            entries = await eventually(
                lambda: timeline(http, incident_id),
                lambda entries: len(actions(entries, "retrain_answered")) == 2,
                timeout_s=90,
                every_s=0.2,
            )
            [_, lifted] = actions(entries, "retrain_answered")
            assert (lifted["details"]["answer"], lifted["details"]["in_flight"]) == (
                "refused",
                False,
            )
            assert "already retrained for in run" in lifted["details"]["reason"]
            assert await decay_disposition(http, publisher, "precision") != "inhibited"

        # A replayed ask (same event id) and an ask the retrainer was killed over: one answer
        # each, no second run.
        replayed = RetrainRequest(
            producer="incident-log",
            model=MODEL,
            trigger=RetrainTrigger.MANUAL,
            cause="manual:replayed",
            requested_by="ana",
            reason="replay",
        )
        await publisher.publish(replayed)
        await stack.retrainer.kill()
        await publisher.publish(replayed)
        stack.retrainer.start()
        await stack.retrainer.wait_ready()
        await publisher.publish(replayed)
        await models_events(
            kafka_settings,
            lambda es: sum(isinstance(e, RetrainFinished) for e in es) == 2,
        )
        records = await read_events_until_quiet(kafka_settings, Topic.MODELS, quiet_s=3)
        events = [decode(Topic.MODELS, record.value) for record in records]
        mine = [a for a in answers(events) if a.ask_event_id == replayed.event_id]
        assert [a.answer for a in mine] == [RetrainAnswer.QUEUED]
        assert sum(isinstance(e, RetrainFinished) for e in events) == 2


async def test_neither_the_runbook_runner_nor_a_merged_asker_can_approve_their_own_candidate(
    kafka_settings: KafkaSettings, tmp_path: Path, publisher: EventPublisher
) -> None:
    async with governed_processes(
        kafka_settings,
        tmp_path,
        admin_token=ADMIN,
        people={"ana": "l2", "bo": "l2", "cy": "l3", "dee": "l2"},
        gate_resamples=300,
        incident_log_env=incident_log_env(tmp_path),
        # Asks after a run wait this long: both asks below land in one queued run.
        retrainer_env={"VIGIL_RETRAINER_COOLDOWN_SECONDS": "25"},
    ) as stack:
        runner = ServiceProcess(
            ServiceName.RUNBOOK_RUNNER,
            env=stack.env
            | {
                "VIGIL_RUNBOOK_RUNNER_CATALOG_PATH": str(RUNBOOKS / "catalog.yaml"),
                "VIGIL_RUNBOOK_RUNNER_RUNBOOK_TOKEN": RUNNER,
                "VIGIL_RUNBOOK_SIGNING_KEY": TEST_SIGNING_KEY,
            },
            log_dir=tmp_path,
        )
        runner.start()
        try:
            await runner.wait_ready()
            await four_eyes_through_runbooks_and_merges(stack, kafka_settings, publisher)
        finally:
            await runner.stop()


async def four_eyes_through_runbooks_and_merges(
    stack: GovernedProcesses, kafka: KafkaSettings, publisher: EventPublisher
) -> None:
    tokens = stack.tokens
    async with (
        httpx.AsyncClient(base_url=stack.incident_log.url, timeout=30) as incidents,
        httpx.AsyncClient(base_url=stack.retrainer.url, timeout=30) as retrainer,
    ):
        # A warm-up run (no live data yet: it ends at once) starts the cooldown.
        warm_up = await retrainer.post(
            "/retrains", json={"model": MODEL, "reason": "warm-up"}, headers=bearer(tokens["ana"])
        )
        assert warm_up.status_code == 202, warm_up.text
        await models_events(kafka, lambda es: any(isinstance(e, RetrainFinished) for e in es))
        predictions, labels = live_events(MODEL, 0, 200)
        await publisher.publish_many([*predictions, *labels])
        await eventually(
            lambda: retrainer.get(f"/live-data/{MODEL}"),
            lambda response: response.json()["labelled"] >= 200,
            timeout_s=90,
            every_s=0.2,
        )

        incident_id = await open_incident(incidents, publisher)
        # Naming someone else is for a token allowed to act for others only.
        forged = await incidents.post(
            f"/incidents/{incident_id}/retrain",
            json={"reason": "x", "on_behalf_of": "dee"},
            headers=bearer(tokens["ana"]),
        )
        assert forged.status_code == 403, forged.text
        assert "may not act on behalf of someone else" in forged.json()["detail"]
        forged_here = await retrainer.post(
            "/retrains",
            json={"model": MODEL, "reason": "x", "on_behalf_of": "dee"},
            headers=bearer(tokens["ana"]),
        )
        assert forged_here.status_code == 403, forged_here.text

        # bo runs the request-retrain runbook; cy asks for the same incident by hand.
        run = await incidents.post(
            f"/incidents/{incident_id}/runbooks",
            json={"runbook": "request-retrain", "reason": "drift on both features"},
            headers=bearer(tokens["bo"]),
        )
        assert run.status_code == 202, run.text
        await eventually(
            lambda: timeline(incidents, incident_id),
            lambda entries: bool(actions(entries, "retrain_requested")),
            timeout_s=90,
            every_s=0.2,
        )
        by_hand = await incidents.post(
            f"/incidents/{incident_id}/retrain",
            json={"reason": "me too"},
            headers=bearer(tokens["cy"]),
        )
        assert by_hand.status_code == 200, by_hand.text

        def proposals(es: list[Envelope]) -> list[PromotionRequested]:
            return [
                e for e in es if isinstance(e, PromotionRequested) and e.incident_id == incident_id
            ]

        events = await models_events(kafka, lambda es: bool(proposals(es)), timeout_s=180)
        mine = [a for a in answers(events) if a.incident_id == incident_id]
        assert [(a.answer, a.requested_by, a.via) for a in mine] == [
            (RetrainAnswer.QUEUED, "bo", "runbook-runner"),
            (RetrainAnswer.MERGED, "cy", None),
        ]
        [proposed] = proposals(events)
        assert proposed.requested_by == "bo"
        requested = actions(await timeline(incidents, incident_id), "retrain_requested")
        assert [(e["actor"], e["details"].get("via")) for e in requested] == [
            ("bo", "runbook-runner"),
            ("cy", None),
        ]

        path = f"/promotions/{proposed.request_id}"
        shown = await retrainer.get(path, headers=bearer(tokens["dee"]))
        assert shown.json()["requesters"] == ["bo", "cy"]
        for person in ("bo", "cy"):
            refused = await retrainer.post(
                f"{path}/approve", json={"comment": "lgtm"}, headers=bearer(tokens[person])
            )
            assert refused.status_code == 409, refused.text
            assert f"{person} asked for this retrain" in refused.json()["detail"]
        approved = await retrainer.post(
            f"{path}/approve", json={"comment": "gate passed"}, headers=bearer(tokens["dee"])
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["decided_by"] == "dee"

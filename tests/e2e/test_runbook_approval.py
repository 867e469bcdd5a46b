"""A runbook that needs approval, end to end: the real incident log (SQLite and PostgreSQL) and
runner processes on the real broker, driven through ``vigil incidents``. Asked for by one person
it waits; the same person cannot approve it; a second person's approval sends the signed request
and the runner runs it once; a rejected run and one whose approval expired never run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from contracts import AlertKind, RunbookRequest, Topic, alert_fingerprint
from services.cli import _add_service_commands, app
from services.runtime import EventPublisher, KafkaSettings, ServiceName, kafka_broker
from services.runtime.request_signing import SigningKeys, verification_problem
from tests.factories import TEST_SIGNING_KEY, make_alert
from tests.kafka_tools import read_events_until_quiet, read_until_quiet
from tests.processes import ServiceProcess, issue_tokens, kafka_env, process_maker

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

CATALOG = Path(__file__).resolve().parents[1] / "runbook_runner" / "scripts" / "catalog.yaml"
ADMIN = "e2e-admin"
APPROVAL_TIMEOUT_S = 12
TIERS = {
    tier: {"ack_timeout_minutes": 60, "mitigate_timeout_minutes": 120}
    for tier in ("L1", "L2", "L3")
}
_add_service_commands()


@pytest.fixture
def processes(
    kafka_settings: KafkaSettings, tmp_path: Path, database_url: str
) -> Iterator[Callable[[ServiceName], ServiceProcess]]:
    policy = tmp_path / "routing.yaml"
    policy.write_text(
        yaml.safe_dump(
            {"group_wait_seconds": 0, "routes": [{"name": "all", "runbooks": [], "tiers": TIERS}]}
        )
    )
    shared = kafka_env(kafka_settings) | {
        "VIGIL_STATE_DIR": str(tmp_path / "state"),
        "VIGIL_INCIDENT_LOG_POLICY_PATH": str(policy),
        "VIGIL_INCIDENT_LOG_ADMIN_TOKEN": ADMIN,
        "VIGIL_INCIDENT_LOG_DATABASE_URL": database_url,
        "VIGIL_INCIDENT_LOG_CATALOG_PATH": str(CATALOG),
        "VIGIL_INCIDENT_LOG_RUNBOOK_APPROVAL_TIMEOUT_SECONDS": str(APPROVAL_TIMEOUT_S),
        "VIGIL_RUNBOOK_RUNNER_CATALOG_PATH": str(CATALOG),
        "VIGIL_RUNBOOK_SIGNING_KEY": TEST_SIGNING_KEY,
    }
    with process_maker(shared, tmp_path) as make:
        yield make


async def first_incident(url: str) -> str:
    """The id of the first incident the log at ``url`` lists, once it lists one (within a
    minute)."""
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}
    ) as http:
        for _ in range(300):
            listed = (await http.get("/incidents")).json()
            if listed:
                return str(listed[0]["id"])
            await asyncio.sleep(0.2)
    raise AssertionError(f"no incident at {url} after a minute")


@pytest.fixture
async def incident(kafka_settings: KafkaSettings) -> AsyncIterator[Callable[[], Any]]:
    broker = kafka_broker(kafka_settings, client_id="e2e-approval")
    await broker.connect()
    kind = AlertKind.METRIC_DECAY

    async def raise_alert() -> None:
        await EventPublisher(broker, kafka_settings).publish(
            make_alert(fingerprint=alert_fingerprint("breast-cancer", 3, kind, "recall"))
        )

    yield raise_alert
    await broker.stop()


def vigil(url: str, token: str, *args: str, group: str = "incidents") -> tuple[int, str]:
    result = CliRunner().invoke(
        app, [group, *args], env={"VIGIL_INCIDENT_LOG_URL": url, "VIGIL_TOKEN": token}
    )
    return result.exit_code, result.output


async def timeline_until(
    url: str, incident_id: str, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 90
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}
    ) as http:
        for _ in range(int(timeout_s * 5)):
            entries: list[dict[str, Any]] = (
                await http.get(f"/incidents/{incident_id}/timeline")
            ).json()
            if done(entries):
                return entries
            await asyncio.sleep(0.2)
    raise AssertionError(f"the timeline of {incident_id} never got there: {entries}")


def of_run(entries: list[dict[str, Any]], run_id: str, action: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["action"] == action and e["details"].get("run_id") == run_id]


async def test_a_held_run_runs_once_a_second_person_approves_it_and_never_when_rejected_or_expired(
    processes: Callable[[ServiceName], ServiceProcess],
    incident: Callable[[], Any],
    kafka_settings: KafkaSettings,
) -> None:
    log = processes(ServiceName.INCIDENT_LOG)
    runner = processes(ServiceName.RUNBOOK_RUNNER)
    log.start()
    await log.wait_ready(timeout_s=150)
    runner.start()
    await runner.wait_ready(timeout_s=150)
    tokens = await issue_tokens(log.url, ADMIN, {"ann": "l2", "bo": "l2", "cy": "l1"})
    await incident()
    incident_id = await first_incident(log.url)

    def ask(person: str) -> str:
        code, output = vigil(
            log.url, tokens[person], "run", incident_id, "needs-approval", "-r", "why", "--json"
        )
        assert code == 0, output
        asked = json.loads(output)
        assert asked["state"] == "pending_approval"
        return str(asked["run_id"])

    approved = ask("ann")
    code, output = vigil(log.url, tokens["ann"], "approve", incident_id, approved)
    assert code == 3
    assert "cannot approve it: a second person must" in output
    code, output = vigil(log.url, tokens["cy"], "approve", incident_id, approved)
    assert code == 3
    assert "needs l2 or higher" in output
    code, output = vigil(
        log.url, tokens["bo"], "approve", incident_id, approved, "-r", "ok", group="runbooks"
    )
    assert code == 0, output
    assert "approved (sent to the runner)" in output

    rejected = ask("ann")
    code, output = vigil(log.url, tokens["bo"], "reject", incident_id, rejected, "-r", "no")
    assert code == 0, output
    expiring = ask("ann")
    code, output = vigil(log.url, tokens["bo"], "approvals", "--json")
    assert [row["run_id"] for row in json.loads(output)] == [expiring]

    entries = await timeline_until(
        log.url,
        incident_id,
        lambda e: (
            bool(of_run(e, approved, "runbook_finished"))
            and bool(of_run(e, expiring, "runbook_approval_expired"))
        ),
        timeout_s=APPROVAL_TIMEOUT_S + 90,
    )
    (finished,) = of_run(entries, approved, "runbook_finished")
    assert finished["details"]["state"] == "succeeded"
    assert len(of_run(entries, approved, "runbook_started")) == 1
    assert [e["actor"] for e in of_run(entries, approved, "runbook_approved")] == ["bo"]
    assert [e["actor"] for e in of_run(entries, rejected, "runbook_rejected")] == ["bo"]
    code, output = vigil(log.url, tokens["bo"], "approve", incident_id, expiring)
    assert code == 3
    assert "already expired" in output

    requests = [
        RunbookRequest.model_validate_json(record.value)
        for record in await read_events_until_quiet(
            kafka_settings, Topic.RUNBOOK_REQUESTS, quiet_s=2.0
        )
    ]
    assert [(r.run_id, r.requested_by, r.approved_by) for r in requests] == [
        (approved, "ann", "bo")
    ]
    keys = SigningKeys.parse(TEST_SIGNING_KEY)
    assert verification_problem(requests[0], keys, now=requests[0].occurred_at) is None
    results = await read_until_quiet(kafka_settings, Topic.RUNBOOK_RESULTS, quiet_s=2.0)
    assert {json.loads(record.value)["run_id"] for record in results} == {approved}
    code, output = vigil(log.url, tokens["bo"], "approvals", incident_id, "--json")
    states = {row["run_id"]: row["state"] for row in json.loads(output)}
    assert states == {approved: "approved", rejected: "rejected", expiring: "expired"}
    assert await runner.stop() == 0
    assert await log.stop() == 0


async def test_an_incident_log_killed_right_after_an_approval_publishes_the_request_once(
    processes: Callable[[ServiceName], ServiceProcess],
    incident: Callable[[], Any],
    kafka_settings: KafkaSettings,
) -> None:
    """The decision and the signed request commit in one transaction: a SIGKILL right after the
    approval answered loses neither, and the request goes out once (same event id if the relay
    had to publish it again)."""
    log = processes(ServiceName.INCIDENT_LOG)
    log.start()
    await log.wait_ready(timeout_s=150)
    tokens = await issue_tokens(log.url, ADMIN, {"ann": "l2", "bo": "l2"})
    await incident()
    incident_id = await first_incident(log.url)
    code, output = vigil(
        log.url, tokens["ann"], "run", incident_id, "needs-approval", "-r", "why", "--json"
    )
    assert code == 0, output
    run_id = json.loads(output)["run_id"]
    code, output = vigil(log.url, tokens["bo"], "approve", incident_id, run_id)
    assert code == 0, output
    await log.kill()

    log.start()
    await log.wait_ready(timeout_s=150)
    records = await read_until_quiet(kafka_settings, Topic.RUNBOOK_REQUESTS, quiet_s=3.0)
    requests = [RunbookRequest.model_validate_json(record.value) for record in records]
    mine = [request for request in requests if request.run_id == run_id]
    assert mine, "the approved request was lost"
    assert {request.event_id for request in mine} == {mine[0].event_id}
    assert (mine[0].requested_by, mine[0].approved_by) == ("ann", "bo")
    code, output = vigil(log.url, tokens["bo"], "approvals", incident_id, "--json")
    assert [(row["run_id"], row["state"]) for row in json.loads(output)] == [(run_id, "approved")]
    assert await log.stop() == 0

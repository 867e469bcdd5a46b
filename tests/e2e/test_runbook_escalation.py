"""Level one's runbooks through the real incident log and runner processes on the real broker:
a failing, a hanging and an unverified runbook each escalate to level two with the reason and the
output on the timeline; a runner killed mid-run marks the run abandoned on restart, the incident
escalates, and the script never runs twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from contracts import AlertKind, alert_fingerprint
from services.runtime import EventPublisher, KafkaSettings, ServiceName, kafka_broker
from tests.factories import TEST_SIGNING_KEY, make_alert
from tests.processes import ServiceProcess, kafka_env, process_maker

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "tests" / "runbook_runner" / "scripts"
ADMIN = "e2e-admin"
TIERS = {
    "L1": {"ack_timeout_minutes": 60, "mitigate_timeout_minutes": 120},
    "L2": {"ack_timeout_minutes": 60, "mitigate_timeout_minutes": 120},
    "L3": {"ack_timeout_minutes": 60, "mitigate_timeout_minutes": 120},
}


def route(model: str, runbook: str) -> dict[str, Any]:
    return {"name": model, "match": {"models": [model]}, "runbooks": [runbook], "tiers": TIERS}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    catalog = yaml.safe_load((SCRIPTS / "catalog.yaml").read_text())
    marker = tmp_path / "executions.txt"
    catalog["runbooks"].append(
        {
            "name": "sleeps-long",
            "purpose": "Marks its execution, then sleeps well past the test.",
            "alert_kinds": ["metric_decay"],
            "tier": "L1",
            "command": ["python", "mark_and_sleep.py", "{marker}", "120"],
            "parameters": {"marker": {"type": "str", "default": str(marker), "max_length": 4096}},
            "timeout_seconds": 300,
            "verify": {"command": ["python", "check.py", "0"], "timeout_seconds": 30},
        }
    )
    # The catalogue's scripts must sit beside it: copy them next to the extended catalogue.
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for script in SCRIPTS.iterdir():
        if script.is_file():
            (folder / script.name).write_bytes(script.read_bytes())
            (folder / script.name).chmod(script.stat().st_mode)
    (folder / "catalog.yaml").write_text(yaml.safe_dump(catalog))
    policy = {
        "group_wait_seconds": 0,
        "routes": [
            route("fails-model", "fails"),
            route("hangs-model", "hangs"),
            route("verify-model", "verify-fails"),
            route("sleepy-model", "sleeps-long"),
            {"name": "default", "runbooks": [], "tiers": TIERS},
        ],
    }
    (tmp_path / "routing.yaml").write_text(yaml.safe_dump(policy))
    return {
        "catalog": folder / "catalog.yaml",
        "policy": tmp_path / "routing.yaml",
        "marker": marker,
    }


@pytest.fixture
def processes(
    kafka_settings: KafkaSettings, tmp_path: Path, files: dict[str, Path]
) -> Iterator[Callable[[ServiceName], ServiceProcess]]:
    shared = kafka_env(kafka_settings) | {
        "VIGIL_STATE_DIR": str(tmp_path / "state"),
        "VIGIL_INCIDENT_LOG_POLICY_PATH": str(files["policy"]),
        "VIGIL_INCIDENT_LOG_ADMIN_TOKEN": ADMIN,
        "VIGIL_RUNBOOK_SIGNING_KEY": TEST_SIGNING_KEY,
        "VIGIL_RUNBOOK_RUNNER_CATALOG_PATH": str(files["catalog"]),
    }
    with process_maker(shared, tmp_path) as make:
        yield make


@pytest.fixture
async def publish(kafka_settings: KafkaSettings) -> AsyncIterator[Callable[[str], Any]]:
    broker = kafka_broker(kafka_settings, client_id="e2e")
    await broker.connect()
    publisher = EventPublisher(broker, kafka_settings)

    async def alert_for(model: str) -> None:
        kind = AlertKind.METRIC_DECAY
        await publisher.publish(
            make_alert(model=model, fingerprint=alert_fingerprint(model, 3, kind, "recall"))
        )

    yield alert_for
    await broker.stop()


async def incident_of(url: str, model: str, tier: str, timeout_s: float = 90) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}
    ) as http:
        for _ in range(int(timeout_s * 5)):
            listed = (await http.get("/incidents", params={"model": model})).json()
            if listed and listed[0]["tier"] == tier:
                incident: dict[str, Any] = listed[0]
                incident["timeline"] = (
                    await http.get(f"/incidents/{incident['id']}/timeline")
                ).json()
                return incident
            await asyncio.sleep(0.2)
    raise AssertionError(f"no {tier} incident for {model} within {timeout_s} s")


def entries(incident: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [entry for entry in incident["timeline"] if entry["action"] == action]


async def test_failed_hung_and_unverified_runbooks_escalate_with_their_output(
    processes: Callable[[ServiceName], ServiceProcess], publish: Callable[[str], Any]
) -> None:
    incident_log, runner = (
        processes(ServiceName.INCIDENT_LOG),
        processes(ServiceName.RUNBOOK_RUNNER),
    )
    for process in (incident_log, runner):
        process.start()
    await asyncio.gather(incident_log.wait_ready(), runner.wait_ready())
    for model in ("fails-model", "hangs-model", "verify-model"):
        await publish(model)

    expected = {
        "fails-model": ("failed", "runbook_failed"),
        "hangs-model": ("timed_out", "runbook_failed"),
        "verify-model": ("verify_failed", "verification_failed"),
    }
    for model, (state, trigger) in expected.items():
        incident = await incident_of(incident_log.url, model, "L2")
        (started,) = entries(incident, "runbook_started")
        assert len(started["details"]["script_sha256"]) == 64
        (finished,) = entries(incident, "runbook_finished")
        assert finished["details"]["state"] == state
        assert finished["details"]["script_sha256"] == started["details"]["script_sha256"]
        (escalated,) = entries(incident, "escalated")
        assert escalated["details"]["trigger"] == trigger
        assert state in escalated["details"]["reason"]
    fails = await incident_of(incident_log.url, "fails-model", "L2")
    assert entries(fails, "runbook_finished")[0]["details"]["exit_code"] == 3
    hangs = await incident_of(incident_log.url, "hangs-model", "L2")
    assert (
        entries(hangs, "runbook_finished")[0]["details"]["exit_code"] == -15
    )  # SIGTERM at the timeout


async def test_a_runner_killed_mid_run_abandons_the_run_and_the_incident_escalates(
    processes: Callable[[ServiceName], ServiceProcess],
    publish: Callable[[str], Any],
    files: dict[str, Path],
) -> None:
    incident_log, runner = (
        processes(ServiceName.INCIDENT_LOG),
        processes(ServiceName.RUNBOOK_RUNNER),
    )
    for process in (incident_log, runner):
        process.start()
    await asyncio.gather(incident_log.wait_ready(), runner.wait_ready())
    await publish("sleepy-model")
    marker = files["marker"]
    for _ in range(300):
        if marker.exists() and marker.read_text().count("started") == 1:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the runbook never started")
    await runner.kill()
    runner.start()
    await runner.wait_ready()

    incident = await incident_of(incident_log.url, "sleepy-model", "L2")
    (finished,) = entries(incident, "runbook_finished")
    assert finished["details"]["state"] == "abandoned"
    assert entries(incident, "escalated")[0]["details"]["trigger"] == "runbook_failed"
    await asyncio.sleep(3)
    assert marker.read_text().count("started") == 1  # never run again

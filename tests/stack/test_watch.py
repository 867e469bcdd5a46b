"""``vigil up`` watching Vigil, with real processes on the real broker: the dead man's switch
stops (and is reported, and pages past the incident log) when the incident log stops, and
resumes; a service killed over and over raises ``restart_loop``, which recovers once it stays
up and becomes an incident on the ``platform`` route. (A database cut: ``test_unready.py``.)"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import AlertKind, Topic
from services.runtime import KafkaSettings, ServiceName, free_port
from services.runtime.serve import serving
from services.stack.deadman import SwitchState
from services.stack.pager import PageReceiver
from services.stack.stack import RunningStack, StackSettings, running_stack
from services.stack.supervisor import ChildState
from tests.kafka_tools import read_until
from tests.polling import eventually
from tests.processes import write_routing_policy

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.e2e]

IL = ServiceName.INCIDENT_LOG


def stack_settings(
    kafka: KafkaSettings,
    state_dir: Path,
    *,
    service_env: dict[str, str] | None = None,
    **overrides: Any,
) -> StackSettings:
    """A stack of the incident log alone, watched with short intervals; the shipped routing
    policy, routing at once (no group wait)."""
    policy = write_routing_policy(state_dir.parent / "policy", group_wait_seconds=0)
    values: dict[str, Any] = {
        "service_env": {"VIGIL_INCIDENT_LOG_POLICY_PATH": str(policy)} | (service_env or {}),
        "state_dir": state_dir,
        "kafka_bootstrap_servers": kafka.bootstrap_servers,
        "kafka_profile": kafka.profile,
        "topic_prefix": kafka.topic_prefix,
        "services": [IL],
        "ports": {IL: free_port()},
        "watch_port": free_port(),
        "heartbeat_interval_s": 1.0,
        "heartbeat_timeout_s": 8.0,
        "watchdog_interval_s": 0.5,
        "unready_alert_s": 2.0,
    }
    return StackSettings(**(values | overrides))


@asynccontextmanager
async def stack_of(settings: StackSettings) -> AsyncIterator[RunningStack]:
    async with running_stack(settings) as stack:
        try:
            yield stack
        except BaseException:
            log = settings.state_dir / "logs" / f"{IL.value}.log"
            print(log.read_text(errors="replace")[-6000:])  # noqa: T201  # the service's side
            raise


def documents(records: list[Any], kind: AlertKind) -> list[dict[str, Any]]:
    found = [json.loads(record.value) for record in records]
    return [document for document in found if document["kind"] == kind.value]


def raised_then_recovered(kind: AlertKind, subject: str) -> Callable[[list[Any]], bool]:
    def done(records: list[Any]) -> bool:
        types = [d["type"] for d in documents(records, kind) if d["fingerprint"].endswith(subject)]
        return "alert.raised" in types and "alert.recovered" in types[types.index("alert.raised") :]

    return done


@pytest.mark.timeout(300)
async def test_the_dead_mans_switch_stops_within_two_minutes_of_the_incident_log_and_pages(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    receiver = PageReceiver()
    async with serving(receiver.app()) as pager_url:
        settings = stack_settings(
            kafka_settings, tmp_path / "state", deadman_webhook_url=f"{pager_url}/hooks/deadman"
        )
        async with stack_of(settings) as stack, httpx.AsyncClient(timeout=30) as http:
            switch = stack.watch.switch
            assert stack.watch.url is not None

            async def beating() -> bool:
                return switch.report().state is SwitchState.BEATING

            await eventually(beating, timeout_s=60, every_s=0.2)
            response = await http.get(f"{stack.watch.url}/deadman")
            assert (response.status_code, response.json()["state"]) == (200, "beating")

            pid = stack.supervisor.pid(IL)
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)  # the incident log hangs: alive, answering nothing
            stopped_at = time.monotonic()
            try:

                async def reported() -> bool:
                    return switch.report().state is SwitchState.STOPPED

                await eventually(reported, timeout_s=120, every_s=0.2)
                took = time.monotonic() - stopped_at
                assert took < 120
                response = await http.get(f"{stack.watch.url}/deadman")
                assert response.status_code == 503
                assert "DEAD MAN'S SWITCH" in response.json()["summary"]
                metrics = (await http.get(f"{stack.watch.url}/metrics")).text
                assert "vigil_heartbeat_ok 0.0" in metrics
                await receiver.wait_until(lambda: bool(receiver.pages_for("deadman")), timeout_s=30)
                (page,) = receiver.pages_for("deadman")
                assert page.body["status"] == "stopped"
                assert page.body["silent_for_s"] >= settings.heartbeat_timeout_s
                print(f"dead man's switch reported {took:.1f} s after the stop")  # noqa: T201
            finally:
                os.kill(pid, signal.SIGCONT)

            await eventually(beating, timeout_s=60, every_s=0.2)
            await receiver.wait_until(lambda: len(receiver.pages_for("deadman")) == 2, 30)
            assert [p.body["status"] for p in receiver.pages_for("deadman")] == [
                "stopped",
                "resumed",
            ]
            assert (await http.get(f"{stack.watch.url}/deadman")).status_code == 200

        records = await read_until(
            kafka_settings,
            Topic.ALERTS,
            lambda rs: bool(documents(rs, AlertKind.SERVICE_UNREADY)),
            timeout_s=10,
        )
        (unready, *_) = documents(records, AlertKind.SERVICE_UNREADY)
        assert unready["evidence"]["service"] == IL.value  # the hung process was unready too


@pytest.mark.timeout(300)
async def test_a_service_killed_over_and_over_raises_restart_loop_and_recovers_once_it_stays_up(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = stack_settings(
        kafka_settings,
        tmp_path / "state",
        restart_stable_after_s=15.0,
        unready_alert_s=600.0,  # this test is about the loop
    )
    async with stack_of(settings) as stack:
        for kills in range(1, 4):
            pid = stack.supervisor.pid(IL)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)

            async def restarted(kills: int = kills) -> bool:
                (status,) = stack.supervisor.status()
                return status.restarts == kills and status.state is ChildState.READY

            await eventually(restarted, timeout_s=60, every_s=0.2)
        records = await read_until(
            kafka_settings,
            Topic.ALERTS,
            raised_then_recovered(AlertKind.RESTART_LOOP, "supervisor/incident-log"),
            timeout_s=120,
        )
        loop = [
            d
            for d in documents(records, AlertKind.RESTART_LOOP)
            if d["fingerprint"] == "vigil:v-:restart_loop:supervisor/incident-log"
        ]
        assert [d["type"] for d in loop] == ["alert.raised", "alert.recovered"]
        assert loop[0]["evidence"]["crashes_in_a_row"] == 3
        (status,) = stack.supervisor.status()
        assert (status.state, status.restarts) == (ChildState.READY, 3)

        async with httpx.AsyncClient(
            base_url=stack.url(IL),
            headers={"Authorization": f"Bearer {stack.credentials.admin_token}"},
        ) as http:

            async def resolved() -> list[dict[str, Any]]:
                found = (await http.get("/incidents", params={"model": "vigil"})).json()
                return [i for i in found if i["status"] == "resolved"]

            (incident,) = await eventually(resolved, timeout_s=60, every_s=0.2)
            assert (incident["kind"], incident["route"]) == ("restart_loop", "platform")

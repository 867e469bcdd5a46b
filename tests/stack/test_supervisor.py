"""The supervisor keeps the stack's services running: a killed service comes back, stop is clean."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from services.runtime import KafkaSettings, ServiceName, free_port
from services.stack.stack import StackSettings, running_stack
from services.stack.supervisor import ChildState, ServiceSpec, Supervisor

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


async def test_a_killed_service_is_restarted_and_stop_is_clean(
    kafka_settings: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = StackSettings(
        state_dir=tmp_path / "state",
        kafka_bootstrap_servers=kafka_settings.bootstrap_servers,
        kafka_profile=kafka_settings.profile,
        topic_prefix=kafka_settings.topic_prefix,
        services=[ServiceName.INCIDENT_LOG],
        ports={ServiceName.INCIDENT_LOG: free_port()},
        watch_port=0,  # not needed here, and the default port may be another stack's
    )
    monkeypatch.setenv("VIGIL_INCIDENT_LOG_POLICY_PATH", str(ROOT / "runbooks" / "routing.yaml"))
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    async with running_stack(settings) as stack:
        url = stack.url(ServiceName.INCIDENT_LOG)
        pid = stack.supervisor.pid(ServiceName.INCIDENT_LOG)
        assert pid is not None
        environ = (await asyncio.to_thread(Path(f"/proc/{pid}/environ").read_bytes)).split(b"\0")
        assert b"MALLOC_ARENA_MAX=2" in environ  # fewer glibc arenas: less resident memory
        async with httpx.AsyncClient() as http:
            token = {"Authorization": f"Bearer {stack.credentials.admin_token}"}
            assert (await http.get(f"{url}/incidents", headers=token)).status_code == 200

            os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                (status,) = stack.supervisor.status()
                if status.restarts == 1 and status.state is ChildState.READY:
                    break
                await asyncio.sleep(0.2)
            (status,) = stack.supervisor.status()
            assert (status.state, status.restarts, status.last_exit) == (
                ChildState.READY,
                1,
                -signal.SIGKILL,
            )
            assert status.pid not in (None, pid)
            assert (await http.get(f"{url}/incidents", headers=token)).status_code == 200
    (status,) = stack.supervisor.status()
    assert (status.state, status.last_exit) == (ChildState.STOPPED, 0)
    credentials = (tmp_path / "state" / "credentials.json").stat()
    assert credentials.st_mode & 0o777 == 0o600


def test_services_get_two_malloc_arenas_unless_the_operator_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisor = Supervisor(
        [ServiceSpec(ServiceName.INCIDENT_LOG, free_port(), {})], logs_dir=tmp_path, base_env={}
    )
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert supervisor.environment(ServiceName.INCIDENT_LOG)["MALLOC_ARENA_MAX"] == "2"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert supervisor.environment(ServiceName.INCIDENT_LOG)["MALLOC_ARENA_MAX"] == "8"

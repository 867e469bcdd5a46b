"""Running Vigil services as real processes in tests: start, wait until ready, stop or kill."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import yaml

from services.runtime import KafkaSettings, ServiceName, free_port

ROUTING_POLICY = Path(__file__).resolve().parents[1] / "runbooks" / "routing.yaml"


def kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    """The environment that points a service at the test's broker and topic namespace."""
    return {
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VIGIL_KAFKA_PROFILE": kafka.profile.value,
        "VIGIL_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
    }


def stack_env(kafka: KafkaSettings, state_dir: Path, registry_url: str) -> dict[str, str]:
    """The environment services of one test stack share: broker, state folder, registry."""
    return kafka_env(kafka) | {
        "VIGIL_STATE_DIR": str(state_dir),
        "VIGIL_REGISTRY_URL": registry_url,
    }


class ServiceProcess:
    """One service in its own process (``python -m services.<name>``), its output in a log file.

    The HTTP port is chosen once, so the URL is known before the first start (other services'
    settings name it) and stays the same across restarts.
    """

    def __init__(
        self,
        service: ServiceName,
        *,
        env: Mapping[str, str] | None = None,
        log_dir: Path,
        name: str | None = None,
    ) -> None:
        self.service = service
        self.name = name or service.value
        """Names the log file: replicas of one service need different names."""
        self.env = dict(env or {})
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log_path = log_dir / f"{self.name}.log"

    @property
    def url(self) -> str:
        """Base URL of the service's HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process (again, after a stop or kill: same port, same state)."""
        env = os.environ | self.env | {f"{self.service.env_prefix}HTTP_PORT": str(self.port)}
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.service.package],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until ``/readyz`` answers 200 (the service consumes and serves)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        async with httpx.AsyncClient() as client:
            while loop.time() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited early:\n{self.log_tail()}")
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready within {timeout_s} s:\n{self.log_tail()}")

    async def stop(self, timeout_s: float = 40.0) -> int | None:
        """SIGTERM and wait for the clean exit (SIGKILL after ``timeout_s``); the exit status,
        or None if the process never started."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, timeout_s)
            except subprocess.TimeoutExpired:
                self.ensure_dead()
        return self.process.returncode

    async def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        assert self.process is not None
        self.process.kill()
        await asyncio.to_thread(self.process.wait)

    def ensure_dead(self) -> None:
        """Kill the process if it still runs (test cleanup)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the process's output."""
        if not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])


MakeProcess = Callable[..., "ServiceProcess"]


@contextmanager
def process_maker(env: Mapping[str, str], log_dir: Path) -> Iterator[MakeProcess]:
    """``make(service, name=None, **more_env)``: a process of ``service`` on the shared ``env``;
    on exit every process made is killed, whatever a failing test left running."""
    made: list[ServiceProcess] = []

    def make(service: ServiceName, name: str | None = None, **more_env: str) -> ServiceProcess:
        process = ServiceProcess(service, name=name, env=dict(env) | more_env, log_dir=log_dir)
        made.append(process)
        return process

    yield make
    for process in made:
        process.ensure_dead()


def write_routing_policy(folder: Path, **overrides: object) -> Path:
    """The shipped routing policy with test overrides (e.g. ``group_wait_seconds=0``), as a file."""
    policy = yaml.safe_load(ROUTING_POLICY.read_text()) | overrides
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "routing.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def level_two_policy(folder: Path) -> Path:
    """The shipped routing policy without runbooks and without a group wait: an alert opens its
    incident at once, at level two, where a person may ask for a retrain."""
    tiers = {
        tier: {"ack_timeout_minutes": 60, "mitigate_timeout_minutes": 240}
        for tier in ("L1", "L2", "L3")
    }
    return write_routing_policy(
        folder / "policy",
        group_wait_seconds=0,
        routes=[{"name": "default", "runbooks": [], "tiers": tiers}],
    )


@asynccontextmanager
async def running_incident_log(
    kafka: KafkaSettings,
    folder: Path,
    *,
    admin_token: str,
    group_wait_seconds: float | None = 0,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[ServiceProcess]:
    """The real incident log as a process on the test's broker, ready; killed on exit. ``env``
    adds to (or overrides) its environment."""
    overrides = {} if group_wait_seconds is None else {"group_wait_seconds": group_wait_seconds}
    process = ServiceProcess(
        ServiceName.INCIDENT_LOG,
        env=kafka_env(kafka)
        | {
            "VIGIL_STATE_DIR": str(folder / "state"),
            "VIGIL_INCIDENT_LOG_POLICY_PATH": str(write_routing_policy(folder, **overrides)),
            "VIGIL_INCIDENT_LOG_ADMIN_TOKEN": admin_token,
        }
        | dict(env or {}),
        log_dir=folder,
    )
    process.start()
    try:
        await process.wait_ready()
        yield process
    finally:
        process.ensure_dead()


async def issue_tokens(url: str, admin_token: str, people: Mapping[str, str]) -> dict[str, str]:
    """Ask the incident log for a token per person (name → role); return name → token."""
    tokens = {}
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {admin_token}"}
    ) as admin:
        for name, role in people.items():
            response = await admin.post("/tokens", json={"name": name, "role": role})
            assert response.status_code == 201, response.text
            tokens[name] = response.json()["token"]
    return tokens

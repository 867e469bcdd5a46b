"""Two replicas of each service as real processes on one broker and one PostgreSQL database per
service (as ``compose.yaml`` runs them), each replica with a state folder of its own (as
containers have: no replica shares files with another), started with the environment
``vigil up`` gives a service (``services/stack/stack.py``: tokens, signing key, URLs) and
restarted by :meth:`Replicas.restart` after a kill, as an orchestrator would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from services.runtime import KafkaProfile, ServiceName
from services.stack.stack import (
    Credentials,
    StackSettings,
    service_tokens,
    stack_supervisor,
)
from tests.processes import ServiceProcess

__all__ = ["Replicas", "service_databases"]

READY_S = 900
"""How long a replica may take to become ready: importing scikit-learn and the service on two
cores shared with other work took nearly seven minutes once."""


@asynccontextmanager
async def service_databases(
    admin_url: str, services: Sequence[ServiceName], tag: str
) -> AsyncIterator[dict[ServiceName, str]]:
    """A fresh PostgreSQL database per service (dropped on exit), as ``compose.yaml`` has one
    per service: the service's replicas share it."""
    base = make_url(admin_url)
    names = {name: f"vigil_scale_{tag}_{name.value.replace('-', '_')}" for name in services}
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        for database in names.values():
            await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield {
            name: base.set(database=database).render_as_string(hide_password=False)
            for name, database in names.items()
        }
    finally:
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
            for database in names.values():
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


class Replicas:
    """``count[service]`` processes of each service; replica 0 listens on the port the other
    services are told about (``VIGIL_<SERVICE>_URL``)."""

    def __init__(
        self,
        folder: Path,
        counts: Mapping[ServiceName, int],
    ) -> None:
        self.folder = folder
        self._counts = dict(counts)
        self.processes: dict[ServiceName, list[ServiceProcess]] = {}

    async def prepare(
        self,
        bootstrap: str,
        topic_prefix: str,
        service_env: Mapping[str, str],
        *,
        runbooks_dir: Path | None = None,
    ) -> None:
        """Build each replica's environment as the local stack would (nothing started), with
        the routing policy and catalogue of ``runbooks_dir`` if given."""
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name, count in self._counts.items():
            self.processes[name] = [
                ServiceProcess(name, log_dir=logs, name=f"{name.value}-{index}")
                for index in range(count)
            ]
        settings = StackSettings(
            state_dir=self.folder / "state",
            topic_prefix=topic_prefix,
            services=list(self._counts),
            ports={name: replicas[0].port for name, replicas in self.processes.items()},
            service_env=dict(service_env),
            watch_port=0,  # not needed here, and the default port may be another stack's
        )
        if runbooks_dir is not None:
            settings = settings.model_copy(update={"runbooks_dir": runbooks_dir})
        state_dir = settings.state_dir.resolve()
        credentials = Credentials.load_or_create(state_dir / "credentials.json")
        self.admin_token = credentials.admin_token
        supervisor = await stack_supervisor(
            settings, bootstrap, KafkaProfile.EMBEDDED, state_dir, credentials, service_tokens()
        )
        for name, replicas in self.processes.items():
            for index, process in enumerate(replicas):
                process.env = supervisor.environment(name) | {
                    "VIGIL_STATE_DIR": str(state_dir / f"{name.value}-{index}")
                }

    def configure(self, name: ServiceName, index: int, env: Mapping[str, str]) -> None:
        """Add to one replica's environment (before it starts), e.g. which replica of another
        service it calls."""
        self.processes[name][index].env.update(env)

    def url(self, name: ServiceName, index: int = 0) -> str:
        """Base URL of one replica's HTTP API."""
        return self.processes[name][index].url

    async def start(self, *names: ServiceName) -> None:
        """Start every replica of these services and wait until all are ready."""
        started = [process for name in names for process in self.processes[name]]
        for process in started:
            process.start()
        await asyncio.gather(*(process.wait_ready(READY_S) for process in started))

    async def kill(self, name: ServiceName, index: int) -> int:
        """SIGKILL one replica; return the pid it had."""
        process = self.processes[name][index]
        assert process.process is not None
        pid = process.process.pid
        await process.kill()
        return pid

    async def restart(self, name: ServiceName, index: int) -> None:
        """Start a killed replica again (same port, state folder, database) and wait for it."""
        process = self.processes[name][index]
        process.start()
        await process.wait_ready(READY_S)

    def owner(self, name: ServiceName, topic: str, partition: int) -> int:
        """Which replica was last given a partition, from the assignments each one logged
        (aiokafka logs them at INFO); 0 if none says so."""
        wanted = f"TopicPartition(topic='{topic}', partition={partition})"
        for index, process in enumerate(self.processes[name]):
            assigned = [
                line
                for line in process.log_tail(100_000).splitlines()
                if "Setting newly assigned partitions" in line
            ]
            if assigned and wanted in assigned[-1]:
                return index
        return 0

    def log_tails(self) -> str:
        """The end of every replica's output (for a failure message)."""
        return "\n".join(
            f"--- {process.name}\n{process.log_tail(15)}"
            for replicas in self.processes.values()
            for process in replicas
        )

    async def stop(self) -> None:
        """Stop every replica (SIGTERM, then SIGKILL)."""
        await asyncio.gather(
            *(process.stop(20) for replicas in self.processes.values() for process in replicas)
        )

"""CPU per event of the monitor's own work, without a broker: ``MonitorService.on_predictions``
and ``on_labels`` (join, windows, metrics, handled ids, revisions, state written, outbox, commit)
over the stream of ``bench/monitor.py``, in polls of the service's default size, each poll split
into runs of one event type as the runtime's consumer hands them.

    python bench/monitor_handler.py [--events-per-model N] [--database sqlite|postgresql]
        [--profile FILE]

``--profile`` writes ``cProfile`` statistics of the handling to FILE (read them with ``pstats``).
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from monitor import stream  # bench/ is on the path when this file runs as a script
from sqlalchemy import text

from contracts import Envelope
from services.monitor import service as service_module
from services.monitor.migrations import HISTORY
from services.monitor.service import MonitorService
from services.monitor.settings import Settings
from services.runtime import OutboxRelay, RegistryClient, create_engine, session_factory
from services.runtime.migrations import migrate
from tests.publishers import RecordingPublisher

POSTGRES = os.environ.get(
    "VIGIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def polls(events: list[Envelope], size: int) -> list[list[list[Envelope]]]:
    """The stream cut into polls, each poll into one run per model and event type: a poll of
    the consumer hands a partition's records (one topic, keyed by model) as one run per type."""
    cut = []
    for start in range(0, len(events), size):
        runs: dict[tuple[str, str], list[Envelope]] = {}
        for event in events[start : start + size]:
            runs.setdefault((event.type, event.model), []).append(event)  # type: ignore[attr-defined]
        cut.append(list(runs.values()))
    return cut


class _InlineThreads:
    """``asyncio`` for the service under the profiler, with ``to_thread`` run in this thread."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def to_thread(function: Any, /, *args: Any) -> Any:
        return function(*args)


async def _fresh_postgres(url: str) -> str:
    """A database of its own on the local server (dropped and made again)."""
    name = "vigil_bench_monitor"
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        await connection.execute(text(f"CREATE DATABASE {name}"))
    await admin.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


async def run(per_model: int, database: str, profile: Path | None) -> dict[str, Any]:
    events, registry = stream(per_model)
    settings = Settings(registry_url="http://registry")
    batches = polls(events, settings.consumer_max_records)
    with tempfile.TemporaryDirectory() as state:
        url = (
            await _fresh_postgres(POSTGRES)
            if database == "postgresql"
            else f"sqlite+aiosqlite:///{Path(state) / 'monitor.db'}"
        )
        engine = create_engine(url)
        await migrate(engine, HISTORY)
        sessions = session_factory(engine)
        http = httpx.AsyncClient(transport=registry.transport())
        service = MonitorService(
            settings.policy(),
            sessions=sessions,
            relay=OutboxRelay(sessions, RecordingPublisher()),
            registry=RegistryClient(http, "http://registry"),
            scorer=http,
            scorer_url="http://scorer",
            clock=lambda: events[-1].occurred_at,
            seed=settings.seed,
        )
        await service.start()
        await service.load_deployments()
        profiler = cProfile.Profile() if profile else None
        if profiler:  # the step runs in a worker thread, which cProfile does not see: inline it
            service_module.asyncio = _InlineThreads()  # type: ignore[attr-defined,assignment]
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        for poll in batches:
            for run_ in poll:
                if run_[0].type in ("prediction.made", "value.predicted"):
                    await service.on_predictions(run_)  # type: ignore[arg-type]
                else:
                    await service.on_labels(run_)  # type: ignore[arg-type]
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)  # type: ignore[arg-type]
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        status = await service.status()
        await http.aclose()
        await engine.dispose()
    return {
        "benchmark": "monitor_handler",
        "database": database,
        "events": len(events),
        "poll": settings.consumer_max_records,
        "cpu_us_per_event": round(cpu / len(events) * 1e6, 2),
        "wall_us_per_event": round(wall / len(events) * 1e6, 2),
        "pending_after": status["pending_predictions"] + status["pending_labels"],
        "load_average": os.getloadavg()[0],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-model", type=int, default=2_500)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--profile", type=Path, default=None)
    arguments = parser.parse_args()
    figures = asyncio.run(run(arguments.events_per_model, arguments.database, arguments.profile))
    print(json.dumps(figures))

"""A served process that reports on its garbage collector, for tests/runtime/test_collector.py.

Run as ``python -m tests.runtime.collected_service``; ``COLLECTED_SERVICE_HTTP_PORT`` picks
the port. Its lifespan keeps one object and drops one reference cycle, as a service's start-up
keeps its models and leaves garbage; ``GET /collector`` says what became of them.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from services.runtime import ServiceSettings, serve


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COLLECTED_SERVICE_")


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def main() -> None:
    kept: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        kept["model"] = _Node()
        first, second = _Node(), _Node()
        first.other, second.other = second, first  # a cycle only the collector can free
        kept["garbage"] = weakref.ref(first)
        del first, second
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/collector")
    def collector() -> dict[str, Any]:
        made_later, cycle = _Node(), _Node()
        cycle.other = cycle
        freed_later = weakref.ref(cycle)
        del cycle
        tracked = gc.get_objects()  # what the collector walks: frozen objects are not in it
        report = {
            "frozen": gc.get_freeze_count(),
            "threshold": gc.get_threshold(),
            "start_up_garbage_freed": kept["garbage"]() is None,
            "start_up_object_frozen": not any(o is kept["model"] for o in tracked),
            "later_object_tracked": any(o is made_later for o in tracked),
        }
        del tracked
        gc.collect()
        return report | {"later_cycle_freed": freed_later() is None}

    serve(app, Settings(), service="collected")


if __name__ == "__main__":
    main()

"""The cyclic garbage collector's policy for a service process.

A service imports about 240,000 objects the collector tracks (FastAPI, pydantic's schemas,
SQLAlchemy, aiokafka; scikit-learn in the scorer and retrainer) and keeps them for its whole life.
Every full collection walked all of them: on the consumer's hot path, full collections were
between a quarter and a half of the CPU an event cost (docs/adr/0016-hot-path.md, "The
collector"). Once the service has started, its objects are moved out of the collector's sight
(:func:`gc.freeze`) and full collections come a tenth as often, each walking only what was made
since.

Cyclic garbage is still collected: the young generations as before, the old one every
``OLDEST_GENERATION_THRESHOLD`` collections of the middle one. Reference counting frees the rest
as it always did, frozen or not.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

__all__ = ["OLDEST_GENERATION_THRESHOLD", "freeze_after_start_up", "settle_collector"]

OLDEST_GENERATION_THRESHOLD = 100
"""Collections of generation 1 between two full collections (CPython's default is 10)."""


def settle_collector() -> None:
    """Collect what start-up left behind, freeze everything still alive, and make full
    collections rarer. Call it once, when the process has built what it keeps: a frozen cycle
    that later becomes garbage is never reclaimed."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, OLDEST_GENERATION_THRESHOLD)


def freeze_after_start_up(app: FastAPI) -> None:
    """Settle the collector once ``app``'s lifespan has started (modules imported, models
    loaded, connections open), in a process that serves only this app."""
    started: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[Any]:
        async with started(served) as state:
            settle_collector()
            yield state

    app.router.lifespan_context = lifespan

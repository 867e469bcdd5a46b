"""Readiness checks: what ``/readyz`` asks before it answers 200.

A check is a coroutine that returns when its dependency is usable and raises when it is not.
:class:`~services.runtime.service.ServiceRuntime` runs the checks a service registered (with
``add_readiness_check``) concurrently, each under a time limit, next to the consumer's own state.
A service with a database registers :func:`database_check`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["Check", "database_check", "run_checks"]

Check = Callable[[], Awaitable[None]]


def database_check(engine: AsyncEngine) -> Check:
    """A ``SELECT 1`` over a pooled connection of the service's engine."""

    async def check() -> None:
        async with engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    return check


async def run_checks(checks: Mapping[str, Check], *, timeout_s: float) -> dict[str, str]:
    """Run every check at once; return name → ``"ok"`` or what went wrong."""

    async def outcome(check: Check) -> str:
        try:
            async with asyncio.timeout(timeout_s):
                await check()
        except TimeoutError:
            return f"no answer within {timeout_s:g} s"
        except Exception as error:
            return f"{type(error).__name__}: {error}"[:500]
        return "ok"

    results = await asyncio.gather(*(outcome(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))

"""The monitor's HTTP API: run a model's probe on demand, and see what the monitor holds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from contracts.monitoring import ProbeCompleted
from contracts.values import ModelName
from services.monitor.service import MonitorService, NoGoldenSet, NotDeployed
from services.runtime import RegistryError

__all__ = ["api"]


def api(service: MonitorService) -> APIRouter:
    """Return the routes of the monitor's API."""
    router = APIRouter(tags=["monitor"])

    @router.post("/probes/{model}", response_model=ProbeCompleted)
    async def probe(model: ModelName) -> ProbeCompleted:
        """Probe a model's champion with its golden set now (a spot check).

        The run is published on ``metrics`` and raises or recovers the probe alert exactly like a
        scheduled run; a failed probe is a 200 answer with ``passed: false``.
        """
        try:
            return await service.probe(model, manual=True)
        except NotDeployed as error:
            raise HTTPException(status_code=404, detail=str(error)) from None
        except NoGoldenSet as error:
            raise HTTPException(status_code=409, detail=str(error)) from None
        except RegistryError as error:
            raise HTTPException(status_code=502, detail=str(error)) from None

    @router.get("/estimates/{model}")
    async def estimates(model: ModelName) -> dict[str, Any]:
        """A model's recent closed windows (since the monitor started), each with the metrics
        estimated from scores alone beside the realised ones (null until labels arrive)."""
        windows = await service.recent_windows(model)
        if windows is None:
            raise HTTPException(status_code=404, detail=f"model {model!r} is not known here")
        return {"model": model, "windows": windows}

    @router.get("/status")
    async def status() -> dict[str, Any]:
        """What waits for a label, which windows are open, which signals alert."""
        return await service.status()

    @router.get("/series/{model}")
    async def series(model: ModelName) -> dict[str, Any]:
        """A model's recent closed windows (metrics, traffic, p95 latency), its metric alert
        episodes, champion-challenger comparisons, and each version's baseline and thresholds.

        Kept in memory since the monitor started (the ``metrics`` topic is the full record).
        """
        found = await service.series(model)
        if found is None:
            raise HTTPException(
                status_code=404, detail=f"no windows of {model!r} since the monitor started"
            )
        return found

    return router

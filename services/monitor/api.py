"""The monitor's HTTP API: run a model's probe on demand, and see what the monitor holds.

The routes are module-level functions on :data:`router`; :func:`install_monitor_api` gives an app
the monitor service they act on (:data:`Api`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException

from contracts.monitoring import ProbeCompleted
from contracts.values import ModelName
from services.monitor.service import MonitorService, NoGoldenSet, NotDeployed
from services.runtime import RegistryError
from services.runtime.app_state import AppState

__all__ = ["Api", "MonitorApi", "install_monitor_api", "router"]


@dataclass(frozen=True)
class MonitorApi:
    """What the routes act on: the monitor's service (its windows, probes and status)."""

    service: MonitorService


_SLOT = AppState[MonitorApi]("monitor_api")
Api = Annotated[MonitorApi, Depends(_SLOT)]
"""The :class:`MonitorApi` the app was given by :func:`install_monitor_api`."""

router = APIRouter(tags=["monitor"])


def install_monitor_api(app: FastAPI, service: MonitorService) -> None:
    """Add the monitor's routes to an app, bound to one monitor service."""
    _SLOT.put(app, MonitorApi(service))
    app.include_router(router)


@router.post("/probes/{model}", response_model=ProbeCompleted)
async def probe(model: ModelName, api: Api) -> ProbeCompleted:
    """Probe a model's champion with its golden set now (a spot check).

    The run is published on ``metrics`` and raises or recovers the probe alert exactly like a
    scheduled run; a failed probe is a 200 answer with ``passed: false``.
    """
    try:
        return await api.service.probe(model, manual=True)
    except NotDeployed as error:
        raise HTTPException(status_code=404, detail=str(error)) from None
    except NoGoldenSet as error:
        raise HTTPException(status_code=409, detail=str(error)) from None
    except RegistryError as error:
        raise HTTPException(status_code=502, detail=str(error)) from None


@router.get("/estimates/{model}")
async def estimates(model: ModelName, api: Api) -> dict[str, Any]:
    """A model's recent closed windows (since the monitor started), each with the metrics
    estimated from scores alone beside the realised ones (null until labels arrive)."""
    windows = await api.service.recent_windows(model)
    if windows is None:
        raise HTTPException(status_code=404, detail=f"model {model!r} is not known here")
    return {"model": model, "windows": windows}


@router.get("/status")
async def status(api: Api) -> dict[str, Any]:
    """What waits for a label, which windows are open, which signals alert."""
    return await api.service.status()


@router.get("/series/{model}")
async def series(model: ModelName, api: Api) -> dict[str, Any]:
    """A model's recent closed windows (metrics, traffic, p95 latency), its metric alert
    episodes, champion-challenger comparisons, and each version's baseline and thresholds.

    Kept in memory since the monitor started (the ``metrics`` topic is the full record).
    """
    found = await api.service.series(model)
    if found is None:
        raise HTTPException(
            status_code=404, detail=f"no windows of {model!r} since the monitor started"
        )
    return found

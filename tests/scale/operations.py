"""The work the retrainer and runbook runner replicas compete for in the scale test: a copy of
the shipped runbooks in which drift incidents run a runbook that changes nothing the test
measures, runs asked for by hand, retrains asked for by hand, and finding which replica is
executing a run (to kill it mid-run)."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from services.runtime import ServiceName
from services.stack.chaos import _query
from tests.processes import ROUTING_POLICY
from tests.scale.replicas import Replicas

__all__ = [
    "DIAGNOSIS",
    "ask_retrain",
    "ask_runbook",
    "retrain_holder",
    "run_holder",
    "runbooks_for_drift",
]

DIAGNOSIS = "drift-diagnosis"
"""Reads topics and the registry and attaches a report to the incident: it acts on nothing the
test measures (the shipped level-one runbooks would roll back or retrain the models)."""


def runbooks_for_drift(folder: Path) -> Path:
    """A copy of the shipped runbooks folder where drift incidents run :data:`DIAGNOSIS` at
    level one (several per model at once, so runs asked for by hand are not refused) and no
    route rolls a model back; alerts wait one second to group."""
    target = folder / "runbooks"
    shutil.copytree(ROUTING_POLICY.parent, target)
    catalog = yaml.safe_load((target / "catalog.yaml").read_text())
    for runbook in catalog["runbooks"]:
        if runbook["name"] == DIAGNOSIS:
            runbook["tier"] = "L1"
            runbook["max_concurrent_per_model"] = 4
    (target / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    policy = yaml.safe_load(ROUTING_POLICY.read_text())
    routes = [route | {"runbooks": []} for route in policy["routes"]]
    drift = {
        "name": "drift",
        "match": {"kinds": ["data_drift", "prediction_drift"]},
        "runbooks": [DIAGNOSIS],
        "tiers": routes[-1]["tiers"],
    }
    policy |= {"group_wait_seconds": 1, "routes": [drift, *routes]}
    (target / "routing.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    return target


async def _call(
    url: str, token: str, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """One API call, retried while the replica, or one it asks (the incident log resolves
    tokens for the registry), is down or restarting: minutes on a loaded machine."""
    deadline = time.monotonic() + 300
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        while True:
            try:
                response = await http.request(method, path, json=body)
                if response.status_code < 500:
                    assert response.status_code < 300, (path, response.text)
                    return response.json()
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{method} {path} kept failing"
            await asyncio.sleep(0.5)


async def ask_runbook(url: str, token: str, model: str) -> str:
    """Ask for :data:`DIAGNOSIS` by hand on the model's open incident; the run's id."""
    deadline = time.monotonic() + 60
    while True:
        incidents = await _call(url, token, "GET", f"/incidents?model={model}&unresolved=true")
        if incidents:
            break
        assert time.monotonic() < deadline, f"{model} has no open incident"
        await asyncio.sleep(0.5)
    body = {"runbook": DIAGNOSIS, "reason": "scale test", "take_over": True}
    asked = await _call(url, token, "POST", f"/incidents/{incidents[0]['id']}/runbooks", body)
    return str(asked["run_id"])


async def ask_retrain(url: str, token: str, model: str, cause: str) -> str:
    """Ask one registry replica for a retrain of the model; the run's id."""
    body = {"model": model, "reason": "scale test", "cause": cause}
    asked = await _call(url, token, "POST", "/retrains", body)
    assert asked["run_id"], asked
    return str(asked["run_id"])


async def run_holder(database: str, run_id: str, timeout_s: float = 30) -> int | None:
    """Which runner replica (``runner-<index>``) is executing the run, once it runs; ``None``
    if it ended first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = await _query(
            database, f"SELECT state, owner FROM runbook_runs WHERE run_id = '{run_id}'"
        )
        if rows and rows[0][0] == "running" and rows[0][1]:
            return int(str(rows[0][1]).rsplit("-", 1)[1])
        if rows and rows[0][0] not in ("requested", "running"):
            return None
        await asyncio.sleep(0.05)
    return None


async def retrain_holder(
    replicas: Replicas, database: str, run_id: str, timeout_s: float = 30
) -> int | None:
    """Which retrainer replica is training the run (it logs so when it claims it), while the
    run is still running; ``None`` if it ended first."""
    wanted = f"(run {run_id},"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for index, process in enumerate(replicas.processes[ServiceName.RETRAINER]):
            if wanted in process.log_tail(2_000):
                rows = await _query(
                    database, f"SELECT state FROM retrainer_runs WHERE run_id = '{run_id}'"
                )
                return index if rows and rows[0][0] == "running" else None
        await asyncio.sleep(0.05)
    return None

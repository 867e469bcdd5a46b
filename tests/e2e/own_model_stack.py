"""The stack the bring-your-own-model e2e tests run a model through (issue 17): the incident
log and the retrainer (``governed_processes``, the champion registered and deployed by the
test's own ``champion``), plus the scorer, the monitor and the drift detector as processes, on a
routing policy without runbooks (incidents go to people at level two, who ask for retrains)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from services.runtime import KafkaSettings, ServiceName
from tests.processes import ServiceProcess, level_two_policy
from tests.retrainer.retrainer_harness import governed_processes

ADMIN = "e2e-admin-token"
DRIFT_TOKEN = "e2e-drift-detector-token"
WINDOW = 150
"""Rows per monitor and drift window: the shift shows within the shifted traffic."""


@asynccontextmanager
async def own_model_stack(
    kafka: KafkaSettings,
    folder: Path,
    champion: Callable[[httpx.AsyncClient, str], Awaitable[None]],
) -> AsyncIterator[dict[str, Any]]:
    """Start everything, with ``champion`` as v1; people ``ana`` and ``bo`` at l2. Yields the
    incident log, the retrainer and the scorer processes and the people's tokens."""
    async with governed_processes(
        kafka,
        folder,
        admin_token=ADMIN,
        people={"ana": "l2", "bo": "l2"},
        gate_resamples=300,
        champion=champion,
        incident_log_env={
            "VIGIL_INCIDENT_LOG_POLICY_PATH": str(level_two_policy(folder)),
            "VIGIL_INCIDENT_LOG_SERVICE_TOKENS": json.dumps(
                [{"name": "drift-detector", "scopes": ["datasets:read"], "token": DRIFT_TOKEN}]
            ),
        },
    ) as running:
        scorer = ServiceProcess(ServiceName.SCORER, env=running.env, log_dir=folder)
        monitor = ServiceProcess(
            ServiceName.MONITOR,
            env=running.env
            | {
                "VIGIL_MONITOR_PROBES_ENABLED": "false",
                "VIGIL_MONITOR_COMPARISON_MIN_SAMPLES": "40",
                "VIGIL_MONITOR_WINDOW_MAX_EVENTS": str(WINDOW),
            },
            log_dir=folder,
        )
        drift_detector = ServiceProcess(
            ServiceName.DRIFT_DETECTOR,
            env=running.env
            | {
                "VIGIL_DRIFT_DETECTOR_SERVICE_TOKEN": DRIFT_TOKEN,
                "VIGIL_DRIFT_DETECTOR_WINDOW_SIZE": str(WINDOW),
            },
            log_dir=folder,
        )
        try:
            for process in (scorer, monitor, drift_detector):
                process.start()
            for process in (scorer, monitor, drift_detector):
                await process.wait_ready()
            yield {
                "incident_log": running.incident_log,
                "retrainer": running.retrainer,
                "scorer": scorer,
                "tokens": running.tokens,
            }
        finally:
            for process in (drift_detector, monitor, scorer):
                await process.stop()

"""The retrainer and the scorer as processes, the real incident log their identity provider: a
model registered by a person with a token and its first version served, as an operator sets up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from services.runtime import KafkaSettings, ServiceName
from tests.model_builders import TrainedModel
from tests.processes import ServiceProcess, issue_tokens, running_incident_log, stack_env
from tests.registry_tools import bearer, deploy, register


@asynccontextmanager
async def scoring_stack(
    kafka: KafkaSettings,
    folder: Path,
    *,
    admin_token: str,
    model: str,
    versions: Sequence[TrainedModel],
) -> AsyncIterator[tuple[ServiceProcess, ServiceProcess, dict[str, str]]]:
    """``versions`` registered as 1, 2, … of ``model`` by ana (l2) and v1 deployed; yields the
    retrainer, the scorer serving v1, and ana's headers."""
    retrainer = ServiceProcess(ServiceName.RETRAINER, log_dir=folder)
    env = stack_env(kafka, folder / "state", retrainer.url)
    scorer = ServiceProcess(ServiceName.SCORER, env=env, log_dir=folder)
    async with running_incident_log(
        kafka, folder / "incident-log", admin_token=admin_token
    ) as incident_log:
        retrainer.env = env | {"VIGIL_INCIDENT_LOG_URL": incident_log.url}
        retrainer.start()
        try:
            await retrainer.wait_ready()
            tokens = await issue_tokens(incident_log.url, admin_token, {"ana": "l2"})
            ana = bearer(tokens["ana"])
            async with httpx.AsyncClient(base_url=retrainer.url) as http:
                for trained in versions:
                    response = await register(http, model, trained, headers=ana)
                    assert response.status_code == 201, response.text
                assert (await deploy(http, model, 1, headers=ana)).status_code == 200
            scorer.start()
            await scorer.wait_ready()
            yield retrainer, scorer, ana
        finally:
            await scorer.stop()
            await retrainer.stop()

"""``vigil up`` gives each service only its own token and no service the admin token: checked on
the environment each service is built with, and on the environment of running processes
(``/proc/<pid>/environ``), whose tokens then work only within their scopes."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from services.runtime import KafkaProfile, KafkaSettings, ServiceName, free_port
from services.runtime.scopes import SERVICE_SCOPES
from services.stack.stack import (
    STARTUP_ORDER,
    TOKEN_SETTING,
    Credentials,
    StackSettings,
    running_stack,
    service_tokens,
    stack_supervisor,
)

OPERATOR_TOKEN = "vgl_the-operators-own-token"


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_values(env: dict[str, str], tokens: list[str]) -> set[str]:
    """Which of ``tokens`` appear anywhere in an environment (in clear)."""
    return {token for token in tokens if any(token in value for value in env.values())}


async def test_each_service_is_built_with_only_its_own_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_TOKEN", OPERATOR_TOKEN)  # the operator's shell: must not leak
    monkeypatch.setenv("VIGIL_INCIDENT_LOG_ADMIN_TOKEN", OPERATOR_TOKEN)
    credentials = Credentials.load_or_create(tmp_path / "credentials.json")
    tokens = service_tokens()
    assert (
        set(tokens)
        == set(SERVICE_SCOPES)
        == {
            ServiceName.DRIFT_DETECTOR,
            ServiceName.RUNBOOK_RUNNER,
        }
    )
    settings = StackSettings(state_dir=tmp_path, services=STARTUP_ORDER)
    supervisor = await stack_supervisor(
        settings, "127.0.0.1:9", KafkaProfile.EMBEDDED, tmp_path, credentials, tokens
    )
    secrets = [credentials.admin_token, OPERATOR_TOKEN, *tokens.values()]
    for name in STARTUP_ORDER:
        env = supervisor.environment(name)
        own = {tokens[name]} if name in tokens else set()
        assert token_values(env, secrets) == own, name
        if name in tokens:
            assert env[TOKEN_SETTING[name]] == tokens[name]
        assert "VIGIL_TOKEN" not in env
        assert "VIGIL_INCIDENT_LOG_ADMIN_TOKEN" not in env
    log = supervisor.environment(ServiceName.INCIDENT_LOG)
    assert log["VIGIL_INCIDENT_LOG_ADMIN_TOKEN_SHA256"] == sha256(credentials.admin_token)
    provisioned = json.loads(log["VIGIL_INCIDENT_LOG_SERVICE_TOKENS"])
    assert {(p["name"], tuple(p["scopes"]), p["token_sha256"]) for p in provisioned} == {
        (name.value, tuple(sorted(SERVICE_SCOPES[name])), sha256(token))
        for name, token in tokens.items()
    }
    assert service_tokens() != tokens  # drawn afresh at each start


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_running_services_hold_only_their_tokens_which_work_only_within_their_scopes(
    kafka_settings: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_TOKEN", OPERATOR_TOKEN)
    running = [ServiceName.INCIDENT_LOG, ServiceName.DRIFT_DETECTOR, ServiceName.RUNBOOK_RUNNER]
    settings = StackSettings(
        state_dir=tmp_path / "state",
        kafka_bootstrap_servers=kafka_settings.bootstrap_servers,
        kafka_profile=kafka_settings.profile,
        topic_prefix=kafka_settings.topic_prefix,
        services=running,
        ports={name: free_port() for name in running},
    )
    async with running_stack(settings) as stack:
        admin = stack.credentials.admin_token
        environments = {}
        for name in running:
            pid = stack.supervisor.pid(name)
            assert pid is not None
            raw = (await asyncio.to_thread(Path(f"/proc/{pid}/environ").read_bytes)).split(b"\0")
            environments[name] = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
        drift = environments[ServiceName.DRIFT_DETECTOR]["VIGIL_DRIFT_DETECTOR_SERVICE_TOKEN"]
        runner = environments[ServiceName.RUNBOOK_RUNNER]["VIGIL_RUNBOOK_RUNNER_RUNBOOK_TOKEN"]
        secrets = [admin, OPERATOR_TOKEN, drift, runner]
        assert token_values(environments[ServiceName.INCIDENT_LOG], secrets) == set()
        assert token_values(environments[ServiceName.DRIFT_DETECTOR], secrets) == {drift}
        assert token_values(environments[ServiceName.RUNBOOK_RUNNER], secrets) == {runner}

        url = stack.url(ServiceName.INCIDENT_LOG)
        async with httpx.AsyncClient(base_url=url) as http:

            async def call(method: str, path: str, token: str, body: object = None) -> int:
                response = await http.request(
                    method, path, json=body, headers={"Authorization": f"Bearer {token}"}
                )
                return response.status_code

            me = await http.get("/whoami", headers={"Authorization": f"Bearer {drift}"})
            assert (me.json()["name"], me.json()["scopes"]) == ("drift-detector", ["datasets:read"])
            assert await call("GET", "/incidents", drift) == 403
            assert await call("GET", "/incidents", runner) == 200
            assert await call("GET", "/silences", runner) == 403
            assert await call("POST", "/tokens", runner, {"name": "x", "role": "admin"}) == 403
            assert await call("GET", "/incidents", OPERATOR_TOKEN) == 401
            listed = await http.get("/tokens", headers={"Authorization": f"Bearer {admin}"})
            assert sorted((t["name"], t["created_by"]) for t in listed.json()) == [
                ("drift-detector", "settings"),
                ("runbook-runner", "settings"),
            ]

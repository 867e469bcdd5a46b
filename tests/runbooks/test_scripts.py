"""The real runbook scripts: catalogued, self-documenting, and doing what they say against a real
registry over loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contracts import DeadLetterReason, LabelRecorded, MessageDeadLettered, Topic
from services.runtime import KafkaSettings
from tests.http_tools import serving
from tests.kafka_tools import read_until_quiet, write_raw
from tests.model_builders import registration_form, train
from tests.processes import kafka_env
from tests.registry_tools import AS_ANA, Registry, registry

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"
MODEL = "breast-cancer"


@pytest.mark.parametrize(
    "script", sorted(p.name for p in RUNBOOKS.glob("*.py") if p.name != "vigil_runbook.py")
)
def test_every_script_answers_help_with_its_exit_codes(script: str) -> None:
    result = subprocess.run(
        [sys.executable, RUNBOOKS / script, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RUNBOOKS,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Exit codes:" in result.stdout
    assert "  0  " in result.stdout


def run_script(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, RUNBOOKS / script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RUNBOOKS,
        # PATH and PYTHONPATH, as the runner's allow-list passes them
        env={k: os.environ[k] for k in ("PATH", "PYTHONPATH") if k in os.environ} | env,
        check=False,
    )


@pytest.fixture
async def registry_url(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Registry, str]]:
    async with registry(database_url) as served, serving(served.app) as url:
        yield served, url


async def register_and_deploy(url: str, versions: int) -> None:
    async with httpx.AsyncClient(base_url=url, headers=AS_ANA) as http:
        for c in [1.0, 0.5, 0.25][:versions]:
            data, files = registration_form(train(c))
            (
                await http.post(f"/models/{MODEL}/versions", data=data, files=files)
            ).raise_for_status()
        for version in range(1, versions + 1):
            body = {"champion": version, "reason": f"v{version}"}
            (await http.put(f"/models/{MODEL}/deployment", json=body)).raise_for_status()


async def champion(url: str) -> int:
    async with httpx.AsyncClient(base_url=url) as http:
        version: int = (await http.get(f"/models/{MODEL}/deployment")).json()["champion"]["version"]
        return version


@pytest.mark.integration
async def test_rollback_restores_the_previous_champion_and_refuses_what_it_cannot_fix(
    registry_url: tuple[Registry, str],
) -> None:
    served, url = registry_url
    served.clock.now = datetime.now(UTC)  # the script judges "fresh" against the real clock
    await register_and_deploy(url, versions=2)
    env = {"VIGIL_REGISTRY_URL": url, "VIGIL_RUNBOOK_TOKEN": "token-ana", "VIGIL_RUN_ID": "run-7"}
    args = ("--model", MODEL, "--version", "2", "--incident", "inc-0a1b2c")

    stale = await asyncio.to_thread(
        run_script, "rollback_model.py", *args, "--max-age-minutes", "0.0001", env=env
    )
    assert stale.returncode == 3, stale.stderr
    assert "not a fresh deployment" in stale.stderr
    assert await champion(url) == 2

    done = await asyncio.to_thread(run_script, "rollback_model.py", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert "serves champion v1" in done.stdout
    assert await champion(url) == 1
    async with httpx.AsyncClient(base_url=url) as http:
        history = (await http.get(f"/models/{MODEL}/history")).json()
    latest = history["revisions"][-1]
    assert (latest["actor"], latest["incident_id"]) == ("ana", "inc-0a1b2c")
    assert latest["reason"].startswith("runbook rollback-model, run run-7: metrics of v2 fell")
    v1 = ("--model", MODEL, "--version", "1", "--incident", "inc-0a1b2c")
    refused = await asyncio.to_thread(
        run_script, "rollback_model.py", *v1, env=env | {"VIGIL_RUNBOOK_TOKEN": "token-lee"}
    )
    assert refused.returncode == 4
    assert "needs l2 or higher" in refused.stderr

    nothing = await asyncio.to_thread(run_script, "rollback_model.py", *v1, env=env)
    assert nothing.returncode == 3
    assert "no previous champion to roll back to" in nothing.stderr
    missing = await asyncio.to_thread(run_script, "rollback_model.py", *args, env={})
    assert missing.returncode == 2
    assert "VIGIL_REGISTRY_URL is not set" in missing.stderr
    down = await asyncio.to_thread(
        run_script, "rollback_model.py", *args, env={"VIGIL_REGISTRY_URL": "http://127.0.0.1:9"}
    )
    assert down.returncode == 4
    assert "cannot reach" in down.stderr


async def history_of(url: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=url) as http:
        revisions: list[dict[str, object]] = (await http.get(f"/models/{MODEL}/history")).json()[
            "revisions"
        ]
        return revisions


@pytest.mark.integration
async def test_a_rollback_queued_behind_a_fix_does_nothing_once_its_version_no_longer_serves(
    registry_url: tuple[Registry, str],
) -> None:
    """v2 decayed; before the queued rollback ran, a person put v3 out as the fix. The rollback
    for v2 must not roll the fix back: it exits 5 and says why."""
    served, url = registry_url
    served.clock.now = datetime.now(UTC)
    await register_and_deploy(url, versions=3)  # v1, v2, v3: v3 is the fix
    before = await history_of(url)
    env = {"VIGIL_REGISTRY_URL": url, "VIGIL_RUNBOOK_TOKEN": "token-ana", "VIGIL_RUN_ID": "run-8"}

    stale = await asyncio.to_thread(
        run_script,
        "rollback_model.py",
        *("--model", MODEL, "--version", "2", "--incident", "inc-0a1b2c"),
        env=env,
    )
    assert stale.returncode == 5, stale.stderr
    assert stale.stderr.strip() == (
        f"nothing to do: version 2 of {MODEL} no longer serves (now champion v3, revision 3)"
    )
    assert await history_of(url) == before
    assert await champion(url) == 3


@pytest.mark.integration
async def test_a_rollback_withdraws_the_canary_alerted_on_but_not_for_the_champions_decay(
    registry_url: tuple[Registry, str],
) -> None:
    served, url = registry_url
    served.clock.now = datetime.now(UTC)
    await register_and_deploy(url, versions=2)
    async with httpx.AsyncClient(base_url=url, headers=AS_ANA) as http:
        body = {"champion": 2, "challenger": 3, "challenger_share": 0.1, "reason": "canary v3"}
        data, files = registration_form(train(0.125))
        (await http.post(f"/models/{MODEL}/versions", data=data, files=files)).raise_for_status()
        (await http.put(f"/models/{MODEL}/deployment", json=body)).raise_for_status()
    before = await history_of(url)
    env = {"VIGIL_REGISTRY_URL": url, "VIGIL_RUNBOOK_TOKEN": "token-ana"}
    args = ("--model", MODEL, "--incident", "inc-0a1b2c")

    champion_decay = await asyncio.to_thread(
        run_script, "rollback_model.py", *args, "--version", "2", env=env
    )
    assert champion_decay.returncode == 3, champion_decay.stderr
    assert "v2 serves as champion, but a rollback would withdraw challenger v3" in (
        champion_decay.stderr
    )
    assert await history_of(url) == before

    canary_decay = await asyncio.to_thread(
        run_script, "rollback_model.py", *args, "--version", "3", env=env
    )
    assert canary_decay.returncode == 0, canary_decay.stderr
    assert "serves champion v2 (challenger v3 withdrawn)" in canary_decay.stdout
    async with httpx.AsyncClient(base_url=url) as http:
        deployment = (await http.get(f"/models/{MODEL}/deployment")).json()
    assert (deployment["champion"]["version"], deployment["challenger"]) == (2, None)


def fix_lands_first(registry: str) -> Starlette:
    """A loopback proxy in front of the registry that, when the rollback arrives, first lets a
    person deploy v3 — the race a compare-and-set exists for: the script judged revision 2."""
    landed: list[int] = []

    async def forward(request: Request) -> Response:
        async with httpx.AsyncClient(base_url=registry) as http:
            if request.url.path.endswith("/deployment/rollback") and not landed:
                body = {"champion": 3, "reason": "the fix, by hand"}
                fix = await http.put(f"/models/{MODEL}/deployment", json=body, headers=AS_ANA)
                landed.append(fix.status_code)
            answer = await http.request(
                request.method,
                request.url.path,
                params=request.query_params,
                content=await request.body(),
                headers={k: v for k, v in request.headers.items() if k != "host"},
            )
        return Response(answer.content, answer.status_code, media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])


@pytest.mark.integration
async def test_a_fix_landing_between_judging_and_rolling_back_is_not_rolled_back(
    registry_url: tuple[Registry, str],
) -> None:
    served, url = registry_url
    served.clock.now = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=url, headers=AS_ANA) as http:
        for c in [1.0, 0.5, 0.25]:
            data, files = registration_form(train(c))
            (
                await http.post(f"/models/{MODEL}/versions", data=data, files=files)
            ).raise_for_status()
        for version in (1, 2):
            body = {"champion": version, "reason": f"v{version}"}
            (await http.put(f"/models/{MODEL}/deployment", json=body)).raise_for_status()

    async with serving(fix_lands_first(url)) as proxy:
        env = {"VIGIL_REGISTRY_URL": proxy, "VIGIL_RUNBOOK_TOKEN": "token-ana"}
        raced = await asyncio.to_thread(
            run_script,
            "rollback_model.py",
            *("--model", MODEL, "--version", "2", "--incident", "inc-0a1b2c"),
            env=env,
        )
    assert raced.returncode == 5, raced.stderr
    assert raced.stderr.strip() == (
        f"nothing to do: version 2 of {MODEL} no longer serves (now champion v3, revision 3)"
    )
    revisions = await history_of(url)
    assert [r["action"] for r in revisions] == ["deployed", "deployed", "deployed"]
    assert await champion(url) == 3


def _letter(kafka: KafkaSettings, offset: int, headers: dict[str, str] | None = None) -> bytes:
    original = LabelRecorded(producer="client", model=MODEL, request_id=f"req-{offset}", label=1)
    return (
        MessageDeadLettered(
            producer="monitor",
            original_topic=kafka.topic_name(Topic.LABELS),
            partition=0,
            offset=offset,
            consumer_group="monitor",
            reason=DeadLetterReason.HANDLER_FAILED,
            error=f"failure {offset}",
            original_key_b64=base64.b64encode(MODEL.encode()).decode(),
            original_value_b64=base64.b64encode(original.model_dump_json().encode()).decode(),
            original_headers=headers or {},
        )
        .model_dump_json()
        .encode()
    )


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)  # seven script runs, each reading the dead-letter topic for seconds
async def test_replay_replays_each_dead_letter_once_and_verifies_only_its_own_run(
    kafka_settings: KafkaSettings,
) -> None:
    env = kafka_env(kafka_settings)
    old_failure = {"vigil-replayed-from": "labels/0/9", "vigil-replay-run": "run-old"}
    await write_raw(
        kafka_settings,
        Topic.DEAD_LETTER,
        [_letter(kafka_settings, 0), _letter(kafka_settings, 1, old_failure)],
    )

    async def replay(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            run_script, "replay_dead_letters.py", "--topic", "labels", *args, env=env
        )

    first = await replay("--run", "run-1")
    assert first.returncode == 0, first.stderr
    assert "run-1 replayed 1 message(s)" in first.stdout
    replayed = await read_until_quiet(kafka_settings, Topic.LABELS)
    assert len(replayed) == 1
    assert dict(replayed[0].headers)["vigil-replay-run"] == b"run-1"
    assert b'"request_id":"req-0"' in replayed[0].value

    # The old failure of an earlier replay is not this run's business.
    verified = await replay("--run", "run-1", "--verify", "--wait-seconds", "0")
    assert verified.returncode == 0, verified.stderr

    again = await replay("--run", "run-2")
    assert again.returncode == 3, again.stdout + again.stderr
    assert len(await read_until_quiet(kafka_settings, Topic.LABELS)) == 1

    await write_raw(kafka_settings, Topic.DEAD_LETTER, [_letter(kafka_settings, 2)])
    third = await replay("--run", "run-3")
    assert third.returncode == 0, third.stderr
    assert "run-3 replayed 1 message(s)" in third.stdout
    labels = await read_until_quiet(kafka_settings, Topic.LABELS)
    assert [dict(r.headers)["vigil-replay-run"] for r in labels] == [b"run-1", b"run-3"]

    # One of run-3's replays fails again: run-3's verification says so, run-1's does not.
    came_back = {"vigil-replayed-from": "labels/0/2", "vigil-replay-run": "run-3"}
    await write_raw(kafka_settings, Topic.DEAD_LETTER, [_letter(kafka_settings, 3, came_back)])
    failed = await replay("--run", "run-3", "--verify", "--wait-seconds", "0")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "1 message(s) replayed by run-3 were dead-lettered again" in failed.stderr
    still_fine = await replay("--run", "run-1", "--verify", "--wait-seconds", "0")
    assert still_fine.returncode == 0, still_fine.stderr

    # A verification has to say which run it checks.
    anonymous = await replay("--verify", "--wait-seconds", "0")
    assert anonymous.returncode == 2

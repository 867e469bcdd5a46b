"""``vigil retrain …``, ``vigil approve`` and ``vigil reject`` against a running retrainer."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from contracts import ModelApproved, ModelDeployed, PromotionRequested, RetrainFinished
from services.cli import _add_service_commands, app
from services.runtime import free_port
from tests.retrainer.retrainer_harness import MODEL, Retrainer, of_type

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
_add_service_commands()


async def vigil(retrainer: Retrainer, who: str, *args: str) -> tuple[int, str]:
    env = {"VIGIL_REGISTRY_URL": retrainer.url, "VIGIL_TOKEN": retrainer.tokens[who]}
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return result.exit_code, " ".join(result.output.split())  # the console wraps long lines


async def test_a_retrain_asked_and_approved_from_the_command_line(retrainer: Retrainer) -> None:
    await retrainer.with_live_data(0, 200)
    code, output = await vigil(
        retrainer,
        "ana",
        "retrain",
        "request",
        MODEL,
        "--reason",
        "new labels",
        "--cause",
        "manual:cli",
        "--set",
        "C=0.5",
        "--json",
    )
    assert code == 0, output
    assert json.loads(output)["admission"] == "queued"
    events = await retrainer.models(lambda e: len(of_type(e, RetrainFinished)) == 1)
    [proposed] = of_type(events, PromotionRequested)

    code, output = await vigil(retrainer, "ana", "retrain", "list", "--json")
    [run] = json.loads(output)
    assert (run["causes"], run["parameters"], run["candidate_version"]) == (
        ["manual:cli"],
        {"C": 0.5},
        2,
    )
    code, output = await vigil(retrainer, "ana", "retrain", "show", run["run_id"])
    assert code == 0, output
    assert "426 → 626 rows (200 live" in output
    code, output = await vigil(retrainer, "ana", "retrain", "evaluation", run["evaluation_id"])
    assert "v2 passed" in output
    code, output = await vigil(retrainer, "lee", "retrain", "promotions", "--state", "pending")
    assert proposed.request_id in output

    code, output = await vigil(
        retrainer, "ana", "approve", proposed.request_id, "--comment", "mine"
    )
    assert code == 3
    assert "409" in output
    assert "asked for this retrain" in output
    code, output = await vigil(retrainer, "lee", "approve", proposed.request_id, "--comment", "ok")
    assert code == 3
    assert "403" in output
    code, output = await vigil(
        retrainer, "bo", "approve", proposed.request_id, "--comment", "ok", "--json"
    )
    assert code == 0, output
    assert json.loads(output)["state"] == "approved"
    events = await retrainer.models(lambda e: len(of_type(e, ModelDeployed)) == 2)
    assert [a.approver for a in of_type(events, ModelApproved)] == ["bo"]
    code, output = await vigil(retrainer, "bo", "reject", proposed.request_id, "--comment", "no")
    assert code == 3
    assert "approved by bo" in output


async def test_an_unreachable_retrainer_exits_with_status_4(retrainer: Retrainer) -> None:
    env = {"VIGIL_REGISTRY_URL": f"http://127.0.0.1:{free_port()}", "VIGIL_TOKEN": "t"}
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["approve", "pr-1", "--comment", "x"], env=env
    )
    assert result.exit_code == 4
    assert "cannot reach" in result.output

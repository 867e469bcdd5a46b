"""``vigil models …`` against the real registry API over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import _add_service_commands
from services.cli import app as vigil
from tests.http_tools import serving
from tests.model_builders import metadata, train
from tests.registry_tools import registry

_add_service_commands()


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    async with (
        registry(f"sqlite:///{tmp_path / 'r.db'}") as reg,
        serving(reg.app) as base,
    ):
        yield base


async def vigil_models(url: str, *args: str, token: str | None = "token-ana") -> tuple[int, str]:
    """Run ``vigil models …`` as the owner of ``token`` (no token: none at all)."""
    env = {"VIGIL_TOKEN": token, "VIGIL_STATE_DIR": "no-such-state-dir"}
    result = await asyncio.to_thread(
        CliRunner().invoke,
        vigil,
        ["models", *args, "--url", url],
        env=env,
        catch_exceptions=False,
    )
    return result.exit_code, " ".join(result.output.split())  # unwrapped: rich folds lines


async def test_register_deploy_canary_rollback_and_history_from_the_command_line(
    url: str, tmp_path: Path
) -> None:
    files = {}
    for c in (1.0, 0.01):
        trained = train(c=c)
        for name, content in (
            ("model.skops", trained.artifact),
            ("train.csv", trained.training_csv),
            (
                "meta.json",
                json.dumps(
                    metadata(evaluation_dataset_name=None, evaluation_dataset_version=None)
                ).encode(),
            ),
        ):
            path = tmp_path / f"{c}-{name}"
            path.write_bytes(content)
            files[(c, name)] = str(path)
        code, out = await vigil_models(
            url,
            "register",
            "breast-cancer",
            "--artifact",
            files[(c, "model.skops")],
            "--training-data",
            files[(c, "train.csv")],
            "--metadata",
            files[(c, "meta.json")],
        )
        assert code == 0, out
        assert "registered breast-cancer v" in out

    code, out = await vigil_models(
        url, "deploy", "breast-cancer", "--champion", "1", "--reason", "first"
    )
    assert code == 0, out
    code, out = await vigil_models(
        url,
        "deploy",
        "breast-cancer",
        "--champion",
        "1",
        "--challenger",
        "2",
        "--share",
        "0.1",
        "--reason",
        "canary",
    )
    assert code == 0, out
    code, out = await vigil_models(url, "traffic", "breast-cancer", "0.6", "--reason", "more")
    assert code == 2  # a share over 0.5 is refused before any call
    code, out = await vigil_models(
        url, "rollback", "breast-cancer", "--reason", "bad canary", "--json"
    )
    assert code == 0, out
    assert json.loads(out)["deployment"]["challenger"] is None

    code, out = await vigil_models(url, "history", "breast-cancer", "--json")
    moves = json.loads(out)["alias_moves"]
    assert [(m["alias"], m["version"], m["actor"]) for m in moves] == [
        ("champion", 1, "ana"),
        ("challenger", 2, "ana"),
        ("challenger", None, "ana"),
    ]
    code, out = await vigil_models(url, "list")
    assert code == 0
    assert "breast-cancer" in out
    assert "v1 (rev 3)" in out
    code, out = await vigil_models(url, "rollback", "breast-cancer", "--reason", "again")
    assert code == 3
    assert "409" in out or "no previous champion" in out


async def test_changes_need_a_token_of_level_two_and_say_so(url: str) -> None:
    deploy = ("deploy", "breast-cancer", "--champion", "1", "--reason", "r")
    code, out = await vigil_models(url, *deploy, token=None)
    assert code == 3
    assert "401" in out
    assert "missing bearer token" in out
    code, out = await vigil_models(url, *deploy, token="token-lee")
    assert code == 3
    assert "role l1 may not change the registry (needs l2 or higher)" in out
    code, out = await vigil_models(url, "list", token=None)
    assert code == 0, out  # reading needs no token
    code, out = await vigil_models("http://127.0.0.1:9", "list")
    assert code == 4
    assert "cannot reach" in out

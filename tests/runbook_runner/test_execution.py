"""Executing commands as real child processes: literal argv, sanitised environment, capped
output, and timeouts that kill the whole process group."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from services.runbook_runner.admission import Admitted, Ask, admit
from services.runbook_runner.catalog import Catalog
from services.runbook_runner.environment import script_environment
from services.runbook_runner.execution import CommandResult, run_command, sha256_of
from tests.factories import make_runbook_request
from tests.runbook_runner.support import SCRIPTS, wait_dead, wait_started

LIMIT = 64 * 1024


def script(name: str, *args: str) -> list[str]:
    return [sys.executable, str(SCRIPTS / name), *args]


async def run(
    argv: list[str],
    tmp_path: Path,
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = 30,
    merge_stderr: bool = False,
) -> CommandResult:
    return await run_command(
        argv,
        env=env if env is not None else {"PATH": os.environ.get("PATH", "")},
        cwd=tmp_path,
        timeout_s=timeout_s,
        output_limit=LIMIT,
        kill_grace_s=1.0,
        merge_stderr=merge_stderr,
    )


def hostile_argv(catalog: Catalog, value: str) -> list[str]:
    request = make_runbook_request(runbook="show-argv", parameters={"value": value})
    admitted = admit(catalog, Ask.of(request), python=sys.executable)
    assert isinstance(admitted, Admitted), admitted
    return admitted.argv


@pytest.mark.parametrize(
    "template",
    [
        "; touch {pwned}",
        "$(touch {pwned})",
        "`touch {pwned}`",
        "&& touch {pwned} || touch {pwned}",
        "| tee {pwned}",
        "> {pwned}",
        "../../etc/passwd",
        "$HOME * ~ {pwned}?",
    ],
)
async def test_a_hostile_value_reaches_the_script_as_one_literal_argument(
    catalog: Catalog, tmp_path: Path, template: str
) -> None:
    pwned = tmp_path / "pwned"
    value = template.replace("{pwned}", str(pwned))
    result = await run(hostile_argv(catalog, value), tmp_path)
    assert result.exit_code == 0, result.stderr
    received = json.loads(result.stdout)
    assert received == ["--value", value, "--model", "breast-cancer", "--incident", "inc-000001"]
    assert not pwned.exists()


async def test_output_beyond_the_limit_is_cut_with_a_visible_mark_keeping_head_and_tail(
    tmp_path: Path,
) -> None:
    result = await run(script("flood.py", str(5_000_000)), tmp_path)
    assert result.exit_code == 0
    assert result.truncated
    for stream in (result.stdout, result.stderr):
        assert stream.startswith("first line\n")
        assert stream.endswith("last line\n")
        assert "[... vigil: " in stream
        assert "bytes of output cut ...]" in stream
        assert len(stream.encode()) < LIMIT + 200


async def test_output_within_the_limit_is_kept_whole(tmp_path: Path) -> None:
    result = await run(script("flood.py", "1000"), tmp_path)
    assert not result.truncated
    assert result.stdout == "first line\n" + "x" * 1000 + "\nlast line\n"


async def test_a_secret_in_the_runners_environment_reaches_a_script_only_if_allow_listed(
    tmp_path: Path,
) -> None:
    inherited = dict(os.environ) | {
        "VIGIL_RUNBOOK_RUNNER_DATABASE_URL": "postgresql://vigil:hunter2@127.0.0.1/vigil",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "PATH": os.environ.get("PATH", "/usr/bin"),
    }
    vigil = {"VIGIL_RUNBOOK_TOKEN": "scoped-token", "VIGIL_SCORER_URL": "http://127.0.0.1:8720"}

    env = script_environment(inherited, ["PATH", "LANG"], vigil)
    seen = json.loads((await run(script("show_env.py"), tmp_path, env=env)).stdout)
    assert "AWS_SECRET_ACCESS_KEY" not in seen
    assert "VIGIL_RUNBOOK_RUNNER_DATABASE_URL" not in seen
    assert seen["VIGIL_RUNBOOK_TOKEN"] == "scoped-token"
    assert seen["VIGIL_SCORER_URL"] == "http://127.0.0.1:8720"
    assert seen["PATH"] == inherited["PATH"]

    env = script_environment(inherited, ["PATH", "AWS_SECRET_ACCESS_KEY"], vigil)
    seen = json.loads((await run(script("show_env.py"), tmp_path, env=env)).stdout)
    assert seen["AWS_SECRET_ACCESS_KEY"] == "s3cr3t"


async def test_a_hanging_command_and_its_child_are_killed_at_the_timeout(tmp_path: Path) -> None:
    # Long enough for the script to start and print its ids (it is parsed below) on a loaded
    # machine, where starting an interpreter and a child can take seconds.
    result = await run(script("hang.py"), tmp_path, timeout_s=5)
    assert result.timed_out
    assert result.exit_code is not None
    assert result.exit_code < 0
    pids = json.loads(result.stdout)
    assert await wait_dead(pids["pid"])
    assert await wait_dead(pids["child"])


async def test_a_process_left_behind_by_a_finished_command_is_killed(tmp_path: Path) -> None:
    result = await run(script("leave_child.py"), tmp_path)
    assert result.exit_code == 0
    assert not result.timed_out
    assert await wait_dead(int(result.stdout))


async def test_a_failing_command_reports_its_status_and_both_streams(tmp_path: Path) -> None:
    result = await run(script("exit_with.py", "3"), tmp_path)
    assert (result.exit_code, result.timed_out) == (3, False)
    assert result.stdout == "doing the work\n"
    assert result.stderr == "failing with status 3\n"


async def test_merged_streams_keep_their_order(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1"}
    result = await run(script("exit_with.py", "1"), tmp_path, env=env, merge_stderr=True)
    assert result.stdout == "doing the work\nfailing with status 1\n"
    assert result.stderr == ""


async def test_a_command_that_cannot_start_is_reported_not_raised(tmp_path: Path) -> None:
    result = await run([str(tmp_path / "missing")], tmp_path)
    assert result.exit_code is None
    assert result.error is not None
    assert "FileNotFoundError" in result.error


async def test_a_command_cancelled_with_the_runner_leaves_no_process_behind(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "marker"
    task = asyncio.create_task(run(script("mark_and_sleep.py", str(marker), "600"), tmp_path))
    pid = await wait_started(marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_dead(pid)


def test_the_script_hash_is_the_sha256_of_its_content(tmp_path: Path) -> None:
    path = tmp_path / "script.py"
    path.write_bytes(b"print('hi')\n")
    assert sha256_of(path) == "caf026f25d7140209f98072605307a438914b9ce6f3c14b23d15d9667241de52"

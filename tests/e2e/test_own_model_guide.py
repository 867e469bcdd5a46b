"""docs/own-model.md, followed literally: its ``sh stack`` block starts ``vigil up`` in the
background, then every ``sh`` and ``python`` block runs in order, as a person would run them, in
one folder with no ``VIGIL_*`` variable set (the commands find the stack themselves). A block
that fails fails the test, naming it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.runtime import free_port
from services.runtime.local_stack import STACK_FILE, find_local_stack
from services.runtime.names import ServiceName

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPOSITORY = Path(__file__).resolve().parents[2]
GUIDE = REPOSITORY / "docs" / "own-model.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
RUN = {"sh", "python"}


def code_blocks(text: str) -> list[tuple[str, str, str]]:
    """Each fenced block's language, the rest of its info string, and its code."""
    return [(language, info.strip(), code) for language, info, code in FENCE.findall(text)]


def test_the_guide_has_a_stack_block_then_runnable_blocks() -> None:
    blocks = code_blocks(GUIDE.read_text())
    assert [info for _, info, _ in blocks].count("stack") == 1
    assert blocks[0][1] == "stack"
    assert sum(language in RUN for language, _, _ in blocks) >= 10
    for name in ("vigil models spec", "vigil models register", "vigil labels send", "/labels"):
        assert any(name in code for _, _, code in blocks), name


def environment() -> dict[str, str]:
    """A person's shell in the activated virtual environment: no VIGIL_ variable."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("VIGIL_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPOSITORY)
    return env


def stack_ports() -> dict[str, str]:
    """Free ports, so the stack does not meet another on this machine (the guide's commands find
    them in stack.json, whatever they are)."""
    ports = {name.value: free_port() for name in ServiceName}
    return {
        "VIGIL_STACK_PORTS": str(ports).replace("'", '"'),
        "VIGIL_STACK_BROKER_PORT": str(free_port()),
        "VIGIL_STACK_WATCH_PORT": "0",
    }


def start_stack(code: str, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (folder / "vigil-up.log").open("wb")
    process = subprocess.Popen(
        ["bash", "-c", code],
        cwd=folder,
        env=environment() | stack_ports(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while find_local_stack({"VIGIL_STATE_DIR": str(folder / ".vigil")}) is None:
            assert process.poll() is None, (folder / "vigil-up.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "vigil up did not start in 4 minutes"
            time.sleep(1)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
    assert not (folder / ".vigil" / STACK_FILE).exists()


@pytest.mark.timeout(1800)
def test_the_own_model_guide_runs_as_written(tmp_path: Path) -> None:
    blocks = code_blocks(GUIDE.read_text())
    (_, _, up), rest = blocks[0], blocks[1:]
    stack = start_stack(up, tmp_path)
    next(stack)
    try:
        for number, (language, _, code) in enumerate(rest, start=1):
            if language not in RUN:
                continue
            if language == "python":
                script = tmp_path / f"block-{number}.py"
                script.write_text(code)
                command = [sys.executable, str(script)]
            else:
                command = ["bash", "-euo", "pipefail", "-c", code]
            started = time.monotonic()
            result = subprocess.run(
                command,
                cwd=tmp_path,
                env=environment(),
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            took = time.monotonic() - started
            assert result.returncode == 0, (
                f"block {number} ({language}, {took:.0f} s) failed:\n{code}\n"
                f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
            )
    finally:
        next(stack, None)

"""Running one command as a child process: no shell, its own process group, a hard timeout.

The argv is executed directly (``execve``), so no character of a parameter is interpreted. The
child starts a new session, hence its own process group; when the command ends — by itself, at
its timeout (SIGTERM to the group, then SIGKILL after a grace period), or because the runner is
stopping — the whole group is killed, so nothing a runbook spawned outlives it. On Linux the
child also gets SIGKILL if the runner dies, so an abandoned run does not go on acting.
stdout and stderr are drained while the command runs (a chatty command never blocks on a full
pipe) into :class:`~services.runbook_runner.capture.OutputCapture` buffers.

Limits: a process that leaves the group on purpose (``setsid`` in a grandchild) escapes the
group kill; containing that needs a cgroup. Between the command's exit and the final group kill a
reaped process id could in principle be reused; the window is microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from services.runbook_runner.capture import OutputCapture

__all__ = ["CommandResult", "run_command", "sha256_of"]

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class CommandResult:
    """How a command ended and what it printed (capped)."""

    exit_code: int | None
    """The exit status; negative: killed by that signal; ``None``: it never started."""
    timed_out: bool
    stdout: str
    stderr: str
    truncated: bool
    error: str | None = None
    """Why it could not start, if it did not."""


async def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout_s: float,
    output_limit: int,
    kill_grace_s: float = 2.0,
    merge_stderr: bool = False,
) -> CommandResult:
    """Run ``argv`` to its end or its timeout; never raise for anything the command does."""
    stdout, stderr = OutputCapture(output_limit), OutputCapture(output_limit)
    loop = asyncio.get_running_loop()
    try:
        transport, run = await loop.subprocess_exec(
            lambda: _Run(stdout, stderr),
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_runner(),
        )
    except (OSError, ValueError) as error:
        return CommandResult(
            exit_code=None,
            timed_out=False,
            stdout="",
            stderr="",
            truncated=False,
            error=f"{type(error).__name__}: {error}",
        )
    pid = transport.get_pid()
    timed_out = False
    try:
        try:
            await asyncio.wait_for(run.exited.wait(), timeout_s)
        except TimeoutError:
            timed_out = True
            _signal_group(pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.exited.wait(), kill_grace_s)
    finally:
        # Whatever happened (exit, timeout, the runner stopping), nothing of the run survives it.
        _signal_group(pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            # The pipes close once the group is gone (unless a process left the group).
            await asyncio.wait_for(run.closed.wait(), kill_grace_s)
        transport.close()
    return CommandResult(
        exit_code=transport.get_returncode(),
        timed_out=timed_out,
        stdout=stdout.text(),
        stderr=stderr.text(),
        truncated=stdout.truncated or stderr.truncated,
    )


class _Run(asyncio.SubprocessProtocol):
    """Feeds the child's output into the captures as it arrives, and tells when the child
    exited (``exited``) and when its pipes closed (``closed``): with a process left behind
    holding a pipe, the two differ."""

    def __init__(self, stdout: OutputCapture, stderr: OutputCapture) -> None:
        self._captures = {1: stdout, 2: stderr}
        self.exited = asyncio.Event()
        self.closed = asyncio.Event()

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        self._captures[fd].feed(bytes(data))

    def process_exited(self) -> None:
        self.exited.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@cache
def _die_with_runner() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when the runner dies (else ``None``).

    The C function is looked up here, in the runner; the child only calls it.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return set_parent_death_signal


def sha256_of(path: Path) -> str:
    """SHA-256 of a file's content, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()

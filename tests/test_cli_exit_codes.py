"""Every ``vigil`` command follows the exit-code rule of :mod:`services.runtime.command_line`:
each command that calls a service is run against a closed port (4), a real HTTP server on
loopback that refuses everything (3) and one that fails (4); every command answers a wrong
option with 2."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from services import cli
from services.runtime.api_client import ApiError
from services.runtime.command_line import ExitCode, exit_code_for
from services.runtime.embedded_broker import free_port

cli._add_service_commands()
VIGIL = typer.main.get_command(cli.app)

SCHEDULE = (
    "tier: L1\nlayers:\n  - {name: p, members: [ana], rotation: weekly, handoff_time: '09:00',\n"
    "     timezone: UTC, start: 2026-01-05}\n"
)
SAMPLE_FILES: dict[tuple[str, ...], str] = {
    ("labels", "send"): "request_id,label,model\nr-1,benign,m\n",
    ("oncall", "set"): SCHEDULE,
}
"""What a command's file argument must hold to get as far as calling the service."""

SAMPLE_ARGUMENTS: dict[tuple[str, ...], list[str]] = {
    ("incidents", "run"): ["inc-1", "drift-diagnosis", "-r", "why", "-p", "rows=500"],
    ("runbooks", "run"): ["inc-1", "drift-diagnosis", "-r", "why", "-p", "rows=500"],
    ("incidents", "review"): ["inc-1"],
    ("oncall", "override"): [
        "ops",
        "--from",
        "2027-01-05T18:00:00+00:00",
        "--to",
        "2027-01-06T06:00:00+00:00",
    ],
    ("oncall", "now"): ["--at", "2027-01-05T18:00:00+00:00"],
    ("models", "traffic"): ["m", "0.5", "--reason", "r"],
    ("models", "history"): ["m"],
    ("tokens", "create"): ["x", "--role", "l1"],
    ("incidents", "tokens", "create"): ["x", "--role", "l1"],
}
"""Arguments for commands that check theirs before calling the service."""

LOCAL_COMMANDS = {("models", "register")}
"""Commands that call a service only after reading and checking real input files (an artifact,
a spec and its training data): their exit codes are tested against a real registry in
``tests/retrainer/test_spec_scaffold.py``."""


Command = Any
"""A Click command as Typer builds it (Typer may carry its own copy of Click, so the tests look
at what a command has, not at its class)."""


def _leaves(
    command: Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Command]]:
    if getattr(command, "commands", None):
        for name, child in command.commands.items():
            yield from _leaves(child, (*path, name))
    else:
        yield path, command


def _calls_a_service(command: Command) -> bool:
    return any("--url" in getattr(param, "opts", ()) for param in command.params)


ALL_COMMANDS = sorted(_leaves(VIGIL))
SERVICE_COMMANDS = [
    (path, command)
    for path, command in ALL_COMMANDS
    if _calls_a_service(command) and path not in LOCAL_COMMANDS
]


def _ids(commands: list[tuple[tuple[str, ...], Command]]) -> list[str]:
    return [" ".join(path) or "vigil" for path, _ in commands]


def _arguments(path: tuple[str, ...], command: Command, folder: Path) -> list[str]:
    if path in SAMPLE_ARGUMENTS:
        return list(SAMPLE_ARGUMENTS[path])
    arguments: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        kind = param.type_descriptor.annotation
        if kind is Path:
            value = folder / f"{param.name}.txt"
            value.write_text(SAMPLE_FILES.get(path, "x\n"))
            text = str(value)
        elif isinstance(kind, type) and issubclass(kind, Enum):
            text = str(next(iter(kind)).value)
        elif kind in {int, float}:
            text = "1"
        else:
            text = "x"
        if param.param_type_name == "option":
            arguments += [param.opts[0], text]
        else:
            arguments.append(text)
    return arguments


class _Answer(BaseHTTPRequestHandler):
    status = 404

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({"detail": f"answered {self.status} by the test"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module", params=[404, 503])
def answering(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """A real HTTP server on loopback answering every request with one status."""
    handler = type("Answer", (_Answer,), {"status": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", request.param
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_local_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stack running here is found, and the labels command does not wait to try again."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIGIL_STATE_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("VIGIL_TOKEN", "t")
    monkeypatch.setattr("services.scorer.cli._ATTEMPTS", 1)


def _run(path: tuple[str, ...], arguments: list[str], url: str) -> Result:
    return CliRunner().invoke(cli.app, [*path, *arguments, "--url", url])


def test_every_command_that_calls_a_service_is_found() -> None:
    found = {path for path, _ in SERVICE_COMMANDS}
    assert {("incidents", "list"), ("models", "deploy"), ("probe",), ("labels", "send")} <= found
    assert {("retrain", "request"), ("approve",), ("people", "list"), ("series",)} <= found
    assert len(found) > 40


@pytest.mark.parametrize(("path", "command"), SERVICE_COMMANDS, ids=_ids(SERVICE_COMMANDS))
def test_an_unreachable_service_exits_4(
    path: tuple[str, ...], command: Command, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = _run(path, _arguments(path, command, tmp_path), closed)
    assert result.exit_code == ExitCode.UNREACHABLE, result.output


@pytest.mark.parametrize(("path", "command"), SERVICE_COMMANDS, ids=_ids(SERVICE_COMMANDS))
def test_a_refusal_exits_3_and_a_failing_service_4(
    path: tuple[str, ...], command: Command, tmp_path: Path, answering: tuple[str, int]
) -> None:
    url, status = answering
    result = _run(path, _arguments(path, command, tmp_path), url)
    expected = ExitCode.REFUSED if status < 500 else ExitCode.UNREACHABLE
    assert result.exit_code == expected, result.output
    assert f"answered {status} by the test" in " ".join(result.output.split())


@pytest.mark.parametrize(("path", "command"), ALL_COMMANDS, ids=_ids(ALL_COMMANDS))
def test_a_wrong_option_exits_2(path: tuple[str, ...], command: Command) -> None:
    result = CliRunner().invoke(cli.app, [*path, "--no-such-option"])
    assert result.exit_code == ExitCode.USAGE, result.output


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, ExitCode.REFUSED),
        (401, ExitCode.REFUSED),
        (403, ExitCode.REFUSED),
        (409, ExitCode.REFUSED),
        (422, ExitCode.REFUSED),
        (429, ExitCode.REFUSED),
        (500, ExitCode.UNREACHABLE),
        (502, ExitCode.UNREACHABLE),
        (503, ExitCode.UNREACHABLE),
        (None, ExitCode.UNREACHABLE),
    ],
)
def test_a_status_maps_to_one_exit_code(status: int | None, expected: ExitCode) -> None:
    assert exit_code_for(ApiError("x", status=status)) == expected


def test_the_monitor_commands_keep_their_older_url_option() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli.app, ["probe", "breast-cancer", "--monitor-url", url])
    assert result.exit_code == ExitCode.UNREACHABLE
    assert "monitor unreachable" in result.output

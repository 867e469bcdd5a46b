"""The command line finds the stack running on this machine with no variable set: the stack file
(``services/runtime/local_stack.py``), its precedence under what a person sets, and ``vigil
incidents list`` as a process against a started stack, in a shell with no ``VIGIL_*`` variable."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.runtime import KafkaSettings, ServiceName, free_port
from services.runtime.api_client import default_token, service_url
from services.runtime.local_stack import (
    STACK_FILE,
    find_local_stack,
    remove_stack_file,
    write_stack_file,
)
from services.stack.stack import StackSettings, running_stack

REPOSITORY = Path(__file__).resolve().parents[2]


def a_stack(folder: Path, *, port: int, token: str, pid: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "credentials.json").write_text(json.dumps({"admin_token": token}))
    path = write_stack_file(
        folder,
        urls={ServiceName.INCIDENT_LOG: f"http://127.0.0.1:{port}"},
        bootstrap_servers="127.0.0.1:1",
    )
    if pid is not None:
        document = json.loads(path.read_text())
        path.write_text(json.dumps(document | {"pid": pid}))
    return path


def dead_pid() -> int:
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    return int(process.stdout)


@pytest.fixture
def no_vigil_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("VIGIL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_running_stack_of_the_usual_folders_gives_url_and_token(
    no_vigil_variables: Path,
) -> None:
    assert find_local_stack() is None
    assert service_url(ServiceName.INCIDENT_LOG) == "http://127.0.0.1:8700"
    assert default_token() is None
    a_stack(Path(".vigil-demo"), port=9001, token="demo-token")
    assert service_url(ServiceName.INCIDENT_LOG) == "http://127.0.0.1:9001"
    assert default_token() == "demo-token"
    assert service_url(ServiceName.SCORER) == "http://127.0.0.1:8720"  # the stack runs none
    newer = a_stack(Path(".vigil"), port=9002, token="up-token")
    os.utime(newer, (newer.stat().st_atime + 10, newer.stat().st_mtime + 10))
    assert default_token() == "up-token"
    assert service_url(ServiceName.INCIDENT_LOG) == "http://127.0.0.1:9002"
    remove_stack_file(Path(".vigil"))
    assert default_token() == "demo-token"


def test_a_stack_whose_process_died_is_not_found(no_vigil_variables: Path) -> None:
    a_stack(Path(".vigil"), port=9001, token="stale", pid=dead_pid())
    assert find_local_stack() is None
    # ... but its credentials file still serves a stack started elsewhere (as before).
    assert default_token() == "stale"


def test_what_a_person_sets_wins(no_vigil_variables: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_stack(Path(".vigil"), port=9001, token="found")
    monkeypatch.setenv("VIGIL_TOKEN", "mine")
    monkeypatch.setenv("VIGIL_INCIDENT_LOG_URL", "http://elsewhere:1")
    assert default_token() == "mine"
    assert service_url(ServiceName.INCIDENT_LOG) == "http://elsewhere:1"
    monkeypatch.delenv("VIGIL_TOKEN")
    monkeypatch.setenv("VIGIL_STATE_DIR", str(no_vigil_variables / "other"))
    a_stack(no_vigil_variables / "other", port=9003, token="other")
    assert default_token() == "other"
    monkeypatch.delenv("VIGIL_INCIDENT_LOG_URL")
    assert service_url(ServiceName.INCIDENT_LOG) == "http://127.0.0.1:9003"


@pytest.mark.parametrize("content", ["", "{", "[]", '{"pid": "x"}', '{"pid": 1, "urls": 3}'])
def test_an_unreadable_stack_file_is_ignored(no_vigil_variables: Path, content: str) -> None:
    Path(".vigil").mkdir()
    Path(".vigil", STACK_FILE).write_text(content)
    assert find_local_stack() is None


def test_help_names_every_variable() -> None:
    from typer.testing import CliRunner

    from services.cli import _add_service_commands, app

    _add_service_commands()
    for command, variables in [
        (["incidents", "list"], ["VIGIL_INCIDENT_LOG_URL", "VIGIL_TOKEN"]),
        (["models", "deploy"], ["VIGIL_REGISTRY_URL", "VIGIL_TOKEN"]),
        (["labels", "send"], ["VIGIL_SCORER_URL", "VIGIL_TOKEN"]),
        (["probe"], ["VIGIL_MONITOR_URL"]),
    ]:
        result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "API token ." not in result.output
        for variable in variables:
            assert f"env var: {variable}" in result.output, (command, result.output)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_vigil_incidents_list_works_after_the_stack_starts_with_no_variable_set(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    port = free_port()
    settings = StackSettings(
        state_dir=tmp_path / ".vigil",
        kafka_bootstrap_servers=kafka_settings.bootstrap_servers,
        kafka_profile=kafka_settings.profile,
        topic_prefix=kafka_settings.topic_prefix,
        services=[ServiceName.INCIDENT_LOG],
        ports={ServiceName.INCIDENT_LOG: port},  # not the default: the URL must be found too
        watch_port=0,
    )
    clean = {name: value for name, value in os.environ.items() if not name.startswith("VIGIL_")}
    clean["PYTHONPATH"] = str(REPOSITORY)
    command = [sys.executable, "-c", "from services.cli import main; main()"]

    def vigil(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60
        )

    async with running_stack(settings):
        assert (tmp_path / ".vigil" / STACK_FILE).exists()
        listed = await asyncio.to_thread(vigil, "incidents", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == []
    assert not (tmp_path / ".vigil" / STACK_FILE).exists()
    after = await asyncio.to_thread(vigil, "incidents", "list")
    assert after.returncode == 4  # stopped: nothing answers on the default port with its token


@pytest.mark.parametrize(
    "change",
    [
        {"urls": {"incident-log": "http://attacker.example:8700"}},
        {"urls": {"incident-log": "http://10.0.0.7:8700"}},
        {"urls": {"incident-log": "file:///etc/passwd"}},
        {"credentials": "../../.vigil/credentials.json"},
        {"credentials": "/home/someone/.vigil/credentials.json"},
        {"credentials": ".."},
    ],
)
def test_a_stack_file_that_could_send_a_token_away_is_ignored(
    no_vigil_variables: Path, change: dict[str, object]
) -> None:
    """A cloned folder's stack file must not steer the CLI's token to another host or read
    credentials from outside its folder."""
    path = a_stack(Path(".vigil"), port=9001, token="t")
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    assert find_local_stack() is None
    assert service_url(ServiceName.INCIDENT_LOG) == "http://127.0.0.1:8700"


def test_a_stack_file_others_can_write_or_own_is_ignored(no_vigil_variables: Path) -> None:
    path = a_stack(Path(".vigil"), port=9001, token="t")
    assert find_local_stack() is not None
    path.chmod(0o664)
    assert find_local_stack() is None
    path.chmod(0o644)
    if os.getuid() == 0:  # only root can give a file away
        os.chown(path, 65534, 65534)
        assert find_local_stack() is None


def test_a_stack_file_older_than_its_process_is_stale(no_vigil_variables: Path) -> None:
    """The stack was SIGKILLed and left its file; its process id now names a newer process."""
    path = a_stack(Path(".vigil"), port=9001, token="t", pid=os.getpid())
    assert find_local_stack() is not None
    a_month_ago = time.time() - 30 * 24 * 3600  # long before this test's process started
    os.utime(path, (a_month_ago, a_month_ago))
    assert find_local_stack() is None

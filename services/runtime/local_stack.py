"""Where a stack started on this machine (``vigil up``, ``vigil demo``, ``make run``) can be
found, so the command line works after it with no variable to set.

A running stack writes ``stack.json`` in its state folder (:func:`write_stack_file`, removed
when it stops): the supervisor's process id, each service's base URL, the broker's address and
the name of its credentials file (the administrator's token, mode 0600, beside it). The command
line looks for it in ``$VIGIL_STATE_DIR``, else in ``.vigil`` (``vigil up``) and
``.vigil-demo`` (``vigil demo``, ``make run``) of the current folder, and takes the newest one
whose process is still alive (:func:`find_local_stack`).

What a person sets wins over what is found: ``VIGIL_TOKEN``, ``VIGIL_<SERVICE>_URL``
(``VIGIL_REGISTRY_URL`` for the retrainer), then the found stack, then the default port.

A stack file is trusted only as far as a stranger cannot have written it, since the command line
sends a token to the URLs it names: the file must be the user's own and writable by nobody else,
every URL must be on the loopback interface, the credentials file must sit beside it (a plain
name, no path), and its process must be alive and older than the file (not a reused process id).
A file that fails any of these is ignored, as if absent.
"""

from __future__ import annotations

import ipaddress
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from services.runtime.names import ServiceName

__all__ = [
    "STACK_FILE",
    "STATE_DIRS",
    "LocalStack",
    "find_local_stack",
    "remove_stack_file",
    "write_stack_file",
]

STACK_FILE = "stack.json"
STATE_DIRS = (Path(".vigil"), Path(".vigil-demo"))
"""The state folders of ``vigil up`` and ``vigil demo`` when run with their defaults."""


@dataclass(frozen=True)
class LocalStack:
    """A stack running on this machine, as its stack file describes it."""

    state_dir: Path
    pid: int
    urls: Mapping[str, str]
    bootstrap_servers: str
    credentials_file: Path

    def url(self, service: ServiceName) -> str | None:
        """The base URL of a service of the stack (``None``: it does not run one)."""
        return self.urls.get(service.value)

    def admin_token(self) -> str | None:
        """The administrator's token from the stack's credentials (``None`` if unreadable)."""
        try:
            value = json.loads(self.credentials_file.read_text()).get("admin_token")
        except (OSError, ValueError, AttributeError):
            return None
        return str(value) if value else None


def write_stack_file(
    state_dir: Path,
    *,
    urls: Mapping[ServiceName, str],
    bootstrap_servers: str,
    credentials_file: str = "credentials.json",
) -> Path:
    """Record this process as the stack running from ``state_dir``."""
    path = state_dir / STACK_FILE
    document = {
        "pid": os.getpid(),
        "urls": {name.value: url for name, url in urls.items()},
        "bootstrap_servers": bootstrap_servers,
        "credentials": credentials_file,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2))
    temporary.chmod(0o644)  # readable, writable by its owner only: see the module docstring
    temporary.replace(path)
    return path


def remove_stack_file(state_dir: Path) -> None:
    """Forget the stack of ``state_dir`` (it stopped)."""
    (state_dir / STACK_FILE).unlink(missing_ok=True)


def find_local_stack(environ: Mapping[str, str] | None = None) -> LocalStack | None:
    """The newest running stack of ``$VIGIL_STATE_DIR`` or the usual folders, if any."""
    env = os.environ if environ is None else environ
    folders = [Path(env["VIGIL_STATE_DIR"])] if env.get("VIGIL_STATE_DIR") else list(STATE_DIRS)
    found = [found for folder in folders if (found := _read(folder)) is not None]
    alive = [(stack, written) for stack, written in found if _alive(stack.pid, written)]
    if not alive:
        return None
    return max(alive, key=lambda pair: pair[1])[0]


def _read(state_dir: Path) -> tuple[LocalStack, float] | None:
    """The stack a trustworthy stack file describes, and when the file was written."""
    path = state_dir / STACK_FILE
    try:
        with path.open() as file:
            facts = os.fstat(file.fileno())
            if not _owned_by_me(facts):
                return None
            document = json.loads(file.read())
        credentials = str(document["credentials"])
        urls = {str(k): str(v) for k, v in document["urls"].items()}
        if Path(credentials).name != credentials or credentials in ("", ".", ".."):
            return None
        if not all(_on_loopback(url) for url in urls.values()):
            return None
        stack = LocalStack(
            state_dir=state_dir,
            pid=int(document["pid"]),
            urls=urls,
            bootstrap_servers=str(document["bootstrap_servers"]),
            credentials_file=state_dir / credentials,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return stack, facts.st_mtime


def _owned_by_me(facts: os.stat_result) -> bool:
    """The user's own regular file, writable by no one else."""
    return (
        stat.S_ISREG(facts.st_mode)
        and facts.st_uid == os.getuid()
        and not facts.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def _on_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _alive(pid: int, written: float) -> bool:
    """Whether the stack's process runs: it exists, is the user's, and started before its file
    was written (a later process holding a reused id is not the stack)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or another user's
        return False
    except (OverflowError, ValueError):
        return False
    started = _started_at(pid)
    return started is None or started <= written + 2.0


def _started_at(pid: int) -> float | None:
    """When a process started (Unix time, to about a second), from Linux's /proc; ``None``
    where there is no /proc: the process id is then all there is to go on."""
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(after_name[19])  # field 22, starttime: clock ticks after boot
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")

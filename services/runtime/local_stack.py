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
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
    temporary.replace(path)
    return path


def remove_stack_file(state_dir: Path) -> None:
    """Forget the stack of ``state_dir`` (it stopped)."""
    (state_dir / STACK_FILE).unlink(missing_ok=True)


def find_local_stack(environ: Mapping[str, str] | None = None) -> LocalStack | None:
    """The newest running stack of ``$VIGIL_STATE_DIR`` or the usual folders, if any."""
    env = os.environ if environ is None else environ
    folders = [Path(env["VIGIL_STATE_DIR"])] if env.get("VIGIL_STATE_DIR") else list(STATE_DIRS)
    found = [stack for folder in folders if (stack := _read(folder)) is not None]
    alive = [stack for stack in found if _alive(stack.pid)]
    if not alive:
        return None
    return max(alive, key=lambda stack: (stack.state_dir / STACK_FILE).stat().st_mtime)


def _read(state_dir: Path) -> LocalStack | None:
    try:
        document = json.loads((state_dir / STACK_FILE).read_text())
        return LocalStack(
            state_dir=state_dir,
            pid=int(document["pid"]),
            urls={str(k): str(v) for k, v in document["urls"].items()},
            bootstrap_servers=str(document["bootstrap_servers"]),
            credentials_file=state_dir / str(document["credentials"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True

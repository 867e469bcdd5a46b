"""What the monitor's commands (``vigil probe``, ``vigil series``, ``vigil estimates``) share:
a one-command Typer app, the monitor's URL option (the running local stack's by default), and one
call to the monitor that turns "unreachable" or a refusal into a message and exit status 2 (the
monitor could not answer); each command then prints its own answer."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.console import Console

from services.runtime import ServiceName
from services.runtime.api_client import service_url

__all__ = ["CANNOT_ANSWER", "call_monitor", "errors", "monitor_url_option", "one_command"]

CANNOT_ANSWER = 2
"""Exit status when the monitor is unreachable or refuses the request."""

errors = Console(stderr=True)


def one_command(help: str) -> typer.Typer:
    """An app of one command whose options may follow its argument (``vigil series m --json``)."""
    return typer.Typer(
        help=help,
        invoke_without_command=True,
        subcommand_metavar="",
        add_completion=False,
        context_settings={"allow_interspersed_args": True},
    )


def monitor_url_option() -> Any:
    """``--monitor-url`` (``VIGIL_MONITOR_URL``); unset, the running local stack's monitor."""
    return typer.Option(
        None,
        envvar="VIGIL_MONITOR_URL",
        help="HTTP API of the monitor; default: the running local stack's, else "
        f"http://127.0.0.1:{ServiceName.MONITOR.default_port}.",
    )


def call_monitor(
    method: str, path: str, *, monitor_url: str | None, timeout: float, refused: str
) -> httpx.Response:
    """The monitor's 200 answer to ``method path``; otherwise a message (``refused`` names what
    was not done) and exit :data:`CANNOT_ANSWER`."""
    url = (monitor_url or service_url(ServiceName.MONITOR)).rstrip("/")
    try:
        response = httpx.request(method, f"{url}{path}", timeout=timeout)
    except httpx.HTTPError as error:
        errors.print(f"[red]monitor unreachable at {url}:[/red] {error}")
        raise typer.Exit(CANNOT_ANSWER) from None
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except (ValueError, AttributeError):
            detail = response.text
        errors.print(f"[red]{refused} ({response.status_code}):[/red] {str(detail)[:300]}")
        raise typer.Exit(CANNOT_ANSWER)
    return response

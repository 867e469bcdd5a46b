"""What the monitor's commands (``vigil probe``, ``vigil series``, ``vigil estimates``) share:
a one-command Typer app, the monitor's URL option (the running local stack's by default), and one
call to the monitor that turns a refusal into a message and exit status 3, no answer (or a 5xx)
into exit status 4 (the rule: :mod:`services.runtime.command_line`); each command then prints its
own answer."""

from __future__ import annotations

from typing import Annotated

import httpx
import typer

from services.runtime import ServiceName
from services.runtime.api_client import service_url
from services.runtime.command_line import ExitCode, fail, url_option

__all__ = ["MonitorUrl", "call_monitor", "one_command"]


def one_command(help: str) -> typer.Typer:
    """An app of one command whose options may follow its argument (``vigil series m --json``)."""
    return typer.Typer(
        help=help,
        invoke_without_command=True,
        subcommand_metavar="",
        add_completion=False,
        context_settings={"allow_interspersed_args": True},
    )


MonitorUrl = Annotated[str | None, url_option(ServiceName.MONITOR, "--monitor-url")]
"""``--url`` (also ``--monitor-url``, ``VIGIL_MONITOR_URL``); unset, the running local stack's."""


def call_monitor(
    method: str, path: str, *, monitor_url: str | None, timeout: float, refused: str
) -> httpx.Response:
    """The monitor's 200 answer to ``method path``; otherwise a message (``refused`` names what
    was not done) and :attr:`ExitCode.REFUSED` or :attr:`ExitCode.UNREACHABLE`."""
    url = (monitor_url or service_url(ServiceName.MONITOR)).rstrip("/")
    try:
        response = httpx.request(method, f"{url}{path}", timeout=timeout)
    except httpx.HTTPError as error:
        fail(ExitCode.UNREACHABLE, f"[red]monitor unreachable at {url}:[/red] {error}")
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except (ValueError, AttributeError):
            detail = response.text
        code = ExitCode.REFUSED if 400 <= response.status_code < 500 else ExitCode.UNREACHABLE
        fail(code, f"[red]{refused} ({response.status_code}):[/red] {str(detail)[:300]}")
    return response

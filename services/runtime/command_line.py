"""What every ``vigil`` command shares: the exit-code rule, the consoles, the ``--url``,
``--token`` and ``--json`` options, and one way to call a service's API.

**Exit codes**, the same for every command (``tests/test_cli_exit_codes.py`` runs each command
that calls a service against a closed port and against a service that refuses):

====  ===========  ===================================================================
0     done         the command did what it was asked
1     failed       it ran, and what it found is a failure: a probe failed, drift was
                   found with ``--fail-on-drift``, a check found problems
2     usage        it cannot run as given: a wrong option, an input file it cannot use
                   (Click's own code for usage errors)
3     refused      the service (or the catalog) said no: an unknown id, a role too low,
                   a state that forbids the action — answered with a 4xx status
4     unreachable  the service could not be reached, timed out or failed (5xx, 503
                   while it is not ready): the same command may work later
====  ===========  ===================================================================

Runbook scripts have their own codes (``runbooks/vigil_runbook.py``): the runner reads them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from services.runtime.api_client import (
    URL_VARIABLES,
    ApiClient,
    ApiError,
    default_token,
    service_url,
)
from services.runtime.names import ServiceName

__all__ = [
    "AsJson",
    "ExitCode",
    "Token",
    "api_client",
    "err",
    "exit_code_for",
    "fail",
    "out",
    "print_answer",
    "url_option",
]


class ExitCode(IntEnum):
    """The exit status of a ``vigil`` command (the module's table says when each is used)."""

    DONE = 0
    FAILED = 1
    USAGE = 2
    REFUSED = 3
    UNREACHABLE = 4


out = Console()
err = Console(stderr=True)

Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="VIGIL_TOKEN",
        help="API token; default: the running local stack's admin token (vigil up, make run).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def url_option(service: ServiceName, *aliases: str) -> Any:
    """``--url`` of ``service``'s HTTP API (its ``*_URL`` variable); unset, the running local
    stack's, else the service's default loopback port. ``aliases`` keep older option names. For
    ``Annotated[str | None, url_option(...)] = None``."""
    return typer.Option(
        "--url",
        *aliases,
        envvar=URL_VARIABLES[service],
        help=f"HTTP API of the {service.value}; default: the running local stack's, else "
        f"http://127.0.0.1:{service.default_port}.",
    )


def exit_code_for(error: ApiError) -> ExitCode:
    """REFUSED for a 4xx answer; UNREACHABLE for no answer, a timeout or a 5xx."""
    if error.status is not None and 400 <= error.status < 500:
        return ExitCode.REFUSED
    return ExitCode.UNREACHABLE


@contextmanager
def api_client(
    service: ServiceName,
    url: str | None,
    token: str | None = None,
    *,
    timeout_s: float = 15.0,
) -> Iterator[ApiClient]:
    """A client of ``service`` (``url``, else :func:`service_url`; ``token``, else
    :func:`default_token`). An :class:`ApiError` inside ends the command: the service's reason
    on stderr and :func:`exit_code_for` as the status."""
    client = ApiClient(
        url or service_url(service), token=token or default_token(), timeout_s=timeout_s
    )
    try:
        yield client
    except ApiError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(exit_code_for(error)) from None
    finally:
        client.close()


def print_answer(data: Any, as_json: bool, table: Callable[[Any], Table | str]) -> None:
    """Print ``table(data)`` for people, or ``data`` as JSON for scripts."""
    if as_json:
        out.print_json(json.dumps(data))
    else:
        out.print(table(data))


def fail(code: ExitCode, message: str, *, markup: bool = True) -> NoReturn:
    """End the command: ``message`` on stderr and ``code``. ``markup=False`` for a message
    holding text from outside (a file name, a library's error) that Rich must not interpret."""
    err.print(message, markup=markup, highlight=markup)
    raise typer.Exit(code)

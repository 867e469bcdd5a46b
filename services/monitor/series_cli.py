"""``vigil series MODEL``: a model's recent windows as the monitor holds them (``GET /series``).

The console's charts read the same endpoint, so the numbers printed here are the numbers drawn
there. ``--json`` prints the monitor's answer unchanged.
"""

from __future__ import annotations

import httpx
import typer
from rich.console import Console
from rich.table import Table

from services.runtime import ServiceName

__all__ = ["app"]

app = typer.Typer(
    help="Show a model's recent windows: metrics, traffic, p95 latency, alerts.",
    invoke_without_command=True,
    subcommand_metavar="",
    add_completion=False,
    context_settings={"allow_interspersed_args": True},
)
console = Console()
errors = Console(stderr=True)


@app.callback()
def series(
    model: str = typer.Argument(help="Registry name of the model."),
    as_json: bool = typer.Option(False, "--json", help="Print the monitor's JSON unchanged."),
    monitor_url: str = typer.Option(
        f"http://127.0.0.1:{ServiceName.MONITOR.default_port}",
        envvar="VIGIL_MONITOR_URL",
        help="HTTP API of the monitor.",
    ),
    timeout: float = typer.Option(30.0, min=0.1, help="Seconds to wait for the monitor."),
) -> None:
    """Print MODEL's recent closed windows, oldest first."""
    try:
        response = httpx.get(f"{monitor_url.rstrip('/')}/series/{model}", timeout=timeout)
    except httpx.HTTPError as error:
        errors.print(f"[red]monitor unreachable at {monitor_url}:[/red] {error}")
        raise typer.Exit(2) from None
    if response.status_code != 200:
        errors.print(f"[red]no series ({response.status_code}):[/red] {response.text[:300]}")
        raise typer.Exit(1)
    if as_json:
        typer.echo(response.text)
        return
    found = response.json()
    metrics = sorted({name for w in found["windows"] for name in w["metrics"]})
    table = Table(title=f"windows of {model}")
    for column in ("end", "version", "variant", "predictions", "p95 ms", *metrics):
        table.add_column(column)
    for window in found["windows"]:
        values = [window["metrics"].get(name) for name in metrics]
        table.add_row(
            window["end"][:19],
            str(window["version"]),
            window["variant"],
            str(window["predictions"]),
            f"{window['latency_p95_ms']:.1f}",
            *("n/a" if v is None else f"{v:.4g}" for v in values),
        )
    console.print(table)
    for episode in found["episodes"]:
        console.print(
            f"alert {episode['metric']} v{episode['version']}: {episode['raised_at'][:19]} → "
            f"{(episode['recovered_at'] or 'still alerting')[:19]}"
        )

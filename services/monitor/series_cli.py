"""``vigil series MODEL``: a model's recent windows as the monitor holds them (``GET /series``).

The console's charts read the same endpoint, so the numbers printed here are the numbers drawn
there. ``--json`` prints the monitor's answer unchanged. Exits 0; 3 if the monitor refused, 4 if
it could not be reached (:mod:`services.runtime.command_line`).
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from services.monitor.cli_calls import MonitorUrl, call_monitor, one_command

__all__ = ["app"]

app = one_command("Show a model's recent windows: metrics, traffic, p95 latency, alerts.")
console = Console()


@app.callback()
def series(
    model: str = typer.Argument(help="Registry name of the model."),
    as_json: bool = typer.Option(False, "--json", help="Print the monitor's JSON unchanged."),
    monitor_url: MonitorUrl = None,
    timeout: float = typer.Option(30.0, min=0.1, help="Seconds to wait for the monitor."),
) -> None:
    """Print MODEL's recent closed windows, oldest first."""
    response = call_monitor(
        "GET", f"/series/{model}", monitor_url=monitor_url, timeout=timeout, refused="no series"
    )
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

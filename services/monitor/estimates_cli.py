"""``vigil estimates MODEL``: a model's recent windows, the key metric estimated from scores
beside the realised one (which stays empty until the window's labels arrive).

Reads the monitor's ``GET /estimates/{model}``; exits 0; 3 if the monitor refused, 4 if it
could not be reached (:mod:`services.runtime.command_line`).
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from services.monitor.cli_calls import MonitorUrl, call_monitor, one_command

__all__ = ["app", "estimates_table"]

app = one_command("Show a model's metrics estimated from scores beside the realised ones.")
console = Console()


def estimates_table(model: str, windows: list[dict[str, Any]], metric: str | None) -> Table:
    """One row per window: its span, counts, and the metric estimated (with its band) and
    realised."""
    chosen = metric or (windows[-1]["key_metric"] if windows else "recall")
    table = Table(title=f"{chosen} of {model}: estimated from scores vs realised from labels")
    for column in ("version", "variant", "window end", "predictions", "labelled"):
        table.add_column(column)
    table.add_column("estimated (95% band)", justify="right")
    table.add_column("realised", justify="right")
    for window in windows:
        estimate = (window.get("estimated") or {}).get(chosen)
        realised = (window.get("realised") or {}).get(chosen)
        table.add_row(
            str(window["version"]),
            window["variant"],
            window["end"],
            str(window["predictions"]),
            str(window["labelled"]),
            "-"
            if estimate is None
            else f"{estimate['value']:.3f} ({estimate['lower']:.3f}-{estimate['upper']:.3f})",
            "-" if realised is None else f"{realised:.3f}",
        )
    return table


@app.callback()
def estimates(
    model: str = typer.Argument(help="Registry name of the model."),
    metric: str | None = typer.Option(
        None, help="Metric to show (default: the model's key metric)."
    ),
    monitor_url: MonitorUrl = None,
    timeout: float = typer.Option(10.0, min=0.1, help="Seconds to wait for the monitor."),
    as_json: bool = typer.Option(False, "--json", help="Print the monitor's answer as JSON."),
) -> None:
    """Print MODEL's recent windows: estimated metric, its band, and the realised metric."""
    response = call_monitor(
        "GET",
        f"/estimates/{model}",
        monitor_url=monitor_url,
        timeout=timeout,
        refused="no estimates",
    )
    if as_json:
        typer.echo(json.dumps(response.json(), indent=2))
        return
    console.print(estimates_table(model, response.json()["windows"], metric))

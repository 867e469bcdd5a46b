"""``vigil probe MODEL``: a spot check — run a model's golden-set probe now, through the monitor.

The monitor runs it (``POST /probes/{model}``), so the run is published and alerts exactly like a
scheduled one; this command prints the outcome and exits 0 if the probe passed, 1 if it failed,
3 if the monitor refused to run it (no such model or golden set), 4 if the monitor could not be
reached (the rule: :mod:`services.runtime.command_line`).
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from contracts.monitoring import ProbeCompleted
from services.monitor.cli_calls import MonitorUrl, call_monitor, one_command
from services.runtime.command_line import ExitCode

__all__ = ["app"]

app = one_command("Run a model's golden-set probe against the scorer now (a spot check).")
console = Console()


@app.callback()
def probe(
    model: str = typer.Argument(help="Registry name of the model to probe."),
    monitor_url: MonitorUrl = None,
    timeout: float = typer.Option(60.0, min=0.1, help="Seconds to wait for the monitor."),
) -> None:
    """Probe MODEL's deployed champion with its golden set and print the result."""
    response = call_monitor(
        "POST",
        f"/probes/{model}",
        monitor_url=monitor_url,
        timeout=timeout,
        refused="probe not run",
    )
    result = ProbeCompleted.model_validate_json(response.content)
    table = Table(title=f"probe of {result.model} (version {result.model_version or '?'})")
    for column in ("case", "expected", "answered", "error"):
        table.add_column(column)
    for case in result.cases:
        right = case.predicted == case.expected
        table.add_row(
            case.case_id,
            case.expected,
            f"[{'green' if right else 'red'}]{case.predicted or '-'}[/]",
            case.error or "",
        )
    console.print(table)
    accuracy = "n/a" if result.accuracy is None else f"{result.accuracy:.3f}"
    latency = "n/a" if result.latency_ms is None else f"{result.latency_ms:.1f} ms"
    verdict = "[green]passed[/green]" if result.passed else f"[red]failed:[/red] {result.failure}"
    console.print(
        f"{verdict} — accuracy {accuracy} (minimum {result.min_accuracy:g}), round trip {latency}"
    )
    raise typer.Exit(ExitCode.DONE if result.passed else ExitCode.FAILED)

"""``vigil runbooks``: read and check the runbook catalogue (the file the runner starts from).

``vigil runbooks run`` is added by ``services.cli``: a run is asked of the incident log."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from services.runbook_runner.catalog import Catalog, CatalogError, Runbook, load_catalog
from services.runbook_runner.execution import sha256_of
from services.runtime.command_line import ExitCode, fail

__all__ = ["app"]

app = typer.Typer(
    help="The runbook catalogue: what the runner may execute.",
    no_args_is_help=True,
    add_completion=False,
)

_CATALOG = typer.Option(
    Path("runbooks/catalog.yaml"),
    "--catalog",
    envvar="VIGIL_RUNBOOK_RUNNER_CATALOG_PATH",
    help="Catalogue file.",
)


def _load(path: Path, errors: Console) -> Catalog:
    try:
        return load_catalog(path)
    except CatalogError as error:
        errors.print(str(error), markup=False, highlight=False)
        raise typer.Exit(ExitCode.FAILED) from None


@app.command()
def validate(catalog: Path = _CATALOG) -> None:
    """Check the catalogue as the runner does at start; exit 1 listing every problem."""
    loaded = _load(catalog, Console(stderr=True))
    typer.echo(f"{catalog}: valid, {len(loaded.runbooks)} runbook(s)")


@app.command("list")
def list_runbooks(catalog: Path = _CATALOG) -> None:
    """List the catalogued runbooks."""
    loaded = _load(catalog, Console(stderr=True))
    table = Table("name", "tier", "alert kinds", "approval", "per model", "timeout", "purpose")
    for runbook in loaded.runbooks.values():
        table.add_row(
            runbook.name,
            runbook.tier.value,
            ", ".join(kind.value for kind in runbook.alert_kinds) or "(by hand)",
            "needed" if runbook.needs_approval else "-",
            str(runbook.max_concurrent_per_model),
            f"{runbook.timeout_seconds:g} s",
            runbook.purpose,
        )
    Console().print(table)


@app.command()
def show(name: str = typer.Argument(help="Runbook name."), catalog: Path = _CATALOG) -> None:
    """Show one runbook: its commands, scripts with their current SHA-256, and parameters."""
    loaded = _load(catalog, Console(stderr=True))
    runbook = loaded.get(name)
    if runbook is None:
        fail(ExitCode.REFUSED, f"no runbook {name!r} in {catalog}", markup=False)
    typer.echo(_summary(runbook, loaded))
    console = Console()
    table = Table("parameter", "type", "from", "rule", "required / default")
    for parameter_name, parameter in runbook.parameters.items():
        rules = [
            f"one of {parameter.allowed}" if parameter.allowed is not None else "",
            f"matches {parameter.pattern}" if parameter.pattern is not None else "",
            f">= {parameter.minimum:g}" if parameter.minimum is not None else "",
            f"<= {parameter.maximum:g}" if parameter.maximum is not None else "",
        ]
        table.add_row(
            parameter_name,
            parameter.type.value,
            parameter.source.value if parameter.source else "(supplied)",
            "; ".join(rule for rule in rules if rule) or "-",
            "required" if parameter.required else repr(parameter.default),
        )
    if runbook.parameters:
        console.print(table)


def _summary(runbook: Runbook, catalog: Catalog) -> str:
    lines = [
        f"{runbook.name}: {runbook.purpose}",
        f"  tier {runbook.tier.value} or higher; "
        f"alert kinds: {', '.join(k.value for k in runbook.alert_kinds) or '(by hand)'}",
        f"  approval: {'needed' if runbook.needs_approval else 'not needed'}; "
        f"at most {runbook.max_concurrent_per_model} at once per model",
        f"  command ({runbook.timeout_seconds:g} s): {runbook.command}",
        f"  verify  ({runbook.verify.timeout_seconds:g} s): {runbook.verify.command}",
    ]
    for label, command in (("script", runbook.command), ("verify script", runbook.verify.command)):
        script = catalog.script(command)
        lines.append(f"  {label}: {script.name} sha256 {sha256_of(script)}")
    return "\n".join(lines)

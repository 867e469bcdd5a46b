"""``vigil models …``: the registry from the command line, through its HTTP API."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from contracts.registry import DeploymentMode

__all__ = ["app"]

app = typer.Typer(help="The model registry: versions, deployments, rollbacks, history.")
console = Console()
errors = Console(stderr=True)

URL = typer.Option(
    "http://127.0.0.1:8710", "--url", envvar="VIGIL_REGISTRY_URL", help="Registry HTTP API."
)
AS_JSON = typer.Option(False, "--json", help="Print the API's JSON instead of a table.")
REASON = typer.Option(..., "--reason", help="Why (kept in the history).")
INCIDENT = typer.Option(None, "--incident", help="Incident behind the change.")


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


ACTOR = typer.Option(None, "--actor", help="Who makes the change (default: your user name).")


def _call(url: str, method: str, path: str, **kwargs: Any) -> Any:
    try:
        with httpx.Client(base_url=url, timeout=60.0) as client:
            response = client.request(method, path, **kwargs)
    except httpx.HTTPError as error:
        errors.print(f"[red]registry unreachable at {url}:[/red] {error}")
        raise typer.Exit(2) from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        errors.print(f"[red]{response.status_code}:[/red] {_describe(detail)}")
        raise typer.Exit(1)
    return response.json()


def _describe(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(part) for part in problem.get('loc', []))}: {problem.get('msg')}"
            for problem in detail
        )
    return str(detail)


def _show(data: Any, as_json: bool, table: Callable[[Any], Table]) -> None:
    if as_json:
        console.print_json(json.dumps(data))
    else:
        console.print(table(data))


def _served(deployment: dict[str, Any] | None) -> str:
    if not deployment or not deployment.get("champion"):
        return "-"
    text = f"v{deployment['champion']['version']}"
    if deployment.get("challenger"):
        share = deployment["challenger_share"] * 100
        text += f" + v{deployment['challenger']['version']} {deployment['mode']} {share:g} %"
    return f"{text} (rev {deployment['revision']})"


def _revision_table(entry: dict[str, Any]) -> Table:
    table = Table("revision", "action", "serving", "actor", "reason")
    table.add_row(
        str(entry["revision"]),
        entry["action"],
        _served(entry["deployment"]),
        entry["actor"],
        entry["reason"],
    )
    return table


@app.command("list")
def list_models(url: str = URL, as_json: bool = AS_JSON) -> None:
    """List models with their latest version and what serves them."""

    def table(models: list[dict[str, Any]]) -> Table:
        result = Table("model", "versions", "serving")
        for model in models:
            result.add_row(model["name"], str(model["versions"]), _served(model["deployment"]))
        return result

    _show(_call(url, "GET", "/models"), as_json, table)


@app.command()
def show(
    model: str, version: int | None = typer.Argument(None), url: str = URL, as_json: bool = AS_JSON
) -> None:
    """Show a model (versions, aliases, deployment) or one version's lineage and spec."""
    if version is not None:
        record = _call(url, "GET", f"/models/{model}/versions/{version}")
        console.print_json(json.dumps(record))
        return

    def table(detail: dict[str, Any]) -> Table:
        aliases = {number: alias for alias, number in detail["aliases"].items()}
        result = Table("version", "alias", "registered", "by", "reason", "metrics", "dataset")
        for record in detail["versions"]:
            result.add_row(
                str(record["version"]),
                aliases.get(record["version"], ""),
                record["registered_at"],
                record["registered_by"],
                record["reason"],
                ", ".join(f"{k}={v:.3g}" for k, v in record["metrics"].items()),
                f"{record['dataset']['name']}@{record['dataset']['version']}",
            )
        result.caption = f"serving: {_served(detail['deployment'])}"
        return result

    _show(_call(url, "GET", f"/models/{model}"), as_json, table)


@app.command()
def register(
    model: str,
    artifact: Path = typer.Option(..., exists=True, dir_okay=False, help="skops file."),
    training_data: Path = typer.Option(..., exists=True, dir_okay=False, help="Training CSV."),
    metadata: Path = typer.Option(
        ..., exists=True, dir_okay=False, help="JSON: lineage and monitoring spec."
    ),
    evaluation_data: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Evaluation CSV."
    ),
    url: str = URL,
    as_json: bool = AS_JSON,
) -> None:
    """Register a new version of a model."""
    files = {
        "artifact": (artifact.name, artifact.read_bytes()),
        "training_data": (training_data.name, training_data.read_bytes()),
    }
    if evaluation_data is not None:
        files["evaluation_data"] = (evaluation_data.name, evaluation_data.read_bytes())
    record = _call(
        url,
        "POST",
        f"/models/{model}/versions",
        data={"metadata": metadata.read_text()},
        files=files,
    )
    if as_json:
        console.print_json(json.dumps(record))
    else:
        console.print(f"registered {model} v{record['version']} ({record['artifact_sha256']})")


@app.command()
def deploy(
    model: str,
    champion: int = typer.Option(..., min=1, help="Version serving the traffic."),
    challenger: int | None = typer.Option(None, min=1, help="Candidate version."),
    share: float = typer.Option(0.0, min=0.0, max=0.5, help="Challenger's share (0 to 0.5)."),
    mode: DeploymentMode = typer.Option(DeploymentMode.CANARY, help="canary or shadow."),
    reason: str = REASON,
    actor: str | None = ACTOR,
    incident: str | None = INCIDENT,
    url: str = URL,
    as_json: bool = AS_JSON,
) -> None:
    """Deploy a champion, optionally with a challenger at a share."""
    body = {
        "champion": champion,
        "challenger": challenger,
        "challenger_share": share,
        "mode": mode.value,
        "actor": actor or _actor(),
        "reason": reason,
        "incident_id": incident,
    }
    _show(_call(url, "PUT", f"/models/{model}/deployment", json=body), as_json, _revision_table)


@app.command()
def traffic(
    model: str,
    share: float = typer.Argument(..., min=0.0, max=0.5, help="Challenger's share (0 to 0.5)."),
    mode: DeploymentMode | None = typer.Option(None, help="Switch to canary or shadow."),
    reason: str = REASON,
    actor: str | None = ACTOR,
    incident: str | None = INCIDENT,
    url: str = URL,
    as_json: bool = AS_JSON,
) -> None:
    """Set the challenger's share of traffic."""
    body = {
        "challenger_share": share,
        "mode": mode.value if mode else None,
        "actor": actor or _actor(),
        "reason": reason,
        "incident_id": incident,
    }
    path = f"/models/{model}/deployment/traffic"
    _show(_call(url, "PUT", path, json=body), as_json, _revision_table)


@app.command()
def promote(
    model: str,
    reason: str = REASON,
    actor: str | None = ACTOR,
    incident: str | None = INCIDENT,
    url: str = URL,
    as_json: bool = AS_JSON,
) -> None:
    """Make the challenger the champion."""
    body = {"actor": actor or _actor(), "reason": reason, "incident_id": incident}
    path = f"/models/{model}/deployment/promote"
    _show(_call(url, "POST", path, json=body), as_json, _revision_table)


@app.command()
def rollback(
    model: str,
    reason: str = REASON,
    actor: str | None = ACTOR,
    incident: str | None = INCIDENT,
    url: str = URL,
    as_json: bool = AS_JSON,
) -> None:
    """One step back: withdraw the challenger, or restore the previous champion."""
    body = {"actor": actor or _actor(), "reason": reason, "incident_id": incident}
    path = f"/models/{model}/deployment/rollback"
    _show(_call(url, "POST", path, json=body), as_json, _revision_table)


@app.command()
def history(
    model: str,
    at: str | None = typer.Option(None, help="Only what served at this ISO 8601 time."),
    url: str = URL,
    as_json: bool = AS_JSON,
) -> None:
    """Show who moved which alias, when and why (or what served at a time)."""
    if at is not None:
        found = _call(url, "GET", f"/models/{model}/deployment/at", params={"time": at})

        def at_table(data: dict[str, Any]) -> Table:
            result = Table("at", "champion", "challenger", "revision", "actor", "reason")
            revision = data["revision"] or {}
            result.add_row(
                data["at"],
                str(data["champion"] or "-"),
                str(data["challenger"] or "-"),
                str(revision.get("revision", "-")),
                revision.get("actor", "-"),
                revision.get("reason", "-"),
            )
            return result

        _show(found, as_json, at_table)
        return

    def table(data: dict[str, Any]) -> Table:
        result = Table("at", "alias", "from", "to", "action", "actor", "reason", "incident")
        for move in data["alias_moves"]:
            result.add_row(
                move["at"],
                move["alias"],
                str(move["previous_version"] or "-"),
                str(move["version"] or "-"),
                move["action"],
                move["actor"],
                move["reason"],
                move["incident_id"] or "",
            )
        return result

    _show(_call(url, "GET", f"/models/{model}/history"), as_json, table)

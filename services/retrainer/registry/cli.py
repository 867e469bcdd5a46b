"""``vigil models …``: the registry from the command line, through its HTTP API.

Reading needs nothing; changing needs a token of role ``l2`` or higher (``--token``,
``VIGIL_TOKEN``, or the local stack's credentials), and its owner is recorded as the actor. A
refusal prints the registry's reason and exits 3; an unreachable registry exits 4
(:mod:`services.runtime.command_line`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from contracts.registry import DeploymentMode, ModelTask
from services.retrainer.cli import Url, client_for
from services.runtime.command_line import AsJson, ExitCode, Token, fail, out, print_answer

__all__ = ["app"]

app = typer.Typer(help="The model registry: versions, deployments, rollbacks, history.")

REASON = typer.Option(..., "--reason", help="Why (kept in the history).")
INCIDENT = typer.Option(None, "--incident", help="Incident behind the change.")


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
def list_models(url: Url = None, as_json: AsJson = False) -> None:
    """List models with their latest version and what serves them."""

    def table(models: list[dict[str, Any]]) -> Table:
        result = Table("model", "versions", "serving")
        for model in models:
            result.add_row(model["name"], str(model["versions"]), _served(model["deployment"]))
        return result

    with client_for(url, None) as api:
        print_answer(api.get("/models"), as_json, table)


@app.command("show")
def show_model(
    model: str,
    version: int | None = typer.Argument(None),
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Show a model (versions, aliases, deployment) or one version's lineage and spec."""
    if version is not None:
        with client_for(url, None) as api:
            out.print_json(json.dumps(api.get(f"/models/{model}/versions/{version}")))
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

    with client_for(url, None) as api:
        print_answer(api.get(f"/models/{model}"), as_json, table)


@app.command("spec")
def spec_file(
    from_csv: Path = typer.Option(
        ..., "--from-csv", exists=True, dir_okay=False, help="Training data: CSV with a header."
    ),
    target: str = typer.Option(..., "--target", help="The label (or regression target) column."),
    task: ModelTask | None = typer.Option(
        None,
        "--task",
        help="classification or regression. Default: inferred from the target: regression when "
        "every value is a number and some is not whole, or the whole numbers take more than 20 "
        "distinct values; else classification.",
    ),
    key_metric: str | None = typer.Option(
        None,
        "--key-metric",
        help="The business metric. Classification (default recall): recall, precision, f1, "
        "accuracy...; regression (default mae): mae, rmse, r2.",
    ),
    positive_class: str | None = typer.Option(
        None,
        "--positive-class",
        help="What precision and recall are about (default: rarest; classification only).",
    ),
    artifact: Path | None = typer.Option(
        None,
        "--artifact",
        exists=True,
        dir_okay=False,
        help="Your fitted model (skops), measured instead of a reference pipeline.",
    ),
    owner: list[str] = typer.Option([], "--owner", help="An owner (repeat for more)."),
    output: Path = typer.Option(Path("spec.yaml"), "--output", "-o", help="File to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUTPUT if it exists."),
) -> None:
    """Draft a registration file (YAML) from training data, for you to edit: the feature schema
    and the task inferred, baselines and thresholds measured on a held-out quarter of the rows
    (a regression model: mae, rmse and r2)."""
    from services.retrainer.registry.spec_scaffold import (
        ScaffoldError,
        draft_metadata,
        metadata_yaml,
    )
    from services.runtime.model_artifacts import UnsafeArtifactError, load_model

    if output.exists() and not force:
        fail(ExitCode.USAGE, f"{output} exists; --force overwrites it", markup=False)
    try:
        estimator = load_model(artifact.read_bytes()) if artifact is not None else None
        draft = draft_metadata(
            from_csv.read_bytes(),
            target=target,
            key_metric=key_metric,
            positive_class=positive_class,
            task=task,
            dataset_name=from_csv.stem,
            estimator=estimator,
            owners=tuple(owner),
        )
    except (ScaffoldError, UnsafeArtifactError) as error:
        fail(ExitCode.USAGE, f"cannot draft a spec: {error}", markup=False)
    output.write_text(metadata_yaml(draft, source=str(from_csv)))
    targets = ", ".join(
        f"{t.metric} {t.baseline:g} (alert past {t.threshold:g})"
        for t in draft.metadata.spec.metrics
    )
    out.print(f"wrote {output}: {len(draft.metadata.spec.features)} features; {targets}")


@app.command()
def register(
    model: str,
    artifact: Path = typer.Option(..., exists=True, dir_okay=False, help="skops file."),
    training_data: Path = typer.Option(..., exists=True, dir_okay=False, help="Training CSV."),
    spec: Path | None = typer.Option(
        None,
        "--spec",
        exists=True,
        dir_okay=False,
        help="YAML from vigil models spec: lineage and monitoring spec.",
    ),
    metadata: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="The same as JSON (instead of --spec)."
    ),
    evaluation_data: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Evaluation CSV."
    ),
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Register a new version of a model (you are recorded as who registered it). With
    --spec, the training CSV's columns may come in any order."""
    from services.retrainer.registry.spec_scaffold import (
        ScaffoldError,
        read_metadata,
        reorder_training_csv,
    )

    if (spec is None) == (metadata is None):
        fail(ExitCode.USAGE, "give exactly one of --spec (YAML) and --metadata (JSON)")
    training = training_data.read_bytes()
    if spec is not None:
        try:
            checked = read_metadata(spec.read_text())
            training = reorder_training_csv(training, checked.spec)
        except ScaffoldError as error:
            fail(ExitCode.USAGE, f"{spec}: {error}", markup=False)
        text = checked.model_dump_json(exclude_none=True)
    else:
        assert metadata is not None
        text = metadata.read_text()
    files = {
        "artifact": (artifact.name, artifact.read_bytes()),
        "training_data": (training_data.name, training),
    }
    if evaluation_data is not None:
        files["evaluation_data"] = (evaluation_data.name, evaluation_data.read_bytes())
    with client_for(url, token) as api:
        record = api.upload(f"/models/{model}/versions", {"metadata": text}, files)
    if as_json:
        out.print_json(json.dumps(record))
    else:
        out.print(f"registered {model} v{record['version']} ({record['artifact_sha256']})")


def _change(
    url: str | None, token: str | None, as_json: bool, method: str, path: str, body: Any
) -> None:
    with client_for(url, token) as api:
        send = api.put if method == "PUT" else api.post
        print_answer(send(path, body), as_json, _revision_table)


@app.command()
def deploy(
    model: str,
    champion: int = typer.Option(..., min=1, help="Version serving the traffic."),
    challenger: int | None = typer.Option(None, min=1, help="Candidate version."),
    share: float = typer.Option(0.0, min=0.0, max=0.5, help="Challenger's share (0 to 0.5)."),
    mode: DeploymentMode = typer.Option(DeploymentMode.CANARY, help="canary or shadow."),
    reason: str = REASON,
    incident: str | None = INCIDENT,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Deploy a champion, optionally with a challenger at a share."""
    body = {
        "champion": champion,
        "challenger": challenger,
        "challenger_share": share,
        "mode": mode.value,
        "reason": reason,
        "incident_id": incident,
    }
    _change(url, token, as_json, "PUT", f"/models/{model}/deployment", body)


@app.command()
def traffic(
    model: str,
    share: float = typer.Argument(..., min=0.0, max=0.5, help="Challenger's share (0 to 0.5)."),
    mode: DeploymentMode | None = typer.Option(None, help="Switch to canary or shadow."),
    reason: str = REASON,
    incident: str | None = INCIDENT,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Set the challenger's share of traffic."""
    body = {
        "challenger_share": share,
        "mode": mode.value if mode else None,
        "reason": reason,
        "incident_id": incident,
    }
    _change(url, token, as_json, "PUT", f"/models/{model}/deployment/traffic", body)


@app.command()
def promote(
    model: str,
    reason: str = REASON,
    incident: str | None = INCIDENT,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Make the challenger the champion."""
    body = {"reason": reason, "incident_id": incident}
    _change(url, token, as_json, "POST", f"/models/{model}/deployment/promote", body)


@app.command()
def rollback(
    model: str,
    reason: str = REASON,
    incident: str | None = INCIDENT,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """One step back: withdraw the challenger, or restore the previous champion."""
    body = {"reason": reason, "incident_id": incident}
    _change(url, token, as_json, "POST", f"/models/{model}/deployment/rollback", body)


@app.command()
def history(
    model: str,
    at: str | None = typer.Option(None, help="Only what served at this ISO 8601 time."),
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Show who moved which alias, when and why (or what served at a time)."""
    if at is not None:
        with client_for(url, None) as api:
            found = api.get(f"/models/{model}/deployment/at", time=at)

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

        print_answer(found, as_json, at_table)
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

    with client_for(url, None) as api:
        print_answer(api.get(f"/models/{model}/history"), as_json, table)

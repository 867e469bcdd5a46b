"""``vigil retrain …``: ask for a retrain and follow runs, evaluations and promotion requests,
over the retrainer's HTTP API (URL, token and exit codes: :mod:`services.retrainer.cli`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from services.retrainer.cli import Url, client_for
from services.retrainer.rollout.cli import promotions_table
from services.runtime.command_line import AsJson, Token, print_answer

__all__ = ["app"]

app = typer.Typer(help="Retraining: ask for a retrain, follow runs, evaluations and promotions.")


def _parameter(text: str) -> tuple[str, Any]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise typer.BadParameter(f"{text!r}: write NAME=VALUE")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _runs_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} run(s)")
    table.add_column("run", no_wrap=True)
    for column in ("model", "state", "causes", "candidate", "cached steps", "failure"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["run_id"],
            row["model"],
            row["state"],
            ", ".join(row["causes"]),
            f"v{row['candidate_version']}" if row["candidate_version"] else "-",
            ", ".join(row["cached_steps"]) or "-",
            row["failure"] or "",
        )
    return table


def _run_detail(row: dict[str, Any]) -> str:
    lines = [
        f"run {row['run_id']} of {row['model']}: {row['state']}",
        f"causes: {', '.join(row['causes'])} (asked by {', '.join(row['requesters'])})",
        f"candidate: v{row['candidate_version']}" if row["candidate_version"] else "candidate: -",
        f"evaluation: {row['evaluation_id'] or '-'}",
        f"cached steps: {', '.join(row['cached_steps']) or '-'}",
    ]
    if row["failure"]:
        lines.append(f"failure: {row['failure']}")
    changes = row.get("dataset_changes")
    if changes:
        lines.append(
            f"data: {changes['rows_before']} → {changes['rows_after']} rows "
            f"({changes['live_rows']} live, {changes['dropped_rows']} left out)"
        )
        lines.append(
            "labels: "
            + ", ".join(
                f"{label} {changes['label_balance_before'].get(label, 0):.0%} → {share:.0%}"
                for label, share in changes["label_balance_after"].items()
            )
        )
        for shift in changes["features"]:
            p_value = shift["p_value"]
            lines.append(
                f"  {shift['feature']}: {shift['test']} "
                f"{'-' if shift['statistic'] is None else format(shift['statistic'], '.3g')}"
                f" (p={'-' if p_value is None else format(p_value, '.3g')})"
            )
    return "\n".join(lines)


@app.command("request")
def request_retrain(
    model: str,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (kept with the run).")],
    cause: Annotated[
        str | None, typer.Option(help="Deduplication key; asks with the same cause are merged.")
    ] = None,
    incident: Annotated[str | None, typer.Option(help="Incident behind the ask.")] = None,
    parameter: Annotated[
        list[str] | None,
        typer.Option("--set", help="Training parameter to change, NAME=VALUE (repeatable)."),
    ] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Ask for a retrain of a model (role l2 or higher)."""
    body: dict[str, Any] = {
        "model": model,
        "reason": reason,
        "cause": cause,
        "incident_id": incident,
    }
    if parameter:
        body["parameters"] = dict(_parameter(text) for text in parameter)
    with client_for(url, token) as api:
        answer = api.post("/retrains", body)
    print_answer(answer, as_json, lambda a: f"{a['admission']}: {a['reason']}")


@app.command("list")
def list_runs(
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List retraining runs, newest first."""
    with client_for(url, token) as api:
        rows = api.get("/retrains", model=model)
    print_answer(rows, as_json, _runs_table)


@app.command("show")
def show_run(run: str, url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """Show a run: causes, data changes, cached steps, outcome."""
    with client_for(url, token) as api:
        row = api.get(f"/retrains/{run}")
    print_answer(row, as_json, _run_detail)


@app.command("evaluation")
def show_evaluation(
    evaluation: str, url: Url = None, token: Token = None, as_json: AsJson = False
) -> None:
    """Show the gate's record of a candidate: every figure and failed check."""
    with client_for(url, token) as api:
        record = api.get(f"/evaluations/{evaluation}")

    def text(data: dict[str, Any]) -> str:
        verdict = "passed" if data["passed"] else "failed"
        lines = [
            f"{data['evaluation_id']}: v{data['candidate_version']} {verdict}",
            data["summary"],
        ]
        lines += [f"  ✗ {failure}" for failure in data["failures"]]
        lines.append(json.dumps(data["figures"], indent=2))
        return "\n".join(lines)

    print_answer(record, as_json, text)


@app.command("promotions")
def list_promotions(
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    state: Annotated[str | None, typer.Option(help="pending, approved, rejected, expired.")] = None,
    incident: Annotated[str | None, typer.Option(help="Only this incident's.")] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List promotion requests."""
    with client_for(url, token) as api:
        rows = api.get("/promotions", model=model, state=state, incident_id=incident)
    print_answer(rows, as_json, promotions_table)

"""``vigil approve`` and ``vigil reject``: decide a promotion request as yourself (the token's
owner, role l2 or higher, not the one who asked for the retrain)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from services.retrainer.cli import Url, client_for
from services.runtime.command_line import AsJson, Token, print_answer

__all__ = ["app", "promotions_table"]

app = typer.Typer()


def promotions_table(rows: list[dict[str, Any]]) -> Table:
    """A table of promotion requests."""
    table = Table(title=f"{len(rows)} promotion request(s)")
    table.add_column("request", no_wrap=True)
    for column in ("model", "version", "state", "rollout", "requested by", "expires"):
        table.add_column(column)
    table.add_column("gate")
    for row in rows:
        table.add_row(
            row["request_id"],
            row["model"],
            f"v{row['version']}",
            row["state"] + (f" by {row['decided_by']}" if row["decided_by"] else ""),
            row["rollout"] or "-",
            row["requested_by"],
            row["expires_at"][:19],
            row["summary"],
        )
    return table


Comment = Annotated[str, typer.Option("--comment", "-c", help="Why (kept with the decision).")]


def _decide(
    request: str, verb: str, comment: str, url: str | None, token: str | None, as_json: bool
) -> None:
    with client_for(url, token) as api:
        answer: dict[str, Any] = api.post(f"/promotions/{request}/{verb}", {"comment": comment})
    print_answer(answer, as_json, lambda row: promotions_table([row]))


@app.command()
def approve(
    request: str, comment: Comment, url: Url = None, token: Token = None, as_json: AsJson = False
) -> None:
    """Approve a promotion request: the candidate goes to canary on a share of traffic."""
    _decide(request, "approve", comment, url, token, as_json)


@app.command()
def reject(
    request: str, comment: Comment, url: Url = None, token: Token = None, as_json: AsJson = False
) -> None:
    """Reject a promotion request: the candidate never takes traffic."""
    _decide(request, "reject", comment, url, token, as_json)

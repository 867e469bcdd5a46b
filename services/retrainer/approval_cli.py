"""``vigil approve`` and ``vigil reject``: decide a promotion request as yourself (the token's
owner, role l2 or higher, not the one who asked for the retrain)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from services.retrainer.retrain_cli import AsJson, Token, Url, client, promotions_table, show

__all__ = ["app"]

app = typer.Typer()

Comment = Annotated[str, typer.Option("--comment", "-c", help="Why (kept with the decision).")]


def _decide(
    request: str, verb: str, comment: str, url: str | None, token: str | None, as_json: bool
) -> None:
    with client(url, token) as api:
        answer: dict[str, Any] = api.post(f"/promotions/{request}/{verb}", {"comment": comment})
    show(answer, as_json, lambda row: promotions_table([row]))


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

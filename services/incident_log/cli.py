"""``vigil incidents …``: the on-call command line, over the incident log's HTTP API.

Every command prints a table (or ``--json`` for scripts); when the service refuses (unknown
incident, role too low, a state that forbids the action) it prints the service's own explanation
and exits 3, 4 when the service cannot be reached (the rule: :mod:`services.runtime.command_line`).
The URL comes from ``--url``, ``VIGIL_INCIDENT_LOG_URL`` or the running local stack; the token
from ``--token``, ``VIGIL_TOKEN``, or the local stack's credentials
(:mod:`services.runtime.local_stack`).
"""

from __future__ import annotations

import json
import secrets
from contextlib import AbstractContextManager
from typing import Annotated, Any

import typer
from rich.table import Table

from services.incident_log.tokens import DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, token_digest
from services.runtime.api_client import ApiClient
from services.runtime.command_line import (
    AsJson,
    ExitCode,
    Token,
    api_client,
    fail,
    out,
    print_answer,
    url_option,
)
from services.runtime.names import ServiceName
from services.runtime.scopes import SERVICE_SCOPES, Scope

__all__ = ["app"]

app = typer.Typer(help="Work incidents: list, show, acknowledge, claim, escalate, resolve…")
silences = typer.Typer(help="Mute matching alerts for a while (they are kept, and page no one).")
tokens = typer.Typer(help="API tokens: list, create (admin), revoke.")
app.add_typer(silences, name="silences")
app.add_typer(tokens, name="tokens")

Url = Annotated[str | None, url_option(ServiceName.INCIDENT_LOG)]
TakeOver = Annotated[
    bool, typer.Option("--take-over", help="Act on an incident someone else holds.")
]
Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (goes on the timeline).")]

_STATUS_STYLE = {
    "open": "red",
    "acknowledged": "yellow",
    "mitigating": "yellow",
    "monitoring": "cyan",
    "resolved": "green",
}


def client_for(url: str | None, token: str | None) -> AbstractContextManager[ApiClient]:
    """A client of the incident log; an API error ends the command (the exit-code rule)."""
    return api_client(ServiceName.INCIDENT_LOG, url, token)


def _incidents_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} incident(s)")
    table.add_column("id", no_wrap=True)
    for column in ("status", "tier", "model", "title", "held by", "alerts", "opened"):
        table.add_column(column)
    for row in rows:
        style = _STATUS_STYLE.get(row["status"], "")
        table.add_row(
            row["id"],
            f"[{style}]{row['status']}[/]",
            row["tier"],
            f"{row['model']} v{row['model_version']}" if row["model_version"] else row["model"],
            row["title"],
            row["held_by"] or "-",
            str(row["alert_count"]),
            row["opened_at"][:19],
        )
    return table


def _incident_summary(incident: dict[str, Any]) -> str:
    style = _STATUS_STYLE.get(incident["status"], "")
    held = f", held by {incident['held_by']}" if incident.get("held_by") else ""
    return (
        f"[bold]{incident['id']}[/bold] [{style}]{incident['status']}[/] at {incident['tier']}"
        f"{held} — {incident['title']}"
    )


def _timeline_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="timeline")
    for column in ("at", "actor", "action", "change", "details"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        change = " ".join(
            part
            for part in (
                f"{entry['from_status'] or ''}→{entry['to_status']}" if entry["to_status"] else "",
                f"{entry['from_tier'] or ''}→{entry['to_tier']}" if entry["to_tier"] else "",
            )
            if part
        )
        details = entry["details"]
        shown = details.get("reason") or details.get("text") or details.get("summary")
        table.add_row(
            entry["at"][:19],
            entry["actor"],
            entry["action"],
            change,
            str(shown) if shown else json.dumps(details)[:200],
        )
    return table


@app.command("list")
def list_incidents(
    status: Annotated[str | None, typer.Option(help="open, acknowledged, …, resolved")] = None,
    tier: Annotated[str | None, typer.Option(help="L1, L2 or L3")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    unresolved: Annotated[bool, typer.Option("--unresolved", help="Hide resolved ones.")] = False,
    limit: int = 50,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List incidents, newest first."""
    with client_for(url, token) as client:
        rows = client.get(
            "/incidents",
            status=status,
            tier=tier,
            model=model,
            unresolved=unresolved or None,
            limit=limit,
        )
    print_answer(rows, as_json, _incidents_table)


@app.command()
def show(incident: str, url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """Show an incident: state, signals, the actions you may take, and its timeline."""
    with client_for(url, token) as client:
        detail = client.get(f"/incidents/{incident}")
        timeline = client.get(f"/incidents/{incident}/timeline")
        notifications = client.get(f"/incidents/{incident}/notifications")
    if as_json:
        out.print_json(json.dumps(detail | {"timeline": timeline, "notifications": notifications}))
        return
    out.print(_incident_summary(detail))
    signals = Table(title="signals")
    for column in ("fingerprint", "kind", "severity", "seen", "active", "summary"):
        signals.add_column(column, overflow="fold")
    for signal in detail["signals"]:
        signals.add_row(
            signal["fingerprint"],
            signal["kind"],
            signal["severity"],
            str(signal["occurrences"]),
            "yes" if signal["active"] else "recovered",
            signal["summary"],
        )
    out.print(signals)
    out.print(f"you may: {', '.join(detail['actions']) or 'only read'}")
    if notifications:
        out.print(_notifications_table(notifications))
    out.print(_timeline_table(timeline))


def _notifications_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="pages")
    for column in ("at", "person", "channel", "why", "tier", "status", "tries", "error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["created_at"][:19],
            row["person"],
            row["channel"] or "-",
            row["reason"],
            row["tier"],
            row["status"],
            str(row["attempts"]),
            row["last_error"] or "",
        )
    return table


def _act(
    incident: str,
    action: str,
    body: dict[str, Any],
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    with client_for(url, token) as client:
        detail = client.post(f"/incidents/{incident}/{action}", body)
    print_answer(detail, as_json, _incident_summary)


def _action(name: str, action: str, summary: str) -> None:
    """Add ``vigil incidents NAME INCIDENT``: post the action with no reason."""

    def command(
        incident: str,
        take_over: TakeOver = False,
        url: Url = None,
        token: Token = None,
        as_json: AsJson = False,
    ) -> None:
        _act(incident, action, {"take_over": take_over}, url, token, as_json)

    command.__doc__ = summary
    app.command(name)(command)


def _action_with_reason(name: str, summary: str) -> None:
    """Add ``vigil incidents NAME INCIDENT --reason …``: post the action with its reason."""

    def command(
        incident: str,
        reason: Reason,
        take_over: TakeOver = False,
        url: Url = None,
        token: Token = None,
        as_json: AsJson = False,
    ) -> None:
        _act(incident, name, {"reason": reason, "take_over": take_over}, url, token, as_json)

    command.__doc__ = summary
    app.command(name)(command)


_action("ack", "acknowledge", "Acknowledge an incident at its current tier.")
_action("claim", "claim", "Take ownership of an incident for a while (renewed by your activity).")


@app.command()
def comment(
    incident: str,
    text: str,
    take_over: TakeOver = False,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Add a comment to an incident's timeline."""
    _act(incident, "comment", {"text": text, "take_over": take_over}, url, token, as_json)


_action_with_reason("escalate", "Hand an incident to the next tier.")
_action_with_reason("mitigating", "Say a fix is being worked on.")
_action_with_reason("monitoring", "Say the fix is in and is being watched.")


@app.command()
def resolve(
    incident: str,
    reason: Reason,
    force: Annotated[
        bool, typer.Option("--force", help="Resolve before labels confirmed a performance fix.")
    ] = False,
    take_over: TakeOver = False,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Resolve an incident."""
    body = {"reason": reason, "force": force, "take_over": take_over}
    _act(incident, "resolve", body, url, token, as_json)


@app.command()
def reopen(
    incident: str, reason: Reason, url: Url = None, token: Token = None, as_json: AsJson = False
) -> None:
    """Reopen a resolved incident."""
    _act(incident, "reopen", {"reason": reason}, url, token, as_json)


_action_with_reason(
    "retrain", "Ask the retrainer for a new version of the incident's model (level two)."
)


@app.command("run")
def run_runbook(
    incident: str,
    runbook: str,
    reason: Reason,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE, repeatable.")
    ] = None,
    take_over: TakeOver = False,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Run a catalogued runbook for an incident, with a reason (level two and up)."""
    given: dict[str, str] = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(ExitCode.USAGE, f"[red]error:[/red] --param {item!r} is not NAME=VALUE")
        given[name] = value
    with client_for(url, token) as client:
        types = _parameter_types(client, incident, runbook) if given else {}
        parameters = {name: _typed(value, types.get(name)) for name, value in given.items()}
        body = {
            "runbook": runbook,
            "reason": reason,
            "parameters": parameters,
            "take_over": take_over,
        }
        requested = client.post(f"/incidents/{incident}/runbooks", body)
    print_answer(requested, as_json, _requested_summary)


def _parameter_types(client: ApiClient, incident: str, runbook: str) -> dict[str, str]:
    """The catalogue's type of each parameter of a runbook, from the incident log's API."""
    choices = client.get(f"/incidents/{incident}/runbook-choices")
    for found in (*choices["applicable"], *choices["others"]):
        if found["name"] == runbook:
            return {p["name"]: p["type"] for p in found["parameters"]}
    return {}  # the API explains which runbooks there are


def _typed(text: str, kind: str | None) -> str | int | float | bool:
    """A NAME=VALUE's value as the catalogue types it (left as text when it does not parse:
    the API then says what is wrong with it)."""
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        return text
    if kind == "bool" and text in ("true", "false"):
        return text == "true"
    return text


def _requested_summary(requested: dict[str, Any]) -> str:
    if requested.get("state") == "pending_approval":
        return (
            f"run [bold]{requested['run_id']}[/bold] of {requested['runbook']} waits for a second "
            f"person's approval until {requested['approval_expires_at'][:19]} "
            f"(vigil incidents approve {requested['incident_id']} {requested['run_id']})"
        )
    return f"requested run [bold]{requested['run_id']}[/bold] of {requested['runbook']}"


@app.command("approvals")
def list_approvals(
    incident: Annotated[
        str | None, typer.Argument(help="Only this incident's runs, decided ones too.")
    ] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Runbook runs waiting for a second person's approval (or one incident's held runs)."""
    with client_for(url, token) as client:
        rows = client.get(f"/incidents/{incident}/approvals" if incident else "/approvals")
    print_answer(rows, as_json, _approvals_table)


def _approvals_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} held run(s)")
    for column in ("run", "incident", "runbook", "asked by", "reason", "state", "until", "you"):
        table.add_column(column, overflow="fold")
    for row in rows:
        decided = f" by {row['decided_by']}" if row["decided_by"] else ""
        table.add_row(
            row["run_id"],
            row["incident_id"],
            row["runbook"],
            row["requested_by"],
            row["reason"],
            f"{row['state']}{decided}",
            row["expires_at"][:19],
            "may approve" if row["can_approve"] else "-",
        )
    return table


OptionalReason = Annotated[
    str | None, typer.Option("--reason", "-r", help="Why (goes on the timeline).")
]


@app.command("approve")
def approve_run(
    incident: str,
    run_id: str,
    reason: OptionalReason = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Approve a held runbook run someone else asked for: it is sent to the runner."""
    _decide_run(incident, run_id, "approve", reason, url, token, as_json)


@app.command("reject")
def reject_run(
    incident: str,
    run_id: str,
    reason: OptionalReason = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Reject a held runbook run (or withdraw your own): it never runs."""
    _decide_run(incident, run_id, "reject", reason, url, token, as_json)


def _decide_run(
    incident: str,
    run_id: str,
    decision: str,
    reason: str | None,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    body = {"reason": reason} if reason else {}
    with client_for(url, token) as client:
        held = client.post(f"/incidents/{incident}/runbooks/{run_id}/{decision}", body)
    print_answer(
        held,
        as_json,
        lambda h: (
            f"run [bold]{h['run_id']}[/bold] of {h['runbook']}: {h['state']}"
            + (" (sent to the runner)" if h["state"] == "approved" else "")
        ),
    )


@app.command("open")
def open_incident(
    model: Annotated[str, typer.Argument(help="The model the incident is about.")],
    summary: Annotated[str, typer.Option("--summary", "-s", help="One line: what is wrong.")],
    version: Annotated[int | None, typer.Option("--version", help="The model version.")] = None,
    severity: Annotated[
        str, typer.Option("--severity", help="info, warning or critical.")
    ] = "warning",
    details: Annotated[str, typer.Option("--details", help="What was seen, and how.")] = "",
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            help="Makes a retry safe: the same key opens one incident (yours: per person).",
        ),
    ] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Open an incident by hand (level one and up); it is routed like any alert."""
    body = {
        "model": model,
        "model_version": version,
        "severity": severity,
        "summary": summary,
        "details": details,
    }
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    with client_for(url, token) as client:
        detail = client.post("/incidents", body, headers=headers)
    print_answer(detail, as_json, _incident_summary)


@app.command("runbooks")
def runbook_choices(
    incident: str, url: Url = None, token: Token = None, as_json: AsJson = False
) -> None:
    """The catalogued runbooks for an incident's alert kinds, and the parameters you give."""
    with client_for(url, token) as client:
        choices = client.get(f"/incidents/{incident}/runbook-choices")
    print_answer(choices, as_json, _choices_table)


def _choices_table(choices: dict[str, Any]) -> Table:
    table = Table(title=f"runbooks for {', '.join(choices['kinds']) or 'no kind'}")
    for column in ("runbook", "applies", "tier", "approval", "parameters", "purpose"):
        table.add_column(column, overflow="fold")
    for group, applies in (("applicable", "yes"), ("others", "-")):
        for runbook in choices[group]:
            table.add_row(
                runbook["name"],
                applies,
                runbook["tier"],
                "needs approval" if runbook["needs_approval"] else "-",
                ", ".join(_parameter_text(p) for p in runbook["parameters"]) or "-",
                runbook["purpose"],
            )
    return table


def _parameter_text(parameter: dict[str, Any]) -> str:
    rules = [parameter["type"]]
    if parameter["allowed"]:
        rules.append("|".join(str(v) for v in parameter["allowed"]))
    if parameter["pattern"]:
        rules.append(f"/{parameter['pattern']}/")
    if parameter["minimum"] is not None or parameter["maximum"] is not None:
        rules.append(f"{parameter['minimum']}..{parameter['maximum']}")
    rules.append("required" if parameter["required"] else f"default {parameter['default']}")
    return f"{parameter['name']} ({', '.join(rules)})"


@app.command("review")
def review(
    incident: str,
    action_items: Annotated[
        typer.FileText | None,
        typer.Option(
            "--action-items",
            help="Save the action items from this Markdown file ('-': standard input).",
        ),
    ] = None,
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            help="The version of the action items you edited (default: the current one).",
        ),
    ] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Print an incident's post-incident review (Markdown), or save its action items."""
    path = f"/incidents/{incident}/review"
    with client_for(url, token) as client:
        found = client.get(path)
        if action_items is not None:
            body = {
                "text": action_items.read(),
                "version": found["version"] if version is None else version,
            }
            found = client.put(f"{path}/action-items", body)
    if as_json:
        out.print_json(json.dumps(found))
    else:
        typer.echo(found["markdown"])  # the document itself, unstyled (rich would mark it up)


@app.command()
def stats(
    bucket: Annotated[
        str | None,
        typer.Option("--bucket", help="hour, day or week: the figures per time bucket."),
    ] = None,
    count: Annotated[int, typer.Option("--count", help="How many buckets.")] = 14,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """MTTA and MTTR per tier, model and alert kind; the share resolved at level one; the
    success and verification rates per runbook (or, with --bucket, per time bucket)."""
    with client_for(url, token) as client:
        if bucket is not None:
            buckets = client.get("/stats/over-time", bucket=bucket, count=count)
            print_answer(buckets, as_json, _buckets_table)
            return
        figures = client.get("/stats")
    print_answer(figures, as_json, _stats_table)
    if not as_json and figures.get("runbooks"):
        out.print(_runbook_rates_table(figures["runbooks"]))


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def _runbook_rates_table(rates: dict[str, Any]) -> Table:
    table = Table(title="runbooks")
    for column in ("runbook", "runs", "success rate", "verification rate", "not applied"):
        table.add_column(column)
    for name, row in rates.items():
        table.add_row(
            name,
            str(row["runs"]),
            _percent(row["success_rate"]),
            _percent(row["verification_rate"]),
            str(row["not_applied"]),
        )
    return table


def _buckets_table(buckets: list[dict[str, Any]]) -> Table:
    table = Table(title="per time bucket")
    for column in ("from", "incidents", "tier", "MTTA", "MTTR", "resolved at L1"):
        table.add_column(column)
    for bucket in buckets:
        figures = bucket["stats"]
        tiers = sorted(figures["by_tier"].items()) or [("-", None)]
        for tier, row in tiers:
            table.add_row(
                bucket["start"][:16],
                str(figures["incidents"]),
                tier,
                _minutes(row["mtta_seconds"]) if row else "-",
                _minutes(row["mttr_seconds"]) if row else "-",
                _percent(figures["share_resolved_at_l1"]),
            )
    return table


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _stats_table(figures: dict[str, Any]) -> Table:
    share = figures["share_resolved_at_l1"]
    table = Table(
        title=(
            f"{figures['incidents']} incidents, {figures['unresolved']} unresolved — "
            f"MTTA {_minutes(figures['mtta_seconds'])}, MTTR {_minutes(figures['mttr_seconds'])}, "
            f"resolved at L1: {'-' if share is None else f'{share:.0%}'}"
        )
    )
    for column in ("group", "incidents", "MTTA", "MTTR", "resolved"):
        table.add_column(column)
    for group in ("by_tier", "by_model", "by_kind"):
        for key, row in sorted(figures[group].items()):
            table.add_row(
                f"{group[3:]} {key}",
                str(row["incidents"]),
                _minutes(row["mtta_seconds"]),
                _minutes(row["mttr_seconds"]),
                str(row["resolved"]),
            )
    return table


@app.command()
def whoami(url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """Show the name and role your token acts as."""
    with client_for(url, token) as client:
        me = client.get("/whoami")
    print_answer(me, as_json, lambda m: f"{m['name']} ({m['role']})")


@silences.command("list")
def list_silences(
    expired: Annotated[bool, typer.Option("--expired", help="Include ended silences.")] = False,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List silences."""
    with client_for(url, token) as client:
        rows = client.get("/silences", expired=expired or None)

    def table(rows: list[dict[str, Any]]) -> Table:
        result = Table(title="silences")
        for column in ("id", "active", "matcher", "until", "by", "reason", "ended by"):
            result.add_column(column, no_wrap=column == "id", overflow="fold")
        for row in rows:
            result.add_row(
                row["id"],
                "yes" if row["active"] else "no",
                json.dumps(row["matcher"]),
                row["ends_at"][:19],
                row["created_by"],
                row["reason"],
                row.get("expired_by") or "",
            )
        return result

    print_answer(rows, as_json, table)


@silences.command("create")
def create_silence(
    reason: Reason,
    minutes: Annotated[float, typer.Option(help="How long it lasts.")] = 60,
    kind: Annotated[list[str] | None, typer.Option(help="Alert kind, repeatable.")] = None,
    model: Annotated[list[str] | None, typer.Option(help="Model or pattern, repeatable.")] = None,
    severity: Annotated[list[str] | None, typer.Option(help="Severity, repeatable.")] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Mute matching alerts for a while (level two and up)."""
    body = {
        "matcher": {"kinds": kind or [], "models": model or [], "severities": severity or []},
        "duration_minutes": minutes,
        "reason": reason,
    }
    with client_for(url, token) as client:
        created = client.post("/silences", body)
    print_answer(
        created, as_json, lambda s: f"silence [bold]{s['id']}[/bold] until {s['ends_at'][:19]}"
    )


@silences.command("expire")
def expire_silence(
    silence: str, url: Url = None, token: Token = None, as_json: AsJson = False
) -> None:
    """End a silence now."""
    with client_for(url, token) as client:
        ended = client.delete(f"/silences/{silence}")
    print_answer(ended, as_json, lambda s: f"silence {s['id']} ended by {s['expired_by']}")


def _tokens_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} token(s)")
    for column in ("id", "owner", "role / scopes", "created", "expires", "last used", "state"):
        table.add_column(column, no_wrap=column == "id", overflow="fold")
    for row in rows:
        state = row["state"] + (f" by {row['revoked_by']}" if row.get("revoked_by") else "")
        table.add_row(
            row["id"],
            row["name"],
            row["role"] or ", ".join(row["scopes"] or []),
            f"{(row['created_at'] or '')[:19]} by {row['created_by'] or '-'}",
            (row["expires_at"] or "never")[:19],
            (row["last_used_at"] or "-")[:19],
            state,
        )
    return table


@tokens.command("list")
def list_tokens(
    name: Annotated[str | None, typer.Option(help="Only this owner's (admin).")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Include revoked and expired tokens.")
    ] = False,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List tokens: every one to an admin, your own to anyone else (never the tokens
    themselves)."""
    with client_for(url, token) as client:
        rows = client.get("/tokens", name=name, include_inactive=all_ or None)
    print_answer(rows, as_json, _tokens_table)


@tokens.command("create")
def create_token(
    name: str,
    role: Annotated[
        str | None, typer.Option(help="A person's: viewer, l1, l2, l3 or admin.")
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope", help="A service's, repeatable: " + ", ".join(s.value for s in Scope)
        ),
    ] = None,
    days: Annotated[
        float,
        typer.Option(
            "--expires-in-days", help=f"Days until it stops working (at most {MAX_TOKEN_DAYS})."
        ),
    ] = DEFAULT_TOKEN_DAYS,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Create an API token for a person (--role) or a service (--scope); shown once."""
    if (role is None) == (not scope):
        fail(ExitCode.USAGE, "[red]error:[/red] give exactly one of --role and --scope")
    body: dict[str, Any] = {"name": name, "expires_in_days": days}
    if role is not None:
        body["role"] = role
    else:
        body["scopes"] = scope
    with client_for(url, token) as client:
        created = client.post("/tokens", body)
    print_answer(
        created,
        as_json,
        lambda t: (
            f"token {t['id']} for {t['name']} ({t['role'] or ', '.join(t['scopes'])}), "
            f"expires {t['expires_at'][:19]}: {t['token']}"
        ),
    )


@tokens.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (tokens list).")],
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Revoke a token now: any as admin, your own otherwise."""
    with client_for(url, token) as client:
        revoked = client.delete(f"/tokens/{token_id}")
    print_answer(
        revoked,
        as_json,
        lambda t: f"token {t['id']} of {t['name']} revoked at {t['revoked_at'][:19]}",
    )


@tokens.command("generate-env")
def generate_env() -> None:
    """Print fresh secrets for a compose deployment, as a ``.env`` file: the admin's token (for
    you), each service's own (for that service), their SHA-256 for the incident log, so no
    service's environment holds a token that is not its own, the key the incident log signs
    runbook requests with for the runner, and the token the monitor's probe shows the scorer
    (docs/deployment.md)."""
    admin = f"vgl_{secrets.token_urlsafe(24)}"
    lines = [
        "# Generated by `vigil tokens generate-env`: keep this file private (mode 0600).",
        f"VIGIL_ADMIN_TOKEN={admin}",
        f"VIGIL_ADMIN_TOKEN_SHA256={token_digest(admin)}",
    ]
    provisioned = []
    for service, scopes in sorted(SERVICE_SCOPES.items()):
        token = f"vgl_{secrets.token_urlsafe(24)}"
        variable = f"VIGIL_{service.value.replace('-', '_').upper()}_TOKEN"
        lines.append(f"{variable}={token}")
        provisioned.append(
            {"name": service.value, "scopes": sorted(scopes), "token_sha256": token_digest(token)}
        )
    lines.append(f"VIGIL_SERVICE_TOKENS='{json.dumps(provisioned)}'")
    lines.append(f"VIGIL_RUNBOOK_SIGNING_KEY={secrets.token_hex(32)}")
    lines.append(f"VIGIL_PROBE_TOKEN=vgl_{secrets.token_urlsafe(24)}")
    typer.echo("\n".join(lines))

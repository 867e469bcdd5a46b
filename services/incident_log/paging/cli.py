"""``vigil people …`` and ``vigil oncall …``: who can be paged, how, and who is on call.

Over the incident log's HTTP API, with the same ``--url``, ``--token`` and ``--json`` as
``vigil incidents``. People and schedules need an admin token; anyone may read who is on call,
and a responder may put themselves on call with an override.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from services.incident_log.cli import Url, client_for
from services.runtime.command_line import (
    AsJson,
    ExitCode,
    Token,
    fail,
    out,
    print_answer,
)

__all__ = ["oncall", "people"]

people = typer.Typer(help="People Vigil can page and their contacts (admin).")
oncall = typer.Typer(help="On-call schedules: who is on call now, at a time, and overrides.")

TIERS = ("L1", "L2", "L3")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _people_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} person(s)")
    for column in ("name", "display name", "contact", "channel", "address"):
        table.add_column(column, overflow="fold")
    for row in rows:
        contacts = row["contacts"] or [{"id": "-", "channel": "-", "address": "(none)"}]
        for n, contact in enumerate(contacts):
            table.add_row(
                row["name"] if n == 0 else "",
                (row["display_name"] or "") if n == 0 else "",
                contact["id"],
                contact["channel"],
                contact["address"],
            )
    return table


@people.command("list")
def list_people(url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    """Everyone Vigil can page, with their contacts."""
    with client_for(url, token) as client:
        rows = client.get("/people")
    print_answer(rows, as_json, _people_table)


@people.command("add")
def add_person(
    name: str,
    display_name: Annotated[str | None, typer.Option(help="A longer name for people.")] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Add (or rename) a person; NAME is the name their API token carries."""
    with client_for(url, token) as client:
        row = client.put(f"/people/{name}", {"display_name": display_name})
    print_answer(row, as_json, lambda r: f"person {r['name']} saved")


@people.command("remove")
def remove_person(name: str, url: Url = None, token: Token = None) -> None:
    """Remove a person and their contacts; they are paged no more."""
    with client_for(url, token) as client:
        client.delete(f"/people/{name}")
    out.print(f"person {name} removed")


@people.command("add-contact")
def add_contact(
    name: str,
    channel: Annotated[str, typer.Argument(help="webhook, chat, email or pagerduty")],
    address: Annotated[str, typer.Argument(help="URL, or e-mail address for email")],
    secret: Annotated[
        str | None,
        typer.Option(
            help="Webhook signing secret (made for you if absent); pagerduty: routing key."
        ),
    ] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Add a way to reach a person. A webhook's signing secret is shown once: keep it."""
    body = {"channel": channel, "address": address, "secret": secret}
    with client_for(url, token) as client:
        contact = client.post(f"/people/{name}/contacts", body)

    def describe(c: dict[str, Any]) -> str:
        shown = f"\nsigning secret (shown once): {c['secret']}" if c.get("secret") else ""
        return f"contact {c['id']}: {c['channel']} {c['address']} for {c['person']}{shown}"

    print_answer(contact, as_json, describe)


@people.command("remove-contact")
def remove_contact(name: str, contact_id: str, url: Url = None, token: Token = None) -> None:
    """Remove one contact of a person."""
    with client_for(url, token) as client:
        client.delete(f"/people/{name}/contacts/{contact_id}")
    out.print(f"contact {contact_id} of {name} removed")


def _on_call_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="on call")
    for column in ("tier", "schedule", "person", "why", "until"):
        table.add_column(column)
    for row in rows:
        why = f"override {row['override']}" if row["override"] else f"layer {row['layer']}"
        table.add_row(
            row["tier"] or "-",
            row["schedule"],
            row["person"] or "[red]nobody[/red]",
            why if row["person"] else "-",
            _utc(row["until"]),
        )
    return table


At = Annotated[
    datetime | None, typer.Option("--at", help="A moment (ISO 8601 with zone); default: now.")
]


@oncall.command("now")
def now(
    at: At = None,
    tier: Annotated[str | None, typer.Option(help="Only this tier's schedules.")] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Who each schedule has on call now (or at --at)."""
    with client_for(url, token) as client:
        rows = client.get("/oncall", at=_iso(at), tier=tier)
    print_answer(rows, as_json, _on_call_table)


@oncall.command("show")
def show(
    which: Annotated[str, typer.Argument(help="A tier (L1, L2, L3) or a schedule's name.")],
    at: At = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """A tier's schedules (or one schedule): layers, who is on call, overrides to come."""
    with client_for(url, token) as client:
        if which.upper() in TIERS:
            rows = [s for s in client.get("/schedules", at=_iso(at)) if s["tier"] == which.upper()]
        else:
            rows = [client.get(f"/schedules/{which}", at=_iso(at))]
    if as_json:
        print_answer(rows, True, str)
        return
    if not rows:
        fail(ExitCode.REFUSED, f"no schedule answers for {which}")
    for schedule in rows:
        out.print(_on_call_table([schedule["on_call"]]))
        layers = Table(title=f"{schedule['name']}: layers (later ones win)")
        for column in ("layer", "members", "rotation", "hand-off", "since"):
            layers.add_column(column)
        for layer in schedule["layers"]:
            day = WEEKDAYS[layer["handoff_weekday"]]
            handoff = f"{layer['handoff_time'][:5]} {layer['timezone']}"
            if layer["rotation"] == "weekly":
                handoff = f"{day} {handoff}"
            layers.add_row(
                layer["name"],
                ", ".join(layer["members"]),
                layer["rotation"],
                handoff,
                layer["start"],
            )
        out.print(layers)
        for override in schedule["overrides"]:
            out.print(
                f"override {override['id']}: {override['person']} from "
                f"{_utc(override['starts_at'])} to {_utc(override['ends_at'])}"
            )


@oncall.command("set")
def set_schedule(
    name: str,
    file: Annotated[Path, typer.Argument(help="YAML or JSON: {tier, layers: [...]}.")],
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Create or replace a schedule from a file (admin)."""
    try:
        # YAML reads dates and times as objects; the API takes their ISO text.
        body = json.loads(json.dumps(yaml.safe_load(file.read_text()), default=str))
    except (OSError, yaml.YAMLError) as error:
        fail(ExitCode.USAGE, f"[red]error:[/red] cannot read {file}: {error}")
    with client_for(url, token) as client:
        schedule = client.put(f"/schedules/{name}", body)
    print_answer(schedule, as_json, lambda s: _on_call_table([s["on_call"]]))


@oncall.command("override")
def override(
    schedule: str,
    starts: Annotated[datetime, typer.Option("--from", help="Start (ISO 8601 with zone).")],
    ends: Annotated[datetime, typer.Option("--to", help="End (ISO 8601 with zone).")],
    person: Annotated[
        str | None, typer.Option(help="Who covers (default: you; others need admin).")
    ] = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Put someone on call for a time range ("I cover Tuesday night")."""
    with client_for(url, token) as client:
        who = person or client.get("/whoami")["name"]
        body = {"person": who, "starts_at": _iso(starts), "ends_at": _iso(ends)}
        row = client.post(f"/schedules/{schedule}/overrides", body)
    print_answer(
        row,
        as_json,
        lambda r: (
            f"override {r['id']}: {r['person']} covers {r['schedule']} "
            f"from {r['starts_at'][:16]} to {r['ends_at'][:16]}"
        ),
    )


@oncall.command("cancel")
def cancel(schedule: str, override_id: str, url: Url = None, token: Token = None) -> None:
    """Cancel an override."""
    with client_for(url, token) as client:
        client.delete(f"/schedules/{schedule}/overrides/{override_id}")
    out.print(f"override {override_id} cancelled")


def _utc(text: str | None) -> str:
    """An ISO time from the API (UTC), shown to the minute with its zone."""
    return f"{text[:16].replace('T', ' ')} UTC" if text else ""


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        fail(
            ExitCode.USAGE,
            "[red]error:[/red] give the time with its zone, e.g. 2026-12-08T22:00:00+01:00",
        )
    return moment.isoformat()

"""``vigil incidents`` against a running incident log: every command, and its refusals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from contracts import AlertKind, alert_fingerprint
from services.cli import _add_service_commands, app
from services.runtime import EventPublisher, KafkaSettings, kafka_broker
from tests.factories import MODEL, make_alert
from tests.processes import running_incident_log

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = "cli-admin-token"
_add_service_commands()


@pytest.fixture
async def incident_log(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[str]:
    async with running_incident_log(kafka_settings, tmp_path, admin_token=ADMIN) as process:
        yield process.url


def vigil(url: str, token: str, *args: str, group: str = "incidents") -> tuple[int, str]:
    result = CliRunner().invoke(
        app, [group, *args], env={"VIGIL_INCIDENT_LOG_URL": url, "VIGIL_TOKEN": token}
    )
    return result.exit_code, result.output


async def test_every_incident_command_works_and_refusals_exit_non_zero(
    incident_log: str, kafka_settings: KafkaSettings
) -> None:
    broker = kafka_broker(kafka_settings, client_id="cli-test")
    await broker.connect()
    drift = AlertKind.DATA_DRIFT
    await EventPublisher(broker, kafka_settings).publish(make_alert())
    await EventPublisher(broker, kafka_settings).publish(
        make_alert(
            model="other-model",
            kind=drift,
            fingerprint=alert_fingerprint("other-model", 1, drift, "x"),
        )
    )
    await broker.stop()

    code, created = vigil(incident_log, ADMIN, "tokens", "create", "lee", "--role", "l1", "--json")
    assert code == 0, created
    l1 = json.loads(created)["token"]
    code, created = vigil(incident_log, ADMIN, "tokens", "create", "kim", "--role", "l2", "--json")
    l2 = json.loads(created)["token"]

    async with httpx.AsyncClient(base_url=incident_log) as http:
        for _ in range(100):
            listed = (
                await http.get("/incidents", headers={"Authorization": f"Bearer {ADMIN}"})
            ).json()
            if len(listed) == 2:
                break
            import asyncio

            await asyncio.sleep(0.2)
    decay = next(i["id"] for i in listed if i["model"] == MODEL)
    drifted = next(i["id"] for i in listed if i["model"] == "other-model")

    assert vigil(incident_log, l1, "whoami")[1].strip() == "lee (l1)"
    code, table = vigil(incident_log, l1, "list")
    assert code == 0
    assert decay in table
    code, listing = vigil(incident_log, l1, "list", "--tier", "L2", "--json")
    assert [row["id"] for row in json.loads(listing)] == [drifted]
    for args in (
        ["claim", decay],
        ["ack", decay],
        ["comment", decay, "looking at the scorer"],
        ["mitigating", decay, "--reason", "rolling back by hand"],
        ["monitoring", decay, "--reason", "rollback done"],
        ["escalate", decay, "--reason", "recall still low"],
    ):
        code, output = vigil(incident_log, l1, *args)
        assert code == 0, (args, output)
    code, shown = vigil(incident_log, l2, "show", decay, "--json")
    timeline = json.loads(shown)["timeline"]
    actions = [entry["action"] for entry in timeline if entry["actor"] != "system:pager"]
    assert actions[-6:] == [
        "claimed",
        "acknowledged",
        "commented",
        "status_mitigating",
        "status_monitoring",
        "escalated",
    ]
    assert vigil(incident_log, l2, "ack", decay)[0] == 0
    assert vigil(incident_log, l2, "retrain", decay, "--reason", "drift")[0] == 0
    code, output = vigil(
        incident_log, l2, "run", decay, "drift-diagnosis", "-r", "why", "-p", "rows=500"
    )
    assert code == 0
    assert "requested run" in output
    code, output = vigil(
        incident_log, l2, "run", decay, "drift-diagnosis", "-r", "again", group="runbooks"
    )
    assert code == 0, output
    assert "requested run" in output  # the same request, from where people look for runbooks
    assert vigil(incident_log, l2, "resolve", decay, "--reason", "fixed", "--force")[0] == 0
    assert vigil(incident_log, l1, "reopen", decay, "--reason", "not fixed")[0] == 0
    code, silence = vigil(
        incident_log, l2, "silences", "create", "-r", "migration", "--kind", "data_drift", "--json"
    )
    assert code == 0
    silence_id = json.loads(silence)["id"]
    assert silence_id in vigil(incident_log, l1, "silences", "list")[1]
    code, output = vigil(incident_log, ADMIN, "silences", "expire", silence_id)
    assert code == 0
    assert output.strip() == f"silence {silence_id} ended by admin"
    code, listing = vigil(incident_log, l1, "silences", "list", "--expired")
    assert silence_id in listing
    assert "ended by" in listing
    assert "admin" in listing.split(silence_id, 1)[1]  # created by kim, ended by admin
    code, everything = vigil(incident_log, l2, "silences", "create", "-r", "all", "--json")
    assert code == 3
    assert "needs admin" in everything
    code, stats = vigil(incident_log, l1, "stats", "--json")
    assert json.loads(stats)["incidents"] == 2

    for token, args, message, exit_code in [
        (l1, ["show", "inc-missing"], "404: no incident 'inc-missing'", 3),
        (l1, ["ack", drifted], "403: role l1 may not act on incident an L2 incident", 3),
        (l1, ["retrain", drifted, "--reason", "x"], "needs l2 or higher", 3),
        ("not-a-token", ["list"], "401: unknown, revoked or expired token", 3),
        (l1, ["run", decay, "x", "-r", "y", "-p", "novalue"], "is not NAME=VALUE", 2),
        (l1, ["run", decay, "drift-diagnosis", "-r", "y"], "403", 3),
        (l1, ["tokens", "create", "x", "--role", "admin"], "403", 3),
    ]:
        code, output = vigil(incident_log, token, *args)
        assert code == exit_code, args
        assert message in " ".join(output.split()), (args, output)
    code, output = vigil("http://127.0.0.1:9", l1, "list")
    assert code == 4
    assert "cannot reach" in output


@pytest.mark.timeout(300)
async def test_vigil_tokens_lists_creates_and_revokes_and_a_revocation_survives_a_kill(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    async with running_incident_log(kafka_settings, tmp_path, admin_token=ADMIN) as process:
        url = process.url
        code, created = vigil(
            url,
            ADMIN,
            "create",
            "ana",
            "--role",
            "l2",
            "--expires-in-days",
            "7",
            "--json",
            group="tokens",
        )
        assert code == 0, created
        ana = json.loads(created)
        code, created = vigil(
            url, ADMIN, "create", "drift-detector", "--scope", "datasets:read", group="tokens"
        )
        assert code == 0, created
        assert "datasets:read" in created
        assert "vgl_" in created  # the token itself, shown once

        code, listing = vigil(url, ADMIN, "list", "--json", group="tokens")
        rows = json.loads(listing)
        assert sorted(row["name"] for row in rows) == ["ana", "drift-detector"]
        assert ana["token"] not in listing
        code, table = vigil(url, ADMIN, "list", group="tokens")
        assert code == 0
        assert ana["id"] in table
        code, own = vigil(url, ana["token"], "list", "--json", group="tokens")
        assert [row["name"] for row in json.loads(own)] == ["ana"]

        for token, args, message, exit_code in [
            (ADMIN, ["create", "x"], "exactly one of --role and --scope", 2),
            (ADMIN, ["create", "x", "--role", "l1", "--scope", "datasets:read"], "exactly one", 2),
            (ADMIN, ["create", "x", "--role", "l1", "--expires-in-days", "400"], "422", 3),
            (ADMIN, ["create", "x", "--scope", "datasets:write"], "422", 3),
            (ADMIN, ["revoke", "0123456789abcdef"], "404", 3),
            (ana["token"], ["create", "x", "--role", "l1"], "needs admin", 3),
            (ana["token"], ["list", "--name", "drift-detector"], "403", 3),
        ]:
            code, output = vigil(url, token, *args, group="tokens")
            assert code == exit_code, (args, output)
            assert message in " ".join(output.split()), (args, output)

        code, revoked = vigil(url, ana["token"], "revoke", ana["id"], group="tokens")
        assert code == 0, revoked
        assert f"token {ana['id']} of ana revoked" in revoked
        await process.kill()  # SIGKILL right after: the revocation was committed before the answer
        process.start()
        await process.wait_ready()
        code, output = vigil(url, ana["token"], "list", group="tokens")
        assert code == 3
        assert "401" in output
        code, listing = vigil(url, ADMIN, "list", "--all", "--json", group="tokens")
        states = {row["name"]: (row["state"], row["revoked_by"]) for row in json.loads(listing)}
        assert states == {"ana": ("revoked", "ana"), "drift-detector": ("active", None)}
        code, nested = vigil(url, ADMIN, "tokens", "list", "--json")
        assert code == 0
        assert [row["name"] for row in json.loads(nested)] == ["drift-detector"]  # same group


@pytest.mark.timeout(300)
async def test_vigil_opens_an_incident_by_hand_lists_its_runbooks_and_writes_its_review(
    incident_log: str, tmp_path: Path
) -> None:
    code, created = vigil(incident_log, ADMIN, "tokens", "create", "lee", "--role", "l1", "--json")
    assert code == 0, created
    l1 = json.loads(created)["token"]
    code, created = vigil(incident_log, ADMIN, "tokens", "create", "kim", "--role", "l2", "--json")
    l2 = json.loads(created)["token"]

    args = ["open", MODEL, "--summary", "answers inverted", "--version", "3"]
    args += ["--severity", "critical", "--idempotency-key", "ticket-1", "--json"]
    code, opened = vigil(incident_log, l1, *args)
    assert code == 0, opened
    incident = json.loads(opened)
    assert (incident["kind"], incident["severity"]) == ("manual", "critical")
    code, again = vigil(incident_log, l1, *args)
    assert json.loads(again)["id"] == incident["id"]  # the same key: the same incident
    code, refused = vigil(
        incident_log, ADMIN, "tokens", "create", "vi", "--role", "viewer", "--json"
    )
    viewer = json.loads(refused)["token"]
    code, output = vigil(incident_log, viewer, "open", MODEL, "--summary", "x")
    assert code == 3
    assert "needs l1 or higher" in " ".join(output.split())
    code, output = vigil(incident_log, l1, "open", "Bad Model", "--summary", "x")
    assert code == 3
    assert "422" in output

    code, choices = vigil(incident_log, l1, "runbooks", incident["id"], "--json")
    assert code == 0, choices
    found = json.loads(choices)
    assert found["kinds"] == ["manual"]
    listed = {r["name"] for r in found["applicable"] + found["others"]}
    assert "drift-diagnosis" in listed
    code, table = vigil(incident_log, l1, "runbooks", incident["id"])
    assert code == 0
    assert "runbooks for manual" in table
    code, output = vigil(
        incident_log, l2, "run", incident["id"], "drift-diagnosis", "-r", "why", "-p", "rows=10"
    )
    assert code == 3
    assert "below the minimum 50" in " ".join(output.split())
    code, output = vigil(
        incident_log, l2, "run", incident["id"], "drift-diagnosis", "-r", "why", "-p", "rows=500"
    )
    assert code == 0, output

    items = tmp_path / "items.md"
    items.write_text("- [ ] page the owners on manual incidents\n")
    code, saved = vigil(
        incident_log, l1, "review", incident["id"], "--action-items", str(items), "--json"
    )
    assert code == 0, saved
    assert json.loads(saved)["version"] == 1
    code, stale = vigil(
        incident_log, l2, "review", incident["id"], "--action-items", str(items), "--version", "0"
    )
    assert code == 0  # the same text again: the retry of version 1, no change
    items.write_text("other\n")
    code, stale = vigil(
        incident_log, l2, "review", incident["id"], "--action-items", str(items), "--version", "0"
    )
    assert code == 3
    assert "409" in stale
    code, document = vigil(incident_log, l1, "review", incident["id"])
    assert code == 0
    async with httpx.AsyncClient(base_url=incident_log) as http:
        api = await http.get(
            f"/incidents/{incident['id']}/review",
            params={"format": "markdown"},
            headers={"Authorization": f"Bearer {l1}"},
        )
    assert document == api.text + "\n"  # the CLI prints the API's own document
    assert "- [ ] page the owners on manual incidents" in document
    assert "drift-diagnosis" in document

    code, buckets = vigil(incident_log, l1, "stats", "--bucket", "hour", "--count", "2", "--json")
    assert code == 0, buckets
    hours = json.loads(buckets)
    assert len(hours) == 2
    assert hours[-1]["stats"]["incidents"] == 1
    code, table = vigil(incident_log, l1, "stats", "--bucket", "day")
    assert code == 0
    assert "per time bucket" in table

"""``vigil people`` and ``vigil oncall`` against a running incident log: every command, and
its refusals (a role too low, someone else's override, a time without a zone, unknown names)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import _add_service_commands, app
from services.runtime import KafkaSettings
from tests.processes import issue_tokens, running_incident_log

# About twenty commands against one process: more than a minute on a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

ADMIN = "cli-admin-token"
_add_service_commands()


@pytest.fixture
async def incident_log(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[str]:
    async with running_incident_log(kafka_settings, tmp_path, admin_token=ADMIN) as process:
        yield process.url


def vigil(url: str, token: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, list(args), env={"VIGIL_INCIDENT_LOG_URL": url, "VIGIL_TOKEN": token}
    )
    return result.exit_code, " ".join(result.output.split())  # as one line, however wrapped


async def test_people_and_on_call_commands_work_and_refuse_clearly(
    incident_log: str, tmp_path: Path
) -> None:
    tokens = await issue_tokens(incident_log, ADMIN, {"lee": "l1", "ana": "l2"})
    lee = tokens["lee"]

    assert vigil(incident_log, ADMIN, "people", "add", "ana", "--display-name", "Ana P")[0] == 0
    assert vigil(incident_log, ADMIN, "people", "add", "lee")[0] == 0
    code, added = vigil(
        incident_log, ADMIN, "people", "add-contact", "ana", "webhook", "http://127.0.0.1:9/h"
    )
    assert code == 0, added
    assert "signing secret (shown once): whsec_" in added
    code, listed = vigil(incident_log, ADMIN, "people", "list", "--json")
    (ana,) = [p for p in json.loads(listed) if p["name"] == "ana"]
    assert ana["contacts"][0]["secret"] is None  # never shown again
    code, refused = vigil(incident_log, lee, "people", "add", "mallory")
    assert code == 3
    assert "may not manage paging (needs admin or higher)" in refused
    code, refused = vigil(incident_log, ADMIN, "people", "add-contact", "ana", "email", "no-at")
    assert code == 3
    assert "e-mail address" in refused

    schedule = tmp_path / "ops.yaml"
    schedule.write_text(
        "tier: L1\n"
        "layers:\n"
        "  - {name: primary, members: [ana, lee], rotation: weekly, handoff_time: '09:00',\n"
        "     timezone: Europe/Berlin, start: 2026-01-05}\n"
    )
    code, shown = vigil(incident_log, ADMIN, "oncall", "set", "ops", str(schedule))
    assert code == 0, shown
    code, now = vigil(incident_log, lee, "oncall", "now", "--json")
    assert json.loads(now)[0]["schedule"] == "ops"
    at = "2026-01-06T12:00:00+00:00"
    code, then = vigil(incident_log, lee, "oncall", "now", "--at", at, "--json")
    assert json.loads(then)[0]["person"] == "ana"
    code, layers = vigil(incident_log, lee, "oncall", "show", "L1")
    assert code == 0
    assert "ana, lee" in layers
    assert "Mon 09:00 Europe/Berlin" in layers

    cover = ["--from", "2027-01-05T18:00:00+00:00", "--to", "2027-01-06T06:00:00+00:00"]
    code, covered = vigil(incident_log, lee, "oncall", "override", "ops", *cover)
    assert code == 0, covered
    assert "lee covers ops" in covered
    code, then = vigil(incident_log, lee, "oncall", "now", "--at", "2027-01-05T20:00:00Z", "--json")
    assert json.loads(then)[0]["person"] == "lee"
    code, refused = vigil(incident_log, lee, "oncall", "override", "ops", *cover, "--person", "ana")
    assert code == 3
    assert "may not manage paging (needs admin or higher)" in refused
    code, refused = vigil(
        incident_log, lee, "oncall", "override", "ops", "--from", "2026-01-06T18:00", "--to", "x"
    )
    assert code == 2
    code, refused = vigil(incident_log, lee, "oncall", "show", "nope")
    assert code == 3
    assert "no schedule 'nope'" in refused
    override_id = covered.split(":")[0].removeprefix("override ").strip()
    assert vigil(incident_log, lee, "oncall", "cancel", "ops", override_id)[0] == 0
    code, then = vigil(incident_log, lee, "oncall", "now", "--at", "2027-01-05T20:00:00Z", "--json")
    assert json.loads(then)[0]["person"] == "ana"
    assert vigil(incident_log, ADMIN, "people", "remove", "ana")[0] == 0
    assert vigil(incident_log, ADMIN, "people", "remove", "ana")[0] == 3

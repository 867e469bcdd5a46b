"""The stack's generated secrets: the runbook signing key is made once, kept, and shared by the
incident log and the runner only through their environment."""

from __future__ import annotations

import json
from pathlib import Path

from services.runtime import KafkaProfile, ServiceName
from services.runtime.request_signing import SigningKeys
from services.stack.stack import (
    Credentials,
    StackSettings,
    _service_specs,
    _shared_env,
    service_tokens,
)


def test_the_signing_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    first = Credentials.load_or_create(path)
    assert len(first.runbook_signing_key) == 64
    SigningKeys.parse(first.runbook_signing_key)  # long enough for the runner
    assert Credentials.load_or_create(path) == first
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_stack_from_before_signing_gets_a_key_and_keeps_its_admin_token(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"admin_token": "vgl_a", "runbook_token": "vgl_r"}))
    credentials = Credentials.load_or_create(path)
    assert credentials.admin_token == "vgl_a"
    stored = json.loads(path.read_text())
    assert stored["runbook_signing_key"] == credentials.runbook_signing_key
    assert "runbook_token" not in stored  # drawn afresh at each start now


async def test_only_the_incident_log_and_the_runner_are_given_the_signing_key(
    tmp_path: Path,
) -> None:
    credentials = Credentials("vgl_a", "k" * 64, "vgl_p")
    settings = StackSettings(state_dir=tmp_path)
    specs = await _service_specs(settings, credentials, service_tokens())
    given = {spec.name for spec in specs if "VIGIL_RUNBOOK_SIGNING_KEY" in spec.env}
    assert given == {ServiceName.INCIDENT_LOG, ServiceName.RUNBOOK_RUNNER}
    shared = _shared_env(settings, "127.0.0.1:1", KafkaProfile.EMBEDDED, tmp_path)
    assert "k" * 64 not in shared.values()
    assert shared["VIGIL_INCIDENT_LOG_CATALOG_PATH"].endswith("catalog.yaml")

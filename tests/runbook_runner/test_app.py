"""Building the runner: the catalogue is checked before anything starts; settings and the
environment scripts get."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from services.runbook_runner.app import create_app, vigil_environment
from services.runbook_runner.catalog import CatalogError
from services.runbook_runner.settings import Settings
from tests.factories import TEST_SIGNING_KEY
from tests.runbook_runner.support import CATALOG_PATH

KEY = SecretStr(TEST_SIGNING_KEY)


def test_the_runner_does_not_build_with_an_invalid_catalogue(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("runbooks:\n  - {name: x}\n")
    with pytest.raises(CatalogError, match=r"runbooks\[0\] \(x\)\.purpose: Field required"):
        create_app(Settings(catalog_path=catalog, state_dir=tmp_path, runbook_signing_key=KEY))


def test_the_runner_builds_with_the_test_catalogue(tmp_path: Path) -> None:
    app = create_app(
        Settings(catalog_path=CATALOG_PATH, state_dir=tmp_path, runbook_signing_key=KEY)
    )
    assert app.title == "Vigil runbook runner"


def test_the_runner_does_not_build_without_a_signing_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="VIGIL_RUNBOOK_SIGNING_KEY"):
        create_app(Settings(catalog_path=CATALOG_PATH, state_dir=tmp_path))


def test_the_runner_does_not_build_with_a_short_signing_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        create_app(
            Settings(
                catalog_path=CATALOG_PATH, state_dir=tmp_path, runbook_signing_key=SecretStr("k")
            )
        )


def test_the_signing_key_comes_from_the_shared_variable_and_never_reaches_scripts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VIGIL_RUNBOOK_SIGNING_KEY", f"{'n' * 40}, {TEST_SIGNING_KEY}")
    settings = Settings()
    assert settings.signing_keys().keys == (b"n" * 40, TEST_SIGNING_KEY.encode())
    assert TEST_SIGNING_KEY not in repr(settings.signing_keys())
    given = vigil_environment(settings)
    assert not any(TEST_SIGNING_KEY in value for value in given.values())
    assert "VIGIL_RUNBOOK_SIGNING_KEY" not in settings.script_env_allowlist


def test_scripts_get_the_service_addresses_and_the_token_when_one_is_set() -> None:
    settings = Settings(scorer_url="http://127.0.0.1:9999", runbook_token=SecretStr("t0k3n"))
    given = vigil_environment(settings)
    assert given["VIGIL_SCORER_URL"] == "http://127.0.0.1:9999"
    assert given["VIGIL_REGISTRY_URL"] == settings.registry_url
    assert given["VIGIL_INCIDENT_LOG_URL"] == settings.incident_log_url
    assert given["VIGIL_RUNBOOK_TOKEN"] == "t0k3n"
    assert "VIGIL_RUNBOOK_TOKEN" not in vigil_environment(Settings())


def test_settings_come_from_the_runners_environment_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VIGIL_RUNBOOK_RUNNER_SCRIPT_ENV_ALLOWLIST", '["PATH", "HOME"]')
    monkeypatch.setenv("VIGIL_RUNBOOK_RUNNER_MAX_CONCURRENT_RUNS", "2")
    monkeypatch.setenv("VIGIL_STATE_DIR", str(tmp_path))
    settings = Settings()
    assert settings.script_env_allowlist == ["PATH", "HOME"]
    assert settings.max_concurrent_runs == 2
    assert settings.http_port == 8750
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path / 'runbook-runner.db'}"
    assert settings.resolved_work_dir() == tmp_path / "runbook-runs"


def test_an_output_limit_too_large_for_one_kafka_message_is_refused() -> None:
    with pytest.raises(ValidationError, match="output_limit_bytes"):
        Settings(output_limit_bytes=1024 * 1024)

"""compose.yaml is checked by review (no Docker engine runs here) and by these tests: every
service's command and environment must match what the code reads."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from services.runtime import KafkaSettings, ServiceName

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
VIGIL = {
    name: service
    for name, service in COMPOSE["services"].items()
    if service.get("build") and service.get("command", [None])[0] == "run"
}
HEALTHCHECK_ONLY = {"PORT"}


def settings_class(service: ServiceName) -> type[BaseSettings]:
    module = importlib.import_module(f"{service.package}.settings")
    settings: type[BaseSettings] = module.Settings
    return settings


def environment_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads."""
    prefix = settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in settings.model_fields.items():
        if field_name == "kafka":
            names |= environment_names(KafkaSettings)
        elif isinstance(field.validation_alias, AliasChoices):
            names |= {
                choice for choice in field.validation_alias.choices if isinstance(choice, str)
            }
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def test_every_service_runs_and_nothing_else_runs_vigil() -> None:
    assert {ServiceName(name) for name in VIGIL} == set(ServiceName)
    for name, service in VIGIL.items():
        assert service["command"] == ["run", name]


@pytest.mark.parametrize("name", sorted(VIGIL))
def test_every_variable_given_to_a_service_is_one_it_reads(name: str) -> None:
    service = ServiceName(name)
    known = environment_names(settings_class(service)) | HEALTHCHECK_ONLY
    unknown = sorted(set(VIGIL[name]["environment"]) - known)
    assert not unknown, f"{name} does not read {unknown}"
    assert VIGIL[name]["environment"][f"{service.env_prefix}HTTP_HOST"] == "0.0.0.0"
    if "PORT" in VIGIL[name]["environment"]:
        assert int(VIGIL[name]["environment"]["PORT"]) == service.default_port


@pytest.mark.parametrize("name", sorted(VIGIL))
def test_every_service_waits_for_healthy_kafka_and_its_topics(name: str) -> None:
    depends = VIGIL[name]["depends_on"]
    assert depends["kafka"] == {"condition": "service_healthy"}
    assert depends["topics"] == {"condition": "service_completed_successfully"}
    assert "healthcheck" in VIGIL[name]
    database = VIGIL[name]["environment"].get(f"{ServiceName(name).env_prefix}DATABASE_URL")
    if database is not None:
        assert depends["postgres"] == {"condition": "service_healthy"}
        assert database.endswith(f"/vigil_{name.replace('-', '_')}")
        assert (
            f"CREATE DATABASE vigil_{name.replace('-', '_')};"
            in (ROOT / "deploy" / "postgres-init.sql").read_text()
        )


def test_secrets_come_from_the_environment_and_must_be_set() -> None:
    text = (ROOT / "compose.yaml").read_text()
    for secret in (
        "POSTGRES_PASSWORD",
        "VIGIL_ADMIN_TOKEN_SHA256",
        "VIGIL_SERVICE_TOKENS",
        "VIGIL_DRIFT_DETECTOR_TOKEN",
        "VIGIL_RUNBOOK_RUNNER_TOKEN",
        "VIGIL_RUNBOOK_SIGNING_KEY",
        "VIGIL_PROBE_TOKEN",
    ):
        assert f"${{{secret}:?" in text
    assert "password" not in text.lower().replace("postgres_password", "")


def test_the_consumer_groups_that_share_work_have_replicas() -> None:
    assert VIGIL["scorer"]["deploy"]["replicas"] >= 2
    assert VIGIL["incident-log"]["deploy"]["replicas"] >= 2
    assert VIGIL["drift-detector"]["deploy"]["replicas"] >= 2
    assert VIGIL["monitor"]["deploy"]["replicas"] >= 2
    assert VIGIL["runbook-runner"]["deploy"]["replicas"] >= 2
    assert VIGIL["retrainer"]["deploy"]["replicas"] >= 2
    # Replicas of the runner must not share an instance id (the default is unique per process).
    assert "VIGIL_RUNBOOK_RUNNER_INSTANCE" not in VIGIL["runbook-runner"]["environment"]


def test_replicated_services_keep_their_state_in_postgresql_created_by_the_init_script() -> None:
    init = (ROOT / "deploy" / "postgres-init.sql").read_text()
    for name, service in VIGIL.items():
        if service.get("deploy", {}).get("replicas", 1) < 2:
            continue
        urls = [v for k, v in service["environment"].items() if k.endswith("_DATABASE_URL")]
        for url in urls:
            assert url.startswith("postgresql://"), f"{name}: replicas cannot share {url}"
            assert f"CREATE DATABASE {url.rsplit('/', 1)[1]};" in init
            assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    stateful = {"monitor", "drift-detector", "incident-log", "retrainer"}
    for name in stateful:
        assert any(k.endswith("_DATABASE_URL") for k in VIGIL[name]["environment"]), name
    # The retrainer's artifacts, datasets and step cache are in its database: replicas share no
    # volume (one would have to be shared by every replica, or each would miss the others' files).
    assert "volumes" not in VIGIL["retrainer"]


def test_the_incident_log_and_the_runner_share_the_runbook_signing_key() -> None:
    for name in ("incident-log", "runbook-runner"):
        assert VIGIL[name]["environment"]["VIGIL_RUNBOOK_SIGNING_KEY"] == (
            "${VIGIL_RUNBOOK_SIGNING_KEY:?run vigil tokens generate-env}"
        )
    others = ("retrainer", "scorer", "monitor", "drift-detector")
    assert not any("VIGIL_RUNBOOK_SIGNING_KEY" in VIGIL[name]["environment"] for name in others)


def test_no_service_is_given_the_admin_token_and_each_only_its_own() -> None:
    tokens = {
        name: {value for value in service["environment"].values() if "TOKEN" in str(value)}
        for name, service in VIGIL.items()
    }
    assert not any("${VIGIL_ADMIN_TOKEN:" in value for given in tokens.values() for value in given)
    assert tokens["drift-detector"] == {
        "${VIGIL_DRIFT_DETECTOR_TOKEN:?run vigil tokens generate-env}"
    }
    assert tokens["runbook-runner"] == {
        "${VIGIL_RUNBOOK_RUNNER_TOKEN:?run vigil tokens generate-env}"
    }
    assert tokens["incident-log"] == {
        "${VIGIL_ADMIN_TOKEN_SHA256:?run vigil tokens generate-env}",
        "${VIGIL_SERVICE_TOKENS:?run vigil tokens generate-env}",
    }
    assert tokens["retrainer"] == set()
    for name in ("scorer", "monitor"):  # the probe's, shared by those two only
        assert tokens[name] == {"${VIGIL_PROBE_TOKEN:?run vigil tokens generate-env}"}


def test_generated_env_gives_each_service_of_compose_its_token_and_the_log_their_hashes() -> None:
    from typer.testing import CliRunner

    from services.incident_log.cli import tokens

    result = CliRunner().invoke(tokens, ["generate-env"])
    assert result.exit_code == 0, result.output
    values = dict(
        line.split("=", 1) for line in result.output.splitlines() if not line.startswith("#")
    )
    provisioned = json.loads(values["VIGIL_SERVICE_TOKENS"].strip("'"))
    assert {entry["name"] for entry in provisioned} == {"drift-detector", "runbook-runner"}
    for entry in provisioned:
        token = values[f"VIGIL_{entry['name'].replace('-', '_').upper()}_TOKEN"]
        assert entry["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    admin = values["VIGIL_ADMIN_TOKEN"]
    assert values["VIGIL_ADMIN_TOKEN_SHA256"] == hashlib.sha256(admin.encode()).hexdigest()
    assert len(values["VIGIL_RUNBOOK_SIGNING_KEY"]) == 64
    assert values["VIGIL_PROBE_TOKEN"].startswith("vgl_")

"""docs/configuration.md is the settings classes' own reference, kept in sync."""

from __future__ import annotations

from pathlib import Path

from services.configuration import reference

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_the_configuration_reference_matches_the_settings() -> None:
    assert DOC.read_text() == reference(), "docs/configuration.md is out of date: run `make docs`"


def test_the_reference_names_every_service_and_the_shared_variables() -> None:
    text = reference()
    for variable in (
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS",
        "VIGIL_STATE_DIR",
        "VIGIL_INCIDENT_LOG_DATABASE_URL",
        "VIGIL_RUNBOOK_RUNNER_CATALOG_PATH",
        "VIGIL_MONITOR_WINDOW_MAX_EVENTS",
    ):
        assert f"`{variable}`" in text

"""Service names, and how each maps to its package, consumer group and settings prefix."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ServiceName"]


class ServiceName(StrEnum):
    """The hyphenated service name: used as consumer group, ``producer`` field and process name."""

    SCORER = "scorer"
    MONITOR = "monitor"
    DRIFT_DETECTOR = "drift-detector"
    INCIDENT_LOG = "incident-log"
    RETRAINER = "retrainer"
    RUNBOOK_RUNNER = "runbook-runner"

    @property
    def package(self) -> str:
        """Import path of the service's package, e.g. ``services.drift_detector``."""
        return f"services.{self.value.replace('-', '_')}"

    @property
    def env_prefix(self) -> str:
        """Prefix of the service's environment settings, e.g. ``VIGIL_DRIFT_DETECTOR_``."""
        return f"VIGIL_{self.value.replace('-', '_').upper()}_"

    @property
    def group_id(self) -> str:
        """Kafka consumer group shared by all replicas of the service."""
        return self.value

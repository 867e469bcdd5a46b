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
    def default_port(self) -> int:
        """Loopback HTTP port of the service in the embedded stack."""
        return _DEFAULT_PORTS[self]

    @property
    def group_id(self) -> str:
        """Kafka consumer group shared by all replicas of the service."""
        return self.value

    @property
    def has_database(self) -> bool:
        """Whether the service keeps state in a database of its own (it has a migration history
        in ``services/<service>/migrations/``); the scorer keeps none."""
        return self is not ServiceName.SCORER


_DEFAULT_PORTS = {
    ServiceName.INCIDENT_LOG: 8700,
    ServiceName.RETRAINER: 8710,
    ServiceName.SCORER: 8720,
    ServiceName.MONITOR: 8730,
    ServiceName.DRIFT_DETECTOR: 8740,
    ServiceName.RUNBOOK_RUNNER: 8750,
}

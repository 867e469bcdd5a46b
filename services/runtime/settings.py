"""Settings every service shares; each service subclasses :class:`ServiceSettings`.

Values come from the environment (``VIGIL_KAFKA_*`` for the broker, ``VIGIL_STATE_DIR`` for the
state folder, ``VIGIL_<SERVICE>_*`` for the rest) or from keyword arguments in tests. Nothing here
is built at import time.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.topics import Topic

__all__ = ["KafkaProfile", "KafkaSettings", "ProcessedIdsRetention", "ServiceSettings"]


class KafkaProfile(StrEnum):
    """Client tuning: ``embedded`` for the local Tansu broker and tests, ``production`` for Kafka.

    See :mod:`services.runtime.kafka` for what each sets.
    """

    EMBEDDED = "embedded"
    PRODUCTION = "production"


class KafkaSettings(BaseSettings):
    """Where the broker is and how to talk to it."""

    model_config = SettingsConfigDict(env_prefix="VIGIL_KAFKA_", extra="ignore")

    bootstrap_servers: str = Field(
        default="127.0.0.1:19092", description="Comma-separated host:port list."
    )
    profile: KafkaProfile = Field(
        default=KafkaProfile.EMBEDDED, description="Client tuning profile."
    )
    topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        description=(
            "Prepended to every topic and consumer-group name: several Vigil deployments "
            "on one cluster."
        ),
    )

    def topic_name(self, topic: Topic) -> str:
        """Return the name a topic has on this cluster."""
        return f"{self.topic_prefix}{topic.value}"

    def group_name(self, group: str) -> str:
        """Return the name a consumer group has on this cluster."""
        return f"{self.topic_prefix}{group}"

    def logical_topic(self, name: str) -> Topic:
        """Return the contract topic behind a cluster topic name; ``ValueError`` if none."""
        if not name.startswith(self.topic_prefix):
            raise ValueError(f"topic {name!r} is outside prefix {self.topic_prefix!r}")
        return Topic(name.removeprefix(self.topic_prefix))


class ServiceSettings(BaseSettings):
    """What every service process needs: broker, state folder, HTTP address, logging."""

    model_config = SettingsConfigDict(extra="ignore", validate_by_name=True, validate_by_alias=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    state_dir: Path = Field(
        default=Path(".vigil"),
        validation_alias=AliasChoices("VIGIL_STATE_DIR"),
        description="Folder holding SQLite files, artifacts and logs.",
    )
    http_host: str = Field(default="127.0.0.1", description="Address of the HTTP endpoints.")
    http_port: int = Field(default=0, ge=0, le=65535, description="Port; 0 picks a free one.")
    http_max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest request body accepted (413 above; the registry's uploads have "
        "their own limit).",
    )
    http_max_json_depth: int = Field(
        default=64, ge=2, le=1000, description="Deepest nesting of a JSON body accepted (422)."
    )
    registry_url: str = Field(
        default="http://127.0.0.1:8710",
        validation_alias=AliasChoices("VIGIL_REGISTRY_URL"),
        description="HTTP API of the model registry (the retrainer).",
    )
    scorer_url: str = Field(
        default="http://127.0.0.1:8720",
        validation_alias=AliasChoices("VIGIL_SCORER_URL"),
        description="HTTP API of the scorer.",
    )
    monitor_url: str = Field(
        default="http://127.0.0.1:8730",
        validation_alias=AliasChoices("VIGIL_MONITOR_URL"),
        description="HTTP API of the monitor.",
    )
    drift_detector_url: str = Field(
        default="http://127.0.0.1:8740",
        validation_alias=AliasChoices("VIGIL_DRIFT_DETECTOR_URL"),
        description="HTTP API of the drift detector.",
    )
    incident_log_url: str = Field(
        default="http://127.0.0.1:8700",
        validation_alias=AliasChoices("VIGIL_INCIDENT_LOG_URL"),
        description="HTTP API of the incident log.",
    )
    consumer_backoff_initial_s: float = Field(
        default=0.2,
        gt=0,
        le=3600,
        description="First wait before a handler call that failed on an unavailable database, "
        "broker or service is retried (the event is held, never dead-lettered); it doubles, "
        "with jitter, on each failure in a row.",
    )
    consumer_backoff_max_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Longest wait between those retries.",
    )
    consumer_hold_s: float = Field(
        default=60.0,
        gt=0,
        le=240,
        description="How long a batch is held on such a failure before it is given back "
        "uncommitted and polled again (at most 240 s: Kafka evicts a member that has not polled "
        "for max.poll.interval.ms, 300 s).",
    )
    dead_letter_alert_interval_s: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="Least time between two dead_letters alerts about one source topic: the "
        "first dead letter raises one at once, later ones are counted into the next "
        "(services/runtime/dead_letter_alerts.py).",
    )
    self_watch_interval_s: float = Field(
        default=15.0,
        ge=0,
        le=3600,
        description="How often the service checks its own consumer lag and outbox and alerts "
        "about them (services/runtime/self_watch.py); 0 turns the self-watch off.",
    )
    consumer_lag_alert_records: int = Field(
        default=1000,
        ge=1,
        description="A consumer_lag alert is raised when the service's consumer group is more "
        "than this many records behind the end of one of its topics ...",
    )
    consumer_lag_alert_after_s: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="... at every check for this long; it recovers after two checks at or "
        "below the threshold.",
    )
    outbox_age_alert_s: float = Field(
        default=120.0,
        gt=0,
        le=86400,
        description="An outbox_stalled alert is raised when the oldest unpublished outbox row "
        "is older than this; an outbox_poison alert whenever outbox_poison holds rows.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe log level written."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text, or one JSON object per line."
    )

    @model_validator(mode="after")
    def _backoff_within_cap(self) -> ServiceSettings:
        if self.consumer_backoff_initial_s > self.consumer_backoff_max_s:
            raise ValueError("consumer_backoff_initial_s must not exceed consumer_backoff_max_s")
        return self


class ProcessedIdsRetention(BaseSettings):
    """Mixed into the settings of a service that records handled event ids one row per event."""

    processed_ids_retention_seconds: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="How long handled event ids are kept to discard redeliveries and replays "
        "(match the topics' retention).",
    )

"""The retrainer's settings (environment prefix ``VIGIL_RETRAINER_``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from contracts.alerts import AlertKind, Severity
from services.retrainer.retraining.gate import GatePolicy
from services.retrainer.retraining.triggers import AlertPolicy
from services.runtime import DEFAULT_TRUSTED_TYPES, ServiceName, ServiceSettings
from services.runtime.settings import ProcessedIdsRetention

__all__ = ["MAX_CONTENT_BYTES", "Settings"]


MAX_CONTENT_BYTES = 1_000_000_000
"""The largest content the retrainer's database can hold as one value (``retrainer_content``)."""


class Settings(ServiceSettings, ProcessedIdsRetention):
    """Where the registry keeps its state, and how retraining is triggered, gated and rolled out."""

    model_config = SettingsConfigDict(env_prefix=ServiceName.RETRAINER.env_prefix)

    http_port: int = Field(
        default=ServiceName.RETRAINER.default_port, ge=0, le=65535, description="HTTP port."
    )
    max_upload_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1024 * 1024,
        le=MAX_CONTENT_BYTES,
        description="Largest registration body (artifact and datasets) accepted (413 above); "
        "read only after the caller's token is checked. At most 1,000,000,000: an artifact or a "
        "dataset is one database value, and that is SQLite's limit (PostgreSQL's is 1 GiB).",
    )
    database_url: str | None = Field(
        default=None,
        description="sqlite:///… or postgresql://…; default: a SQLite file in the state folder.",
    )
    consumer_group: str | None = Field(
        default=None, description="Kafka consumer group (default: the service name)."
    )

    # Triggers
    cooldown_seconds: float = Field(
        default=600.0, ge=0, description="Least time between the end of a run and the next start."
    )
    schedule_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often maintenance schedules are checked."
    )
    retrain_on_alerts: bool = Field(
        default=False, description="Retrain on alerts (off: incidents drive retraining)."
    )
    retrain_alert_kinds: list[AlertKind] = Field(
        default_factory=lambda: [AlertKind.METRIC_DECAY, AlertKind.DATA_DRIFT],
        description="Alert kinds that retrain when the alert policy is on.",
    )
    retrain_alert_severity: Severity = Field(
        default=Severity.CRITICAL, description="Lowest severity that retrains."
    )

    trusted_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TRUSTED_TYPES),
        validation_alias=AliasChoices("VIGIL_MODEL_TRUSTED_TYPES"),
        description="Types a model artifact (skops file) may hold beyond skops' own trusted "
        "ones, as a JSON list of dotted names (VIGIL_MODEL_TRUSTED_TYPES, shared by the registry "
        "and the scorer). The default adds scikit-learn's tree ensembles, histogram gradient "
        "boosting, nearest neighbours and perceptrons; an artifact holding any other type is "
        "refused. Name a type here only if loading it cannot run code.",
    )

    # Data
    max_live_examples: int = Field(
        default=50_000, ge=0, description="Labelled live examples kept per model (newest)."
    )
    unlabelled_ttl_hours: float = Field(
        default=72.0, gt=0, description="How long a prediction waits for its label."
    )

    # Worker
    worker_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the worker looks for due runs."
    )
    lease_seconds: float = Field(
        default=120.0, gt=0, description="A running run not renewed this long is taken over."
    )

    # Gate
    gate_margin: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        description="How much worse than the champion is tolerated (for mae and rmse: this "
        "share of the champion's value).",
    )
    gate_confidence: float = Field(
        default=0.95, gt=0.5, lt=1, description="Confidence of the bootstrap interval."
    )
    gate_resamples: int = Field(default=2000, ge=100, description="Bootstrap resamples.")
    gate_seed: int = Field(default=0, ge=0, description="Seed of the bootstrap.")
    gate_min_live_rows: int = Field(
        default=30, ge=1, description="Held-out live rows needed to report live figures."
    )
    gate_min_unseen_rows: int = Field(
        default=50,
        ge=1,
        description="Held-out rows new to the champion needed to judge on those alone.",
    )

    # Approval and canary
    promotion_ttl_hours: float = Field(
        default=24.0, gt=0, description="A promotion request lapses after this long."
    )
    canary_share: float = Field(
        default=0.1, gt=0, le=0.5, description="Share of traffic an approved candidate gets."
    )
    canary_min_labels: int = Field(
        default=0,
        ge=0,
        description="Labels each side needs to promote (the monitor's min_samples applies too).",
    )
    governance_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often expiries and withdrawn canaries are checked."
    )
    identity_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="How long an identity from /whoami is trusted: a token revoked at the "
        "incident log still works here for at most this long (docs/security.md).",
    )

    @property
    def database(self) -> str:
        """The database URL in use."""
        return self.database_url or f"sqlite:///{self.state_dir / 'retrainer.db'}"

    @property
    def cooldown(self) -> timedelta:
        """Least time between runs of one model."""
        return timedelta(seconds=self.cooldown_seconds)

    @property
    def lease(self) -> timedelta:
        """How long a running run's claim holds without renewal."""
        return timedelta(seconds=self.lease_seconds)

    @property
    def unlabelled_ttl(self) -> timedelta:
        """How long a prediction waits for its label."""
        return timedelta(hours=self.unlabelled_ttl_hours)

    @property
    def promotion_ttl(self) -> timedelta:
        """How long a promotion request waits for a decision."""
        return timedelta(hours=self.promotion_ttl_hours)

    def gate_policy(self) -> GatePolicy:
        """The validation gate's thresholds."""
        return GatePolicy(
            margin=self.gate_margin,
            confidence=self.gate_confidence,
            resamples=self.gate_resamples,
            seed=self.gate_seed,
            min_live_rows=self.gate_min_live_rows,
            min_unseen_rows=self.gate_min_unseen_rows,
        )

    def alert_policy(self) -> AlertPolicy:
        """When alerts retrain."""
        return AlertPolicy(
            enabled=self.retrain_on_alerts,
            kinds=frozenset(self.retrain_alert_kinds),
            min_severity=self.retrain_alert_severity,
        )

"""The monitor's settings: ``VIGIL_MONITOR_*`` from the environment, or keyword arguments."""

from __future__ import annotations

from datetime import timedelta
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.monitor.domain import MonitorPolicy
from services.monitor.windows import WindowPolicy
from services.runtime.names import ServiceName
from services.runtime.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    """How the monitor joins, windows, judges, compares and probes."""

    # ``VIGIL_MONITOR_WINDOW_SECONDS=none`` turns event-time windows off (likewise other options).
    model_config = SettingsConfigDict(
        env_prefix=ServiceName.MONITOR.env_prefix, env_parse_none_str="none"
    )

    http_port: int = Field(default=ServiceName.MONITOR.default_port, ge=0, le=65535)
    probe_token: SecretStr | None = Field(
        default=None,
        description="Token the probe sends to the scorer so it may use 'vigil-probe:' request "
        "ids (the scorer's VIGIL_SCORER_PROBE_TOKEN). Unset: the scorer refuses the probe.",
    )
    database_url: str | None = Field(
        default=None,
        description="Where the monitor keeps its state; default: monitor.db in the state folder.",
    )
    consumer_group: str = Field(
        default=ServiceName.MONITOR.group_id, min_length=1, description="Kafka consumer group."
    )
    consumer_max_records: int = Field(
        default=2_000,
        ge=1,
        description="Most records handled per poll; a poll's state change is one transaction.",
    )
    join_ttl_seconds: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="How long (event time) a prediction waits for its label, or a label for its "
        "prediction, before it expires unjoined.",
    )
    event_time_future_tolerance_seconds: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="How far past the monitor's wall clock an event may be dated (clock skew). "
        "A later event, or one further behind its model's event-time clock than the join TTL "
        "(or the window, if longer), is dead-lettered and never moves the clock.",
    )
    join_max_pending: int = Field(
        default=100_000, ge=1, description="Most predictions and labels waiting at once."
    )
    window_max_events: int | None = Field(
        default=500,
        ge=1,
        description="A window closes once it holds this many predictions or labelled "
        "predictions (none: no count windows).",
    )
    window_seconds: float | None = Field(
        default=300.0,
        gt=0,
        description="A window closes at the end of its event-time bucket of this length "
        "(none: no event-time windows).",
    )
    min_labelled: int = Field(
        default=30, ge=1, description="Labelled predictions a window needs to judge a metric."
    )
    min_predictions: int = Field(
        default=30, ge=1, description="Predictions a window needs to judge the low-confidence rate."
    )
    hysteresis: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Share of the baseline-to-threshold gap a metric must win back to recover.",
    )
    recovery_windows: int | None = Field(
        default=None,
        ge=1,
        description="Windows a recovery must last (none: the version's consecutive_windows).",
    )
    comparison_min_samples: int = Field(
        default=200, ge=1, description="Observations each side needs before a verdict."
    )
    comparison_alpha: float = Field(default=0.05, gt=0, lt=1, description="Significance level.")
    comparison_max_samples: int = Field(
        default=5_000, ge=1, description="Newest labelled outcomes per side kept for comparisons."
    )
    comparison_resamples: int = Field(
        default=999,
        ge=99,
        description="Resamples of the permutation test (F1, ROC AUC, per-class and macro metrics).",
    )
    probes_enabled: bool = Field(
        default=True, description="Run each deployed model's golden-set probe on its schedule."
    )
    probe_tick_seconds: float = Field(
        default=1.0, gt=0, description="How often the probe scheduler looks for due probes."
    )
    handled_retention_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="How long handled event ids are kept in the database.",
    )
    handled_memory: int = Field(
        default=200_000,
        ge=1_000,
        description="Newest handled event ids held in memory to skip redeliveries.",
    )
    seed: int = Field(
        default=0,
        description="Seed of the permutation test's and the estimate band's random generator.",
    )
    estimation: bool = Field(
        default=True,
        description="Estimate binary classifiers' metrics from scores alone, regressors' mae and "
        "rmse from features, and raise estimated_decay on the key metric's estimate "
        "(docs/monitor.md).",
    )
    calibration_rows: int = Field(
        default=300,
        ge=50,
        description="Labelled outcomes of a version its score calibration (a regressor's loss "
        "models) is fitted on.",
    )
    estimation_samples: int = Field(
        default=500, ge=10, description="Label vectors sampled per window for the estimate's band."
    )
    residual_reference_rows: int = Field(
        default=300,
        ge=30,
        description="A regressor version's first labelled outcomes whose residuals (truth - "
        "prediction) its windows are tested against for residual_drift (docs/monitor.md).",
    )

    @model_validator(mode="after")
    def _a_window_closes(self) -> Self:
        if self.window_max_events is None and self.window_seconds is None:
            raise ValueError("set window_max_events, window_seconds, or both")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the state folder."""
        return self.database_url or f"sqlite:///{self.state_dir / 'monitor.db'}"

    def policy(self) -> MonitorPolicy:
        """Return the domain's policy from these settings."""
        return MonitorPolicy(
            window=WindowPolicy(
                max_events=self.window_max_events,
                span=None
                if self.window_seconds is None
                else timedelta(seconds=self.window_seconds),
            ),
            join_ttl=timedelta(seconds=self.join_ttl_seconds),
            join_max_pending=self.join_max_pending,
            min_labelled=self.min_labelled,
            min_predictions=self.min_predictions,
            hysteresis=self.hysteresis,
            recovery_windows=self.recovery_windows,
            comparison_min_samples=self.comparison_min_samples,
            comparison_alpha=self.comparison_alpha,
            comparison_max_samples=self.comparison_max_samples,
            comparison_resamples=self.comparison_resamples,
            future_tolerance=timedelta(seconds=self.event_time_future_tolerance_seconds),
            estimation=self.estimation,
            calibration_rows=self.calibration_rows,
            estimation_samples=self.estimation_samples,
            residual_reference_rows=self.residual_reference_rows,
        )

"""Settings of the drift detector (environment: ``VIGIL_DRIFT_DETECTOR_*``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from contracts.drift import Correction
from contracts.monitoring import WindowKind
from services.drift_detector.detector import DriftPolicy, NumericTest
from services.drift_detector.sequential import SequentialPolicy
from services.drift_detector.tracking import TrackerConfig
from services.drift_detector.windows import WindowSpec
from services.runtime.names import ServiceName
from services.runtime.settings import ServiceSettings

__all__ = ["SERVICE", "Settings"]

SERVICE = ServiceName.DRIFT_DETECTOR


class Settings(ServiceSettings):
    """How windows are cut and judged, and how alerts open and close."""

    model_config = SettingsConfigDict(env_prefix=SERVICE.env_prefix)

    http_port: int = Field(default=SERVICE.default_port, ge=0, le=65535)
    service_token: SecretStr | None = Field(
        default=None,
        description="This service's incident-log token, scope datasets:read: reads the "
        "training data reference profiles are built from.",
    )
    database_url: str | None = Field(
        default=None,
        description="Where episode states are kept; default: drift-detector.db in the state "
        "folder. Replicas share one PostgreSQL database (the next owner of a model's partition "
        "takes its episodes over).",
    )
    window_kind: WindowKind = Field(
        default=WindowKind.COUNT, description="Close windows by row count or by event time."
    )
    window_size: int = Field(default=1000, ge=2, description="Rows per count window.")
    window_seconds: float = Field(default=300.0, gt=0, description="Seconds per time window.")
    event_time_future_tolerance_seconds: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="With time windows: how far past the wall clock a prediction may be dated "
        "(clock skew). A later one, or one from before the bucket preceding the open one, is "
        "dead-lettered and never moves the windows' clock.",
    )
    min_window_rows: int = Field(
        default=100, ge=2, description="Fewest rows a window is tested with."
    )
    alpha: float = Field(default=0.01, gt=0, lt=1, description="Family-wise significance level.")
    correction: Correction = Field(
        default=Correction.BONFERRONI, description="Correction across a window's hypotheses."
    )
    numeric_test: NumericTest = Field(
        default=NumericTest.CRAMERVONMISES, description="Test deciding numeric distributions."
    )
    numeric_effect_floor: float = Field(
        default=0.05, ge=0, description="Smallest Wasserstein / reference std called drift."
    )
    categorical_effect_floor: float = Field(
        default=0.05, ge=0, description="Smallest Jensen-Shannon distance called drift."
    )
    missing_rate_floor: float = Field(
        default=0.01, ge=0, description="Smallest change in the missing share called drift."
    )
    unseen_level_floor: float = Field(
        default=0.005, ge=0, description="Smallest share of unseen levels called drift."
    )
    joint_test: bool = Field(default=True, description="Run the joint location test.")
    joint_effect_floor: float = Field(
        default=0.05, ge=0, description="Smallest Mahalanobis distance called drift."
    )
    sequential: bool = Field(default=True, description="Run the sequential (CUSUM) mode.")
    sequential_allowance: float = Field(
        default=0.1, gt=0, description="Per-row shift (sd) the CUSUM ignores."
    )
    sequential_false_alarm_rows: float = Field(
        default=1_000_000.0, ge=100, description="Expected rows between sequential false alarms."
    )
    score_reference_rows: int = Field(
        default=1000, ge=2, description="First live scores of a version taken as its reference."
    )
    max_reference_rows: int = Field(
        default=5000, ge=2, description="Training rows kept in a profile (a uniform sample)."
    )
    raise_after_windows: int = Field(
        default=2,
        ge=1,
        description=(
            "Consecutive drifted windows that open an episode (a window is a false alarm with "
            "probability alpha; two in a row, alpha squared)."
        ),
    )
    recover_after_windows: int = Field(
        default=3, ge=1, description="Consecutive clean windows that close it."
    )

    def policy(self) -> DriftPolicy:
        """The detector's policy."""
        return DriftPolicy(
            alpha=self.alpha,
            correction=self.correction,
            numeric_test=self.numeric_test,
            numeric_effect_floor=self.numeric_effect_floor,
            categorical_effect_floor=self.categorical_effect_floor,
            missing_rate_floor=self.missing_rate_floor,
            unseen_level_floor=self.unseen_level_floor,
            joint_test=self.joint_test,
            joint_effect_floor=self.joint_effect_floor,
            min_rows=self.min_window_rows,
        )

    def tracker_config(self) -> TrackerConfig:
        """How each model version's stream is judged."""
        return TrackerConfig(
            window=WindowSpec(
                kind=self.window_kind,
                size=self.window_size,
                duration_s=self.window_seconds,
                min_rows=self.min_window_rows,
            ),
            policy=self.policy(),
            sequential=(
                SequentialPolicy(
                    allowance=self.sequential_allowance,
                    false_alarm_rows=self.sequential_false_alarm_rows,
                )
                if self.sequential
                else None
            ),
            score_reference_rows=self.score_reference_rows,
            raise_after=self.raise_after_windows,
            recover_after=self.recover_after_windows,
            future_tolerance=timedelta(seconds=self.event_time_future_tolerance_seconds),
        )

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the state folder."""
        return self.database_url or f"sqlite:///{self.state_dir / 'drift-detector.db'}"

"""The scorer's settings (environment prefix ``VIGIL_SCORER_``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.runtime.model_artifacts import DEFAULT_TRUSTED_TYPES
from services.runtime.names import ServiceName
from services.runtime.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    """Batch size, how the scorer keeps in step with the registry, and where it listens."""

    model_config = SettingsConfigDict(env_prefix=ServiceName.SCORER.env_prefix)

    http_port: int = Field(
        default=ServiceName.SCORER.default_port, ge=0, le=65535, description="HTTP port."
    )
    max_records: int = Field(
        default=500, ge=1, description="Most requests taken from Kafka in one batch."
    )
    registry_sync_seconds: float = Field(
        default=30.0, gt=0, description="How often all deployments are re-read from the registry."
    )
    registry_wait_seconds: float = Field(
        default=60.0, gt=0, description="How long start-up waits for the registry to answer."
    )
    unknown_model_recheck_seconds: float = Field(
        default=1.0,
        ge=0,
        description="A model the scorer does not know is looked up in the registry at most this "
        "often (a deployment may be announced after the first requests for it).",
    )
    identity_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="How long an identity from the incident log's /whoami is trusted for POST "
        "/labels: a revoked token still sends labels for at most this long (docs/security.md).",
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
    probe_token: SecretStr | None = Field(
        default=None,
        description="Token the monitor's probe sends to use 'vigil-probe:' request ids (the "
        "monitor's VIGIL_MONITOR_PROBE_TOKEN). Unset: no caller may send them.",
    )

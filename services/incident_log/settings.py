"""Settings of the incident log (environment: ``VIGIL_INCIDENT_LOG_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.incident_log.permissions import Role
from services.runtime.names import ServiceName
from services.runtime.settings import ProcessedIdsRetention, ServiceSettings

__all__ = ["ServiceToken", "Settings"]

SERVICE = ServiceName.INCIDENT_LOG


class ServiceToken(BaseModel):
    """A token a component of Vigil calls the API with (the runbook runner's scripts, say)."""

    name: str = Field(min_length=1)
    role: Role
    token: SecretStr


class Settings(ServiceSettings, ProcessedIdsRetention):
    """Where the incident log keeps its state and policy, and how it runs."""

    model_config = SettingsConfigDict(env_prefix=SERVICE.env_prefix)

    http_port: int = Field(default=SERVICE.default_port, ge=0, le=65535)
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: a SQLite file in the state folder.",
    )
    policy_path: Path = Field(
        default=Path("runbooks/routing.yaml"), description="Routing policy (YAML)."
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="A bootstrap token with the admin role (create the others with it).",
    )
    service_tokens: list[ServiceToken] = Field(
        default_factory=list,
        description="Tokens of Vigil's own components (JSON list of {name, role, token}).",
    )
    timer_interval_s: float = Field(
        default=1.0, gt=0, description="How often due timers are looked for."
    )
    run_outbox_relay: bool = Field(
        default=True,
        description="Publish the outbox from this process (turn off to relay from elsewhere).",
    )

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the state folder."""
        return self.database_url or f"sqlite:///{self.state_dir / 'incident-log.db'}"

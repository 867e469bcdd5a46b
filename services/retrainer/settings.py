"""The retrainer's settings (environment prefix ``VIGIL_RETRAINER_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.runtime import ServiceName, ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    """Where the registry keeps its database, artifacts and datasets, and where it listens."""

    model_config = SettingsConfigDict(env_prefix=ServiceName.RETRAINER.env_prefix)

    http_port: int = Field(
        default=ServiceName.RETRAINER.default_port, ge=0, le=65535, description="HTTP port."
    )
    database_url: str | None = Field(
        default=None,
        description="sqlite:///… or postgresql://…; default: a SQLite file in the state folder.",
    )

    @property
    def database(self) -> str:
        """The database URL in use."""
        return self.database_url or f"sqlite:///{self.state_dir / 'retrainer.db'}"

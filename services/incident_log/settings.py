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
    acts_for_others: bool = Field(
        default=False,
        description=(
            "The component acts for people and may say for whom (the runbook runner asks for a "
            "retrain on behalf of the person who ran the runbook)."
        ),
    )


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
        description=(
            "Tokens of Vigil's own components (JSON list of {name, role, token, "
            "acts_for_others}; acts_for_others: may ask on a person's behalf, the runner's)."
        ),
    )
    timer_interval_s: float = Field(
        default=1.0, gt=0, description="How often due timers are looked for."
    )
    run_outbox_relay: bool = Field(
        default=True,
        description="Publish the outbox from this process (turn off to relay from elsewhere).",
    )

    public_url: str = Field(
        default=f"http://127.0.0.1:{SERVICE.default_port}",
        description="Where people reach this incident log: the base of console and acknowledge "
        "links in pages. When it is https, the console's cookies are marked Secure (TLS may end "
        "at a proxy in front); its origin may post the console's sign-in form.",
    )
    run_pager: bool = Field(
        default=True,
        description="Deliver pages from this process (turn off to page from elsewhere).",
    )
    page_retry_base_seconds: float = Field(
        default=5, gt=0, le=3600, description="First retry delay of a failed page (doubles)."
    )
    page_retry_cap_seconds: float = Field(
        default=600, gt=0, le=86400, description="Longest delay between retries of a page."
    )
    page_give_up_after_seconds: float = Field(
        default=3600,
        gt=0,
        le=7 * 86400,
        description="Retry a page this long before marking it failed.",
    )
    page_attempt_timeout_seconds: float = Field(
        default=10, gt=0, le=300, description="How long one delivery attempt may take."
    )
    pages_per_window: int = Field(
        default=5,
        ge=1,
        le=10_000,
        description="Pages one person gets per rate window; the rest wait for one digest.",
    )
    page_rate_window_seconds: float = Field(
        default=600, gt=0, le=86400, description="The rate window of `pages_per_window`."
    )
    ack_link_ttl_hours: float = Field(
        default=24, gt=0, le=24 * 30, description="How long an acknowledge link works."
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP relay for e-mail pages (none: e-mail contacts fail)."
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP relay port.")
    smtp_sender: str = Field(default="vigil@localhost", description="From address of e-mail pages.")
    smtp_username: str | None = Field(default=None, description="SMTP login, if needed.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection to TLS.")

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the state folder."""
        return self.database_url or f"sqlite:///{self.state_dir / 'incident-log.db'}"

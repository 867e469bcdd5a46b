"""Settings of the incident log (environment: ``VIGIL_INCIDENT_LOG_*``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.incident_log.permissions import Role
from services.runtime.names import ServiceName
from services.runtime.scopes import Scope
from services.runtime.settings import ProcessedIdsRetention, ServiceSettings

__all__ = ["ServiceToken", "Settings"]

SERVICE = ServiceName.INCIDENT_LOG


class ServiceToken(BaseModel):
    """A token one of Vigil's components calls the API with: its scopes (a service) or a role,
    and the token or only its SHA-256 (so the incident log's environment need not hold it)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Role | None = None
    scopes: list[Scope] | None = Field(default=None, min_length=1)
    token: SecretStr | None = None
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _exactly_one_each(self) -> Self:
        if (self.role is None) == (self.scopes is None):
            raise ValueError("give exactly one of role and scopes")
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of token and token_sha256")
        return self

    def digest(self) -> str:
        """The token's SHA-256."""
        if self.token_sha256 is not None:
            return self.token_sha256
        assert self.token is not None
        return hashlib.sha256(self.token.get_secret_value().encode()).hexdigest()


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
    admin_token_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="The bootstrap admin token given only by its SHA-256 (instead of "
        "ADMIN_TOKEN), so this environment does not hold it.",
    )
    service_tokens: list[ServiceToken] = Field(
        default_factory=list,
        description="Tokens of Vigil's own components, stored at start (JSON list of {name, "
        "scopes or role, token or token_sha256}); a new one for a name revokes the one before.",
    )
    catalog_path: Path = Field(
        default=Path("runbooks/catalog.yaml"),
        description="The runner's runbook catalogue: which runbooks need a second person's "
        "approval, their tiers, the alert kinds they answer and the parameters a person "
        "supplies (the console's runbook picker; runs by hand are checked against it).",
    )
    runbook_signing_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("VIGIL_RUNBOOK_SIGNING_KEY"),
        description="Key(s) runbook requests are signed with for the runner, comma-separated, "
        "the one to sign with first (VIGIL_RUNBOOK_SIGNING_KEY, shared with the runbook runner; "
        "each at least 32 characters). Unset: requests go out unsigned and the runner refuses "
        "them.",
    )
    runbook_request_validity_seconds: float = Field(
        default=24 * 3600.0,
        ge=60,
        le=7 * 24 * 3600,
        description="How long after it is asked a signed runbook request may be acted on (its "
        "expires_at); keep it above the runner's max queue age, so a runner that was down "
        "reports a backlog expired instead of dead-lettering it.",
    )
    runbook_approval_timeout_seconds: float = Field(
        default=3600.0,
        gt=0,
        le=7 * 24 * 3600,
        description="How long a runbook run that needs approval waits for a second person "
        "before it expires unrun.",
    )
    timer_interval_s: float = Field(
        default=1.0, gt=0, description="How often due timers are looked for."
    )
    consumer_max_records: int = Field(
        default=2_000,
        ge=1,
        le=100_000,
        description="Most records handled per poll; a poll's alerts are triaged in one "
        "transaction, whose reads cost about the same for 500 alerts as for 2,000.",
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

    def admin_sha256(self) -> str | None:
        """The bootstrap admin token's SHA-256, however it was given."""
        if self.admin_token is not None:
            return hashlib.sha256(self.admin_token.get_secret_value().encode()).hexdigest()
        return self.admin_token_sha256

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the state folder."""
        return self.database_url or f"sqlite:///{self.state_dir / 'incident-log.db'}"

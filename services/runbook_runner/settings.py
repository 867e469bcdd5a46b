"""Settings of the runbook runner (environment: ``VIGIL_RUNBOOK_RUNNER_*``)."""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.runtime.names import ServiceName
from services.runtime.request_signing import SigningKeys
from services.runtime.settings import ServiceSettings

__all__ = ["SERVICE", "Settings", "unique_instance"]

SERVICE = ServiceName.RUNBOOK_RUNNER

_KIB = 1024


def unique_instance() -> str:
    """An id no other runner process has: host name, process id and a random suffix (two
    runners on one host, or a restarted one reusing a process id, still differ).

    >>> bool(re.fullmatch(r"[A-Za-z0-9._-]{1,64}", unique_instance()))
    True
    """
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


class Settings(ServiceSettings):
    """Where the runner keeps its state and catalogue, and how it runs scripts."""

    model_config = SettingsConfigDict(env_prefix=SERVICE.env_prefix)

    http_port: int = Field(default=SERVICE.default_port, ge=0, le=65535)
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file in the state folder."
    )
    catalog_path: Path = Field(
        default=Path("runbooks/catalog.yaml"), description="The runbook catalogue (YAML)."
    )
    instance: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description=(
            "Id of this runner, recorded as the owner of the runs it executes; default: unique "
            "per process (host name, process id, random suffix). Set it only to a name no other "
            "live runner on the database has (a pod's stable name, say): a runner starting "
            "reports the runs its id left in progress abandoned at once, where otherwise they "
            "wait for their lease to lapse."
        ),
    )
    run_lease_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description=(
            "How long a run stays a runner's own without renewal (renewed every third of it). "
            "Once it lapses, any runner on the database reports the run abandoned: a dead "
            "runner's runs are reported within about this long. Keep it well above the clock "
            "skew between the runners' hosts."
        ),
    )
    max_concurrent_runs: int = Field(
        default=4, ge=1, le=64, description="Runs executing at once in this process."
    )
    output_limit_bytes: int = Field(
        default=64 * _KIB,
        ge=_KIB,
        le=64 * _KIB,
        description=(
            "Bytes kept of each output stream (head and tail). At most 64 KiB, so that a run's "
            "three streams fit one Kafka message under the default 1 MB limit."
        ),
    )
    kill_grace_seconds: float = Field(
        default=2.0, gt=0, le=60, description="Between SIGTERM and SIGKILL at a timeout."
    )
    stop_grace_seconds: float = Field(
        default=10.0, ge=0, le=300, description="How long a stopping runner lets runs finish."
    )
    max_queue_age_seconds: float = Field(
        default=1800.0,
        gt=0,
        le=7 * 24 * 3600,
        description=(
            "A run asked for longer ago than this (by the incident log's clock) when the runner "
            "gets to it is not started but reported expired: the situation it was meant for "
            "has moved on, and the incident has escalated on its timers meanwhile."
        ),
    )
    poll_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often waiting runs are looked for without a wake-up."
    )
    script_env_allowlist: list[str] = Field(
        default_factory=lambda: ["PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH"],
        description="Variables of the runner's environment a script inherits; nothing else.",
    )
    runbook_token: SecretStr | None = Field(
        default=None,
        description="This service's incident-log token (scopes incidents:read, "
        "incidents:report, retrain:request, registry:rollback, datasets:read), given to scripts "
        "as VIGIL_RUNBOOK_TOKEN.",
    )
    runbook_signing_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("VIGIL_RUNBOOK_SIGNING_KEY"),
        description=(
            "Key(s) the incident log signs runbook requests with, comma-separated, the current "
            "one first (VIGIL_RUNBOOK_SIGNING_KEY, shared with the incident log; each at least "
            "32 characters). Required: the runner runs only requests signed with one of them."
        ),
    )
    request_clock_skew_seconds: float = Field(
        default=300.0,
        ge=0,
        le=3600,
        description="How far in the future a signed request's time may lie (clocks differ).",
    )
    work_dir: Path | None = Field(
        default=None,
        description="Where each run gets a fresh working folder; default: in the state folder.",
    )
    run_outbox_relay: bool = Field(
        default=True,
        description="Publish the outbox from this process (turn off to relay from elsewhere).",
    )

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the state folder."""
        return self.database_url or f"sqlite:///{self.state_dir / 'runbook-runner.db'}"

    def resolved_instance(self) -> str:
        """This runner's id: the one set, or a new one unique to this process."""
        return self.instance or unique_instance()

    def signing_keys(self) -> SigningKeys:
        """The keys requests are verified with; ``ValueError`` if none is set."""
        if self.runbook_signing_key is None or not self.runbook_signing_key.get_secret_value():
            raise ValueError(
                "the runbook runner needs VIGIL_RUNBOOK_SIGNING_KEY (the key the incident log "
                "signs runbook requests with); without it no request could be trusted"
            )
        return SigningKeys.parse(self.runbook_signing_key.get_secret_value())

    def resolved_work_dir(self) -> Path:
        """The folder runs work in."""
        return self.work_dir or self.state_dir / "runbook-runs"

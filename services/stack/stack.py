"""The whole of Vigil on one machine: the embedded broker (or an external Kafka), every service
as a supervised process, state under one folder, credentials generated on first start.

Pointing it at an external Kafka (``VIGIL_KAFKA_BOOTSTRAP_SERVERS``) and PostgreSQL
(``VIGIL_STACK_POSTGRES_URL``: each stateful service gets its own database there) uses them
instead of the embedded broker and SQLite files.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from services.runtime.embedded_broker import EmbeddedBroker, ensure_topics
from services.runtime.names import ServiceName
from services.runtime.settings import KafkaProfile
from services.stack.supervisor import ServiceSpec, Supervisor

__all__ = ["STARTUP_ORDER", "Credentials", "RunningStack", "StackSettings", "running_stack"]

STARTUP_ORDER = [
    ServiceName.RETRAINER,
    ServiceName.INCIDENT_LOG,
    ServiceName.SCORER,
    ServiceName.MONITOR,
    ServiceName.DRIFT_DETECTOR,
    ServiceName.RUNBOOK_RUNNER,
]
"""The registry first (the scorer loads deployments from it at start), the runner last."""

_STATEFUL = {
    ServiceName.RETRAINER,
    ServiceName.INCIDENT_LOG,
    ServiceName.MONITOR,
    ServiceName.RUNBOOK_RUNNER,
}


class StackSettings(BaseSettings):
    """Settings of ``vigil up`` (environment: ``VIGIL_STACK_*``, plus the shared ones)."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIL_STACK_", extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    state_dir: Path = Field(
        default=Path(".vigil"), validation_alias=AliasChoices("VIGIL_STATE_DIR")
    )
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("VIGIL_KAFKA_BOOTSTRAP_SERVERS"),
        description="An external Kafka; unset: start the embedded broker.",
    )
    kafka_profile: KafkaProfile | None = Field(
        default=None, validation_alias=AliasChoices("VIGIL_KAFKA_PROFILE")
    )
    topic_prefix: str = Field(default="", validation_alias=AliasChoices("VIGIL_KAFKA_TOPIC_PREFIX"))
    broker_port: int = Field(default=19092, description="Port of the embedded broker.")
    postgres_url: str | None = Field(
        default=None, description="Base URL; each stateful service gets its own database there."
    )
    services: list[ServiceName] = Field(
        default_factory=lambda: list(STARTUP_ORDER), description="Which services to run."
    )
    ports: dict[ServiceName, int] = Field(
        default_factory=dict, description="Ports instead of the services' defaults."
    )
    runbooks_dir: Path = Field(
        default_factory=lambda: _checkout_runbooks(),
        description="The routing policy, runbook catalogue and scripts.",
    )
    service_env: dict[str, str] = Field(
        default_factory=dict,
        description="More settings for the services (VIGIL_<SERVICE>_<SETTING> variables).",
    )

    def port(self, name: ServiceName) -> int:
        """The HTTP port a service gets."""
        return self.ports.get(name, name.default_port)


@dataclass(frozen=True)
class Credentials:
    """Tokens the stack generated on first start (kept in the state folder, mode 0600): the
    administrator's, the one the runbook runner's scripts call the incident log with (l2), and
    the one the monitor's probe proves itself to the scorer with."""

    admin_token: str
    runbook_token: str
    probe_token: str

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        """Read the stack's credentials, creating what is missing."""
        stored = json.loads(path.read_text()) if path.exists() else {}
        credentials = cls(
            admin_token=stored.get("admin_token") or f"vgl_{secrets.token_urlsafe(24)}",
            runbook_token=stored.get("runbook_token") or f"vgl_{secrets.token_urlsafe(24)}",
            probe_token=stored.get("probe_token") or f"vgl_{secrets.token_urlsafe(24)}",
        )
        if stored != vars(credentials):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(json.dumps(vars(credentials)))
        return credentials


@dataclass(frozen=True)
class RunningStack:
    """What a started stack offers its caller (the status view, the demo, tests)."""

    supervisor: Supervisor
    bootstrap_servers: str
    credentials: Credentials
    state_dir: Path

    def url(self, name: ServiceName) -> str:
        """Base URL of a service's HTTP API."""
        return self.supervisor.url(name)


def _checkout_runbooks() -> Path:
    """The runbooks folder of this checkout (Vigil runs from a source checkout), else ./runbooks."""
    beside = Path(__file__).resolve().parents[2] / "runbooks"
    return beside if beside.is_dir() else Path("runbooks").resolve()


def available(name: ServiceName) -> bool:
    """Whether a service's package is installed (a partial checkout may lack some)."""
    return (
        importlib.util.find_spec(name.package) is not None
        and importlib.util.find_spec(f"{name.package}.app") is not None
    )


@asynccontextmanager
async def running_stack(settings: StackSettings) -> AsyncIterator[RunningStack]:
    """Start the broker (unless external) and the services; stop everything on exit."""
    state_dir = settings.state_dir.resolve()
    credentials = Credentials.load_or_create(state_dir / "credentials.json")
    broker: EmbeddedBroker | None = None
    supervisor: Supervisor | None = None
    try:
        if settings.kafka_bootstrap_servers:
            bootstrap = settings.kafka_bootstrap_servers
            await ensure_topics(bootstrap, prefix=settings.topic_prefix)
            profile = settings.kafka_profile or KafkaProfile.PRODUCTION
        else:
            broker = EmbeddedBroker(
                port=settings.broker_port, log_path=state_dir / "logs" / "broker.log"
            )
            bootstrap = await broker.start()
            if settings.topic_prefix:
                await ensure_topics(bootstrap, prefix=settings.topic_prefix)
            profile = settings.kafka_profile or KafkaProfile.EMBEDDED
        supervisor = Supervisor(
            await _service_specs(settings),
            logs_dir=state_dir / "logs",
            base_env=_shared_env(settings, bootstrap, profile, state_dir, credentials),
        )
        await supervisor.start()
        yield RunningStack(supervisor, bootstrap, credentials, state_dir)
    finally:
        if supervisor is not None:
            await supervisor.stop()
        if broker is not None:
            await broker.stop()


def _shared_env(
    settings: StackSettings,
    bootstrap: str,
    profile: KafkaProfile,
    state_dir: Path,
    credentials: Credentials,
) -> dict[str, str]:
    return {
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "VIGIL_KAFKA_PROFILE": profile.value,
        "VIGIL_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
        "VIGIL_STATE_DIR": str(state_dir),
        "VIGIL_REGISTRY_URL": f"http://127.0.0.1:{settings.port(ServiceName.RETRAINER)}",
        "VIGIL_SCORER_URL": f"http://127.0.0.1:{settings.port(ServiceName.SCORER)}",
        "VIGIL_INCIDENT_LOG_URL": f"http://127.0.0.1:{settings.port(ServiceName.INCIDENT_LOG)}",
        "VIGIL_MONITOR_URL": f"http://127.0.0.1:{settings.port(ServiceName.MONITOR)}",
        "VIGIL_DRIFT_DETECTOR_URL": f"http://127.0.0.1:{settings.port(ServiceName.DRIFT_DETECTOR)}",
        "VIGIL_INCIDENT_LOG_PUBLIC_URL": (
            f"http://127.0.0.1:{settings.port(ServiceName.INCIDENT_LOG)}"
        ),
        "VIGIL_INCIDENT_LOG_ADMIN_TOKEN": credentials.admin_token,
        "VIGIL_INCIDENT_LOG_SERVICE_TOKENS": json.dumps(
            [{"name": "runbook-runner", "role": "l2", "token": credentials.runbook_token}]
        ),
        "VIGIL_RUNBOOK_RUNNER_RUNBOOK_TOKEN": credentials.runbook_token,
        "VIGIL_SCORER_PROBE_TOKEN": credentials.probe_token,
        "VIGIL_MONITOR_PROBE_TOKEN": credentials.probe_token,
        "VIGIL_INCIDENT_LOG_POLICY_PATH": str(settings.runbooks_dir / "routing.yaml"),
        "VIGIL_RUNBOOK_RUNNER_CATALOG_PATH": str(settings.runbooks_dir / "catalog.yaml"),
    } | settings.service_env


async def _service_specs(settings: StackSettings) -> list[ServiceSpec]:
    specs = []
    for name in STARTUP_ORDER:
        if name not in settings.services or not available(name):
            continue
        env: dict[str, str] = {}
        if settings.postgres_url and name in _STATEFUL:
            env[f"{name.env_prefix}DATABASE_URL"] = await _service_database(
                settings.postgres_url, name
            )
        specs.append(ServiceSpec(name, settings.port(name), env))
    return specs


async def _service_database(base_url: str, name: ServiceName) -> str:
    """The URL of a service's own database on the PostgreSQL server, created if missing."""
    database = f"vigil_{name.value.replace('-', '_')}"
    url = make_url(base_url)
    admin_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        exists = await (
            await admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        ).fetchone()
        if exists is None:
            await admin.execute(f'CREATE DATABASE "{database}"')
    return url.set(database=database).render_as_string(hide_password=False)

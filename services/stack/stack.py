"""The whole of Vigil on one machine: the embedded broker (or an external Kafka), every service
as a supervised process, state under one folder, credentials generated on first start.

Tokens: the administrator's is generated once and kept in ``credentials.json`` (mode 0600), for
the person at this machine; no service's environment holds it (the incident log gets only its
SHA-256). Each start draws a fresh scoped token for every service that calls another's
authenticated API (``SERVICE_SCOPES`` in ``services/runtime/scopes.py``); the service gets its
own and nothing else, the incident log gets their hashes and stores them, revoking the previous
start's.

While it runs, ``stack.json`` in the state folder says where it is (its services' URLs, the
broker, the credentials file) for the command line (``services/runtime/local_stack.py``).

Pointing it at an external Kafka (``VIGIL_KAFKA_BOOTSTRAP_SERVERS``) and PostgreSQL
(``VIGIL_STACK_POSTGRES_URL``: each stateful service gets its own database there) uses them
instead of the embedded broker and SQLite files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from services.runtime.embedded_broker import EmbeddedBroker, ensure_topics
from services.runtime.local_stack import remove_stack_file, write_stack_file
from services.runtime.names import ServiceName
from services.runtime.scopes import SERVICE_SCOPES
from services.runtime.settings import KafkaProfile, KafkaSettings
from services.stack.supervisor import ServiceSpec, Supervisor
from services.stack.watch import StackWatch, WatchSettings, watching
from services.stack.watchdog import WatchdogPolicy

__all__ = [
    "STARTUP_ORDER",
    "TOKEN_SETTING",
    "Credentials",
    "RunningStack",
    "StackSettings",
    "running_stack",
    "service_tokens",
    "stack_supervisor",
    "token_env",
]

STARTUP_ORDER = [
    ServiceName.RETRAINER,
    ServiceName.INCIDENT_LOG,
    ServiceName.SCORER,
    ServiceName.MONITOR,
    ServiceName.DRIFT_DETECTOR,
    ServiceName.RUNBOOK_RUNNER,
]
"""The registry first (the scorer loads deployments from it at start), the runner last."""


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
    restart_stable_after_s: float = Field(
        default=60.0,
        gt=0,
        description="A service ready this long after a restart no longer counts as crashing in "
        "a row (its restart delay starts over; a restart_loop alert recovers).",
    )
    unready_alert_s: float = Field(
        default=60.0,
        gt=0,
        description="A service_unready alert is raised when a service has not answered /readyz "
        "200 for this long (services/stack/watchdog.py).",
    )
    restart_loop_crashes: int = Field(
        default=3,
        ge=1,
        description="A restart_loop alert is raised after this many crashes in a row.",
    )
    watchdog_interval_s: float = Field(
        default=5.0, gt=0, le=3600, description="How often the supervisor checks those two."
    )
    heartbeat_interval_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How often the dead man's switch sends a heartbeat alert through alerts → "
        "incident log → paging (services/stack/deadman.py).",
    )
    heartbeat_timeout_s: float = Field(
        default=110.0,
        gt=0,
        le=86400,
        description="No echo for this long: the switch reports the alert path dead (log, status "
        "view, /deadman 503, the webhook page). Below 120 s, so a stopped incident log is "
        "reported within two minutes.",
    )
    deadman_webhook_url: str | None = Field(
        default=None,
        description="Where the switch posts a page (JSON) when heartbeats stop and when they "
        "resume, without the incident log; unset: log, status view and endpoint only.",
    )
    watch_host: str = Field(default="127.0.0.1", description="Address of the watch endpoint.")
    watch_port: int = Field(
        default=8690,
        ge=0,
        le=65535,
        description="Port of the supervisor's watch endpoint (/deadman, /services, /metrics) for "
        "an outside monitor; 0 turns it off.",
    )

    @model_validator(mode="after")
    def _timeout_after_interval(self) -> StackSettings:
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ValueError("heartbeat_timeout_s must exceed heartbeat_interval_s")
        return self

    def port(self, name: ServiceName) -> int:
        """The HTTP port a service gets."""
        return self.ports.get(name, name.default_port)


TOKEN_SETTING = {
    ServiceName.DRIFT_DETECTOR: "VIGIL_DRIFT_DETECTOR_SERVICE_TOKEN",
    ServiceName.RUNBOOK_RUNNER: "VIGIL_RUNBOOK_RUNNER_RUNBOOK_TOKEN",
}
"""The setting each service that has a token reads it from."""


def _new_token() -> str:
    return f"vgl_{secrets.token_urlsafe(24)}"


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Credentials:
    """Secrets generated on first start and kept in the state folder (mode 0600): the
    administrator's token, the key the incident log signs runbook requests with for the runner,
    and the token the monitor's probe proves itself to the scorer with; the services' incident-log
    tokens are drawn afresh at each start (:func:`service_tokens`)."""

    admin_token: str
    runbook_signing_key: str
    probe_token: str

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        """Read the stack's credentials, creating what is missing (and dropping the runbook
        token earlier versions kept there: it is drawn at each start now)."""
        stored = json.loads(path.read_text()) if path.exists() else {}
        credentials = cls(
            admin_token=stored.get("admin_token") or _new_token(),
            runbook_signing_key=stored.get("runbook_signing_key") or secrets.token_hex(32),
            probe_token=stored.get("probe_token") or _new_token(),
        )
        if stored != vars(credentials):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(json.dumps(vars(credentials)))
        return credentials


def service_tokens() -> dict[ServiceName, str]:
    """A fresh token for each service that calls another's authenticated API."""
    return {name: _new_token() for name in SERVICE_SCOPES}


@dataclass(frozen=True)
class RunningStack:
    """What a started stack offers its caller (the status view, the demo, tests)."""

    supervisor: Supervisor
    bootstrap_servers: str
    credentials: Credentials
    state_dir: Path
    watch: StackWatch

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
        supervisor = await stack_supervisor(
            settings, bootstrap, profile, state_dir, credentials, service_tokens()
        )
        await supervisor.start()
        kafka = KafkaSettings(
            bootstrap_servers=bootstrap, profile=profile, topic_prefix=settings.topic_prefix
        )
        async with watching(supervisor, kafka, _watch_settings(settings)) as watch:
            write_stack_file(
                state_dir,
                urls={
                    ServiceName(child.name): f"http://127.0.0.1:{child.port}"
                    for child in supervisor.status()
                },
                bootstrap_servers=bootstrap,
            )
            yield RunningStack(supervisor, bootstrap, credentials, state_dir, watch)
    finally:
        remove_stack_file(state_dir)
        if supervisor is not None:
            await supervisor.stop()
        if broker is not None:
            await broker.stop()


def _watch_settings(settings: StackSettings) -> WatchSettings:
    return WatchSettings(
        policy=WatchdogPolicy(
            unready_after_s=settings.unready_alert_s,
            restart_loop_crashes=settings.restart_loop_crashes,
            stable_after_s=settings.restart_stable_after_s,
        ),
        check_interval_s=settings.watchdog_interval_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        page_url=settings.deadman_webhook_url,
        http_host=settings.watch_host,
        http_port=settings.watch_port,
    )


async def stack_supervisor(
    settings: StackSettings,
    bootstrap: str,
    profile: KafkaProfile,
    state_dir: Path,
    credentials: Credentials,
    tokens: dict[ServiceName, str],
) -> Supervisor:
    """The supervisor of the stack's services, each with its environment (not started)."""
    return Supervisor(
        await _service_specs(settings, credentials, tokens),
        logs_dir=state_dir / "logs",
        base_env=_shared_env(settings, bootstrap, profile, state_dir),
        stable_after_s=settings.restart_stable_after_s,
    )


def _shared_env(
    settings: StackSettings,
    bootstrap: str,
    profile: KafkaProfile,
    state_dir: Path,
) -> dict[str, str]:
    """What every service is given: addresses and where things are, no token."""
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
        "VIGIL_INCIDENT_LOG_POLICY_PATH": str(settings.runbooks_dir / "routing.yaml"),
        "VIGIL_INCIDENT_LOG_CATALOG_PATH": str(settings.runbooks_dir / "catalog.yaml"),
        "VIGIL_RUNBOOK_RUNNER_CATALOG_PATH": str(settings.runbooks_dir / "catalog.yaml"),
    } | settings.service_env


def token_env(
    name: ServiceName, credentials: Credentials, tokens: dict[ServiceName, str]
) -> dict[str, str]:
    """A service's own token settings: the incident log gets the hashes of all (and of the
    admin's), a service with scopes its own token, the others nothing."""
    if name is ServiceName.INCIDENT_LOG:
        provisioned = [
            {
                "name": service.value,
                "scopes": sorted(SERVICE_SCOPES[service]),
                "token_sha256": _sha256(token),
            }
            for service, token in tokens.items()
        ]
        return {
            "VIGIL_INCIDENT_LOG_ADMIN_TOKEN_SHA256": _sha256(credentials.admin_token),
            "VIGIL_INCIDENT_LOG_SERVICE_TOKENS": json.dumps(provisioned),
        }
    if name in tokens:
        return {TOKEN_SETTING[name]: tokens[name]}
    return {}


async def _service_specs(
    settings: StackSettings, credentials: Credentials, tokens: dict[ServiceName, str]
) -> list[ServiceSpec]:
    specs = []
    for name in STARTUP_ORDER:
        if name not in settings.services or not available(name):
            continue
        env = token_env(name, credentials, tokens)
        if name in _RUNBOOK_SIGNERS:
            env["VIGIL_RUNBOOK_SIGNING_KEY"] = credentials.runbook_signing_key
        if name in _PROBE_TOKEN_SETTING:
            env[_PROBE_TOKEN_SETTING[name]] = credentials.probe_token
        if settings.postgres_url and name.has_database:
            env[f"{name.env_prefix}DATABASE_URL"] = await _service_database(
                settings.postgres_url, name
            )
        specs.append(ServiceSpec(name, settings.port(name), env))
    return specs


_RUNBOOK_SIGNERS = frozenset({ServiceName.INCIDENT_LOG, ServiceName.RUNBOOK_RUNNER})
"""The only services given the runbook signing key: whoever holds it can ask for any runbook."""

_PROBE_TOKEN_SETTING = {
    ServiceName.SCORER: "VIGIL_SCORER_PROBE_TOKEN",
    ServiceName.MONITOR: "VIGIL_MONITOR_PROBE_TOKEN",
}
"""The only services given the probe token: the scorer lets its holder use ``vigil-probe:`` ids,
which the monitor leaves out of its metrics."""


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

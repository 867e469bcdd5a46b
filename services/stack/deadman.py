"""The dead man's switch: heartbeats sent through the real alert path, and a page when they stop.

Every ``interval_s`` the switch publishes an ``alert.raised`` of kind ``heartbeat`` (fingerprint
``vigil:v-:heartbeat:<source>``, ``source`` random per switch) to the alerts topic. The incident log
writes it down without opening an incident, its paging dispatcher answers with a
``heartbeat.echoed`` on ``heartbeats`` through its outbox (``contracts/heartbeats.py``), and the
switch reads those echoes. An echo proves the whole path works; silence for ``timeout_s`` means
part of it does not (the broker, the incident log's consumer, database, paging loop or relay)::

    waiting ──first echo──▶ beating ◀──echo── stopped
       │                       │                ▲
       └──── no echo for timeout_s ─────────────┘

When it stops the switch does not rely on the broken path: it logs at ERROR, the status view and
the supervisor's HTTP endpoint (``/deadman``: 503, ``vigil_heartbeat_ok 0``) say so, and if a
webhook is configured it posts the page there itself, retrying until it is taken; it posts again
when heartbeats resume (docs/adr/0013-watching-vigil.md).

:class:`HeartbeatClock` is the pure judgement (time comes in as an argument);
:class:`DeadMansSwitch` is the adapter that sends, listens and pages.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.alerts import AlertKind, AlertRaised, Severity, alert_fingerprint
from contracts.envelope import utc_now
from contracts.heartbeats import HeartbeatEchoed
from contracts.topics import Topic
from contracts.wire import DecodeError, decode
from services.runtime.dead_letter_alerts import PLATFORM_MODEL
from services.runtime.publisher import Publisher
from services.runtime.settings import KafkaSettings

__all__ = ["DeadMansSwitch", "HeartbeatClock", "HeartbeatReport", "SwitchState"]

log = logging.getLogger(__name__)


class SwitchState(StrEnum):
    """Whether heartbeats come through."""

    WAITING = "waiting"
    BEATING = "beating"
    STOPPED = "stopped"


@dataclass(frozen=True)
class HeartbeatReport:
    """What the switch says now, for the status view, the HTTP endpoint and the page."""

    state: SwitchState
    source: str
    silent_for_s: float
    timeout_s: float
    sent: int
    echoed: int
    last_latency_s: float | None

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong (beating, or still within the first timeout)."""
        return self.state is not SwitchState.STOPPED

    def describe(self) -> str:
        """One line for a person."""
        if self.state is SwitchState.STOPPED:
            return (
                f"DEAD MAN'S SWITCH: no heartbeat through alerts → incident log → paging for "
                f"{self.silent_for_s:.0f} s (limit {self.timeout_s:g} s)"
            )
        if self.state is SwitchState.WAITING:
            return f"waiting for the first heartbeat ({self.silent_for_s:.0f} s)"
        latency = "" if self.last_latency_s is None else f", took {self.last_latency_s:.2f} s"
        return f"heartbeat OK: last echo {self.silent_for_s:.0f} s ago{latency}"


class HeartbeatClock:
    """Pure: when the last echo came, and whether that is too long ago."""

    def __init__(self, *, timeout_s: float, started_at: float) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.timeout_s = timeout_s
        self._started_at = started_at
        self._last_echo_at: float | None = None
        self.last_latency_s: float | None = None

    def echoed(self, *, now: float, latency_s: float) -> None:
        """An echo of one of our heartbeats arrived."""
        self._last_echo_at = now
        self.last_latency_s = latency_s

    def silent_for(self, now: float) -> float:
        """Seconds since the last echo (since the start, before the first)."""
        return max(0.0, now - (self._last_echo_at or self._started_at))

    def state(self, now: float) -> SwitchState:
        """Beating, stopped (silent for the timeout or more), or waiting for a first echo."""
        if self.silent_for(now) >= self.timeout_s:
            return SwitchState.STOPPED
        return SwitchState.WAITING if self._last_echo_at is None else SwitchState.BEATING


class DeadMansSwitch:
    """Sends heartbeat alerts, reads their echoes, and reports (and pages) when they stop."""

    def __init__(
        self,
        kafka: KafkaSettings,
        publisher: Publisher,
        *,
        interval_s: float,
        timeout_s: float,
        page_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < interval_s < timeout_s:
            raise ValueError(f"need 0 < interval_s < timeout_s, got {interval_s}, {timeout_s}")
        self.source = f"supervisor-{secrets.token_hex(4)}"
        self._kafka = kafka
        self._publisher = publisher
        self._interval_s = interval_s
        self._page_url = page_url
        self._clock = clock
        self._heart = HeartbeatClock(timeout_s=timeout_s, started_at=clock())
        self._sent = 0
        self._echoed = 0
        self._announced = SwitchState.WAITING
        self._unsent_page: dict[str, object] | None = None

    def report(self) -> HeartbeatReport:
        """The switch's state now."""
        now = self._clock()
        return HeartbeatReport(
            state=self._heart.state(now),
            source=self.source,
            silent_for_s=self._heart.silent_for(now),
            timeout_s=self._heart.timeout_s,
            sent=self._sent,
            echoed=self._echoed,
            last_latency_s=self._heart.last_latency_s,
        )

    async def run(self) -> None:
        """Beat, listen and judge until cancelled."""
        async with httpx.AsyncClient(timeout=5.0) as http, asyncio.TaskGroup() as tasks:
            tasks.create_task(_keep_running("heartbeat sender", self._beat))
            tasks.create_task(_keep_running("heartbeat listener", self._listen))
            tasks.create_task(_keep_running("heartbeat judge", lambda: self._judge(http)))

    async def _beat(self) -> None:
        while True:
            alert = AlertRaised(
                producer="supervisor",
                model=PLATFORM_MODEL,
                kind=AlertKind.HEARTBEAT,
                severity=Severity.INFO,
                fingerprint=alert_fingerprint(
                    PLATFORM_MODEL, None, AlertKind.HEARTBEAT, self.source
                ),
                summary=f"heartbeat {self._sent + 1} of {self.source} (dead man's switch)",
            )
            try:
                await self._publisher.publish(alert)
            except Exception as error:
                log.warning("could not send a heartbeat alert: %s", error)
            else:
                self._sent += 1
            await asyncio.sleep(self._interval_s)

    async def _listen(self) -> None:
        name = self._kafka.topic_name(Topic.HEARTBEATS)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._kafka.bootstrap_servers,
            client_id="vigil-dead-mans-switch",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()
            ]
            if not partitions:
                raise RuntimeError(f"topic {name} does not exist")
            consumer.assign(partitions)
            # From the beginning: the embedded broker cannot seek to the end (ADR 0002); the
            # source, new for each switch, tells our echoes from earlier ones.
            await consumer.seek_to_beginning(*partitions)
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        self._take(record.value)
        finally:
            await consumer.stop()

    def _take(self, value: bytes | None) -> None:
        try:
            echo = decode(Topic.HEARTBEATS, value)
        except DecodeError:
            return
        if not isinstance(echo, HeartbeatEchoed) or echo.source != self.source:
            return
        self._echoed += 1
        latency = (utc_now() - echo.sent_at).total_seconds()
        self._heart.echoed(now=self._clock(), latency_s=max(0.0, latency))

    async def _judge(self, http: httpx.AsyncClient) -> None:
        while True:
            report = self.report()
            if report.state is SwitchState.STOPPED and self._announced is not SwitchState.STOPPED:
                log.error("%s", report.describe())
                self._unsent_page = _page(report, "stopped")
                self._announced = SwitchState.STOPPED
            elif report.state is SwitchState.BEATING and self._announced is not SwitchState.BEATING:
                if self._announced is SwitchState.STOPPED:
                    log.warning("dead man's switch: heartbeats come through again")
                    self._unsent_page = _page(report, "resumed")
                self._announced = SwitchState.BEATING
            if self._unsent_page is not None and self._page_url is not None:
                await self._send_page(http, self._unsent_page)
            await asyncio.sleep(min(1.0, self._interval_s / 2))

    async def _send_page(self, http: httpx.AsyncClient, page: dict[str, object]) -> None:
        assert self._page_url is not None
        try:
            response = await http.post(
                self._page_url, json=page, headers={"Idempotency-Key": str(page["key"])}
            )
            response.raise_for_status()
        except httpx.HTTPError as error:
            log.warning("could not page about the dead man's switch (retrying): %s", error)
            return
        if self._unsent_page is page:
            self._unsent_page = None


def _page(report: HeartbeatReport, status: str) -> dict[str, object]:
    return {
        "key": f"{report.source}:{status}:{secrets.token_hex(4)}",
        "status": status,
        "summary": report.describe(),
        "source": report.source,
        "silent_for_s": round(report.silent_for_s, 1),
        "timeout_s": report.timeout_s,
        "sent_at": utc_now().isoformat(),
    }


async def _keep_running(name: str, run: Callable[[], Awaitable[None]]) -> None:
    delay = 0.5
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("%s failed (%s); restarting in %.1f s", name, error, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)

"""The self-watch: every service checks its own consumer lag and outbox, and alerts about them.

A background task of every service (:class:`~services.runtime.service.ServiceRuntime`) runs the
service's probes every ``self_watch_interval_s``. Each probe measures one thing and returns a
:class:`Reading` per subject; :class:`~services.runtime.alert_episodes.AlertEpisodes` decides when
an episode opens or closes, and the self-watch publishes the ``alert.raised`` /
``alert.recovered`` straight to the alerts topic (never through the outbox: a stuck outbox is one
of the things it reports). The probes:

=================  ===========================================  ===============================
kind               bad when                                      subject
=================  ===========================================  ===============================
``consumer_lag``   the group's committed offsets are more than   ``<service>/<group>/<topic>``
                   ``consumer_lag_alert_records`` behind the
                   topic's end, for ``consumer_lag_alert_after_s``
``outbox_stalled`` the oldest unpublished outbox row is older     ``<service>/outbox``
                   than ``outbox_age_alert_s``
``outbox_poison``  ``outbox_poison`` holds rows                   ``<service>/outbox_poison``
=================  ===========================================  ===============================

Lag is measured from outside the consumer (the group's committed offsets against the end of each
partition), so a consumer that stopped consuming is seen as well as a slow one. On the embedded
broker the end offset is the start of the last record batch (docs/adr/0002-embedded-broker.md):
lag reads up to one batch low there.

With replicas, every replica measures the same things (its group's lag, the shared database's
outbox), so one publishes: the holder of the service's ``<service>-self-watch`` lease
(:meth:`SelfWatch.publish_under`; the scorer, which has no database, leases by the assignment
of partition 0 of ``scoring.requests``). The others keep checking and follow the episodes as if they
had published, so a stand-by that takes over sends the recovery of an alert the holder raised
(and says again the alerts of episodes still bad, in case the holder could not publish them).

Alerts are about the platform, so their model is :data:`~services.runtime.dead_letter_alerts.\
PLATFORM_MODEL`; the routing policy sends their kinds to the ``platform`` route.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.alerts import AlertKind, AlertRaised, AlertRecovered, Severity, alert_fingerprint
from contracts.topics import Topic
from services.runtime.alert_episodes import AlertEpisodes, Transition
from services.runtime.dead_letter_alerts import PLATFORM_MODEL
from services.runtime.leases import ReplicaLease
from services.runtime.outbox import OutboxRelay
from services.runtime.publisher import Publisher
from services.runtime.settings import KafkaSettings

__all__ = [
    "ConsumerLag",
    "Probe",
    "Reading",
    "SelfWatch",
    "consumer_lag_probe",
    "outbox_probes",
    "platform_alert",
    "platform_recovery",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    """One check of one subject: bad or good, and what to say about it either way."""

    kind: AlertKind
    subject: str
    bad: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    severity: Severity = Severity.WARNING


Probe = Callable[[], Awaitable[Sequence[Reading]]]


def platform_alert(reading: Reading, *, producer: str) -> AlertRaised:
    """The ``alert.raised`` of a bad reading."""
    return AlertRaised(
        producer=producer,
        model=PLATFORM_MODEL,
        kind=reading.kind,
        severity=reading.severity,
        fingerprint=_fingerprint(reading),
        summary=reading.summary[:1000],
        evidence=reading.evidence,
    )


def platform_recovery(reading: Reading, *, producer: str) -> AlertRecovered:
    """The ``alert.recovered`` of a good reading after an open episode."""
    return AlertRecovered(
        producer=producer,
        model=PLATFORM_MODEL,
        kind=reading.kind,
        fingerprint=_fingerprint(reading),
        summary=reading.summary[:1000],
        evidence=reading.evidence,
    )


def _episode(reading: Reading) -> str:
    return f"{reading.kind.value}:{reading.subject}"


def _fingerprint(reading: Reading) -> str:
    return alert_fingerprint(PLATFORM_MODEL, None, reading.kind, reading.subject)[:500]


@dataclass
class _Watched:
    probe: Probe
    episodes: AlertEpisodes


class SelfWatch:
    """Runs probes periodically and publishes the alerts their episodes make due."""

    def __init__(self, *, producer: str, publisher: Publisher, interval_s: float) -> None:
        if not 0 < interval_s < math.inf:
            raise ValueError(f"interval_s must be positive and finite, got {interval_s}")
        self._producer = producer
        self._publisher = publisher
        self._interval_s = interval_s
        self._watched: list[_Watched] = []
        self._lease: ReplicaLease | None = None
        self._published_last = False
        """Whether this replica published at the last check (to notice taking over)."""

    def publish_under(self, lease: ReplicaLease) -> None:
        """Publish only while this replica holds ``lease`` (services with replicas): a database
        :class:`~services.runtime.leases.Lease`, or a
        :class:`~services.runtime.leases.PartitionLease` for a service with no database."""
        self._lease = lease

    @property
    def interval_s(self) -> float:
        """Time between two checks."""
        return self._interval_s

    def checks_for(self, duration_s: float) -> int:
        """How many bad checks in a row span at least ``duration_s`` (at least one)."""
        return max(1, math.ceil(duration_s / self._interval_s) + 1) if duration_s > 0 else 1

    def add_probe(self, probe: Probe, *, raise_after: int = 1, resolve_after: int = 2) -> None:
        """Check ``probe`` at every pass; raise after ``raise_after`` bad checks in a row,
        resolve after ``resolve_after`` good ones."""
        self._watched.append(
            _Watched(probe, AlertEpisodes(raise_after=raise_after, resolve_after=resolve_after))
        )

    async def run(self) -> None:
        """Check every interval until cancelled."""
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                await self.check()
        finally:
            if self._lease is not None:
                await self._lease.release()  # a stand-by publishes from its next check

    async def check(self) -> None:
        """Run every probe once and publish what became due (if this replica is the one that
        publishes); a probe that fails is logged and skipped (its subjects keep their state)."""
        publishing = await self._publishing()
        # Taking over: the old holder may not have published a raise this replica followed (the
        # broker was down when it died), so open episodes still bad are said again (the incident
        # log folds them into the open incident by fingerprint).
        took_over, self._published_last = publishing and not self._published_last, publishing
        for watched in self._watched:
            still_raised = set(watched.episodes.raised()) if took_over else set()
            try:
                readings = await watched.probe()
            except Exception as error:
                log.warning(
                    "self-watch probe failed (next try in %g s): %s", self._interval_s, error
                )
                continue
            for reading in readings:
                transition = watched.episodes.observe(_episode(reading), bad=reading.bad)
                if transition is None and reading.bad and _episode(reading) in still_raised:
                    transition = Transition.RAISE
                if transition is None:
                    continue
                if publishing:
                    await self._announce(watched.episodes, reading, transition)
                else:  # the lease holder says it; follow the episode as it does
                    watched.episodes.settle(_episode(reading), transition)

    async def _publishing(self) -> bool:
        if self._lease is None:
            return True
        try:
            return await self._lease.held()
        except Exception as error:  # the lease's database is down: whoever holds it publishes
            log.warning("self-watch cannot check its lease: %s", error)
            return False

    async def _announce(
        self, episodes: AlertEpisodes, reading: Reading, transition: Transition
    ) -> None:
        event: AlertRaised | AlertRecovered = (
            platform_alert(reading, producer=self._producer)
            if transition is Transition.RAISE
            else platform_recovery(reading, producer=self._producer)
        )
        try:
            await self._publisher.publish(event)
        except Exception as error:
            log.warning(
                "could not publish the %s %s alert about %s (retried at the next check): %s",
                reading.kind.value,
                transition.value,
                reading.subject,
                error,
            )
            return
        episodes.settle(_episode(reading), transition)
        if transition is Transition.RAISE:
            log.error("raised %s: %s", reading.kind.value, reading.summary)
        else:
            log.warning("recovered %s: %s", reading.kind.value, reading.summary)


class ConsumerLag:
    """Measures how far a consumer group's committed offsets are behind its topics' ends."""

    def __init__(self, kafka: KafkaSettings, group: str) -> None:
        self._kafka = kafka
        self._group = group
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    @property
    def group(self) -> str:
        """The consumer group measured (its name on the cluster)."""
        return self._group

    async def measure(self, topics: Sequence[Topic]) -> dict[Topic, int]:
        """Records behind, per topic (summed over its partitions)."""
        admin, offsets = await self._clients()
        names = {self._kafka.topic_name(topic): topic for topic in topics}
        await offsets._client.force_metadata_update()  # topics may be new to this client
        partitions = [
            TopicPartition(name, partition)
            for name in names
            for partition in sorted(offsets.partitions_for_topic(name) or ())
        ]
        if not partitions:
            return {}
        committed = await admin.list_consumer_group_offsets(self._group, partitions=partitions)
        ends = await offsets.end_offsets(partitions)
        starts = await offsets.beginning_offsets(partitions)
        lag = dict.fromkeys(topics, 0)
        for partition in partitions:
            mark = committed.get(partition)
            position = mark.offset if mark is not None and mark.offset >= 0 else starts[partition]
            lag[names[partition.topic]] += max(0, ends[partition] - position)
        return lag

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._offsets is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._kafka.bootstrap_servers, client_id="vigil-self-watch"
            )
            offsets = AIOKafkaConsumer(
                bootstrap_servers=self._kafka.bootstrap_servers,
                client_id="vigil-self-watch",
                enable_auto_commit=False,
            )
            try:
                await admin.start()
                await offsets.start()
            except BaseException:
                await _close(admin, offsets)
                raise
            self._admin, self._offsets = admin, offsets
        return self._admin, self._offsets

    async def close(self) -> None:
        """Close the clients (opened again at the next measurement)."""
        admin, offsets, self._admin, self._offsets = self._admin, self._offsets, None, None
        if admin is not None and offsets is not None:
            await _close(admin, offsets)


async def _close(admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer) -> None:
    await asyncio.gather(admin.close(), offsets.stop(), return_exceptions=True)


def consumer_lag_probe(
    lag: ConsumerLag,
    topics: Callable[[], Sequence[Topic]],
    *,
    service: str,
    threshold: int,
    after_s: float,
) -> Probe:
    """A probe of the group's lag on each of ``topics()`` against ``threshold`` records."""

    async def probe() -> list[Reading]:
        watched = topics()
        if not watched:
            return []
        try:
            behind = await lag.measure(watched)
        except BaseException:
            await lag.close()  # a broken connection is opened afresh next time
            raise
        return [
            Reading(
                kind=AlertKind.CONSUMER_LAG,
                subject=f"{service}/{lag.group}/{topic.value}",
                bad=records > threshold,
                summary=(
                    f"{service} (group {lag.group}) is {records} record(s) behind on "
                    f"{topic.value}; alert above {threshold} for {after_s:g} s"
                ),
                evidence={
                    "service": service,
                    "group": lag.group,
                    "topic": topic.value,
                    "lag": records,
                    "threshold": threshold,
                    "after_s": after_s,
                },
            )
            for topic, records in sorted(behind.items())
        ]

    return probe


def outbox_probes(relay: OutboxRelay, *, service: str, max_age_s: float) -> tuple[Probe, Probe]:
    """Probes of a service's outbox: the oldest unpublished row's age, and set-aside rows."""

    async def stalled() -> list[Reading]:
        age = await relay.oldest_pending_age()
        seconds = 0.0 if age is None else age.total_seconds()
        pending = await relay.pending() if age is not None else 0
        return [
            Reading(
                kind=AlertKind.OUTBOX_STALLED,
                subject=f"{service}/outbox",
                bad=seconds > max_age_s,
                summary=(
                    f"{service}'s oldest unpublished outbox row is {seconds:.0f} s old "
                    f"({pending} row(s) waiting); alert above {max_age_s:g} s"
                ),
                evidence={
                    "service": service,
                    "oldest_pending_s": round(seconds, 3),
                    "pending": pending,
                    "threshold_s": max_age_s,
                },
            )
        ]

    async def poisoned() -> list[Reading]:
        rows = await relay.poisoned()
        return [
            Reading(
                kind=AlertKind.OUTBOX_POISON,
                subject=f"{service}/outbox_poison",
                bad=rows > 0,
                summary=(
                    f"{service} set {rows} outbox row(s) aside in outbox_poison (never published)"
                ),
                evidence={"service": service, "rows": rows},
            )
        ]

    return stalled, poisoned

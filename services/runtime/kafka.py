"""Kafka client tuning per profile, and the broker factory every service uses.

The embedded profile works around the Tansu broker's behaviour (docs/adr/0002-embedded-broker.md):
short group sessions so joins take about a second, short fetch waits because Tansu polls instead
of waking on new data (longer ones while a consumer is idle, as those polls cost CPU), and no
idempotent producer. The production profile keeps Kafka's defaults, with the idempotent producer
on. Both start new groups at ``earliest``: a durable service must not skip what was published
before it first joined.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from faststream.kafka import KafkaBroker

from services.runtime.settings import KafkaProfile, KafkaSettings

__all__ = ["consumer_options", "idle_fetch_max_wait_ms", "kafka_broker", "producer_options"]


def consumer_options(profile: KafkaProfile) -> dict[str, Any]:
    """Return the consumer settings of a profile.

    Partitions are assigned by range, not round robin (aiokafka's and FastStream's default):
    range gives each member the same partition numbers of every topic it reads, so a model's
    ``predictions`` and ``labels`` (same key, same partition count) reach the same replica.
    Round robin split them between replicas, which then stepped the same models in turn and
    restored from the database at nearly every batch (docs/scaling.md). Round robin stays as the
    second choice so a group can be upgraded one member at a time (the group uses a strategy
    every member offers).
    """
    options: dict[str, Any] = {
        "auto_offset_reset": "earliest",
        "partition_assignment_strategy": (RangePartitionAssignor, RoundRobinPartitionAssignor),
    }
    if profile is KafkaProfile.EMBEDDED:
        options |= {
            "session_timeout_ms": 2_000,
            "heartbeat_interval_ms": 300,
            "fetch_max_wait_ms": 20,
        }
    return options


def idle_fetch_max_wait_ms(profile: KafkaProfile) -> int | None:
    """Return the fetch wait of a consumer that found nothing for a whole poll, or ``None`` to
    keep its configured wait.

    Embedded: 100 ms instead of 20. Tansu answers a waiting fetch by looking again at intervals,
    so every short fetch costs the broker and the client CPU even when nothing came, and the idle
    stack spent most of a core on them; an idle consumer instead hears of its next record a
    little later (``bench/idle.py``; docs/adr/0016-hot-path.md). Production: Kafka wakes a waiting
    fetch when records arrive, so its default wait costs nothing while idle.
    """
    return 100 if profile is KafkaProfile.EMBEDDED else None


def producer_options(profile: KafkaProfile) -> dict[str, Any]:
    """Return the producer settings of a profile (``acks=all`` always; never ``acks=0``)."""
    options: dict[str, Any] = {
        "acks": "all",
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
    }
    # Tansu rejects aiokafka's InitProducerId; Apache Kafka supports it.
    options["enable_idempotence"] = profile is KafkaProfile.PRODUCTION
    return options


def kafka_broker(kafka: KafkaSettings, *, client_id: str) -> KafkaBroker:
    """Build a FastStream Kafka broker for one service process (not connected yet).

    Topics are created by the broker set-up from :mod:`contracts.topics`, never implicitly by a
    subscriber, so that partition counts are the documented ones.
    """
    return KafkaBroker(
        kafka.bootstrap_servers,
        client_id=client_id,
        allow_auto_create_topics=False,
        graceful_timeout=30.0,
        # FastStream logs every message at this level; keep it below INFO.
        log_level=logging.DEBUG,
        **producer_options(kafka.profile),
    )

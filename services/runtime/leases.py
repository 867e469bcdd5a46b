"""Run-once across replicas: a lease one replica holds at a time, on the service's database.

Timers, schedules and probes run in every replica's process, but must act once. On PostgreSQL a
:class:`Lease` is a session-level advisory lock held on a connection of its own: the holder keeps
it while it lives, and PostgreSQL frees it when that connection dies (the process was killed, the
network dropped), so a stand-by replica takes over at its next :meth:`Lease.held` check. A SQLite
file belongs to one process, which always holds the lease.

Call :meth:`Lease.held` before each round of the work (it also checks that the holder's connection
is still alive), not once at start; :func:`every_while_held` does, for a loop of rounds::

    runtime.add_background("schedules", every_while_held(Lease(engine, "schedules"), check, 60))

A service with no database (the scorer) leases by Kafka instead: :class:`PartitionLease` is held
by the replica its consumer group assigned partition 0 of a topic it reads. Both follow
:class:`ReplicaLease`, what :class:`~services.runtime.self_watch.SelfWatch` needs of a lease.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine
from typing import Any, Protocol

from aiokafka import TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["Lease", "PartitionLease", "ReplicaLease", "every_while_held", "lease_key"]

log = logging.getLogger(__name__)


def lease_key(name: str) -> int:
    """The advisory lock key of a lease name (a stable signed 64-bit number)."""
    digest = hashlib.blake2b(f"vigil-lease:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class ReplicaLease(Protocol):
    """The right to run one kind of work in one replica at a time, checked before each round."""

    name: str

    async def held(self) -> bool:
        """Whether this replica holds the lease now (taking it if it can)."""
        ...

    async def release(self) -> None:
        """Give the lease up on shutdown (as far as this replica can)."""
        ...


class Lease:
    """The right to run one kind of work (``name``) in one replica at a time."""

    def __init__(self, engine: AsyncEngine, name: str) -> None:
        self.name = name
        self._engine = engine
        self._key = lease_key(name)
        self._connection: AsyncConnection | None = None

    @property
    def holding(self) -> bool:
        """Whether this replica held the lease at its last :meth:`held` check."""
        return self._engine.dialect.name != "postgresql" or self._connection is not None

    async def held(self) -> bool:
        """Whether this replica holds the lease now, taking it if it is free."""
        if self._engine.dialect.name != "postgresql":
            return True
        if self._connection is not None:
            try:
                await self._connection.execute(text("SELECT 1"))
                # End the ping's transaction: a session idle in a transaction is what
                # idle_in_transaction_session_timeout kills, and the lock with it.
                await self._connection.commit()
                return True
            except Exception as error:  # the connection, and with it the lock, is gone
                log.warning("lease %s lost: %s", self.name, error)
                await self._drop()
        connection = await self._engine.connect()
        try:
            taken = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            )
            await connection.commit()  # the lock is the session's, not the transaction's
        except BaseException:
            await connection.close()
            raise
        if not taken:
            await connection.close()
            return False
        log.info("lease %s taken", self.name)
        self._connection = connection
        return True

    async def release(self) -> None:
        """Give the lease up (on shutdown), so a stand-by takes it at once."""
        if self._connection is None:
            return
        try:
            await self._connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": self._key}
            )
            await self._connection.commit()
        finally:
            await self._drop()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.invalidate()  # never back to the pool: it may hold the lock
            finally:
                await connection.close()


class PartitionLease:
    """A lease held by the replica its consumer group assigned ``partition`` of ``topic`` to.

    Kafka gives each partition to one member of a group at a time, so the group's own assignment
    picks the holder, with no database: standard consumer-group behaviour only, the same on
    Apache Kafka and on the embedded broker. ``assignment`` returns the consumer's current
    assignment (aiokafka's ``AIOKafkaConsumer.assignment()``; empty before it joins).

    While the group rebalances a holder can lose the partition before its new owner is told, so
    for a moment nobody holds the lease; a holder cut off from the broker keeps believing it owns
    the partition until it notices (at most the group's session timeout), so two replicas may
    both hold it briefly. Both are harmless for alerts: a round is skipped or said twice, and the
    incident log folds alerts by fingerprint.
    """

    def __init__(
        self,
        name: str,
        assignment: Callable[[], Collection[TopicPartition]],
        topic: str,
        partition: int = 0,
    ) -> None:
        self.name = name
        self._assignment = assignment
        self._partition = TopicPartition(topic, partition)
        self._holding = False

    @property
    def holding(self) -> bool:
        """Whether this replica held the lease at its last :meth:`held` check."""
        return self._holding

    async def held(self) -> bool:
        """Whether the consumer is assigned the lease's partition now."""
        holding = self._partition in self._assignment()
        if holding != self._holding:
            log.info("lease %s %s", self.name, "taken" if holding else "lost")
        self._holding = holding
        return holding

    async def release(self) -> None:
        """Stop counting as the holder. A replica cannot give a partition away: a stand-by
        takes the lease over when the group assigns it the partition, which happens when the
        holder leaves the group (its consumer stops) or dies (its session times out)."""
        self._holding = False


def every_while_held(
    lease: ReplicaLease, round_of_work: Callable[[], Awaitable[object]], every_s: float
) -> Callable[[], Coroutine[Any, Any, None]]:
    """A background task: one round of the work every ``every_s`` seconds in the replica that
    holds ``lease`` (the others stand by, checking it as often), until cancelled; the lease is
    released on the way out, so a stand-by takes over at its next check."""

    async def run() -> None:
        try:
            while True:
                if await lease.held():
                    await round_of_work()
                await asyncio.sleep(every_s)
        finally:
            await lease.release()

    return run

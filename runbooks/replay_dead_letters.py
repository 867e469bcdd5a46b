"""Replay the dead-lettered messages of one topic after the cause was fixed.

Every dead letter keeps the original key, headers and bytes; this writes them back to the topic
they came from, in their original order, with a `vigil-replayed-from` header naming the dead
letter and a `vigil-replay-run` header naming the run. Consumers handle each event id once, so a
message already handled is not handled again.

Each run replays only the letters no earlier run replayed: the checkpoint is the committed offset
of the consumer group `replay-dead-letters.<topic>` (with the topic prefix; with --reason, the
reasons are appended) on the dead-letter topic, committed once the broker acknowledged every
replayed message. A run that fails before that replays the same letters next time (consumers drop
the repeats by event id). Letters that were themselves replays (dead-lettered again) are never
replayed: they wait for a person.

With --verify it instead checks that none of the messages replayed by run --run came back to the
dead-letter topic; failures of other runs, and older ones, do not count.

Exit codes:
  0  replayed (with --verify: nothing this run replayed came back to the dead-letter topic)
  1  with --verify: some messages this run replayed were dead-lettered again
  2  bad arguments or environment
  3  nothing to replay
  4  the broker could not be reached
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import time
import uuid
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from vigil_runbook import API_ERROR, DONE, NOT_APPLICABLE, UNHEALTHY, USAGE, fail, read_events

from contracts import DeadLetterReason, Envelope, MessageDeadLettered, Topic
from contracts.wire import DecodeError, decode

REPLAYED_FROM = "vigil-replayed-from"
REPLAY_RUN = "vigil-replay-run"
_READ_FOR_S = 5.0
_READ_AT_MOST_S = 60.0  # within the runbook's 120 s timeout, with room to replay


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--topic", required=True, help="logical topic name, e.g. alerts")
    parser.add_argument(
        "--reason",
        action="append",
        choices=[reason.value for reason in DeadLetterReason],
        help="only letters set aside for this reason (repeatable; default: all)",
    )
    parser.add_argument(
        "--run",
        help="id of this run (default: VIGIL_RUN_ID, set by the runner); --verify checks the "
        "replays of this run",
    )
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--wait-seconds", type=float, default=15.0)
    args = parser.parse_args()
    try:
        topic = Topic(args.topic)
    except ValueError:
        fail(USAGE, f"unknown topic {args.topic!r}")
    prefix = os.environ.get("VIGIL_KAFKA_TOPIC_PREFIX", "")
    reasons = set(args.reason or [r.value for r in DeadLetterReason])

    given = args.run or os.environ.get("VIGIL_RUN_ID")
    run = given or f"manual-{uuid.uuid4().hex[:12]}"
    if len(run) > 200:
        fail(USAGE, "--run must be at most 200 characters")

    if args.verify:
        if not given:
            fail(USAGE, "--verify needs --run (or VIGIL_RUN_ID), the id of the run to verify")
        time.sleep(args.wait_seconds)  # let the consumers take the replayed messages
        again = [
            letter
            for letter in read_events(
                Topic.DEAD_LETTER,
                lambda e: (
                    isinstance(e, MessageDeadLettered)
                    and e.original_topic == prefix + topic.value
                    and e.original_headers.get(REPLAY_RUN) == run
                ),
                until=lambda _: False,
                timeout_s=_READ_FOR_S,
            )
            if isinstance(letter, MessageDeadLettered)
        ]
        if again:
            fail(
                UNHEALTHY,
                f"{len(again)} message(s) replayed by {run} were dead-lettered again: "
                f"{again[0].error}",
            )
        print(f"no message replayed by {run} came back to the dead-letter topic")
        raise SystemExit(DONE)

    def wanted(event: Envelope) -> bool:
        return (
            isinstance(event, MessageDeadLettered)
            and event.original_topic == prefix + topic.value
            and event.reason.value in reasons
            and REPLAYED_FROM not in event.original_headers
        )

    checkpoint = f"{prefix}replay-dead-letters.{topic.value}"
    if args.reason:
        checkpoint += "." + "+".join(sorted(reasons))
    try:
        replayed = asyncio.run(_replay_since_checkpoint(prefix, checkpoint, wanted, run))
    except KafkaError as error:
        fail(API_ERROR, f"broker: {error}")
    if not replayed:
        fail(NOT_APPLICABLE, f"no dead letters of {topic.value} to replay since the last run")
    print(f"run {run} replayed {replayed} message(s) to {prefix + topic.value}")
    raise SystemExit(DONE)


async def _replay_since_checkpoint(
    prefix: str, checkpoint: str, wanted: Callable[[Envelope], bool], run: str
) -> int:
    """Read the dead-letter topic from the group's committed offsets, replay what ``wanted``
    accepts, then commit the offsets read past; return how many were replayed."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=os.environ["VIGIL_KAFKA_BOOTSTRAP_SERVERS"],
        group_id=checkpoint,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        name = prefix + Topic.DEAD_LETTER.value
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        if not partitions:
            return 0
        consumer.assign(partitions)
        for partition in partitions:
            committed = await consumer.committed(partition)
            if committed is None:
                await consumer.seek_to_beginning(partition)
            else:
                consumer.seek(partition, committed)
        letters: list[MessageDeadLettered] = []
        reached: dict[TopicPartition, int] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READ_AT_MOST_S
        while loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            if not batches:
                break  # caught up: what comes later is the next run's
            for partition, records in batches.items():
                for record in records:
                    reached[partition] = record.offset + 1
                    letter = _letter(record.value)
                    if letter is not None and wanted(letter):
                        letters.append(letter)
        await _replay(letters, run)
        if reached:
            await consumer.commit(
                {partition: OffsetAndMetadata(offset, run) for partition, offset in reached.items()}
            )
        return len(letters)
    finally:
        await consumer.stop()


def _letter(value: bytes | None) -> MessageDeadLettered | None:
    try:
        event = decode(Topic.DEAD_LETTER, value)
    except (DecodeError, ValueError):
        return None  # not a dead letter Vigil can replay: nothing to do with it
    return event if isinstance(event, MessageDeadLettered) else None


async def _replay(letters: list[MessageDeadLettered], run: str) -> None:
    if not letters:
        return
    producer = AIOKafkaProducer(
        bootstrap_servers=os.environ["VIGIL_KAFKA_BOOTSTRAP_SERVERS"], acks="all"
    )
    await producer.start()
    try:
        for letter in sorted(letters, key=lambda e: (e.original_topic, e.partition, e.offset)):
            headers = [
                (k, v.encode())
                for k, v in letter.original_headers.items()
                if k not in (REPLAYED_FROM, REPLAY_RUN)
            ]
            headers.append(
                (
                    REPLAYED_FROM,
                    f"{letter.original_topic}/{letter.partition}/{letter.offset}".encode(),
                )
            )
            headers.append((REPLAY_RUN, run.encode()))
            await producer.send_and_wait(
                letter.original_topic,
                base64.b64decode(letter.original_value_b64),
                key=base64.b64decode(letter.original_key_b64) if letter.original_key_b64 else None,
                headers=headers,
            )
    finally:
        await producer.stop()


if __name__ == "__main__":
    main()

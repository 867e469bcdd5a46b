"""Replay the dead-lettered messages of one topic after the cause was fixed.

Every dead letter keeps the original key, headers and bytes; this writes them back to the topic
they came from, in their original order, with a `vigil-replayed-from` header naming the dead
letter. Consumers handle each event id once, so a message already handled is not handled again.
With --verify it instead checks that none of the replayed messages was dead-lettered again.

Exit codes:
  0  replayed (with --verify: nothing replayed came back to the dead-letter topic)
  1  with --verify: some replayed messages were dead-lettered again
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

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from vigil_runbook import API_ERROR, DONE, NOT_APPLICABLE, UNHEALTHY, USAGE, fail, read_events

from contracts import DeadLetterReason, Envelope, MessageDeadLettered, Topic

REPLAYED_FROM = "vigil-replayed-from"


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
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--wait-seconds", type=float, default=15.0)
    args = parser.parse_args()
    try:
        topic = Topic(args.topic)
    except ValueError:
        fail(USAGE, f"unknown topic {args.topic!r}")
    prefix = os.environ.get("VIGIL_KAFKA_TOPIC_PREFIX", "")
    reasons = set(args.reason or [r.value for r in DeadLetterReason])

    if args.verify:
        time.sleep(args.wait_seconds)  # let the consumers take the replayed messages
        again = [
            letter
            for letter in read_events(
                Topic.DEAD_LETTER,
                lambda e: (
                    isinstance(e, MessageDeadLettered)
                    and e.original_topic == prefix + topic.value
                    and REPLAYED_FROM in e.original_headers
                ),
                until=lambda _: False,
                timeout_s=5.0,
            )
            if isinstance(letter, MessageDeadLettered)
        ]
        if again:
            fail(
                UNHEALTHY,
                f"{len(again)} replayed message(s) were dead-lettered again: {again[0].error}",
            )
        print("no replayed message came back to the dead-letter topic")
        raise SystemExit(DONE)

    def wanted(event: Envelope) -> bool:
        return (
            isinstance(event, MessageDeadLettered)
            and event.original_topic == prefix + topic.value
            and event.reason.value in reasons
            and REPLAYED_FROM not in event.original_headers
        )

    letters = [
        e
        for e in read_events(Topic.DEAD_LETTER, wanted, until=lambda _: False, timeout_s=5.0)
        if isinstance(e, MessageDeadLettered)
    ]
    if not letters:
        fail(NOT_APPLICABLE, f"no dead letters of {topic.value} to replay")
    try:
        asyncio.run(_replay(letters))
    except KafkaError as error:
        fail(API_ERROR, f"broker: {error}")
    print(f"replayed {len(letters)} message(s) to {prefix + topic.value}")
    raise SystemExit(DONE)


async def _replay(letters: list[MessageDeadLettered]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=os.environ["VIGIL_KAFKA_BOOTSTRAP_SERVERS"], acks="all"
    )
    await producer.start()
    try:
        for letter in sorted(letters, key=lambda e: (e.original_topic, e.partition, e.offset)):
            headers = [(k, v.encode()) for k, v in letter.original_headers.items()]
            headers.append(
                (
                    REPLAYED_FROM,
                    f"{letter.original_topic}/{letter.partition}/{letter.offset}".encode(),
                )
            )
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

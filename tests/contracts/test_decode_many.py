"""Decoding a fetch in one validation gives, record by record, what decoding each alone gives."""

from __future__ import annotations

import pytest

from contracts import Topic
from contracts.wire import DecodeError, decode, decode_many, encode
from tests.factories import make_alert


def outcome(topic: Topic, value: bytes | None) -> object:
    try:
        return decode(topic, value)
    except DecodeError as error:
        return ("error", str(error), error.undecodable)


def as_outcomes(decoded: list[object]) -> list[object]:
    return [
        ("error", str(item), item.undecodable) if isinstance(item, DecodeError) else item
        for item in decoded
    ]


def test_a_clean_batch_decodes_to_its_events_in_order() -> None:
    alerts = [make_alert(summary=f"alert {i}") for i in range(50)]
    assert decode_many(Topic.ALERTS, [encode(alert) for alert in alerts]) == alerts


@pytest.mark.parametrize(
    "poison",
    [
        None,
        b"",
        b"{not json",
        b"{}",
        b"[]",
        b"null",
        b'{"type": "alert.raised"}',
        b'{"type": "incident.opened", "producer": "x"}',
        # Two events in one value: joined into one array they would spill into the next record.
        encode(make_alert()) + b"," + encode(make_alert()),
        # An event inside a JSON string is text, not an event: decoded once only.
        b'"' + encode(make_alert()).replace(b'"', b'\\"') + b'"',
        encode(make_alert()).replace(b'"recall":0.81', b'"recall":NaN'),
        b"\xff\xfe",
    ],
)
def test_poison_in_a_batch_fails_alone_with_the_error_decode_gives(poison: bytes | None) -> None:
    good = [encode(make_alert(summary=f"alert {i}")) for i in range(4)]
    values = [*good[:2], poison, *good[2:]]
    decoded = decode_many(Topic.ALERTS, values)
    assert as_outcomes(list(decoded)) == [outcome(Topic.ALERTS, value) for value in values]
    assert isinstance(decoded[2], DecodeError)
    assert not any(isinstance(item, DecodeError) for i, item in enumerate(decoded) if i != 2)


def test_an_empty_batch_decodes_to_nothing() -> None:
    assert decode_many(Topic.ALERTS, []) == []

"""distinct_events leaves out only the copies of an event id: the tests that count with it still
see a second event, however alike, and still see the order events came in."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from tests.factories import make_alert
from tests.kafka_tools import distinct_events


def record(value: bytes) -> SimpleNamespace:
    return SimpleNamespace(value=value)


def test_copies_of_one_event_id_are_left_out_and_the_first_copy_keeps_its_place() -> None:
    first, second = make_alert(summary="first"), make_alert(summary="second")
    records = [record(e.model_dump_json().encode()) for e in (first, second, first, second)]
    assert distinct_events(records) == records[:2]


def test_two_events_alike_but_for_their_event_id_are_both_kept() -> None:
    alert = make_alert()
    again = alert.model_copy(update={"event_id": make_alert().event_id})
    records = [record(e.model_dump_json().encode()) for e in (alert, again)]
    assert distinct_events(records) == records


def test_identical_only_keeps_a_second_event_with_the_same_id_that_differs_in_any_byte() -> None:
    alert = make_alert()
    later = alert.model_copy(update={"occurred_at": alert.occurred_at + timedelta(seconds=1)})
    records = [record(e.model_dump_json().encode()) for e in (alert, alert, later)]
    assert distinct_events(records, identical_only=True) == [records[0], records[2]]
    assert distinct_events(records) == [records[0]]

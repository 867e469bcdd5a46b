"""The Kafka headers of an event: Vigil's own and the CloudEvents binding's, from the event."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from contracts import Envelope
from contracts.wire import CLOUDEVENTS_HEADERS, headers_for, kafka_headers
from tests.factories import make_alert, sample_events


@pytest.mark.parametrize("event", sample_events(), ids=lambda event: event.type)
def test_every_event_has_each_header_once_with_its_own_values(event: Envelope) -> None:
    pairs = kafka_headers(event)
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names))
    assert set(CLOUDEVENTS_HEADERS) <= set(names)
    headers = headers_for(event)
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == headers["vigil-event-id"] == str(event.event_id)
    assert headers["ce_type"] == headers["vigil-event-type"] == event.type
    assert headers["ce_source"] == f"/vigil/{event.producer}"
    assert headers["ce_time"] == event.occurred_at.isoformat()
    assert headers["content-type"] == "application/json"


def test_a_producer_name_that_is_no_uri_segment_is_percent_encoded_in_the_source() -> None:
    odd = make_alert(producer="ops team/ü?#")
    source = headers_for(odd)["ce_source"]
    assert source == "/vigil/ops%20team%2F%C3%BC%3F%23"
    assert unquote(source.removeprefix("/vigil/")) == odd.producer
    assert headers_for(odd)["vigil-producer"] == odd.producer


def test_headers_of_the_same_kind_of_event_differ_only_where_the_events_do() -> None:
    first, second = make_alert(), make_alert(correlation_id="inc-7")
    a, b = headers_for(first), headers_for(second)
    differing = {name for name in a if a[name] != b[name]}
    assert differing <= {"ce_id", "vigil-event-id", "ce_time", "correlation_id"}
    assert b["correlation_id"] == "inc-7"
    assert a["correlation_id"] == str(first.event_id)
    assert headers_for(make_alert(producer="drift-detector"))["ce_source"] == (
        "/vigil/drift-detector"
    )

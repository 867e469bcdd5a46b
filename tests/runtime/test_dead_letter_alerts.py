"""Dead-letter alerts without a broker: one per topic per interval, with the count; never an
alert about an alert's own dead letter; a failed publish never fails the consumer."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

import pytest

from contracts import AlertKind, AlertRaised, DeadLetterReason, Envelope, LabelRecorded
from contracts.alerts import alert_fingerprint
from contracts.wire import encode
from services.runtime import EventConsumer, KafkaSettings, RetryPolicy, ServiceMetrics
from services.runtime.dead_letter_alerts import PLATFORM_MODEL, DeadLetterAlerts
from tests.clock import FakeClock
from tests.factories import make_alert
from tests.runtime.test_consumer import records

INVALID = DeadLetterReason.INVALID


def make_alerts(clock: FakeClock[float], interval_s: float = 60.0) -> DeadLetterAlerts:
    return DeadLetterAlerts(
        service="monitor", alerts_topic="p.alerts", interval_s=interval_s, clock=clock
    )


def test_the_first_dead_letter_alerts_at_once_and_a_burst_is_counted_into_the_next() -> None:
    clock = FakeClock(1000.0)
    alerts = make_alerts(clock)
    assert alerts.take_due() == []
    alerts.note("p.labels", b"\x00junk", DeadLetterReason.UNDECODABLE, "not JSON")
    (first,) = alerts.take_due()
    assert first.alert.kind is AlertKind.DEAD_LETTERS
    assert first.alert.evidence["count"] == 1
    assert first.alert.model == PLATFORM_MODEL
    assert first.alert.fingerprint == alert_fingerprint(
        "vigil", None, AlertKind.DEAD_LETTERS, "monitor/p.labels"
    )
    for _ in range(49):
        alerts.note("p.labels", b"{}", INVALID, "model: Field required")
    clock.now += 59.9
    assert alerts.take_due() == []  # rate-limited
    clock.now += 0.1
    (second,) = alerts.take_due()
    assert second.alert.evidence["count"] == 49
    assert second.alert.evidence["reasons"] == {"invalid": 49}
    assert second.alert.fingerprint == first.alert.fingerprint
    assert alerts.take_due() == []
    clock.now += 3600
    assert alerts.take_due() == []  # nothing new: nothing to say


def test_topics_are_counted_apart() -> None:
    alerts = make_alerts(FakeClock(1000.0))
    alerts.note("p.labels", b"x", INVALID, "e")
    alerts.note("p.metrics", b"x", INVALID, "e")
    alerts.note("p.metrics", b"x", INVALID, "e")
    due = {pending.topic: pending.alert.evidence["count"] for pending in alerts.take_due()}
    assert due == {"p.labels": 1, "p.metrics": 2}


def test_the_model_is_the_letters_own_when_they_all_name_one_valid_model() -> None:
    alerts = make_alerts(FakeClock(1000.0))
    one = json.dumps({"model": "breast-cancer", "x": 1}).encode()
    alerts.note("p.labels", one, INVALID, "e")
    alerts.note("p.labels", one, INVALID, "e")
    (pending,) = alerts.take_due()
    assert pending.alert.model == "breast-cancer"
    assert pending.alert.fingerprint.startswith("breast-cancer:v-:dead_letters:")

    for value in (
        json.dumps({"model": "breast-cancer"}).encode() + b"}",  # not JSON: names nothing
        json.dumps({"model": "Not A Name!"}).encode(),
        json.dumps({"model": 7}).encode(),
        json.dumps(["model"]).encode(),
        b"[" * 100_000,  # too deep for the parser
        None,
    ):
        other = make_alerts(FakeClock(1000.0))
        other.note("p.labels", one, INVALID, "e")
        other.note("p.labels", value, INVALID, "e")
        (mixed,) = other.take_due()
        assert mixed.alert.model == PLATFORM_MODEL, value
        assert mixed.alert.evidence["without_model"] == 1


def test_a_dead_letters_alert_that_is_itself_dead_lettered_raises_nothing() -> None:
    alerts = make_alerts(FakeClock(1000.0), interval_s=0.001)
    own = make_alert(kind=AlertKind.DEAD_LETTERS)
    assert not alerts.note("p.alerts", encode(own), INVALID, "refused")
    assert alerts.take_due() == []
    # Another kind of alert dead-lettered on the alerts topic does raise one.
    assert alerts.note("p.alerts", encode(make_alert()), INVALID, "refused")
    assert len(alerts.take_due()) == 1
    # And a dead_letters alert on another topic is just bytes on that topic.
    assert alerts.note("p.labels", encode(own), INVALID, "refused")


def test_an_alert_given_back_is_due_an_interval_later_with_its_count() -> None:
    clock = FakeClock(1000.0)
    alerts = make_alerts(clock)
    alerts.note("p.labels", b"x", INVALID, "first")
    (pending,) = alerts.take_due()
    alerts.note("p.labels", b"x", DeadLetterReason.HANDLER_FAILED, "second")
    alerts.give_back(pending)
    clock.now += 59
    assert alerts.take_due() == []  # not retried every second
    clock.now += 1
    (again,) = alerts.take_due()
    assert again.alert.evidence["count"] == 2
    assert again.alert.evidence["reasons"] == {"handler_failed": 1, "invalid": 1}


@pytest.mark.parametrize("interval", [0.0, -1.0, math.nan, math.inf])
def test_an_interval_that_is_not_a_positive_finite_number_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        make_alerts(FakeClock(1000.0), interval_s=interval)


class AlertsFailPublisher:
    """Takes dead letters, refuses alerts (the alerts topic is down, say)."""

    def __init__(self) -> None:
        self.published: list[Envelope] = []
        self.refuse_alerts = True

    async def publish(self, event: Envelope) -> None:
        if isinstance(event, AlertRaised) and self.refuse_alerts:
            raise ConnectionError("alerts topic unavailable")
        self.published.append(event)

    async def publish_many(self, events: Iterable[Envelope]) -> None:
        for event in events:
            await self.publish(event)


async def test_an_alert_that_cannot_be_published_does_not_fail_the_batch_and_is_raised_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = AlertsFailPublisher()
    clock = FakeClock(1000.0)
    consumer = EventConsumer(
        service="monitor",
        group_id="monitor",
        publisher=publisher,
        metrics=ServiceMetrics("monitor"),
        kafka=KafkaSettings(),
        retry=RetryPolicy(attempts=1, first_delay_s=0),
        alerts=DeadLetterAlerts(
            service="monitor", alerts_topic="alerts", interval_s=60, clock=clock
        ),
    )
    handled: list[LabelRecorded] = []

    async def on_label(label: LabelRecorded) -> None:
        handled.append(label)

    consumer.on(LabelRecorded, on_label)
    await consumer.handle(records(b"junk", b"more junk", topic="labels"))
    assert [type(e).__name__ for e in publisher.published] == ["MessageDeadLettered"] * 2
    assert "could not raise the dead_letters alert about labels" in caplog.text

    publisher.refuse_alerts = False
    await consumer.raise_dead_letter_alerts()
    assert not [e for e in publisher.published if isinstance(e, AlertRaised)]
    clock.now += 60
    await consumer.raise_dead_letter_alerts()
    (alert,) = [e for e in publisher.published if isinstance(e, AlertRaised)]
    assert alert.evidence["count"] == 2

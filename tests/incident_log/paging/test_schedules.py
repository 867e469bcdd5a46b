"""Who is on call: rotations hand off at their local hour (across daylight saving), later layers
win, overrides win over layers from their start time, and the answer says until when it holds."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from pydantic import ValidationError

from services.incident_log.paging.schedules import Layer, Override, Rotation, Schedule, on_call

MONDAY = date(2026, 11, 2)  # a Monday


def weekly(members: list[str], **overrides: object) -> Layer:
    values: dict[str, object] = {
        "name": "primary",
        "members": members,
        "rotation": Rotation.WEEKLY,
        "handoff_time": time(9, 0),
        "handoff_weekday": 0,
        "timezone": "Europe/Berlin",
        "start": MONDAY,
    }
    return Layer.model_validate(values | overrides)


def override(person: str, start: datetime, end: datetime, created: datetime) -> Override:
    return Override(
        id=f"ov-{person}",
        schedule="ops",
        person=person,
        starts_at=start,
        ends_at=end,
        created_at=created,
        created_by="admin",
    )


def test_a_weekly_rotation_hands_off_at_its_local_hour_on_its_weekday() -> None:
    layer = weekly(["ana", "bo", "cy"])
    # 09:00 in Berlin in November is 08:00 UTC.
    assert layer.member_at(datetime(2026, 11, 2, 8, 0, tzinfo=UTC)) == "ana"
    assert layer.member_at(datetime(2026, 11, 9, 7, 59, tzinfo=UTC)) == "ana"
    assert layer.member_at(datetime(2026, 11, 9, 8, 0, tzinfo=UTC)) == "bo"
    assert layer.member_at(datetime(2026, 11, 16, 8, 0, tzinfo=UTC)) == "cy"
    assert layer.member_at(datetime(2026, 11, 23, 8, 0, tzinfo=UTC)) == "ana"
    assert layer.member_at(datetime(2026, 11, 2, 7, 59, tzinfo=UTC)) is None  # before the start


def test_a_daily_rotation_keeps_its_local_hour_across_daylight_saving() -> None:
    layer = weekly(["ana", "bo"], rotation=Rotation.DAILY, start=date(2026, 3, 27))
    # Berlin moves to summer time on 2026-03-29: 09:00 local is 08:00 UTC before, 07:00 after.
    assert layer.member_at(datetime(2026, 3, 28, 7, 59, tzinfo=UTC)) == "ana"
    assert layer.member_at(datetime(2026, 3, 28, 8, 0, tzinfo=UTC)) == "bo"
    assert layer.member_at(datetime(2026, 3, 30, 6, 59, tzinfo=UTC)) == "ana"
    assert layer.member_at(datetime(2026, 3, 30, 7, 0, tzinfo=UTC)) == "bo"
    assert layer.next_handoff(datetime(2026, 3, 29, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 30, 7, 0, tzinfo=UTC
    )


def test_a_later_layer_wins_where_it_has_someone() -> None:
    base = weekly(["ana", "bo"])
    holiday_cover = weekly(["dee"], name="cover", start=date(2026, 11, 16))
    schedule = Schedule(name="ops", layers=[base, holiday_cover])
    assert on_call(schedule, [], datetime(2026, 11, 10, tzinfo=UTC)).person == "bo"
    answer = on_call(schedule, [], datetime(2026, 11, 17, tzinfo=UTC))
    assert (answer.person, answer.layer) == ("dee", "cover")


def test_an_override_changes_who_is_on_call_from_its_start_and_the_newest_wins() -> None:
    schedule = Schedule(name="ops", layers=[weekly(["ana", "bo"])])
    tuesday_night = datetime(2026, 11, 3, 18, 0, tzinfo=UTC)
    first = override("bo", tuesday_night, tuesday_night + timedelta(hours=12), tuesday_night)
    later = override(
        "cy",
        tuesday_night + timedelta(hours=6),
        tuesday_night + timedelta(hours=8),
        tuesday_night + timedelta(minutes=1),
    )
    before = on_call(schedule, [first, later], tuesday_night - timedelta(seconds=1))
    assert before.person == "ana"
    assert before.until == tuesday_night  # the answer changes when the override starts
    assert on_call(schedule, [first, later], tuesday_night).person == "bo"
    covered = on_call(schedule, [first, later], tuesday_night + timedelta(hours=7))
    assert (covered.person, covered.override) == ("cy", "ov-cy")
    assert on_call(schedule, [first, later], tuesday_night + timedelta(hours=12)).person == "ana"


@pytest.mark.parametrize(
    "bad",
    [
        {"timezone": "Mars/Olympus"},
        {"members": []},
        {"handoff_weekday": 7},
        {"members": [""]},
    ],
)
def test_a_layer_refuses_what_cannot_rotate(bad: dict[str, object]) -> None:
    good = weekly(["ana"]).model_dump()
    with pytest.raises(ValidationError):
        Layer.model_validate(good | bad)


def test_layer_names_are_unique_within_a_schedule() -> None:
    with pytest.raises(ValidationError, match="unique"):
        Schedule(name="ops", layers=[weekly(["ana"]), weekly(["bo"])])

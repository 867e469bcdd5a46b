"""On-call schedules: rotations in layers, overrides on top, and who is on call at a moment.

Pure. A schedule has layers; each layer rotates its members daily or weekly, handing off at a
set local time (and weekday) in its own time zone, from its start date. Calendar arithmetic is
done in local time, so a hand-off stays at 09:00 across daylight-saving changes. A later layer
wins where it has someone (PagerDuty's stacking); an override ("I cover Tuesday night") wins over
every layer for its time range, the most recently created one first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.incidents import Tier

__all__ = ["Layer", "OnCall", "Override", "Rotation", "Schedule", "on_call"]

NAME_PATTERN = r"^[\w.@-]+$"


class Rotation(StrEnum):
    """How often a layer hands off to its next member."""

    DAILY = "daily"
    WEEKLY = "weekly"


class Layer(BaseModel):
    """One rotation of members."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    members: list[str] = Field(
        min_length=1, max_length=200, description="People in rotation order."
    )
    rotation: Rotation = Rotation.WEEKLY
    handoff_time: time = Field(default=time(9, 0), description="Local time of the hand-off.")
    handoff_weekday: int = Field(
        default=0, ge=0, le=6, description="Weekly hand-off day, 0 = Monday."
    )
    timezone: str = Field(default="UTC", description="IANA time zone of the hand-off.")
    start: date = Field(
        ge=date(2000, 1, 1),
        le=date(2199, 12, 31),
        description="The first member's first shift begins this day.",
    )

    @field_validator("members")
    @classmethod
    def _names(cls, members: list[str]) -> list[str]:
        for member in members:
            if not member or len(member) > 100:
                raise ValueError(f"not a person's name: {member!r}")
        return members

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}") from None
        return zone

    @field_validator("handoff_time")
    @classmethod
    def _naive_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("give the hand-off time without a zone; the layer's timezone applies")
        return value

    def member_at(self, at: datetime) -> str | None:
        """Who this layer has on call at ``at``; ``None`` before its first shift."""
        zone = ZoneInfo(self.timezone)
        local = at.astimezone(zone)
        shift_day = local.date() if local.time() >= self.handoff_time else local.date() - _DAY
        first_day = self.start
        if self.rotation is Rotation.WEEKLY:
            shift_day -= timedelta(days=(shift_day.weekday() - self.handoff_weekday) % 7)
            first_day -= timedelta(days=(first_day.weekday() - self.handoff_weekday) % 7)
            if datetime.combine(self.start, self.handoff_time, zone) > local:
                return None
            shift = (shift_day - first_day).days // 7
        else:
            if shift_day < first_day:
                return None
            shift = (shift_day - first_day).days
        return self.members[shift % len(self.members)]

    def next_handoff(self, at: datetime) -> datetime | None:
        """The first hand-off strictly after ``at`` (in ``at``'s zone); ``None`` past the
        calendar's end."""
        zone = ZoneInfo(self.timezone)
        local = at.astimezone(zone)
        day = max(local.date(), self.start)
        try:
            for _ in range(9):  # a week and a day always holds the next hand-off
                candidate = datetime.combine(day, self.handoff_time, zone)
                due_day = (
                    self.rotation is Rotation.DAILY
                    or candidate.weekday() == self.handoff_weekday
                    or day == self.start
                )
                if candidate > local and due_day:
                    return candidate.astimezone(at.tzinfo)
                day += _DAY
        except OverflowError:
            return None
        return None


_DAY = timedelta(days=1)


class Schedule(BaseModel):
    """A named on-call schedule, optionally the default for one tier."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    tier: Tier | None = Field(
        default=None, description="The tier this schedule answers for by default."
    )
    layers: list[Layer] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _unique_layers(self) -> Self:
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError("layer names must be unique")
        return self


class Override(BaseModel):
    """Someone covers a schedule for a time range."""

    model_config = ConfigDict(frozen=True)

    id: str
    schedule: str
    person: str
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    created_at: AwareDatetime
    created_by: str

    def covers(self, at: datetime) -> bool:
        """Whether the override is in force at ``at``."""
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True)
class OnCall:
    """Who a schedule has on call at a moment, and why."""

    schedule: str
    person: str | None
    layer: str | None
    override: str | None
    until: datetime | None


def on_call(schedule: Schedule, overrides: Sequence[Override], at: datetime) -> OnCall:
    """Who is on call for ``schedule`` at ``at``: the newest override in force, else the last
    layer that has someone. ``until`` is when that answer may next change."""
    in_force = sorted(
        (o for o in overrides if o.schedule == schedule.name and o.covers(at)),
        key=lambda o: o.created_at,
    )
    handoffs = [h for layer in schedule.layers if (h := layer.next_handoff(at)) is not None]
    starts = [o.starts_at for o in overrides if o.schedule == schedule.name and o.starts_at > at]
    if in_force:
        chosen = in_force[-1]
        return OnCall(schedule.name, chosen.person, None, chosen.id, chosen.ends_at)
    until = min([*handoffs, *starts], default=None)
    for layer in reversed(schedule.layers):
        person = layer.member_at(at)
        if person is not None:
            return OnCall(schedule.name, person, layer.name, None, until)
    return OnCall(schedule.name, None, None, None, until)

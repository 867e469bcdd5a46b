"""Whom an incident change pages: a page when a tier is reached (only the last of several in one
operation), a reminder while unacknowledged, notices to everyone paged on acknowledgement and
resolution; and how targets become people (schedules, named people, owners, fallbacks)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from contracts import AlertKind, EscalationTrigger, NotificationReason, Tier
from services.incident_log.domain import Incident, TimerKind
from services.incident_log.paging.planning import (
    PAGED,
    PageIntent,
    page_intents,
    resolve_recipients,
    retry_delay,
)
from services.incident_log.paging.schedules import Layer, Schedule
from tests.factories import T0, make_alert
from tests.incident_log.policies import TIERS, make_policy

REMINDING = {
    "L1": {**TIERS["L1"], "remind_every_minutes": 5, "notify": ["schedule:ops", "person:lee"]},
    "L2": {**TIERS["L2"], "remind_every_minutes": 10},
    "L3": TIERS["L3"],
}
POLICY = make_policy(
    routes=[
        {
            "name": "performance-decay",
            "match": {"kinds": ["metric_decay"]},
            "runbooks": ["rollback-model"],
            "tiers": REMINDING,
        },
        {"name": "default", "runbooks": [], "tiers": REMINDING},
    ]
)


def opened(kind: AlertKind = AlertKind.METRIC_DECAY) -> tuple[Incident, list[PageIntent]]:
    incident, effects = Incident.open_from_alert("inc-1", make_alert(kind=kind), POLICY, T0)
    return incident, list(page_intents(incident, effects))


def test_routing_at_level_one_pages_the_tiers_targets() -> None:
    _, intents = opened()
    (page,) = intents
    assert page.reason is NotificationReason.PAGE
    assert page.tier is Tier.L1
    assert page.targets == ("schedule:ops", "person:lee")


def test_a_route_without_runbooks_pages_level_two_only() -> None:
    incident, intents = opened(AlertKind.DATA_DRIFT)
    assert incident.tier is Tier.L2
    assert [(i.reason, i.tier, i.targets) for i in intents] == [
        (NotificationReason.PAGE, Tier.L2, ("tier",))
    ]


def test_nothing_is_paged_before_the_group_wait_routes_the_incident() -> None:
    incident, effects = Incident.open_from_alert(
        "inc-1", make_alert(), POLICY, T0, group_wait=timedelta(seconds=30)
    )
    assert page_intents(incident, effects) == []


def test_reminders_fall_due_until_someone_acknowledges_then_the_paged_are_told() -> None:
    incident, _ = opened()
    reminder = next(t for t in incident._tier_timers(T0) if t.kind is TimerKind.REMIND)
    assert reminder.due_at == T0 + timedelta(minutes=5)
    effects = incident.fire_timer(reminder, POLICY, reminder.due_at)
    (intent,) = page_intents(incident, effects)
    assert (intent.reason, intent.tier) == (NotificationReason.REMINDER, Tier.L1)
    (again,) = effects.timers  # the next reminder
    assert again.due_at == T0 + timedelta(minutes=10)

    ack = incident.acknowledge("ana", T0 + timedelta(minutes=6))
    (notice,) = page_intents(incident, ack)
    assert (notice.reason, notice.actor, notice.targets) == (
        NotificationReason.ACKNOWLEDGED,
        "ana",
        (PAGED,),
    )
    assert incident.fire_timer(again, POLICY, again.due_at).empty  # acknowledged: no reminder


def test_escalation_pages_the_next_tier_and_resolution_tells_everyone() -> None:
    incident, _ = opened()
    escalated = incident.escalate(
        "system:incident-log", EscalationTrigger.NOT_ACKNOWLEDGED, "x", T0
    )
    (page,) = page_intents(incident, escalated)
    assert (page.reason, page.tier, page.targets) == (NotificationReason.PAGE, Tier.L2, ("tier",))
    resolved = incident.resolve("bo", "fixed", T0, force=True)
    (notice,) = page_intents(incident, resolved)
    assert (notice.reason, notice.targets) == (NotificationReason.RESOLVED, (PAGED,))


def layer(name: str, members: list[str]) -> Layer:
    return Layer(name=name, members=members, rotation="daily", start=date(2026, 1, 1))


SCHEDULES = {
    "ops": Schedule(name="ops", tier=Tier.L1, layers=[layer("a", ["ana", "bo"])]),
    "ds": Schedule(name="ds", tier=Tier.L2, layers=[layer("a", ["cy"])]),
    "oncology-ml": Schedule(name="oncology-ml", layers=[layer("a", ["dee"])]),
    "owners-l3": Schedule(name="owners-l3", tier=Tier.L3, layers=[layer("a", ["eve"])]),
}
AT = datetime(2026, 11, 3, 12, tzinfo=UTC)
PEOPLE = frozenset({"ana", "bo", "cy", "dee", "eve", "lee"})


def resolve(
    targets: list[str], tier: Tier, owners: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    found = resolve_recipients(
        targets, tier, AT, schedules=SCHEDULES, overrides=[], owners=owners, people=PEOPLE
    )
    return found.people, found.unresolved


def test_targets_resolve_to_people_once_each_in_order() -> None:
    assert resolve(["tier", "person:lee", "schedule:ds", "person:lee"], Tier.L1) == (
        ["ana", "lee", "cy"],
        [],
    )
    assert resolve(["person:nobody", "schedule:nope"], Tier.L1) == (
        [],
        ["person nobody: unknown", "schedule nope: no such schedule"],
    )


def test_owners_are_people_or_schedules_and_fall_back_to_the_tiers_schedules() -> None:
    assert resolve(["owners"], Tier.L3, ["lee", "oncology-ml"]) == (["lee", "dee"], [])
    people, unresolved = resolve(["owners"], Tier.L3, ["a-team-nobody-knows"])
    assert people == ["eve"]  # the L3 schedule
    assert unresolved == ["owner a-team-nobody-knows: neither a person nor a schedule"]
    assert resolve(["owners"], Tier.L3, []) == (["eve"], [])


def test_retries_back_off_exponentially_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    base, cap = timedelta(seconds=5), timedelta(minutes=10)
    delays = [retry_delay(n, base=base, cap=cap, rng=rng) for n in range(1, 12)]
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(cap, base * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert delays[-1] >= cap / 2
    assert retry_delay(10_000, base=base, cap=cap, rng=rng) <= cap  # no overflow

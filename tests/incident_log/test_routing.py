"""The routing policy file: validated at start with errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import PLATFORM_KINDS, AlertKind, Severity
from services.incident_log.routing import PolicyError, load_policy, route_for
from tests.incident_log.policies import TIERS, make_policy

SHIPPED = Path(__file__).resolve().parents[2] / "runbooks" / "routing.yaml"


def test_the_shipped_policy_is_valid_and_routes_every_alert_kind() -> None:
    policy = load_policy(SHIPPED)
    for kind in AlertKind:
        route = route_for(policy, "any-model", [(kind, Severity.CRITICAL)])
        assert set(route.tiers) == {"L1", "L2", "L3"}
    assert route_for(policy, "m", [(AlertKind.METRIC_DECAY, Severity.CRITICAL)]).runbooks == [
        "rollback-model"
    ]


def test_a_policy_without_a_catch_all_route_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "routes:\n  - name: only-decay\n    match: {kinds: [metric_decay]}\n"
        "    tiers: {L1: {ack_timeout_minutes: 1, mitigate_timeout_minutes: 2},"
        " L2: {ack_timeout_minutes: 1, mitigate_timeout_minutes: 2},"
        " L3: {ack_timeout_minutes: 1, mitigate_timeout_minutes: 2}}\n"
    )
    with pytest.raises(PolicyError, match="must match every alert"):
        load_policy(path)


def test_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("routes:\n  - name: x\n    tiers: {L1: {ack_timeout_minutes: -1}}\n")
    with pytest.raises(PolicyError, match=r"routing.yaml: invalid routing policy: routes\.0\."):
        load_policy(path)
    path.write_text("routes: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")


def test_unknown_keys_and_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="extra"):
        make_policy(routes=[{"name": "d", "tiers": TIERS, "runboks": []}])
    with pytest.raises(ValueError, match="kinds"):
        make_policy(routes=[{"name": "d", "match": {"kinds": ["vibes"]}, "tiers": TIERS}])


def test_an_inhibition_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="either source or retrain_in_flight"):
        make_policy(inhibitions=[{"name": "x", "target": {}}])


def test_the_shipped_policy_sends_platform_alerts_to_a_person_at_once() -> None:
    policy = load_policy(SHIPPED)
    for kind in PLATFORM_KINDS - {AlertKind.DEAD_LETTERS}:
        route = route_for(policy, "vigil", [(kind, Severity.WARNING)])
        assert (route.name, route.runbooks) == ("platform", []), kind
    dead_letters = route_for(policy, "vigil", [(AlertKind.DEAD_LETTERS, Severity.WARNING)])
    assert dead_letters.runbooks == ["replay-dead-letters"]

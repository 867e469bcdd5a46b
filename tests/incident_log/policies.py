"""Routing policies for incident-log tests, and triage under the policy Vigil ships."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from contracts import AlertRaised
from services.incident_log.domain import Incident
from services.incident_log.routing import RoutingPolicy, load_policy
from services.incident_log.triage import Triage, triage
from tests.factories import T0

SHIPPED = load_policy(Path(__file__).resolve().parents[2] / "runbooks" / "routing.yaml")
"""The routing policy in ``runbooks/routing.yaml``."""

TIERS = {
    "L1": {"ack_timeout_minutes": 10, "mitigate_timeout_minutes": 30},
    "L2": {"ack_timeout_minutes": 30, "mitigate_timeout_minutes": 240},
    "L3": {"ack_timeout_minutes": 60, "mitigate_timeout_minutes": 1440},
}


def make_policy(**overrides: Any) -> RoutingPolicy:
    document: dict[str, Any] = {
        "group_wait_seconds": 0,
        "correlation_window_minutes": 30,
        "reopen_window_minutes": 60,
        "claim_lease_minutes": 30,
        "routes": [
            {
                "name": "performance-decay",
                "match": {"kinds": ["metric_decay"]},
                "runbooks": ["rollback-model"],
                "tiers": TIERS,
            },
            {"name": "default", "runbooks": [], "tiers": TIERS},
        ],
        "inhibitions": [
            {
                "name": "probe-failure-mutes-drift",
                "source": {"kinds": ["probe_failed"]},
                "target": {"kinds": ["data_drift"]},
            },
            {
                "name": "retrain-mutes-decay",
                "retrain_in_flight": True,
                "target": {"kinds": ["metric_decay"]},
            },
        ],
    }
    return RoutingPolicy.model_validate(document | overrides)


def triage_shipped(
    alert: AlertRaised,
    *,
    unresolved: Sequence[Incident] = (),
    retraining: frozenset[str] = frozenset(),
    now: datetime = T0,
) -> Triage:
    """What ``alert`` does under the shipped policy, with no silences nor resolved incidents."""
    return triage(
        alert,
        unresolved=unresolved,
        resolved=[],
        silences=[],
        retraining_models=retraining,
        policy=SHIPPED,
        now=now,
    )

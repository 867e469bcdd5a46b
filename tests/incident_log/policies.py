"""Routing policies for incident-log tests."""

from __future__ import annotations

from typing import Any

from services.incident_log.routing import RoutingPolicy

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

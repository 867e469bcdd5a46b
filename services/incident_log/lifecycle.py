"""The incident lifecycle as data: which action moves which status where.

::

    open ──acknowledge──▶ acknowledged ──mitigate──▶ mitigating ──monitor──▶ monitoring
      │                        │                      ▲    │                    │
      └────────mitigate────────┼──────────────────────┘    │      (verification failed)
                               │                           ◀─────────mitigate───┘
    any unresolved ──resolve──▶ resolved ──reopen──▶ open
    any unresolved ──escalate─▶ open          (the next tier must acknowledge again)

``mitigate`` from ``open`` is the level-one runbook starting before anyone acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from contracts.incidents import IncidentStatus

__all__ = ["TRANSITIONS", "Action", "InvalidTransition", "allowed_actions", "next_status"]

OPEN = IncidentStatus.OPEN
ACKNOWLEDGED = IncidentStatus.ACKNOWLEDGED
MITIGATING = IncidentStatus.MITIGATING
MONITORING = IncidentStatus.MONITORING
RESOLVED = IncidentStatus.RESOLVED
UNRESOLVED = (OPEN, ACKNOWLEDGED, MITIGATING, MONITORING)


class Action(StrEnum):
    """Something that changes an incident's status."""

    ACKNOWLEDGE = "acknowledge"
    MITIGATE = "mitigate"
    MONITOR = "monitor"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    ESCALATE = "escalate"


TRANSITIONS: Mapping[tuple[IncidentStatus, Action], IncidentStatus] = {
    (OPEN, Action.ACKNOWLEDGE): ACKNOWLEDGED,
    # A runbook may be mitigating before anyone acknowledged: acknowledging keeps the status.
    (MITIGATING, Action.ACKNOWLEDGE): MITIGATING,
    (MONITORING, Action.ACKNOWLEDGE): MONITORING,
    (OPEN, Action.MITIGATE): MITIGATING,
    (ACKNOWLEDGED, Action.MITIGATE): MITIGATING,
    (MITIGATING, Action.MONITOR): MONITORING,
    (MONITORING, Action.MITIGATE): MITIGATING,
    **{(status, Action.RESOLVE): RESOLVED for status in UNRESOLVED},
    **{(status, Action.ESCALATE): OPEN for status in UNRESOLVED},
    (RESOLVED, Action.REOPEN): OPEN,
}
"""Every allowed (status, action) pair and the status it leads to; anything else is refused."""


class InvalidTransition(ValueError):
    """An action that the incident's current status does not allow."""


def allowed_actions(status: IncidentStatus) -> list[Action]:
    """Return the actions a status allows, in declaration order."""
    return [action for (source, action) in TRANSITIONS if source is status]


def next_status(status: IncidentStatus, action: Action) -> IncidentStatus:
    """Return the status an action leads to, or raise :class:`InvalidTransition` saying why.

    >>> next_status(IncidentStatus.OPEN, Action.ACKNOWLEDGE)
    <IncidentStatus.ACKNOWLEDGED: 'acknowledged'>
    """
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        allowed = ", ".join(allowed_actions(status)) or "nothing"
        raise InvalidTransition(
            f"cannot {action.value} an incident that is {status.value} (allowed: {allowed})"
        ) from None

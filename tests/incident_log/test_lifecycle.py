"""The lifecycle table, checked exhaustively: every (status, action) pair is allowed or refused."""

from __future__ import annotations

import itertools

import pytest

from contracts import IncidentStatus
from services.incident_log.lifecycle import (
    TRANSITIONS,
    Action,
    InvalidTransition,
    allowed_actions,
    next_status,
)

S = IncidentStatus
EXPECTED = {
    (S.OPEN, Action.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.OPEN, Action.MITIGATE): S.MITIGATING,
    (S.OPEN, Action.RESOLVE): S.RESOLVED,
    (S.OPEN, Action.ESCALATE): S.OPEN,
    (S.ACKNOWLEDGED, Action.MITIGATE): S.MITIGATING,
    (S.ACKNOWLEDGED, Action.RESOLVE): S.RESOLVED,
    (S.ACKNOWLEDGED, Action.ESCALATE): S.OPEN,
    (S.MITIGATING, Action.ACKNOWLEDGE): S.MITIGATING,
    (S.MITIGATING, Action.MONITOR): S.MONITORING,
    (S.MITIGATING, Action.RESOLVE): S.RESOLVED,
    (S.MITIGATING, Action.ESCALATE): S.OPEN,
    (S.MONITORING, Action.ACKNOWLEDGE): S.MONITORING,
    (S.MONITORING, Action.MITIGATE): S.MITIGATING,
    (S.MONITORING, Action.RESOLVE): S.RESOLVED,
    (S.MONITORING, Action.ESCALATE): S.OPEN,
    (S.RESOLVED, Action.REOPEN): S.OPEN,
}


@pytest.mark.parametrize(
    ("status", "action"), list(itertools.product(IncidentStatus, Action)), ids=str
)
def test_every_status_and_action_pair_is_allowed_or_refused_as_designed(
    status: IncidentStatus, action: Action
) -> None:
    expected = EXPECTED.get((status, action))
    if expected is None:
        with pytest.raises(InvalidTransition, match=f"cannot {action.value} an incident that is"):
            next_status(status, action)
    else:
        assert next_status(status, action) is expected


def test_the_table_holds_exactly_the_designed_transitions() -> None:
    assert dict(TRANSITIONS) == EXPECTED


def test_a_refusal_lists_what_is_allowed() -> None:
    with pytest.raises(InvalidTransition, match=r"allowed: reopen\)"):
        next_status(S.RESOLVED, Action.ACKNOWLEDGE)
    assert allowed_actions(S.RESOLVED) == [Action.REOPEN]

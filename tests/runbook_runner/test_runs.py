"""The run state machine, checked on every pair of states, and the verdicts on commands."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from contracts import RunState
from services.runbook_runner.runs import (
    ACTIVE_STATES,
    FINAL_STATES,
    TRANSITIONS,
    IllegalTransition,
    after_command,
    after_verification,
    before_start,
    transition,
)

S = RunState
ALLOWED = {
    (S.REQUESTED, S.RUNNING),
    (S.REQUESTED, S.REFUSED),
    (S.REQUESTED, S.EXPIRED),
    (S.REQUESTED, S.SKIPPED),
    (S.RUNNING, S.VERIFYING),
    (S.RUNNING, S.SKIPPED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.TIMED_OUT),
    (S.RUNNING, S.ABANDONED),
    (S.VERIFYING, S.SUCCEEDED),
    (S.VERIFYING, S.VERIFY_FAILED),
    (S.VERIFYING, S.TIMED_OUT),
    (S.VERIFYING, S.ABANDONED),
}
PAIRS = list(itertools.product(RunState, RunState))


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_a_transition_is_allowed_exactly_when_the_table_says_so(
    current: RunState, target: RunState
) -> None:
    if (current, target) in ALLOWED:
        assert transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition, match=f"from {current.value} to {target.value}"):
            transition(current, target)


def test_the_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(RunState)


def test_final_states_are_those_a_run_never_leaves() -> None:
    assert {
        S.SUCCEEDED,
        S.FAILED,
        S.TIMED_OUT,
        S.VERIFY_FAILED,
        S.ABANDONED,
        S.REFUSED,
        S.EXPIRED,
        S.SKIPPED,
    } == FINAL_STATES
    assert {S.RUNNING, S.VERIFYING} == ACTIVE_STATES


def test_no_state_leads_back_to_requested_so_a_run_id_runs_at_most_once() -> None:
    assert all(S.REQUESTED not in targets for targets in TRANSITIONS.values())


@pytest.mark.parametrize(
    ("exit_code", "timed_out", "state", "detail"),
    [
        (0, False, S.VERIFYING, "command exited 0; verifying"),
        (3, False, S.FAILED, "command exited 3"),
        (-15, False, S.FAILED, "command was killed by signal 15"),
        (None, False, S.FAILED, "command did not start"),
        (-15, True, S.TIMED_OUT, "command timed out after 2.5 s; its process group was killed"),
        (0, True, S.TIMED_OUT, "command timed out after 2.5 s"),
        (5, False, S.SKIPPED, "command found nothing to do (exit 5)"),
        (5, True, S.TIMED_OUT, "command timed out after 2.5 s"),
    ],
)
def test_the_command_verdict_follows_its_exit(
    exit_code: int | None, timed_out: bool, state: RunState, detail: str
) -> None:
    verdict = after_command(exit_code, timed_out=timed_out, timeout_s=2.5)
    assert verdict.state is state
    assert verdict.detail.startswith(detail)


@pytest.mark.parametrize(
    ("exit_code", "timed_out", "state", "detail"),
    [
        (0, False, S.SUCCEEDED, "command exited 0 and verification exited 0"),
        (1, False, S.VERIFY_FAILED, "verification exited 1"),
        (-9, True, S.TIMED_OUT, "verification timed out after 10 s"),
    ],
)
def test_the_verification_verdict_follows_its_exit(
    exit_code: int, timed_out: bool, state: RunState, detail: str
) -> None:
    verdict = after_verification(exit_code, timed_out=timed_out, timeout_s=10)
    assert verdict.state is state
    assert verdict.detail.startswith(detail)


def test_a_command_that_found_nothing_to_do_says_why_in_its_last_line_of_errors() -> None:
    stderr = "debug noise\nnothing to do: version 4 no longer serves (now champion v3)\n\n"
    verdict = after_command(5, timed_out=False, timeout_s=2.5, stderr=stderr)
    assert verdict.state is S.SKIPPED
    assert verdict.detail == (
        "command found nothing to do (exit 5): "
        "nothing to do: version 4 no longer serves (now champion v3)"
    )
    flood = after_command(5, timed_out=False, timeout_s=2.5, stderr="x" * 100_000)
    assert len(flood.detail) < 600


T = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("asked_at", "now", "resolved_at", "state"),
    [
        (T, T + HOUR, None, None),  # exactly the maximum age: still runs
        (T, T + HOUR + timedelta(seconds=1), None, S.EXPIRED),
        (T + HOUR, T, None, None),  # asked "in the future" (clock skew): runs
        (T, T, T, S.SKIPPED),
        (T, T, T + HOUR, S.SKIPPED),
        (T, T + 2 * HOUR, T + HOUR, S.SKIPPED),  # resolved and old: skipped says more
        (T + HOUR, T + HOUR, T, None),  # asked after a resolution: the incident reopened
    ],
)
def test_a_waiting_run_is_skipped_if_its_incident_was_resolved_since_and_expires_when_too_old(
    asked_at: datetime, now: datetime, resolved_at: datetime | None, state: RunState | None
) -> None:
    verdict = before_start(asked_at, now, max_queue_age=HOUR, resolved_at=resolved_at)
    assert (verdict.state if verdict else None) is state

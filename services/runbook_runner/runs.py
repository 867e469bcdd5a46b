"""The life of one run, as a transition table, and the verdicts that move it along.

::

    requested ──▶ running ──▶ verifying ──▶ succeeded
        │            │            ├───────▶ verify_failed
        │            │            ├───────▶ timed_out      (the verification hung)
        │            │            └───────▶ abandoned
        │            ├──▶ failed
        │            ├──▶ timed_out
        │            ├──▶ abandoned   (the runner died mid-run: marked on restart, never re-run)
        │            └──▶ skipped     (the command found nothing to do: exit NOTHING_TO_DO_EXIT)
        ├──▶ refused                  (not in the catalogue, parameters, tier, approval, limit)
        ├──▶ expired                  (asked longer than the maximum queue age before it started)
        └──▶ skipped                  (its incident was resolved after it was asked for)

Nothing leaves a final state, and nothing goes back to ``requested``: a run id runs at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.runbooks import NOTHING_TO_DO_EXIT, RunState

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "TRANSITIONS",
    "IllegalTransition",
    "Verdict",
    "after_command",
    "after_verification",
    "before_start",
    "transition",
]

TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.REQUESTED: frozenset(
        {RunState.RUNNING, RunState.REFUSED, RunState.EXPIRED, RunState.SKIPPED}
    ),
    RunState.RUNNING: frozenset(
        {
            RunState.VERIFYING,
            RunState.FAILED,
            RunState.TIMED_OUT,
            RunState.ABANDONED,
            RunState.SKIPPED,
        }
    ),
    RunState.VERIFYING: frozenset(
        {RunState.SUCCEEDED, RunState.VERIFY_FAILED, RunState.TIMED_OUT, RunState.ABANDONED}
    ),
    RunState.SUCCEEDED: frozenset(),
    RunState.FAILED: frozenset(),
    RunState.TIMED_OUT: frozenset(),
    RunState.VERIFY_FAILED: frozenset(),
    RunState.ABANDONED: frozenset(),
    RunState.REFUSED: frozenset(),
    RunState.EXPIRED: frozenset(),
    RunState.SKIPPED: frozenset(),
}
"""Each state and the states it may move to."""

FINAL_STATES = frozenset(state for state, targets in TRANSITIONS.items() if not targets)
"""States a run never leaves; each is reported once on ``runbook.results``."""

ACTIVE_STATES = frozenset({RunState.RUNNING, RunState.VERIFYING})
"""States in which a process of the run may be alive; they count against concurrency limits."""


_WHY_LIMIT = 500


class IllegalTransition(ValueError):
    """A run was asked to move where the state machine does not allow."""


def transition(current: RunState, target: RunState) -> RunState:
    """Return ``target`` if a run in ``current`` may move there; raise otherwise."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"a run cannot go from {current.value} to {target.value}")
    return target


@dataclass(frozen=True)
class Verdict:
    """Where a run goes after one of its commands ended, and why, for a person."""

    state: RunState
    detail: str


def before_start(
    asked_at: datetime,
    now: datetime,
    *,
    max_queue_age: timedelta,
    resolved_at: datetime | None,
) -> Verdict | None:
    """Judge a waiting run when the runner gets to it: ``None`` lets it start; a run whose
    incident was resolved after it was asked for is skipped, one asked for longer than
    ``max_queue_age`` ago expires. Both are judged on the incident log's clock (``asked_at`` and
    ``resolved_at``) where they can be, so a runner that was down judges its backlog correctly.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> before_start(t, t + timedelta(minutes=5), max_queue_age=timedelta(minutes=30),
    ...              resolved_at=None) is None
    True
    >>> before_start(t, t + timedelta(hours=1), max_queue_age=timedelta(minutes=30),
    ...              resolved_at=None).state
    <RunState.EXPIRED: 'expired'>
    >>> before_start(t, t, max_queue_age=timedelta(minutes=30),
    ...              resolved_at=t + timedelta(minutes=1)).state
    <RunState.SKIPPED: 'skipped'>
    """
    if resolved_at is not None and asked_at <= resolved_at:
        return Verdict(
            RunState.SKIPPED,
            f"its incident was resolved at {resolved_at.isoformat()}, after the run was asked "
            f"for at {asked_at.isoformat()}; not run",
        )
    waited = now - asked_at
    if waited > max_queue_age:
        return Verdict(
            RunState.EXPIRED,
            f"asked for {waited.total_seconds():.0f} s ago, longer than the maximum queue age "
            f"of {max_queue_age.total_seconds():g} s; not run",
        )
    return None


def after_command(
    exit_code: int | None, *, timed_out: bool, timeout_s: float, stderr: str = ""
) -> Verdict:
    """Judge the runbook's command: verify it if it exited 0; skip verification if it found
    nothing to do (its last line of errors says why); else the run failed or timed out.

    >>> after_command(0, timed_out=False, timeout_s=30).state
    <RunState.VERIFYING: 'verifying'>
    >>> after_command(-9, timed_out=False, timeout_s=30).detail
    'command was killed by signal 9'
    >>> after_command(5, timed_out=False, timeout_s=30, stderr="v4 no longer serves\\n").detail
    'command found nothing to do (exit 5): v4 no longer serves'
    """
    if timed_out:
        return Verdict(
            RunState.TIMED_OUT,
            f"command timed out after {timeout_s:g} s; its process group was killed",
        )
    if exit_code == 0:
        return Verdict(RunState.VERIFYING, "command exited 0; verifying")
    if exit_code == NOTHING_TO_DO_EXIT:
        why = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
        detail = f"command found nothing to do (exit {exit_code})"
        return Verdict(RunState.SKIPPED, f"{detail}: {why[:_WHY_LIMIT]}" if why else detail)
    return Verdict(RunState.FAILED, f"command {_ended(exit_code)}")


def after_verification(exit_code: int | None, *, timed_out: bool, timeout_s: float) -> Verdict:
    """Judge the verification: exit 0 means the runbook's effect is confirmed.

    >>> after_verification(1, timed_out=False, timeout_s=10).state
    <RunState.VERIFY_FAILED: 'verify_failed'>
    """
    if timed_out:
        return Verdict(
            RunState.TIMED_OUT,
            f"verification timed out after {timeout_s:g} s; its process group was killed",
        )
    if exit_code == 0:
        return Verdict(RunState.SUCCEEDED, "command exited 0 and verification exited 0")
    return Verdict(RunState.VERIFY_FAILED, f"verification {_ended(exit_code)}")


def _ended(exit_code: int | None) -> str:
    if exit_code is None:
        return "did not start"
    if exit_code < 0:
        return f"was killed by signal {-exit_code}"
    return f"exited {exit_code}"

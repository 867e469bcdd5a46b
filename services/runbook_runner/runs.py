"""The life of one run, as a transition table, and the verdicts that move it along.

::

    requested ──▶ running ──▶ verifying ──▶ succeeded
        │            │            ├───────▶ verify_failed
        │            │            ├───────▶ timed_out      (the verification hung)
        │            │            └───────▶ abandoned
        │            ├──▶ failed
        │            ├──▶ timed_out
        │            └──▶ abandoned   (the runner died mid-run: marked on restart, never re-run)
        └──▶ refused                  (not in the catalogue, parameters, tier, approval, limit)

Nothing leaves a final state, and nothing goes back to ``requested``: a run id runs at most once.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.runbooks import RunState

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "TRANSITIONS",
    "IllegalTransition",
    "Verdict",
    "after_command",
    "after_verification",
    "transition",
]

TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.REQUESTED: frozenset({RunState.RUNNING, RunState.REFUSED}),
    RunState.RUNNING: frozenset(
        {RunState.VERIFYING, RunState.FAILED, RunState.TIMED_OUT, RunState.ABANDONED}
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
}
"""Each state and the states it may move to."""

FINAL_STATES = frozenset(state for state, targets in TRANSITIONS.items() if not targets)
"""States a run never leaves; each is reported once on ``runbook.results``."""

ACTIVE_STATES = frozenset({RunState.RUNNING, RunState.VERIFYING})
"""States in which a process of the run may be alive; they count against concurrency limits."""


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


def after_command(exit_code: int | None, *, timed_out: bool, timeout_s: float) -> Verdict:
    """Judge the runbook's command: verify it if it exited 0, else the run failed or timed out.

    >>> after_command(0, timed_out=False, timeout_s=30).state
    <RunState.VERIFYING: 'verifying'>
    >>> after_command(-9, timed_out=False, timeout_s=30).detail
    'command was killed by signal 9'
    """
    if timed_out:
        return Verdict(
            RunState.TIMED_OUT,
            f"command timed out after {timeout_s:g} s; its process group was killed",
        )
    if exit_code == 0:
        return Verdict(RunState.VERIFYING, "command exited 0; verifying")
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

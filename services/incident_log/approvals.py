"""Runbook runs that wait for a second person: held in the incident log until approved.

Pure (time comes in as ``now``). A runbook the catalogue marks ``needs_approval`` is not asked
for at once: the incident log holds the request, and publishes it — signed, with
``approved_by`` — only when a second person approves it::

    pending ──▶ approved   (another person, with a role at the runbook's and the incident's
       │                    tier: the request is published)
       ├──────▶ rejected   (anyone who may approve it, or the requester withdrawing it)
       └──────▶ expired    (nobody decided within the approval timeout; never runs)

Nothing leaves a final state. The requester can never approve their own run (403), whatever
their role; names compare case-insensitively, as the runner compares them.

The incident log learns which runbooks need approval, and their tiers, from the runner's
catalogue file (:func:`load_approval_policy` reads only ``name``, ``tier`` and
``needs_approval``); the runner checks the catalogue again, so a runbook the two disagree on
is refused rather than run unapproved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from contracts.incidents import Tier

__all__ = [
    "ApprovalError",
    "ApprovalPolicy",
    "ApprovalState",
    "HeldRun",
    "NotDecidable",
    "SelfApproval",
    "decide",
    "load_approval_policy",
]


class ApprovalState(StrEnum):
    """Where a held run stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalError(ValueError):
    """A decision the held run refuses; the message says why."""


class NotDecidable(ApprovalError):
    """The run was already decided, or its approval expired (409)."""


class SelfApproval(ApprovalError):
    """The person who asked for the run tried to approve it (403)."""


@dataclass
class HeldRun:
    """A runbook run waiting for approval, and how it was decided."""

    run_id: str
    incident_id: str
    runbook: str
    parameters: dict[str, str | int | float | bool]
    reason: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    state: ApprovalState = ApprovalState.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None

    def expired_at(self, now: datetime) -> bool:
        """Whether a pending run's approval window has closed."""
        return self.state is ApprovalState.PENDING and now >= self.expires_at


def decide(
    held: HeldRun, decision: ApprovalState, actor: str, reason: str | None, now: datetime
) -> None:
    """Approve, reject or expire a pending run, in place; raise if it may not be.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> held = HeldRun("run-1", "inc-1", "purge", {}, "why", "ann", t, t + timedelta(hours=1))
    >>> decide(held, ApprovalState.APPROVED, "ANN", None, t)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    services.incident_log.approvals.SelfApproval: ann asked for run run-1 and cannot approve it: ...
    >>> decide(held, ApprovalState.APPROVED, "bo", None, t); held.state, held.decided_by
    (<ApprovalState.APPROVED: 'approved'>, 'bo')
    """
    if held.state is not ApprovalState.PENDING:
        raise NotDecidable(
            f"run {held.run_id} is already {held.state.value}"
            + (f" (by {held.decided_by})" if held.decided_by else "")
        )
    if decision is ApprovalState.PENDING:
        raise ValueError("a decision moves a run out of pending")
    if decision is not ApprovalState.EXPIRED and held.expired_at(now):
        raise NotDecidable(
            f"the approval of run {held.run_id} expired at {held.expires_at.isoformat()}; "
            "ask for the runbook again"
        )
    if decision is ApprovalState.APPROVED and actor.casefold() == held.requested_by.casefold():
        raise SelfApproval(
            f"{held.requested_by} asked for run {held.run_id} and cannot approve it: "
            "a second person must"
        )
    held.state = decision
    held.decided_by = actor
    held.decided_at = now
    held.decision_reason = reason


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which catalogued runbooks need approval, and the lowest tier allowed to run each."""

    needing_approval: dict[str, Tier] = field(default_factory=dict)
    approval_timeout: timedelta = timedelta(hours=1)

    def needs_approval(self, runbook: str) -> bool:
        """Whether a run of this runbook waits for a second person."""
        return runbook in self.needing_approval

    def tier_of(self, runbook: str) -> Tier:
        """The runbook's tier (L1 for one the policy does not know)."""
        return self.needing_approval.get(runbook, Tier.L1)


def load_approval_policy(path: Path, approval_timeout: timedelta) -> ApprovalPolicy:
    """Read the runbooks needing approval from the runner's catalogue; ``ValueError`` if it
    cannot be read (the runner validates the rest of it)."""
    try:
        document: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot read the runbook catalogue: {error}") from None
    runbooks = document.get("runbooks", []) if isinstance(document, dict) else None
    if not isinstance(runbooks, list):
        raise ValueError(f"{path}: the catalogue must be a mapping with a 'runbooks' list")
    needing: dict[str, Tier] = {}
    for index, runbook in enumerate(runbooks):
        if not isinstance(runbook, dict) or not isinstance(runbook.get("name"), str):
            raise ValueError(f"{path}: runbooks[{index}] has no name")
        approval = runbook.get("needs_approval", False)
        if not isinstance(approval, bool):
            raise ValueError(f"{path}: runbooks[{index}].needs_approval must be true or false")
        if approval:
            try:
                needing[runbook["name"]] = Tier(runbook.get("tier", Tier.L1.value))
            except ValueError:
                raise ValueError(f"{path}: runbooks[{index}].tier is not L1, L2 or L3") from None
    return ApprovalPolicy(needing, approval_timeout)

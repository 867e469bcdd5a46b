"""The registry's rules, pure: deployment changes, traffic shares, one-step rollback, history.

A model's deployment moves through numbered revisions, each kept forever (append-only)::

    deploy(champion, challenger?, share, mode)  ─┐
    set_traffic(share, mode)                     ├─▶ revision n+1 ─▶ ModelDeployed, ModelPromoted
    promote()   challenger becomes champion      │                   or ModelRolledBack, carrying
    rollback()  withdraw the challenger, or     ─┘                   the whole new Deployment
                champion back to the previous one

"Previous champion" is a stack, not the last entry: deploying or promoting pushes a champion,
rolling back pops it, so v1 → v2 → v3 rolls back to v2 and then v1, and never flips between two.
The alias history ("who had champion at time T, who moved it, why") is derived from the revisions.
No I/O here: the store loads revisions and versions, calls these functions, and saves the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from contracts.envelope import Envelope
from contracts.registry import (
    Deployment,
    DeploymentMode,
    ModelDeployed,
    ModelPromoted,
    ModelRolledBack,
    ServedVersion,
)

__all__ = [
    "MAX_CHALLENGER_SHARE",
    "Action",
    "Alias",
    "AliasMove",
    "DeploymentChanged",
    "DeploymentRevision",
    "RegistryRuleError",
    "alias_moves",
    "champion_at",
    "deploy",
    "deployment_at",
    "event_for",
    "previous_champion",
    "promote",
    "rollback",
    "set_traffic",
]

MAX_CHALLENGER_SHARE = 0.5


class RegistryRuleError(ValueError):
    """A change the registry's rules forbid; the message says which rule."""


class DeploymentChanged(RegistryRuleError):
    """A change was made conditional on the revision in force, and another revision is."""


class Action(StrEnum):
    """What a revision did."""

    DEPLOYED = "deployed"
    TRAFFIC_CHANGED = "traffic_changed"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


class Alias(StrEnum):
    """The two deployment slots; each names at most one version at a time."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"


@dataclass(frozen=True)
class DeploymentRevision:
    """One change of a model's deployment: the whole resulting deployment, who, why, when."""

    model: str
    deployment: Deployment
    action: Action
    actor: str
    reason: str
    at: datetime
    incident_id: str | None = None

    @property
    def revision(self) -> int:
        """The deployment's revision number."""
        return self.deployment.revision


@dataclass(frozen=True)
class AliasMove:
    """An alias pointed to a new version (``None``: cleared) at a revision."""

    alias: Alias
    version: int | None
    previous_version: int | None
    revision: int
    action: Action
    actor: str
    reason: str
    at: datetime
    incident_id: str | None = None


def _next(history: Sequence[DeploymentRevision]) -> int:
    return history[-1].revision + 1 if history else 1


def _current(history: Sequence[DeploymentRevision]) -> Deployment | None:
    return history[-1].deployment if history else None


def _check_share(share: float, mode: DeploymentMode, challenger: ServedVersion | None) -> None:
    if not 0.0 <= share <= MAX_CHALLENGER_SHARE:
        raise RegistryRuleError(
            f"challenger share must be between 0 and {MAX_CHALLENGER_SHARE}, not {share}"
        )
    if challenger is None and share > 0:
        raise RegistryRuleError("a traffic share needs a challenger")
    if challenger is None and mode is DeploymentMode.SHADOW:
        raise RegistryRuleError("shadow mode needs a challenger")


def deploy(
    history: Sequence[DeploymentRevision],
    *,
    champion: ServedVersion,
    challenger: ServedVersion | None = None,
    share: float = 0.0,
    mode: DeploymentMode = DeploymentMode.CANARY,
) -> Deployment:
    """Return the deployment that serves ``champion`` (and ``challenger`` at ``share``)."""
    if challenger is not None and challenger.version == champion.version:
        raise RegistryRuleError("champion and challenger must be different versions")
    _check_share(share, mode, challenger)
    return Deployment(
        revision=_next(history),
        champion=champion,
        challenger=challenger,
        challenger_share=share,
        mode=mode,
    )


def set_traffic(
    history: Sequence[DeploymentRevision], *, share: float, mode: DeploymentMode | None = None
) -> Deployment:
    """Return the current deployment with a new challenger share (and mode, if given)."""
    current = _current(history)
    if current is None or current.champion is None:
        raise RegistryRuleError("the model is not deployed")
    new_mode = mode or current.mode
    _check_share(share, new_mode, current.challenger)
    return current.model_copy(
        update={"revision": _next(history), "challenger_share": share, "mode": new_mode}
    )


def promote(history: Sequence[DeploymentRevision]) -> Deployment:
    """Return the deployment in which the challenger has become the champion."""
    current = _current(history)
    if current is None or current.challenger is None:
        raise RegistryRuleError("there is no challenger to promote")
    return Deployment(revision=_next(history), champion=current.challenger)


def rollback(
    history: Sequence[DeploymentRevision],
    versions: dict[int, ServedVersion],
    *,
    expected_revision: int | None = None,
) -> Deployment:
    """Return the deployment after a one-step rollback.

    A deployment with a challenger withdraws it (the champion keeps serving); otherwise the
    champion goes back to the previous champion. ``versions`` maps version numbers to what a
    scorer needs to load them. With ``expected_revision`` the rollback is a compare-and-set: it
    is refused unless that revision is still the one in force, so a caller that judged one
    deployment never rolls back another.
    """
    current = _current(history)
    if expected_revision is not None and (current is None or current.revision != expected_revision):
        raise DeploymentChanged(
            f"the deployment changed: revision {expected_revision} expected, "
            + (f"revision {current.revision} is in force" if current else "never deployed")
        )
    if current is None or current.champion is None:
        raise RegistryRuleError("the model is not deployed")
    if current.challenger is not None:
        return Deployment(revision=_next(history), champion=current.champion)
    previous = previous_champion(history)
    if previous is None:
        raise RegistryRuleError(
            f"champion v{current.champion.version} has no previous champion to roll back to"
        )
    return Deployment(revision=_next(history), champion=versions[previous])


def _champion_stack(history: Sequence[DeploymentRevision]) -> list[int]:
    stack: list[int] = []
    for entry in history:
        champion = entry.deployment.champion
        version = champion.version if champion is not None else None
        if entry.action is Action.ROLLED_BACK:
            while stack and stack[-1] != version:
                stack.pop()
        if version is not None and (not stack or stack[-1] != version):
            stack.append(version)
    return stack


def previous_champion(history: Sequence[DeploymentRevision]) -> int | None:
    """Return the version a rollback of the champion goes back to, if any.

    >>> from datetime import UTC, datetime
    >>> def rev(n, champion, action=Action.DEPLOYED):
    ...     served = ServedVersion(version=champion, artifact_uri="a", artifact_sha256="0" * 64)
    ...     return DeploymentRevision("m", Deployment(revision=n, champion=served), action,
    ...                               "ana", "", datetime(2026, 1, n, tzinfo=UTC))
    >>> previous_champion([rev(1, 1), rev(2, 2), rev(3, 3)])
    2
    >>> previous_champion([rev(1, 1), rev(2, 2), rev(3, 1, Action.ROLLED_BACK)]) is None
    True
    """
    stack = _champion_stack(history)
    return stack[-2] if len(stack) >= 2 else None


def deployment_at(history: Sequence[DeploymentRevision], at: datetime) -> DeploymentRevision | None:
    """Return the revision in force at time ``at`` (``None`` before the first deployment)."""
    found = None
    for entry in history:
        if entry.at <= at:
            found = entry
        else:
            break
    return found


def champion_at(history: Sequence[DeploymentRevision], at: datetime) -> int | None:
    """Return the champion version in production at time ``at``."""
    entry = deployment_at(history, at)
    if entry is None or entry.deployment.champion is None:
        return None
    return entry.deployment.champion.version


def _version(served: ServedVersion | None) -> int | None:
    return served.version if served is not None else None


def alias_moves(history: Sequence[DeploymentRevision]) -> list[AliasMove]:
    """Return every move of an alias, oldest first, with who made it and why."""
    moves: list[AliasMove] = []
    before: dict[Alias, int | None] = {Alias.CHAMPION: None, Alias.CHALLENGER: None}
    for entry in history:
        after = {
            Alias.CHAMPION: _version(entry.deployment.champion),
            Alias.CHALLENGER: _version(entry.deployment.challenger),
        }
        for alias in Alias:
            if after[alias] != before[alias]:
                moves.append(
                    AliasMove(
                        alias=alias,
                        version=after[alias],
                        previous_version=before[alias],
                        revision=entry.revision,
                        action=entry.action,
                        actor=entry.actor,
                        reason=entry.reason,
                        at=entry.at,
                        incident_id=entry.incident_id,
                    )
                )
        before = after
    return moves


def event_for(entry: DeploymentRevision, previous: Deployment | None, *, producer: str) -> Envelope:
    """Return the event that announces a revision on ``models``."""
    common = {
        "producer": producer,
        "model": entry.model,
        "deployment": entry.deployment,
        "actor": entry.actor,
        "reason": entry.reason,
        "occurred_at": entry.at,
        "correlation_id": entry.incident_id,
    }
    old_champion = _version(previous.champion) if previous else None
    if entry.action is Action.PROMOTED:
        new = entry.deployment.champion
        assert new is not None
        return ModelPromoted(
            **common,
            version=new.version,
            previous_version=old_champion,
            incident_id=entry.incident_id,
        )
    if entry.action is Action.ROLLED_BACK:
        assert previous is not None
        withdrawn = previous.challenger or previous.champion
        assert withdrawn is not None
        return ModelRolledBack(
            **common,
            from_version=withdrawn.version,
            to_version=_version(entry.deployment.champion),
            incident_id=entry.incident_id,
        )
    return ModelDeployed(**common, incident_id=entry.incident_id)

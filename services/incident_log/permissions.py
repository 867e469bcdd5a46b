"""Who may do what: roles carried by API tokens, and the tier an action on an incident needs.

Pure. Roles rank ``viewer < l1 < l2 < l3 < admin``. Reading needs ``viewer``; opening an incident
by hand, commenting, reopening, editing a review's action items and attaching reports need ``l1``;
acting on an incident (acknowledge, claim, escalate, mitigate, resolve) needs a role at least as
high as the incident's tier, so level one cannot resolve what level two holds; so does taking over
someone's claim, whatever the action that takes it (a comment, an acknowledgement, a runbook...),
so level one cannot seize a level-three claim by commenting; silences, runbooks by hand, retrain
requests and model approvals need ``l2``; approving a held runbook run needs ``l2`` and a role at
the runbook's and the incident's tier (and never the requester's own run,
:mod:`services.incident_log.approvals`); tokens, people, contacts and schedules need ``admin``,
and so does a silence that matches every alert (it would mute the whole system).

A service's token carries scopes instead of a role (:mod:`services.runtime.scopes`): it may make
only the calls a scope names, whatever the permission (:func:`grants`).
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from contracts.incidents import Tier
from services.runtime.scopes import Scope

__all__ = ["Permission", "Role", "grants", "required_role", "role_allows"]


class Role(StrEnum):
    """The role an API token acts with."""

    VIEWER = "viewer"
    L1 = "l1"
    L2 = "l2"
    L3 = "l3"
    ADMIN = "admin"


_RANK = {Role.VIEWER: 0, Role.L1: 1, Role.L2: 2, Role.L3: 3, Role.ADMIN: 4}
_TIER_ROLE = {Tier.L1: Role.L1, Tier.L2: Role.L2, Tier.L3: Role.L3}


class Permission(StrEnum):
    """Kinds of action the API checks."""

    READ = "read"
    OPEN_INCIDENT = "open_incident"
    EDIT_REVIEW = "edit_review"
    COMMENT = "comment"
    REOPEN = "reopen"
    ACT_ON_INCIDENT = "act_on_incident"
    TAKE_OVER = "take_over"
    MANAGE_SILENCES = "manage_silences"
    SILENCE_EVERY_ALERT = "silence_every_alert"
    RUN_RUNBOOK = "run_runbook"
    APPROVE_RUNBOOK = "approve_runbook"
    REQUEST_RETRAIN = "request_retrain"
    ATTACH_REPORT = "attach_report"
    APPROVE_MODEL = "approve_model"
    MANAGE_TOKENS = "manage_tokens"
    MANAGE_PAGING = "manage_paging"


_AT_TIER = frozenset({Permission.ACT_ON_INCIDENT, Permission.TAKE_OVER})
_FIXED = {
    Permission.READ: Role.VIEWER,
    Permission.OPEN_INCIDENT: Role.L1,
    Permission.EDIT_REVIEW: Role.L1,
    Permission.COMMENT: Role.L1,
    Permission.REOPEN: Role.L1,
    Permission.MANAGE_SILENCES: Role.L2,
    Permission.SILENCE_EVERY_ALERT: Role.ADMIN,
    Permission.RUN_RUNBOOK: Role.L2,
    Permission.APPROVE_RUNBOOK: Role.L2,
    Permission.REQUEST_RETRAIN: Role.L2,
    Permission.ATTACH_REPORT: Role.L1,
    Permission.APPROVE_MODEL: Role.L2,
    Permission.MANAGE_TOKENS: Role.ADMIN,
    Permission.MANAGE_PAGING: Role.ADMIN,
}


def required_role(permission: Permission, tier: Tier | None = None) -> Role:
    """The lowest role that holds a permission (for incident actions, at the incident's tier).

    >>> required_role(Permission.ACT_ON_INCIDENT, Tier.L2)
    <Role.L2: 'l2'>
    """
    if permission in _AT_TIER:
        if tier is None:
            raise ValueError(f"{permission.value} needs the incident's tier")
        return _TIER_ROLE[tier]
    return _FIXED[permission]


def role_allows(role: Role, permission: Permission, tier: Tier | None = None) -> bool:
    """Whether a role holds a permission."""
    return _RANK[role] >= _RANK[required_role(permission, tier)]


def grants(
    role: Role | None,
    scopes: Collection[Scope],
    permission: Permission,
    tier: Tier | None = None,
    *,
    scope: Scope | None = None,
) -> bool:
    """Whether a token holds a permission: by its role, or (a scoped token, ``role`` None) only
    when the call is one its scopes name.

    >>> grants(None, {Scope.INCIDENTS_READ}, Permission.READ, scope=Scope.INCIDENTS_READ)
    True
    >>> grants(None, {Scope.INCIDENTS_READ}, Permission.READ)
    False
    """
    if role is None:
        return scope is not None and scope in scopes
    return role_allows(role, permission, tier)

"""Promotion requests: a person decides whether a candidate that passed the gate may take
traffic. Pure.

::

    pending ──approve (role ≥ l2, not a requester, before expiry)──▶ approved ──▶ canary …
        │ ────reject (same rules)────────────────────────────────────▶ rejected
        └─────expires_at reached────────────────────────────────────▶ expired

A decided or expired request stays so (409). The approver's name and role come from the
identity provider (the incident log's ``/whoami``), never from the request body.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.runtime.scopes import ROLES, role_at_least

__all__ = [
    "APPROVER_ROLE",
    "ROLES",
    "Promotion",
    "PromotionRefused",
    "PromotionState",
    "decide",
    "expire",
]

APPROVER_ROLE = "l2"
"""The lowest role that may approve or reject a promotion."""


class PromotionState(StrEnum):
    """Where a promotion request is."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class PromotionRefused(Exception):
    """A decision the rules forbid; ``status`` is the HTTP status that says so (403, 409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Promotion:
    """A promotion request and its decision."""

    request_id: str
    model: str
    version: int
    evaluation_id: str
    requested_by: str
    requesters: frozenset[str]
    created_at: datetime
    expires_at: datetime
    summary: str
    state: PromotionState = PromotionState.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None
    incident_id: str | None = None


def decide(
    promotion: Promotion, *, approve: bool, person: str, role: str, comment: str, now: datetime
) -> Promotion:
    """Approve or reject a pending request, or raise :class:`PromotionRefused` saying why."""
    verb = "approve" if approve else "reject"
    if not role_at_least(role, APPROVER_ROLE):
        raise PromotionRefused(
            403, f"role {role} may not {verb} a promotion (needs {APPROVER_ROLE} or higher)"
        )
    if promotion.state is not PromotionState.PENDING:
        by = f" by {promotion.decided_by}" if promotion.decided_by else ""
        raise PromotionRefused(409, f"promotion {promotion.request_id} is {promotion.state}{by}")
    if now >= promotion.expires_at:
        raise PromotionRefused(
            409, f"promotion {promotion.request_id} expired at {promotion.expires_at.isoformat()}"
        )
    if person in promotion.requesters:
        raise PromotionRefused(
            409, f"{person} asked for this retrain and may not {verb} its promotion"
        )
    return replace(
        promotion,
        state=PromotionState.APPROVED if approve else PromotionState.REJECTED,
        decided_by=person,
        decided_at=now,
        comment=comment,
    )


def expire(promotion: Promotion, now: datetime) -> Promotion | None:
    """Return the request expired if it is pending past its expiry, else ``None``."""
    if promotion.state is PromotionState.PENDING and now >= promotion.expires_at:
        return replace(promotion, state=PromotionState.EXPIRED, decided_at=now)
    return None

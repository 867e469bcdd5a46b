"""Acknowledge links: signed, expiring, single-use, for one person, incident and tier.

Pure. A link carries its claims (incident, person, tier, expiry, a nonce) in clear, base64url
JSON, followed by an HMAC-SHA256 of them under the incident log's link key, so it needs no
session and cannot be altered or forged. Single use is enforced where it is spent: the nonce is
stored in the same transaction as the acknowledgement.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from contracts.incidents import Tier

__all__ = ["AckClaims", "LinkExpired", "LinkInvalid", "issue_link_token", "read_link_token"]


class LinkInvalid(ValueError):
    """The link was altered, truncated or signed with another key."""


class LinkExpired(ValueError):
    """The link's time is up."""


@dataclass(frozen=True)
class AckClaims:
    """What an acknowledge link may do."""

    incident_id: str
    person: str
    tier: Tier
    expires_at: datetime
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def issue_link_token(
    key: bytes,
    incident_id: str,
    person: str,
    tier: Tier,
    expires_at: datetime,
    *,
    nonce: str | None = None,
) -> str:
    """A token for the link's path; the same ``nonce`` gives the same token (a retried page
    carries the same link)."""
    claims = {
        "i": incident_id,
        "p": person,
        "t": tier.value,
        "x": int(expires_at.timestamp()),
        "n": nonce or secrets.token_urlsafe(12),
    }
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{payload}.{_mac(key, payload)}"


def read_link_token(key: bytes, token: str, now: datetime) -> AckClaims:
    """The claims of a genuine, unexpired token; raises :class:`LinkInvalid` or
    :class:`LinkExpired` otherwise."""
    payload, dot, mac = token.partition(".")
    if not dot or len(token) > 1000 or not token.isascii():
        raise LinkInvalid("not an acknowledge link")
    if not hmac.compare_digest(_mac(key, payload), mac):
        raise LinkInvalid("the link was altered or is not from this Vigil")
    try:
        claims = json.loads(_unb64(payload))
        parsed = AckClaims(
            incident_id=str(claims["i"]),
            person=str(claims["p"]),
            tier=Tier(claims["t"]),
            expires_at=datetime.fromtimestamp(int(claims["x"]), UTC),
            nonce=str(claims["n"]),
        )
    except (ValueError, KeyError, TypeError):
        raise LinkInvalid("not an acknowledge link") from None
    if parsed.expires_at <= now:
        raise LinkExpired(f"the link expired at {parsed.expires_at:%Y-%m-%d %H:%M} UTC")
    return parsed

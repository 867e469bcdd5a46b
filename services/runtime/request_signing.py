"""Runbook requests the runner can trust: signed by the incident log, verified by the runner.

Pure (no I/O, time comes in as ``now``). A ``runbook.request`` says which script runs, with what,
at which tier, asked and approved by whom; anyone who can produce to the topic could otherwise
write those. The incident log and the runner share a secret key (``VIGIL_RUNBOOK_SIGNING_KEY``)
and nobody else does; the incident log signs every request it publishes, and the runner runs
only requests whose signature checks::

    signature = "v1=" + hex(HMAC-SHA256(key, canonical(request)))

``canonical`` is JSON (sorted keys, no spaces, ASCII) of a fixed list of fields, the ``v1``
fields: the event id, when it was asked (``occurred_at``) and until when it may run
(``expires_at``), the run id, incident, model and version, runbook, parameters, tier,
``requested_by``, ``approved_by`` and the reason. The list is fixed rather than "every field" so
that a field added to the contract later does not change what an older runner computes (a
consumer ignores fields it does not know); signing a new field is a new version (``v2=``).

Keys rotate: the setting holds a comma-separated list, the first signs and every one verifies.
Give both services ``new,old``, restart both, and drop ``old`` once no request signed with it can
still be in flight (its ``expires_at`` has passed).

What :func:`verification_problem` refuses (the runner dead-letters it, never runs it): no
signature, an unknown version, a signature that matches no key, no ``expires_at``, an
``expires_at`` already past, and a request asked for further in the future than the allowed
clock skew. A request signed correctly but seen before (a replay) is the runner's to catch, by
its run id: a run id runs at most once (``services/runbook_runner/service.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from contracts.runbooks import RunbookRequest

__all__ = [
    "MIN_KEY_LENGTH",
    "SIGNATURE_VERSION",
    "SigningKeys",
    "canonical",
    "keys_or_none",
    "sign",
    "signature_of",
    "verification_problem",
]

SIGNATURE_VERSION = "v1"
MIN_KEY_LENGTH = 32
"""Characters a key needs at least (``secrets.token_hex(32)`` gives 64)."""

_V1_FIELDS = (
    "event_id",
    "occurred_at",
    "expires_at",
    "run_id",
    "incident_id",
    "model",
    "model_version",
    "runbook",
    "parameters",
    "tier",
    "requested_by",
    "approved_by",
    "reason",
)


@dataclass(frozen=True)
class SigningKeys:
    """The shared keys: the first signs, each verifies (rotation)."""

    keys: tuple[bytes, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("no runbook signing key")
        for key in self.keys:
            if len(key) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"a runbook signing key needs at least {MIN_KEY_LENGTH} characters"
                )

    @classmethod
    def parse(cls, setting: str) -> SigningKeys:
        """Keys from the setting's text: comma-separated, the signing key first.

        >>> len(SigningKeys.parse("a" * 32 + ", " + "b" * 40).keys)
        2
        """
        return cls(tuple(part.strip().encode() for part in setting.split(",") if part.strip()))

    @property
    def signing(self) -> bytes:
        """The key new requests are signed with."""
        return self.keys[0]


def canonical(request: RunbookRequest) -> bytes:
    """The bytes a request's signature covers (the ``v1`` fields, as canonical JSON)."""
    dumped = request.model_dump(mode="python", include=set(_V1_FIELDS))
    fields: dict[str, Any] = {name: _canonical_value(dumped[name]) for name in _V1_FIELDS}
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()  # one spelling of one instant
    if isinstance(value, dict):
        return {str(name): _canonical_value(item) for name, item in value.items()}
    if isinstance(value, UUID | Enum):
        return str(value.value if isinstance(value, Enum) else value)
    return value


def signature_of(request: RunbookRequest, key: bytes) -> str:
    """The ``v1`` signature of a request under one key."""
    digest = hmac.new(key, canonical(request), hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def sign(request: RunbookRequest, keys: SigningKeys, *, valid_for: timedelta) -> RunbookRequest:
    """The request with ``expires_at`` (its ``occurred_at`` plus ``valid_for``) and signed."""
    dated = request.model_copy(update={"expires_at": request.occurred_at + valid_for})
    return dated.model_copy(update={"signature": signature_of(dated, keys.signing)})


def verification_problem(
    request: RunbookRequest,
    keys: SigningKeys,
    *,
    now: datetime,
    clock_skew: timedelta = timedelta(minutes=5),
) -> str | None:
    """Why a request must not be trusted, for a person; ``None`` if it may.

    >>> from contracts.incidents import Tier
    >>> keys = SigningKeys.parse("k" * 32)
    >>> asked = datetime(2026, 1, 1, tzinfo=UTC)
    >>> request = RunbookRequest(producer="incident-log", occurred_at=asked, run_id="r",
    ...     incident_id="inc-1", model="churn", runbook="rollback-model",
    ...     requested_by="system:incident-log", tier=Tier.L1, reason="decay")
    >>> verification_problem(request, keys, now=asked)
    'unsigned: the request carries no signature (only the incident log may ask for runbooks)'
    >>> signed = sign(request, keys, valid_for=timedelta(hours=1))
    >>> verification_problem(signed, keys, now=asked) is None
    True
    >>> forged = signed.model_copy(update={"tier": Tier.L3})
    >>> verification_problem(forged, keys, now=asked)
    'bad signature: it matches no runbook signing key (forged, altered, or signed with another key)'
    """
    signature = request.signature
    if signature is None:
        return (
            "unsigned: the request carries no signature "
            "(only the incident log may ask for runbooks)"
        )
    version, _, _ = signature.partition("=")
    if version != SIGNATURE_VERSION:
        return f"bad signature: unknown signature version {version[:20]!r} (expected v1)"
    if not any(_matches(signature, request, key) for key in keys.keys):
        return (
            "bad signature: it matches no runbook signing key "
            "(forged, altered, or signed with another key)"
        )
    if request.expires_at is None:
        return "bad signature: a signed request must carry expires_at"
    if request.expires_at <= now:
        return (
            f"expired: the request was valid until {request.expires_at.isoformat()} "
            f"(now {now.isoformat()}); a stale or replayed request never runs"
        )
    if request.occurred_at > now + clock_skew:
        return (
            f"not yet valid: asked at {request.occurred_at.isoformat()}, more than "
            f"{clock_skew.total_seconds():g} s after now ({now.isoformat()})"
        )
    return None


def _matches(signature: str, request: RunbookRequest, key: bytes) -> bool:
    return hmac.compare_digest(signature.encode(), signature_of(request, key).encode())


def keys_or_none(setting: str | None) -> SigningKeys | None:
    """Keys from an optional setting (``None`` when unset or blank)."""
    if setting is None or not setting.strip():
        return None
    return SigningKeys.parse(setting)

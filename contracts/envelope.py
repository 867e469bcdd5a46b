"""The envelope every Vigil event shares.

Each event on a Vigil topic is one frozen pydantic model that subclasses :class:`Envelope` and
pins its ``type`` with a ``Literal``. Consumers ignore fields they do not know (forward
compatibility); a breaking change bumps ``schema_version`` in a new model, never in place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["Envelope", "utc_now"]


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Envelope(BaseModel):
    """Fields every event carries, whatever its topic. No float of any event is NaN or
    infinite: JSON has neither, and consumers would store or compute with them."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    event_id: UUID = Field(
        default_factory=uuid4,
        description="Unique id of this event; consumers use it to handle each event once.",
        examples=["6f1c2a8e-3b7d-4c1e-9a55-0c1d2e3f4a5b"],
    )
    type: str = Field(
        description="Dotted, lower-case event type; past tense for facts, `.request` for asks.",
        examples=["alert.raised"],
    )
    occurred_at: AwareDatetime = Field(
        default_factory=utc_now,
        description="When the fact happened (or the ask was made), timezone-aware.",
        examples=["2026-11-22T10:15:00Z"],
    )
    producer: str = Field(
        min_length=1,
        description="Who published it: a Vigil service name, or a client's own name.",
        examples=["monitor"],
    )
    correlation_id: str | None = Field(
        default=None,
        description="Id shared by every event of one chain (an incident id, a request id).",
        examples=["inc-2026-0042"],
    )
    schema_version: Literal[1] = Field(
        default=1,
        description="Version of this event's schema; a breaking change is a new model.",
        examples=[1],
    )

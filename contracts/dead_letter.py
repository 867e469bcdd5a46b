"""Dead letters: messages a consumer could not decode, validate or handle, kept with their bytes."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from contracts.envelope import Envelope

__all__ = ["DeadLetterReason", "MessageDeadLettered"]


class DeadLetterReason(StrEnum):
    """Why a message was set aside."""

    UNDECODABLE = "undecodable"
    INVALID = "invalid"
    HANDLER_FAILED = "handler_failed"


class MessageDeadLettered(Envelope):
    """A consumer set a message aside; the original bytes allow a replay after a fix."""

    type: Literal["message.dead_lettered"] = "message.dead_lettered"
    original_topic: str = Field(
        min_length=1, description="Topic it was read from; the Kafka key.", examples=["alerts"]
    )
    partition: int = Field(ge=0, description="Partition it was read from.", examples=[2])
    offset: int = Field(ge=0, description="Its offset there.", examples=[1071])
    consumer_group: str = Field(
        min_length=1, description="Group that set it aside.", examples=["incident-log"]
    )
    reason: DeadLetterReason = Field(
        description="Why it was set aside.", examples=[DeadLetterReason.INVALID]
    )
    error: str = Field(
        min_length=1,
        description="What was wrong, for a person.",
        examples=["severity: Input should be 'info', 'warning' or 'critical' (got 'urgent')"],
    )
    original_key_b64: str | None = Field(
        default=None, description="Original key, base64.", examples=["YnJlYXN0LWNhbmNlcg=="]
    )
    original_value_b64: str = Field(
        description="Original message bytes, base64.", examples=["eyJ0eXBlIjogImFsZXJ0In0="]
    )
    original_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Original headers (values decoded as UTF-8 with replacement).",
        examples=[{"content-type": "application/json"}],
    )

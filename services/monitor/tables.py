"""The monitor's tables: what must survive a restart, in the shape storage wants it.

Large, per-event state (waiting joins, comparison outcomes) is one row per entry, written and
deleted in bulk; small, whole-object state (open windows, episodes, clocks, pairings) is one row
per object holding JSON, replaced when it changes.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from services.runtime import UtcDateTime

__all__ = [
    "ClockRow",
    "ComparisonOutcomeRow",
    "EpisodeRow",
    "PairingRow",
    "PendingRow",
    "ReferenceRow",
    "ResidualReferenceRow",
    "WindowRow",
]


class PendingRow(SQLModel, table=True):
    """A prediction waiting for its label (``side`` ``p``) or a label for its prediction (``l``)."""

    __tablename__ = "monitor_pending"

    model: str = Field(primary_key=True)
    request_id: str = Field(primary_key=True)
    model_version: int = Field(primary_key=True)
    variant: str = Field(primary_key=True)
    side: str
    occurred_at: datetime = Field(sa_type=UtcDateTime)
    payload: str


class WindowRow(SQLModel, table=True):
    """The open window of a series, as JSON."""

    __tablename__ = "monitor_windows"

    model: str = Field(primary_key=True)
    model_version: int = Field(primary_key=True)
    variant: str = Field(primary_key=True)
    state: str


class EpisodeRow(SQLModel, table=True):
    """Where an alert signal stands."""

    __tablename__ = "monitor_episodes"

    fingerprint: str = Field(primary_key=True)
    state: str


class ClockRow(SQLModel, table=True):
    """A model's event-time clock and labels expired since its last window."""

    __tablename__ = "monitor_clocks"

    model: str = Field(primary_key=True)
    watermark: datetime | None = Field(default=None, sa_type=UtcDateTime)
    expired_labels: int = 0


class PairingRow(SQLModel, table=True):
    """A champion and challenger being compared."""

    __tablename__ = "monitor_pairings"

    model: str = Field(primary_key=True)
    champion_version: int
    challenger_version: int
    started_at: datetime = Field(sa_type=UtcDateTime)
    alerted: bool = False
    next_seq: int = 0


class ComparisonOutcomeRow(SQLModel, table=True):
    """One labelled outcome of one side of a pairing."""

    __tablename__ = "monitor_comparison_outcomes"

    model: str = Field(primary_key=True)
    champion_version: int = Field(primary_key=True)
    challenger_version: int = Field(primary_key=True)
    side: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    payload: str


class ReferenceRow(SQLModel, table=True):
    """A version's reference for label-free estimation: rows gathered, or its calibration."""

    __tablename__ = "monitor_references"

    model: str = Field(primary_key=True)
    model_version: int = Field(primary_key=True)
    state: str


class ResidualReferenceRow(SQLModel, table=True):
    """A regressor version's reference residuals for residual drift (gathering, or full)."""

    __tablename__ = "monitor_residual_references"

    model: str = Field(primary_key=True)
    model_version: int = Field(primary_key=True)
    state: str

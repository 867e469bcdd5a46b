"""The retraining tables: runs and the asks merged into them, labelled live examples, and the
datasets the retrainer made.

Rules the database enforces: at most one queued and one running run per model
(``queued_model`` / ``running_model`` hold the model name while the run is in that state and
NULL otherwise, under a unique constraint, so two replicas admitting or starting runs for one model
at once cannot both commit).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from services.runtime import UtcDateTime

__all__ = [
    "RETRAINING_TABLES",
    "LiveExampleRow",
    "ProducedDatasetRow",
    "RetrainAskRow",
    "RetrainRunRow",
]


class RetrainRunRow(SQLModel, table=True):
    """One retraining run and everything it recorded."""

    __tablename__ = "retrainer_runs"

    run_id: str = Field(primary_key=True, max_length=40)
    model: str = Field(index=True, max_length=128)
    state: str = Field(max_length=16)
    queued_model: str | None = Field(default=None, unique=True, max_length=128)
    running_model: str | None = Field(default=None, unique=True, max_length=128)
    trigger: str = Field(max_length=16)
    causes: str = Field(sa_column=Column(Text, nullable=False))  # JSON list, in arrival order
    requesters: str = Field(sa_column=Column(Text, nullable=False))  # JSON list
    requested_by: str
    reason: str = Field(sa_column=Column(Text, nullable=False))
    incident_id: str | None = None
    parameters: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    requested_at: datetime = Field(sa_type=UtcDateTime)
    not_before: datetime = Field(sa_type=UtcDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    dataset: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    live_from: int | None = None
    candidate_version: int | None = None
    evaluation_id: str | None = None
    cached_steps: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    failure: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    dataset_changes: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class RetrainAskRow(SQLModel, table=True):
    """An ask to retrain and what became of it (merged, joined, queued, refused)."""

    __tablename__ = "retrainer_asks"
    __table_args__ = (Index("ix_retrainer_asks_model_at", "model", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=128)
    cause: str = Field(sa_column=Column(Text, nullable=False))
    trigger: str = Field(max_length=16)
    requested_by: str
    reason: str = Field(sa_column=Column(Text, nullable=False))
    incident_id: str | None = None
    at: datetime = Field(sa_type=UtcDateTime)
    admission: str = Field(max_length=16)
    run_id: str | None = Field(default=None, max_length=40)
    detail: str = Field(sa_column=Column(Text, nullable=False))
    via: str | None = Field(default=None, max_length=200)  # who asked on requested_by's behalf


class LiveExampleRow(SQLModel, table=True):
    """A served prediction's features and, once it arrives, its label (either may come first)."""

    __tablename__ = "retrainer_live_examples"
    __table_args__ = (
        Index("ix_retrainer_live_examples_labelled", "model", "labelled_at"),
        Index("ix_retrainer_live_examples_seen", "seen_at"),
    )

    model: str = Field(primary_key=True, max_length=128)
    request_id: str = Field(primary_key=True, max_length=200)
    features: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    label: str | None = None
    seen_at: datetime = Field(sa_type=UtcDateTime)
    labelled_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ProducedDatasetRow(SQLModel, table=True):
    """A snapshot the retrainer made: its rows before ``live_from`` are seed data (the last
    training set a person registered), the rest labelled live traffic."""

    __tablename__ = "retrainer_produced_datasets"

    digest: str = Field(primary_key=True, max_length=71)
    model: str = Field(max_length=128)
    run_id: str = Field(max_length=40)
    live_from: int


RETRAINING_TABLES: list[type[SQLModel]] = [
    RetrainRunRow,
    RetrainAskRow,
    LiveExampleRow,
    ProducedDatasetRow,
]

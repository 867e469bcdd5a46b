"""The rollout tables: the gate's evaluation records and promotion requests with their rollout.

Rules the database enforces: one promotion request per evaluation (``evaluation_id`` unique); at
most one candidate in canary per model (``canary_model`` holds the model name while its request's
rollout is the canary, NULL otherwise, under a unique constraint). Evaluation records are written
once and never updated.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from services.runtime import UtcDateTime

__all__ = ["ROLLOUT_TABLES", "EvaluationRow", "PromotionRow"]


class EvaluationRow(SQLModel, table=True):
    """The gate's verdict on a candidate: written once, never changed."""

    __tablename__ = "retrainer_evaluations"

    evaluation_id: str = Field(primary_key=True, max_length=40)
    model: str = Field(index=True, max_length=128)
    candidate_version: int
    champion_version: int | None = None
    dataset_digest: str = Field(max_length=71)
    passed: bool
    figures: str = Field(sa_column=Column(Text, nullable=False))
    failures: str = Field(sa_column=Column(Text, nullable=False))
    summary: str = Field(sa_column=Column(Text, nullable=False))
    incident_id: str | None = None
    run_id: str = Field(max_length=40)
    created_at: datetime = Field(sa_type=UtcDateTime)


class PromotionRow(SQLModel, table=True):
    """A promotion request, its decision, and the candidate's rollout once approved."""

    __tablename__ = "retrainer_promotions"

    request_id: str = Field(primary_key=True, max_length=40)
    model: str = Field(index=True, max_length=128)
    version: int
    evaluation_id: str = Field(unique=True, max_length=40)
    requested_by: str
    requesters: str = Field(sa_column=Column(Text, nullable=False))  # JSON list
    summary: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime, index=True)
    state: str = Field(max_length=16)
    decided_by: str | None = None
    decided_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    incident_id: str | None = None
    rollout: str | None = Field(default=None, max_length=16)
    rollout_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    rollout_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    champion_version: int | None = None
    canary_model: str | None = Field(default=None, unique=True, max_length=128)


ROLLOUT_TABLES: list[type[SQLModel]] = [EvaluationRow, PromotionRow]

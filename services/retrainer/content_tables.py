"""The retrainer's content tables: content-addressed bytes and the pipeline's step records.

Artifacts, datasets and the pipeline's intermediate data live in the retrainer's database, so
every replica reads what any replica stored without a shared volume (ADR 0017). A content row is
written once under its SHA-256 and never updated; its size is kept apart from the bytes so it can
be listed without reading them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, Text
from sqlmodel import Field, SQLModel

from contracts.envelope import utc_now
from services.runtime import UtcDateTime

__all__ = ["CONTENT_TABLES", "ContentRow", "StepRecordRow"]


class ContentRow(SQLModel, table=True):
    """Bytes of one kind (``artifact``, ``dataset``, ``blob``) stored under their SHA-256."""

    __tablename__ = "retrainer_content"

    kind: str = Field(primary_key=True, max_length=16)
    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    stored_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)


class StepRecordRow(SQLModel, table=True):
    """A pipeline step's outputs (JSON) under the key of its inputs."""

    __tablename__ = "retrainer_step_records"

    step: str = Field(primary_key=True, max_length=16)
    key: str = Field(primary_key=True, max_length=64)
    outputs: str = Field(sa_column=Column(Text, nullable=False))
    recorded_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)


CONTENT_TABLES: list[type[SQLModel]] = [ContentRow, StepRecordRow]

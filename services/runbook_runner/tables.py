"""The runner's tables (its own database; SQLite file by default, PostgreSQL by URL).

``run_id`` is the primary key: the database itself guarantees one row, hence one execution, per
run id, whatever two deliveries or two replicas race. A run in progress carries its runner's
lease (``lease_until``), renewed while the runner lives; once it lapses, any runner reports the
run abandoned (:mod:`services.runbook_runner.service`). Resolutions are what the runner learned
from the ``incidents`` topic, kept so that a restarted runner still skips a resolved incident's
waiting runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from services.runtime.database import UtcDateTime

__all__ = ["TABLES", "ResolutionRow", "RunRow"]


class RunRow(SQLModel, table=True):
    """One runbook run: the request, what ran, and how it ended."""

    __tablename__ = "runbook_runs"
    __table_args__ = (Index("ix_runbook_runs_limit", "runbook", "model", "state"),)

    run_id: str = Field(primary_key=True)
    request_digest: str
    request_event_id: UUID
    correlation_id: str
    incident_id: str = Field(index=True)
    model: str
    model_version: int | None = None
    runbook: str
    tier: str
    requested_by: str
    approved_by: str | None = None
    reason: str
    supplied: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    state: str = Field(index=True)
    owner: str | None = None  # the runner executing it (its instance id)
    lease_until: datetime | None = Field(default=None, sa_type=UtcDateTime)  # renewed by owner
    argv: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    verify_argv: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    script_sha256: str | None = None
    verify_script_sha256: str | None = None
    exit_code: int | None = None
    verify_exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    verify_output: str = ""
    truncated: bool = False
    detail: str = ""
    asked_at: datetime = Field(sa_type=UtcDateTime)  # when the incident log asked (its clock)
    requested_at: datetime = Field(sa_type=UtcDateTime, index=True)  # recorded here
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ResolutionRow(SQLModel, table=True):
    """The latest resolution of an incident the runner heard of (the incident log's clock)."""

    __tablename__ = "runbook_incident_resolutions"

    incident_id: str = Field(primary_key=True)
    resolved_at: datetime = Field(sa_type=UtcDateTime)


TABLES: list[type[SQLModel]] = [RunRow, ResolutionRow]

"""The registry's tables: models, versions, current aliases, and the append-only deployment log.

Rules the database enforces, not only the code: a version number is unique within its model; an
alias names at most one version (primary key model + alias) and a version holds at most one alias
(unique model + version), so champion and challenger can never be the same version; an alias can
only name a registered version (foreign key); revision numbers are unique per model, so two
concurrent changes cannot both commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKeyConstraint, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from contracts.envelope import utc_now
from services.runtime import UtcDateTime

__all__ = ["REGISTRY_TABLES", "AliasRow", "DeploymentRevisionRow", "ModelRow", "ModelVersionRow"]


class ModelRow(SQLModel, table=True):
    """A registered model name."""

    __tablename__ = "registry_models"

    name: str = Field(primary_key=True, max_length=128)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)


class ModelVersionRow(SQLModel, table=True):
    """A registered version; ``record`` is its :class:`contracts.ModelVersionRecord` as JSON."""

    __tablename__ = "registry_versions"

    model: str = Field(primary_key=True, foreign_key="registry_models.name", max_length=128)
    version: int = Field(primary_key=True)
    artifact_sha256: str = Field(index=True, max_length=64)
    registered_at: datetime = Field(sa_type=UtcDateTime)
    record: str = Field(sa_column=Column(Text, nullable=False))


class AliasRow(SQLModel, table=True):
    """Which version an alias names now (``champion`` / ``challenger``)."""

    __tablename__ = "registry_aliases"
    __table_args__ = (
        UniqueConstraint("model", "version", name="uq_registry_alias_one_per_version"),
        ForeignKeyConstraint(
            ["model", "version"], ["registry_versions.model", "registry_versions.version"]
        ),
    )

    model: str = Field(primary_key=True, max_length=128)
    alias: str = Field(primary_key=True, max_length=32)
    version: int


class DeploymentRevisionRow(SQLModel, table=True):
    """One revision of a model's deployment, never updated: the history of what served."""

    __tablename__ = "registry_deployment_revisions"

    model: str = Field(primary_key=True, foreign_key="registry_models.name", max_length=128)
    revision: int = Field(primary_key=True)
    action: str = Field(max_length=32)
    actor: str
    reason: str = Field(sa_column=Column(Text, nullable=False))
    incident_id: str | None = None
    at: datetime = Field(sa_type=UtcDateTime, index=True)
    deployment: str = Field(sa_column=Column(Text, nullable=False))


REGISTRY_TABLES: list[type[SQLModel]] = [ModelRow, ModelVersionRow, AliasRow, DeploymentRevisionRow]

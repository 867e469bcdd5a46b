"""The retrainer's content tables in tests: a migrated database for the step store, and what is
stored (or deleting a row, where a test used to delete a file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import Engine, delete, select

from services.retrainer.content import blocking_engine
from services.retrainer.content_tables import ContentRow
from services.retrainer.migrations import HISTORY
from services.retrainer.retraining.step_store import DatabaseStepStore
from services.runtime import create_engine
from services.runtime.migrations import migrate

__all__ = ["forget_content", "forget_every", "migrated", "step_store", "stored_content"]


async def migrated(url: str) -> Engine:
    """Bring the retrainer's database at ``url`` to head; return a blocking engine on it."""
    engine = create_engine(url)
    try:
        await migrate(engine, HISTORY)
    finally:
        await engine.dispose()
    return blocking_engine(url)


def step_store(folder: Path) -> DatabaseStepStore:
    """A step store on a fresh SQLite database in ``folder`` (from a test without a loop)."""
    folder.mkdir(parents=True, exist_ok=True)
    return DatabaseStepStore(asyncio.run(migrated(f"sqlite:///{folder / 'retrainer.db'}")))


def stored_content(engine: Engine) -> list[tuple[str, str]]:
    """Every stored content as (kind, SHA-256)."""
    with engine.connect() as connection:
        rows = connection.execute(select(ContentRow.kind, ContentRow.sha256)).all()  # type: ignore[call-overload]  # SQLModel columns
    return sorted((kind, sha256) for kind, sha256 in rows)


def forget_content(engine: Engine, kind: str, sha256: str) -> None:
    """Delete a stored content (as losing a file once did)."""
    with engine.begin() as connection:
        connection.execute(
            delete(ContentRow).where(ContentRow.kind == kind, ContentRow.sha256 == sha256)  # type: ignore[arg-type]  # SQLModel columns
        )


def forget_every(url: str, kind: str) -> None:
    """Delete every stored content of a kind from the database at ``url``."""
    engine = blocking_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(delete(ContentRow).where(ContentRow.kind == kind))  # type: ignore[arg-type]  # SQLModel column
    finally:
        engine.dispose()

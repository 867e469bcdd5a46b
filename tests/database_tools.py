"""Tables for tests of the runtime's own database mechanics (toy tables, no service history).

Services' tests build their databases through their migrations (``migrate(engine, HISTORY)``),
the path production takes; ``create_all`` is for tables no service owns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

__all__ = ["create_tables"]


async def create_tables(engine: AsyncEngine, models: Sequence[type[SQLModel]]) -> None:
    """Create the tables of the given models if missing."""
    tables = [cast(Table, model.__table__) for model in models]  # type: ignore[attr-defined]  # set by SQLModel for table=True classes
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: SQLModel.metadata.create_all(sync, tables=tables))

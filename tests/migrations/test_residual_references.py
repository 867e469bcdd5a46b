"""Revision 0005 of the monitor (residual drift's reference residuals, in their own table): a
database at 0004 with an estimation reference upgrades, keeps that row, and the monitor's store
saves and loads a residual reference on it."""

from __future__ import annotations

import json

from alembic import command
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.monitor.domain import Changes
from services.monitor.join import JoinChanges
from services.monitor.migrations import HISTORY
from services.monitor.residuals import ResidualReference
from services.monitor.store import load_snapshot, save_changes
from services.runtime import session_factory
from services.runtime.migrations import alembic_config, differences, migrate

ESTIMATION_STATE = json.dumps({"scores": [0.2], "positives": [True], "calibration": None})


async def test_a_monitor_database_at_0004_upgrades_to_0005_and_keeps_its_references(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as connection:
        config = alembic_config(HISTORY, None)

        def upgrade_to_0004(sync: Connection) -> None:
            config.attributes["connection"] = sync
            command.upgrade(config, "0004")

        await connection.run_sync(upgrade_to_0004)
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "monitor_residual_references" not in tables
        await connection.execute(
            text("INSERT INTO monitor_references VALUES ('m', 3, :state)"),
            {"state": ESTIMATION_STATE},
        )

    upgrade = await migrate(engine, HISTORY)

    assert (upgrade.before, upgrade.after) == ("0004", "0005")
    async with engine.connect() as connection:
        assert await connection.run_sync(lambda sync: differences(HISTORY, sync)) == []
        kept = (await connection.execute(text("SELECT * FROM monitor_references"))).all()
    assert [tuple(row) for row in kept] == [("m", 3, ESTIMATION_STATE)]

    sessions = session_factory(engine)
    reference = ResidualReference(rows=30, residuals=[1.5, -2.0], overlapping={"champion"})
    async with sessions() as session, session.begin():
        await save_changes(
            session,
            Changes(
                join=JoinChanges(),
                windows={},
                episodes={},
                clocks={},
                pairings={},
                ended_pairings=[],
                outcomes=[],
                residual_references={("m", 3): reference},
            ),
        )
    async with sessions() as session:
        snapshot = await load_snapshot(session)
    assert snapshot.residual_references == {("m", 3): reference}
    assert set(snapshot.references) == {("m", 3)}

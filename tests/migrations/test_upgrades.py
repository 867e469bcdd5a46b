"""Each service database upgrades from Vigil 0.1.0 to today's schema and keeps its rows.

The 0.1.0 schemas are frozen copies (``v0_1_0/<service>.<dialect>.sql``: what that release's
``create_all`` executed), so the tests need no git history. Every 0.1.0 table gets a row; after
:func:`migrate` each row reads back unchanged, the schema equals the tables in code, and today's
stores read and write on it.
"""

from __future__ import annotations

import importlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import (
    CHAR,
    JSON,
    Boolean,
    Connection,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Uuid,
    inspect,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select as select_rows

from contracts import AlertKind
from services.incident_log.routing import Matcher
from services.incident_log.service import IncidentLog
from services.incident_log.tables import IncidentRow, SilenceRow
from services.retrainer.registry.store import RegistryStore
from services.runbook_runner.store import RunStore
from services.runtime import HandledIds, first_time, session_factory
from services.runtime.migrations import (
    BASELINE,
    SchemaError,
    SchemaHistory,
    alembic_config,
    differences,
    migrate,
)
from tests.factories import make_alert
from tests.incident_log.policies import make_policy

FROZEN = Path(__file__).with_name("v0_1_0")
SERVICES = ["incident-log", "retrainer", "monitor", "runbook-runner"]
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
OLD_EVENT = uuid.UUID("0b1c2d3e-0000-4000-8000-000000000001")


def history_of(service: str) -> SchemaHistory:
    package = importlib.import_module(f"services.{service.replace('-', '_')}.migrations")
    history: SchemaHistory = package.HISTORY
    return history


async def build_0_1_0(engine: AsyncEngine, service: str) -> None:
    """Create the database exactly as Vigil 0.1.0 did."""
    ddl = (FROZEN / f"{service}.{engine.dialect.name}.sql").read_text()
    lines = [line for line in ddl.splitlines() if not line.startswith("--")]
    async with engine.begin() as connection:
        for statement in "\n".join(lines).split(";"):
            if statement.strip():
                await connection.exec_driver_sql(statement)


OVERRIDES: dict[str, dict[str, Any]] = {
    # Rows today's stores act on, so they need values the domain accepts.
    "silences": {
        "id": "sil-old",
        "matcher": Matcher(kinds=[AlertKind.DATA_DRIFT]).model_dump(mode="json"),
        "starts_at": T0,
        "ends_at": T0 + timedelta(days=1),
    },
    "processed_events": {"event_id": OLD_EVENT},
    "handled_batches": {"event_ids": OLD_EVENT.bytes},
    "registry_versions": {"artifact_sha256": "a" * 64},
    "runbook_runs": {"run_id": "run-old", "requested_at": T0},
}


def value_for(table: Table, column_name: str, parents: dict[tuple[str, str], Any]) -> Any:
    """A value of the column's type; foreign keys take the parent row's value."""
    column = table.columns[column_name]
    if column_name in OVERRIDES.get(table.name, {}):
        return OVERRIDES[table.name][column_name]
    for key in column.foreign_keys:
        return parents[(key.column.table.name, key.column.name)]
    kind = column.type
    if isinstance(kind, Uuid) or (isinstance(kind, CHAR) and kind.length == 32):
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{table.name}.{column_name}")
    if isinstance(kind, Boolean):
        return True
    if isinstance(kind, Integer):
        return 1 if column.primary_key else 7
    if isinstance(kind, Float):
        return 0.25
    if isinstance(kind, DateTime):
        return T0
    if isinstance(kind, JSON):
        return {"kept": table.name, "values": [1, 2.5, "three"]}
    if isinstance(kind, LargeBinary):
        return b"\x00\x01vigil"
    if isinstance(kind, String):
        return f"{table.name}.{column_name}"[: kind.length]
    raise AssertionError(f"no sample value for {table.name}.{column_name}: {kind!r}")


def fill_every_table(connection: Connection) -> dict[str, dict[str, Any]]:
    """Insert one row into every table, parents first; return the rows written."""
    metadata = MetaData()
    metadata.reflect(connection)
    parents: dict[tuple[str, str], Any] = {}
    written: dict[str, dict[str, Any]] = {}
    for table in metadata.sorted_tables:
        serial = table.autoincrement_column  # the database numbers it, as in 0.1.0
        row = {
            column.name: value_for(table, column.name, parents)
            for column in table.columns
            if column is not serial
        }
        if connection.dialect.name == "sqlite":
            row = {k: v.hex if isinstance(v, uuid.UUID) else v for k, v in row.items()}
        result = connection.execute(table.insert().values(**row))
        if serial is not None:
            assert result.inserted_primary_key is not None
            row[serial.name] = result.inserted_primary_key[0]
        parents.update({(table.name, name): value for name, value in row.items()})
        written[table.name] = row
    return written


def read_back(connection: Connection, written: dict[str, dict[str, Any]]) -> dict[str, Any]:
    metadata = MetaData()
    metadata.reflect(connection)
    found: dict[str, Any] = {}
    for name, row in written.items():
        table = metadata.tables[name]
        rows = connection.execute(select(*(table.c[column] for column in row))).mappings().all()
        found[name] = [{k: comparable(v) for k, v in r.items()} for r in rows]
    return found


def comparable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def schema_of(connection: Connection) -> dict[str, Any]:
    """Tables, columns (type, nullable), keys and indexes, as reflection sees them."""
    inspector = inspect(connection)
    schema: dict[str, Any] = {}
    for table in inspector.get_table_names():
        if table == "alembic_version":
            continue
        schema[table] = {
            "columns": {
                c["name"]: (str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            },
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in inspector.get_indexes(table)
            ),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
        }
    return schema


async def current_revision(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
        return [row[0] for row in rows]


@pytest.mark.parametrize("service", SERVICES)
async def test_a_new_database_gets_todays_schema_from_the_revisions(
    engine: AsyncEngine, service: str
) -> None:
    history = history_of(service)
    upgrade = await migrate(engine, history)
    assert (upgrade.before, upgrade.adopted, upgrade.after) == (None, False, history.head())
    async with engine.connect() as connection:
        assert await connection.run_sync(lambda sync: differences(history, sync)) == []
    assert await current_revision(engine) == [history.head()]


@pytest.mark.parametrize("service", SERVICES)
async def test_the_baseline_revision_builds_the_0_1_0_schema(
    engine: AsyncEngine, service: str
) -> None:
    await build_0_1_0(engine, service)
    async with engine.connect() as connection:
        released = await connection.run_sync(schema_of)
    async with engine.begin() as connection:
        metadata = MetaData()
        await connection.run_sync(metadata.reflect)
        await connection.run_sync(metadata.drop_all)
    async with engine.begin() as connection:
        config = alembic_config(history_of(service), None)

        def upgrade_to_baseline(sync: Connection) -> None:
            config.attributes["connection"] = sync
            command.upgrade(config, BASELINE)

        await connection.run_sync(upgrade_to_baseline)
        assert await connection.run_sync(schema_of) == released


@pytest.mark.parametrize("service", SERVICES)
async def test_a_0_1_0_database_keeps_every_row_and_reaches_todays_schema(
    engine: AsyncEngine, service: str
) -> None:
    history = history_of(service)
    await build_0_1_0(engine, service)
    async with engine.begin() as connection:
        written = await connection.run_sync(fill_every_table)
        before = await connection.run_sync(lambda sync: read_back(sync, written))
    assert all(len(rows) == 1 for rows in before.values())

    upgrade = await migrate(engine, history)

    assert (upgrade.before, upgrade.adopted, upgrade.after) == (None, True, history.head())
    async with engine.connect() as connection:
        assert await connection.run_sync(lambda sync: read_back(sync, written)) == before
        assert await connection.run_sync(lambda sync: differences(history, sync)) == []
    sessions = session_factory(engine)
    async with sessions() as session:
        # Every service's own idempotency record survives: the old event is not handled twice.
        if service in {"incident-log", "retrainer"}:
            assert not await first_time(session, OLD_EVENT)
        if service == "monitor":
            handled = HandledIds()
            await handled.load(session)
            assert OLD_EVENT in handled


async def test_the_incident_log_works_on_an_upgraded_0_1_0_database(engine: AsyncEngine) -> None:
    await build_0_1_0(engine, "incident-log")
    async with engine.begin() as connection:
        await connection.run_sync(fill_every_table)
    await migrate(engine, history_of("incident-log"))
    sessions = session_factory(engine)
    log = IncidentLog(sessions, make_policy(), clock=lambda: T0 + timedelta(hours=1))

    ended = await log.expire_silence("sil-old", actor="bo")  # a 0.1.0 row, today's column
    await log.on_alerts([make_alert()])  # a new incident, paging's tables included

    assert ended.expired_by == "bo"
    async with sessions() as session:
        stored = await session.get(SilenceRow, "sil-old")
        incidents = (await session.exec(select_rows(IncidentRow))).all()
    assert stored is not None
    assert stored.expired_by == "bo"
    assert len(incidents) == 2  # the 0.1.0 incident and the new one


async def test_the_runbook_runner_works_on_an_upgraded_0_1_0_database(
    engine: AsyncEngine,
) -> None:
    await build_0_1_0(engine, "runbook-runner")
    async with engine.begin() as connection:
        await connection.run_sync(fill_every_table)
    await migrate(engine, history_of("runbook-runner"))
    sessions = session_factory(engine)

    async with sessions() as session, session.begin():
        store = RunStore(session)
        run = await store.get("run-old")
        await store.record_resolution("incident-1", T0)
    async with sessions() as session:
        resolved = await RunStore(session).resolved_at("incident-1")

    assert run is not None
    assert run.asked_at == T0  # backfilled from when the run was recorded
    assert resolved == T0


async def test_the_registry_works_on_an_upgraded_0_1_0_database(engine: AsyncEngine) -> None:
    await build_0_1_0(engine, "retrainer")
    async with engine.begin() as connection:
        await connection.run_sync(fill_every_table)
    await migrate(engine, history_of("retrainer"))
    sessions = session_factory(engine)
    store = RegistryStore(sessions, producer="retrainer")

    assert await store.knows_artifact("a" * 64)
    assert not await store.knows_artifact("b" * 64)
    async with sessions() as session, session.begin():
        assert await first_time(session, uuid.uuid4())


@pytest.mark.parametrize("service", SERVICES)
async def test_a_database_at_head_is_left_untouched(engine: AsyncEngine, service: str) -> None:
    history = history_of(service)
    await migrate(engine, history)
    async with engine.connect() as connection:
        schema = await connection.run_sync(schema_of)

    again = await migrate(engine, history)

    assert not again.changed
    assert again.before == again.after == history.head()
    async with engine.connect() as connection:
        assert await connection.run_sync(schema_of) == schema
    assert await current_revision(engine) == [history.head()]


async def test_a_database_a_newer_vigil_upgraded_is_refused(engine: AsyncEngine) -> None:
    history = history_of("runbook-runner")
    await migrate(engine, history)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '0999'"))

    with pytest.raises(SchemaError, match="'0999', which this Vigil does not know"):
        await migrate(engine, history)

    assert await current_revision(engine) == ["0999"]


async def test_a_database_of_other_tables_is_refused(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE runbook_runs (run_id VARCHAR PRIMARY KEY)"))
        await connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY)"))

    with pytest.raises(SchemaError, match=r"lacks \['outbox'\]"):
        await migrate(engine, history_of("runbook-runner"))

    async with engine.connect() as connection:
        assert not await connection.run_sync(
            lambda sync: inspect(sync).has_table("alembic_version")
        )

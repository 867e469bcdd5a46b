"""Schema migrations: each service database's Alembic history, run on start under a lock.

A service that keeps state owns one database and one history of revisions
(``services/<service>/migrations/``, a :class:`SchemaHistory`); revision ``0001`` is the schema
Vigil 0.1.0 created, each later one a change since. :func:`migrate` brings a database to the
newest revision (*head*) before the service uses it (ADR 0015, ``docs/adr/``):

- one migrator at a time: on PostgreSQL a transaction-scoped advisory lock, on SQLite the
  database's write lock (``BEGIN IMMEDIATE``). Replicas starting together queue; the first
  migrates, the others find the database at head and change nothing;
- all or nothing: the revisions run in that one transaction (both databases have transactional
  DDL), so a crash mid-way leaves the database at its old revision, and the next start retries;
- SQLite's table rebuilds (Alembic's batch mode) run with foreign keys off and are checked with
  ``PRAGMA foreign_key_check`` before commit, SQLite's own recipe for schema changes;
- a database created before migrations existed (tables, no ``alembic_version``) is adopted: it is
  stamped at ``0001`` and upgraded; the revision after the baseline tolerates the states that
  builds between 0.1.0 and migrations could leave;
- a database at a revision this code does not know (a newer Vigil migrated it) is refused:
  downgrades are not supported, restore the backup taken before the upgrade.

Alembic's environment (``services/runtime/migration_env/env.py``) never opens a database: it is
handed the locked connection and the history through the Alembic config.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, cast

import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, MetaData, Table, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from services.runtime.database import UtcDateTime
from services.runtime.names import ServiceName

__all__ = [
    "BASELINE",
    "SCHEMA_LOCK",
    "SchemaError",
    "SchemaHistory",
    "Upgrade",
    "alembic_config",
    "differences",
    "migrate",
    "new_revision",
    "upgrade_connection",
]

BASELINE = "0001"
"""Every history's first revision: the schema of Vigil 0.1.0."""

SCHEMA_LOCK = 0x76_69_67_69_6C
"""Key of the PostgreSQL advisory lock held while migrating ("vigil" in ASCII)."""
_ENVIRONMENT = Path(__file__).with_name("migration_env")
_REVISION_ID = re.compile(r"^\d{4}$")

log = logging.getLogger(__name__)


class SchemaError(RuntimeError):
    """The database cannot be brought to this code's schema; the service must not start."""


@dataclass(frozen=True)
class SchemaHistory:
    """One service database's history of revisions, and the tables its head must match."""

    service: ServiceName
    versions: Path
    """The folder of the revision files (``services/<service>/migrations/``)."""
    tables: Sequence[type[SQLModel]]
    """Every table the service's code uses: the target of autogenerate and of the drift test."""
    baseline_tables: frozenset[str]
    """The tables 0.1.0 created: all present marks an unversioned database as adoptable."""

    def metadata(self) -> MetaData:
        """Return a metadata holding only this service's tables (SQLModel's is shared)."""
        metadata = MetaData()
        for model in self.tables:
            cast(Table, model.__table__).to_metadata(metadata)  # type: ignore[attr-defined]  # set by SQLModel for table=True classes
        return metadata

    def head(self) -> str:
        """Return the newest revision; a history with several heads is a merge to finish."""
        heads = ScriptDirectory.from_config(alembic_config(self)).get_heads()
        if len(heads) != 1:
            raise SchemaError(
                f"the {self.service} schema history has heads {sorted(heads)}: two revisions "
                "revise the same one; renumber the newer and point its down_revision at the other"
            )
        return heads[0]


@dataclass(frozen=True)
class Upgrade:
    """What :func:`migrate` did: the revision found, and the one left."""

    before: str | None
    after: str
    adopted: bool = False
    """The database predated migrations and was stamped at the baseline first."""

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(history: SchemaHistory, connection: Connection | None = None) -> Config:
    """Return the Alembic config of a history (no ``alembic.ini``: everything is here)."""
    config = Config()
    config.set_main_option("script_location", str(_ENVIRONMENT))
    config.set_main_option("version_locations", str(history.versions))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("truncate_slug_length", "48")
    config.attributes["history"] = history
    config.attributes["connection"] = connection
    return config


async def migrate(
    engine: AsyncEngine, history: SchemaHistory, *, wait_seconds: float = 600
) -> Upgrade:
    """Bring a service's database to the head of its history, one process at a time.

    On SQLite a process that finds another migrating waits for it up to ``wait_seconds``
    (SQLite's own busy timeout is shorter than a long migration); PostgreSQL's lock just waits.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            result = await _migrate(engine, history)
        except OperationalError as error:
            if "database is locked" not in str(error) or time.monotonic() > deadline:
                raise
            log.info("%s database: another process holds it, waiting", history.service)
            await asyncio.sleep(0.5)
            continue
        if result.changed:
            log.info(
                "%s database migrated from %s to %s", history.service, result.before, result.after
            )
        return result


async def _migrate(engine: AsyncEngine, history: SchemaHistory) -> Upgrade:
    async with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Outside any transaction: SQLite ignores this pragma inside one.
            await connection.run_sync(_sqlite_foreign_keys, enabled=False)
        try:
            async with connection.begin():  # SQLite: BEGIN IMMEDIATE, the write lock
                if connection.dialect.name == "postgresql":
                    await connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK}
                    )
                return await connection.run_sync(partial(upgrade_connection, history))
        finally:
            if sqlite:
                await connection.run_sync(_sqlite_foreign_keys, enabled=True)


def upgrade_connection(history: SchemaHistory, connection: Connection) -> Upgrade:
    """Upgrade to head in the connection's transaction (the caller holds the schema lock)."""
    before = MigrationContext.configure(connection).get_current_revision()
    head = history.head()
    config = alembic_config(history, connection)
    adopted = before is None and _adopt_unversioned(history, connection, config)
    if before is not None and before != head and before not in _known(history):
        raise SchemaError(
            f"the {history.service} database is at revision {before!r}, which this Vigil does "
            f"not know (its newest is {head!r}): a newer Vigil upgraded it, and downgrades are "
            "not supported; run that version, or restore the backup taken before the upgrade"
        )
    if before != head:
        command.upgrade(config, "head")
        if connection.dialect.name == "sqlite":
            violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if violations:
                raise SchemaError(f"the migration leaves broken foreign keys: {violations[:5]}")
    return Upgrade(before=before, after=head, adopted=adopted)


def differences(history: SchemaHistory, connection: Connection) -> list[Any]:
    """Return how the database's schema differs from the history's tables (empty: in step)."""
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "render_as_batch": True}
    )
    return [
        difference
        for difference in compare_metadata(context, history.metadata())
        if not _is_alembic_version(difference)
    ]


def new_revision(history: SchemaHistory, message: str, *, database_url: str | None = None) -> Path:
    """Write the next revision of a history, its operations drafted by autogenerate.

    The draft compares the tables in code with a database at head: a scratch SQLite file unless
    ``database_url`` names one (its schema is upgraded first). Review it before committing.
    """
    head = history.head()
    if not _REVISION_ID.match(head):
        raise SchemaError(f"the head revision {head!r} is not a four-digit number")
    revision_id = f"{int(head) + 1:04d}"
    with tempfile.TemporaryDirectory(prefix="vigil-revision-") as scratch:
        url = make_url(database_url or f"sqlite:///{Path(scratch) / 'head.db'}")
        if url.drivername in {"postgresql", "postgres"}:
            url = url.set(drivername="postgresql+psycopg")
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.begin() as connection:
                upgrade_connection(history, connection)
                written = command.revision(
                    alembic_config(history, connection),
                    message=message,
                    autogenerate=True,
                    rev_id=revision_id,
                )
        finally:
            engine.dispose()
    if not isinstance(written, Script):
        raise SchemaError(f"alembic wrote no single revision: {written!r}")
    return Path(written.path)


def run_environment(context: Any) -> None:
    """Body of Alembic's ``env.py``: run the revisions on the connection the caller gave."""
    config: Config = context.config
    connection = config.attributes.get("connection")
    history = config.attributes.get("history")
    if not isinstance(connection, Connection) or not isinstance(history, SchemaHistory):
        raise SchemaError(
            "run migrations through services.runtime.migrations (`vigil db`), not `alembic`"
        )
    context.configure(
        connection=connection,
        target_metadata=history.metadata(),
        render_as_batch=True,  # SQLite alters most things by rebuilding the table
        compare_type=True,
        render_item=_render_item,
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def _adopt_unversioned(history: SchemaHistory, connection: Connection, config: Config) -> bool:
    present = set(inspect(connection).get_table_names())
    if not present:
        return False
    missing = history.baseline_tables - present
    if missing:
        raise SchemaError(
            f"the {history.service} database has tables but no schema version, and lacks "
            f"{sorted(missing)}: it is not a {history.service} database of Vigil 0.1.0 or later"
        )
    log.info("%s database predates migrations: adopting it at %s", history.service, BASELINE)
    command.stamp(config, BASELINE)
    return True


def _known(history: SchemaHistory) -> set[str]:
    script = ScriptDirectory.from_config(alembic_config(history))
    return {revision.revision for revision in script.walk_revisions()}


def _sqlite_foreign_keys(connection: Connection, *, enabled: bool) -> None:
    # The DB-API connection directly: through SQLAlchemy the pragma would autobegin (BEGIN
    # IMMEDIATE) and be ignored inside that transaction.
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")
    finally:
        cursor.close()


def _render_item(type_: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write column types as plain SQLAlchemy types, so a revision never changes with our code."""
    if type_ != "type":
        return False
    if isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(item, AutoString):
        return "sa.String()" if item.length is None else f"sa.String(length={item.length})"
    return False


def _include_object(
    item: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    return not (type_ == "table" and name == "alembic_version")


def _is_alembic_version(difference: Any) -> bool:
    if isinstance(difference, tuple) and difference and isinstance(difference[-1], Table):
        return difference[-1].name == "alembic_version"
    return False

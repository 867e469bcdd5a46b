"""Databases for the services that keep state: SQLite file by default, PostgreSQL by URL.

One async engine per service process. Services write their own tables; this module gives them
the engine, sessions and a timezone-safe timestamp column type; the durable records of handled
event ids that use them live in :mod:`services.runtime.idempotency`.

SQLite specifics: WAL journal, a busy timeout, foreign keys on, and the lock a transaction takes
chosen by how it was opened (SQLAlchemy's documented recipe for pysqlite transactions):

- ``async with sessions() as s, s.begin():`` (and ``engine.begin()``) is a *write* transaction:
  ``BEGIN IMMEDIATE`` takes the write lock at once, so two processes that read then write the same
  rows serialise instead of failing to upgrade a read lock, and no update is lost;
- ``async with sessions() as s:`` without ``begin()`` is a *read*: a plain ``BEGIN`` on a snapshot
  that takes no lock, so reads (the API, the console) never wait behind a writer (WAL). The
  connection is ``query_only`` meanwhile: a write in a read session fails at once instead of
  risking a failed lock upgrade under contention.

PostgreSQL needs neither: readers never block there, and stores lock rows with ``FOR UPDATE``.

JSON columns are written strictly: NaN and infinities raise instead of becoming ``NaN`` text that
PostgreSQL refuses and other readers choke on.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio.session import AsyncSessionTransaction
from sqlalchemy.orm import SessionTransaction, SessionTransactionOrigin
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

__all__ = [
    "Sessions",
    "UtcDateTime",
    "async_url",
    "create_engine",
    "session_factory",
]

Sessions = async_sessionmaker[AsyncSession]

# Execution option of a SQLite engine bound to sessions: their transactions' BEGIN is emitted by
# the session (which knows whether it was begun explicitly), not by the engine.
_SESSION_BEGINS = "vigil_session_begins"
_QUERY_ONLY = "vigil_query_only"  # connection info: the PRAGMA query_only state set last


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def async_url(url: str) -> str:
    """Return a database URL with an async driver (``sqlite://`` → aiosqlite, ``postgresql://``
    → psycopg); URLs naming a driver already are kept.

    >>> async_url("sqlite:///.vigil/incidents.db")
    'sqlite+aiosqlite:///.vigil/incidents.db'
    >>> async_url("postgresql://vigil@db:5432/vigil")
    'postgresql+psycopg://vigil@db:5432/vigil'
    """
    parsed = make_url(url)
    if parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine of a service database."""
    full = async_url(url)
    if full.startswith("sqlite"):
        engine = create_async_engine(
            full, echo=echo, connect_args={"timeout": 30}, json_serializer=_strict_json
        )
        _sqlite_pragmas_and_immediate_transactions(engine)
        return engine
    return create_async_engine(
        full,
        echo=echo,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        json_serializer=_strict_json,
    )


def _strict_json(value: Any) -> str:
    return json.dumps(value, allow_nan=False)


def _sqlite_pragmas_and_immediate_transactions(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver emits no BEGIN; _begin does
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def on_begin(connection: Connection) -> None:
        if not connection.get_execution_options().get(_SESSION_BEGINS):
            _begin(connection, write=True)


def _begin(connection: Connection, *, write: bool) -> None:
    """Open a SQLite transaction: a write takes the write lock now, a read takes none."""
    query_only = not write
    if connection.info.get(_QUERY_ONLY, False) is not query_only:
        connection.exec_driver_sql(f"PRAGMA query_only={'ON' if query_only else 'OFF'}")
        connection.info[_QUERY_ONLY] = query_only
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class _Session(Session):
    """A session whose SQLite transactions are writes when begun explicitly, reads otherwise."""


@event.listens_for(_Session, "after_begin")
def _begin_session_transaction(
    session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    if transaction.nested or not connection.get_execution_options().get(_SESSION_BEGINS):
        return
    _begin(connection, write=transaction.origin is not SessionTransactionOrigin.AUTOBEGIN)


def session_factory(engine: AsyncEngine) -> Sessions:
    """Return the session maker of an engine (objects stay usable after commit).

    ``async with sessions() as s, s.begin():`` writes; ``async with sessions() as s:`` reads (on
    SQLite without taking the write lock, see the module docstring). On SQLite, the writes of
    one process also queue in order for one in-process lock before taking the database's: a
    waiting writer is woken when the lock is free instead of polling SQLite's busy handler
    (which sleeps up to 100 ms a try and lets a busy writer take the lock again and again).
    """
    if engine.dialect.name == "sqlite":
        return async_sessionmaker(
            engine.execution_options(**{_SESSION_BEGINS: True}),
            class_=_SqliteAsyncSession,
            sync_session_class=_Session,
            expire_on_commit=False,
            info={_WRITE_LOCK: _LoopLocks()},
        )
    return async_sessionmaker(
        engine, class_=AsyncSession, sync_session_class=_Session, expire_on_commit=False
    )


_WRITE_LOCK = "vigil_write_lock"


class _LoopLocks:
    """One FIFO lock per event loop (a process normally has one; tests may have several)."""

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def current(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock


class _SqliteAsyncSession(AsyncSession):
    """A session whose write transactions take the process's SQLite write lock first."""

    def begin(self) -> AsyncSessionTransaction:
        locks = self.info.get(_WRITE_LOCK)
        inner = super().begin()
        if not isinstance(locks, _LoopLocks):
            return inner
        return cast(AsyncSessionTransaction, _Serialised(inner, locks.current()))


class _Serialised:
    """``async with session.begin():`` holding an in-process lock around the transaction."""

    def __init__(self, transaction: AsyncSessionTransaction, lock: asyncio.Lock) -> None:
        self._transaction = transaction
        self._lock = lock

    async def __aenter__(self) -> AsyncSessionTransaction:
        await self._lock.acquire()
        try:
            return await self._transaction.__aenter__()
        except BaseException:
            self._lock.release()
            raise

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._transaction.__aexit__(*exc)
        finally:
            self._lock.release()

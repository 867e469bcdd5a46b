"""A content-addressed store in the retrainer's database: bytes kept under their SHA-256.

Artifacts, datasets and the pipeline's intermediate data are stored this way (table
``retrainer_content``), so the same content is stored once, a digest can never be made to name
other bytes, and every read is checked against its digest. Every replica on one database sees
what any of them stored: no shared volume (ADR 0017).

The store is used from the pipeline's worker thread as well as from the event loop, so it keeps
a blocking engine of its own on the service's database (:func:`blocking_engine`); the async
methods run the blocking ones in a thread. A write is one ``INSERT … ON CONFLICT DO NOTHING``
in its own transaction: two replicas storing the same content at once both succeed and one row
remains, and a process killed mid-write leaves no row at all.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy import create_engine as create_blocking_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from contracts.envelope import utc_now
from services.retrainer.content_tables import ContentRow
from services.runtime import sha256_hex

__all__ = [
    "ContentStore",
    "CorruptContentError",
    "MissingContentError",
    "blocking_engine",
    "insert_ignoring_duplicates",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")


class CorruptContentError(RuntimeError):
    """Stored bytes no longer have the SHA-256 they are stored under."""


class MissingContentError(LookupError):
    """Nothing is stored under a SHA-256 that was asked for."""


def blocking_engine(url: str) -> Engine:
    """Open the service's database for blocking use (psycopg or sqlite3 driver).

    SQLite gets the pragmas the runtime's async engine sets (WAL, a busy timeout), so a write
    here waits for the service's own writers instead of failing; PostgreSQL connections are not
    pooled.
    """
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        engine = create_blocking_engine(
            parsed.set(drivername="sqlite"), connect_args={"timeout": 30}
        )

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    # No pool on PostgreSQL: a connection is closed when its use ends. The pipeline's worker
    # thread can still hold one when the service stops and disposes the engine; a pooled one
    # would then go back to a discarded pool and be left open until garbage collection (a
    # ResourceWarning at best). Content is read and written a handful of times per
    # registration or run, so a connection each time costs milliseconds against its transfer.
    return create_blocking_engine(parsed, poolclass=NullPool)


def insert_ignoring_duplicates(engine: Engine, table: Any) -> Any:
    """Return ``INSERT … ON CONFLICT DO NOTHING`` into a table, in the engine's dialect."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


class ContentStore:
    """Bytes of one kind (``artifact``, ``dataset``, ``blob``) in ``retrainer_content``."""

    def __init__(self, engine: Engine, *, kind: str, suffix: str) -> None:
        self.engine = engine
        self.kind = kind
        self._suffix = suffix

    def uri_of(self, sha256: str) -> str:
        """Return a content's name (what records carry, e.g. a version's ``artifact_uri``)."""
        _check_hex(sha256)
        return f"sha256/{sha256}{self._suffix}"

    async def put(self, content: bytes) -> str:
        """Store bytes (once) and return their SHA-256."""
        return await asyncio.to_thread(self.put_now, content)

    async def get(self, sha256: str) -> bytes | None:
        """Return the bytes stored under a SHA-256, checked, or ``None`` if there are none."""
        return await asyncio.to_thread(self.get_now, sha256)

    def put_now(self, content: bytes) -> str:
        """:meth:`put` in the calling thread (for code already off the event loop)."""
        sha256 = sha256_hex(content)
        self.put_checked(sha256, content)
        return sha256

    def put_checked(self, sha256: str, content: bytes) -> None:
        """Store bytes under a SHA-256 the caller computed (checked here too)."""
        if sha256_hex(content) != sha256:
            raise CorruptContentError(f"{self.kind} {sha256}: the bytes have another SHA-256")
        statement = insert_ignoring_duplicates(self.engine, ContentRow.__table__).values(  # type: ignore[attr-defined]  # set by SQLModel for table=True classes
            kind=self.kind,
            sha256=sha256,
            size=len(content),
            content=content,
            stored_at=utc_now(),
        )
        with self.engine.begin() as connection:
            connection.execute(statement)

    def get_now(self, sha256: str) -> bytes | None:
        """:meth:`get` in the calling thread (for code already off the event loop)."""
        _check_hex(sha256)
        query = select(ContentRow.content).where(  # type: ignore[call-overload]  # SQLModel column
            ContentRow.kind == self.kind, ContentRow.sha256 == sha256
        )
        with self.engine.connect() as connection:
            found = connection.execute(query).scalar_one_or_none()
        if found is None:
            return None
        content = bytes(found)
        if sha256_hex(content) != sha256:
            raise CorruptContentError(f"{self.kind} {sha256} does not match its SHA-256")
        return content

    def require(self, sha256: str) -> bytes:
        """Return the bytes stored under a SHA-256, checked; raise if there are none."""
        content = self.get_now(sha256)
        if content is None:
            raise MissingContentError(f"no {self.kind} is stored under {sha256}")
        return content

    def has(self, sha256: str) -> bool:
        """Whether bytes are stored under a SHA-256 (not checked)."""
        _check_hex(sha256)
        query = select(ContentRow.size).where(  # type: ignore[call-overload]  # SQLModel column
            ContentRow.kind == self.kind, ContentRow.sha256 == sha256
        )
        with self.engine.connect() as connection:
            return connection.execute(query).first() is not None


def _check_hex(sha256: str) -> None:
    if not isinstance(sha256, str) or not _HEX64.fullmatch(sha256):
        raise ValueError(f"not a SHA-256: {sha256!r}")

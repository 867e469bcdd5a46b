"""A content-addressed file store: bytes are kept under their SHA-256, never overwritten.

Artifacts and datasets are stored this way under the state folder, so the same content is stored
once, a path can never be made to point at other bytes, and every read is checked against its name.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

from services.runtime import sha256_hex

__all__ = ["ContentStore", "CorruptContentError"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class CorruptContentError(RuntimeError):
    """A stored file no longer has the hash it is stored under."""


class ContentStore:
    """Files named ``sha256/<hex><suffix>`` under a root folder."""

    def __init__(self, root: Path, *, suffix: str) -> None:
        self.root = root
        self._suffix = suffix

    def uri_of(self, sha256: str) -> str:
        """Return a content's location relative to the root (what records carry)."""
        if not _HEX64.match(sha256):
            raise ValueError(f"not a SHA-256: {sha256!r}")
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
        self._write(sha256, content)
        return sha256

    def get_now(self, sha256: str) -> bytes | None:
        """:meth:`get` in the calling thread (for code already off the event loop)."""
        content = self._read(sha256)
        if content is not None and sha256_hex(content) != sha256:
            raise CorruptContentError(f"{self.uri_of(sha256)} does not match its SHA-256")
        return content

    def has(self, sha256: str) -> bool:
        """Whether bytes are stored under a SHA-256 (not checked)."""
        return self._path(sha256).exists()

    def _path(self, sha256: str) -> Path:
        return self.root / self.uri_of(sha256)

    def _write(self, sha256: str, content: bytes) -> None:
        path = self._path(sha256)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write aside, then rename: a crash never leaves a partial file under a content name.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _read(self, sha256: str) -> bytes | None:
        path = self._path(sha256)
        return path.read_bytes() if path.exists() else None

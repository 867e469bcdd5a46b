"""Capped capture of a command's output, made safe to store, publish and show.

A runbook can print without limit; what is kept is the first and last halves of a byte budget,
with a visible mark where the middle was cut, so both the start (what it set out to do) and the
end (how it failed) survive. The text is decoded as UTF-8 (bad bytes become U+FFFD) and control
characters other than newline and tab are replaced: terminal escape sequences must not reach the
console, NUL bytes cannot be stored in PostgreSQL text, and every kept byte becomes at most one
character, which bounds the size of the event that carries it.
"""

from __future__ import annotations

import re

__all__ = ["OutputCapture", "printable"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Return text with line breaks normalised and other control characters replaced.

    >>> printable("ok\\r\\n\\x1b[31mred\\x00")
    'ok\\n\\ufffd[31mred\\ufffd'
    """
    return _CONTROL.sub("\ufffd", text.replace("\r\n", "\n").replace("\r", "\n"))


class OutputCapture:
    """Keeps at most ``limit`` bytes of a stream: its head and its tail.

    >>> capture = OutputCapture(limit=8)
    >>> capture.feed(b"0123456789abcdef")
    >>> capture.truncated, capture.total
    (True, 16)
    >>> print(capture.text())
    0123
    [... vigil: 8 bytes of output cut ...]
    cdef
    """

    def __init__(self, limit: int) -> None:
        if limit < 2:
            raise ValueError("the output limit must be at least 2 bytes")
        self._head_limit = limit // 2
        self._tail_limit = limit - self._head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the stream."""
        self.total += len(chunk)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._tail += chunk
            if len(self._tail) > self._tail_limit:
                del self._tail[: len(self._tail) - self._tail_limit]

    @property
    def truncated(self) -> bool:
        """Whether part of the stream was cut."""
        return self.total > len(self._head) + len(self._tail)

    def text(self) -> str:
        """The kept output as printable text, with the cut marked."""
        if not self.truncated:
            return printable((self._head + self._tail).decode("utf-8", "replace"))
        cut = self.total - len(self._head) - len(self._tail)
        head = printable(self._head.decode("utf-8", "replace"))
        tail = printable(self._tail.decode("utf-8", "replace"))
        return f"{head}\n[... vigil: {cut} bytes of output cut ...]\n{tail}"

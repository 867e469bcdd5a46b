"""Which handler failures are transient: the one place that tells "wait and retry" from "poison".

A *transient* failure says a dependency is unavailable — the database, the broker, another Vigil
service — and the same event will succeed once it is back; the consumer holds the event and retries
it with backoff, without dead-lettering or committing past it. Anything else is *poison* (a bug, an
event that cannot be acted on): it is retried briefly and dead-lettered.

Transient, out of the box (:data:`TRANSIENT_TYPES` and :func:`_builtin_transient`):

=====================================================  =============================================
exception                                              why
=====================================================  =============================================
SQLAlchemy ``OperationalError``, ``InterfaceError``    the database is down, restarting, locked, or
                                                       the connection broke
SQLAlchemy ``DBAPIError`` with connection_invalidated  the pool saw the connection die
SQLAlchemy ``TimeoutError``, ``DisconnectionError``    no pooled connection in time
``ConnectionError``, ``TimeoutError`` (asyncio's too)  a socket refused, reset or timed out
``OSError`` with a network errno                       unreachable host or network (not a file
                                                       error: a missing file does not come back)
aiokafka ``KafkaConnectionError``,                     the broker is unreachable or busy
``KafkaTimeoutError``, any ``retriable`` KafkaError
httpx ``TransportError``                               another Vigil service is unreachable
:class:`Unavailable` and its subclasses                what a service declares transient itself
=====================================================  =============================================

An error raised *from* a transient one (``raise RegistryError(...) from error``) is transient too:
the explicit ``__cause__`` chain is followed, the implicit ``__context__`` is not (a bug raised
while handling a timeout stays a bug). A service adds its own types with
``ServiceRuntime(..., transient=(MyUnavailable,))`` or by subclassing :class:`Unavailable`.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

import httpx
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from sqlalchemy import exc as sa

__all__ = ["TRANSIENT_TYPES", "FailureClassifier", "Unavailable"]


class Unavailable(Exception):  # reads as a verdict: `raise Unavailable("registry down") from e`
    """Raised (or subclassed) by a service when something it depends on is unavailable: the
    consumer holds the event and retries it until it succeeds, instead of dead-lettering it."""


TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    Unavailable,
    sa.OperationalError,
    sa.InterfaceError,
    sa.TimeoutError,
    sa.DisconnectionError,
    ConnectionError,
    TimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
    httpx.TransportError,
)

_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
        errno.ETIMEDOUT,
        errno.EPIPE,
    }
)


def _builtin_transient(error: BaseException) -> bool:
    if isinstance(error, TRANSIENT_TYPES):
        return True
    if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, KafkaError) and error.retriable:
        return True
    return isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS


class FailureClassifier:
    """Tells transient failures from poison ones (see the module docstring for the rules)."""

    def __init__(self, transient: Iterable[type[BaseException]] = ()) -> None:
        self._extra = tuple(transient)

    def is_transient(self, error: BaseException) -> bool:
        """Whether ``error`` (or an error it was explicitly raised from) is transient."""
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if _builtin_transient(current) or isinstance(current, self._extra):
                return True
            current = current.__cause__
        return False

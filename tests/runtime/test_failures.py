"""Which failures are transient, the backoff between their retries, and the settings behind it."""

from __future__ import annotations

import errno
import math
import random

import httpx
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    UnsupportedVersionError,
)
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict
from sqlalchemy import exc as sa

from services.runtime import (
    FailureClassifier,
    RegistryError,
    Rejected,
    RetryPolicy,
    ServiceName,
    ServiceRuntime,
    ServiceSettings,
    Unavailable,
)


def _raised_from(error: BaseException, cause: BaseException) -> BaseException:
    try:
        raise error from cause
    except BaseException as raised:
        return raised


def _raised_while_handling(error: BaseException, context: BaseException) -> BaseException:
    try:
        try:
            raise context
        except BaseException:
            raise error  # noqa: B904  # the implicit chain is the point
    except BaseException as raised:
        return raised


class ServiceDown(Exception):
    """A service's own "dependency unavailable" type, registered with the classifier."""


class ModelStoreDown(Unavailable):
    """A service's own type that subclasses Unavailable."""


_DRIVER = ConnectionRefusedError(errno.ECONNREFUSED, "connection refused")

TRANSIENT = [
    sa.OperationalError("SELECT 1", {}, _DRIVER),
    sa.InterfaceError("SELECT 1", {}, _DRIVER),
    sa.DBAPIError("SELECT 1", {}, _DRIVER, connection_invalidated=True),
    sa.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
    sa.DisconnectionError("connection went away"),
    TimeoutError(),
    ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    ConnectionResetError(errno.ECONNRESET, "reset"),
    OSError(errno.EHOSTUNREACH, "no route to host"),
    OSError(errno.ENETUNREACH, "network is unreachable"),
    KafkaConnectionError("broker down"),
    KafkaTimeoutError(),
    NodeNotReadyError(),
    httpx.ConnectError("refused"),
    httpx.ReadTimeout("slow"),
    Unavailable("model store down"),
    ModelStoreDown("artifact store down"),
    _raised_from(RegistryError("registry unreachable"), httpx.ConnectError("refused")),
    _raised_from(ValueError("wrapped"), _raised_from(RuntimeError("mid"), TimeoutError())),
]

POISON = [
    ValueError("bad value"),
    TypeError("wrong type"),
    KeyError("missing"),
    AttributeError("none has no attribute"),
    ZeroDivisionError(),
    RuntimeError("bug"),
    Rejected("unknown model"),
    FileNotFoundError(errno.ENOENT, "no such artifact"),
    PermissionError(errno.EACCES, "denied"),
    OSError(errno.ENOSPC, "no space left"),
    sa.IntegrityError("INSERT", {}, Exception("duplicate key")),
    sa.ProgrammingError("SELECT", {}, Exception("syntax error")),
    sa.DBAPIError("SELECT 1", {}, Exception("data error"), connection_invalidated=False),
    UnsupportedVersionError(),
    httpx.HTTPStatusError(
        "500", request=httpx.Request("GET", "http://x"), response=httpx.Response(500)
    ),
    RegistryError("registry answered 409"),
    _raised_while_handling(ValueError("bug in the except block"), TimeoutError()),
    ServiceDown("not registered"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_unavailable_dependencies_are_transient(error: BaseException) -> None:
    assert FailureClassifier().is_transient(error)


@pytest.mark.parametrize("error", POISON, ids=lambda e: type(e).__name__)
def test_bugs_and_bad_events_are_poison(error: BaseException) -> None:
    assert not FailureClassifier().is_transient(error)


def test_a_service_can_mark_its_own_exception_types_transient() -> None:
    classifier = FailureClassifier(transient=[ServiceDown])
    assert classifier.is_transient(ServiceDown("search index down"))
    assert classifier.is_transient(_raised_from(ValueError("wrapped"), ServiceDown()))
    assert not classifier.is_transient(ValueError("still a bug"))


def test_a_cause_chain_that_loops_ends() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert not FailureClassifier().is_transient(first)


def test_backoff_doubles_from_the_first_delay_up_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(backoff_initial_s=0.5, backoff_max_s=8.0)
    rng = random.Random(7)
    for failures, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0)]:
        delays = [policy.backoff_s(failures, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), failures
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant
    assert policy.backoff_s(10**9, rng) <= 8.0  # no overflow however long the outage


def test_backoff_is_reproducible_with_a_seeded_generator() -> None:
    policy = RetryPolicy()
    first = [policy.backoff_s(n, random.Random(3)) for n in range(1, 10)]
    again = [policy.backoff_s(n, random.Random(3)) for n in range(1, 10)]
    assert first == again


@pytest.mark.parametrize(
    "fields",
    [
        {"backoff_initial_s": 0},
        {"backoff_initial_s": -1},
        {"backoff_initial_s": math.nan},
        {"backoff_max_s": math.inf},
        {"backoff_initial_s": 5, "backoff_max_s": 1},
        {"hold_s": 0},
        {"hold_s": math.nan},
        {"attempts": 0},
        {"first_delay_s": -0.1},
    ],
)
def test_a_retry_policy_that_makes_no_sense_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"retry policy|backoff"):
        RetryPolicy(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "env",
    [
        {"consumer_backoff_initial_s": "nan"},
        {"consumer_backoff_initial_s": "0"},
        {"consumer_backoff_max_s": "inf"},
        {"consumer_backoff_max_s": "1e308"},
        {"consumer_hold_s": "300"},  # at Kafka's max.poll.interval.ms the member is evicted
        {"consumer_hold_s": "-1"},
        {"consumer_backoff_initial_s": "10", "consumer_backoff_max_s": "1"},
        {"consumer_hold_s": "a minute"},
    ],
)
def test_backoff_settings_out_of_range_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(**env)  # type: ignore[arg-type]


def test_backoff_settings_are_read_under_the_service_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Settings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix=ServiceName.INCIDENT_LOG.env_prefix)

    monkeypatch.setenv("VIGIL_INCIDENT_LOG_CONSUMER_BACKOFF_MAX_S", "12.5")
    monkeypatch.setenv("VIGIL_INCIDENT_LOG_CONSUMER_HOLD_S", "90")
    settings = Settings()
    assert (settings.consumer_backoff_max_s, settings.consumer_hold_s) == (12.5, 90)
    retry = ServiceRuntime(ServiceName.INCIDENT_LOG, settings).consumer.retry
    assert (retry.backoff_max_s, retry.hold_s) == (12.5, 90)

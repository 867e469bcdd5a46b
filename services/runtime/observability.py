"""Logs and Prometheus metrics of a service process.

Each service owns a :class:`ServiceMetrics` with its own registry (so several services or tests can
live in one process) exposed on ``/metrics``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["JsonFormatter", "ServiceMetrics", "configure_logging"]

_STANDARD_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, service, and any ``extra``."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self._service,
        }
        entry |= {
            key: value
            for key, value in vars(record).items()
            if key not in _STANDARD_RECORD_FIELDS and not key.startswith("_")
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(
    service: str, *, level: str = "INFO", fmt: Literal["text", "json"] = "text"
) -> None:
    """Send the process's logs to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class ServiceMetrics:
    """The consumer-side and outbox metrics every service reports, in one registry."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.handled = Counter(
            "vigil_messages_handled_total",
            "Events handled successfully.",
            ["service", "topic"],
            registry=self.registry,
        )
        self.failed = Counter(
            "vigil_handler_failures_total",
            "Handler attempts that raised a poison error (retried, then dead-lettered).",
            ["service", "topic"],
            registry=self.registry,
        )
        self.transient_failures = Counter(
            "vigil_handler_transient_failures_total",
            "Handler attempts that failed on an unavailable dependency (held and retried, "
            "never dead-lettered).",
            ["service", "topic"],
            registry=self.registry,
        )
        self.consumer_blocked = Gauge(
            "vigil_consumer_blocked",
            "1 while the consumer holds an event on a transient failure, else 0.",
            ["service"],
            registry=self.registry,
        )
        self.consumer_blocked_since = Gauge(
            "vigil_consumer_blocked_since_timestamp_seconds",
            "Unix time since which the consumer has been blocked; 0 when it is not.",
            ["service"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "vigil_messages_dead_lettered_total",
            "Messages set aside on the dead-letter topic.",
            ["service", "topic", "reason"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "vigil_messages_duplicate_total",
            "Redelivered events skipped because their event_id was already handled.",
            ["service", "topic"],
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "vigil_handler_seconds",
            "Time spent in one handler call (one event, or one batch).",
            ["service", "topic"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.lag = Gauge(
            "vigil_consumer_lag",
            "Records behind the high-water mark, as of the last fetch.",
            ["service", "topic", "partition"],
            registry=self.registry,
        )
        self.outbox_poisoned = Counter(
            "vigil_outbox_poisoned_total",
            "Outbox rows set aside in outbox_poison: undecodable or invalid (invalid), or "
            "refused by the broker for good (refused).",
            ["service", "event_type", "reason"],
            registry=self.registry,
        )
        self.outbox_poisoned_rows = Gauge(
            "vigil_outbox_poisoned_rows",
            "Rows in outbox_poison, waiting for an operator (read at scrape time).",
            ["service"],
            registry=self.registry,
        )
        self.outbox_pending_rows = Gauge(
            "vigil_outbox_pending_rows",
            "Outbox rows not yet published (read at scrape time).",
            ["service"],
            registry=self.registry,
        )
        self.outbox_oldest_pending_seconds = Gauge(
            "vigil_outbox_oldest_pending_seconds",
            "Age of the oldest unpublished outbox row; 0 when none waits (read at scrape time).",
            ["service"],
            registry=self.registry,
        )

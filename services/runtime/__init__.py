"""The only code services share: settings, broker wiring, consuming with dead letters and
idempotency, publishing, observability, the embedded broker, and process serving.

Every service imports this package, so what it imports every process holds. The model helpers
(``model_artifacts``: skops, hence scikit-learn, SciPy and pandas; ``model_inputs``: NumPy) are
imported on first use of one of their names (``__getattr__`` below), not here: the incident log
and the runbook runner never touch a model and would otherwise hold about 200 MB of libraries
each (docs/adr/0016-hot-path.md, "The stack's memory").
"""

import importlib
from typing import TYPE_CHECKING, Any

from services.runtime.api_client import ApiClient, ApiError, default_token
from services.runtime.body_limits import BodyLimits, LargerBody
from services.runtime.consumer import (
    Blocked,
    EventConsumer,
    Record,
    Rejected,
    Rejection,
    RetryPolicy,
    StillUnavailable,
)
from services.runtime.database import (
    Sessions,
    UtcDateTime,
    async_url,
    create_engine,
    session_factory,
)
from services.runtime.embedded_broker import (
    BrokerStartError,
    EmbeddedBroker,
    ensure_topics,
    free_port,
)
from services.runtime.failures import TRANSIENT_TYPES, FailureClassifier, Unavailable
from services.runtime.idempotency import (
    HandledBatch,
    HandledIds,
    ProcessedEvent,
    SeenEvents,
    first_time,
)
from services.runtime.kafka import consumer_options, kafka_broker, producer_options
from services.runtime.names import ServiceName
from services.runtime.observability import ServiceMetrics, configure_logging
from services.runtime.outbox import OUTBOX_TABLES, OutboxMessage, OutboxPoison, OutboxRelay, stage
from services.runtime.publisher import EventPublisher, EventRefused, Publisher
from services.runtime.readiness import database_check
from services.runtime.registry_client import (
    IntegrityError,
    RegistryClient,
    RegistryError,
    RegistryNotFound,
    RegistryUnavailable,
)
from services.runtime.serve import serve
from services.runtime.service import ServiceRuntime
from services.runtime.settings import KafkaProfile, KafkaSettings, ServiceSettings

__all__ = [
    "DEFAULT_TRUSTED_TYPES",
    "OUTBOX_TABLES",
    "TRANSIENT_TYPES",
    "TRUSTED_TYPES_SETTING",
    "ApiClient",
    "ApiError",
    "Blocked",
    "BodyLimits",
    "BrokerStartError",
    "EmbeddedBroker",
    "EventConsumer",
    "EventPublisher",
    "EventRefused",
    "FailureClassifier",
    "HandledBatch",
    "HandledIds",
    "IntegrityError",
    "KafkaProfile",
    "KafkaSettings",
    "LargerBody",
    "OutboxMessage",
    "OutboxPoison",
    "OutboxRelay",
    "ProcessedEvent",
    "Publisher",
    "Record",
    "RegistryClient",
    "RegistryError",
    "RegistryNotFound",
    "RegistryUnavailable",
    "Rejected",
    "Rejection",
    "RetryPolicy",
    "SeenEvents",
    "ServiceMetrics",
    "ServiceName",
    "ServiceRuntime",
    "ServiceSettings",
    "Sessions",
    "StillUnavailable",
    "Unavailable",
    "UnsafeArtifactError",
    "UtcDateTime",
    "as_model_input",
    "async_url",
    "class_labels",
    "configure_logging",
    "consumer_options",
    "create_engine",
    "database_check",
    "default_token",
    "ensure_topics",
    "first_time",
    "free_port",
    "kafka_broker",
    "load_model",
    "mismatches_with_spec",
    "named_frame",
    "producer_options",
    "serve",
    "session_factory",
    "sha256_hex",
    "stage",
    "takes_named_columns",
]

if TYPE_CHECKING:
    from services.runtime.model_artifacts import (
        DEFAULT_TRUSTED_TYPES,
        TRUSTED_TYPES_SETTING,
        UnsafeArtifactError,
        class_labels,
        load_model,
        mismatches_with_spec,
        sha256_hex,
    )
    from services.runtime.model_inputs import as_model_input, named_frame, takes_named_columns

_ON_FIRST_USE = {
    **dict.fromkeys(
        (
            "DEFAULT_TRUSTED_TYPES",
            "TRUSTED_TYPES_SETTING",
            "UnsafeArtifactError",
            "class_labels",
            "load_model",
            "mismatches_with_spec",
            "sha256_hex",
        ),
        "services.runtime.model_artifacts",
    ),
    **dict.fromkeys(
        ("as_model_input", "named_frame", "takes_named_columns"), "services.runtime.model_inputs"
    ),
}


def __getattr__(name: str) -> Any:
    """Import a model helper's module when one of its names is first asked for."""
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

"""Topic names, the events each topic carries, and which field is its Kafka key.

This module is the single source of truth for the wire layout; the broker set-up creates topics from
it, publishers key messages by it, and the AsyncAPI document is generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from contracts.alerts import AlertRaised, AlertRecovered
from contracts.dead_letter import MessageDeadLettered
from contracts.drift import DriftReported
from contracts.envelope import Envelope
from contracts.feedback import LabelRecorded, ValueRecorded
from contracts.heartbeats import HeartbeatEchoed
from contracts.incidents import (
    IncidentAcknowledged,
    IncidentAlertAttached,
    IncidentClaimed,
    IncidentCommented,
    IncidentEscalated,
    IncidentOpened,
    IncidentReopened,
    IncidentResolved,
    IncidentStatusChanged,
)
from contracts.monitoring import MetricsComputed, ProbeCompleted, VariantsCompared
from contracts.notifications import NotificationAttempted
from contracts.registry import (
    CandidateEvaluated,
    ModelApproved,
    ModelDeployed,
    ModelPromoted,
    ModelRegistered,
    ModelRejected,
    ModelRolledBack,
    PromotionExpired,
    PromotionRequested,
    RetrainFinished,
    RetrainStarted,
)
from contracts.retraining import RetrainAnswered, RetrainRequest
from contracts.runbooks import RunbookFinished, RunbookRequest, RunbookStarted
from contracts.scoring import PredictionMade, ScoringRequest, ValuePredicted

__all__ = ["EVENT_TYPES", "TOPICS", "Topic", "TopicSpec", "topic_of"]


class Topic(StrEnum):
    """Every Kafka topic Vigil uses."""

    SCORING_REQUESTS = "scoring.requests"
    PREDICTIONS = "predictions"
    LABELS = "labels"
    METRICS = "metrics"
    DRIFT = "drift"
    ALERTS = "alerts"
    INCIDENTS = "incidents"
    NOTIFICATIONS = "notifications"
    HEARTBEATS = "heartbeats"
    RUNBOOK_REQUESTS = "runbook.requests"
    RUNBOOK_RESULTS = "runbook.results"
    RETRAIN_REQUESTS = "retrain.requests"
    MODELS = "models"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True)
class TopicSpec:
    """A topic's events, key field, partition count and purpose; and whether Vigil's services
    send to it and receive from it (the AsyncAPI document's operations, from Vigil's side)."""

    topic: Topic
    events: tuple[type[Envelope], ...]
    key_field: str
    partitions: int
    description: str
    vigil_sends: bool = True
    vigil_receives: bool = True

    def key_of(self, event: Envelope) -> bytes:
        """Return the Kafka key of an event on this topic (UTF-8 of its key field)."""
        return str(getattr(event, self.key_field)).encode()


_MODEL_PARTITIONS = 6

TOPICS: dict[Topic, TopicSpec] = {
    spec.topic: spec
    for spec in (
        TopicSpec(
            Topic.SCORING_REQUESTS,
            (ScoringRequest,),
            "model",
            _MODEL_PARTITIONS,
            "Clients ask for predictions; the scorer consumes them in batches.",
            vigil_sends=False,
        ),
        TopicSpec(
            Topic.PREDICTIONS,
            (PredictionMade, ValuePredicted),
            "model",
            _MODEL_PARTITIONS,
            "Every prediction with its version, variant, confidence and latency.",
        ),
        TopicSpec(
            Topic.LABELS,
            (LabelRecorded, ValueRecorded),
            "model",
            _MODEL_PARTITIONS,
            "Ground truth for earlier requests, arriving late.",
            vigil_sends=False,
        ),
        TopicSpec(
            Topic.METRICS,
            (MetricsComputed, ProbeCompleted, VariantsCompared),
            "model",
            3,
            "Windowed live metrics, probe runs and champion/challenger comparisons.",
        ),
        TopicSpec(
            Topic.DRIFT,
            (DriftReported,),
            "model",
            3,
            "Per-window drift reports with per-feature evidence.",
            vigil_receives=False,
        ),
        TopicSpec(
            Topic.ALERTS,
            (AlertRaised, AlertRecovered),
            "model",
            3,
            "Alerts raised and recovered by the monitor, drift detector, probe or people.",
        ),
        TopicSpec(
            Topic.INCIDENTS,
            (
                IncidentOpened,
                IncidentAlertAttached,
                IncidentAcknowledged,
                IncidentClaimed,
                IncidentEscalated,
                IncidentStatusChanged,
                IncidentResolved,
                IncidentReopened,
                IncidentCommented,
            ),
            "incident_id",
            3,
            "Every incident change, in order per incident.",
        ),
        TopicSpec(
            Topic.NOTIFICATIONS,
            (NotificationAttempted,),
            "incident_id",
            3,
            "Every attempt to page or tell a person about an incident, with its outcome.",
            vigil_receives=False,
        ),
        TopicSpec(
            Topic.HEARTBEATS,
            (HeartbeatEchoed,),
            "source",
            1,
            "The dead man's switch: the incident log's answer to each heartbeat alert.",
        ),
        TopicSpec(
            Topic.RUNBOOK_REQUESTS,
            (RunbookRequest,),
            "incident_id",
            3,
            "Runbook runs the incident log asks for.",
        ),
        TopicSpec(
            Topic.RUNBOOK_RESULTS,
            (RunbookStarted, RunbookFinished),
            "incident_id",
            3,
            "What the runbook runner did.",
        ),
        TopicSpec(
            Topic.RETRAIN_REQUESTS,
            (RetrainRequest,),
            "model",
            3,
            "Asks to retrain a model.",
        ),
        TopicSpec(
            Topic.MODELS,
            (
                ModelRegistered,
                ModelDeployed,
                ModelPromoted,
                ModelRolledBack,
                ModelApproved,
                ModelRejected,
                RetrainAnswered,
                RetrainStarted,
                RetrainFinished,
                CandidateEvaluated,
                PromotionRequested,
                PromotionExpired,
            ),
            "model",
            3,
            "Registry and retraining: versions, answers to retrain asks, runs, verdicts, "
            "approvals, deployments, rollbacks.",
        ),
        TopicSpec(
            Topic.DEAD_LETTER,
            (MessageDeadLettered,),
            "original_topic",
            1,
            "Messages a consumer set aside, with the error and the original bytes.",
        ),
    )
}

EVENT_TYPES: dict[str, type[Envelope]] = {
    event.model_fields["type"].default: event for spec in TOPICS.values() for event in spec.events
}
"""Event ``type`` string to its model."""

_TOPIC_OF_EVENT: dict[type[Envelope], Topic] = {
    event: spec.topic for spec in TOPICS.values() for event in spec.events
}


def topic_of(event_type: type[Envelope]) -> Topic:
    """Return the topic an event type is published on."""
    try:
        return _TOPIC_OF_EVENT[event_type]
    except KeyError:
        raise KeyError(f"{event_type.__name__} is not published on any topic") from None

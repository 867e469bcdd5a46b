"""The drift detector's app on the real broker for integration tests: built on the registry
double with windows small enough for a test, and fed predictions as a busy scorer sends them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI

from contracts import Envelope
from services.drift_detector.app import create_app
from services.drift_detector.settings import Settings
from services.runtime import EventPublisher, KafkaSettings
from tests.drift_detector.fakes import Registry

WINDOW = 500


def detector(kafka: KafkaSettings, state_dir: Path, registry: Registry) -> FastAPI:
    """Windows of 500 predictions, judged from 100, the score's reference from 300."""
    settings = Settings(
        kafka=kafka,
        state_dir=state_dir,
        window_size=WINDOW,
        min_window_rows=100,
        score_reference_rows=300,
    )
    return create_app(settings, registry=registry.client())


async def publish(publisher: EventPublisher, events: Sequence[Envelope]) -> None:
    """In batches of 250."""
    for start in range(0, len(events), 250):
        await publisher.publish_many(events[start : start + 250])

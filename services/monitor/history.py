"""Recent windows of each model, for pictures: what the monitor published, kept in memory.

The monitor's durable state is what it needs to decide (open windows, episodes); the figures of
closed windows are facts on the ``metrics`` topic, not state. The console still wants a picture
of how a metric moved, so the service keeps the last ``limit`` closed windows of each model and
the alert episodes over them, from the outputs it publishes. The history starts empty when the
monitor starts: it shows what happened since then (docs/monitor.md says so).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from contracts.alerts import AlertKind, AlertRaised, AlertRecovered
from contracts.monitoring import MetricsComputed, VariantsCompared

__all__ = ["MetricHistory"]

_EPISODE_KINDS = {AlertKind.METRIC_DECAY, AlertKind.LOW_CONFIDENCE}


@dataclass
class _ModelHistory:
    windows: deque[dict[str, Any]]
    episodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    closed_episodes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    comparisons: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))


class MetricHistory:
    """The last ``limit`` closed windows of each model, its metric alert episodes (event time
    of the window that raised and the one that recovered) and its champion-challenger
    comparisons."""

    def __init__(self, limit: int = 500) -> None:
        self._limit = limit
        self._models: dict[str, _ModelHistory] = {}

    def _of(self, model: str) -> _ModelHistory:
        return self._models.setdefault(model, _ModelHistory(deque(maxlen=self._limit)))

    def observe(self, outputs: Iterable[object]) -> None:
        """Remember what a step published (outputs of no interest are ignored)."""
        for event in outputs:
            if isinstance(event, MetricsComputed):
                self._of(event.model).windows.append(_window(event))
            elif isinstance(event, VariantsCompared):
                self._of(event.model).comparisons.append(
                    event.model_dump(
                        mode="json", exclude={"event_id", "type", "producer", "schema_version"}
                    )
                )
            elif isinstance(event, AlertRaised | AlertRecovered) and event.kind in _EPISODE_KINDS:
                self._episode(event)

    def _episode(self, event: AlertRaised | AlertRecovered) -> None:
        history = self._of(event.model)
        window = event.evidence.get("window")
        end = window.get("end") if isinstance(window, dict) else None
        at = end if isinstance(end, str) else event.occurred_at.isoformat()
        if isinstance(event, AlertRaised):
            history.episodes[event.fingerprint] = {
                "fingerprint": event.fingerprint,
                "metric": event.evidence.get("metric"),
                "version": event.model_version,
                "variant": event.evidence.get("variant"),
                "raised_at": at,
                "recovered_at": None,
            }
            return
        episode = history.episodes.pop(event.fingerprint, None)
        if episode is not None:
            history.closed_episodes.append(episode | {"recovered_at": at})

    def series(self, model: str) -> dict[str, Any] | None:
        """The model's recent windows (oldest first), episodes and comparisons; ``None`` if the
        monitor has published nothing about it since it started."""
        history = self._models.get(model)
        if history is None:
            return None
        return {
            "model": model,
            "windows": list(history.windows),
            "episodes": [*history.closed_episodes, *history.episodes.values()],
            "comparisons": list(history.comparisons),
        }


def _window(event: MetricsComputed) -> dict[str, Any]:
    return {
        "version": event.model_version,
        "variant": event.variant.value,
        "start": event.window.start.isoformat(),
        "end": event.window.end.isoformat(),
        "metrics": dict(event.metrics),
        "estimated": {
            metric: estimate.model_dump(mode="json")
            for metric, estimate in (event.estimated or {}).items()
        },
        "predictions": event.predictions,
        "labelled": event.labelled,
        "latency_p95_ms": event.latency_ms.p95,
        "throughput_per_s": event.throughput_per_s,
        "breaching": event.breaching,
    }

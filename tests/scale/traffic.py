"""Scoring traffic for several models at a steady rate, each request's label a little later; a
model's inputs can be shifted (``services/stack/scenario.py``'s changed imaging device) and
unshifted while it runs. Remembers what the broker acknowledged."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator

from contracts import Envelope, LabelRecorded, ScoringRequest
from services.runtime import EventPublisher, KafkaSettings, kafka_broker
from services.stack import scenario

__all__ = ["Traffic"]


class Traffic:
    """``rate_per_model`` requests per second for each model, labels ``label_delay_s`` later."""

    def __init__(
        self,
        kafka: KafkaSettings,
        dataset: scenario.Dataset,
        models: list[str],
        *,
        rate_per_model: float,
        label_delay_s: float = 1.0,
    ) -> None:
        self._kafka = kafka
        self._models = models
        self._rate = rate_per_model
        self._label_delay_s = label_delay_s
        self._streams: dict[tuple[str, bool], Iterator[scenario.Request]] = {
            (model, shifted): scenario.traffic(
                dataset, shifted=shifted, start=0, seed=index * 2 + shifted
            )
            for index, model in enumerate(models)
            for shifted in (False, True)
        }
        self.shifted: set[str] = set()
        self.requests: dict[str, list[str]] = {model: [] for model in models}
        """Request ids per model, in the order the broker acknowledged them."""
        self._numbers = dict.fromkeys(models, 0)
        self._due: deque[tuple[float, Envelope]] = deque()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Traffic:
        broker = kafka_broker(self._kafka, client_id="scale-client")
        self._publisher = EventPublisher(broker, self._kafka, client_id="scale-client")
        await self._publisher.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        await self._publisher.stop()

    async def stop(self) -> None:
        """Stop sending requests (between two sends, so every request sent is counted); the
        labels still owed are sent."""
        if self._task is None:
            return
        self._stopping.set()
        await self._task
        self._task = None
        await self._send([label for _, label in self._due])
        self._due.clear()

    async def one_each(self, tag: str) -> dict[str, str]:
        """One more request per model (no label), after the traffic stopped; its ids."""
        ids = {model: f"{model}-{tag}" for model in self._models}
        await self._send([self._request(model, ids[model])[0] for model in self._models])
        return ids

    def _request(self, model: str, request_id: str) -> tuple[ScoringRequest, LabelRecorded]:
        drawn = next(self._streams[(model, model in self.shifted)])
        request = ScoringRequest(
            producer="scale-client", model=model, request_id=request_id, features=drawn.features
        )
        label = LabelRecorded(
            producer="scale-client", model=model, request_id=request_id, label=drawn.label
        )
        return request, label

    async def _send(self, events: list[Envelope]) -> None:
        if not events:
            return
        await self._publisher.publish_many(events)  # returns once the broker acked every one
        for event in events:
            if isinstance(event, ScoringRequest):
                self.requests[event.model].append(event.request_id)

    async def _run(self) -> None:
        tick, owed = 0.1, 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            owed += self._rate * tick
            batch: list[Envelope] = []
            while owed >= 1:
                owed -= 1
                for model in self._models:
                    self._numbers[model] += 1
                    request, label = self._request(model, f"{model}-{self._numbers[model]:06d}")
                    batch.append(request)
                    self._due.append((now + self._label_delay_s, label))
            while self._due and self._due[0][0] <= now:
                batch.append(self._due.popleft()[1])
            await self._send(batch)
            await asyncio.sleep(tick)

"""Deterministic streams of predictions and their labels, with a known recall per phase."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts import Envelope, LabelRecorded, PredictionMade, Variant
from tests.factories import MODEL, T0

POSITIVE, NEGATIVE = "malignant", "benign"


@dataclass(frozen=True)
class Phase:
    """``count`` predictions, half of them positive; ``recall`` of the positives are predicted
    right (spread evenly, no randomness), every negative is; ``confidence`` of each."""

    count: int
    recall: float = 1.0
    confidence: float = 0.9


@dataclass(frozen=True)
class Scored:
    prediction: PredictionMade
    label: LabelRecorded


def scored_stream(
    phases: Iterable[Phase],
    *,
    model: str = MODEL,
    version: int = 1,
    variant: Variant = Variant.CHAMPION,
    start: datetime = T0,
    spacing: timedelta = timedelta(seconds=1),
    label_delay: timedelta = timedelta(minutes=10),
    prefix: str = "r",
) -> list[Scored]:
    """Predictions ``spacing`` apart in event time, each with its label ``label_delay`` later."""
    scored: list[Scored] = []
    index = 0
    for phase in phases:
        positives = 0
        for _ in range(phase.count):
            truth = POSITIVE if index % 2 == 0 else NEGATIVE
            predicted = truth
            if truth == POSITIVE:
                missed = int((positives + 1) * (1 - phase.recall)) - int(
                    positives * (1 - phase.recall)
                )
                positives += 1
                if missed:
                    predicted = NEGATIVE
            at = start + index * spacing
            other = NEGATIVE if predicted == POSITIVE else POSITIVE
            prediction = PredictionMade(
                producer="scorer",
                occurred_at=at,
                model=model,
                model_version=version,
                variant=variant,
                deployment_revision=1,
                request_id=f"{prefix}-{index}",
                features={"mean radius": 20.0 if truth == POSITIVE else 10.0, "mean texture": 1.0},
                predicted_class=predicted,
                probabilities={predicted: phase.confidence, other: 1 - phase.confidence},
                confidence=phase.confidence,
                latency_ms=1.0 + (index % 10),
            )
            label = LabelRecorded(
                producer="labeller",
                occurred_at=at + label_delay,
                model=model,
                request_id=prediction.request_id,
                label=truth,
            )
            scored.append(Scored(prediction, label))
            index += 1
    return scored


def interleaved(scored: list[Scored], *, label_lag: int) -> list[Envelope]:
    """Predictions in order, each label sent ``label_lag`` predictions after its own; the
    labels still owed at the end come last."""
    events: list[Envelope] = []
    for index, item in enumerate(scored):
        events.append(item.prediction)
        if index >= label_lag:
            events.append(scored[index - label_lag].label)
    events.extend(item.label for item in scored[max(0, len(scored) - label_lag) :])
    return events


def champion_with_a_challenger() -> list[Envelope]:
    """A champion (v1) whose recall dips to 0.7 for 500 predictions between two clean runs of
    700, its challenger (v2, 500 predictions at 0.85) sent alongside it prediction for
    prediction; labels 40 predictions behind. Episodes and both variants in one stream."""
    champion = scored_stream([Phase(700), Phase(500, recall=0.7), Phase(700)], prefix="a")
    challenger = scored_stream(
        [Phase(500, recall=0.85)], version=2, variant=Variant.CHALLENGER, prefix="b"
    )
    return side_by_side(interleaved(champion, label_lag=40), interleaved(challenger, label_lag=40))


def side_by_side(champion: list[Envelope], challenger: list[Envelope]) -> list[Envelope]:
    """The two variants' events in turn, as a split deployment sends them; what the champion
    has left once the challenger's run out comes after."""
    events: list[Envelope] = []
    for a, b in zip(champion, challenger, strict=False):
        events += [a, b]
    events += champion[len(events) // 2 :]
    return events

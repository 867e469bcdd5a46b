"""The events of a scored batch: ids derived exactly as before (a request redelivered across an
upgrade publishes the same ids), one event per answer in order, and the contract still checked."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4, uuid5

import pytest
from pydantic import ValidationError

from contracts import PredictionMade, ValuePredicted, Variant
from services.scorer.predictions import prediction_events, prediction_id
from services.scorer.scoring import Item, Scored

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def classified(index: int, **fields: object) -> Scored:
    answer: dict[str, object] = {
        "predicted_class": "malignant",
        "probabilities": {"benign": 0.25, "malignant": 0.75},
        "confidence": 0.75,
    }
    answer |= fields
    return Scored(index, "m", 2, Variant.CHAMPION, True, 7, **answer)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "variant", "served"),
    [(1, Variant.CHAMPION, True), (2, Variant.CHALLENGER, True), (12, Variant.CHALLENGER, False)],
)
def test_a_prediction_id_is_the_uuid5_of_the_request_event_and_the_answering_slot(
    version: int, variant: Variant, served: bool
) -> None:
    request = uuid4()
    scored = Scored(0, "m", version, variant, served, 1, predicted_value=1.0)
    expected = uuid5(request, f"{version}/{variant.value}/{served}")
    assert prediction_id(request, scored) == expected
    assert prediction_id(request, scored).version == 5


def test_one_event_per_answer_in_order_with_derived_ids_and_the_batch_time() -> None:
    ids = [uuid4(), uuid4()]
    items = [
        Item("m", "r-0", "e-0", {"x": 1.0}, ids[0]),
        Item("d", "r-1", None, {"x": 2}, ids[1]),
        Item("m", "r-2", None, {"x": 3.0}),
    ]
    scored = [
        classified(0),
        Scored(1, "d", 1, Variant.CHAMPION, True, 3, predicted_value=151.5),
        classified(2, confidence=1.0000000000000002),  # a sum's rounding, clamped
    ]
    events = prediction_events(
        items,
        scored,
        producer="scorer",
        latency_ms=2.5,
        occurred_at=NOW,
        correlation_ids=["c-0", None, "c-2"],
    )
    first, second, third = events
    assert isinstance(first, PredictionMade)
    assert isinstance(third, PredictionMade)
    assert isinstance(second, ValuePredicted)
    assert [e.request_id for e in events] == ["r-0", "r-1", "r-2"]
    assert [e.correlation_id for e in events] == ["c-0", None, "c-2"]
    assert first.event_id == uuid5(ids[0], "2/champion/True")
    assert second.event_id == uuid5(ids[1], "1/champion/True")
    assert isinstance(third.event_id, UUID)  # no event id to derive from: a fresh one
    assert (first.predicted_class, first.confidence, first.entity_id) == ("malignant", 0.75, "e-0")
    assert (first.model_version, first.deployment_revision, first.features) == (2, 7, {"x": 1.0})
    assert second.predicted_value == 151.5
    assert third.confidence == 1.0
    assert {e.occurred_at for e in events} == {NOW}
    assert {e.latency_ms for e in events} == {2.5}
    assert {e.producer for e in events} == {"scorer"}


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_the_contract_still_refuses_a_non_finite_probability(bad: float) -> None:
    items = [Item("m", "r-0", None, {"x": 1.0}, uuid4())]
    with pytest.raises(ValidationError, match="finite"):
        prediction_events(
            items,
            [classified(0, probabilities={"benign": bad, "malignant": 0.5})],
            producer="scorer",
            latency_ms=1.0,
            occurred_at=NOW,
        )

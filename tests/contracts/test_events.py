"""Event models: round trips, strict decoding with readable errors, the maintenance spec rules."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from pydantic import BaseModel, ValidationError

from contracts import (
    EVENT_TYPES,
    TOPICS,
    AlertKind,
    AlertRaised,
    Envelope,
    LabelRecorded,
    MetricDirection,
    MetricTarget,
    ModelTask,
    Topic,
    alert_fingerprint,
    topic_of,
)
from contracts.wire import DecodeError, decode, encode, headers_for, key_for
from tests.factories import make_alert, make_deployment, make_spec, sample_events


@pytest.mark.parametrize("event", sample_events(), ids=lambda event: event.type)
def test_every_event_survives_encode_and_decode_on_its_topic(event: Envelope) -> None:
    topic = topic_of(type(event))
    assert decode(topic, encode(event)) == event
    assert key_for(event) == str(getattr(event, TOPICS[topic].key_field)).encode()
    assert headers_for(event)["vigil-event-type"] == event.type


def test_every_event_type_is_on_exactly_one_topic() -> None:
    placements = [event for spec in TOPICS.values() for event in spec.events]
    assert len(placements) == len(set(placements)) == len(EVENT_TYPES)


def _documented_models() -> list[type[BaseModel]]:
    """Every event model and every model nested in one."""
    seen: dict[str, type[BaseModel]] = {}
    pending: list[type[BaseModel]] = list(EVENT_TYPES.values())
    while pending:
        model = pending.pop()
        if model.__name__ in seen:
            continue
        seen[model.__name__] = model
        for field in model.model_fields.values():
            pending.extend(_nested_models(field.annotation))
    return sorted(seen.values(), key=lambda model: model.__name__)


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _nested_models(arg)]


@pytest.mark.parametrize("model", _documented_models(), ids=lambda model: model.__name__)
def test_every_field_has_a_description_and_an_example(model: type[BaseModel]) -> None:
    assert model.__doc__, f"{model.__name__} needs a docstring"
    lacking = []
    for name, field in model.model_fields.items():
        if name == "type" or _nested_models(field.annotation):
            continue  # the discriminator, and nested models documented on their own
        if not field.description or not field.examples:
            lacking.append(name)
    assert not lacking, f"{model.__name__}: fields without description or example: {lacking}"


def test_events_are_frozen() -> None:
    alert = make_alert()
    with pytest.raises(ValidationError):
        alert.summary = "changed"  # type: ignore[misc]


def test_occurred_at_must_be_timezone_aware() -> None:
    document = json.loads(encode(make_alert())) | {"occurred_at": "2026-11-22T10:00:00"}
    with pytest.raises(DecodeError, match="occurred_at: Input should have timezone info"):
        decode(Topic.ALERTS, json.dumps(document).encode())


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    alert = make_alert()
    document = json.loads(encode(alert)) | {"added_in_a_later_release": 1}
    assert decode(Topic.ALERTS, json.dumps(document).encode()) == alert


def test_decode_names_the_problem() -> None:
    with pytest.raises(DecodeError, match="not JSON") as not_json:
        decode(Topic.ALERTS, b"{oops")
    assert not_json.value.undecodable
    with pytest.raises(DecodeError, match="type: not an event of topic 'alerts'") as wrong:
        decode(
            Topic.ALERTS, encode(LabelRecorded(producer="c", model="m", request_id="r", label="1"))
        )
    assert not wrong.value.undecodable
    bad = json.loads(encode(make_alert())) | {"severity": "urgent"}
    with pytest.raises(DecodeError, match=r"severity: Input should be .* \(got 'urgent'\)"):
        decode(Topic.ALERTS, json.dumps(bad).encode())
    with pytest.raises(DecodeError, match="empty message"):
        decode(Topic.ALERTS, None)


def test_labels_given_as_numbers_or_booleans_become_class_names() -> None:
    assert LabelRecorded(producer="c", model="m", request_id="r", label=1).label == "1"
    assert LabelRecorded(producer="c", model="m", request_id="r", label=True).label == "true"


def test_alert_fingerprint_is_stable_and_readable() -> None:
    assert alert_fingerprint("m", 2, AlertKind.DATA_DRIFT, "a,b") == "m:v2:data_drift:a,b"
    assert (
        alert_fingerprint("m", None, AlertKind.PROBE_FAILED, "probe") == "m:v-:probe_failed:probe"
    )


def test_model_names_are_restricted_to_a_safe_alphabet() -> None:
    with pytest.raises(ValidationError, match="model"):
        make_alert(model="../etc")


def test_monitoring_spec_refuses_inconsistent_instructions() -> None:
    with pytest.raises(ValidationError, match="positive_class"):
        make_spec(positive_class="unknown")
    with pytest.raises(ValidationError, match="key_metric 'precision' has no target"):
        make_spec(key_metric="precision")
    with pytest.raises(ValidationError, match="feature names must be unique"):
        make_spec(features=[make_spec().features[0], make_spec().features[0]])
    with pytest.raises(ValidationError, match="already on the alerting side"):
        MetricTarget(metric="recall", baseline=0.9, threshold=0.95)
    with pytest.raises(ValidationError, match="unknown metric"):
        MetricTarget(metric="vibes", baseline=0.9, threshold=0.5)
    probe = make_spec().probe
    assert probe is not None
    partial = probe.golden_set[0].model_copy(update={"features": {"mean radius": 1.0}})
    with pytest.raises(ValidationError, match="missing features"):
        make_spec(probe=probe.model_copy(update={"golden_set": [partial]}))


def _mae(**overrides: Any) -> MetricTarget:
    fields: dict[str, Any] = {
        "metric": "mae",
        "baseline": 40.0,
        "threshold": 55.0,
        "direction": MetricDirection.LOWER_IS_BETTER,
    }
    return MetricTarget(**(fields | overrides))


def test_a_regression_spec_has_no_classes_and_watches_regression_metrics() -> None:
    regression = {
        "task": ModelTask.REGRESSION,
        "classes": [],
        "positive_class": None,
        "probe": None,
        "key_metric": "mae",
        "metrics": [
            _mae(),
            MetricTarget(metric="r2", baseline=0.45, threshold=0.3),
        ],
    }
    spec = make_spec(**regression)
    assert spec.task is ModelTask.REGRESSION
    assert spec.classes == []
    with pytest.raises(ValueError, match="no positive class"):
        _ = spec.positive
    assert make_spec().task is ModelTask.CLASSIFICATION  # absent: a classifier, as before
    with pytest.raises(ValidationError, match="no classes and no positive_class"):
        make_spec(**(regression | {"classes": ["a", "b"], "positive_class": "a"}))
    with pytest.raises(ValidationError, match="recall: not a regression metric"):
        make_spec(**(regression | {"metrics": [_mae(), make_spec().metrics[0]]}))
    with pytest.raises(ValidationError, match="regression model cannot have one"):
        make_spec(**(regression | {"probe": make_spec().probe}))
    with pytest.raises(ValidationError, match="mae: regression metrics; set task"):
        make_spec(metrics=[*make_spec().metrics, _mae()])
    with pytest.raises(ValidationError, match="at least two classes"):
        make_spec(classes=[], positive_class=None)
    with pytest.raises(ValidationError, match="lower is better"):
        _mae(direction=MetricDirection.HIGHER_IS_BETTER, baseline=60.0)
    with pytest.raises(ValidationError, match="already on the alerting side"):
        _mae(baseline=60.0)


def test_deployment_refuses_impossible_splits() -> None:
    with pytest.raises(ValidationError, match=r"less than or equal to 0\.5"):
        make_deployment(challenger_share=0.6)
    with pytest.raises(ValidationError, match="without a challenger"):
        make_deployment(challenger=None)
    champion = make_deployment().champion
    with pytest.raises(ValidationError, match="different versions"):
        make_deployment(challenger=champion)


def test_alert_evidence_must_be_json() -> None:
    with pytest.raises(ValidationError):
        AlertRaised(**(make_alert().model_dump() | {"evidence": {"x": object()}}))


def test_an_unknown_schema_version_is_refused_rather_than_misread() -> None:
    document = json.loads(encode(make_alert())) | {"schema_version": 2}
    with pytest.raises(DecodeError, match="schema_version"):
        decode(Topic.ALERTS, json.dumps(document).encode())

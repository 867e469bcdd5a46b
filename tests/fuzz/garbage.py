"""Hypothesis strategies for what must never get past a consumer: random bytes, random JSON, and
events of the topic's own shape with one thing wrong (a field of the wrong type, a required
field missing, an unknown ``type``, a NaN)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from contracts import Envelope, Topic
from contracts.topics import topic_of
from tests.factories import sample_events

__all__ = ["garbage_for", "samples_of"]

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

_WRONG_FOR: dict[type, list[Any]] = {
    str: [[], {}, 12, True],
    int: ["twelve", [], {}, 1e300],
    float: ["nan-ish", [], {}],
    bool: ["maybe", [], {}],
    list: ["a list?", 7, {"a": 1}],
    dict: ["a dict?", 7, [1, 2]],
}


Mutation = Callable[[dict[str, Any], st.DataObject], bytes]


def samples_of(topic: Topic) -> list[Envelope]:
    """One valid event of every type the topic carries."""
    return [event for event in sample_events() if topic_of(type(event)) is topic]


def _wrong_field(document: dict[str, Any], data: st.DataObject) -> bytes:
    fields = sorted(
        name for name, value in document.items() if name != "type" and type(value) in _WRONG_FOR
    )
    name = data.draw(st.sampled_from(fields), label="field")
    value = data.draw(st.sampled_from(_WRONG_FOR[type(document[name])]), label="wrong value")
    return json.dumps(document | {name: value}).encode()


def _missing_field(document: dict[str, Any], data: st.DataObject) -> bytes:
    name = data.draw(st.sampled_from(sorted(document)), label="removed")
    return json.dumps({k: v for k, v in document.items() if k != name}).encode()


def _unknown_type(document: dict[str, Any], data: st.DataObject) -> bytes:
    kind = data.draw(st.text(min_size=1, max_size=20), label="type")
    return json.dumps(document | {"type": kind}).encode()


def _not_finite(document: dict[str, Any], data: st.DataObject) -> bytes:
    numbers = sorted(k for k, v in document.items() if type(v) in (int, float))
    if not numbers:
        return _wrong_field(document, data)
    name = data.draw(st.sampled_from(numbers), label="number")
    token = data.draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"]), label="token")
    text = json.dumps(document | {name: "@@"})
    return text.replace('"@@"', token, 1).encode()


def garbage_for(topic: Topic) -> st.SearchStrategy[bytes]:
    """Bytes a consumer of ``topic`` must dead-letter (the caller discards the rare draw that
    happens to decode)."""
    documents = [json.loads(event.model_dump_json()) for event in samples_of(topic)]

    @st.composite
    def shaped(draw: st.DrawFn) -> bytes:
        document = draw(st.sampled_from(documents), label="sample")
        data = draw(st.data())
        mutations: list[Mutation] = [
            _wrong_field,
            _missing_field,
            _unknown_type,
            _not_finite,
        ]
        mutate: Mutation = draw(st.sampled_from(mutations))
        return mutate(document, data)

    return st.one_of(
        st.binary(max_size=300),
        _JSON.map(lambda value: json.dumps(value).encode()),
        shaped(),
    )

"""The scorer's request-id rules, pure: who the caller is, which ids are reserved, what id an
instance gets."""

from __future__ import annotations

import pytest

from contracts.values import Features
from services.scorer.request_ids import (
    ANONYMOUS,
    identify_caller,
    is_reserved,
    issue_request_id,
    prediction_event_id,
    refusal_of_reserved,
)

FEATURES: Features = {"mean radius": 14.2, "mean texture": None}


def test_a_token_names_its_own_namespace_and_the_probe_token_the_probe() -> None:
    assert identify_caller(None, "p") is ANONYMOUS
    assert identify_caller("", "p") is ANONYMOUS
    alice, bob = identify_caller("alice", "p"), identify_caller("bob", "p")
    assert alice != bob
    assert not alice.probe
    assert "alice" not in alice.namespace  # the token itself is never kept
    assert identify_caller("p", "p").probe
    assert not identify_caller("p", None).probe


@pytest.mark.parametrize("request_id", ["vigil-", "VIGIL-x", "Vigil-probe:1", "vigil-req:ab"])
def test_the_vigil_family_is_reserved_in_any_case(request_id: str) -> None:
    assert is_reserved(request_id)
    assert refusal_of_reserved(request_id, ANONYMOUS) is not None


@pytest.mark.parametrize("request_id", ["order-1", "vigil", "xvigil-1", "vigil_1"])
def test_other_ids_are_the_clients(request_id: str) -> None:
    assert not is_reserved(request_id)
    assert refusal_of_reserved(request_id, ANONYMOUS) is None


def test_only_the_probe_may_send_probe_ids_and_it_keeps_them() -> None:
    probe = identify_caller("p", "p")
    assert refusal_of_reserved("vigil-probe:m:run:case", probe) is None
    assert refusal_of_reserved("vigil-req:0", probe) is not None
    assert issue_request_id(probe, "m", "vigil-probe:m:run:case", None, FEATURES) == (
        "vigil-probe:m:run:case"
    )


def test_the_issued_id_depends_on_caller_model_client_id_entity_and_features() -> None:
    alice = identify_caller("alice", None)
    base = issue_request_id(alice, "m", "order-1", None, FEATURES)
    assert base.startswith("vigil-req:")
    assert base == issue_request_id(alice, "m", "order-1", None, FEATURES.copy())
    others = {
        issue_request_id(identify_caller("bob", None), "m", "order-1", None, FEATURES),
        issue_request_id(ANONYMOUS, "m", "order-1", None, FEATURES),
        issue_request_id(alice, "other", "order-1", None, FEATURES),
        issue_request_id(alice, "m", "order-2", None, FEATURES),
        issue_request_id(alice, "m", "order-1", "patient-9", FEATURES),
        issue_request_id(alice, "m", "order-1", None, FEATURES | {"mean radius": 14.3}),
    }
    assert base not in others
    assert len(others) == 6
    assert len(base) <= 200  # fits the contracts' request id


def test_without_a_client_id_every_instance_gets_a_fresh_id() -> None:
    first = issue_request_id(ANONYMOUS, "m", None, None, FEATURES)
    assert first != issue_request_id(ANONYMOUS, "m", None, None, FEATURES)
    assert prediction_event_id(first) == prediction_event_id(first)
    assert prediction_event_id(first) != prediction_event_id(first + "x")

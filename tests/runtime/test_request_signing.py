"""Signing and verifying runbook requests: what the incident log signs, the runner trusts; any
change to a field that matters, another key, no signature, an expired or future request is
refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import RunbookRequest, Tier
from services.runtime.request_signing import (
    SigningKeys,
    canonical,
    keys_or_none,
    sign,
    signature_of,
    verification_problem,
)
from tests.factories import TEST_SIGNING_KEY, make_runbook_request

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
KEYS = SigningKeys.parse(TEST_SIGNING_KEY)
OTHER = SigningKeys.parse("another-key-that-nobody-shares-000000")


def signed(**overrides: object) -> RunbookRequest:
    request = make_runbook_request(signed=False, occurred_at=T0, **overrides)
    return sign(request, KEYS, valid_for=timedelta(hours=1))


def test_a_signed_request_verifies_and_carries_its_expiry() -> None:
    request = signed()
    assert request.signature is not None
    assert request.signature.startswith("v1=")
    assert request.expires_at == T0 + timedelta(hours=1)
    assert verification_problem(request, KEYS, now=T0 + timedelta(minutes=59)) is None


def test_it_survives_the_wire() -> None:
    request = signed(parameters={"to_version": 2, "ratio": 0.5, "dry_run": True, "note": "é"})
    decoded = RunbookRequest.model_validate_json(request.model_dump_json())
    assert canonical(decoded) == canonical(request)
    assert verification_problem(decoded, KEYS, now=T0) is None


def test_a_request_in_another_time_zone_signs_the_same_instant() -> None:
    request = signed()
    elsewhere = request.model_copy(update={"occurred_at": T0.astimezone(ZoneInfo("Asia/Tokyo"))})
    assert verification_problem(elsewhere, KEYS, now=T0) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tier", Tier.L3),
        ("approved_by", "mallory"),
        ("requested_by", "bo"),
        ("runbook", "drift-diagnosis"),
        ("parameters", {"to_version": 1}),
        ("run_id", "run-2"),
        ("incident_id", "inc-000002"),
        ("model", "fraud"),
        ("model_version", 4),
        ("reason", "other"),
        ("expires_at", T0 + timedelta(days=30)),
        ("occurred_at", T0 + timedelta(seconds=1)),
    ],
)
def test_changing_any_field_that_matters_breaks_the_signature(field: str, value: object) -> None:
    forged = signed().model_copy(update={field: value})
    problem = verification_problem(forged, KEYS, now=T0)
    assert problem is not None
    assert problem.startswith("bad signature: it matches no")


def test_an_unsigned_request_is_refused() -> None:
    request = make_runbook_request(signed=False, occurred_at=T0)
    assert verification_problem(request, KEYS, now=T0) == (
        "unsigned: the request carries no signature (only the incident log may ask for runbooks)"
    )


def test_a_request_signed_with_another_key_is_refused() -> None:
    request = sign(
        make_runbook_request(signed=False, occurred_at=T0), OTHER, valid_for=timedelta(hours=1)
    )
    assert "matches no runbook signing key" in str(verification_problem(request, KEYS, now=T0))


@pytest.mark.parametrize("signature", ["", "v1=", "v2=00", "v1=" + "0" * 64, "garbage", "v1=zz"])
def test_malformed_signatures_are_refused(signature: str) -> None:
    request = signed().model_copy(update={"signature": signature})
    assert verification_problem(request, KEYS, now=T0) is not None


def test_an_expired_request_is_refused_however_well_signed() -> None:
    request = signed()
    problem = verification_problem(request, KEYS, now=T0 + timedelta(hours=1))
    assert problem is not None
    assert problem.startswith("expired: the request was valid until")


def test_a_request_from_the_future_beyond_the_clock_skew_is_refused() -> None:
    request = signed()
    assert verification_problem(request, KEYS, now=T0 - timedelta(minutes=4)) is None
    problem = verification_problem(request, KEYS, now=T0 - timedelta(minutes=6))
    assert problem is not None
    assert problem.startswith("not yet valid")


def test_a_signed_request_without_expiry_is_refused() -> None:
    request = make_runbook_request(signed=False, occurred_at=T0)
    bare = request.model_copy(update={"signature": signature_of(request, KEYS.signing)})
    assert verification_problem(bare, KEYS, now=T0) == (
        "bad signature: a signed request must carry expires_at"
    )


def test_rotation_signs_with_the_first_key_and_verifies_with_every_key() -> None:
    old = SigningKeys.parse(TEST_SIGNING_KEY)
    rotated = SigningKeys.parse(f"new-key-0000000000000000000000000000, {TEST_SIGNING_KEY}")
    by_old = signed()
    by_new = sign(
        make_runbook_request(signed=False, occurred_at=T0), rotated, valid_for=timedelta(hours=1)
    )
    assert verification_problem(by_old, rotated, now=T0) is None
    assert verification_problem(by_new, rotated, now=T0) is None
    assert verification_problem(by_new, old, now=T0) is not None


def test_keys_must_be_long_enough_and_present() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        SigningKeys.parse("short")
    with pytest.raises(ValueError, match="no runbook signing key"):
        SigningKeys.parse(" , ")
    assert keys_or_none(None) is None
    assert keys_or_none("  ") is None
    assert TEST_SIGNING_KEY not in repr(KEYS)


@given(
    parameters=st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.one_of(
            st.text(max_size=20),
            st.integers(-(2**53), 2**53),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
        ),
        max_size=5,
    )
)
def test_any_parameters_verify_after_a_round_trip(parameters: dict[str, object]) -> None:
    request = signed(parameters=parameters)
    decoded = RunbookRequest.model_validate_json(request.model_dump_json())
    assert verification_problem(decoded, KEYS, now=T0) is None

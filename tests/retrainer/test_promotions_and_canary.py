"""Promotion requests and canary decisions (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from contracts import ComparisonVerdict, VariantsCompared
from services.retrainer.rollout.canary import CanaryAction, CanaryDecision, Rollout, judge_canary
from services.retrainer.rollout.promotions import (
    Promotion,
    PromotionRefused,
    PromotionState,
    decide,
    expire,
)
from tests.factories import T0

PENDING = Promotion(
    request_id="pr-1",
    model="m",
    version=2,
    evaluation_id="ev-1",
    requested_by="ana",
    requesters=frozenset({"ana", "cy"}),
    created_at=T0,
    expires_at=T0 + timedelta(hours=24),
    summary="recall 0.97",
)


def test_an_l2_who_did_not_ask_approves_and_is_named_on_the_decision() -> None:
    decided = decide(PENDING, approve=True, person="bo", role="l2", comment="ok", now=T0)
    assert (decided.state, decided.decided_by, decided.comment) == (
        PromotionState.APPROVED,
        "bo",
        "ok",
    )
    assert (
        decide(PENDING, approve=False, person="bo", role="admin", comment="no", now=T0).state
        is PromotionState.REJECTED
    )


@pytest.mark.parametrize(
    ("promotion", "person", "role", "now", "status", "words"),
    [
        (PENDING, "lee", "l1", T0, 403, "needs l2"),
        (PENDING, "x", "viewer", T0, 403, "needs l2"),
        (PENDING, "ana", "l3", T0, 409, "asked for this retrain"),
        (PENDING, "cy", "l2", T0, 409, "asked for this retrain"),
        (PENDING, "bo", "l2", T0 + timedelta(hours=24), 409, "expired"),
        (
            replace(PENDING, state=PromotionState.REJECTED, decided_by="dee"),
            "bo",
            "l2",
            T0,
            409,
            "rejected by dee",
        ),
    ],
)
def test_decisions_the_rules_forbid_are_refused_with_the_reason(
    promotion: Promotion, person: str, role: str, now: object, status: int, words: str
) -> None:
    with pytest.raises(PromotionRefused) as refused:
        decide(promotion, approve=True, person=person, role=role, comment="c", now=now)  # type: ignore[arg-type]
    assert refused.value.status == status
    assert words in str(refused.value)


def test_only_a_pending_request_past_its_expiry_expires() -> None:
    assert expire(PENDING, T0 + timedelta(hours=23)) is None
    expired = expire(PENDING, T0 + timedelta(hours=24))
    assert expired is not None
    assert expired.state is PromotionState.EXPIRED
    approved = replace(PENDING, state=PromotionState.APPROVED)
    assert expire(approved, T0 + timedelta(days=3)) is None


def comparison(
    verdict: ComparisonVerdict, samples: int = 200, **overrides: object
) -> VariantsCompared:
    fields: dict[str, object] = {
        "producer": "monitor",
        "model": "m",
        "champion_version": 1,
        "challenger_version": 2,
        "metric": "recall",
        "champion_value": 0.95,
        "challenger_value": 0.96,
        "champion_samples": samples * 9,
        "challenger_samples": samples,
        "min_samples": 50,
        "test": "two-proportion z-test",
        "p_value": 0.4,
        "alpha": 0.05,
        "verdict": verdict,
    }
    return VariantsCompared(**(fields | overrides))


def judge(
    event: VariantsCompared, rollout: Rollout | None = Rollout.CANARY, min_labels: int = 0
) -> CanaryDecision:
    return judge_canary(
        event, candidate_version=2, champion_version=1, rollout=rollout, min_labels=min_labels
    )


def test_a_canary_significantly_worse_on_live_traffic_is_rolled_back() -> None:
    decision = judge(comparison(ComparisonVerdict.CHALLENGER_WORSE, challenger_value=0.8))
    assert decision.action is CanaryAction.ROLL_BACK
    assert "recall 0.8 vs 0.95" in decision.reason


def test_a_non_inferior_canary_with_enough_labels_on_both_sides_is_promoted() -> None:
    for verdict in (
        ComparisonVerdict.NO_SIGNIFICANT_DIFFERENCE,
        ComparisonVerdict.CHALLENGER_BETTER,
    ):
        assert judge(comparison(verdict)).action is CanaryAction.PROMOTE


def test_a_canary_waits_for_enough_labels() -> None:
    assert judge(comparison(ComparisonVerdict.INSUFFICIENT_DATA, 10)).action is CanaryAction.WAIT
    few = comparison(ComparisonVerdict.NO_SIGNIFICANT_DIFFERENCE, 60)
    assert judge(few).action is CanaryAction.PROMOTE
    assert judge(few, min_labels=100).action is CanaryAction.WAIT


def test_nothing_is_promoted_that_is_not_an_approved_canary_of_this_pair() -> None:
    better = comparison(ComparisonVerdict.CHALLENGER_BETTER, 5000)
    assert judge(better, rollout=None).action is CanaryAction.IGNORE
    assert judge(better, rollout=Rollout.ROLLED_BACK).action is CanaryAction.IGNORE
    other_pair = comparison(ComparisonVerdict.CHALLENGER_BETTER, 5000, challenger_version=3)
    assert judge(other_pair).action is CanaryAction.IGNORE

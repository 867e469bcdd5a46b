"""Governed retraining end to end in the retrainer: a request becomes a run, a candidate, a gate
verdict, a promotion request, an approval, a canary and a promotion or rollback — on the
in-memory broker, and (``integration``) on the real broker with the real incident log as the
identity provider, over loopback HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from contracts import (
    CandidateEvaluated,
    ComparisonVerdict,
    Envelope,
    ModelApproved,
    ModelDeployed,
    ModelPromoted,
    ModelRegistered,
    ModelRejected,
    ModelRolledBack,
    PromotionExpired,
    PromotionRequested,
    RetrainFinished,
    RetrainRequest,
    RetrainStarted,
    RetrainTrigger,
    VariantsCompared,
)
from tests.retrainer.retrainer_harness import MODEL, Retrainer, of_type, registered_versions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SEED_ROWS = 426  # v1's training set: the 569 breast-cancer rows but every fourth
LIVE = (0, 200)  # live traffic with labels: the first 200 rows


def request(cause: str = "incident:inc-7", **overrides: Any) -> RetrainRequest:
    fields: dict[str, Any] = {
        "producer": "incident-log",
        "model": MODEL,
        "trigger": RetrainTrigger.INCIDENT,
        "cause": cause,
        "incident_id": "inc-7",
        "correlation_id": "inc-7",
        "requested_by": "ana",
        "reason": "recall decayed",
    }
    return RetrainRequest(**(fields | overrides))


def comparison(verdict: ComparisonVerdict, challenger: int = 2) -> VariantsCompared:
    return VariantsCompared(
        producer="monitor",
        model=MODEL,
        champion_version=1,
        challenger_version=challenger,
        metric="recall",
        champion_value=0.85,
        challenger_value=0.7 if verdict is ComparisonVerdict.CHALLENGER_WORSE else 0.86,
        champion_samples=1800,
        challenger_samples=200,
        min_samples=50,
        test="two-proportion z-test",
        p_value=0.001 if verdict is ComparisonVerdict.CHALLENGER_WORSE else 0.6,
        alpha=0.05,
        verdict=verdict,
    )


def count(kind: type[Envelope], n: int) -> Callable[[list[Envelope]], bool]:
    return lambda events: len(of_type(events, kind)) >= n


async def decide(
    retrainer: Retrainer, request_id: str, verb: str, who: str, comment: str = "ok"
) -> Any:
    return await retrainer.http.post(
        f"/promotions/{request_id}/{verb}",
        json={"comment": comment},
        headers=retrainer.as_person(who),
    )


async def candidate_proposed(retrainer: Retrainer) -> PromotionRequested:
    """Live data, one retrain request, and the promotion request it ends with."""
    await retrainer.with_live_data(*LIVE)
    await retrainer.publish(request())
    events = await retrainer.models(count(RetrainFinished, 1))
    [requested] = of_type(events, PromotionRequested)
    return requested


async def test_a_request_becomes_a_promoted_champion_and_a_rerun_is_answered_from_the_cache(
    retrainer: Retrainer,
) -> None:
    await retrainer.with_live_data(*LIVE)
    await retrainer.publish(request())
    events = await retrainer.models(count(RetrainFinished, 1))
    [started] = of_type(events, RetrainStarted)
    [finished] = of_type(events, RetrainFinished)
    [verdict] = of_type(events, CandidateEvaluated)
    [proposed] = of_type(events, PromotionRequested)
    assert registered_versions(events) == [1, 2]
    [candidate] = [e.record for e in of_type(events, ModelRegistered) if e.record.version == 2]
    assert (finished.candidate_version, finished.failure, finished.cached_steps) == (2, None, [])
    assert started.dataset == candidate.dataset  # lineage: the snapshot the run trained on
    assert candidate.evaluation_dataset is not None
    assert candidate.evaluation_dataset.digest == verdict.dataset_digest
    assert candidate.parameters["C"] == 1.0
    assert (candidate.registered_by, candidate.incident_id) == ("system:retrainer", "inc-7")
    changes = finished.dataset_changes
    assert changes is not None
    assert (changes.rows_before, changes.rows_after, changes.live_rows) == (
        SEED_ROWS,
        SEED_ROWS + 200,
        200,
    )
    assert set(changes.label_balance_after) == {"malignant", "benign"}
    assert [shift.feature for shift in changes.features] == ["mean radius", "mean texture"]
    assert verdict.passed, verdict.failures
    assert (verdict.candidate_version, verdict.champion_version) == (2, 1)
    non_inferiority = verdict.figures["non_inferiority"]
    assert isinstance(non_inferiority, dict)
    assert non_inferiority["test"] == "paired bootstrap"
    assert (proposed.version, proposed.requested_by, proposed.evaluation_id) == (
        2,
        "ana",
        verdict.evaluation_id,
    )

    # Another ask with nothing changed: every step from the cache, the same artifact, no new
    # version, no second promotion request.
    await retrainer.publish(request("manual:again", requested_by="cy", incident_id=None))
    events = await retrainer.models(count(RetrainFinished, 2))
    rerun = of_type(events, RetrainFinished)[1]
    assert rerun.cached_steps == ["prepare", "split", "train", "evaluate", "register"]
    assert rerun.candidate_version == 2
    assert registered_versions(events) == [1, 2]
    assert len(of_type(events, PromotionRequested)) == 1
    assert len(of_type(events, CandidateEvaluated)) == 1

    approved = await decide(retrainer, proposed.request_id, "approve", "bo", "recall holds")
    assert approved.status_code == 200, approved.text
    assert (approved.json()["decided_by"], approved.json()["rollout"]) == ("bo", "canary")
    events = await retrainer.models(count(ModelDeployed, 2))
    [approval] = of_type(events, ModelApproved)
    assert (approval.approver, approval.comment, approval.incident_id) == (
        "bo",
        "recall holds",
        "inc-7",
    )
    canary = of_type(events, ModelDeployed)[-1]
    assert canary.deployment.challenger is not None
    assert (canary.deployment.challenger.version, canary.deployment.challenger_share) == (2, 0.1)
    assert canary.incident_id == "inc-7"

    await retrainer.publish(comparison(ComparisonVerdict.NO_SIGNIFICANT_DIFFERENCE))
    events = await retrainer.models(count(ModelPromoted, 1))
    [promoted] = of_type(events, ModelPromoted)
    assert (promoted.version, promoted.previous_version, promoted.actor) == (
        2,
        1,
        "system:retrainer",
    )
    assert promoted.incident_id == "inc-7"
    assert (await retrainer.deployment())["champion"]["version"] == 2
    first_run = [e for e in events if getattr(e, "incident_id", None) == "inc-7"]
    first_run += [e for e in of_type(events, ModelRegistered) if e.record.version == 2]
    assert {type(e).__name__ for e in first_run} == {
        "RetrainAnswered",
        "ModelRegistered",
        "RetrainStarted",
        "CandidateEvaluated",
        "PromotionRequested",
        "RetrainFinished",
        "ModelApproved",
        "ModelDeployed",
        "ModelPromoted",
    }
    assert all(e.correlation_id == "inc-7" for e in first_run)


async def test_a_worse_candidate_is_rejected_by_the_gate_and_never_proposed(
    retrainer: Retrainer,
) -> None:
    await retrainer.with_live_data(*LIVE)
    await retrainer.publish(request(parameters={"C": 1e-5}))  # regularised into uselessness
    events = await retrainer.models(count(RetrainFinished, 1))
    [verdict] = of_type(events, CandidateEvaluated)
    assert not verdict.passed
    assert any("below its floor" in failure for failure in verdict.failures)
    assert any("worse than the champion's" in failure for failure in verdict.failures)
    assert of_type(events, PromotionRequested) == []
    assert of_type(events, RetrainFinished)[0].candidate_version == 2
    deployment = await retrainer.deployment()
    assert (deployment["champion"]["version"], deployment["challenger"]) == (1, None)
    record = (await retrainer.http.get(f"/evaluations/{verdict.evaluation_id}")).json()
    assert record["figures"] == verdict.figures
    assert record["dataset_digest"] == verdict.dataset_digest


async def test_a_canary_worse_on_live_traffic_is_rolled_back_and_nothing_promotes_unapproved(
    retrainer: Retrainer,
) -> None:
    proposed = await candidate_proposed(retrainer)
    better = comparison(ComparisonVerdict.CHALLENGER_BETTER)
    await retrainer.publish(better)  # before any approval: must change nothing
    await retrainer.handled(better)
    deployment = await retrainer.deployment()
    assert (deployment["champion"]["version"], deployment["challenger"]) == (1, None)

    assert (await decide(retrainer, proposed.request_id, "approve", "bo")).status_code == 200
    await retrainer.models(count(ModelDeployed, 2))
    await retrainer.publish(comparison(ComparisonVerdict.CHALLENGER_WORSE))
    events = await retrainer.models(count(ModelRolledBack, 1))
    [rollback] = of_type(events, ModelRolledBack)
    assert (rollback.from_version, rollback.to_version, rollback.actor) == (
        2,
        1,
        "system:retrainer",
    )
    assert "worse on live traffic" in rollback.reason
    assert of_type(events, ModelPromoted) == []
    deployment = await retrainer.deployment()
    assert (deployment["champion"]["version"], deployment["challenger"]) == (1, None)
    history = (await retrainer.http.get(f"/models/{MODEL}/history")).json()
    champion_moves = [m for m in history["alias_moves"] if m["alias"] == "champion"]
    assert [m["version"] for m in champion_moves] == [1]
    view = (
        await retrainer.http.get(
            f"/promotions/{proposed.request_id}", headers=retrainer.as_person("lee")
        )
    ).json()
    assert view["rollout"] == "rolled_back"

    # A late "better" verdict about the withdrawn candidate promotes nothing.
    late = comparison(ComparisonVerdict.CHALLENGER_BETTER)
    await retrainer.publish(late)
    await retrainer.handled(late)
    assert (await retrainer.deployment())["champion"]["version"] == 1


async def test_a_rejected_candidate_never_takes_traffic(retrainer: Retrainer) -> None:
    proposed = await candidate_proposed(retrainer)
    rejected = await decide(retrainer, proposed.request_id, "reject", "bo", "precision dropped")
    assert rejected.status_code == 200, rejected.text
    events = await retrainer.models(count(ModelRejected, 1))
    [rejection] = of_type(events, ModelRejected)
    assert (rejection.approver, rejection.comment, rejection.version) == (
        "bo",
        "precision dropped",
        2,
    )
    again = await decide(retrainer, proposed.request_id, "approve", "bo")
    assert again.status_code == 409
    assert "rejected by bo" in again.json()["detail"]
    better = comparison(ComparisonVerdict.CHALLENGER_BETTER)
    await retrainer.publish(better)
    await retrainer.handled(better)
    assert (await retrainer.deployment())["challenger"] is None
    assert of_type(await retrainer.read_models(), ModelDeployed)[-1].deployment.challenger is None


async def test_approval_needs_a_level_two_who_did_not_ask_and_a_request_that_has_not_expired(
    retrainer: Retrainer,
) -> None:
    proposed = await candidate_proposed(retrainer)
    path = f"/promotions/{proposed.request_id}/approve"
    anonymous = await retrainer.http.post(path, json={"comment": "x"})
    assert anonymous.status_code == 401
    forged = await retrainer.http.post(
        path, json={"comment": "x"}, headers={"Authorization": "Bearer not-a-token"}
    )
    assert forged.status_code == 401
    level_one = await decide(retrainer, proposed.request_id, "approve", "lee")
    assert level_one.status_code == 403
    assert "needs l2" in level_one.json()["detail"]
    requester = await decide(retrainer, proposed.request_id, "approve", "ana")
    assert requester.status_code == 409
    assert "ana asked for this retrain" in requester.json()["detail"]
    named = await retrainer.http.post(
        path, json={"comment": "x", "approver": "bo"}, headers=retrainer.as_person("ana")
    )
    assert named.status_code == 422  # a name in the body is not accepted, let alone believed

    retrainer.clock.advance(timedelta(hours=25))
    events = await retrainer.models(count(PromotionExpired, 1))
    [expired] = of_type(events, PromotionExpired)
    assert (expired.request_id, expired.incident_id) == (proposed.request_id, "inc-7")
    late = await decide(retrainer, proposed.request_id, "approve", "bo")
    assert late.status_code == 409
    assert "expired" in late.json()["detail"]
    assert of_type(events, ModelApproved) == []
    listed = await retrainer.http.get(
        "/promotions", params={"model": MODEL}, headers=retrainer.as_person("lee")
    )
    assert [p["state"] for p in listed.json()] == ["expired"]


async def test_concurrent_duplicate_triggers_for_one_model_make_one_retrain(
    retrainer: Retrainer,
) -> None:
    await retrainer.with_live_data(*LIVE)
    duplicates = [request() for _ in range(6)]
    by_hand = [
        retrainer.http.post(
            "/retrains",
            json={"model": MODEL, "reason": "same incident", "cause": "incident:inc-7"},
            headers=retrainer.as_person("cy"),
        )
        for _ in range(4)
    ]
    publishing = asyncio.create_task(retrainer.publish(*duplicates))
    answers = await asyncio.gather(*by_hand)
    await publishing
    assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
    await retrainer.models(count(RetrainFinished, 1))
    events = await retrainer.quiet_models()
    assert len(of_type(events, RetrainStarted)) == 1
    assert len(of_type(events, RetrainFinished)) == 1
    assert registered_versions(events) == [1, 2]
    runs = (await retrainer.http.get("/retrains", params={"model": MODEL})).json()
    assert len(runs) == 1
    detail = (await retrainer.http.get(f"/retrains/{runs[0]['run_id']}")).json()
    assert detail["causes"] == ["incident:inc-7"]
    assert len(detail["asks"]) == 10


async def test_asks_that_cannot_be_admitted_are_refused_with_the_reason(
    retrainer: Retrainer,
) -> None:
    ask = {"model": MODEL, "reason": "try"}
    assert (await retrainer.http.post("/retrains", json=ask)).status_code == 401
    level_one = await retrainer.http.post("/retrains", json=ask, headers=retrainer.as_person("lee"))
    assert level_one.status_code == 403
    unknown = await retrainer.http.post(
        "/retrains", json=ask | {"model": "nope"}, headers=retrainer.as_person("ana")
    )
    assert unknown.status_code == 404
    bad = await retrainer.http.post(
        "/retrains",
        json=ask | {"parameters": {"kernel": "rbf"}},
        headers=retrainer.as_person("ana"),
    )
    assert bad.status_code == 422
    assert "'kernel' is not a hyper-parameter" in bad.json()["detail"]
    assert (await retrainer.http.get("/retrains")).json() == []

"""What the retrainer refuses or cannot do, and says so: asks about unknown models or with bad
parameters are answered refused on ``models``, and a run that cannot train ends with the reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from contracts import (
    RetrainAnswer,
    RetrainAnswered,
    RetrainFinished,
    RetrainRefusal,
    RetrainRequest,
    RetrainStarted,
    RetrainTrigger,
    Topic,
)
from tests.content_tools import forget_every
from tests.retrainer.retrainer_harness import MODEL, Retrainer, in_memory_retrainer, of_type

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def ask(**overrides: object) -> RetrainRequest:
    fields: dict[str, object] = {
        "producer": "incident-log",
        "model": MODEL,
        "trigger": RetrainTrigger.INCIDENT,
        "cause": "incident:inc-9",
        "incident_id": "inc-9",
        "requested_by": "ana",
        "reason": "decay",
    }
    return RetrainRequest(**(fields | overrides))


async def test_asks_that_cannot_be_acted_on_are_answered_refused_with_the_reason(
    retrainer: Retrainer,
) -> None:
    unknown = ask(model="no-such-model", cause="incident:inc-10")
    useless = ask(cause="incident:inc-11", parameters={"estimator": "svm"})
    await retrainer.publish(unknown, useless)
    events = await retrainer.models(lambda e: len(of_type(e, RetrainAnswered)) == 2)
    answers = {answer.ask_event_id: answer for answer in of_type(events, RetrainAnswered)}
    assert answers[unknown.event_id].answer is RetrainAnswer.REFUSED
    assert answers[unknown.event_id].refusal is RetrainRefusal.UNKNOWN_MODEL
    assert answers[unknown.event_id].reason == "the registry has no model named 'no-such-model'"
    assert answers[useless.event_id].refusal is RetrainRefusal.INVALID_PARAMETERS
    assert answers[useless.event_id].reason == (
        "training parameters: estimator 'svm' is not one of gaussian_nb, logistic_regression"
    )
    assert answers[useless.event_id].incident_id == "inc-9"
    # Answered, so not dead-lettered too (a replay could not change the answer).
    assert await retrainer.read_topic(Topic.DEAD_LETTER) == []
    assert of_type(await retrainer.read_models(), RetrainStarted) == []


async def test_a_run_that_cannot_train_ends_and_says_why(retrainer: Retrainer) -> None:
    await asyncio.to_thread(forget_every, retrainer.database_url, "dataset")  # v1's data is gone
    await retrainer.publish(ask())
    events = await retrainer.models(lambda e: len(of_type(e, RetrainFinished)) == 1)
    [finished] = of_type(events, RetrainFinished)
    assert finished.candidate_version is None
    assert finished.failure is not None
    assert "training data" in finished.failure
    assert finished.incident_id == "inc-9"
    runs = (await retrainer.http.get("/retrains")).json()
    assert [(run["state"], run["failure"]) for run in runs] == [("failed", finished.failure)]


async def test_an_ask_on_a_persons_behalf_needs_a_caller_allowed_to_act_for_others(
    tmp_path: Path, database_url: str
) -> None:
    people = {"token-ana": ("ana", "l2"), "token-runner": ("runbook-runner", "l2")}
    async with in_memory_retrainer(tmp_path, database_url, people) as retrainer:
        ask = {"model": MODEL, "reason": "drift", "on_behalf_of": "bo"}
        refused = await retrainer.http.post(
            "/retrains", json=ask, headers=retrainer.as_person("ana")
        )
        assert refused.status_code == 403
        assert "ana may not ask on behalf of someone else" in refused.json()["detail"]
        as_runner = retrainer.as_person("runbook-runner")
        for hostile in ("", "x" * 201, "bo\r\n", 7):
            bad = await retrainer.http.post(
                "/retrains", json=ask | {"on_behalf_of": hostile}, headers=as_runner
            )
            assert bad.status_code == 422, (hostile, bad.text)
        done = await retrainer.http.post("/retrains", json=ask, headers=as_runner)
        assert done.status_code == 202, done.text
        run = (await retrainer.http.get(f"/retrains/{done.json()['run_id']}")).json()
        assert (run["requested_by"], run["requesters"]) == ("bo", ["bo"])
        assert [(a["requested_by"], a["via"]) for a in run["asks"]] == [("bo", "runbook-runner")]
        events = await retrainer.models(lambda e: len(of_type(e, RetrainAnswered)) == 1)
        [answer] = of_type(events, RetrainAnswered)
        assert (answer.requested_by, answer.via, answer.ask_event_id) == (
            "bo",
            "runbook-runner",
            None,
        )

"""What the retrainer refuses or cannot do, and says so: asks about unknown models or with bad
parameters are answered refused on ``models``, and a run that cannot train ends with the reason."""

from __future__ import annotations

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
from tests.retrainer.retrainer_harness import MODEL, Retrainer, of_type

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
    for path in (retrainer.settings.state_dir / "datasets").rglob("*.csv"):
        path.unlink()  # v1's training data is gone
    await retrainer.publish(ask())
    events = await retrainer.models(lambda e: len(of_type(e, RetrainFinished)) == 1)
    [finished] = of_type(events, RetrainFinished)
    assert finished.candidate_version is None
    assert finished.failure is not None
    assert "training data" in finished.failure
    assert finished.incident_id == "inc-9"
    runs = (await retrainer.http.get("/retrains")).json()
    assert [(run["state"], run["failure"]) for run in runs] == [("failed", finished.failure)]

"""The golden-set probe over real HTTP (a loopback scorer): pass, regression, HTTP error,
timeout, unreadable answer, unreachable scorer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from contracts import GoldenCase, ProbeSpec
from contracts.scoring_api import PROBE_REQUEST_ID_PREFIX, Prediction, PredictRequest
from services.monitor.probe import judge_answers, run_probe
from services.runtime import free_port
from tests.factories import MODEL, T0
from tests.monitor.doubles import FakeScorer, serving

GOLDEN = ProbeSpec(
    golden_set=[
        GoldenCase(case_id="big", features={"mean radius": 20.0}, expected="malignant"),
        GoldenCase(case_id="small", features={"mean radius": 10.0}, expected="benign"),
    ],
    timeout_seconds=0.5,
    min_accuracy=1.0,
)


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer(version=3)


@pytest.fixture
async def scorer_url(scorer: FakeScorer) -> AsyncIterator[str]:
    async with serving(scorer.app()) as url:
        yield url


async def test_a_scorer_serving_the_right_model_passes(scorer_url: str) -> None:
    async with httpx.AsyncClient() as http:
        result = await run_probe(http, scorer_url, MODEL, GOLDEN, manual=True, now=T0)
    assert result.passed
    assert (result.accuracy, result.model_version, result.failure, result.manual) == (
        1.0,
        3,
        None,
        True,
    )
    assert [(c.case_id, c.predicted) for c in result.cases] == [
        ("big", "malignant"),
        ("small", "benign"),
    ]
    assert result.latency_ms is not None
    assert result.latency_ms > 0


async def test_a_broken_model_fails_as_a_regression(scorer: FakeScorer, scorer_url: str) -> None:
    scorer.mode = "wrong"
    async with httpx.AsyncClient() as http:
        result = await run_probe(http, scorer_url, MODEL, GOLDEN, manual=False, now=T0)
    assert not result.passed
    assert result.accuracy == 0.0
    assert result.failure == "regression: accuracy 0.000 below 1 (wrong: big, small)"


async def test_a_partly_right_model_passes_when_its_accuracy_meets_the_minimum(
    scorer: FakeScorer, scorer_url: str
) -> None:
    scorer.rule = lambda features: "benign"
    lenient = GOLDEN.model_copy(update={"min_accuracy": 0.5})
    async with httpx.AsyncClient() as http:
        result = await run_probe(http, scorer_url, MODEL, lenient, manual=False, now=T0)
    assert result.passed
    assert result.accuracy == 0.5


async def test_an_http_error_fails_the_probe_with_the_status(
    scorer: FakeScorer, scorer_url: str
) -> None:
    scorer.mode = "error"
    async with httpx.AsyncClient() as http:
        result = await run_probe(http, scorer_url, MODEL, GOLDEN, manual=False, now=T0)
    assert not result.passed
    assert result.accuracy is None
    assert result.failure is not None
    assert result.failure.startswith("HTTP 503")
    assert {case.error for case in result.cases} == {result.failure}


async def test_a_scorer_slower_than_the_timeout_fails_the_probe(
    scorer: FakeScorer, scorer_url: str
) -> None:
    scorer.mode = "slow"
    scorer.slow_seconds = 2.0
    async with httpx.AsyncClient() as http:
        result = await run_probe(http, scorer_url, MODEL, GOLDEN, manual=False, now=T0)
    assert not result.passed
    assert result.failure == "timeout after 0.5 s"


async def test_an_unreadable_answer_fails_the_probe(scorer_url: str) -> None:
    async with httpx.AsyncClient() as http:
        result = await run_probe(http, f"{scorer_url}/garbage", MODEL, GOLDEN, manual=False, now=T0)
    assert not result.passed
    assert result.failure is not None
    assert result.failure.startswith("unreadable answer")


async def test_an_unreachable_scorer_fails_the_probe() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with httpx.AsyncClient() as http:
        result = await run_probe(http, url, MODEL, GOLDEN, manual=False, now=T0)
    assert not result.passed
    assert result.failure is not None
    assert result.failure.startswith(f"scorer unreachable at {url}")


async def test_probe_requests_are_marked_as_probe_traffic(scorer_url: str) -> None:
    seen: list[str] = []

    async def spy(request: httpx.Request) -> None:
        body = PredictRequest.model_validate_json(request.content)
        seen.extend(instance.request_id or "" for instance in body.instances)

    async with httpx.AsyncClient(event_hooks={"request": [spy]}) as http:
        await run_probe(http, scorer_url, MODEL, GOLDEN, manual=False, now=T0)
    assert len(seen) == 2
    assert all(request_id.startswith(PROBE_REQUEST_ID_PREFIX) for request_id in seen)


def test_a_case_without_an_answer_counts_as_wrong() -> None:
    answer = Prediction(
        request_id="x",
        model_version=2,
        variant="champion",
        predicted_class="malignant",
        probabilities={"malignant": 1.0},
        confidence=1.0,
    )
    result = judge_answers(MODEL, GOLDEN, {"big": answer}, 3.0, manual=False, now=T0)
    assert not result.passed
    assert result.accuracy == 0.5
    assert [c.error for c in result.cases] == [None, "no answer for this case"]

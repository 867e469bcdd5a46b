"""The golden-set probe: send a model's golden cases to the scorer's ``POST /predict`` and judge
the answers against the expected ones.

A probe fails on a timeout (the whole round trip, not just one socket read), on an HTTP error or
an unreadable answer, and on a regression: fewer cases right than the version's ``min_accuracy``.
Its request ids start with :data:`contracts.scoring_api.PROBE_REQUEST_ID_PREFIX`, so the
predictions the scorer publishes for it stay out of live metrics; the scorer accepts such ids only
with the probe token (``VIGIL_MONITOR_PROBE_TOKEN``, the scorer's ``VIGIL_SCORER_PROBE_TOKEN``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from uuid import uuid4

import httpx
from pydantic import ValidationError

from contracts.monitoring import ProbeCase, ProbeCompleted
from contracts.registry import ProbeSpec
from contracts.scoring_api import (
    PROBE_REQUEST_ID_PREFIX,
    Instance,
    Prediction,
    PredictRequest,
    PredictResponse,
)
from services.monitor.reporting import PRODUCER

__all__ = ["judge_answers", "run_probe"]


async def run_probe(
    http: httpx.AsyncClient,
    scorer_url: str,
    model: str,
    probe: ProbeSpec,
    *,
    token: str | None = None,
    manual: bool,
    now: datetime,
) -> ProbeCompleted:
    """Send the golden set to the scorer once and return the judged run (never raises on a
    scorer problem: that is what a failed probe reports)."""
    run = uuid4().hex[:12]
    request_ids = {
        f"{PROBE_REQUEST_ID_PREFIX}{model}:{run}:{case.case_id}"[:200]: case.case_id
        for case in probe.golden_set
    }
    request = PredictRequest(
        model=model,
        instances=[
            Instance(request_id=request_id, features=case.features)
            for request_id, case in zip(request_ids, probe.golden_set, strict=True)
        ],
    )
    started = time.perf_counter()

    def failed(reason: str, latency_ms: float | None = None) -> ProbeCompleted:
        return _completed(model, probe, [], latency_ms, reason, manual=manual, now=now)

    try:
        async with asyncio.timeout(probe.timeout_seconds):
            response = await http.post(
                f"{scorer_url.rstrip('/')}/predict",
                content=request.model_dump_json(),
                headers={"content-type": "application/json"}
                | ({"authorization": f"Bearer {token}"} if token else {}),
                timeout=probe.timeout_seconds,
            )
    except (TimeoutError, httpx.TimeoutException):
        return failed(f"timeout after {probe.timeout_seconds:g} s")
    except httpx.HTTPError as error:
        return failed(f"scorer unreachable at {scorer_url}: {type(error).__name__}: {error}")
    latency_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        return failed(f"HTTP {response.status_code}: {response.text[:300]}", latency_ms)
    try:
        answer = PredictResponse.model_validate_json(response.content)
    except ValidationError as error:
        return failed(f"unreadable answer: {str(error)[:300]}", latency_ms)
    by_case = {
        request_ids[prediction.request_id]: prediction
        for prediction in answer.predictions
        if prediction.request_id in request_ids
    }
    return judge_answers(model, probe, by_case, latency_ms, manual=manual, now=now)


def judge_answers(
    model: str,
    probe: ProbeSpec,
    answers: dict[str, Prediction],
    latency_ms: float | None,
    *,
    manual: bool,
    now: datetime,
) -> ProbeCompleted:
    """Compare the scorer's answers (by case id) with the golden set's expected classes."""
    cases = []
    for case in probe.golden_set:
        prediction = answers.get(case.case_id)
        cases.append(
            ProbeCase(
                case_id=case.case_id,
                expected=case.expected,
                predicted=None if prediction is None else prediction.predicted_class,
                error="no answer for this case" if prediction is None else None,
            )
        )
    versions = {prediction.model_version for prediction in answers.values()}
    return _completed(
        model,
        probe,
        cases,
        latency_ms,
        None,
        manual=manual,
        now=now,
        version=versions.pop() if len(versions) == 1 else None,
    )


def _completed(
    model: str,
    probe: ProbeSpec,
    cases: Sequence[ProbeCase],
    latency_ms: float | None,
    failure: str | None,
    *,
    manual: bool,
    now: datetime,
    version: int | None = None,
) -> ProbeCompleted:
    accuracy = None
    if failure is None:
        accuracy = sum(case.predicted == case.expected for case in cases) / len(cases)
        if accuracy < probe.min_accuracy:
            wrong = [case.case_id for case in cases if case.predicted != case.expected]
            failure = (
                f"regression: accuracy {accuracy:.3f} below {probe.min_accuracy:g} "
                f"(wrong: {', '.join(wrong[:10])}{' …' if len(wrong) > 10 else ''})"
            )
    else:
        cases = [
            ProbeCase(case_id=case.case_id, expected=case.expected, error=failure[:200])
            for case in probe.golden_set
        ]
    return ProbeCompleted(
        producer=PRODUCER,
        occurred_at=now,
        model=model,
        model_version=version,
        passed=failure is None,
        accuracy=accuracy,
        min_accuracy=probe.min_accuracy,
        cases=list(cases),
        latency_ms=latency_ms,
        failure=failure,
        manual=manual,
    )

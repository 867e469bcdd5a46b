"""Hostile input against the registry and retrainer's HTTP API (served by uvicorn on loopback):
NaN and infinities in registration metrics and parameters and in retrain asks, a non-ASCII token,
bodies over the caps, and an anonymous upload that must be refused before its body is read."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tests.http_tools import raw_exchange, request_head
from tests.model_builders import train
from tests.registry_tools import bearer, deploy, register
from tests.retrainer.retrainer_harness import MODEL, Retrainer
from tests.retrainer.retraining_data import SPEC

CAP = 32 * 1024
UPLOAD_CAP = 8 * 1024 * 1024


@pytest.fixture
def mode() -> dict[str, Any]:
    """Only in memory: the HTTP API is the same either way, and is served for real."""
    return {"mode": "memory"}


@pytest.fixture
def retrainer_settings() -> dict[str, Any]:
    return {"http_max_body_bytes": CAP, "max_upload_bytes": UPLOAD_CAP}


async def versions(retrainer: Retrainer) -> int:
    response = await retrainer.http.get(f"/models/{MODEL}/versions")
    return len(response.json())


async def still_healthy(retrainer: Retrainer) -> None:
    assert (await retrainer.http.get("/healthz")).status_code == 200
    good = await deploy(retrainer.http, MODEL, 1, headers=retrainer.as_person("ana"))
    assert good.status_code == 200, good.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("metrics", {"recall": math.nan}),
        ("metrics", {"recall": math.inf}),
        ("metrics", {"recall": -math.inf}),
        ("metrics", {"recall": "nan"}),
        ("metrics", {"recall": "Infinity"}),
        ("parameters", {"C": math.nan}),
        ("parameters", {"grid": [1.0, {"C": math.inf}]}),
    ],
)
async def test_registration_refuses_nan_and_infinities_in_metrics_and_parameters(
    retrainer: Retrainer, field: str, value: dict[str, Any]
) -> None:
    before = await versions(retrainer)
    refused = await register(
        retrainer.http,
        MODEL,
        train(),
        headers=retrainer.as_person("ana"),
        spec=SPEC.model_dump(mode="json"),
        **{field: value},
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"][:3] == ["body", "metadata", field]
    assert await versions(retrainer) == before
    good = await register(
        retrainer.http,
        MODEL,
        train(),
        headers=retrainer.as_person("ana"),
        spec=SPEC.model_dump(mode="json"),
    )
    assert good.status_code == 201, good.text
    await still_healthy(retrainer)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e309"])
async def test_a_retrain_ask_refuses_nan_and_infinite_parameters(
    retrainer: Retrainer, number: str
) -> None:
    body = f'{{"model": "{MODEL}", "reason": "r", "parameters": {{"C": {number}}}}}'
    refused = await retrainer.http.post(
        "/retrains",
        content=body,
        headers=retrainer.as_person("ana") | {"Content-Type": "application/json"},
    )
    assert refused.status_code == 422, refused.text
    assert (await retrainer.http.get("/retrains")).json() == []
    await still_healthy(retrainer)


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
async def test_a_non_ascii_token_is_unknown(retrainer: Retrainer, encoding: str) -> None:
    body = json.dumps({"champion": 1, "reason": "r"}).encode()
    head = request_head(
        "PUT",
        f"/models/{MODEL}/deployment",
        {
            "Authorization": "Bearer tökén".encode(encoding),
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        },
    )
    status, answer = await raw_exchange(retrainer.url, head + body)
    assert status == 401, answer
    await still_healthy(retrainer)


async def test_an_anonymous_upload_is_refused_before_its_body_is_read(
    retrainer: Retrainer,
) -> None:
    # Four megabytes announced (under the upload cap), 32 KiB sent: the 401 can only come from
    # the head, so nothing was parsed or spooled.
    boundary = "hostile"
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="artifact"; '
        f'filename="model.skops"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    head = request_head(
        "POST",
        f"/models/{MODEL}/versions",
        {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(4 * 1024 * 1024),
        },
    )
    status, answer = await raw_exchange(retrainer.url, head + start + b"x" * CAP, timeout_s=5)
    assert status == 401, answer
    with_unknown_token = request_head(
        "POST",
        f"/models/{MODEL}/versions",
        {
            "Authorization": "Bearer not-a-token",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(4 * 1024 * 1024),
        },
    )
    status, answer = await raw_exchange(
        retrainer.url, with_unknown_token + start + b"x" * CAP, timeout_s=5
    )
    assert status == 401, answer
    await still_healthy(retrainer)


async def test_uploads_and_bodies_over_their_caps_are_refused(retrainer: Retrainer) -> None:
    too_big = request_head(
        "POST",
        f"/models/{MODEL}/versions",
        {
            "Authorization": f"Bearer {retrainer.tokens['ana']}",
            "Content-Type": "multipart/form-data; boundary=x",
            "Content-Length": str(UPLOAD_CAP + 1),
        },
    )
    status, answer = await raw_exchange(retrainer.url, too_big + b"--x\r\n", timeout_s=5)
    assert status == 413, answer
    assert json.loads(answer)["detail"] == f"request body larger than {UPLOAD_CAP} bytes"
    big_reason = {"champion": 1, "reason": "x" * CAP}
    refused = await retrainer.http.put(
        f"/models/{MODEL}/deployment", json=big_reason, headers=retrainer.as_person("ana")
    )
    assert refused.status_code == 413, refused.text
    # The registration route keeps its larger cap: a real one (over 32 KiB) goes through.
    trained = train()
    assert len(trained.artifact) + len(trained.training_csv) > CAP
    good = await register(
        retrainer.http,
        MODEL,
        trained,
        headers=bearer(retrainer.tokens["ana"]),
        spec=SPEC.model_dump(mode="json"),
    )
    assert good.status_code == 201, good.text
    await still_healthy(retrainer)


async def test_a_registration_missing_a_part_names_it(retrainer: Retrainer) -> None:
    response = await retrainer.http.post(
        f"/models/{MODEL}/versions",
        data={"metadata": "{}"},
        files={"training_data": ("t.csv", b"a,b\n")},
        headers=retrainer.as_person("ana"),
    )
    assert response.status_code == 422
    assert [problem["loc"] for problem in response.json()["detail"]] == [["body", "artifact"]]
    await still_healthy(retrainer)


async def test_version_numbers_past_the_documented_range_are_refused(retrainer: Retrainer) -> None:
    huge = 10**20
    assert (await retrainer.http.get(f"/models/{MODEL}/versions/{huge}")).status_code == 422
    assert (await retrainer.http.get(f"/models/{MODEL}/versions/{2**31 - 1}")).status_code == 404
    for body in ({"champion": huge}, {"champion": 1, "challenger": huge}, {"champion": 1.5}):
        refused = await retrainer.http.put(
            f"/models/{MODEL}/deployment",
            json=body | {"reason": "r"},
            headers=retrainer.as_person("ana"),
        )
        assert refused.status_code == 422, (body, refused.text)
    await still_healthy(retrainer)

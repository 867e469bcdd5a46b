"""Every service's HTTP app bounds request bodies: a declared length over the limit is refused
before the body is read, a chunked body once it passes the limit, deep JSON while it streams in;
the service answers normally afterwards. Served by uvicorn on loopback."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Request

from services.runtime import ServiceName, ServiceRuntime, ServiceSettings
from services.runtime.body_limits import JsonDepth
from tests.http_tools import raw_exchange, request_head, serving

LIMIT = 8 * 1024
DEPTH = 8


@pytest.fixture
async def service() -> AsyncIterator[httpx.AsyncClient]:
    settings = ServiceSettings(http_max_body_bytes=LIMIT, http_max_json_depth=DEPTH)
    app = ServiceRuntime(ServiceName.SCORER, settings).http_app(title="limits")

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @app.post("/count")
    async def count(request: Request) -> dict[str, int]:
        return {"bytes": sum([len(chunk) async for chunk in request.stream()])}

    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


async def still_healthy(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    good = await client.post("/echo", json={"a": [1, {"b": "c"}]})
    assert good.status_code == 200, good.text
    assert good.json() == {"a": [1, {"b": "c"}]}


async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    service: httpx.AsyncClient,
) -> None:
    head = request_head(
        "POST",
        "/echo",
        {"Content-Type": "application/json", "Content-Length": str(10 * 1024**3)},
    )
    # Ten gigabytes announced, a few bytes sent: an answer can only come from the head.
    status, body = await raw_exchange(str(service.base_url), head + b'{"a": ', timeout_s=5)
    assert status == 413
    assert json.loads(body) == {"detail": f"request body larger than {LIMIT} bytes"}
    await still_healthy(service)


async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(
    service: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 1024 + 2):
            yield b"x" * 1024

    refused = await service.post("/count", content=chunks())
    assert refused.request.headers["transfer-encoding"] == "chunked"
    assert refused.status_code == 413
    at_limit = await service.post("/count", content=b"x" * LIMIT)
    assert at_limit.json() == {"bytes": LIMIT}
    await still_healthy(service)


@pytest.mark.parametrize(
    "document",
    [
        "[" * 3000 + "]" * 3000,  # Python's parser recurses on this until it fails
        '{"a": ' + "[" * DEPTH + "1" + "]" * DEPTH + "}",
        '{"a": ' + '{"b": ' * DEPTH + "1" + "}" * DEPTH + "}",
    ],
    ids=["very-deep", "one-level-too-deep-lists", "one-level-too-deep-objects"],
)
async def test_json_nested_deeper_than_the_bound_is_refused(
    service: httpx.AsyncClient, document: str
) -> None:
    response = await service.post(
        "/echo", content=document, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == {"detail": f"JSON nested deeper than {DEPTH} levels"}
    await still_healthy(service)


async def test_brackets_inside_strings_do_not_count_as_nesting(
    service: httpx.AsyncClient,
) -> None:
    text = '\\"[[[[{{{{' * 20
    nested = {"a": [[[[[[[text]]]]]]]}  # depth 8: the bound itself
    response = await service.post("/echo", json=nested)
    assert response.status_code == 200, response.text
    assert response.json() == nested


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_depth_is_tracked_across_chunk_boundaries(size: int) -> None:
    document = json.dumps({"s": 'x\\"[{' * 5, "t": ["\\", [["]"]]]}).encode()
    depth = JsonDepth(max_depth=4)
    for start in range(0, len(document), size):
        depth.feed(document[start : start + size])
    assert depth.depth == 0
    too_deep = JsonDepth(max_depth=3)
    chunks = [document[start : start + size] for start in range(0, len(document), size)]
    last = max(n for n, chunk in enumerate(chunks) if b"[" in chunk)  # the fourth '[' is here
    for chunk in chunks[:last]:
        too_deep.feed(chunk)
    with pytest.raises(ValueError, match="deeper than 3"):
        too_deep.feed(chunks[last])


def _document(rng: random.Random, depth: int) -> Any:
    texts = ["", "[", "]{", '\\"[', "\\\\", 'a\\\\"}', "é[", "plain"]
    if depth == 0 or rng.random() < 0.3:
        return rng.choice([*texts, 1, 2.5, None, True])
    if rng.random() < 0.5:
        return [_document(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(texts) + str(n): _document(rng, depth - 1) for n in range(rng.randint(0, 3))}


def _nesting(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_nesting, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_nesting, value.values()), default=0)
    return 0


def test_the_depth_of_random_documents_cut_at_random_places_is_exact() -> None:
    rng = random.Random(16)
    for _ in range(500):
        document = _document(rng, rng.randint(1, 7))
        text = json.dumps(document, ensure_ascii=rng.random() < 0.5).encode()
        deepest = _nesting(document)
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, 6))))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        exact = JsonDepth(max_depth=deepest)
        _feed(exact, chunks)
        assert exact.depth == 0, text
        if deepest:
            with pytest.raises(ValueError, match="nested deeper"):
                _feed(JsonDepth(max_depth=deepest - 1), chunks)


def _feed(depth: JsonDepth, chunks: list[bytes]) -> None:
    for chunk in chunks:
        depth.feed(chunk)

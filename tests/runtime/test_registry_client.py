"""The registry client checks what it fetches by hash and reports errors clearly."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from services.runtime import (
    FailureClassifier,
    IntegrityError,
    RegistryClient,
    RegistryError,
    RegistryNotFound,
    RegistryUnavailable,
)
from tests.factories import MODEL, make_deployment, make_version_record

ARTIFACT = b"model bytes"
DATASET = b"mean radius,diagnosis\n14.2,benign\n"
ARTIFACT_SHA = hashlib.sha256(ARTIFACT).hexdigest()
DATASET_DIGEST = "sha256:" + hashlib.sha256(DATASET).hexdigest()


def registry(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == f"/models/{MODEL}/versions/2":
        return httpx.Response(200, content=make_version_record().model_dump_json())
    if path == f"/models/{MODEL}/deployment":
        return httpx.Response(200, content=make_deployment().model_dump_json())
    if path == "/deployments":
        return httpx.Response(200, json={MODEL: make_deployment().model_dump(mode="json")})
    if path == f"/artifacts/{ARTIFACT_SHA}":
        return httpx.Response(200, content=ARTIFACT)
    if path == f"/artifacts/{'0' * 64}":
        return httpx.Response(200, content=b"tampered")
    if path == f"/datasets/{DATASET_DIGEST}":
        return httpx.Response(200, content=DATASET)
    return httpx.Response(404, json={"detail": "not found"})


@pytest.fixture
async def client() -> RegistryClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(registry))
    return RegistryClient(http, "http://registry/")


async def test_reads_versions_deployments_and_verified_content(client: RegistryClient) -> None:
    assert await client.version(MODEL, 2) == make_version_record()
    assert await client.deployment(MODEL) == make_deployment()
    assert await client.deployment("never-deployed") is None
    assert await client.deployments() == {MODEL: make_deployment()}
    assert await client.artifact(ARTIFACT_SHA) == ARTIFACT
    assert await client.dataset(DATASET_DIGEST) == DATASET


async def test_content_with_the_wrong_hash_is_refused(client: RegistryClient) -> None:
    with pytest.raises(IntegrityError, match="arrived with SHA-256"):
        await client.artifact("0" * 64)


async def test_errors_name_the_request(client: RegistryClient) -> None:
    with pytest.raises(RegistryNotFound, match=r"nothing at GET /models/breast-cancer/versions/9"):
        await client.version(MODEL, 9)


async def test_a_missing_version_is_a_registry_error_of_its_own_kind(
    client: RegistryClient,
) -> None:
    with pytest.raises(RegistryError) as raised:
        await client.dataset("sha256:" + "0" * 64)
    assert isinstance(raised.value, RegistryNotFound)


async def test_an_unreachable_registry_is_a_registry_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    client = RegistryClient(httpx.AsyncClient(transport=httpx.MockTransport(refuse)), "http://r")
    with pytest.raises(RegistryError, match="unreachable"):
        await client.deployments()


async def test_registry_errors_carry_the_status_or_none_when_unreachable(
    client: RegistryClient,
) -> None:
    with pytest.raises(RegistryError) as missing:
        await client.version(MODEL, 9)
    assert missing.value.status_code == 404

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    down = RegistryClient(httpx.AsyncClient(transport=httpx.MockTransport(refuse)), "http://r")
    with pytest.raises(RegistryError) as unreachable:
        await down.version(MODEL, 1)
    assert unreachable.value.status_code is None


async def test_a_token_goes_with_every_request_and_a_refusal_names_its_status() -> None:
    seen: list[str | None] = []

    def guarded(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != "Bearer svc-token":
            return httpx.Response(401, json={"detail": "missing bearer token"})
        return registry(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(guarded)) as http:
        assert (
            await RegistryClient(http, "http://registry", token="svc-token").dataset(DATASET_DIGEST)
            == DATASET
        )
        with pytest.raises(RegistryError) as refused:
            await RegistryClient(http, "http://registry").dataset(DATASET_DIGEST)
    assert refused.value.status_code == 401
    assert seen == ["Bearer svc-token", None]


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_a_registry_that_cannot_serve_now_is_a_transient_failure(status: int) -> None:
    """A consumer holds the event and retries it: a registry restarting, overloaded or cut off
    from its identity provider must not get live events dead-lettered (found by the chaos run)."""

    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"detail": "identity provider unreachable"})

    client = RegistryClient(httpx.AsyncClient(transport=httpx.MockTransport(busy)), "http://r")
    with pytest.raises(RegistryUnavailable, match=f"answered {status}") as raised:
        await client.dataset(DATASET_DIGEST)
    assert FailureClassifier().is_transient(raised.value)


async def test_an_unreachable_registry_is_transient_and_a_refusal_is_not() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def forbidden(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"detail": "scope datasets:read needed"})

    down = RegistryClient(httpx.AsyncClient(transport=httpx.MockTransport(refused)), "http://r")
    with pytest.raises(RegistryUnavailable, match="unreachable") as unreachable:
        await down.version(MODEL, 2)
    assert FailureClassifier().is_transient(unreachable.value)

    wrong = RegistryClient(httpx.AsyncClient(transport=httpx.MockTransport(forbidden)), "http://r")
    with pytest.raises(RegistryError, match="answered 403") as refusal:
        await wrong.version(MODEL, 2)
    assert not isinstance(refusal.value, RegistryUnavailable)
    assert not FailureClassifier().is_transient(refusal.value)

"""``POST /labels`` and ``vigil labels send``: the scorer served by uvicorn on loopback, on the real
broker, with an identity provider double that knows people and services' scoped tokens. Labels
land on ``labels`` as ``label.recorded`` events; a retry counts once (same event ids); every
hostile request is refused with a clear 4xx and changes nothing; the scorer keeps answering."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from typer.testing import CliRunner

from contracts import LabelRecorded, Topic, ValueRecorded
from contracts.envelope import Envelope
from contracts.scoring_api import Label
from contracts.wire import decode
from services.runtime import KafkaSettings, Publisher
from services.runtime.identity import IdentityProvider
from services.scorer.app import create_app
from services.scorer.cli import app as labels_cli
from services.scorer.cli import read_labels
from services.scorer.labels import install_labels_api, label_event_id, recorded_labels
from services.scorer.service import ScoringService
from services.scorer.settings import Settings
from tests.http_tools import serving
from tests.kafka_tools import read_until, read_until_quiet
from tests.registry_tools import one_version_deployed

MODEL = "breast-cancer"
CAP = 256 * 1024

IDENTITIES: dict[str, dict[str, Any]] = {
    "token-ana": {"name": "ana", "role": "l2"},
    "token-lee": {"name": "lee", "role": "l1"},
    "token-labeller": {"name": "labeller", "role": None, "scopes": ["labels:write"]},
    "token-drift": {"name": "drift-detector", "role": None, "scopes": ["datasets:read"]},
}


def identity_provider() -> httpx.MockTransport:
    """The incident log's ``/whoami`` for :data:`IDENTITIES` (401 for any other token)."""

    def answer(request: httpx.Request) -> httpx.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if request.url.path != "/whoami" or token not in IDENTITIES:
            return httpx.Response(401, json={"detail": "unknown, revoked or expired token"})
        return httpx.Response(200, json=IDENTITIES[token])

    return httpx.MockTransport(answer)


@contextlib.asynccontextmanager
async def labels_route(service: ScoringService, broker: Publisher) -> AsyncIterator[str]:
    """``POST /labels`` alone, bound to ``service`` and ``broker`` with :data:`IDENTITIES` as the
    identity provider, served on loopback; yields its URL."""
    app = FastAPI()
    async with httpx.AsyncClient(transport=identity_provider()) as identity_http:
        install_labels_api(
            app,
            service,
            broker,
            IdentityProvider(identity_http, "http://identity"),
            clock=lambda: datetime.now(UTC),
        )
        async with serving(app) as url:
            yield url


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def label(request_id: str, value: Any = "benign", **more: Any) -> dict[str, Any]:
    return {"model": MODEL, "request_id": request_id, "label": value, **more}


# --- pure ------------------------------------------------------------------------------------


def test_a_label_sent_again_has_the_same_event_id_and_a_corrected_one_another() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    first = Label(model=MODEL, request_id="r-1", label="benign")
    again = Label(model=MODEL, request_id="r-1", label="benign", occurred_at=now)
    corrected = Label(model=MODEL, request_id="r-1", label="malignant")
    other_model = Label(model="other", request_id="r-1", label="benign")
    ids = {label_event_id(x) for x in (first, again, corrected, other_model)}
    assert len(ids) == 3
    assert label_event_id(first) == label_event_id(again)


def test_recorded_labels_are_the_events_a_kafka_client_would_write() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    earlier = now - timedelta(hours=3)
    events = recorded_labels(
        [
            Label(model=MODEL, request_id="r-1", label="benign"),
            Label(
                model=MODEL, request_id="r-2", label=1, occurred_at=earlier
            ),  # clients send numbers
        ],
        producer="ana",
        now=now,
    )
    assert all(isinstance(e, LabelRecorded) and e.model == MODEL for e in events)
    assert [
        (e.request_id, e.label, e.occurred_at, e.producer)
        for e in events
        if isinstance(e, LabelRecorded)
    ] == [
        ("r-1", "benign", now, "ana"),
        ("r-2", "1", earlier, "ana"),
    ]


def test_a_number_is_published_as_the_value_of_a_regression_request() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    (event,) = recorded_labels(
        [Label(model=MODEL, request_id="r-1", value=142.5)], producer="job", now=now
    )
    assert isinstance(event, ValueRecorded)
    assert (event.type, event.value, event.request_id) == ("value.recorded", 142.5, "r-1")


@pytest.mark.parametrize(
    "fields",
    [{}, {"label": "benign", "value": 1.0}, {"value": float("nan")}, {"value": "many"}],
    ids=["neither", "both", "nan", "not-a-number"],
)
def test_a_label_gives_exactly_one_finite_truth(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Label.model_validate({"model": MODEL, "request_id": "r-1", **fields})


def test_read_labels_from_csv_and_json_lines(tmp_path: Path) -> None:
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("request_id,label\nr-1,benign\nr-2,malignant\n")
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text(
        '{"model": "other", "request_id": "r-3", "label": 1}\n\n'
        '{"request_id": "r-4", "label": "benign", "occurred_at": "2026-12-01T00:00:00Z"}\n'
    )
    from_csv = read_labels(csv_file, model=MODEL)
    assert [(x.model, x.request_id, x.label) for x in from_csv] == [
        (MODEL, "r-1", "benign"),
        (MODEL, "r-2", "malignant"),
    ]
    from_jsonl = read_labels(jsonl, model=MODEL)
    assert [(x.model, x.label) for x in from_jsonl] == [("other", "1"), (MODEL, "benign")]
    assert from_jsonl[1].occurred_at == datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("content", "suffix", "names"),
    [
        ("request_id,label\nr-1,\n", ".csv", "label"),
        ("request_id,label\nr-1,benign,extra\n", ".csv", "more values"),
        ('{"request_id": "r-1", "label": [1]}\n', ".jsonl", "label"),
        ("[1, 2]\n", ".jsonl", "not a JSON object"),
        ('{"request_id": "r-1", "label": "x", "surprise": 1}\n', ".jsonl", "surprise"),
    ],
)
def test_a_label_file_that_cannot_be_read_names_its_line(
    tmp_path: Path, content: str, suffix: str, names: str
) -> None:
    path = tmp_path / f"labels{suffix}"
    path.write_text(content)
    result = CliRunner().invoke(labels_cli, ["send", str(path), "--model", MODEL])
    assert result.exit_code == 2
    assert names in result.output


# --- served for real -------------------------------------------------------------------------


@pytest.fixture
async def scorer(tmp_path: Path, kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    """The scorer on the real broker, serving v1 of the model; its URL."""
    registry_db = f"sqlite:///{tmp_path / 'registry.db'}"
    async with one_version_deployed(registry_db, MODEL) as (_, registry_http):
        settings = Settings(
            kafka=kafka_settings,
            registry_url="http://registry",
            incident_log_url="http://identity",
            http_max_body_bytes=CAP,
        )
        app = create_app(
            settings, registry_http=registry_http, identity_transport=identity_provider()
        )
        async with serving(app, lifespan="on") as url:
            yield url


def labels_of(records: Iterable[Any]) -> list[LabelRecorded]:
    events = [decode(Topic.LABELS, record.value) for record in records]
    return [event for event in events if isinstance(event, LabelRecorded)]


async def scored_ids(client: httpx.AsyncClient, count: int) -> list[str]:
    """Score ``count`` instances over HTTP; the request ids the scorer issued."""
    body = {
        "model": MODEL,
        "instances": [
            {"request_id": f"mine-{n}", "features": {"mean radius": 14.0 + n, "mean texture": 19}}
            for n in range(count)
        ],
    }
    response = await client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    return [p["request_id"] for p in response.json()["predictions"]]


@pytest.mark.integration
async def test_labels_land_on_the_topic_and_a_retry_counts_once(
    scorer: str, kafka_settings: KafkaSettings
) -> None:
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as client:
        ids = await scored_ids(client, 3)
        body = {"labels": [label(ids[0]), label(ids[1], "malignant"), label(ids[2], 1)]}
        first = await client.post("/labels", json=body, headers=as_("token-ana"))
        assert first.status_code == 200, first.text
        assert first.json()["published"] == 3
        retry = await client.post("/labels", json=body, headers=as_("token-labeller"))
        assert retry.status_code == 200, retry.text
        assert retry.json()["event_ids"] == first.json()["event_ids"]

    found = labels_of(
        await read_until(kafka_settings, Topic.LABELS, lambda r: len(labels_of(r)) >= 6)
    )
    assert [(e.request_id, e.label) for e in found[:3]] == [
        (ids[0], "benign"),
        (ids[1], "malignant"),
        (ids[2], "1"),
    ]
    assert [str(e.event_id) for e in found[:3]] == first.json()["event_ids"]
    assert {e.event_id for e in found} == {e.event_id for e in found[:3]}  # consumers take once
    assert [e.producer for e in found] == ["ana"] * 3 + ["labeller"] * 3


async def healthy(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ids = await scored_ids(client, 1)
    good = await client.post("/labels", json={"labels": [label(ids[0])]}, headers=as_("token-ana"))
    assert good.status_code == 200, good.text


@pytest.mark.integration
async def test_labels_need_a_token_that_may_send_them(scorer: str) -> None:
    body = {"labels": [label("r-1")]}
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as client:
        missing = await client.post("/labels", json=body)
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        unknown = await client.post("/labels", json=body, headers=as_("token-nobody"))
        assert unknown.status_code == 401
        not_ascii = await client.post(
            "/labels", json=body, headers={b"Authorization": "Bearer tøken".encode()}
        )
        assert not_ascii.status_code == 401
        low_role = await client.post("/labels", json=body, headers=as_("token-lee"))
        assert low_role.status_code == 403
        assert "needs role l2 or higher, or scope labels:write" in low_role.json()["detail"]
        other_scope = await client.post("/labels", json=body, headers=as_("token-drift"))
        assert other_scope.status_code == 403
        assert "datasets:read" in other_scope.json()["detail"]
        await healthy(client)


HOSTILE_BODIES = [
    pytest.param(
        '{"labels": [{"model": "breast-cancer", "request_id": "r", "label": NaN}]}', id="nan"
    ),
    pytest.param(
        '{"labels": [{"model": "breast-cancer", "request_id": "r", "label": Infinity}]}', id="inf"
    ),
    pytest.param(
        '{"labels": [{"model": "breast-cancer", "request_id": "r", "label": 1e999}]}', id="1e999"
    ),
    pytest.param(
        '{"labels": [{"model": "breast-cancer", "request_id": "r", "label": 0.5}]}', id="float"
    ),
    pytest.param(
        '{"labels": [{"model": "breast-cancer", "request_id": "r", "label": ["a"]}]}', id="list"
    ),
    pytest.param(
        '{"labels": [{"model": "breast-cancer", "request_id": 7, "label": "a"}]}', id="id-int"
    ),
    pytest.param(
        '{"labels": [{"model": "breast-cancer", "request_id": "", "label": "a"}]}', id="id-empty"
    ),
    pytest.param(
        '{"labels": [{"model": "Not A Name", "request_id": "r", "label": "a"}]}', id="model"
    ),
    pytest.param('{"labels": [{"model": "breast-cancer", "request_id": "r"}]}', id="no-label"),
    pytest.param(
        '{"labels": [{"model": "breast-cancer", "request_id": "r", "label": "a", "x": 1}]}',
        id="unknown-field",
    ),
    pytest.param(
        '{"labels": [{"model": "breast-cancer", "request_id": "r", "label": "a", '
        '"occurred_at": "2026-12-01T00:00:00"}]}',
        id="naive-time",
    ),
    pytest.param(
        '{"labels": [{"model": "breast-cancer", "request_id": "r", "label": "a", '
        '"occurred_at": "2999-01-01T00:00:00Z"}]}',
        id="future",
    ),
    pytest.param('{"labels": []}', id="empty"),
    pytest.param('[{"model": "breast-cancer", "request_id": "r", "label": "a"}]', id="bare-list"),
    pytest.param('{"labels": "everything"}', id="labels-string"),
]


@pytest.mark.integration
@pytest.mark.parametrize("body", HOSTILE_BODIES)
async def test_malformed_labels_are_refused_and_nothing_is_published(
    scorer: str, kafka_settings: KafkaSettings, body: str
) -> None:
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as client:
        response = await client.post(
            "/labels",
            content=body,
            headers={**as_("token-ana"), "Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"]
    assert labels_of(await read_until_quiet(kafka_settings, Topic.LABELS, quiet_s=1.0)) == []


@pytest.mark.integration
async def test_too_many_labels_a_huge_body_and_an_unknown_model_are_refused(
    scorer: str, kafka_settings: KafkaSettings
) -> None:
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as client:
        too_many = {"labels": [label(f"r-{n}") for n in range(1001)]}
        small = await client.post("/labels", json=too_many, headers=as_("token-ana"))
        assert small.status_code == 422, small.text
        huge = await client.post(
            "/labels", json={"labels": [label("r" * 200, "x" * CAP)]}, headers=as_("token-ana")
        )
        assert huge.status_code == 413
        unknown = await client.post(
            "/labels",
            json={"labels": [label("r-1"), {**label("r-2"), "model": "nobody"}]},
            headers=as_("token-ana"),
        )
        assert unknown.status_code == 404
        assert "'nobody'" in unknown.json()["detail"]
        assert labels_of(await read_until_quiet(kafka_settings, Topic.LABELS, quiet_s=1.0)) == []
        await healthy(client)


@pytest.mark.integration
async def test_vigil_labels_send_posts_a_csv_in_batches(
    scorer: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as client:
        ids = await scored_ids(client, 2)
    rows = [f"{request_id},benign" for request_id in ids] + [
        f"r-{n},malignant" for n in range(1500)
    ]
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label\n" + "\n".join(rows) + "\n")
    result = await asyncio.to_thread(
        CliRunner().invoke,
        labels_cli,
        ["send", str(path), "--model", MODEL, "--url", scorer, "--token", "token-labeller"],
    )
    assert result.exit_code == 0, result.output
    assert "sent 1502 label(s)" in result.output
    found = labels_of(
        await read_until(kafka_settings, Topic.LABELS, lambda r: len(labels_of(r)) >= 1502)
    )
    assert [e.request_id for e in found[:2]] == ids
    assert len({e.event_id for e in found}) == 1502


@pytest.mark.integration
async def test_vigil_labels_send_reports_a_refusal(scorer: str, tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label\nr-1,benign\n")
    result = await asyncio.to_thread(
        CliRunner().invoke,
        labels_cli,
        ["send", str(path), "--model", MODEL, "--url", scorer, "--token", "token-lee"],
    )
    assert result.exit_code == 3
    assert "403" in result.output


# --- the broker refusing ---------------------------------------------------------------------


class BrokerDown:
    """A publisher whose broker does not acknowledge, until it is back."""

    def __init__(self) -> None:
        self.down = True
        self.published: list[Envelope] = []

    async def publish(self, event: Envelope) -> None:
        await self.publish_many([event])

    async def publish_many(self, events: Iterable[Envelope]) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.published.extend(events)


async def test_labels_the_broker_did_not_acknowledge_answer_503_and_a_retry_publishes_them(
    tmp_path: Path,
) -> None:
    from services.runtime import RegistryClient
    from services.scorer.service import ScoringService

    registry_db = f"sqlite:///{tmp_path / 'registry.db'}"
    async with one_version_deployed(registry_db, MODEL) as (_, registry_http):
        broker = BrokerDown()
        service = ScoringService(
            registry=RegistryClient(registry_http, "http://registry"), publisher=broker
        )
        body = {"labels": [label("r-1"), label("r-2")]}
        async with (
            labels_route(service, broker) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            refused = await client.post("/labels", json=body, headers=as_("token-ana"))
            assert refused.status_code == 503
            assert "send again" in refused.json()["detail"]
            assert broker.published == []
            broker.down = False
            accepted = await client.post("/labels", json=body, headers=as_("token-ana"))
            assert accepted.status_code == 200
        assert [str(e.event_id) for e in broker.published] == accepted.json()["event_ids"]


async def test_labels_for_a_model_the_registry_cannot_be_asked_about_answer_503_not_404() -> None:
    """A scorer that has not learned a model yet, with the registry answering 503, must not say
    "not served here" (a labelling job would drop the labels for good): 503, then a retry once
    the registry is back asks it again and publishes."""
    from services.runtime import RegistryClient
    from services.scorer.service import ScoringService

    registry_up = False

    def registry_answers(request: httpx.Request) -> httpx.Response:
        if not registry_up:
            return httpx.Response(503, json={"detail": "identity provider unreachable"})
        return httpx.Response(404, json={"detail": "never deployed"})

    broker = BrokerDown()
    broker.down = False
    service = ScoringService(
        registry=RegistryClient(
            httpx.AsyncClient(transport=httpx.MockTransport(registry_answers)), "http://r"
        ),
        publisher=broker,
    )
    body = {"labels": [label("r-1")]}
    async with (
        labels_route(service, broker) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        down = await client.post("/labels", json=body, headers=as_("token-ana"))
        assert down.status_code == 503, down.text
        assert "registry answered 503" in down.json()["detail"]
        registry_up = True  # asked again at once, not after the recheck interval
        unknown = await client.post("/labels", json=body, headers=as_("token-ana"))
        assert unknown.status_code == 404, unknown.text
    assert broker.published == []

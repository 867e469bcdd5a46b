"""Hostile input against the real incident log (a process, real broker, loopback HTTP): NaN and
infinities, numbers out of range, wrong types, a non-ASCII token, bodies over the cap, deep JSON,
a file sent to the console's sign-in. Every one is refused with a 4xx, nothing is stored, and the
service keeps answering good requests."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import AlertKind, MessageDeadLettered, Topic, alert_fingerprint
from contracts.wire import decode
from services.runtime import KafkaSettings, ServiceName
from tests.factories import MODEL, make_alert
from tests.http_tools import raw_exchange, request_head
from tests.kafka_tools import own_namespace, read_until, write_raw
from tests.polling import eventually
from tests.processes import ServiceProcess, kafka_env, write_routing_policy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = "hostile-input-admin"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
CAP = 64 * 1024
APPROVAL_CATALOG = (
    Path(__file__).resolve().parents[1] / "runbook_runner" / "scripts" / "catalog.yaml"
)
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e309"]
NON_FINITE_TEXT = ['"nan"', '"inf"', '"-Infinity"']


class Service:
    def __init__(self, url: str, kafka: KafkaSettings, incident_id: str) -> None:
        self.url = url
        self.kafka = kafka
        self.incident_id = incident_id
        self.http = httpx.AsyncClient(base_url=url, headers=AS_ADMIN, timeout=10)

    async def post_text(self, path: str, text: str) -> httpx.Response:
        """POST a JSON text as is (``json=`` would refuse NaN before sending it)."""
        return await self.http.post(
            path, content=text, headers={"Content-Type": "application/json"}
        )

    async def still_healthy(self) -> None:
        assert (await self.http.get("/healthz")).status_code == 200
        good = await self.http.post(
            "/silences",
            json={"matcher": {"models": ["other"]}, "duration_minutes": 5, "reason": "ok"},
        )
        assert good.status_code == 201, good.text


async def incidents(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get("/incidents", params={"limit": 1000})
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


@pytest.fixture(scope="module")
async def service(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    """The incident log with a body cap of 64 KiB and one open incident."""
    folder = tmp_path_factory.mktemp("hostile-incident-log")
    kafka = await own_namespace(kafka_bootstrap, "hi")
    process = ServiceProcess(
        ServiceName.INCIDENT_LOG,
        env=kafka_env(kafka)
        | {
            "VIGIL_STATE_DIR": str(folder / "state"),
            "VIGIL_INCIDENT_LOG_POLICY_PATH": str(
                write_routing_policy(Path(folder), group_wait_seconds=0)
            ),
            "VIGIL_INCIDENT_LOG_ADMIN_TOKEN": ADMIN,
            "VIGIL_INCIDENT_LOG_HTTP_MAX_BODY_BYTES": str(CAP),
            "VIGIL_INCIDENT_LOG_CATALOG_PATH": str(APPROVAL_CATALOG),
            # Nothing listens there: the console's charts must do without the monitor.
            "VIGIL_MONITOR_URL": "http://127.0.0.1:9",
        },
        log_dir=folder,
    )
    process.start()
    try:
        await process.wait_ready()
        await write_raw(kafka, Topic.ALERTS, [make_alert().model_dump_json().encode()])
        async with httpx.AsyncClient(base_url=process.url, headers=AS_ADMIN) as http:
            await eventually(lambda: _any(http), every_s=0.1)
            incident_id = str((await incidents(http))[0]["id"])
        running = Service(process.url, kafka, incident_id)
        yield running
        await running.http.aclose()
    finally:
        process.ensure_dead()


async def _any(http: httpx.AsyncClient) -> bool:
    return bool(await incidents(http))


def silence(duration: str, **fields: str) -> str:
    extra = "".join(f', "{name}": {value}' for name, value in fields.items())
    return f'{{"matcher": {{}}, "duration_minutes": {duration}, "reason": "r"{extra}}}'


@pytest.mark.parametrize("number", NON_FINITE + NON_FINITE_TEXT)
async def test_a_silence_refuses_nan_and_infinite_durations(service: Service, number: str) -> None:
    before = len((await service.http.get("/silences")).json())
    response = await service.post_text("/silences", silence(number))
    assert response.status_code == 422, response.text
    assert len((await service.http.get("/silences")).json()) == before
    await service.still_healthy()


@pytest.mark.parametrize("number", NON_FINITE)
async def test_runbook_parameters_and_reports_refuse_nan_and_infinities(
    service: Service, number: str
) -> None:
    incident = f"/incidents/{service.incident_id}"
    timeline = len((await service.http.get(f"{incident}/timeline")).json())
    run = await service.post_text(
        f"{incident}/runbooks",
        f'{{"runbook": "typed", "reason": "r", "parameters": {{"threshold": {number}, '
        '"ticket": "OPS-1"}}',
    )
    assert run.status_code == 422, run.text
    report = await service.post_text(
        f"{incident}/reports",
        f'{{"title": "diagnosis", "report": {{"figures": [0.5, {{"psi": {number}}}]}}}}',
    )
    assert report.status_code == 422, report.text
    assert "finite" in report.text or "NaN" in report.text
    assert len((await service.http.get(f"{incident}/timeline")).json()) == timeline
    good = await service.http.post(
        f"{incident}/runbooks",
        json={
            "runbook": "typed",
            "reason": "r",
            "parameters": {"threshold": 0.5, "ticket": "OPS-1"},
        },
    )
    assert good.status_code == 202, good.text
    await service.still_healthy()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (silence("1e300"), "overflows a timedelta"),
        (silence("600000"), "longer than a year"),
        (silence("10", starts_at='"9999-12-31T23:59:00Z"'), "ends after year 9999"),
        (silence("0"), "not positive"),
        (silence('"soon"'), "not a number"),
        (silence("[5]"), "a list"),
        (silence("true", ends_at='"2030-01-01T00:00:00Z"'), "both ends"),
    ],
)
async def test_a_silence_refuses_durations_out_of_range_and_of_the_wrong_type(
    service: Service, body: str, why: str
) -> None:
    response = await service.post_text("/silences", body)
    assert response.status_code == 422, (why, response.text)
    await service.still_healthy()


async def test_paging_past_the_documented_range_is_refused(service: Service) -> None:
    for params in ({"offset": 10**20}, {"offset": 1_000_001}, {"limit": 10**20}):
        response = await service.http.get("/incidents", params=params)
        assert response.status_code == 422, (params, response.text)
    assert (await service.http.get("/incidents", params={"offset": 1_000_000})).json() == []
    await service.still_healthy()


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
async def test_a_non_ascii_token_is_unknown(service: Service, encoding: str) -> None:
    token = "Bearer tökén".encode(encoding)
    for method, path in (("GET", "/whoami"), ("GET", "/incidents")):
        status, body = await raw_exchange(
            service.url, request_head(method, path, {"Authorization": token})
        )
        assert status == 401, body
    cookie = "vigil_token=tökén".encode(encoding)
    status, _ = await raw_exchange(
        service.url, request_head("GET", "/console/", {"Cookie": cookie})
    )
    assert status in (302, 303, 307)  # to the sign-in page, as for any unknown token
    await service.still_healthy()


async def test_a_body_over_the_cap_is_refused_and_a_declared_one_is_not_even_read(
    service: Service,
) -> None:
    comment = f"/incidents/{service.incident_id}/comment"
    big = await service.http.post(comment, json={"text": "x" * CAP})
    assert big.status_code == 413, big.text
    head = request_head(
        "POST", comment, {"Content-Type": "application/json", "Content-Length": str(10 * 1024**3)}
    )
    status, body = await raw_exchange(service.url, head + b'{"text": "', timeout_s=5)
    assert status == 413
    assert json.loads(body)["detail"] == f"request body larger than {CAP} bytes"
    await service.still_healthy()


async def test_json_nested_too_deep_is_refused(service: Service) -> None:
    deep = '{"matcher": ' + "[" * 3000 + "]" * 3000 + ', "duration_minutes": 5, "reason": "r"}'
    response = await service.post_text("/silences", deep)
    assert response.status_code == 422
    assert "nested deeper than" in response.text
    await service.still_healthy()


async def test_the_console_sign_in_takes_no_file_and_no_foreign_token(service: Service) -> None:
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as browser:
        form = (await browser.get("/console/login")).text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        with_file = await browser.post(
            "/console/login",
            data={"token": ADMIN, "csrf": csrf},
            files={"upload": ("big.bin", b"x" * (CAP // 2))},
        )
        assert with_file.status_code == 400, with_file.text
        assert "vigil_token" not in with_file.cookies
        foreign = await browser.post(
            "/console/login",
            content=f"token=t%C3%B6k%C3%A9n&csrf={csrf}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert foreign.status_code == 303
        assert "error=" in foreign.headers["location"]
        missing = await browser.post("/console/login", data={"other": "x", "csrf": csrf})
        assert missing.status_code == 422
        signed_in = await browser.post("/console/login", data={"token": ADMIN, "csrf": csrf})
        assert signed_in.status_code == 303
        assert signed_in.headers["location"].endswith("/console/")
        foreign_form = await browser.post("/console/logout", data={"csrf": "tökén"})
        assert foreign_form.status_code == 403, foreign_form.text
        assert (await browser.get("/console/")).status_code == 200  # still signed in
    await service.still_healthy()


@pytest.mark.timeout(180)
async def test_chart_pages_take_hostile_model_names_and_do_without_the_monitor(
    service: Service,
) -> None:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as browser:
        form = (await browser.get("/console/login")).text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        await browser.post("/console/login", data={"token": ADMIN, "csrf": csrf})
        page = await browser.get(f"/console/incidents/{service.incident_id}")
        assert page.status_code == 200, page.text
        assert "evidence (JSON)" in page.text  # the raw evidence, with or without a chart
        models = await browser.get("/console/models")
        assert models.status_code == 200, models.text
        for name in ("nobody", "..%2F..%2Fstatus", "%00", "x" * 5000, "t%C3%B6k%C3%A9n"):
            answer = await browser.get(f"/console/models/{name}")
            assert answer.status_code in (200, 404), (name, answer.status_code)
        markup = await browser.get("/console/models/%3Cb%3Ebold")
        assert markup.status_code == 200
        assert "<b>bold" not in markup.text
        assert "&lt;b&gt;bold" in markup.text
    await service.still_healthy()


async def test_an_alert_with_nan_evidence_on_kafka_is_dead_lettered_and_the_next_is_handled(
    service: Service,
) -> None:
    fingerprint = alert_fingerprint(MODEL, 3, AlertKind.METRIC_DECAY, "hostile")
    bad_alert = make_alert(fingerprint=fingerprint)
    bad = bad_alert.model_dump_json().replace('"recall":0.81', '"recall":NaN')
    assert "NaN" in bad
    good_fingerprint = alert_fingerprint(MODEL, 3, AlertKind.METRIC_DECAY, "after-hostile")
    good = make_alert(fingerprint=good_fingerprint).model_dump_json()
    await write_raw(service.kafka, Topic.ALERTS, [bad.encode(), good.encode()])

    def letters(records: list[Any]) -> list[MessageDeadLettered]:
        found = [decode(Topic.DEAD_LETTER, record.value) for record in records]
        return [
            letter
            for letter in found
            if isinstance(letter, MessageDeadLettered)
            and str(bad_alert.event_id) in base64.b64decode(letter.original_value_b64).decode()
        ]

    records = await read_until(service.kafka, Topic.DEAD_LETTER, lambda rs: bool(letters(rs)))
    (letter,) = letters(records)
    assert letter.reason == "invalid"
    assert "evidence.recall" in letter.error
    assert "NaN and infinite numbers are not allowed" in letter.error

    async def received() -> set[str]:
        response = await service.http.get("/alerts", params={"limit": 1000})
        return {alert["fingerprint"] for alert in response.json()}

    async def good_one_handled() -> bool:
        return good_fingerprint in await received()

    await eventually(good_one_handled, every_s=0.1)
    assert fingerprint not in await received()
    await service.still_healthy()


async def test_hostile_decisions_on_held_runs_are_refused_and_nothing_changes(
    service: Service,
) -> None:
    held = await service.http.post(
        f"/incidents/{service.incident_id}/runbooks",
        json={"runbook": "needs-approval", "reason": "hostile test"},
    )
    assert held.status_code == 202, held.text
    run_id = held.json()["run_id"]
    approve = f"/incidents/{service.incident_id}/runbooks/{run_id}/approve"
    for body in [
        *(f'{{"reason": {value}}}' for value in NON_FINITE),
        '{"reason": 12}',
        '{"reason": ["a"]}',
        '{"reason": ""}',
        json.dumps({"reason": "x" * 2001}),
        "[" * 200 + "]" * 200,
    ]:
        response = await service.post_text(approve, body)
        assert 400 <= response.status_code < 500, (body[:40], response.status_code)
    too_big = await service.post_text(approve, json.dumps({"reason": "x" * (CAP + 1)}))
    assert too_big.status_code == 413
    unknown = await service.http.post(
        f"/incidents/{service.incident_id}/runbooks/{'r' * 5000}/approve"
    )
    assert unknown.status_code == 404
    listed = await service.http.get(f"/incidents/{service.incident_id}/approvals")
    assert [(r["run_id"], r["state"]) for r in listed.json()] == [(run_id, "pending")]
    await service.still_healthy()


@pytest.mark.timeout(180)
async def test_console_forms_refuse_odd_digits_with_a_message_not_a_500(service: Service) -> None:
    """``"²".isdigit()`` is true and ``int("9" * 5000)`` raises: both reached ``int()``."""
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as browser:
        form = (await browser.get("/console/login")).text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        await browser.post("/console/login", data={"token": ADMIN, "csrf": csrf})
        page = (await browser.get("/console/new-incident")).text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        review = f"/console/incidents/{service.incident_id}/review/action-items"
        for odd in ("²", "٣", "9" * 5000):
            opened = await browser.post(
                "/console/new-incident",
                data={
                    "csrf": csrf,
                    "model": "m",
                    "severity": "warning",
                    "summary": "odd version",
                    "model_version": odd,
                    "idempotency_key": f"odd-{len(odd)}-{ord(odd[0])}",
                },
            )
            assert opened.status_code == 303, (odd[:5], opened.status_code)
            assert "error=" in opened.headers["location"]
            saved = await browser.post(
                review, data={"csrf": csrf, "action_items": "x", "version": odd}
            )
            assert saved.status_code == 303, (odd[:5], saved.status_code)
            assert "error=" in saved.headers["location"]
    await service.still_healthy()

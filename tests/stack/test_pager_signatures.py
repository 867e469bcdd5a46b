"""The demo's page receiver, served on loopback, refuses a non-ASCII signature as a forgery (401)
instead of failing on the comparison (500), and still takes a genuine page afterwards."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from services.incident_log.paging.messages import sign
from services.stack.pager import SIGNATURE_HEADER, TIMESTAMP_HEADER, PageReceiver
from tests.http_tools import raw_exchange, request_head, serving

SECRET = "s" * 32


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
async def test_a_non_ascii_signature_is_a_forgery(encoding: str) -> None:
    receiver = PageReceiver(secrets={"oncall": SECRET})
    body = json.dumps({"incident": "inc-1"}).encode()
    now = int(time.time())
    async with serving(receiver.app()) as url:
        head = request_head(
            "POST",
            "/hooks/oncall",
            {
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
                TIMESTAMP_HEADER: str(now),
                SIGNATURE_HEADER: "v1=tökén".encode(encoding),
            },
        )
        status, answer = await raw_exchange(url, head + body)
        assert status == 401, answer
        assert receiver.refused == ["oncall"]
        async with httpx.AsyncClient(base_url=url) as client:
            genuine = await client.post(
                "/hooks/oncall",
                content=body,
                headers={
                    TIMESTAMP_HEADER: str(now),
                    SIGNATURE_HEADER: sign(SECRET, now, body),
                },
            )
        assert genuine.status_code == 200, genuine.text
        assert len(receiver.arrivals) == 1

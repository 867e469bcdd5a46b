"""The demo's approval prompt when no one can answer it."""

from __future__ import annotations

import io
import time

import httpx
import pytest
from rich.console import Console

from services.stack.demo import DemoFailed, Story, _approve


async def test_closed_input_stops_the_demo_with_the_way_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # e.g. `make run < /dev/null`
    story = Story(Console(file=io.StringIO()), time.monotonic())
    promotion = {"version": 2, "request_id": "pr-1", "requested_by": "ana"}
    async with httpx.AsyncClient() as unused:
        with pytest.raises(DemoFailed, match="--approve-as NAME"):
            await _approve(unused, unused, {}, promotion, None, story)

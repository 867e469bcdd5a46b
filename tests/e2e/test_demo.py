"""The main job: the demo's whole story with the services as processes on the embedded broker,
with the incident log killed halfway through — the supervisor restarts it and the story ends the
same, with its timeline in order, one incident, no runbook run twice and nothing dead-lettered."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from contracts import Topic
from services.runtime import KafkaProfile, KafkaSettings, ServiceName, free_port
from services.stack.demo import (
    DemoOptions,
    DemoOutcome,
    demo_stack,
    incident_page,
    play,
    summary,
)
from services.stack.stack import RunningStack
from services.stack.supervisor import ChildState
from tests.kafka_tools import read_until_quiet

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

STORY = [
    "opened",
    "routed",
    "runbook_requested",
    "runbook_started",
    "model_rolled_back",
    "runbook_finished",
    "escalated",
    "acknowledged",
    "acknowledged_from_page",
    "claimed",
    "report_attached",
    "retrain_requested",
    "retrain_started",
    "candidate_evaluated",
    "promotion_requested",
    "model_approved",
    "model_promoted",
    "status_monitoring",
    "resolved",
]


def options(tmp_path: Path, **extra: object) -> DemoOptions:
    return DemoOptions(
        state_dir=tmp_path / "demo",
        approve_as="kim",
        broker_port=free_port(),
        ports={name: free_port() for name in ServiceName},
        **extra,  # type: ignore[arg-type]
    )


async def run(options: DemoOptions) -> tuple[DemoOutcome, list[object], RunningStack]:
    console = Console(record=True, width=140)
    async with demo_stack(options, console) as stack:
        outcome = await play(stack, options, console)
        kafka = KafkaSettings(
            bootstrap_servers=stack.bootstrap_servers, profile=KafkaProfile.EMBEDDED
        )
        dead = await read_until_quiet(kafka, Topic.DEAD_LETTER, quiet_s=2.0)
        incidents = await read_until_quiet(kafka, Topic.INCIDENTS, quiet_s=1.0)
        console_url = f"{stack.url(ServiceName.INCIDENT_LOG)}/console/"
        summary(outcome, {"console": console_url}, console)
        page = await incident_page_html(console_url, outcome.incident_id, stack)
    assert_the_summary_points_at_the_charts(console.export_text(), console_url, outcome, page)
    return outcome, [dead, incidents], stack


async def incident_page_html(console_url: str, incident_id: str, stack: RunningStack) -> str:
    """The incident's console page as the administrator sees it after the story."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=60) as http:
        login = await http.get(f"{console_url}login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf is not None
        form = {"token": stack.credentials.admin_token, "csrf": csrf.group(1)}
        (await http.post(f"{console_url}login", data=form)).raise_for_status()
        response = await http.get(incident_page(console_url, incident_id))
        response.raise_for_status()
        return response.text


def assert_the_summary_points_at_the_charts(
    printed: str, console_url: str, outcome: DemoOutcome, page: str
) -> None:
    """The summary names the incident page, and that page draws the recall fall, the drifted
    features and the gate's (canary) decision."""
    assert incident_page(console_url, outcome.incident_id) in printed
    figures = {
        caption: body
        for body in re.findall(r"<figure .*?</figure>", page, flags=re.DOTALL)
        for caption in re.findall(r"<figcaption>(.*?)</figcaption>", body, flags=re.DOTALL)
    }
    recall = [c for c in figures if c.endswith(": recall") or "recall in the windows" in c]
    assert recall, list(figures)
    drifted = [c for c in figures if "drift" in c.lower()]
    assert drifted, list(figures)
    gate = [c for c in figures if c.startswith("gate: candidate")]
    assert gate, list(figures)
    assert "Decision: passed the gate" in figures[gate[-1]]


def assert_the_story_ends_well(outcome: DemoOutcome, dead: object, incidents: object) -> None:
    actions = [entry["action"] for entry in outcome.timeline]
    position = 0
    for step in STORY:
        assert step in actions[position:], f"{step!r} missing after {actions[:position]}"
        position = actions.index(step, position) + 1
    escalation = next(e for e in outcome.timeline if e["action"] == "escalated")
    assert escalation["details"]["trigger"] == "verification_failed"
    assert outcome.incident["status"] == "resolved"
    assert outcome.incident["resolved_tier"] == "L2"
    assert outcome.champion == 3
    assert outcome.versions == [1, 2, 3]
    delivered = {(p["person"], p["tier"], p["reason"]) for p in outcome.pages}
    assert {("olivia", "L1", "page"), ("dana", "L2", "page")} <= delivered
    assert ("olivia", "L2", "resolved") in delivered  # everyone paged hears of the resolution
    assert {p["status"] for p in outcome.pages} == {"delivered"}
    assert dead == []
    opened = {  # at least once: a kill between publishing and marking sent repeats an event id
        json.loads(r.value)["event_id"]
        for r in incidents  # type: ignore[attr-defined]
        if b'"incident.opened"' in r.value
    }
    assert len(opened) == 1
    rollbacks = [e for e in outcome.timeline if e["action"] == "runbook_started"]
    assert [e["details"]["runbook"] for e in rollbacks] == ["rollback-model", "drift-diagnosis"]


async def test_the_demo_tells_the_whole_story_even_when_a_service_is_killed_halfway(
    tmp_path: Path,
) -> None:
    killed: list[int] = []

    async def kill_the_incident_log(step: str, stack: RunningStack) -> None:
        if step == "incident-opened":
            pid = stack.supervisor.pid(ServiceName.INCIDENT_LOG)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            for _ in range(600):
                (status,) = [s for s in stack.supervisor.status() if s.name == "incident-log"]
                if status.restarts == 1 and status.state is ChildState.READY:
                    return
                await asyncio.sleep(0.1)
            raise AssertionError("the incident log was not restarted")

    outcome, (dead, incidents), stack = await run(options(tmp_path, on_step=kill_the_incident_log))
    assert killed
    (status,) = [s for s in stack.supervisor.status() if s.name == "incident-log"]
    assert status.restarts == 1
    assert_the_story_ends_well(outcome, dead, incidents)

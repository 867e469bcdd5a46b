"""The supervisor's readings (unready too long, crashing in a row), the heartbeat clock, and the
watch endpoint an outside monitor scrapes."""

from __future__ import annotations

import httpx
import pytest

from contracts.alerts import AlertKind
from services.stack.deadman import HeartbeatClock, HeartbeatReport, SwitchState
from services.stack.supervisor import ChildState, ChildStatus
from services.stack.watch_api import watch_app
from services.stack.watchdog import WatchdogPolicy, supervised_readings

POLICY = WatchdogPolicy(unready_after_s=30, restart_loop_crashes=3, stable_after_s=60)


def _row(**overrides: object) -> ChildStatus:
    values: dict[str, object] = {
        "name": "monitor",
        "pid": 42,
        "port": 8730,
        "state": ChildState.READY,
        "restarts": 0,
        "uptime_s": 100.0,
        "last_exit": None,
        "crashes_in_a_row": 0,
        "ready_s": 90.0,
        "unready_s": None,
    }
    return ChildStatus(**(values | overrides))  # type: ignore[arg-type]


def _bad(rows: list[ChildStatus]) -> dict[AlertKind, bool]:
    return {reading.kind: reading.bad for reading in supervised_readings(rows, POLICY)}


def test_a_ready_service_is_neither_unready_nor_looping() -> None:
    assert _bad([_row()]) == {AlertKind.SERVICE_UNREADY: False, AlertKind.RESTART_LOOP: False}


@pytest.mark.parametrize(
    ("state", "unready_s", "bad"),
    [
        (ChildState.UNREADY, 29.9, False),
        (ChildState.UNREADY, 30.0, True),
        (ChildState.STARTING, 45.0, True),
        (ChildState.RESTARTING, 31.0, True),
    ],
)
def test_unready_for_the_threshold_is_bad(state: ChildState, unready_s: float, bad: bool) -> None:
    readings = supervised_readings([_row(state=state, unready_s=unready_s)], POLICY)
    (unready,) = [r for r in readings if r.kind is AlertKind.SERVICE_UNREADY]
    assert unready.bad is bad
    assert unready.subject == "supervisor/monitor"
    assert unready.evidence["unready_s"] == round(unready_s, 1)


def test_crashes_in_a_row_are_a_loop_until_the_service_stays_up() -> None:
    looping = _row(
        state=ChildState.RESTARTING, crashes_in_a_row=3, uptime_s=None, ready_s=None, restarts=3
    )
    assert _bad([looping])[AlertKind.RESTART_LOOP] is True
    assert _bad([_row(crashes_in_a_row=2, state=ChildState.RESTARTING)])[
        AlertKind.RESTART_LOOP
    ] is (False)
    back_briefly = _row(state=ChildState.READY, crashes_in_a_row=3, uptime_s=70.0, ready_s=10.0)
    assert _bad([back_briefly])[AlertKind.RESTART_LOOP] is True
    settled = _row(state=ChildState.READY, crashes_in_a_row=3, ready_s=60.0)
    assert _bad([settled])[AlertKind.RESTART_LOOP] is False


def test_services_stopped_on_purpose_say_nothing() -> None:
    rows = [_row(state=ChildState.STOPPED, unready_s=None), _row(state=ChildState.STOPPING)]
    assert supervised_readings(rows, POLICY) == []


def test_the_heartbeat_clock_waits_beats_and_stops() -> None:
    clock = HeartbeatClock(timeout_s=10, started_at=100.0)
    assert clock.state(105.0) is SwitchState.WAITING
    assert clock.state(110.0) is SwitchState.STOPPED  # no first echo within the timeout
    clock.echoed(now=111.0, latency_s=0.2)
    assert clock.state(111.0) is SwitchState.BEATING
    assert clock.silent_for(120.9) == pytest.approx(9.9)
    assert clock.state(120.9) is SwitchState.BEATING
    assert clock.state(121.0) is SwitchState.STOPPED
    clock.echoed(now=130.0, latency_s=0.1)
    assert clock.state(130.0) is SwitchState.BEATING
    assert clock.last_latency_s == 0.1


async def test_the_watch_endpoint_answers_503_when_heartbeats_stopped() -> None:
    state = {"report": SwitchState.BEATING}

    def report() -> HeartbeatReport:
        return HeartbeatReport(
            state=state["report"],
            source="supervisor-1",
            silent_for_s=130.0 if state["report"] is SwitchState.STOPPED else 3.0,
            timeout_s=110.0,
            sent=5,
            echoed=3,
            last_latency_s=0.2,
        )

    rows = [_row(), _row(name="scorer", state=ChildState.UNREADY, unready_s=12.0, restarts=2)]
    app = watch_app(lambda: rows, report)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://watch"
    ) as http:
        beating = await http.get("/deadman")
        assert (beating.status_code, beating.json()["ok"]) == (200, True)
        state["report"] = SwitchState.STOPPED
        stopped = await http.get("/deadman")
        assert stopped.status_code == 503
        assert stopped.json()["summary"].startswith("DEAD MAN'S SWITCH")
        services = (await http.get("/services")).json()
        assert [(s["name"], s["state"]) for s in services] == [
            ("monitor", "ready"),
            ("scorer", "unready"),
        ]
        metrics = (await http.get("/metrics")).text
        assert "vigil_heartbeat_ok 0.0" in metrics
        assert 'vigil_service_ready{service="scorer"} 0.0' in metrics
        assert 'vigil_service_unready_seconds{service="scorer"} 12.0' in metrics
        assert (await http.post("/deadman")).status_code == 405
        assert (await http.get("/nope")).status_code == 404

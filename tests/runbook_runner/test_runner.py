"""The runner's use cases on a real database (SQLite file and PostgreSQL) with real scripts:
states, reported events, idempotency by run id, limits, and recovery after a crash."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from contracts import (
    EVENT_TYPES,
    Envelope,
    IncidentResolved,
    IncidentStatus,
    RunbookFinished,
    RunbookStarted,
    RunState,
    Tier,
)
from contracts.wire import encode
from services.runbook_runner.catalog import Catalog
from services.runbook_runner.execution import sha256_of
from services.runbook_runner.migrations import HISTORY
from services.runbook_runner.service import Limits, Runner
from services.runbook_runner.store import RunStore
from services.runbook_runner.tables import RunRow
from services.runtime import (
    OutboxMessage,
    Rejected,
    Sessions,
)
from services.runtime.migrations import SchemaHistory
from tests.factories import make_runbook_request
from tests.runbook_runner.support import SCRIPTS, wait_dead, wait_started


@pytest.fixture
def schema() -> SchemaHistory:
    return HISTORY


def make_runner(
    sessions: Sessions,
    catalog: Catalog,
    tmp_path: Path,
    *,
    instance: str = "runner-a",
    environment: dict[str, str] | None = None,
    **limits: Any,
) -> Runner:
    return Runner(
        sessions,
        catalog,
        Limits(
            instance=instance,
            work_dir=tmp_path / "work",
            python=sys.executable,
            kill_grace_s=1.0,
            poll_interval_s=0.2,
            **limits,
        ),
        environment=environment or {"PATH": os.environ.get("PATH", "")},
    )


@pytest.fixture
def runner(sessions: Sessions, catalog: Catalog, tmp_path: Path) -> Runner:
    return make_runner(sessions, catalog, tmp_path)


async def run_to_the_end(runner: Runner, **request: Any) -> None:
    await runner.accept(make_runbook_request(**request))
    await runner.start_waiting()
    await runner.wait_idle()


async def row_of(sessions: Sessions, run_id: str = "run-1") -> RunRow:
    async with sessions() as session:
        row = await session.get(RunRow, run_id)
    assert row is not None
    return row


async def published(sessions: Sessions) -> list[Envelope]:
    async with sessions() as session:
        rows = (await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
    return [EVENT_TYPES[row.event_type].model_validate_json(row.payload) for row in rows]


async def finished(sessions: Sessions, run_id: str = "run-1") -> RunbookFinished:
    (event,) = [
        e
        for e in await published(sessions)
        if isinstance(e, RunbookFinished) and e.run_id == run_id
    ]
    return event


async def test_a_passing_runbook_is_verified_and_reported_with_its_script_hash(
    runner: Runner, sessions: Sessions
) -> None:
    await run_to_the_end(runner, runbook="passes", parameters={"to_version": 2})

    started, done = await published(sessions)
    assert isinstance(started, RunbookStarted)
    assert started.script_sha256 == sha256_of(SCRIPTS / "show_argv.py")
    assert started.verify_script_sha256 == sha256_of(SCRIPTS / "check.py")
    assert started.argv == [
        sys.executable,
        str(SCRIPTS / "show_argv.py"),
        "--model",
        "breast-cancer",
        "--to-version",
        "2",
    ]
    assert started.incident_id == "inc-000001"
    assert started.correlation_id == "inc-000001"
    assert isinstance(done, RunbookFinished)
    assert done.state is RunState.SUCCEEDED
    assert done.script_sha256 == started.script_sha256
    assert done.parameters == {"model": "breast-cancer", "to_version": 2}
    assert (done.exit_code, done.verify_exit_code) == (0, 0)
    assert json.loads(done.stdout) == ["--model", "breast-cancer", "--to-version", "2"]
    assert done.verify_output == "checked: exiting 0\n"
    assert done.started_at is not None
    assert done.detail == "command exited 0 and verification exited 0"
    assert (await row_of(sessions)).state == RunState.SUCCEEDED.value


async def test_a_failing_runbook_fails_without_verification(
    runner: Runner, sessions: Sessions
) -> None:
    await run_to_the_end(runner, runbook="fails", parameters={})
    done = await finished(sessions)
    assert done.state is RunState.FAILED
    assert done.exit_code == 3
    assert done.verify_exit_code is None
    assert done.stderr == "failing with status 3\n"
    assert done.detail == "command exited 3"


async def test_a_hanging_runbook_times_out_and_its_processes_are_killed(
    runner: Runner, sessions: Sessions
) -> None:
    await run_to_the_end(runner, runbook="hangs", parameters={})
    done = await finished(sessions)
    assert done.state is RunState.TIMED_OUT
    assert done.detail == "command timed out after 5 s; its process group was killed"
    pids = json.loads(done.stdout)
    assert await wait_dead(pids["pid"])
    assert await wait_dead(pids["child"])


async def test_a_runbook_whose_effect_does_not_hold_fails_verification(
    runner: Runner, sessions: Sessions
) -> None:
    await run_to_the_end(runner, runbook="verify-fails", parameters={})
    done = await finished(sessions)
    assert done.state is RunState.VERIFY_FAILED
    assert (done.exit_code, done.verify_exit_code) == (0, 1)
    assert done.verify_output == "doing the work\nfailing with status 1\n"
    assert done.detail == "verification exited 1"


async def test_a_hanging_verification_times_out(runner: Runner, sessions: Sessions) -> None:
    await run_to_the_end(runner, runbook="verify-hangs", parameters={})
    done = await finished(sessions)
    assert done.state is RunState.TIMED_OUT
    assert done.detail.startswith("verification timed out after 2 s")


async def test_a_flood_of_output_is_capped_so_the_report_fits_one_kafka_message(
    runner: Runner, sessions: Sessions
) -> None:
    await run_to_the_end(runner, runbook="floods", parameters={"size": 20_000_000})
    done = await finished(sessions)
    assert done.state is RunState.SUCCEEDED
    assert done.truncated
    for output in (done.stdout, done.stderr, done.verify_output):
        assert "bytes of output cut" in output
    assert len(encode(done)) < 1_000_000


async def test_a_script_sees_vigils_variables_its_run_id_and_its_asker_but_nothing_else(
    sessions: Sessions, catalog: Catalog, tmp_path: Path
) -> None:
    runner = make_runner(sessions, catalog, tmp_path, environment={"VIGIL_RUNBOOK_TOKEN": "scoped"})
    await run_to_the_end(runner, runbook="show-env", parameters={}, requested_by="dee")
    seen = json.loads((await finished(sessions)).stdout)
    assert seen.get("VIGIL_RUNBOOK_TOKEN") == "scoped"
    assert seen.get("VIGIL_RUN_ID") == "run-1"
    assert seen.get("VIGIL_ON_BEHALF_OF") == "dee"
    assert "DATABASE_URL" not in json.dumps(seen)


@pytest.mark.parametrize("value", ["; rm -rf /", "$(reboot)", "`id`", "../../etc/passwd"])
async def test_a_hostile_value_runs_as_one_literal_argument_end_to_end(
    runner: Runner, sessions: Sessions, value: str
) -> None:
    await run_to_the_end(runner, runbook="show-argv", parameters={"value": value})
    done = await finished(sessions)
    assert done.state is RunState.SUCCEEDED
    assert json.loads(done.stdout)[:2] == ["--value", value]


@pytest.mark.parametrize(
    ("request_fields", "detail"),
    [
        ({"runbook": "curl-evil"}, "runbook 'curl-evil' is not in the catalogue"),
        ({"runbook": "level-two", "parameters": {}}, "needs tier L2 or higher"),
        ({"runbook": "needs-approval", "parameters": {}}, "needs approval"),
        (
            {"runbook": "show-argv", "parameters": {"value": "x" * 1024 * 1024}},
            "is longer than 4096 characters",
        ),
        ({"runbook": "show-argv", "parameters": {"value": "a\x00b"}}, "contains a NUL byte"),
    ],
    ids=["unknown runbook", "tier too low", "approval missing", "one megabyte", "NUL byte"],
)
async def test_a_refused_request_runs_nothing_and_reports_why(
    runner: Runner, sessions: Sessions, request_fields: dict[str, Any], detail: str
) -> None:
    await runner.accept(make_runbook_request(**request_fields))
    assert await runner.start_waiting() == 0
    (done,) = await published(sessions)
    assert isinstance(done, RunbookFinished)
    assert done.state is RunState.REFUSED
    assert detail in done.detail
    assert done.exit_code is None
    assert done.script_sha256 is None
    assert len(encode(done)) < 10_000
    assert (await row_of(sessions)).state == RunState.REFUSED.value


async def test_the_same_run_id_delivered_twice_runs_once(
    runner: Runner, sessions: Sessions, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    request = make_runbook_request(
        runbook="sleeps", parameters={"marker": str(marker), "seconds": 0.1}
    )
    await runner.accept(request)
    await runner.accept(request)  # redelivered
    await runner.start_waiting()
    await runner.wait_idle()
    await runner.accept(request.model_copy(update={"event_id": make_runbook_request().event_id}))
    await runner.start_waiting()
    await runner.wait_idle()
    assert len(marker.read_text().splitlines()) == 1
    kinds = [type(event).__name__ for event in await published(sessions)]
    assert kinds == ["RunbookStarted", "RunbookFinished"]


async def test_a_run_id_reused_for_a_different_request_is_rejected(
    runner: Runner, sessions: Sessions
) -> None:
    await runner.accept(make_runbook_request(runbook="fails", parameters={}))
    with pytest.raises(Rejected, match="already used for a different request"):
        await runner.accept(make_runbook_request(runbook="passes"))
    assert (await row_of(sessions)).runbook == "fails"


async def test_a_request_with_unsafe_identifiers_is_rejected_to_the_dead_letters(
    runner: Runner, sessions: Sessions
) -> None:
    with pytest.raises(Rejected, match="run_id contains control characters"):
        await runner.accept(make_runbook_request(run_id="run\x00"))
    assert await published(sessions) == []


async def test_a_runbook_beyond_its_per_model_limit_is_refused_while_others_run(
    runner: Runner, sessions: Sessions, tmp_path: Path
) -> None:
    def sleeps(run_id: str, model: str) -> Any:
        marker = str(tmp_path / f"{run_id}.marker")
        return make_runbook_request(
            run_id=run_id,
            model=model,
            runbook="sleeps",
            parameters={"marker": marker, "seconds": 1.0},
        )

    await runner.accept(sleeps("run-1", "churn"))
    await runner.accept(sleeps("run-2", "churn"))
    await runner.accept(sleeps("run-3", "fraud"))
    assert await runner.start_waiting() == 2
    await runner.wait_idle()
    assert (await finished(sessions, "run-1")).state is RunState.SUCCEEDED
    assert (await finished(sessions, "run-3")).state is RunState.SUCCEEDED
    second = await finished(sessions, "run-2")
    assert second.state is RunState.REFUSED
    assert second.detail == (
        "limit reached: 1 run(s) of 'sleeps' for model 'churn' already in progress "
        "(at most 1 at once)"
    )
    assert not (tmp_path / "run-2.marker").exists()


async def test_runs_beyond_the_global_limit_wait_their_turn(
    sessions: Sessions, catalog: Catalog, tmp_path: Path
) -> None:
    runner = make_runner(sessions, catalog, tmp_path, max_concurrent_runs=1)
    for n, model in enumerate(["churn", "fraud", "credit"], start=1):
        marker = str(tmp_path / f"{n}.marker")
        await runner.accept(
            make_runbook_request(
                run_id=f"run-{n}",
                model=model,
                runbook="sleeps",
                parameters={"marker": marker, "seconds": 0.3},
            )
        )
    worker = asyncio.create_task(runner.work())
    try:
        for _ in range(300):
            rows = [await row_of(sessions, f"run-{n}") for n in (1, 2, 3)]
            if all(row.state == RunState.SUCCEEDED.value for row in rows):
                break
            assert sum(row.state == RunState.RUNNING.value for row in rows) <= 1
            await asyncio.sleep(0.1)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    rows = [await row_of(sessions, f"run-{n}") for n in (1, 2, 3)]
    assert [row.state for row in rows] == [RunState.SUCCEEDED.value] * 3
    for earlier, later in itertools.pairwise(rows):
        assert earlier.finished_at is not None
        assert later.started_at is not None
        assert earlier.finished_at <= later.started_at


async def test_a_run_left_in_progress_by_a_dead_runner_is_abandoned_and_never_run_again(
    sessions: Sessions, catalog: Catalog, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    request = make_runbook_request(
        runbook="sleeps", parameters={"marker": str(marker), "seconds": 0.1}
    )
    first = make_runner(sessions, catalog, tmp_path)
    await first.accept(request)
    async with sessions() as session, session.begin():
        # What a runner that died after starting the run leaves behind.
        store = RunStore(session)
        row = await store.next_requested()
        assert row is not None
        store.move(
            row,
            RunState.RUNNING,
            owner="runner-a",
            script_sha256="ab" * 32,
            argv=["x"],
            lease_until=datetime.now(UTC) + timedelta(seconds=30),
        )

    other = make_runner(sessions, catalog, tmp_path, instance="runner-b")
    assert await other.recover() == 0  # not its run, and its lease holds: maybe alive elsewhere
    restarted = make_runner(sessions, catalog, tmp_path)
    assert await restarted.recover() == 1
    await restarted.accept(request)  # redelivered after the restart
    assert await restarted.start_waiting() == 0

    done = await finished(sessions)
    assert done.state is RunState.ABANDONED
    assert done.detail == "the runner died while the run was running; it is not run again"
    assert not marker.exists()


async def left_running(sessions: Sessions, owner: str, lease_until: datetime | None) -> None:
    """What a runner that died after starting run-1 leaves behind."""
    async with sessions() as session, session.begin():
        store = RunStore(session)
        row = await store.next_requested()
        assert row is not None
        store.move(
            row,
            RunState.RUNNING,
            owner=owner,
            script_sha256="ab" * 32,
            argv=["x"],
            lease_until=lease_until,
        )


@pytest.mark.parametrize("lease", ["lapsed", "none (older runner)"])
async def test_a_run_whose_lease_lapsed_is_abandoned_by_any_runner_and_never_run_again(
    sessions: Sessions, catalog: Catalog, tmp_path: Path, lease: str
) -> None:
    marker = tmp_path / "marker"
    request = make_runbook_request(
        runbook="sleeps", parameters={"marker": str(marker), "seconds": 0.1}
    )
    await make_runner(sessions, catalog, tmp_path).accept(request)
    lapsed = datetime.now(UTC) - timedelta(seconds=1) if lease == "lapsed" else None
    await left_running(sessions, "gone-host-1-abcd", lapsed)

    first, second = (
        make_runner(sessions, catalog, tmp_path, instance=name) for name in ("r-1", "r-2")
    )
    both = await asyncio.gather(first.abandon_lapsed(), second.abandon_lapsed())
    assert sorted(both) == [0, 1]  # reported once, by either
    assert await first.abandon_lapsed() == 0
    await first.accept(request)
    assert await first.start_waiting() == 0

    done = await finished(sessions)
    assert done.state is RunState.ABANDONED
    lease_word = "the lease" if lease == "lapsed" else "its lease"
    assert done.detail == (
        f"its runner gone-host-1-abcd stopped renewing {lease_word} (it died or lost the "
        "database) while the run was running; it is not run again"
    )
    assert not marker.exists()


async def test_a_live_runners_leases_are_renewed_so_no_other_runner_abandons_its_runs(
    sessions: Sessions, catalog: Catalog, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    # A 2 s lease, renewed every 0.67 s: a 1 s lease failed once when the test process's event
    # loop stalled for longer than 0.67 s beside two other test workers on a loaded machine.
    owner = make_runner(sessions, catalog, tmp_path, instance="owner", lease_s=2.0)
    other = make_runner(sessions, catalog, tmp_path, instance="other", lease_s=2.0)
    await owner.accept(
        make_runbook_request(runbook="sleeps", parameters={"marker": str(marker), "seconds": 6})
    )
    worker = asyncio.create_task(owner.work())
    try:
        await wait_started(marker)
        for _ in range(60):  # three times the lease
            assert await other.abandon_lapsed() == 0
            await asyncio.sleep(0.1)
        await owner.wait_idle()
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert (await finished(sessions)).state is RunState.SUCCEEDED


async def test_a_runner_that_lost_its_lease_stops_the_run_and_leaves_the_abandoned_report(
    sessions: Sessions, catalog: Catalog, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    owner = make_runner(sessions, catalog, tmp_path, instance="owner")
    await owner.accept(
        make_runbook_request(runbook="sleeps", parameters={"marker": str(marker), "seconds": 600})
    )
    assert await owner.start_waiting() == 1
    pid = await wait_started(marker)
    async with sessions() as session, session.begin():
        # The owner was cut off from the database for longer than its lease.
        row = await RunStore(session).get("run-1")
        assert row is not None
        row.lease_until = datetime.now(UTC) - timedelta(seconds=1)
        session.add(row)
    assert await make_runner(sessions, catalog, tmp_path, instance="other").abandon_lapsed() == 1

    await owner.keep_leases()  # back: it finds the run is no longer its own
    assert await wait_dead(pid)
    await owner.wait_idle()
    done = await finished(sessions)
    assert done.state is RunState.ABANDONED
    assert "its runner owner stopped renewing the lease" in done.detail
    assert (await row_of(sessions)).state == RunState.ABANDONED.value


async def test_a_stopping_runner_kills_its_runs_after_a_grace_period_and_abandons_them(
    sessions: Sessions, catalog: Catalog, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    runner = make_runner(sessions, catalog, tmp_path, stop_grace_s=0.2)
    await runner.accept(
        make_runbook_request(runbook="sleeps", parameters={"marker": str(marker), "seconds": 600})
    )
    worker = asyncio.create_task(runner.work())
    pid = await wait_started(marker)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert await wait_dead(pid)
    done = await finished(sessions)
    assert done.state is RunState.ABANDONED
    assert done.detail == "the runner stopped while the run was running; it is not run again"


async def test_a_request_waiting_when_the_runner_restarts_is_started_normally(
    sessions: Sessions, catalog: Catalog, tmp_path: Path
) -> None:
    await make_runner(sessions, catalog, tmp_path).accept(make_runbook_request())
    restarted = make_runner(sessions, catalog, tmp_path)
    assert await restarted.recover() == 0
    assert await restarted.start_waiting() == 1
    await restarted.wait_idle()
    assert (await finished(sessions)).state is RunState.SUCCEEDED


async def test_a_waiting_request_is_admitted_again_against_the_catalogue_it_starts_under(
    sessions: Sessions, catalog: Catalog, tmp_path: Path
) -> None:
    await make_runner(sessions, catalog, tmp_path).accept(make_runbook_request())
    emptied = make_runner(sessions, Catalog(folder=catalog.folder), tmp_path)
    await emptied.start_waiting()
    done = await finished(sessions)
    assert done.state is RunState.REFUSED
    assert done.detail == "runbook 'passes' is not in the catalogue"


def resolution(incident_id: str, at: datetime) -> IncidentResolved:
    return IncidentResolved(
        producer="incident-log",
        occurred_at=at,
        incident_id=incident_id,
        model="breast-cancer",
        status=IncidentStatus.RESOLVED,
        tier=Tier.L1,
        actor="ana",
        from_status=IncidentStatus.MONITORING,
        reason="recall held",
    )


async def test_a_run_asked_for_longer_ago_than_the_maximum_queue_age_expires_unrun(
    sessions: Sessions, catalog: Catalog, tmp_path: Path
) -> None:
    # The runner was down for two hours: the request reaches it late, and is judged by when the
    # incident log asked, not by when the runner recorded it.
    runner = make_runner(sessions, catalog, tmp_path, max_queue_age_s=600)
    now = datetime.now(UTC)
    stale, fresh = tmp_path / "stale.marker", tmp_path / "fresh.marker"
    await runner.accept(
        make_runbook_request(
            run_id="run-old",
            occurred_at=now - timedelta(hours=2),
            runbook="sleeps",
            parameters={"marker": str(stale), "seconds": 0},
        )
    )
    await runner.accept(
        make_runbook_request(
            run_id="run-new",
            model="churn",
            occurred_at=now - timedelta(minutes=9),
            runbook="sleeps",
            parameters={"marker": str(fresh), "seconds": 0},
        )
    )
    assert await runner.start_waiting() == 1
    await runner.wait_idle()

    expired = await finished(sessions, "run-old")
    assert expired.state is RunState.EXPIRED
    # The age is counted when the runner looks, a few seconds after `now` on a slow machine.
    age = re.fullmatch(
        r"asked for (\d+) s ago, longer than the maximum queue age of 600 s; not run",
        expired.detail,
    )
    assert age is not None
    assert 7200 <= int(age[1]) < 7200 + 60
    assert (expired.exit_code, expired.script_sha256, expired.started_at) == (None, None, None)
    assert expired.parameters == {"marker": str(stale), "seconds": 0.0}
    assert not stale.exists()
    assert not any(
        isinstance(e, RunbookStarted) and e.run_id == "run-old" for e in await published(sessions)
    )
    assert (await finished(sessions, "run-new")).state is RunState.SUCCEEDED
    assert fresh.exists()


async def test_a_run_whose_incident_was_resolved_before_it_started_is_skipped_after_a_restart(
    sessions: Sessions, catalog: Catalog, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    marker = tmp_path / "marker"
    asked = make_runbook_request(
        occurred_at=now - timedelta(minutes=5),
        runbook="sleeps",
        parameters={"marker": str(marker), "seconds": 0},
    )
    first = make_runner(sessions, catalog, tmp_path)
    await first.accept(asked)
    await first.on_incident_resolved(resolution("inc-000001", now - timedelta(minutes=1)))
    # an older resolution replayed later does not make the incident look open again
    await first.on_incident_resolved(resolution("inc-000001", now - timedelta(hours=1)))
    # the runner stops before it got to the run; another starts on the same database

    restarted = make_runner(sessions, catalog, tmp_path)
    assert await restarted.recover() == 0
    assert await restarted.start_waiting() == 0
    await restarted.wait_idle()

    done = await finished(sessions)
    assert done.state is RunState.SKIPPED
    assert done.detail.startswith("its incident was resolved at ")
    assert done.exit_code is None
    assert not marker.exists()
    assert [type(e).__name__ for e in await published(sessions)] == ["RunbookFinished"]


async def test_a_request_arriving_after_its_incident_was_resolved_is_skipped_unless_asked_later(
    sessions: Sessions, catalog: Catalog, tmp_path: Path
) -> None:
    # Requests and resolutions come on different topics, in no fixed order: what counts is
    # whether the incident log asked before or after it resolved the incident.
    runner = make_runner(sessions, catalog, tmp_path)
    now = datetime.now(UTC)
    await runner.on_incident_resolved(resolution("inc-000001", now - timedelta(minutes=2)))
    before, after = tmp_path / "before.marker", tmp_path / "after.marker"
    await runner.accept(
        make_runbook_request(
            run_id="run-before",
            occurred_at=now - timedelta(minutes=3),
            runbook="sleeps",
            parameters={"marker": str(before), "seconds": 0},
        )
    )
    await runner.accept(
        make_runbook_request(
            run_id="run-after-reopening",
            model="churn",
            occurred_at=now - timedelta(minutes=1),
            runbook="sleeps",
            parameters={"marker": str(after), "seconds": 0},
        )
    )
    await runner.start_waiting()
    await runner.wait_idle()
    assert (await finished(sessions, "run-before")).state is RunState.SKIPPED
    assert not before.exists()
    assert (await finished(sessions, "run-after-reopening")).state is RunState.SUCCEEDED
    assert after.exists()


async def test_a_command_that_finds_nothing_to_do_is_skipped_without_verification(
    runner: Runner, sessions: Sessions, tmp_path: Path
) -> None:
    marker = tmp_path / "verified"
    await run_to_the_end(runner, runbook="nothing-to-do", parameters={"marker": str(marker)})
    done = await finished(sessions)
    assert done.state is RunState.SKIPPED
    assert done.detail == "command found nothing to do (exit 5): failing with status 5"
    assert (done.exit_code, done.verify_exit_code) == (5, None)
    assert done.stdout == "doing the work\n"
    assert not marker.exists()

"""The runner as a real process on the real broker: requests in, reports out, dead letters,
a runner killed or stopped mid-run, and two runners sharing one PostgreSQL database."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from contracts import (
    DeadLetterReason,
    IncidentResolved,
    IncidentStatus,
    MessageDeadLettered,
    RunbookFinished,
    RunbookStarted,
    RunState,
    Tier,
    Topic,
)
from services.runbook_runner.tables import ResolutionRow, RunRow
from services.runtime import (
    EventPublisher,
    KafkaSettings,
    ServiceName,
    create_engine,
    session_factory,
)
from tests.factories import TEST_SIGNING_KEY, make_runbook_request, sign_runbook_request
from tests.kafka_tools import (
    distinct_events,
    read_events,
    read_events_until_quiet,
    read_until,
    read_until_quiet,
    write_raw,
)
from tests.processes import ServiceProcess, kafka_env, process_maker
from tests.runbook_runner.support import CATALOG_PATH, wait_dead, wait_started

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MakeRunner = Callable[..., ServiceProcess]

LEASE_S = 3.0


def runner_processes(
    kafka_settings: KafkaSettings, database_url: str, tmp_path: Path
) -> Iterator[MakeRunner]:
    env = kafka_env(kafka_settings) | {
        "VIGIL_STATE_DIR": str(tmp_path / "state"),
        "VIGIL_RUNBOOK_RUNNER_DATABASE_URL": database_url,
        "VIGIL_RUNBOOK_RUNNER_CATALOG_PATH": str(CATALOG_PATH),
        "VIGIL_RUNBOOK_RUNNER_STOP_GRACE_SECONDS": "0.5",
        "VIGIL_RUNBOOK_SIGNING_KEY": TEST_SIGNING_KEY,
        "VIGIL_RUNBOOK_RUNNER_RUN_LEASE_SECONDS": str(LEASE_S),
    }
    with process_maker(env, tmp_path) as make:
        yield partial(make, ServiceName.RUNBOOK_RUNNER)


@pytest.fixture
def runner_on_sqlite(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[MakeRunner]:
    yield from runner_processes(kafka_settings, f"sqlite:///{tmp_path / 'runner.db'}", tmp_path)


@pytest.fixture
def runner_on_each_database(
    kafka_settings: KafkaSettings, database_url: str, tmp_path: Path
) -> Iterator[MakeRunner]:
    yield from runner_processes(kafka_settings, database_url, tmp_path)


async def test_a_request_on_kafka_runs_and_is_reported_on_runbook_results(
    runner_on_sqlite: MakeRunner, publisher: EventPublisher, kafka_settings: KafkaSettings
) -> None:
    runner = runner_on_sqlite()
    runner.start()
    await runner.wait_ready()
    await publisher.publish(make_runbook_request(runbook="passes", parameters={"to_version": 2}))

    first, second = await read_events(kafka_settings, Topic.RUNBOOK_RESULTS, count=2, timeout_s=60)
    started = RunbookStarted.model_validate_json(first.value)
    done = RunbookFinished.model_validate_json(second.value)
    assert first.key == second.key == b"inc-000001"
    assert started.run_id == done.run_id == "run-1"
    assert done.state is RunState.SUCCEEDED
    assert done.script_sha256 == started.script_sha256
    assert json.loads(done.stdout) == ["--model", "breast-cancer", "--to-version", "2"]
    assert await runner.stop() == 0


async def test_an_impossible_request_goes_to_the_dead_letter_topic_and_the_runner_goes_on(
    runner_on_sqlite: MakeRunner, publisher: EventPublisher, kafka_settings: KafkaSettings
) -> None:
    runner = runner_on_sqlite()
    runner.start()
    await runner.wait_ready()
    unsafe = make_runbook_request(run_id="run-\x00-1").model_dump_json().encode()
    await write_raw(kafka_settings, Topic.RUNBOOK_REQUESTS, [b"{not json", unsafe])
    await publisher.publish(make_runbook_request(runbook="fails", parameters={}))

    (letter_1, letter_2) = await read_events(
        kafka_settings, Topic.DEAD_LETTER, count=2, timeout_s=60
    )
    letters = [MessageDeadLettered.model_validate_json(r.value) for r in (letter_1, letter_2)]
    assert [letter.reason for letter in letters] == [
        DeadLetterReason.UNDECODABLE,
        DeadLetterReason.INVALID,
    ]
    assert letters[1].error == "run_id contains control characters"
    assert base64.b64decode(letters[1].original_value_b64) == unsafe
    _, finished = await read_events(kafka_settings, Topic.RUNBOOK_RESULTS, count=2, timeout_s=60)
    assert RunbookFinished.model_validate_json(finished.value).state is RunState.FAILED
    assert await runner.stop() == 0


async def test_a_runner_killed_mid_run_reports_the_run_abandoned_on_restart_and_never_reruns_it(
    runner_on_each_database: MakeRunner,
    publisher: EventPublisher,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "marker"
    request = make_runbook_request(
        runbook="sleeps", parameters={"marker": str(marker), "seconds": 600}
    )
    first = runner_on_each_database("first")
    first.start()
    await first.wait_ready()
    await publisher.publish(request)
    script = await wait_started(marker)
    (started,) = await read_events(kafka_settings, Topic.RUNBOOK_RESULTS, count=1, timeout_s=60)
    assert b"runbook.started" in started.value

    await first.kill()
    assert await wait_dead(script)  # the script does not go on acting for a dead runner

    restarted = runner_on_each_database("restarted")
    restarted.start()
    await restarted.wait_ready()
    await publisher.publish(request)  # the incident log asking again changes nothing
    _, finished = await read_events(kafka_settings, Topic.RUNBOOK_RESULTS, count=2, timeout_s=60)
    done = RunbookFinished.model_validate_json(finished.value)
    assert done.state is RunState.ABANDONED
    assert done.detail.startswith("its runner ")  # a new process: a new id, found by its lease
    assert done.detail.endswith(
        " stopped renewing the lease (it died or lost the database) while the run was running; "
        "it is not run again"
    )
    assert (
        len(await read_events_until_quiet(kafka_settings, Topic.RUNBOOK_RESULTS, quiet_s=3.0)) == 2
    )
    assert len(marker.read_text().splitlines()) == 1
    assert await restarted.stop() == 0


async def test_a_runner_stopped_mid_run_kills_the_run_and_reports_it_abandoned_before_exiting(
    runner_on_sqlite: MakeRunner,
    publisher: EventPublisher,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "marker"
    runner = runner_on_sqlite()
    runner.start()
    await runner.wait_ready()
    await publisher.publish(
        make_runbook_request(runbook="sleeps", parameters={"marker": str(marker), "seconds": 600})
    )
    script = await wait_started(marker)

    assert await runner.stop() == 0
    assert await wait_dead(script)
    _, finished = await read_events(kafka_settings, Topic.RUNBOOK_RESULTS, count=2, timeout_s=30)
    done = RunbookFinished.model_validate_json(finished.value)
    assert done.state is RunState.ABANDONED
    assert done.detail == "the runner stopped while the run was running; it is not run again"


async def test_a_request_for_an_incident_resolved_before_a_restart_is_skipped_by_the_new_runner(
    runner_on_each_database: MakeRunner,
    publisher: EventPublisher,
    kafka_settings: KafkaSettings,
    database_url: str,
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    first = runner_on_each_database("first")
    first.start()
    await first.wait_ready()
    await publisher.publish(
        IncidentResolved(
            producer="incident-log",
            occurred_at=now,
            incident_id="inc-000001",
            model="breast-cancer",
            status=IncidentStatus.RESOLVED,
            tier=Tier.L1,
            actor="ana",
            from_status=IncidentStatus.MONITORING,
            reason="recall held",
        )
    )
    engine = create_engine(database_url)
    try:
        for _ in range(600):
            async with session_factory(engine)() as session:
                if await session.get(ResolutionRow, "inc-000001") is not None:
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the runner never recorded the resolution")
    finally:
        await engine.dispose()
    await first.kill()

    restarted = runner_on_each_database("restarted")
    restarted.start()
    await restarted.wait_ready()
    marker = tmp_path / "marker"
    await publisher.publish(
        make_runbook_request(
            occurred_at=now - timedelta(minutes=1),  # asked before the resolution, read after
            runbook="sleeps",
            parameters={"marker": str(marker), "seconds": 0},
        )
    )
    (record,) = await read_events(kafka_settings, Topic.RUNBOOK_RESULTS, count=1, timeout_s=60)
    done = RunbookFinished.model_validate_json(record.value)
    assert done.state is RunState.SKIPPED
    assert done.detail.startswith("its incident was resolved at ")
    assert (
        len(await read_events_until_quiet(kafka_settings, Topic.RUNBOOK_RESULTS, quiet_s=2.0)) == 1
    )
    assert not marker.exists()
    assert await restarted.stop() == 0


def _results_of(records: list[Any], run_id: str) -> list[str]:
    return [
        json.loads(record.value)["type"]
        for record in records
        if json.loads(record.value)["run_id"] == run_id
    ]


async def test_forged_requests_on_the_topic_are_dead_lettered_and_never_run(
    runner_on_sqlite: MakeRunner, kafka_settings: KafkaSettings
) -> None:
    """Someone who can produce to runbook.requests but lacks the key: unsigned with a forged
    tier and approval, signed with another key, a genuine request with its tier raised, and a
    genuine one kept past its expiry. Only the genuine, fresh one runs."""
    runner = runner_on_sqlite()
    runner.start()
    await runner.wait_ready()
    now = datetime.now(UTC)
    genuine = make_runbook_request(run_id="run-genuine", occurred_at=now)
    forged = [
        make_runbook_request(
            signed=False,
            run_id="run-unsigned",
            runbook="level-two",
            parameters={},
            tier=Tier.L3,
            requested_by="mallory",
            approved_by="bo",
        ),
        sign_runbook_request(
            make_runbook_request(signed=False, run_id="run-other-key", occurred_at=now),
            "a-key-the-incident-log-does-not-have-0000",
        ),
        make_runbook_request(
            run_id="run-raised", runbook="level-two", parameters={}, occurred_at=now
        ).model_copy(update={"tier": Tier.L3}),
        make_runbook_request(
            run_id="run-stale", occurred_at=now - timedelta(hours=3)
        ),  # signed for one hour
    ]
    raw = [request.model_dump_json().encode() for request in [*forged, genuine]]
    await write_raw(kafka_settings, Topic.RUNBOOK_REQUESTS, raw, key=b"inc-000001")

    records = await read_events(kafka_settings, Topic.RUNBOOK_RESULTS, count=2, timeout_s=90)
    assert _results_of(records, "run-genuine") == ["runbook.started", "runbook.finished"]
    assert RunbookFinished.model_validate_json(records[1].value).state is RunState.SUCCEEDED

    letters = [
        MessageDeadLettered.model_validate_json(record.value)
        for record in await read_events(kafka_settings, Topic.DEAD_LETTER, count=4, timeout_s=30)
    ]
    assert [letter.reason for letter in letters] == [DeadLetterReason.INVALID] * 4
    errors = [letter.error for letter in letters]
    assert errors[0].startswith("runbook request 'run-unsigned' not run: unsigned")
    assert errors[1].startswith("runbook request 'run-other-key' not run: bad signature")
    assert errors[2].startswith("runbook request 'run-raised' not run: bad signature")
    assert errors[3].startswith("runbook request 'run-stale' not run: expired")
    assert [base64.b64decode(letter.original_value_b64) for letter in letters] == raw[:4]
    results = await read_until_quiet(kafka_settings, Topic.RUNBOOK_RESULTS, quiet_s=2.0)
    assert {json.loads(record.value)["run_id"] for record in results} == {"run-genuine"}
    assert await runner.stop() == 0


async def test_a_replayed_signed_request_does_not_run_twice_even_after_a_restart(
    runner_on_each_database: MakeRunner, kafka_settings: KafkaSettings
) -> None:
    genuine = make_runbook_request(run_id="run-once").model_dump_json().encode()

    def sentinel(run_id: str) -> bytes:
        return make_runbook_request(run_id=run_id).model_dump_json().encode()

    async def results_until(run_id: str) -> list[Any]:
        records = await read_until(
            kafka_settings,
            Topic.RUNBOOK_RESULTS,
            lambda records: (
                _results_of(distinct_events(records), run_id)[-1:] == ["runbook.finished"]
            ),
            timeout_s=90,
        )
        return distinct_events(records)

    runner = runner_on_each_database()
    runner.start()
    await runner.wait_ready()
    await write_raw(kafka_settings, Topic.RUNBOOK_REQUESTS, [genuine], key=b"inc-000001")
    await results_until("run-once")
    await write_raw(
        kafka_settings, Topic.RUNBOOK_REQUESTS, [genuine, sentinel("run-2")], key=b"inc-000001"
    )
    records = await results_until("run-2")
    assert _results_of(records, "run-once") == ["runbook.started", "runbook.finished"]

    await runner.kill()  # the restarted runner remembers no event id: its database must hold
    restarted = runner_on_each_database("restarted")
    restarted.start()
    await restarted.wait_ready()
    await write_raw(
        kafka_settings, Topic.RUNBOOK_REQUESTS, [genuine, sentinel("run-3")], key=b"inc-000001"
    )
    records = await results_until("run-3")
    assert _results_of(records, "run-once") == ["runbook.started", "runbook.finished"]
    assert await restarted.stop() == 0


def parent_of(pid: int) -> int:
    """The parent process id of a live process (the runner executing a script)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def pid_of(process: ServiceProcess) -> int:
    assert process.process is not None
    return process.process.pid


@pytest.fixture
def two_runners(runner_on_each_database: MakeRunner, database_url: str) -> MakeRunner:
    if not database_url.startswith("postgresql"):
        pytest.skip("several runners share a PostgreSQL database; SQLite: one runner per file")
    return runner_on_each_database


async def test_two_runners_sharing_the_queue_execute_each_run_once(
    two_runners: MakeRunner,
    publisher: EventPublisher,
    kafka_settings: KafkaSettings,
    database_url: str,
    tmp_path: Path,
) -> None:
    runners = [two_runners(name, VIGIL_RUNBOOK_RUNNER_MAX_CONCURRENT_RUNS="2") for name in "ab"]
    for runner in runners:
        runner.start()
    for runner in runners:
        await runner.wait_ready()
    count = 8  # four times one runner's limit: both must take some
    for n in range(count):
        await publisher.publish(
            make_runbook_request(
                run_id=f"run-{n}",
                model=f"model-{n}",
                runbook="sleeps",
                parameters={"marker": str(tmp_path / f"marker-{n}"), "seconds": 1.5},
            )
        )

    records = await read_events(
        kafka_settings, Topic.RUNBOOK_RESULTS, count=2 * count, timeout_s=120
    )
    finished = [
        RunbookFinished.model_validate_json(r.value)
        for r in records
        if b"runbook.finished" in r.value
    ]
    assert sorted(done.run_id for done in finished) == sorted(f"run-{n}" for n in range(count))
    assert {done.state for done in finished} == {RunState.SUCCEEDED}
    for n in range(count):
        assert len((tmp_path / f"marker-{n}").read_text().splitlines()) == 1
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            owners = {row.owner for row in (await session.exec(select(RunRow))).all()}
    finally:
        await engine.dispose()
    assert len(owners) == 2  # two runners, two distinct ids by default
    results = await read_events_until_quiet(kafka_settings, Topic.RUNBOOK_RESULTS, quiet_s=2.0)
    assert len(results) == 2 * count
    for runner in runners:
        assert await runner.stop() == 0


async def both_ready(make: MakeRunner) -> list[ServiceProcess]:
    """Runners ``a`` and ``b`` on one database, started together and both ready."""
    runners = [make(name) for name in "ab"]
    for runner in runners:
        runner.start()
    for runner in runners:
        await runner.wait_ready()
    return runners


async def who_runs(
    runners: list[ServiceProcess], marker: Path
) -> tuple[int, ServiceProcess, ServiceProcess]:
    """Once the script has started: its pid, the runner that executes it, and the other one."""
    script = await wait_started(marker)
    (executing,) = [r for r in runners if pid_of(r) == parent_of(script)]
    (other,) = [r for r in runners if r is not executing]
    return script, executing, other


async def test_a_runner_killed_mid_run_has_its_run_reported_abandoned_by_the_other_within_the_lease(
    two_runners: MakeRunner,
    publisher: EventPublisher,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
) -> None:
    runners = await both_ready(two_runners)
    marker = tmp_path / "marker"
    request = make_runbook_request(
        runbook="sleeps", parameters={"marker": str(marker), "seconds": 600}
    )
    await publisher.publish(request)
    script, executing, survivor = await who_runs(runners, marker)

    await executing.kill()
    killed_at = asyncio.get_running_loop().time()
    assert await wait_dead(script)
    _, finished = await read_events(kafka_settings, Topic.RUNBOOK_RESULTS, count=2, timeout_s=60)
    reported_after = asyncio.get_running_loop().time() - killed_at
    done = RunbookFinished.model_validate_json(finished.value)
    assert done.state is RunState.ABANDONED
    assert "stopped renewing the lease" in done.detail
    # The lease, plus the survivor's sweep (every third of it), plus the relay and the reading.
    assert reported_after < LEASE_S + LEASE_S / 3 + 10
    await publisher.publish(request)  # asked again: not run again
    assert (
        len(await read_events_until_quiet(kafka_settings, Topic.RUNBOOK_RESULTS, quiet_s=3.0)) == 2
    )
    assert len(marker.read_text().splitlines()) == 1
    assert await survivor.stop() == 0


async def test_a_runner_restarting_does_not_abandon_the_runs_of_another_live_runner(
    two_runners: MakeRunner,
    publisher: EventPublisher,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
) -> None:
    runners = await both_ready(two_runners)
    marker = tmp_path / "marker"
    seconds = 4 * LEASE_S  # outlives several leases, renewed by its runner throughout
    await publisher.publish(
        make_runbook_request(
            runbook="sleeps", parameters={"marker": str(marker), "seconds": seconds}
        )
    )
    _, _, other = await who_runs(runners, marker)

    await other.kill()
    other.start()  # a new process of the same replica: a new id
    await other.wait_ready()
    _, finished = await read_events(
        kafka_settings, Topic.RUNBOOK_RESULTS, count=2, timeout_s=seconds + 60
    )
    done = RunbookFinished.model_validate_json(finished.value)
    assert done.state is RunState.SUCCEEDED
    assert (
        len(await read_events_until_quiet(kafka_settings, Topic.RUNBOOK_RESULTS, quiet_s=2.0)) == 2
    )
    assert len(marker.read_text().splitlines()) == 1
    for runner in runners:
        assert await runner.stop() == 0

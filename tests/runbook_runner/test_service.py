"""The runner as a real process on the real broker: requests in, reports out, dead letters,
and a runner killed or stopped mid-run."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

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
from services.runbook_runner.tables import ResolutionRow
from services.runtime import (
    EventPublisher,
    KafkaSettings,
    ServiceName,
    create_engine,
    kafka_broker,
    session_factory,
)
from tests.factories import TEST_SIGNING_KEY, make_runbook_request
from tests.kafka_tools import read_topic, read_until_quiet, write_raw
from tests.processes import ServiceProcess, kafka_env
from tests.runbook_runner.support import CATALOG_PATH, wait_dead, wait_started

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MakeRunner = Callable[..., ServiceProcess]


@pytest.fixture
async def publisher(kafka_settings: KafkaSettings) -> AsyncIterator[EventPublisher]:
    broker = kafka_broker(kafka_settings, client_id="test-publisher")
    await broker.connect()
    yield EventPublisher(broker, kafka_settings)
    await broker.stop()


def runner_processes(
    kafka_settings: KafkaSettings, database_url: str, tmp_path: Path
) -> Iterator[MakeRunner]:
    made: list[ServiceProcess] = []

    def make(name: str = "runbook-runner") -> ServiceProcess:
        process = ServiceProcess(
            ServiceName.RUNBOOK_RUNNER,
            name=name,
            env=kafka_env(kafka_settings)
            | {
                "VIGIL_STATE_DIR": str(tmp_path / "state"),
                "VIGIL_RUNBOOK_RUNNER_DATABASE_URL": database_url,
                "VIGIL_RUNBOOK_RUNNER_CATALOG_PATH": str(CATALOG_PATH),
                "VIGIL_RUNBOOK_RUNNER_STOP_GRACE_SECONDS": "0.5",
                "VIGIL_RUNBOOK_SIGNING_KEY": TEST_SIGNING_KEY,
            },
            log_dir=tmp_path,
        )
        made.append(process)
        return process

    yield make
    for process in made:
        process.ensure_dead()


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

    first, second = await read_topic(kafka_settings, Topic.RUNBOOK_RESULTS, count=2, timeout_s=60)
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

    (letter_1, letter_2) = await read_topic(
        kafka_settings, Topic.DEAD_LETTER, count=2, timeout_s=60
    )
    letters = [MessageDeadLettered.model_validate_json(r.value) for r in (letter_1, letter_2)]
    assert [letter.reason for letter in letters] == [
        DeadLetterReason.UNDECODABLE,
        DeadLetterReason.INVALID,
    ]
    assert letters[1].error == "run_id contains control characters"
    assert base64.b64decode(letters[1].original_value_b64) == unsafe
    _, finished = await read_topic(kafka_settings, Topic.RUNBOOK_RESULTS, count=2, timeout_s=60)
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
    (started,) = await read_topic(kafka_settings, Topic.RUNBOOK_RESULTS, count=1, timeout_s=60)
    assert b"runbook.started" in started.value

    await first.kill()
    assert await wait_dead(script)  # the script does not go on acting for a dead runner

    restarted = runner_on_each_database("restarted")
    restarted.start()
    await restarted.wait_ready()
    await publisher.publish(request)  # the incident log asking again changes nothing
    _, finished = await read_topic(kafka_settings, Topic.RUNBOOK_RESULTS, count=2, timeout_s=60)
    done = RunbookFinished.model_validate_json(finished.value)
    assert done.state is RunState.ABANDONED
    assert done.detail == "the runner died while the run was running; it is not run again"
    assert len(await read_until_quiet(kafka_settings, Topic.RUNBOOK_RESULTS, quiet_s=3.0)) == 2
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
    _, finished = await read_topic(kafka_settings, Topic.RUNBOOK_RESULTS, count=2, timeout_s=30)
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
    (record,) = await read_topic(kafka_settings, Topic.RUNBOOK_RESULTS, count=1, timeout_s=60)
    done = RunbookFinished.model_validate_json(record.value)
    assert done.state is RunState.SKIPPED
    assert done.detail.startswith("its incident was resolved at ")
    assert len(await read_until_quiet(kafka_settings, Topic.RUNBOOK_RESULTS, quiet_s=2.0)) == 1
    assert not marker.exists()
    assert await restarted.stop() == 0

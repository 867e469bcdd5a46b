"""Issue 19's acceptance: two replicas of every service (scorer, monitor, drift detector,
incident log, retrainer with the registry, runbook runner) as real processes on the embedded
broker, each service with its own PostgreSQL database shared by its replicas (as
``compose.yaml``; each replica has a state folder of its own, no shared volume), under traffic for
three models; every replica is SIGKILLed in turn mid-stream and restarted (as an orchestrator
does). One model's inputs are shifted before the kills, so drift and metric episodes are open
while replicas die, and unshifted after them. Then, from the topics and the databases: every
prediction judged once in exactly one metrics window, no alert raised twice or lost, no
duplicate incident, the open episodes recovered, and each key's events in order on every topic.

The retrainers and runners get work to compete for without changing the deployments the test
measures (``tests/scale/operations.py``): the drift incident runs a diagnosis runbook, more runs
of it are asked for by hand (one runner is killed while it executes one), and retrains are asked
for by hand through either registry replica (one retrainer is killed while it trains, when the
run lasts long enough to catch it); half of each service's replicas read the registry from the
second retrainer. Checked: each run reported once, each retrain one run and at most one
registered version, no registry or runbook outcome published twice under two ids.

Everything runs once (a module-scoped fixture); each test checks one property of that run.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sklearn
import skops.io
from aiokafka.partitioner import DefaultPartitioner

from contracts import TOPICS, AlertKind, Topic
from services.runbook_runner.runs import FINAL_STATES
from services.runtime import KafkaProfile, KafkaSettings, ServiceName, ensure_topics
from services.stack import scenario, training
from services.stack.chaos import _incident_rows, _query, _recorded_alerts
from tests.conftest import POSTGRES_ADMIN_URL
from tests.kafka_tools import distinct_events, read_until, read_until_quiet
from tests.processes import issue_tokens
from tests.scale.operations import (
    ask_retrain,
    ask_runbook,
    retrain_holder,
    run_holder,
    runbooks_for_drift,
)
from tests.scale.replicas import Replicas, service_databases
from tests.scale.traffic import Traffic

pytestmark = [
    pytest.mark.scale,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(2400),  # minutes here unloaded; other work on the two cores: 20 or more
]

MODELS = ["scale-a", "scale-b", "scale-c"]
SHIFTED = "scale-a"
RATE_PER_MODEL = 15.0
WINDOW_S = 5
"""The monitor's event-time windows (no count windows), so the last one closes on demand."""

REPLICAS = {
    ServiceName.RETRAINER: 2,
    ServiceName.RUNBOOK_RUNNER: 2,
    ServiceName.INCIDENT_LOG: 2,
    ServiceName.SCORER: 2,
    ServiceName.MONITOR: 2,
    ServiceName.DRIFT_DETECTOR: 2,
}
DATABASES = [
    ServiceName.RETRAINER,
    ServiceName.INCIDENT_LOG,
    ServiceName.MONITOR,
    ServiceName.DRIFT_DETECTOR,
    ServiceName.RUNBOOK_RUNNER,
]
SERVICES_KILLED = (
    ServiceName.DRIFT_DETECTOR,
    ServiceName.MONITOR,
    ServiceName.SCORER,
    ServiceName.INCIDENT_LOG,
    ServiceName.RETRAINER,
    ServiceName.RUNBOOK_RUNNER,
)
"""Killed in this order, every replica once (two rounds): whichever owns the shifted model's
partition is among them; the drift detector's owner of it goes first, right after it raised;
in the first round the runner executing a run and the retrainer training one (if caught)."""
READS_REPLICA_1 = (
    ServiceName.SCORER,
    ServiceName.MONITOR,
    ServiceName.DRIFT_DETECTOR,
    ServiceName.RUNBOOK_RUNNER,
)
"""Services whose replica 1 reads the registry from retrainer replica 1 (no load balancer)."""
OPERATION_TOPICS = (Topic.MODELS, Topic.RETRAIN_REQUESTS, Topic.RUNBOOK_RESULTS)

DRIFT_KINDS = {AlertKind.DATA_DRIFT.value, AlertKind.PREDICTION_DRIFT.value}


@dataclass
class Run:
    """What one run sent, did and found afterwards."""

    requests: dict[str, list[str]]
    flush: dict[str, str]
    kills: list[tuple[str, int, float]]
    drift_raised_at: float
    restarted_at: float
    retrains: list[str] = field(default_factory=list)
    """Ids of the retrain runs asked for by hand."""
    runbook_runs: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(run id, state, owner) of every run the runners recorded."""
    killed_mid_run: dict[str, str] = field(default_factory=dict)
    """Service → id of the run its killed replica was executing."""
    records: dict[Topic, list[Any]] = field(default_factory=dict)
    incidents: list[tuple[str, str, str]] = field(default_factory=list)
    recorded_alerts: set[uuid.UUID] = field(default_factory=set)
    logs: str = ""

    def events(self, topic: Topic) -> list[dict[str, Any]]:
        """The topic's events, each event id once (its first copy: the outbox publishes at
        least once), in partition order."""
        return [
            json.loads(record.value) | {"_key": record.key, "_partition": record.partition}
            for record in distinct_events(self.records[topic])
        ]


@pytest.fixture(scope="module")
async def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Run]:
    tag = uuid.uuid4().hex[:10]
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, profile=KafkaProfile.EMBEDDED, topic_prefix=f"s{tag}."
    )
    await ensure_topics(kafka_bootstrap, prefix=kafka.topic_prefix)
    folder = tmp_path_factory.mktemp("scale")
    async with service_databases(POSTGRES_ADMIN_URL, DATABASES, tag) as databases:
        replicas = Replicas(folder, REPLICAS)
        await replicas.prepare(
            kafka_bootstrap,
            kafka.topic_prefix,
            _service_env(databases),
            runbooks_dir=runbooks_for_drift(folder),
        )
        for name in READS_REPLICA_1:
            replicas.configure(
                name, 1, {"VIGIL_REGISTRY_URL": replicas.url(ServiceName.RETRAINER, 1)}
            )
        for index in range(REPLICAS[ServiceName.RUNBOOK_RUNNER]):
            replicas.configure(
                ServiceName.RUNBOOK_RUNNER,
                index,
                {"VIGIL_RUNBOOK_RUNNER_INSTANCE": f"runner-{index}"},
            )
        try:
            yield await _play(kafka, replicas, databases)
        finally:
            await replicas.stop()


def _service_env(databases: dict[ServiceName, str]) -> dict[str, str]:
    return {f"{name.env_prefix}DATABASE_URL": url for name, url in databases.items()} | {
        "VIGIL_MONITOR_WINDOW_MAX_EVENTS": "none",
        "VIGIL_MONITOR_WINDOW_SECONDS": str(WINDOW_S),
        "VIGIL_MONITOR_MIN_LABELLED": "20",
        "VIGIL_MONITOR_MIN_PREDICTIONS": "20",
        "VIGIL_MONITOR_PROBES_ENABLED": "false",
        "VIGIL_DRIFT_DETECTOR_WINDOW_SIZE": "100",
        "VIGIL_DRIFT_DETECTOR_MIN_WINDOW_ROWS": "50",
        "VIGIL_DRIFT_DETECTOR_SCORE_REFERENCE_ROWS": "100",
        "VIGIL_RETRAINER_COOLDOWN_SECONDS": "0",
        "VIGIL_RETRAINER_LEASE_SECONDS": "5",  # a killed replica's run is taken over in 5 s
        "VIGIL_RETRAINER_WORKER_POLL_SECONDS": "0.5",
        "VIGIL_RUNBOOK_RUNNER_POLL_INTERVAL_SECONDS": "0.5",
        "VIGIL_RUNBOOK_RUNNER_RUN_LEASE_SECONDS": "10",
        "VIGIL_LOG_LEVEL": "INFO",
    }


async def _play(kafka: KafkaSettings, replicas: Replicas, databases: dict[ServiceName, str]) -> Run:
    dataset = training.load()
    await replicas.start(
        ServiceName.RETRAINER, ServiceName.INCIDENT_LOG, ServiceName.RUNBOOK_RUNNER
    )
    ana = (
        await issue_tokens(
            replicas.url(ServiceName.INCIDENT_LOG), replicas.admin_token, {"ana": "l2"}
        )
    )["ana"]
    await _register_and_deploy(replicas.url(ServiceName.RETRAINER), ana, dataset)
    await replicas.start(
        ServiceName.SCORER,
        ServiceName.MONITOR,
        ServiceName.DRIFT_DETECTOR,
    )
    await _served(replicas)
    kills: list[tuple[str, int, float]] = []
    retrains: list[str] = []
    killed_mid_run: dict[str, str] = {}
    async with Traffic(kafka, dataset, MODELS, rate_per_model=RATE_PER_MODEL) as traffic:
        await asyncio.sleep(10)  # the score references fill, the first windows close
        traffic.shifted.add(SHIFTED)
        await read_until(kafka, Topic.ALERTS, lambda rs: bool(_drift_raised(rs)), timeout_s=120)
        drift_raised_at = time.monotonic()
        owner = replicas.owner(
            ServiceName.DRIFT_DETECTOR, kafka.topic_name(Topic.PREDICTIONS), _partition(SHIFTED)
        )
        # Retrains of the two other models, asked of each registry replica, run during the kills.
        for index, model in enumerate(MODELS[1:]):
            url = replicas.url(ServiceName.RETRAINER, index)
            retrains.append(await ask_retrain(url, ana, model, f"manual:scale-{model}"))
        chosen: dict[ServiceName, int] = {}
        restarts: dict[tuple[ServiceName, int], asyncio.Task[None]] = {}
        for round_ in (0, 1):
            for name in SERVICES_KILLED:
                if round_ == 1:
                    if (name, chosen[name]) in restarts:  # never both replicas down at once
                        await restarts.pop((name, chosen[name]))
                    index = 1 - chosen[name]
                elif name is ServiceName.DRIFT_DETECTOR:
                    index = owner
                else:
                    index, busy = await _busy_replica(name, replicas, databases, ana, retrains)
                    if busy is not None:
                        killed_mid_run[name.value] = busy
                chosen[name] = index
                await _kill(name, index, replicas, kills, restarts)
        await asyncio.gather(*restarts.values())
        restarted_at = time.monotonic()
        traffic.shifted.discard(SHIFTED)
        try:
            await read_until(kafka, Topic.ALERTS, _shifted_model_recovered, timeout_s=150)
        except AssertionError:  # test_drift_opened_before_the_kills_recovers_after_them says so
            await _dump(kafka, replicas.folder)
        await traffic.stop()
        requests = {model: list(ids) for model, ids in traffic.requests.items()}
        everything = {r for ids in requests.values() for r in ids}
        await read_until(
            kafka,
            Topic.PREDICTIONS,
            lambda rs: everything <= {json.loads(r.value)["request_id"] for r in rs},
            timeout_s=60,
        )
        # One request per model in a later event-time bucket closes every model's last window.
        await asyncio.sleep(WINDOW_S - time.time() % WINDOW_S + 1.0)
        flush = await traffic.one_each("flush")
    outcome = Run(
        requests,
        flush,
        kills,
        drift_raised_at,
        restarted_at,
        retrains=retrains,
        killed_mid_run=killed_mid_run,
    )
    await _every_prediction_judged(kafka, replicas, requests)
    outcome.incidents = await _incidents_of(databases, await _all(kafka, Topic.ALERTS))
    await _retrains_finished(kafka, retrains)
    outcome.runbook_runs = await _runs_reported(kafka, databases[ServiceName.RUNBOOK_RUNNER])
    for topic in (Topic.PREDICTIONS, Topic.METRICS, Topic.DRIFT, Topic.ALERTS, *OPERATION_TOPICS):
        outcome.records[topic] = await _all(kafka, topic)
    # Again for the alerts the checks judge: one the last windows raised while the run was
    # being read has had no time to open its incident yet.
    outcome.incidents = await _incidents_of(databases, outcome.records[Topic.ALERTS])
    outcome.recorded_alerts = await _recorded_alerts(databases)
    outcome.logs = replicas.log_tails()
    return outcome


async def _every_prediction_judged(
    kafka: KafkaSettings, replicas: Replicas, requests: dict[str, list[str]]
) -> None:
    """Wait for the metrics windows to hold every request's prediction; on failure say, per
    model, how many were judged and what each monitor replica still holds open. Up to 180 s, as
    for the runbook runs: CI once saw 60 s pass beside two other workers (cause not kept)."""
    try:
        await read_until(kafka, Topic.METRICS, lambda rs: _all_judged(rs, requests), timeout_s=180)
    except AssertionError as failure:
        judged = _judged(await _all(kafka, Topic.METRICS))
        counts = {model: (judged[model], len(ids)) for model, ids in requests.items()}
        statuses = []
        async with httpx.AsyncClient(timeout=10) as client:
            for index in range(REPLICAS[ServiceName.MONITOR]):
                url = replicas.url(ServiceName.MONITOR, index)
                try:
                    body = (await client.get(f"{url}/status")).json()
                    held = {key: body.get(key) for key in ("open_windows", "clocks")}
                except (httpx.HTTPError, ValueError) as error:  # down, or not JSON
                    held = {"unreadable": repr(error)}
                statuses.append(f"monitor {index}: {json.dumps(held)}")
        raise AssertionError(
            f"{failure}; judged/requested per model {counts}\n"
            + "\n".join(statuses)
            + f"\n{replicas.log_tails()}"
        ) from failure


async def _incidents_of(
    databases: dict[ServiceName, str], alerts: list[Any]
) -> list[tuple[str, str, str]]:
    """The incident rows, once every raised alert among ``alerts`` has one (or after 60 s)."""
    raised = {
        event["fingerprint"]
        for event in map(json.loads, (r.value for r in alerts))
        if event["type"] == "alert.raised"
    }
    deadline = time.monotonic() + 60
    while True:
        incidents = await _incident_rows(databases)
        covered = raised <= {fingerprint for fingerprint, _, _ in incidents}
        if covered or time.monotonic() > deadline:
            return incidents
        await asyncio.sleep(1)


async def _busy_replica(
    name: ServiceName,
    replicas: Replicas,
    databases: dict[ServiceName, str],
    token: str,
    retrains: list[str],
) -> tuple[int, str | None]:
    """The replica to kill first: the runner executing a run asked for now, the retrainer
    training a retrain asked for now (its id, if caught mid-run); else replica 0."""
    if name is ServiceName.RUNBOOK_RUNNER:
        # Replica 1: replica 0 of the incident log was killed just before, in this round.
        run = await ask_runbook(replicas.url(ServiceName.INCIDENT_LOG, 1), token, SHIFTED)
        holder = await run_holder(databases[name], run)
    elif name is ServiceName.RETRAINER:
        url = replicas.url(ServiceName.RETRAINER, 1)
        run = await ask_retrain(url, token, SHIFTED, f"manual:scale-{SHIFTED}")
        retrains.append(run)
        holder = await retrain_holder(replicas, databases[name], run)
    else:
        return 0, None
    return (0, None) if holder is None else (holder, run)


async def _kill(
    name: ServiceName,
    index: int,
    replicas: Replicas,
    kills: list[tuple[str, int, float]],
    restarts: dict[tuple[ServiceName, int], asyncio.Task[None]],
) -> None:
    """SIGKILL one replica, restart it in the background, and let the other work alone a bit."""
    await replicas.kill(name, index)
    kills.append((name.value, index, time.monotonic()))
    restarts[(name, index)] = asyncio.create_task(replicas.restart(name, index))
    await asyncio.sleep(3)


def _types(records: list[Any], *types: str) -> list[dict[str, Any]]:
    """Distinct events (by id) of these types, in topic order."""
    seen: set[str] = set()
    found = []
    for event in map(json.loads, (r.value for r in records)):
        if event["type"] in types and event["event_id"] not in seen:
            seen.add(event["event_id"])
            found.append(event)
    return found


async def _retrains_finished(kafka: KafkaSettings, runs: list[str]) -> None:
    """Wait until every retrain asked for has finished (a killed replica's run resumes once
    its lease lapses)."""
    await read_until(
        kafka,
        Topic.MODELS,
        lambda rs: set(runs) <= {e["run_id"] for e in _types(rs, "retrain.finished")},
        timeout_s=180,
    )


async def _runs_reported(kafka: KafkaSettings, database: str) -> list[tuple[str, str, str | None]]:
    """Wait until every run the runners recorded has ended and been reported; the rows."""
    deadline = time.monotonic() + 180
    while True:
        rows = [
            (str(run), str(state), None if owner is None else str(owner))
            for run, state, owner in await _query(
                database, "SELECT run_id, state, owner FROM runbook_runs"
            )
        ]
        ended = {run for run, state, _ in rows if state in FINAL_STATES}
        if rows and len(ended) == len(rows):
            await read_until(kafka, Topic.RUNBOOK_RESULTS, _all_reported(ended), timeout_s=60)
            return rows
        assert time.monotonic() < deadline, f"runs still open: {rows}"
        await asyncio.sleep(1)


def _all_reported(runs: set[str]) -> Callable[[list[Any]], bool]:
    return lambda records: runs <= {e["run_id"] for e in _types(records, "runbook.finished")}


async def _dump(kafka: KafkaSettings, folder: Path) -> None:
    """Write the alerts and drift reports to the test's folder, one JSON event a line (what a
    failure is investigated with)."""
    for topic in (Topic.ALERTS, Topic.DRIFT):
        lines = [f"{r.partition} {r.offset} {r.value.decode()}" for r in await _all(kafka, topic)]
        (folder / f"{topic.value}.jsonl").write_text("\n".join(lines))


async def _all(kafka: KafkaSettings, topic: Topic) -> list[Any]:
    return await read_until_quiet(kafka, topic, quiet_s=2.0, timeout_s=120)


async def _register_and_deploy(registry: str, token: str, dataset: scenario.Dataset) -> None:
    artifact = skops.io.dumps(training.train(dataset, 1.0))
    rows = scenario.to_csv(dataset.features, dataset.train_x, dataset.train_y)
    metadata = {
        "sklearn_version": sklearn.__version__,
        "dataset_name": scenario.MODEL,
        "dataset_version": "scale-test",
        "metrics": {"recall": 0.93},
        "parameters": scenario.recipe(1.0),
        "code_version": "scale-test",
        "spec": scenario.monitoring_spec(dataset).model_dump(mode="json"),
        "reason": "scale test",
    }
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=registry, headers=headers, timeout=60) as http:
        for model in MODELS:
            response = await http.post(
                f"/models/{model}/versions",
                data={"metadata": json.dumps(metadata)},
                files={"artifact": ("model.skops", artifact), "training_data": ("t.csv", rows)},
            )
            assert response.status_code == 201, response.text
            response = await http.put(
                f"/models/{model}/deployment", json={"champion": 1, "reason": "scale test"}
            )
            assert response.status_code == 200, response.text


async def _served(replicas: Replicas, timeout_s: float = 60) -> None:
    """Wait until every scorer replica serves every model (traffic before would be refused)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        for index in range(REPLICAS[ServiceName.SCORER]):
            url = replicas.url(ServiceName.SCORER, index)
            while not set(MODELS) <= set((await http.get(f"{url}/deployments")).json()):
                assert time.monotonic() < deadline, f"scorer {index} does not serve {MODELS}"
                await asyncio.sleep(0.5)


def _partition(model: str) -> int:
    """The partition of a model's model-keyed topics (Kafka's default partitioner)."""
    partitions = list(range(TOPICS[Topic.PREDICTIONS].partitions))
    return int(DefaultPartitioner()(model.encode(), partitions, partitions))


def _drift_raised(records: list[Any]) -> list[dict[str, Any]]:
    return [
        event
        for event in map(json.loads, (r.value for r in records))
        if event["type"] == "alert.raised"
        and event["model"] == SHIFTED
        and event["kind"] in DRIFT_KINDS
    ]


def _last_by_fingerprint(records: list[Any], model: str) -> dict[str, str]:
    last: dict[str, str] = {}
    for event in map(json.loads, (r.value for r in records)):
        if event["model"] == model and event["type"] in ("alert.raised", "alert.recovered"):
            last[event["fingerprint"]] = event["type"]
    return last


def _shifted_model_recovered(records: list[Any]) -> bool:
    """Every episode of the shifted model (drift and metrics) has recovered."""
    last = _last_by_fingerprint(records, SHIFTED)
    return bool(last) and all(kind == "alert.recovered" for kind in last.values())


def _judged(records: list[Any]) -> Counter[str]:
    """Predictions per model over the distinct metrics windows."""
    counted: Counter[str] = Counter()
    seen: set[str] = set()
    for event in map(json.loads, (r.value for r in records)):
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            counted[event["model"]] += event["predictions"]
    return counted


def _all_judged(records: list[Any], requests: dict[str, list[str]]) -> bool:
    judged = _judged(records)
    return all(judged[model] >= len(ids) for model, ids in requests.items())


def _context(run: Run) -> str:
    return f"kills {run.kills}\n{run.logs}"


def _alert_sequences(run: Run, kinds: set[str] | None) -> dict[str, list[dict[str, Any]]]:
    """Each fingerprint's distinct alert events (raised, recovered) in topic order."""
    sequences: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in run.events(Topic.ALERTS):
        if kinds is None or event["kind"] in kinds:
            sequences[event["fingerprint"]].append(event)
    return sequences


def _episode_breaks(sequences: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Where a fingerprint's events do not alternate raised → recovered: an alert raised twice
    in one episode (a duplicate), or a recovery of no open episode."""
    breaks = []
    for fingerprint, events in sequences.items():
        expected = "alert.raised"
        for event in events:
            if event["type"] != expected:
                breaks.append(f"{event['model']} {event['kind']} {fingerprint}: {event['type']}")
            expected = "alert.recovered" if event["type"] == "alert.raised" else "alert.raised"
    return breaks


def test_every_request_has_exactly_one_prediction(run: Run) -> None:
    ids = Counter(event["request_id"] for event in run.events(Topic.PREDICTIONS))
    sent = [request for requests in run.requests.values() for request in requests]
    assert len(sent) > 2000
    assert [r for r in sent if r not in ids] == [], _context(run)
    assert [r for r in sent if ids[r] > 1] == [], _context(run)  # two distinct predictions


def test_every_prediction_is_judged_once_in_exactly_one_metrics_window(run: Run) -> None:
    # A window is named by its first and last event times: two windows can share a start (a
    # label this traffic dates before its prediction widens the next window back to it).
    windows = Counter(
        (
            event["model"],
            event["model_version"],
            event["variant"],
            event["window"]["start"],
            event["window"]["end"],
        )
        for event in run.events(Topic.METRICS)
    )
    assert [window for window, n in windows.items() if n > 1] == [], _context(run)
    judged = _judged(run.records[Topic.METRICS])
    assert dict(judged) == {model: len(ids) for model, ids in run.requests.items()}, _context(run)


def test_no_metrics_alert_is_raised_twice_or_lost(run: Run) -> None:
    sequences = _alert_sequences(run, {kind.value for kind in AlertKind} - DRIFT_KINDS)
    assert _episode_breaks(sequences) == [], _context(run)
    assert {event["model"] for events in sequences.values() for event in events} >= {SHIFTED}


def _overlapping_drift_episodes(run: Run) -> list[str]:
    """A drift detector keeps one episode per model version and kind: a raise while another of
    the same (model, version, kind) is open is the same episode raised twice."""
    open_: dict[tuple[str, int, str], set[str]] = defaultdict(set)
    twice = []
    for event in run.events(Topic.ALERTS):
        if event["kind"] not in DRIFT_KINDS:
            continue
        key = (event["model"], event["model_version"], event["kind"])
        if event["type"] == "alert.raised":
            if open_[key] - {event["fingerprint"]}:
                twice.append(f"{key}: {event['fingerprint']} while {sorted(open_[key])} open")
            open_[key].add(event["fingerprint"])
        else:
            open_[key].discard(event["fingerprint"])
    return twice


def test_no_drift_alert_is_raised_twice_or_lost(run: Run) -> None:
    sequences = _alert_sequences(run, DRIFT_KINDS)
    assert _episode_breaks(sequences) == [], _context(run)
    assert _overlapping_drift_episodes(run) == [], _context(run)


def test_every_alert_is_recorded_by_the_incident_log(run: Run) -> None:
    sent = {uuid.UUID(event["event_id"]) for event in run.events(Topic.ALERTS)}
    raised = {
        uuid.UUID(event["event_id"])
        for event in run.events(Topic.ALERTS)
        if event["type"] == "alert.raised"
    }
    assert raised - run.recorded_alerts == set(), _context(run)
    assert sent  # the run raised alerts at all


def test_drift_opened_before_the_kills_recovers_after_them(run: Run) -> None:
    first_kill = min(at for _, _, at in run.kills)
    assert run.drift_raised_at < first_kill
    assert sorted((name, index) for name, index, _ in run.kills) == sorted(
        (name.value, index) for name in SERVICES_KILLED for index in (0, 1)
    )
    sequences = _alert_sequences(run, DRIFT_KINDS)
    shifted = {fp: events for fp, events in sequences.items() if events[0]["model"] == SHIFTED}
    assert shifted, _context(run)
    for fingerprint, events in shifted.items():
        assert events[-1]["type"] == "alert.recovered", (fingerprint, events)


def test_no_duplicate_incident(run: Run) -> None:
    raised = _alert_sequences(run, None)
    episodes = {
        fingerprint: sum(1 for event in events if event["type"] == "alert.raised")
        for fingerprint, events in raised.items()
    }
    incidents: dict[str, set[str]] = defaultdict(set)
    unresolved: dict[str, set[str]] = defaultdict(set)
    for fingerprint, incident, status in run.incidents:
        incidents[fingerprint].add(incident)
        if status != "resolved":
            unresolved[fingerprint].add(incident)
    assert [fp for fp, n in episodes.items() if n and not incidents[fp]] == [], _context(run)
    assert {fp: ids for fp, ids in unresolved.items() if len(ids) > 1} == {}, _context(run)
    assert {fp: ids for fp, ids in incidents.items() if len(ids) > episodes.get(fp, 0)} == {}, (
        _context(run)
    )


@pytest.mark.parametrize(
    "topic", [Topic.PREDICTIONS, Topic.METRICS, Topic.DRIFT, Topic.ALERTS, *OPERATION_TOPICS]
)
def test_each_keys_events_are_in_order(run: Run, topic: Topic) -> None:
    last: dict[Any, datetime] = {}
    out_of_order = []
    for event in run.events(topic):
        # Per key and producer (the monitor and the drift detector both key alerts by model),
        # and per series where a key holds several (a model's versions and variants).
        key = (event["_key"], event["producer"], event.get("model_version"), event.get("variant"))
        at = datetime.fromisoformat(
            event["window"]["end"] if topic is Topic.METRICS else event["occurred_at"]
        )
        if key in last and at < last[key]:
            out_of_order.append(f"{key}: {at.isoformat()} after {last[key].isoformat()}")
        last[key] = max(at, last.get(key, at))
    assert out_of_order == [], _context(run)


def test_each_runbook_run_is_executed_and_reported_once(run: Run) -> None:
    """Two runners share one queue: every run recorded once, started at most once, finished
    (reported) exactly once; the run whose runner was killed while executing it is reported
    abandoned (ADR 0007: never run again), by the restarted runner or the other one."""
    assert len(run.runbook_runs) >= 2, run.runbook_runs  # the drift incident's, and by hand
    records = run.records[Topic.RUNBOOK_RESULTS]
    started = Counter(e["run_id"] for e in _types(records, "runbook.started"))
    finished = Counter(e["run_id"] for e in _types(records, "runbook.finished"))
    assert {r: n for r, n in started.items() if n > 1} == {}, _context(run)
    assert dict(finished) == {run_id: 1 for run_id, _, _ in run.runbook_runs}, _context(run)
    states = {e["run_id"]: e["state"] for e in _types(records, "runbook.finished")}
    assert {run_id: states[run_id] for run_id, _, _ in run.runbook_runs} == {
        run_id: state for run_id, state, _ in run.runbook_runs
    }
    killed = run.killed_mid_run.get(ServiceName.RUNBOOK_RUNNER.value)
    if killed is not None:
        assert states[killed] == "abandoned", (killed, states)


def test_each_retrain_is_one_run_with_at_most_one_registered_version(run: Run) -> None:
    """Two registry replicas share the queue: each asked run starts and finishes once (a run
    whose retrainer was killed resumes in the other and still finishes once), registers at
    most one version, and no version is registered twice."""
    records = run.records[Topic.MODELS]
    finished = _types(records, "retrain.finished")
    by_run = Counter(e["run_id"] for e in finished)
    assert {r: by_run[r] for r in run.retrains} == dict.fromkeys(run.retrains, 1), _context(run)
    registered = Counter(
        (e["model"], e["record"]["version"]) for e in _types(records, "model.registered")
    )
    assert {key: n for key, n in registered.items() if n > 1} == {}, _context(run)
    candidates = [(e["model"], e["candidate_version"]) for e in finished if e["run_id"]]
    made = [key for key in candidates if key[1] is not None]
    assert len(made) == len(set(made)), made  # no two runs claim one version
    assert set(made) <= set(registered), (made, registered)
    extra = {key for key in registered if key[1] > 1}
    assert extra <= set(made), (extra, made)  # every new version came from a run, once


def test_registry_and_runbook_outcomes_are_published_once(run: Run) -> None:
    """No change of the registry, ask answer or run outcome is published twice under two ids
    (a replica killed between deciding and publishing, or two replicas deciding the same)."""
    once = {
        Topic.MODELS: ("model.deployed", "candidate.evaluated", "promotion.requested"),
        Topic.RETRAIN_REQUESTS: ("retrain.answered",),
    }
    for topic, types in once.items():
        for kind in types:
            events = _types(run.records[topic], kind)
            keys = Counter(
                json.dumps({k: v for k, v in e.items() if k not in _STAMPS}, sort_keys=True)
                for e in events
            )
            assert [k for k, n in keys.items() if n > 1] == [], (topic, kind, _context(run))


_STAMPS = {"event_id", "occurred_at", "correlation_id", "causation_id", "producer"}
"""Fields two copies of one decision could differ in; the rest says what was decided."""

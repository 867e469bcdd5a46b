"""Chaos: the whole stack (as ``vigil up`` runs it) under steady scoring traffic, labels, alerts
and registry writes, while a random service (never the broker) is SIGKILLed at a random moment
every so often and the supervisor restarts it with its backoff. Then the load stops, the system
settles (bounded) and what the real system kept is counted:

- every scoring request sent has a prediction (a fresh consumer reads ``predictions``);
  duplicates are allowed (at least once) and counted apart;
- every alert was recorded, every alert fingerprint has an incident, and no fingerprint has two
  unresolved incidents (the incident log's database);
- no runbook run was executed twice: the chaos runbook (``chaos_runbook.py``) appends its run id
  to an effects log as its first act, so that log is the record of real executions;
- every registry write answered 2xx is still in the registry (its API);
- what went to the dead-letter topic.

``bench/chaos.py`` runs it long (20+ kills) and prints the tally; ``tests/e2e/test_chaos.py`` runs
it short and asserts the same invariants.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import sklearn
import skops.io
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text
from sqlalchemy.engine import make_url

from contracts import (
    AlertKind,
    AlertRaised,
    Envelope,
    LabelRecorded,
    ScoringRequest,
    Severity,
    Topic,
    alert_fingerprint,
)
from services.runtime.database import create_engine
from services.runtime.kafka import kafka_broker
from services.runtime.names import ServiceName
from services.runtime.publisher import EventPublisher
from services.runtime.settings import KafkaProfile, KafkaSettings
from services.stack import chaos_runbook, scenario, training
from services.stack.stack import STARTUP_ORDER, RunningStack, StackSettings, running_stack
from services.stack.supervisor import ChildState

__all__ = ["ChaosOptions", "Tally", "run_chaos"]

Say = Callable[[str], None]

ALERT_MODEL = "chaos-signals"
"""The model the chaos alerts are about (no such model is registered: the incident log does not
need one); each fingerprint has its own version, so each becomes its own incident."""

RUNBOOK = "chaos-effect"

STATEFUL = (
    ServiceName.RETRAINER,
    ServiceName.INCIDENT_LOG,
    ServiceName.MONITOR,
    ServiceName.RUNBOOK_RUNNER,
)
"""The services with a database; the suite names each one's explicitly, and reads two."""

Databases = dict[ServiceName, str]

_UNFINISHED_RUNS = ("requested", "running", "verifying")


@dataclass
class ChaosOptions:
    """How a chaos run goes."""

    state_dir: Path
    seed: int
    kills: int = 20
    kill_every_s: tuple[float, float] = (10.0, 20.0)
    services: list[ServiceName] | None = None
    """Which services run (None: all, as ``vigil up``); a short run can leave out those it
    neither kills nor counts (the monitor, the drift detector)."""
    targets: list[ServiceName] | None = None
    """Kill these in a seeded order, each once before any twice (a short run covers them);
    None: any running service, chosen at random each time."""
    requests_per_s: float = 20.0
    label_delay_s: float = 2.0
    new_fingerprint_every_s: float = 3.0
    repeat_alerts_per_s: float = 1.0
    registry_write_every_s: float = 8.0
    settle_timeout_s: float = 300.0
    postgres_url: str | None = None
    """An administrative PostgreSQL URL: each stateful service gets a fresh database there
    (dropped afterwards) instead of a SQLite file in the state folder."""
    broker_port: int = 19092
    ports: dict[ServiceName, int] = field(default_factory=dict)


@dataclass
class Tally:
    """What a chaos run counted in the real system afterwards."""

    kills: int
    kills_by_service: dict[str, int]
    restarts_by_service: dict[str, int]
    requests: int
    predictions_unique: int
    predictions_duplicate: int
    lost: int
    alerts_sent: int
    alerts_lost: int
    alert_fingerprints: int
    fingerprints_without_incident: int
    duplicate_incidents: int
    incidents: int
    incidents_without_run: int
    runbook_runs: dict[str, int]
    runbook_runs_executed: int
    runbook_runs_executed_twice: int
    runbook_runs_succeeded_unexecuted: int
    registry_writes_attempted: int
    registry_writes_acknowledged: int
    registry_write_failures: dict[str, int]
    registry_changes_lost: int
    dead_lettered: int
    dead_lettered_by_topic: dict[str, int]
    dead_letter_errors: dict[str, int] = field(default_factory=dict)
    """Why: each distinct "topic: error" (cut to 160 characters) with its count."""
    seed: int = 0
    unsettled: list[str] = field(default_factory=list)
    """What had not settled when the settling time ran out (empty: everything had)."""
    durations_s: dict[str, float] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        """Whether the system settled within the bound."""
        return not self.unsettled

    def as_json(self) -> dict[str, Any]:
        """The tally as the benchmark's JSON object."""
        return {"benchmark": "chaos"} | asdict(self) | {"settled": self.settled}


async def run_chaos(options: ChaosOptions, say: Say) -> Tally:
    """Start the stack, load it while killing services, settle, count; stop the stack."""
    started = time.monotonic()
    rng = random.Random(options.seed)
    runbooks_dir = prepare_runbooks(options.state_dir, StackSettings().runbooks_dir)
    say(f"starting the stack in {options.state_dir} (seed {options.seed})")
    async with (
        service_databases(options, tag=f"{options.seed:x}") as databases,
        running_stack(
            StackSettings(
                state_dir=options.state_dir,
                broker_port=options.broker_port,
                ports=options.ports,
                runbooks_dir=runbooks_dir,
                services=options.services or list(STARTUP_ORDER),
                service_env={
                    f"{name.env_prefix}DATABASE_URL": url for name, url in databases.items()
                },
            )
        ) as stack,
    ):
        up = time.monotonic()
        say(f"stack up in {up - started:.0f} s")
        kafka = KafkaSettings(
            bootstrap_servers=stack.bootstrap_servers, profile=KafkaProfile.EMBEDDED
        )
        admin = {"Authorization": f"Bearer {stack.credentials.admin_token}"}
        async with httpx.AsyncClient(timeout=30) as http:
            writer = await _token(http, stack, admin, "chaos-writer", "l2")
            registry = RegistryWrites(http, stack.url(ServiceName.RETRAINER), writer)
            await registry.first_deployment()
            await _wait_served(http, stack.url(ServiceName.SCORER))
            say("model v1 deployed and served; load starts")
            killer = Killer(stack, rng, options)
            load_started = time.monotonic()
            async with (
                Load(kafka, options, rng) as load,
                registry.every(options.registry_write_every_s),
            ):
                await killer.run(say)
                say("last kill done; waiting for every service to be ready")
                await _all_ready(stack, options.settle_timeout_s)
            load_stopped = time.monotonic()
            say(
                f"load stopped: {len(load.requests)} requests, {len(load.alerts)} alerts, "
                f"{len(registry.acknowledged)} registry writes acknowledged"
            )
            unsettled = await settle(stack, kafka, databases, load, options.settle_timeout_s, say)
            settled_at = time.monotonic()
            tally = await count(stack, kafka, databases, load, registry, killer, runbooks_dir)
    tally.seed = options.seed
    tally.unsettled = unsettled
    tally.durations_s = {
        "startup": round(up - started, 1),
        "load": round(load_stopped - load_started, 1),
        "settle": round(settled_at - load_stopped, 1),
        "count_and_stop": round(time.monotonic() - settled_at, 1),
        "total": round(time.monotonic() - started, 1),
    }
    return tally


def prepare_runbooks(state_dir: Path, shipped: Path) -> Path:
    """The shipped runbooks plus the chaos runbook, in a folder of the run's own: its catalogue
    gains ``chaos-effect``, its routing policy a route sending the chaos alerts to it (with a
    short group wait and timers that never escalate during the run)."""
    folder = state_dir.resolve() / "runbooks"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(shipped, folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(chaos_runbook.__file__, folder / "chaos_runbook.py")
    catalog = yaml.safe_load((folder / "catalog.yaml").read_text())
    run = ["python", "chaos_runbook.py", "--run", "{run_id}"]
    catalog["runbooks"].append(
        {
            "name": RUNBOOK,
            "purpose": "Record its run id in effects.log (the chaos suite counts executions).",
            "alert_kinds": [AlertKind.MANUAL.value],
            "tier": "L1",
            "command": run,
            "parameters": {
                "run_id": {"from": "run_id", "type": "str", "pattern": "^[A-Za-z0-9._:-]+$"}
            },
            "timeout_seconds": 60,
            "verify": {"command": [*run, "--verify"], "timeout_seconds": 60},
            "max_concurrent_per_model": 100,
        }
    )
    (folder / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    policy = yaml.safe_load((folder / "routing.yaml").read_text())
    policy["group_wait_seconds"] = 2
    patient = {"ack_timeout_minutes": 600, "mitigate_timeout_minutes": 600}
    policy["routes"].insert(
        0,
        {
            "name": "chaos",
            "match": {"kinds": [AlertKind.MANUAL.value], "models": [ALERT_MODEL]},
            "runbooks": [RUNBOOK],
            "tiers": {tier: dict(patient) for tier in ("L1", "L2", "L3")},
        },
    )
    (folder / "routing.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    return folder


def effects_log(runbooks_dir: Path) -> Path:
    """Where the chaos runbook records its executions."""
    return runbooks_dir / chaos_runbook.EFFECTS.name


class Load:
    """Scoring requests at a steady rate with each one's label a little later, and alerts: a new
    fingerprint every few seconds and repeats of known ones. Remembers what the broker acked."""

    def __init__(self, kafka: KafkaSettings, options: ChaosOptions, rng: random.Random) -> None:
        self._kafka = kafka
        self._options = options
        self._rng = random.Random(rng.random())
        self.requests: set[str] = set()
        self.alerts: set[UUID] = set()
        self.fingerprints: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Load:
        broker = kafka_broker(self._kafka, client_id="vigil-chaos")
        self._publisher = EventPublisher(broker, self._kafka, client_id="vigil-chaos")
        await self._publisher.start()
        self._tasks = [asyncio.create_task(self._scoring()), asyncio.create_task(self._alerting())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._publisher.stop()
        for result in results:
            if isinstance(result, Exception):
                raise result

    async def _publish(self, events: list[Envelope]) -> None:
        await self._publisher.publish_many(events)  # returns once the broker acked every one
        for event in events:
            if isinstance(event, ScoringRequest):
                self.requests.add(event.request_id)
            elif isinstance(event, AlertRaised):
                self.alerts.add(event.event_id)
                self.fingerprints.add(event.fingerprint)

    async def _scoring(self) -> None:
        dataset = training.load()
        requests = scenario.traffic(dataset, shifted=False, start=0, seed=self._rng.randrange(99))
        labels: deque[tuple[float, LabelRecorded]] = deque()
        tick, owed = 0.05, 0.0
        while True:
            now = time.monotonic()
            owed += self._options.requests_per_s * tick
            batch: list[Envelope] = []
            while owed >= 1:
                owed -= 1
                request = next(requests)
                batch.append(
                    ScoringRequest(
                        producer="chaos-client",
                        model=scenario.MODEL,
                        request_id=request.request_id,
                        features=request.features,
                    )
                )
                label = LabelRecorded(
                    producer="chaos-client",
                    model=scenario.MODEL,
                    request_id=request.request_id,
                    label=request.label,
                )
                labels.append((now + self._options.label_delay_s, label))
            while labels and labels[0][0] <= now:
                batch.append(labels.popleft()[1])
            if batch:
                await self._publish(batch)
            await asyncio.sleep(tick)

    async def _alerting(self) -> None:
        known: list[AlertRaised] = []
        tick = 0.25
        next_new = time.monotonic()
        while True:
            batch: list[Envelope] = []
            if time.monotonic() >= next_new:
                next_new += self._options.new_fingerprint_every_s
                version = len(known) + 1
                subject = f"signal-{version}"
                known.append(
                    AlertRaised(
                        producer="chaos-client",
                        model=ALERT_MODEL,
                        model_version=version,
                        kind=AlertKind.MANUAL,
                        severity=Severity.WARNING,
                        fingerprint=alert_fingerprint(
                            ALERT_MODEL, version, AlertKind.MANUAL, subject
                        ),
                        summary=f"chaos signal {subject}",
                    )
                )
                batch.append(known[-1])
            if known and self._rng.random() < self._options.repeat_alerts_per_s * tick:
                again = self._rng.choice(known)
                batch.append(
                    again.model_copy(update={"event_id": UUID(int=self._rng.getrandbits(128))})
                )
            if batch:
                await self._publish(batch)
            await asyncio.sleep(tick)


@dataclass(frozen=True)
class RegistryWrite:
    """A registry change the registry acknowledged (2xx)."""

    kind: str  # "version" or "deployment"
    number: int  # the version, or the deployment's revision
    sha256: str | None = None


class RegistryWrites:
    """Registers versions of the scored model and deploys them, remembering each write the
    registry acknowledged; a write that fails or times out is not counted (nor retried)."""

    def __init__(self, http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self._http = http
        self._url = url
        self._headers = headers
        self._dataset = training.load()
        self._spec = scenario.monitoring_spec(self._dataset).model_dump(mode="json")
        self.acknowledged: list[RegistryWrite] = []
        self.attempts = 0
        self.failures: Counter[str] = Counter()
        """Unacknowledged writes by cause: ``unreachable``, or the HTTP status."""

    async def first_deployment(self) -> None:
        """v1, registered and deployed (the registry is up: no failure is expected)."""
        version = await self._register()
        if version is None or await self._deploy(version) is None:
            raise RuntimeError("the registry refused the first registration or deployment")

    @asynccontextmanager
    async def every(self, interval_s: float) -> AsyncIterator[None]:
        """Alternately register a version and deploy the latest, every ``interval_s``."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                versions = [w.number for w in self.acknowledged if w.kind == "version"]
                if len(self.acknowledged) % 2 == 0:
                    await self._register()
                else:
                    await self._deploy(max(versions))

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _register(self) -> int | None:
        model = await asyncio.to_thread(training.train, self._dataset, 1.0)
        artifact = skops.io.dumps(model)
        metadata = {
            "sklearn_version": sklearn.__version__,
            "dataset_name": scenario.MODEL,
            "dataset_version": "chaos",
            "metrics": {"recall": 0.93},
            "parameters": scenario.recipe(1.0),
            "code_version": "vigil-chaos",
            "spec": self._spec,
            "reason": "chaos suite",
        }
        csv = scenario.to_csv(self._dataset.features, self._dataset.train_x, self._dataset.train_y)
        response = await self._write(
            "POST",
            f"/models/{scenario.MODEL}/versions",
            data={"metadata": json.dumps(metadata)},
            files={"artifact": ("model.skops", artifact), "training_data": ("train.csv", csv)},
        )
        if response is None:
            return None
        body = response.json()
        self.acknowledged.append(
            RegistryWrite("version", int(body["version"]), str(body["artifact_sha256"]))
        )
        return int(body["version"])

    async def _deploy(self, version: int) -> int | None:
        response = await self._write(
            "PUT",
            f"/models/{scenario.MODEL}/deployment",
            json={"champion": version, "reason": "chaos suite"},
        )
        if response is None:
            return None
        revision = int(response.json()["revision"])
        self.acknowledged.append(RegistryWrite("deployment", revision))
        return revision

    async def _write(self, method: str, path: str, **body: Any) -> httpx.Response | None:
        self.attempts += 1
        try:
            response = await self._http.request(
                method, f"{self._url}{path}", headers=self._headers, **body
            )
        except httpx.TransportError:
            self.failures["unreachable"] += 1  # down, or died mid-answer: not acknowledged
            return None
        if not response.is_success:
            self.failures[str(response.status_code)] += 1
            return None
        return response

    async def lost(self) -> int:
        """How many acknowledged writes the registry no longer shows."""
        detail = (await self._http.get(f"{self._url}/models/{scenario.MODEL}")).json()
        versions = {int(v["version"]): v["artifact_sha256"] for v in detail["versions"]}
        history = (await self._http.get(f"{self._url}/models/{scenario.MODEL}/history")).json()
        revisions = {int(r["revision"]) for r in history["revisions"]}
        return sum(
            1
            for write in self.acknowledged
            if (write.kind == "version" and versions.get(write.number) != write.sha256)
            or (write.kind == "deployment" and write.number not in revisions)
        )


class Killer:
    """SIGKILLs a random running service (never the broker) after a random pause, ``kills``
    times; the supervisor restarts each as it would in production."""

    def __init__(self, stack: RunningStack, rng: random.Random, options: ChaosOptions) -> None:
        self._stack = stack
        self._rng = random.Random(rng.random())
        self._options = options
        self.kills: Counter[str] = Counter()
        self._turns: list[str] = []

    async def run(self, say: Say) -> None:
        low, high = self._options.kill_every_s
        while self.total < self._options.kills:
            await asyncio.sleep(self._rng.uniform(low, high))
            running = {
                status.name: status.pid
                for status in self._stack.supervisor.status()
                if status.pid is not None
            }
            name = self._pick(sorted(running))
            if name is None:
                continue
            try:
                os.kill(running[name], signal.SIGKILL)
            except ProcessLookupError:
                continue  # it died on its own just now: the supervisor has it
            self.kills[name] += 1
            say(f"kill {self.total}/{self._options.kills}: {name} (pid {running[name]})")

    @property
    def total(self) -> int:
        """Kills so far."""
        return sum(self.kills.values())

    def _pick(self, running: list[str]) -> str | None:
        if not self._options.targets:
            return self._rng.choice(running) if running else None
        if not self._turns:
            self._turns = [target.value for target in self._options.targets]
            self._rng.shuffle(self._turns)
        if self._turns[-1] not in running:
            return None  # restarting still: try again after the next pause
        return self._turns.pop()


async def settle(
    stack: RunningStack,
    kafka: KafkaSettings,
    databases: Databases,
    load: Load,
    timeout_s: float,
    say: Say,
) -> list[str]:
    """Wait (at most ``timeout_s``) until every request has a prediction, every fingerprint an
    incident, and no runbook run is waiting or running; return what never settled."""
    deadline = time.monotonic() + timeout_s
    pending: list[str] = []
    predicted: set[str] = set()
    async with _from_the_beginning(kafka, Topic.PREDICTIONS) as predictions:
        while True:
            while records := await predictions.read():
                predicted.update(_fields(value, ("request_id",))[0] for value in records)
            pending = []
            if not load.requests <= predicted:
                pending.append(f"{len(load.requests - predicted)} requests unpredicted")
            incidents = await _incident_rows(databases)
            missing = load.fingerprints - {fingerprint for fingerprint, _, _ in incidents}
            if missing:
                pending.append(f"{len(missing)} fingerprints without an incident")
            runs = await _run_rows(databases)
            unasked = _without_run(load, incidents, runs)
            if unasked:
                pending.append(f"{unasked} chaos incidents without a runbook run")
            unfinished = sum(1 for _, _, state, _ in runs if state in _UNFINISHED_RUNS)
            if unfinished:
                pending.append(f"{unfinished} runbook runs unfinished")
            not_ready = [
                s.name for s in stack.supervisor.status() if s.state is not ChildState.READY
            ]
            if not_ready:
                pending.append(f"not ready: {', '.join(not_ready)}")
            if not pending or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
    say("settled" if not pending else f"did not settle: {'; '.join(pending)}")
    return pending


async def count(
    stack: RunningStack,
    kafka: KafkaSettings,
    databases: Databases,
    load: Load,
    registry: RegistryWrites,
    killer: Killer,
    runbooks_dir: Path,
) -> Tally:
    """Count what the system kept, from its topics, databases, APIs and the runbook's effects."""
    predicted = Counter(
        request_id
        for request_id in await read_field(kafka, Topic.PREDICTIONS, "request_id")
        if request_id in load.requests
    )
    dead_letters = await read_fields(kafka, Topic.DEAD_LETTER, ("original_topic", "error"))
    dead = [topic for topic, _ in dead_letters]
    incidents = await _incident_rows(databases)
    unresolved: dict[str, set[str]] = {}
    for fingerprint, incident_id, status in incidents:
        if status != "resolved":
            unresolved.setdefault(fingerprint, set()).add(incident_id)
    recorded_alerts = await _recorded_alerts(databases)
    runs = await _run_rows(databases)
    executions = Counter(chaos_runbook.executed(effects_log(runbooks_dir)))
    succeeded = {
        run_id for run_id, runbook, state, _ in runs if runbook == RUNBOOK and state == "succeeded"
    }
    restarts = {s.name: s.restarts for s in stack.supervisor.status()}
    return Tally(
        seed=0,
        kills=killer.total,
        kills_by_service=dict(sorted(killer.kills.items())),
        restarts_by_service=restarts,
        requests=len(load.requests),
        predictions_unique=len(predicted),
        predictions_duplicate=sum(predicted.values()) - len(predicted),
        lost=len(load.requests) - len(predicted),
        alerts_sent=len(load.alerts),
        alerts_lost=len(load.alerts - recorded_alerts),
        alert_fingerprints=len(load.fingerprints),
        fingerprints_without_incident=len(
            load.fingerprints - {fingerprint for fingerprint, _, _ in incidents}
        ),
        duplicate_incidents=sum(len(ids) - 1 for ids in unresolved.values() if len(ids) > 1),
        incidents=len({incident_id for _, incident_id, _ in incidents}),
        incidents_without_run=_without_run(load, incidents, runs),
        runbook_runs=dict(sorted(Counter(state for _, _, state, _ in runs).items())),
        runbook_runs_executed=len(executions),
        runbook_runs_executed_twice=sum(1 for n in executions.values() if n > 1),
        runbook_runs_succeeded_unexecuted=len(succeeded - set(executions)),
        registry_writes_attempted=registry.attempts,
        registry_writes_acknowledged=len(registry.acknowledged),
        registry_write_failures=dict(sorted(registry.failures.items())),
        registry_changes_lost=await registry.lost(),
        dead_lettered=len(dead),
        dead_lettered_by_topic=dict(sorted(Counter(dead).items())),
        dead_letter_errors=dict(
            Counter(f"{topic}: {error[:160]}" for topic, error in dead_letters).most_common()
        ),
    )


def _without_run(
    load: Load, incidents: list[tuple[str, str, str]], runs: list[tuple[str, str, str, str]]
) -> int:
    """How many incidents of the chaos alerts have no run of the chaos runbook: their route
    asks for one, so a missing run is a lost runbook request."""
    chaos_incidents = {
        incident for fingerprint, incident, _ in incidents if fingerprint in load.fingerprints
    }
    asked = {incident for _, runbook, _, incident in runs if runbook == RUNBOOK}
    return len(chaos_incidents - asked)


@asynccontextmanager
async def _from_the_beginning(kafka: KafkaSettings, topic: Topic) -> AsyncIterator[Reader]:
    """A fresh consumer of every partition of a topic from its first offset: no consumer group,
    so nothing to join and no committed position to inherit."""
    name = kafka.topic_name(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        partitions: list[TopicPartition] = []
        for _ in range(100):
            await consumer._client.force_metadata_update()  # the topic may be new to the client
            partitions = [
                TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()
            ]
            if partitions:
                break
            await asyncio.sleep(0.1)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        yield Reader(consumer, partitions)
    finally:
        await consumer.stop()


class Reader:
    """Reads a topic's records as they come, and says when it has caught up with the end."""

    def __init__(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        self._consumer = consumer
        self._partitions = partitions

    async def read(self) -> list[bytes | None]:
        """The records (values) that arrived within half a second, if any."""
        batch = await self._consumer.getmany(timeout_ms=500, max_records=5000)
        return [record.value for records in batch.values() for record in records]

    async def caught_up(self) -> bool:
        """Whether every partition was read up to its high watermark (as of the last fetch)."""
        for partition in self._partitions:
            highwater = self._consumer.highwater(partition)
            if highwater is None or await self._consumer.position(partition) < highwater:
                return False
        return True


async def read_field(
    kafka: KafkaSettings, topic: Topic, name: str, *, quiet_s: float = 5.0
) -> list[str]:
    """One field of every record on a topic, read from the beginning by a fresh consumer until
    it has caught up with every partition, or nothing has arrived for ``quiet_s``."""
    return [value for (value,) in await read_fields(kafka, topic, (name,), quiet_s=quiet_s)]


async def read_fields(
    kafka: KafkaSettings, topic: Topic, names: tuple[str, ...], *, quiet_s: float = 5.0
) -> list[tuple[str, ...]]:
    """Some fields of every record on a topic, read as `read_field` reads one."""
    values: list[tuple[str, ...]] = []
    async with _from_the_beginning(kafka, topic) as reader:
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            records = await reader.read()
            values.extend(_fields(value, names) for value in records)
            if records:
                last = time.monotonic()
            elif await reader.caught_up():
                break
    return values


def _fields(value: bytes | None, names: tuple[str, ...]) -> tuple[str, ...]:
    try:
        record = json.loads(value or b"{}")
        return tuple(str(record.get(name, "")) for name in names)
    except (ValueError, AttributeError):
        return tuple("" for _ in names)


async def _query(url: str, sql: str) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return list((await connection.execute(text(sql))).all())
    finally:
        await engine.dispose()


@asynccontextmanager
async def service_databases(options: ChaosOptions, *, tag: str) -> AsyncIterator[Databases]:
    """Each stateful service's database: a SQLite file in the state folder, or a fresh
    PostgreSQL database (dropped on exit) when ``options.postgres_url`` is set."""
    if options.postgres_url is None:
        folder = options.state_dir.resolve()
        yield {name: f"sqlite:///{folder / f'{name.value}.db'}" for name in STATEFUL}
        return
    base = make_url(options.postgres_url)
    admin_url = base.set(drivername="postgresql").render_as_string(hide_password=False)
    names = {name: f"vigil_chaos_{tag}_{name.value.replace('-', '_')}" for name in STATEFUL}
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        for database in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield {
            name: base.set(database=database).render_as_string(hide_password=False)
            for name, database in names.items()
        }
    finally:
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
            for database in names.values():
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def _incident_rows(databases: Databases) -> list[tuple[str, str, str]]:
    """(fingerprint, incident id, incident status) of every signal on every incident."""
    rows = await _query(
        databases[ServiceName.INCIDENT_LOG],
        "SELECT s.fingerprint, s.incident_id, i.status FROM signals s "
        "JOIN incidents i ON i.id = s.incident_id",
    )
    return [(str(a), str(b), str(c)) for a, b, c in rows]


async def _recorded_alerts(databases: Databases) -> set[UUID]:
    rows = await _query(
        databases[ServiceName.INCIDENT_LOG],
        "SELECT event_id FROM alerts WHERE type = 'alert.raised'",
    )
    return {UUID(str(event_id)) for (event_id,) in rows}


async def _run_rows(databases: Databases) -> list[tuple[str, str, str, str]]:
    """(run id, runbook, state, incident id) of every run the runner recorded."""
    rows = await _query(
        databases[ServiceName.RUNBOOK_RUNNER],
        "SELECT run_id, runbook, state, incident_id FROM runbook_runs",
    )
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]


async def _token(
    http: httpx.AsyncClient, stack: RunningStack, admin: dict[str, str], name: str, role: str
) -> dict[str, str]:
    response = await http.post(
        f"{stack.url(ServiceName.INCIDENT_LOG)}/tokens",
        json={"name": name, "role": role},
        headers=admin,
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def _wait_served(http: httpx.AsyncClient, scorer_url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            served = (await http.get(f"{scorer_url}/deployments")).json()
            if scenario.MODEL in served:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the scorer did not serve {scenario.MODEL} within {timeout_s:.0f} s")


async def _all_ready(stack: RunningStack, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(s.state is ChildState.READY for s in stack.supervisor.status()):
            return
        await asyncio.sleep(0.5)

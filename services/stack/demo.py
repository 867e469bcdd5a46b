"""``vigil demo``: the whole loop on one machine, start to finish, in a few minutes.

A health model (breast cancer; recall is what matters) is trained and registered with its
maintenance instructions, scoring traffic flows with ground truth arriving late, a routine update
is deployed — and a shift hits the inputs. Then the user watches Vigil work: drift and decay
alerts become one incident; the level-one runbook rolls back the fresh deployment and fails to
verify it (the world changed, not the model); level two diagnoses the drift and asks for a
retrain; the candidate passes the validation gate; a person approves it; it serves a canary; it
is promoted; live labels confirm it and the incident resolves. A summary ends it.

Everything goes through Vigil's public surfaces: the registry, incident-log and retrainer HTTP
APIs, and Kafka topics (scoring requests and labels in; the story read back from `incidents`,
`models`, `alerts` and `runbook.results`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import yaml
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from contracts import (
    EVENT_TYPES,
    AlertRaised,
    CandidateEvaluated,
    DeliveryOutcome,
    Envelope,
    IncidentAcknowledged,
    IncidentEscalated,
    IncidentOpened,
    IncidentResolved,
    LabelRecorded,
    ModelDeployed,
    ModelPromoted,
    ModelRolledBack,
    NotificationAttempted,
    PromotionRequested,
    RetrainStarted,
    RunbookFinished,
    RunbookStarted,
    ScoringRequest,
    Topic,
)
from services.runtime.kafka import consumer_options, kafka_broker
from services.runtime.names import ServiceName
from services.runtime.publisher import EventPublisher
from services.runtime.serve import serving
from services.runtime.settings import KafkaProfile, KafkaSettings
from services.stack import scenario, training
from services.stack.pager import PageReceiver
from services.stack.stack import RunningStack, StackSettings, running_stack

__all__ = ["DemoOptions", "DemoOutcome", "incident_page", "run_demo", "summary"]

Step = Callable[[str, RunningStack], Awaitable[None]]
"""A hook called as the demo passes each step (tests kill a service at one)."""


@dataclass
class DemoOptions:
    """How the demo runs."""

    state_dir: Path
    approve_as: str | None = None
    rate_per_s: float = 60.0
    label_delay_s: float = 3.0
    healthy_seconds: float = 15.0
    step_timeout_s: float = 240.0
    broker_port: int = 19092
    ports: dict[ServiceName, int] = field(default_factory=dict)
    on_step: Step | None = None


@dataclass
class DemoOutcome:
    """What the demo ended with (for its summary and its tests)."""

    incident_id: str
    incident: dict[str, Any]
    timeline: list[dict[str, Any]]
    stats: dict[str, Any]
    champion: int | None
    versions: list[int]
    seconds: float
    pages: list[dict[str, Any]] = field(default_factory=list)


class DemoFailed(RuntimeError):
    """The story could not reach its next step (in time, or at all); the message says which."""


def demo_policy(runbooks_dir: Path) -> dict[str, Any]:
    """The shipped routing policy with a short group wait and patient timers, so the demo's
    escalations come from what happens (a failed verification), not from the clock."""
    policy: dict[str, Any] = yaml.safe_load((runbooks_dir / "routing.yaml").read_text())
    policy["group_wait_seconds"] = 20  # room for a restarted incident log to read the queue
    for route in policy["routes"]:
        for timers in route["tiers"].values():
            timers["ack_timeout_minutes"] = max(timers["ack_timeout_minutes"], 30)
            timers["mitigate_timeout_minutes"] = max(timers["mitigate_timeout_minutes"], 60)
    return policy


def demo_service_env(policy_path: Path) -> dict[str, str]:
    """Settings that make the story unfold in minutes rather than hours."""
    return {
        "VIGIL_INCIDENT_LOG_POLICY_PATH": str(policy_path),
        "VIGIL_MONITOR_WINDOW_MAX_EVENTS": "120",
        "VIGIL_MONITOR_MIN_LABELLED": "30",
        "VIGIL_MONITOR_COMPARISON_MIN_SAMPLES": "40",
        "VIGIL_MONITOR_JOIN_TTL_SECONDS": "120",
        "VIGIL_DRIFT_DETECTOR_WINDOW_SIZE": "150",
        "VIGIL_DRIFT_DETECTOR_SCORE_REFERENCE_ROWS": "300",
        "VIGIL_RETRAINER_COOLDOWN_SECONDS": "0",
        "VIGIL_RETRAINER_WORKER_POLL_SECONDS": "0.5",
    }


async def run_demo(options: DemoOptions, console: Console) -> DemoOutcome:
    """Run the whole story once; return how it ended (the stack is stopped afterwards)."""
    async with demo_stack(options, console) as stack:
        return await play(stack, options, console)


@contextlib.asynccontextmanager
async def demo_stack(options: DemoOptions, console: Console) -> AsyncIterator[RunningStack]:
    """Start the embedded stack with the demo's settings."""
    settings = StackSettings(state_dir=options.state_dir, broker_port=options.broker_port)
    policy_path = options.state_dir.resolve() / "demo-routing.yaml"
    policy_path.parent.mkdir(parents=True, exist_ok=True)
    policy_path.write_text(yaml.safe_dump(demo_policy(settings.runbooks_dir)))
    settings = settings.model_copy(
        update={"service_env": demo_service_env(policy_path), "ports": options.ports}
    )
    console.print(
        "[bold]Starting Vigil[/bold]: broker, registry, incident log, scorer, monitor, "
        "drift detector, runbook runner…"
    )
    async with running_stack(settings) as stack:
        console.print(f"  up in {options.state_dir} (logs in {options.state_dir / 'logs'})")
        yield stack


async def play(stack: RunningStack, options: DemoOptions, console: Console) -> DemoOutcome:
    """The story, on a running stack."""
    started = time.monotonic()
    story = Story(console, started)
    admin = {"Authorization": f"Bearer {stack.credentials.admin_token}"}
    pager = PageReceiver()
    async with (
        httpx.AsyncClient(base_url=stack.url(ServiceName.INCIDENT_LOG), timeout=30) as incidents,
        httpx.AsyncClient(base_url=stack.url(ServiceName.RETRAINER), timeout=60) as registry,
        serving(pager.app()) as pager_url,
    ):

        async def step(name: str) -> None:
            if options.on_step is not None:
                await options.on_step(name, stack)

        dana = await _token(incidents, admin, "dana", "l2")
        ana = await _token(incidents, admin, "ana", "l2")
        await _set_up_paging(incidents, admin, pager_url, story)
        story.say("Training [bold]v1[/bold] of the health model (breast cancer, key metric recall)")
        versions = await training.prepare([1.0, 0.5])  # v1 and the routine refresh, v2
        dataset = versions.dataset
        spec = scenario.monitoring_spec(dataset)
        await _register(registry, ana, versions, spec, c=1.0, reason="initial model")
        await _deploy(registry, ana, 1, "first deployment")
        await _wait(
            lambda: _served(registry, stack.url(ServiceName.SCORER), 1),
            "the scorer to serve v1",
            options.step_timeout_s,
        )
        await step("deployed-v1")

        kafka = KafkaSettings(
            bootstrap_servers=stack.bootstrap_servers, profile=KafkaProfile.EMBEDDED
        )
        async with Traffic(kafka, dataset, options) as traffic, Watcher(kafka, story):
            story.say(
                f"Scoring traffic at {options.rate_per_s:.0f} requests/s; ground truth arrives "
                f"{options.label_delay_s:.0f} s later"
            )
            await asyncio.sleep(options.healthy_seconds)
            story.say("Routine refresh: [bold]v2[/bold] registered and deployed as champion")
            await _register(registry, ana, versions, spec, c=0.5, reason="weekly refresh")
            await _deploy(registry, ana, 2, "weekly refresh")
            story.say(
                "[yellow]A new imaging device goes live: malignant tumours now measure "
                "a third smaller[/yellow]"
            )
            traffic.shifted = True
            await step("shifted")

            incident = await _wait(
                lambda: _incident(incidents, admin), "an incident", options.step_timeout_s
            )
            incident_id = str(incident["id"])
            await step("incident-opened")
            await _wait(
                lambda: _at_tier(incidents, admin, incident_id, "L2"),
                "the escalation to level two",
                options.step_timeout_s,
            )
            await step("escalated")

            story.say(
                "Level two ([bold]dana[/bold]) acknowledges from the link in her page, claims "
                "the incident, runs the drift diagnosis, asks for a retrain"
            )
            await _acknowledge_from_page(pager, incident_id, "dana", options.step_timeout_s)
            await _post(incidents, f"/incidents/{incident_id}/claim", {}, dana)
            run = await _post(
                incidents,
                f"/incidents/{incident_id}/runbooks",
                {"runbook": "drift-diagnosis", "reason": "what moved, and where does it hurt?"},
                dana,
            )
            await _wait(
                lambda: _run_finished(incidents, admin, incident_id, str(run["run_id"])),
                "the drift diagnosis",
                options.step_timeout_s,
            )
            await _post(
                incidents,
                f"/incidents/{incident_id}/retrain",
                {"reason": "inputs shifted: retrain on the new data"},
                dana,
            )
            await step("retrain-requested")

            promotion = await _wait(
                lambda: _pending_promotion(registry, dana, incident_id),
                "a candidate passing the validation gate",
                options.step_timeout_s,
            )
            await _approve(registry, incidents, admin, promotion, options.approve_as, story)
            await step("approved")

            await _wait(
                lambda: _resolved(incidents, admin, incident_id),
                "the promoted model proving healthy on live labels",
                options.step_timeout_s,
            )
            await step("resolved")
            await _wait_for_resolution_notices(pager, incident_id, story)

        pages = (
            await incidents.get(f"/incidents/{incident_id}/notifications", headers=admin)
        ).json()
        detail = (await incidents.get(f"/incidents/{incident_id}", headers=admin)).json()
        timeline = (await incidents.get(f"/incidents/{incident_id}/timeline", headers=admin)).json()
        stats = (await incidents.get("/stats", headers=admin)).json()
        model = (await registry.get(f"/models/{scenario.MODEL}")).json()
    deployment = model.get("deployment") or {}
    champion = (deployment.get("champion") or {}).get("version")
    return DemoOutcome(
        incident_id=incident_id,
        incident=detail,
        timeline=timeline,
        stats=stats,
        champion=champion,
        versions=[int(v["version"]) for v in model["versions"]],
        seconds=time.monotonic() - started,
        pages=pages,
    )


def summary(outcome: DemoOutcome, stack_urls: dict[str, str], console: Console) -> None:
    """Print how it went: the timeline, MTTA / MTTR, the versions, and where the console is."""
    table = Table(title=f"Incident {outcome.incident_id}: its timeline")
    for column in ("time", "actor", "action", "what"):
        table.add_column(column, overflow="fold")
    for entry in outcome.timeline:
        details = entry["details"]
        what = (
            details.get("reason")
            or details.get("text")
            or details.get("summary")
            or (f"{details.get('runbook')}: {details.get('state')}" if "state" in details else "")
            or details.get("runbook")
            or details.get("title")
            or ""
        )
        change = " → ".join(
            part for part in (entry.get("from_status"), entry.get("to_status")) if part
        )
        table.add_row(
            entry["at"][11:19], entry["actor"], entry["action"], f"{change} {what}".strip()
        )
    console.print(table)
    stats = outcome.stats
    console.print(
        f"Resolved at [bold]{outcome.incident['resolved_tier']}[/bold] in {outcome.seconds:.0f} s "
        f"of demo. MTTA {_minutes(stats['mtta_seconds'])}, MTTR {_minutes(stats['mttr_seconds'])}."
    )
    console.print(
        f"Model versions: {', '.join(f'v{v}' for v in outcome.versions)}; champion now "
        f"[bold]v{outcome.champion}[/bold]."
    )
    delivered: dict[str, list[str]] = {}
    for page in outcome.pages:
        if page["status"] == "delivered":
            delivered.setdefault(page["person"], []).append(page["reason"])
    console.print(
        "Paged: "
        + "; ".join(f"{person} ({', '.join(why)})" for person, why in delivered.items())
        + ". See them with `vigil incidents show "
        + outcome.incident_id
        + "`, and who is on call with `vigil oncall now`."
    )
    if "console" in stack_urls:
        console.print(
            f"See it as charts: [bold]{incident_page(stack_urls['console'], outcome.incident_id)}"
            "[/bold] shows the recall fall, the drifted features and the canary decision."
        )
    for name, url in stack_urls.items():
        console.print(f"  {name}: {url}")


def incident_page(console_url: str, incident_id: str) -> str:
    """The console page of an incident: its signals, gate and comparison as charts."""
    return f"{console_url.rstrip('/')}/incidents/{incident_id}"


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


class Story:
    """Prints the story as it happens, with the time since the demo began."""

    def __init__(self, console: Console, started: float) -> None:
        self.console = console
        self.started = started

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.console.print(f"[dim]{elapsed:6.1f}s[/dim]  {text}")


class Traffic:
    """Publishes scoring requests at a steady rate, and each one's label a few seconds later."""

    def __init__(
        self, kafka: KafkaSettings, dataset: scenario.Dataset, options: DemoOptions
    ) -> None:
        self._kafka = kafka
        self._dataset = dataset
        self._options = options
        self.shifted = False
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Traffic:
        broker = kafka_broker(self._kafka, client_id="vigil-demo")
        self._publisher = EventPublisher(broker, self._kafka, client_id="vigil-demo")
        await self._publisher.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._publisher.stop()

    async def _run(self) -> None:
        clean = scenario.traffic(self._dataset, shifted=False, start=0)
        shifted = scenario.traffic(self._dataset, shifted=True, start=1_000_000)
        labels: deque[tuple[float, LabelRecorded]] = deque()
        tick = 0.05
        owed = 0.0
        while True:
            now = time.monotonic()
            owed += self._options.rate_per_s * tick
            batch: list[Envelope] = []
            while owed >= 1:
                owed -= 1
                request = next(shifted if self.shifted else clean)
                batch.append(
                    ScoringRequest(
                        producer="demo-client",
                        model=scenario.MODEL,
                        request_id=request.request_id,
                        features=request.features,
                    )
                )
                labels.append(
                    (
                        now + self._options.label_delay_s,
                        LabelRecorded(
                            producer="demo-client",
                            model=scenario.MODEL,
                            request_id=request.request_id,
                            label=request.label,
                        ),
                    )
                )
            while labels and labels[0][0] <= now:
                batch.append(labels.popleft()[1])
            if batch:
                await self._publisher.publish_many(batch)
                self.sent += sum(isinstance(event, ScoringRequest) for event in batch)
            await asyncio.sleep(tick)


class Watcher:
    """Reads the story back from Vigil's topics, as any outside consumer could."""

    _TOPICS = (
        Topic.ALERTS,
        Topic.INCIDENTS,
        Topic.NOTIFICATIONS,
        Topic.RUNBOOK_RESULTS,
        Topic.MODELS,
    )

    def __init__(self, kafka: KafkaSettings, story: Story) -> None:
        self._kafka = kafka
        self._story = story
        self._task: asyncio.Task[None] | None = None
        self._seen_alerts: set[str] = set()
        self._seen_events: set[UUID] = set()

    async def __aenter__(self) -> Watcher:
        self._consumer = AIOKafkaConsumer(
            *[self._kafka.topic_name(topic) for topic in self._TOPICS],
            bootstrap_servers=self._kafka.bootstrap_servers,
            group_id=f"vigil-demo-watcher-{time.time_ns()}",
            **consumer_options(self._kafka.profile),
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def _run(self) -> None:
        async for record in self._consumer:
            event = _decoded(record.value)
            # Delivery is at least once: a service killed after publishing, before marking the
            # event sent, sends it again with the same id (as docs/events.md tells consumers).
            if event is not None and event.event_id not in self._seen_events:
                self._seen_events.add(event.event_id)
                line = self._line(event)
                if line:
                    self._story.say(line)

    def _line(self, event: Envelope) -> str | None:  # one line per kind of fact
        if isinstance(event, AlertRaised):
            if event.fingerprint in self._seen_alerts:
                return None
            self._seen_alerts.add(event.fingerprint)
            return f"[red]alert[/red] {event.kind.value} from {event.producer}: {event.summary}"
        if isinstance(event, IncidentOpened):
            return f"[bold]incident {event.incident_id}[/bold] opened: {event.title}"
        if isinstance(event, IncidentEscalated):
            return (
                f"incident escalated {event.from_tier.value} → {event.tier.value} "
                f"({event.trigger.value}): {event.reason}"
            )
        if isinstance(event, IncidentAcknowledged):
            return f"incident acknowledged at {event.tier.value} by [bold]{event.actor}[/bold]"
        if isinstance(event, NotificationAttempted):
            if event.outcome is not DeliveryOutcome.DELIVERED:
                return f"page to {event.person} by {event.channel.value}: {event.outcome.value}"
            return (
                f"[magenta]paged[/magenta] {event.person} ({event.tier.value}, "
                f"{event.reason.value}) by {event.channel.value}"
            )
        if isinstance(event, IncidentResolved):
            return f"[green]incident resolved[/green] at {event.tier.value}: {event.reason}"
        if isinstance(event, RunbookStarted):
            return (
                f"runbook [bold]{event.runbook}[/bold] started (script {event.script_sha256[:12]})"
            )
        if isinstance(event, RunbookFinished):
            return f"runbook {event.runbook} ended [bold]{event.state.value}[/bold] {event.detail}"
        if isinstance(event, ModelRolledBack):
            return f"model rolled back v{event.from_version} → v{event.to_version} by {event.actor}"
        if isinstance(event, RetrainStarted):
            return f"retrain {event.run_id} started on dataset {event.dataset.version}"
        if isinstance(event, CandidateEvaluated):
            verdict = "[green]passed[/green]" if event.passed else "[red]failed[/red]"
            return f"validation gate {verdict} for candidate v{event.candidate_version}"
        if isinstance(event, PromotionRequested):
            return f"promotion of v{event.version} requested: {event.summary}"
        if isinstance(event, ModelDeployed) and event.deployment.challenger is not None:
            share = event.deployment.challenger_share * 100
            return f"canary: v{event.deployment.challenger.version} takes {share:.0f} % of traffic"
        if isinstance(event, ModelPromoted):
            return f"[green]v{event.version} promoted to champion[/green]: {event.reason}"
        return None


def _decoded(value: bytes | None) -> Envelope | None:
    if value is None:
        return None
    try:
        return EVENT_TYPES[json.loads(value)["type"]].model_validate_json(value)
    except (ValueError, KeyError):
        return None


ON_CALL = {
    "operations": ("L1", "olivia"),
    "data-science": ("L2", "dana"),
    "oncology-ml": ("L3", "ana"),  # the model's owners (scenario.monitoring_spec)
}


async def _set_up_paging(
    incidents: httpx.AsyncClient, admin: dict[str, str], pager_url: str, story: Story
) -> None:
    """Each tier's on-call person, paged by webhook on the demo's own pager."""
    for schedule, (tier, person) in ON_CALL.items():
        await _put(incidents, f"/people/{person}", {}, admin)
        await _post(
            incidents,
            f"/people/{person}/contacts",
            {"channel": "webhook", "address": f"{pager_url}/hooks/{person}"},
            admin,
        )
        layer = {"name": "primary", "members": [person], "start": "2026-01-01"}
        await _put(incidents, f"/schedules/{schedule}", {"tier": tier, "layers": [layer]}, admin)
    story.say(
        "On call: "
        + ", ".join(f"{tier} {person} ({name})" for name, (tier, person) in ON_CALL.items())
        + f"; pages go to a local pager at {pager_url}"
    )


async def _wait_for_resolution_notices(pager: PageReceiver, incident_id: str, story: Story) -> None:
    """Everyone paged hears that it is over (the pager shows it within seconds)."""

    def about(reason: str) -> set[str]:
        return {
            arrival.hook
            for arrival in pager.pages.values()
            if arrival.body["incident"]["id"] == incident_id and arrival.body["reason"] == reason
        }

    with contextlib.suppress(TimeoutError):
        await pager.wait_until(lambda: about("page") <= about("resolved"), 30)
    story.say(f"the pager told {', '.join(sorted(about('resolved')))} that it is resolved")


async def _acknowledge_from_page(
    pager: PageReceiver, incident_id: str, person: str, timeout_s: float
) -> None:
    """Follow the acknowledge link in the person's page, as they would from their phone."""

    def page() -> dict[str, Any] | None:
        for arrival in reversed(pager.pages_for(person)):
            body = arrival.body
            if body["incident"]["id"] == incident_id and body.get("ack_url"):
                return body
        return None

    await pager.wait_until(lambda: page() is not None, timeout_s)
    body = page()
    assert body is not None
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(body["ack_url"])
    if response.status_code != 200:
        raise DemoFailed(f"the acknowledge link in {person}'s page was refused: {response.text}")


async def _token(
    http: httpx.AsyncClient, admin: dict[str, str], name: str, role: str
) -> dict[str, str]:
    response = await http.post("/tokens", json={"name": name, "role": role}, headers=admin)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def _register(
    registry: httpx.AsyncClient,
    who: dict[str, str],
    versions: training.Prepared,
    spec: Any,
    *,
    c: float,
    reason: str,
) -> None:
    dataset = versions.dataset
    metadata = {
        "sklearn_version": versions.sklearn_version,
        "dataset_name": scenario.MODEL,
        "dataset_version": "2026-11-training",
        "metrics": {"recall": 0.93},
        "parameters": scenario.recipe(c),
        "code_version": "vigil-demo",
        "spec": spec.model_dump(mode="json"),
        "reason": reason,
    }
    response = await registry.post(
        f"/models/{scenario.MODEL}/versions",
        data={"metadata": json.dumps(metadata)},
        files={
            "artifact": ("model.skops", versions.artifacts[c]),
            "training_data": (
                "train.csv",
                scenario.to_csv(dataset.features, dataset.train_x, dataset.train_y),
            ),
        },
        headers=who,
    )
    response.raise_for_status()


async def _deploy(
    registry: httpx.AsyncClient, who: dict[str, str], version: int, reason: str
) -> None:
    response = await registry.put(
        f"/models/{scenario.MODEL}/deployment",
        json={"champion": version, "reason": reason},
        headers=who,
    )
    response.raise_for_status()


async def _post(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]
) -> Any:
    response = await http.post(path, json=body, headers=headers)
    if not response.is_success:
        raise DemoFailed(f"POST {path} → {response.status_code}: {response.text[:300]}")
    return response.json()


async def _put(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]
) -> Any:
    response = await http.put(path, json=body, headers=headers)
    if not response.is_success:
        raise DemoFailed(f"PUT {path} → {response.status_code}: {response.text[:300]}")
    return response.json()


async def _wait(probe: Callable[[], Awaitable[Any]], what: str, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = await probe()
        except httpx.TransportError:
            found = None  # a service restarting: its supervisor brings it back
        if found:
            return found
        await asyncio.sleep(0.5)
    raise DemoFailed(f"waited {timeout_s:.0f} s for {what}")


async def _served(registry: httpx.AsyncClient, scorer_url: str, version: int) -> bool:
    """Whether the scorer serves `version` as champion: traffic sent before it learns of the
    deployment is refused (an unknown model) and would open an incident of its own."""
    served = (await registry.get(f"{scorer_url}/deployments")).json()
    champion = (served.get(scenario.MODEL) or {}).get("champion") or {}
    return bool(champion.get("version") == version)


_STORY_KINDS = {"metric_decay", "data_drift"}
"""The signals of the story's incident. Another incident of the model (a platform alert on a slow
machine) is not the one the story follows, unless the story's signals joined it."""


async def _incident(http: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any] | None:
    listed = (
        await http.get("/incidents", params={"model": scenario.MODEL}, headers=headers)
    ).json()
    for incident in listed:
        if incident["kind"] in _STORY_KINDS:
            return dict(incident)
    for incident in listed:
        detail = (await http.get(f"/incidents/{incident['id']}", headers=headers)).json()
        if any(signal["kind"] in _STORY_KINDS for signal in detail["signals"]):
            return dict(detail)
    return None


async def _at_tier(
    http: httpx.AsyncClient, headers: dict[str, str], incident_id: str, tier: str
) -> bool:
    detail = (await http.get(f"/incidents/{incident_id}", headers=headers)).json()
    return bool(detail["tier"] == tier)


async def _resolved(http: httpx.AsyncClient, headers: dict[str, str], incident_id: str) -> bool:
    detail = (await http.get(f"/incidents/{incident_id}", headers=headers)).json()
    return bool(detail["status"] == "resolved")


async def _run_finished(
    http: httpx.AsyncClient, headers: dict[str, str], incident_id: str, run_id: str
) -> bool:
    timeline = (await http.get(f"/incidents/{incident_id}/timeline", headers=headers)).json()
    return any(
        e["action"] == "runbook_finished" and e["details"].get("run_id") == run_id for e in timeline
    )


async def _pending_promotion(
    registry: httpx.AsyncClient, headers: dict[str, str], incident_id: str
) -> dict[str, Any] | None:
    response = await registry.get(
        "/promotions", params={"incident_id": incident_id}, headers=headers
    )
    if not response.is_success:
        return None
    pending = [p for p in response.json() if p.get("state") == "pending"]
    return pending[0] if pending else None


async def _approve(
    registry: httpx.AsyncClient,
    incidents: httpx.AsyncClient,
    admin: dict[str, str],
    promotion: dict[str, Any],
    approve_as: str | None,
    story: Story,
) -> None:
    story.say(
        f"[bold]Approval needed[/bold]: candidate v{promotion['version']} "
        f"(request {promotion['request_id']}, asked by {promotion['requested_by']})"
    )
    while True:
        if approve_as is not None:
            name = approve_as.strip()
        else:
            try:
                answer = await asyncio.to_thread(
                    story.console.input, "  your name, to approve it (level two): "
                )
            except EOFError:
                raise DemoFailed(
                    "no one can answer the approval prompt (input closed): "
                    "run it again with --approve-as NAME"
                ) from None
            name = answer.strip()
        if not name:
            continue
        approver = await _token(incidents, admin, name, "l2")
        response = await registry.post(
            f"/promotions/{promotion['request_id']}/approve",
            json={"comment": "gate figures reviewed; go ahead with the canary"},
            headers=approver,
        )
        if response.is_success:
            story.say(f"approved by [bold]{name}[/bold]")
            return
        story.say(f"[red]refused[/red]: {response.json().get('detail', response.text)}")
        if approve_as:
            raise DemoFailed(f"approval as {name!r} refused")

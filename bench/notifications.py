"""Benchmark: pages from incidents to a webhook receiver — latency from the incident's routing to
the page's arrival, at a steady rate of new incidents, with nothing lost and no key twice.

The incident log runs as its own process on the embedded broker and pages a local receiver
(``services/stack/pager.py``, which verifies every signature). Alerts are offered at a fixed rate,
each a new incident (routed at once, paged at level one). The baseline, measured in the same run,
is the bare HTTP path: the benchmark itself posting signed bodies of the same size to the same
receiver at the same rate.

    python bench/notifications.py [--quick] [--database sqlite|postgresql]

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import signal
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from statistics import quantiles

import httpx
import yaml
from aiokafka import AIOKafkaProducer
from incidents import drop_database, fresh_database, make_alerts, start_incident_log

from services.runtime import EmbeddedBroker, ensure_topics
from services.runtime.serve import serving
from services.stack.pager import PageReceiver

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "bench-admin-token"


def cuts(values: list[float]) -> tuple[float, float]:
    """p50 and p99 of a list (NaN when too short)."""
    if len(values) < 2:
        return float("nan"), float("nan")
    points = quantiles(values, n=100)
    return points[49], points[98]


async def raw_http(url: str, secret: str, rate: float, seconds: float) -> list[float]:
    """Post signed page-sized bodies at ``rate``/s; return each one's latency in ms."""
    body = json.dumps({"summary": "x" * 600, "incident": {"id": "inc-raw"}}).encode()
    delays: list[float] = []
    async with httpx.AsyncClient(timeout=10) as client:

        async def one(n: int) -> None:
            stamp = str(int(time.time()))
            mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
            started = time.perf_counter()
            await client.post(
                url,
                content=body,
                headers={
                    "Idempotency-Key": f"raw-{n}",
                    "X-Vigil-Timestamp": stamp,
                    "X-Vigil-Signature": f"v1={mac.hexdigest()}",
                    "Content-Type": "application/json",
                },
            )
            delays.append((time.perf_counter() - started) * 1000)

        tasks = []
        begin = time.perf_counter()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, begin + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return delays


async def start_paging_incident_log(
    bootstrap: str, prefix: str, database_url: str, workdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """The incident log with the shipped policy but no group wait, and no rate limit on pages."""
    policy = yaml.safe_load((ROOT / "runbooks" / "routing.yaml").read_text())
    policy["group_wait_seconds"] = 0
    policy_path = workdir / "routing.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    process, port = await start_incident_log(
        bootstrap,
        prefix,
        database_url,
        workdir,
        extra_env={
            "VIGIL_INCIDENT_LOG_POLICY_PATH": str(policy_path),
            "VIGIL_INCIDENT_LOG_ADMIN_TOKEN": ADMIN,
            "VIGIL_INCIDENT_LOG_PAGES_PER_WINDOW": "10000",
        },
    )
    return process, f"http://127.0.0.1:{port}"


async def offer(bootstrap: str, prefix: str, incidents: int, rate: float) -> None:
    """Publish one alert per new incident at ``rate``/s."""
    alerts = make_alerts(incidents, incidents, 1, "page")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await producer.start()
    try:
        begin = time.perf_counter()
        for n, alert in enumerate(alerts):
            await asyncio.sleep(max(0.0, begin + n / rate - time.perf_counter()))
            await producer.send(
                f"{prefix}alerts", alert.model_dump_json().encode(), key=alert.model.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, about a minute")
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    rate = 100.0
    seconds = 10.0 if args.quick else 60.0
    incidents = int(rate * seconds)

    receiver = PageReceiver()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        workdir = Path(tmp)
        async with (
            EmbeddedBroker(log_path=workdir / "tansu.log") as broker,
            serving(receiver.app()) as receiver_url,
        ):
            receiver.secrets["raw"] = "whsec_raw_baseline_secret"
            baseline = await raw_http(
                f"{receiver_url}/hooks/raw", receiver.secrets["raw"], rate, min(seconds, 10.0)
            )
            prefix = "benchpages."
            await ensure_topics(broker.bootstrap_servers, prefix=prefix)
            database_url = await fresh_database(args.database, workdir, "pages")
            process, url = await start_paging_incident_log(
                broker.bootstrap_servers, prefix, database_url, workdir
            )
            try:
                admin = {"Authorization": f"Bearer {ADMIN}"}
                async with httpx.AsyncClient(base_url=url, headers=admin, timeout=30) as api:
                    (await api.put("/people/oncall", json={})).raise_for_status()
                    contact = await api.post(
                        "/people/oncall/contacts",
                        json={"channel": "webhook", "address": f"{receiver_url}/hooks/oncall"},
                    )
                    contact.raise_for_status()
                    receiver.secrets["oncall"] = contact.json()["secret"]
                    layer = {"name": "primary", "members": ["oncall"], "start": "2026-01-01"}
                    schedule = {"tier": "L1", "layers": [layer]}
                    (await api.put("/schedules/ops", json=schedule)).raise_for_status()
                started = time.perf_counter()
                await offer(broker.bootstrap_servers, prefix, incidents, rate)
                with contextlib.suppress(TimeoutError):
                    await receiver.wait_until(
                        lambda: len(receiver.pages_for("oncall", "page")) >= incidents, 120
                    )
                elapsed = time.perf_counter() - started
                await asyncio.sleep(2.0)  # late duplicates, if any, would arrive now
            finally:
                process.send_signal(signal.SIGTERM)
                await asyncio.to_thread(process.wait, 60)
                await drop_database(database_url)

    pages = receiver.pages_for("oncall", "page")
    delays = [
        (arrival.received_at - datetime.fromisoformat(arrival.body["at"]).timestamp()) * 1000
        for arrival in pages
    ]
    p50, p99 = cuts(delays)
    raw50, raw99 = cuts(baseline)
    duplicates = sum(1 for a in receiver.arrivals if a.hook == "oncall") - len(
        receiver.pages_for("oncall")
    )
    print(f"raw signed HTTP POST at {rate:.0f}/s: p50 {raw50:.1f} ms, p99 {raw99:.1f} ms")
    print(
        f"pages ({args.database}): {len(pages)} of {incidents} delivered in {elapsed:.1f} s, "
        f"duplicates {duplicates}, routing→arrival p50 {p50:.1f} ms, p99 {p99:.1f} ms "
        f"({p99 / raw99:.1f} x the raw p99); refused signatures {len(receiver.refused)}"
    )
    print(
        json.dumps(
            {
                "benchmark": "notifications",
                "quick": args.quick,
                "database": args.database,
                "offered_incidents_per_s": rate,
                "incidents": incidents,
                "delivered": len(pages),
                "lost": incidents - len(pages),
                "duplicates": duplicates,
                "refused_signatures": len(receiver.refused),
                "p50_ms": round(p50, 1),
                "p99_ms": round(p99, 1),
                "raw_http_p50_ms": round(raw50, 1),
                "raw_http_p99_ms": round(raw99, 1),
                "p99_ratio_to_raw_http": round(p99 / raw99, 2),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())

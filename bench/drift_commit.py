"""What the drift detector's transaction costs per tested window, beside the test itself.

Since ADR 0017 every tested window's report is staged in the outbox in the transaction that
saves the version's episode states (``DatabaseEpisodeStore.commit``): one transaction per batch,
holding at least one ``drift.reported`` per tested window. ``bench/drift.py`` times the verdict
and the report objects only; this times, in the same run and on the same 1,000-row x 30-column
windows, the test with its published report (``evaluate`` + ``drift_reported``) and one
``commit`` of that window's report, on SQLite (a file) and, with ``--postgres``, PostgreSQL:
compact reports (clean windows) and full ones (drifted windows). Wall time on a shared machine:
read the ratios.

``python bench/drift_commit.py [--postgres [URL]] [--windows N]``; the last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift import (
    NOW,
    REFERENCE_ROWS,
    WINDOW_ROWS,
    BreastCancer,
    batch_of,
    noise_shift,
    profile_of,
)

from contracts.monitoring import Window, WindowKind
from services.drift_detector.detector import evaluate
from services.drift_detector.episode_store import DatabaseEpisodeStore, Save
from services.drift_detector.episodes import EpisodeState
from services.drift_detector.migrations import HISTORY
from services.drift_detector.reporting import drift_reported
from services.drift_detector.tracking import TestedWindow
from services.runtime import create_engine, session_factory
from services.runtime.migrations import migrate

POSTGRES_ADMIN_URL = os.environ.get(
    "VIGIL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def measure(url: str, windows: int) -> dict[str, float]:
    bc = BreastCancer()
    rng = np.random.default_rng(7)
    profile = profile_of(bc, bc.sample(rng, REFERENCE_ROWS))
    clean = [batch_of(profile, bc.sample(rng, WINDOW_ROWS)) for _ in range(5)]
    shifted = [batch_of(profile, noise_shift(bc, 0.5)(rng, WINDOW_ROWS)) for _ in range(5)]
    engine = create_engine(url)
    await migrate(engine, HISTORY)
    store = DatabaseEpisodeStore(session_factory(engine))
    revision = 0
    figures: dict[str, float] = {}
    try:
        for name, batches in (("clean", clean), ("drifted", shifted)):
            tests, commits, sizes = [], [], []
            for i in range(windows):
                started = time.perf_counter()
                report = evaluate(profile, batches[i % 5])
                # a fresh window per commit: the outbox keeps one row per report id
                window = Window(kind=WindowKind.COUNT, start=NOW, end=NOW, size=WINDOW_ROWS + i)
                tested = TestedWindow(window, report, None, report.drifted, report.drivers)
                event = drift_reported(profile, tested, producer="drift-detector")
                tested_at = time.perf_counter()
                episodes = {"data_drift": EpisodeState(), "prediction_drift": EpisodeState()}
                saved = await store.commit([Save(name, 1, episodes, revision, [event])])
                revision = saved[(name, 1)] or revision
                commits.append(time.perf_counter() - tested_at)
                tests.append(tested_at - started)
                sizes.append(len(event.model_dump_json()))
            revision = 0
            test_ms = statistics.median(tests) * 1e3
            commit_ms = statistics.median(commits) * 1e3
            figures |= {
                f"{name}_test_and_report_ms": test_ms,
                f"{name}_commit_ms": commit_ms,
                f"{name}_commit_share_of_window": commit_ms / (test_ms + commit_ms),
                f"{name}_report_json_bytes": statistics.median(sizes),
            }
    finally:
        await engine.dispose()
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", nargs="?", const=POSTGRES_ADMIN_URL, default=None)
    parser.add_argument("--windows", type=int, default=60)
    args = parser.parse_args()
    results: dict[str, object] = {"benchmark": "drift_commit", "windows": args.windows}
    with tempfile.TemporaryDirectory() as directory:
        results["sqlite"] = await measure(f"sqlite:///{Path(directory) / 'b.db'}", args.windows)
    if args.postgres:
        name = f"vigil_bench_{uuid.uuid4().hex[:12]}"
        async with await psycopg.AsyncConnection.connect(args.postgres, autocommit=True) as admin:
            await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(args.postgres).set(database=name)
            results["postgresql"] = await measure(
                url.render_as_string(hide_password=False), args.windows
            )
        finally:
            async with await psycopg.AsyncConnection.connect(
                args.postgres, autocommit=True
            ) as admin:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for store, figures in results.items():
        if isinstance(figures, dict):
            print(
                f"{store}: clean window {figures['clean_test_and_report_ms']:.2f} ms + commit "
                f"{figures['clean_commit_ms']:.2f} ms; drifted "
                f"{figures['drifted_test_and_report_ms']:.2f} ms + commit "
                f"{figures['drifted_commit_ms']:.2f} ms"
            )
    print(json.dumps(results, separators=(",", ":"), default=float))


if __name__ == "__main__":
    asyncio.run(main())

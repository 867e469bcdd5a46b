"""The retrainer's content store in its database against the file store it replaced, measured in
the same run: storing and reading back (checked) an artifact of the demo's size (a logistic
regression on scikit-learn's breast-cancer set, saved with skops), 1 MB and 16 MB.

The baseline is what the file store did per content: write aside, ``fsync``, rename into
``sha256/<hex>``; read the file and check its SHA-256. The database store does one
``INSERT … ON CONFLICT DO NOTHING`` per content and one checked ``SELECT``
(``services/retrainer/content.py``), on SQLite (a fresh file) and, with ``--postgres URL`` (an
administrative connection), on a fresh PostgreSQL database dropped afterwards. Figures are
medians of the repetitions: wall time per content, the ratio to the file baseline, and this
process's CPU time per content (PostgreSQL's own CPU is not counted).

    python bench/content_store.py [--quick] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import skops.io
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy.engine import make_url

from services.retrainer.content import ContentStore, blocking_engine
from services.retrainer.migrations import HISTORY
from services.runtime import create_engine, sha256_hex
from services.runtime.migrations import migrate


def demo_artifact() -> bytes:
    features, labels = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    content: bytes = skops.io.dumps(model.fit(features, labels))
    return content


class FileBaseline:
    """The file store's procedure, for comparison."""

    def __init__(self, root: Path) -> None:
        self.root = root / "sha256"
        self.root.mkdir(parents=True)

    def put(self, content: bytes) -> str:
        sha256 = sha256_hex(content)
        path = self.root / f"{sha256}.skops"
        if not path.exists():
            handle, temporary = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
            with os.fdopen(handle, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        return sha256

    def get(self, sha256: str) -> bytes:
        content = (self.root / f"{sha256}.skops").read_bytes()
        assert sha256_hex(content) == sha256
        return content


def timed(action: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall seconds and mean CPU seconds of ``repeats`` calls."""
    walls = []
    cpu_start = time.process_time()
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), (time.process_time() - cpu_start) / repeats


def measure(
    put: Callable[[bytes], str], get: Callable[[str], bytes | None], size: int, repeats: int
) -> dict[str, float]:
    contents = iter([os.urandom(size) for _ in range(repeats)])
    digests: list[str] = []
    put_wall, put_cpu = timed(lambda: digests.append(put(next(contents))), repeats)
    reads = iter(digests)
    get_wall, get_cpu = timed(lambda: get(next(reads)), repeats)
    return {
        "put_ms": put_wall * 1000,
        "put_cpu_ms": put_cpu * 1000,
        "get_ms": get_wall * 1000,
        "get_cpu_ms": get_cpu * 1000,
    }


async def migrated(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine, HISTORY)
    finally:
        await engine.dispose()


def main(quick: bool, postgres: str | None) -> dict[str, Any]:
    demo = len(demo_artifact())
    sizes = {"demo": demo, "1mb": 1024 * 1024, "16mb": 16 * 1024 * 1024}
    repeats = {"demo": 20 if quick else 100, "1mb": 10 if quick else 40, "16mb": 3 if quick else 8}
    figures: dict[str, Any] = {
        "benchmark": "content_store",
        "quick": quick,
        "demo_artifact_bytes": demo,
        "load_average_1m": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as folder:
        databases = {"sqlite": f"sqlite:///{Path(folder) / 'retrainer.db'}"}
        name = f"vigil_bench_{uuid.uuid4().hex[:8]}"
        if postgres:
            with psycopg.connect(postgres, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            databases["postgresql"] = (
                make_url(postgres).set(database=name).render_as_string(hide_password=False)
            )
        try:
            for label, size in sizes.items():
                baseline = FileBaseline(Path(folder) / f"files-{label}")
                file_figures = measure(baseline.put, baseline.get, size, repeats[label])
                figures[f"file_{label}"] = {k: round(v, 3) for k, v in file_figures.items()}
                for database, url in databases.items():
                    asyncio.run(migrated(url))
                    engine = blocking_engine(url)
                    store = ContentStore(engine, kind="artifact", suffix=".skops")
                    found = measure(store.put_now, store.get_now, size, repeats[label])
                    engine.dispose()
                    figures[f"{database}_{label}"] = {
                        **{k: round(v, 3) for k, v in found.items()},
                        "put_to_file": round(found["put_ms"] / file_figures["put_ms"], 2),
                        "get_to_file": round(found["get_ms"] / file_figures["get_ms"], 2),
                    }
                    print(
                        f"{label:>5} ({size:>9} B) {database:>10}: put {found['put_ms']:8.2f} ms "
                        f"({found['put_ms'] / file_figures['put_ms']:.2f} x file), get "
                        f"{found['get_ms']:8.2f} ms ({found['get_ms'] / file_figures['get_ms']:.2f}"
                        f" x file); CPU put {found['put_cpu_ms']:.2f} ms, get "
                        f"{found['get_cpu_ms']:.2f} ms"
                    )
        finally:
            if postgres:
                with psycopg.connect(postgres, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, under a minute")
    parser.add_argument("--postgres", help="administrative PostgreSQL URL (else SQLite only)")
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.quick, arguments.postgres)))

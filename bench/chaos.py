"""Chaos suite: the embedded stack (as ``vigil up`` runs it) under steady scoring traffic, labels,
alerts and registry writes, with a random service (never the broker) SIGKILLed at a random moment
every 10-20 s and restarted by the supervisor with its backoff; then the load stops, the system
settles (bounded) and the real system is counted: requests without a prediction (``lost``),
duplicate predictions, alerts not recorded, fingerprints without an incident or with two
unresolved ones, runbook runs executed twice (from the runbook's own effects log), acknowledged
registry writes missing, and dead letters. The machinery is ``services/stack/chaos.py``.

    python bench/chaos.py [--quick] [--seed N] [--kills K] [--pause LOW HIGH] [--rate R]
                          [--postgres [URL]] [--keep DIR]

``--quick`` still makes 20 kills (about six minutes of load): the point is the count, not speed.
It is not a throughput benchmark, so there is no baseline ratio. The last line printed is one
JSON object of the tally; the exit status is 1 if anything was lost or done twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from services.runtime import ServiceName, free_port
from services.stack.chaos import ChaosOptions, run_chaos

POSTGRES_ADMIN_URL = os.environ.get(
    "VIGIL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 kills (the minimum asked for)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the kills and the load")
    parser.add_argument("--kills", type=int, default=None, help="how many kills (default 20/60)")
    parser.add_argument(
        "--pause",
        type=float,
        nargs=2,
        default=(10.0, 20.0),
        metavar=("LOW", "HIGH"),
        help="seconds between kills, drawn uniformly (10 20)",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="scoring requests per second")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=POSTGRES_ADMIN_URL,
        default=None,
        help="fresh PostgreSQL databases for the stateful services instead of SQLite "
        "(an administrative URL; default $VIGIL_BENCH_POSTGRES_URL or the local server)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the state folder here")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    kills = args.kills or (20 if args.quick else 60)
    started = time.monotonic()

    def report(line: str) -> None:
        print(f"{time.monotonic() - started:7.1f}s  {line}", flush=True)

    print(f"chaos seed {seed} ({kills} kills); rerun with --seed {seed}", flush=True)
    with tempfile.TemporaryDirectory(prefix="vigil-chaos-") as tmp:
        state_dir = args.keep or Path(tmp) / "state"
        options = ChaosOptions(
            state_dir=state_dir,
            seed=seed,
            kills=kills,
            kill_every_s=(args.pause[0], args.pause[1]),
            requests_per_s=args.rate,
            postgres_url=args.postgres,
            broker_port=free_port(),
            ports={name: free_port() for name in ServiceName},
        )
        tally = asyncio.run(run_chaos(options, report))
    figures = tally.as_json() | {
        "quick": args.quick,
        "database": "postgresql" if args.postgres else "sqlite",
        "requests_per_s": args.rate,
    }
    bad = {
        key: figures[key]
        for key in (
            "lost",
            "alerts_lost",
            "fingerprints_without_incident",
            "duplicate_incidents",
            "incidents_without_run",
            "runbook_runs_executed_twice",
            "runbook_runs_succeeded_unexecuted",
            "registry_changes_lost",
        )
        if figures[key]
    }
    report("nothing lost, nothing done twice" if not bad else f"DEFECTS: {bad}")
    print(json.dumps(figures))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

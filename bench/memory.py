"""Resident memory of the whole embedded stack after the demo (issue 18: target < 1.2 GB).

It runs the demo as ``vigil demo`` does (``services/stack/demo.py``: the embedded broker, every
service as a supervised process, the story from drift to a retrained champion), in a temporary
state folder on free loopback ports, with this process as the demo's own (the supervisor). Once
the story is over and the stack idles, it reads every process of the stack from
``/proc/<pid>/smaps_rollup``: RSS, PSS (shared pages divided among the processes that map them,
so the sum is what the stack really holds) and USS (pages only that process holds).

The baselines, measured in the same run: a bare interpreter, and a fresh interpreter after
``import services.runtime`` (what every service pays before its own code). Each heavy library's
import cost and each service's import-time footprint (and the heavy libraries it loads) are
measured in fresh interpreters too, so a cut shows which process it helps.

    python bench/memory.py [--quick] [--settle-seconds 5] [--malloc-arena-max N|glibc]

``--quick`` measures fewer libraries' import costs; the demo runs either way. The last line
printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from services.runtime import ServiceName, free_port
from services.stack.demo import DemoOptions, demo_stack, play

TARGET_MB = 1200
HEAVY = (
    "numpy",
    "scipy",
    "pandas",
    "sklearn",
    "skops",
    "pydantic",
    "sqlalchemy",
    "alembic",
    "fastapi",
    "uvicorn",
    "faststream",
    "aiokafka",
    "prometheus_client",
    "jinja2",
    "httpx",
)
QUICK_HEAVY = ("numpy", "scipy", "pandas", "sklearn", "skops", "faststream", "sqlalchemy")
_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
rollup = open("/proc/self/smaps_rollup").read()
status = open("/proc/self/status").read()
print(json.dumps({"rollup": rollup, "status": status, "modules": sorted(sys.modules)}))
"""


def memory_of(pid: int) -> dict[str, Any]:
    """RSS, PSS and USS (MB) and thread count of one process, from Linux's /proc."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    status = Path(f"/proc/{pid}/status").read_text()
    return _figures(rollup, status)


def _figures(rollup: str, status: str) -> dict[str, Any]:
    kb = {
        line.split(":")[0]: int(line.split()[1])
        for line in rollup.splitlines()[1:]
        if line.strip().endswith("kB")
    }
    threads = next(
        int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:")
    )
    return {
        "rss_mb": round(kb["Rss"] / 1024, 1),
        "pss_mb": round(kb["Pss"] / 1024, 1),
        "uss_mb": round((kb["Private_Clean"] + kb["Private_Dirty"]) / 1024, 1),
        "swap_mb": round(kb.get("Swap", 0) / 1024, 1),
        "threads": threads,
    }


def fresh_interpreter(*modules: str) -> dict[str, Any]:
    """A fresh interpreter's memory after importing ``modules`` (none: the bare interpreter),
    and which of the heavy libraries it then holds."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    ).stdout
    probe = json.loads(out.strip().splitlines()[-1])
    loaded = set(probe["modules"])
    figures = _figures(probe["rollup"], probe["status"])
    figures["heavy_loaded"] = [name for name in HEAVY if name in loaded]
    return figures


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (the broker, the services, anything they run)."""
    found: list[int] = []
    queue = [pid]
    while queue:
        parent = queue.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(children)
            queue.extend(children)
    return found


def command_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


async def demo_then_measure(
    settle_s: float,
) -> tuple[dict[str, dict[str, Any]], float, list[str | None]]:
    """Run the demo; with the stack still up after it, the memory of each of its processes."""
    os.environ["VIGIL_STACK_WATCH_PORT"] = str(free_port())
    with tempfile.TemporaryDirectory(prefix="vigil-memory-") as folder:
        options = DemoOptions(
            state_dir=Path(folder) / "demo",
            approve_as="kim",
            broker_port=free_port(),
            ports={name: free_port() for name in ServiceName},
        )
        console = Console(file=io.StringIO(), width=140)
        started = time.monotonic()
        async with demo_stack(options, console) as stack:
            try:
                await play(stack, options, console)
            except Exception:
                _print_logs(options.state_dir / "logs")
                raise
            seconds = time.monotonic() - started
            await asyncio.sleep(settle_s)
            names = {s.pid: s.name for s in stack.supervisor.status() if s.pid is not None}
            arenas = {_malloc_arena_max(pid) for pid in names}
            processes = {"demo (supervisor)": memory_of(os.getpid())}
            for pid in descendants(os.getpid()):
                command = command_of(pid)
                name = names.get(pid) or ("broker" if " broker " in f"{command} " else command)
                try:
                    processes[name] = memory_of(pid)
                except OSError:  # a runbook's script that ended meanwhile
                    continue
    return processes, seconds, sorted(arenas, key=str)


def _malloc_arena_max(pid: int) -> str | None:
    """The MALLOC_ARENA_MAX a process was started with (``None``: glibc's default)."""
    for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if entry.startswith(b"MALLOC_ARENA_MAX="):
            return entry.split(b"=", 1)[1].decode()
    return None


def _print_logs(folder: Path) -> None:
    """The end of every log of a demo that failed (its folder is removed afterwards)."""
    for log in sorted(folder.glob("*.log")):
        print(f"== {log.name}", *log.read_text().splitlines()[-30:], sep="\n", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer import costs measured")
    parser.add_argument("--settle-seconds", type=float, default=5.0)
    parser.add_argument(
        "--malloc-arena-max",
        default=None,
        help="MALLOC_ARENA_MAX for the stack's processes (the supervisor gives 2 unless set); "
        "'glibc' for glibc's own default, eight per core",
    )
    args = parser.parse_args()
    if args.malloc_arena_max is not None:
        arenas = args.malloc_arena_max
        os.environ["MALLOC_ARENA_MAX"] = (
            str(8 * (os.cpu_count() or 1)) if arenas == "glibc" else arenas
        )

    bare = fresh_interpreter()
    runtime = fresh_interpreter("services.runtime")
    libraries = {
        name: fresh_interpreter(name if name != "skops" else "skops.io")
        for name in (QUICK_HEAVY if args.quick else HEAVY)
    }
    imports = {name.value: fresh_interpreter(f"{name.package}.app") for name in ServiceName}
    processes, seconds, arenas = asyncio.run(demo_then_measure(args.settle_seconds))

    print(f"{'process':<22}{'RSS MB':>9}{'PSS MB':>9}{'USS MB':>9}{'threads':>9}")
    for name, figures in processes.items():
        print(
            f"{name:<22}{figures['rss_mb']:>9.1f}{figures['pss_mb']:>9.1f}"
            f"{figures['uss_mb']:>9.1f}{figures['threads']:>9}"
        )
    stack_rss = round(sum(p["rss_mb"] for p in processes.values()), 1)
    stack_pss = round(sum(p["pss_mb"] for p in processes.values()), 1)
    stack_uss = round(sum(p["uss_mb"] for p in processes.values()), 1)
    print(f"{'stack':<22}{stack_rss:>9.1f}{stack_pss:>9.1f}{stack_uss:>9.1f}")
    print(
        f"baselines: bare interpreter {bare['rss_mb']:.1f} MB RSS, "
        f"after `import services.runtime` {runtime['rss_mb']:.1f} MB ({runtime['heavy_loaded']})"
    )
    print(f"{'import':<34}{'RSS MB':>9}{'over bare':>11}  heavy libraries loaded")
    for label, figures in [(f"{k} (library)", v) for k, v in libraries.items()] + [
        (f"{k} (service app)", v) for k, v in imports.items()
    ]:
        print(
            f"{label:<34}{figures['rss_mb']:>9.1f}{figures['rss_mb'] - bare['rss_mb']:>11.1f}"
            f"  {' '.join(figures['heavy_loaded'])}"
        )
    print(
        json.dumps(
            {
                "benchmark": "memory",
                "quick": args.quick,
                "stack_rss_mb": stack_rss,
                "stack_pss_mb": stack_pss,
                "stack_uss_mb": stack_uss,
                "target_mb": TARGET_MB,
                "stack_rss_ratio_to_target": round(stack_rss / TARGET_MB, 3),
                "process_count": len(processes),
                "processes": processes,
                "baseline_bare_rss_mb": bare["rss_mb"],
                "baseline_runtime_rss_mb": runtime["rss_mb"],
                "baseline_runtime_heavy_loaded": runtime["heavy_loaded"],
                "stack_rss_ratio_to_bare_interpreters": round(
                    stack_rss / (bare["rss_mb"] * len(processes)), 2
                ),
                "stack_rss_ratio_to_runtime_imports": round(
                    stack_rss / (runtime["rss_mb"] * len(processes)), 2
                ),
                "import_rss_mb": {k: v["rss_mb"] for k, v in libraries.items()},
                "service_import_rss_mb": {k: v["rss_mb"] for k, v in imports.items()},
                "service_import_heavy_loaded": {k: v["heavy_loaded"] for k, v in imports.items()},
                "services_malloc_arena_max": arenas,
                "demo_seconds": round(seconds, 1),
                "load_average": list(os.getloadavg()),
            }
        )
    )


if __name__ == "__main__":
    main()

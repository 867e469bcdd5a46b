"""The chaos suite's runbook: its first act is to append its run id to ``effects.log`` beside
itself, so a run executed twice shows as two lines there whatever the runner's own records say.

``services/stack/chaos.py`` copies it into the catalogue folder of its stack. ``--verify``
succeeds when the run's line is there. Exit codes: 0 done (verified), 1 no line (verify),
2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

EFFECTS = Path(__file__).with_name("effects.log")

WORK_S = 1.0
"""How long a run lasts after its effect: long enough for a kill of the runner to land mid-run."""


def executed(effects: Path) -> list[str]:
    """The run ids in an effects log, one per execution, in order."""
    if not effects.exists():
        return []
    return [line.split()[0] for line in effects.read_text().splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="The run id (the runner binds it).")
    parser.add_argument("--verify", action="store_true", help="Check the run's effect is there.")
    args = parser.parse_args()
    if args.verify:
        return 0 if args.run in executed(EFFECTS) else 1
    line = f"{args.run} {os.getpid()} {time.time():.3f}\n".encode()
    descriptor = os.open(EFFECTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)  # one short O_APPEND write: lines never interleave
    finally:
        os.close(descriptor)
    time.sleep(WORK_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())

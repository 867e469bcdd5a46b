"""How ``make test`` spreads the suite over pytest-xdist's workers.

Each test file is a unit of work (its module fixtures are made once, on one worker), except the
tests that start whole stacks of service processes: the e2e, scale and stack folders are one unit
together, run one test after another on one worker, and the fuzz folder, whose tests share one
stack, is another; both are handed out before every file. So at most two stacks load the
machine's two cores at a time (with four workers running e2e stacks at once, stacks missed their
readiness deadlines), and the longest unit starts first instead of last.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadFileScheduling

# Unit name → the folders it holds, in the order the units are handed out.
FIRST_UNITS = {
    "stacks": ("tests/e2e/", "tests/scale/", "tests/stack/"),
    "fuzz": ("tests/fuzz/",),
}


class StacksOnOneWorker(LoadFileScheduling):  # type: ignore[misc]  # xdist is untyped
    """``--dist loadfile``, with :data:`FIRST_UNITS` handed out first, one folder group each."""

    def _split_scope(self, nodeid: str) -> str:
        for unit, folders in FIRST_UNITS.items():
            if nodeid.startswith(folders):
                return unit
        return str(super()._split_scope(nodeid))

    def _assign_work_unit(self, node: Any) -> None:
        for unit in reversed(FIRST_UNITS):
            if unit in self.workqueue:
                self.workqueue.move_to_end(unit, last=False)
        super()._assign_work_unit(node)

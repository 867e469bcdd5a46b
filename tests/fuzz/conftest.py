"""One `vigil up` stack for all the fuzz tests (starting it costs a minute or two here), shared
by the HTTP fuzzing and the real-broker consumer tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.stack.stack import RunningStack
from tests.fuzz.stack_thread import StackThread


# Package scope: the stack stops after the last fuzz test, not with the worker that ran them.
@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackThread, RunningStack]]:
    """Every service as its own process on the embedded broker; its URLs and credentials."""
    harness = StackThread(Path(tmp_path_factory.mktemp("fuzz-stack")))
    with harness as running:
        yield harness, running

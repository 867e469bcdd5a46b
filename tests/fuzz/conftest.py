"""One `vigil up` stack for the whole fuzz session (starting it costs a minute or two here), shared
by the HTTP fuzzing and the real-broker consumer tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.stack.stack import RunningStack
from tests.fuzz.stack_thread import StackThread


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackThread, RunningStack]]:
    """Every service as its own process on the embedded broker; its URLs and credentials."""
    harness = StackThread(Path(tmp_path_factory.mktemp("fuzz-stack")))
    with harness as running:
        yield harness, running

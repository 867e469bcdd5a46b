"""The chaos suite, short (``bench/chaos.py`` is the long one): the stack as ``vigil up`` runs it,
under scoring traffic, labels, alerts and registry writes, while the services that keep state or
serve requests are SIGKILLed one after another and restarted by the supervisor. Afterwards every
request has its prediction, every alert its incident (one open per fingerprint), no runbook run
was executed twice, and every acknowledged registry write is there."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from services.runtime import ServiceName, free_port
from services.stack.chaos import ChaosOptions, run_chaos
from tests.conftest import POSTGRES_ADMIN_URL

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

TARGETS = [
    ServiceName.SCORER,
    ServiceName.INCIDENT_LOG,
    ServiceName.RUNBOOK_RUNNER,
    ServiceName.RETRAINER,
]


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
)
async def test_services_killed_at_random_under_load_lose_nothing_and_do_nothing_twice(
    tmp_path: Path, database: str
) -> None:
    seed = random.SystemRandom().randrange(1 << 32)
    progress: list[str] = []
    options = ChaosOptions(
        state_dir=tmp_path / "state",
        seed=seed,
        kills=len(TARGETS),
        kill_every_s=(2.0, 5.0),
        services=TARGETS,  # the monitor and drift detector are neither killed nor counted here
        targets=TARGETS,
        new_fingerprint_every_s=2.0,
        registry_write_every_s=2.0,
        settle_timeout_s=240.0,
        postgres_url=POSTGRES_ADMIN_URL if database == "postgresql" else None,
        broker_port=free_port(),
        ports={name: free_port() for name in ServiceName},
    )
    tally = await run_chaos(options, progress.append)
    seen = f"seed {seed}; {tally.as_json()}; " + " | ".join(progress)

    assert tally.kills_by_service == {target.value: 1 for target in TARGETS}, seen
    assert all(tally.restarts_by_service[target.value] >= 1 for target in TARGETS), seen
    assert tally.settled, seen
    assert tally.requests > 100, seen
    assert tally.lost == 0, seen
    assert tally.predictions_unique == tally.requests, seen
    assert tally.alerts_lost == 0, seen
    assert tally.fingerprints_without_incident == 0, seen
    assert tally.duplicate_incidents == 0, seen
    assert tally.incidents_without_run == 0, seen
    assert tally.runbook_runs_executed > 0, seen  # the effects log sees real executions
    assert tally.runbook_runs_executed_twice == 0, seen
    assert tally.runbook_runs_succeeded_unexecuted == 0, seen
    assert tally.registry_writes_acknowledged >= 2, seen  # some land while the log is up
    assert tally.registry_changes_lost == 0, seen
    assert tally.dead_lettered == 0, seen

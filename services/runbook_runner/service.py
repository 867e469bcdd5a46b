"""The runner's use cases: accept a request, start waiting runs within limits, execute a run,
and recover after a crash. Each state change commits in one transaction with its outbox event.

The Kafka handler only records a request (:meth:`Runner.accept`) and returns, so a long run never
holds up the consumer. A background worker (:meth:`Runner.work`) starts waiting runs oldest
first, at most ``max_concurrent_runs`` at once in this process (the rest wait their turn), and
refuses a run whose runbook already has ``max_concurrent_per_model`` runs in progress for the
same model (on any runner sharing the database). A waiting run whose incident was resolved after
it was asked for is ``skipped``, and one asked for longer than ``max_queue_age_s`` ago
``expired``, instead of started: both judged when the worker gets to it, from what is in the
database, so a restarted runner judges its backlog the same way. A run started but not finished
when the runner stops or dies is marked ``abandoned`` and is never run again: on the way down,
or when a runner of the same instance id starts again, or — whatever became of its runner — by
any runner sharing the database once the run's lease lapses. A runner renews the lease of each
run it executes every third of ``lease_s``; a run whose lease another runner found lapsed is no
longer its own, so it stops the run's process rather than report on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from contracts.envelope import utc_now
from contracts.incidents import IncidentResolved
from contracts.runbooks import RunbookRequest, RunState
from services.runbook_runner.admission import (
    Admitted,
    Ask,
    Refused,
    admit,
    as_recorded,
    request_problem,
)
from services.runbook_runner.capture import printable
from services.runbook_runner.catalog import Catalog
from services.runbook_runner.execution import CommandResult, run_command, sha256_of
from services.runbook_runner.runs import (
    ACTIVE_STATES,
    Verdict,
    after_command,
    after_verification,
    before_start,
)
from services.runbook_runner.store import RunStore, ask_of
from services.runbook_runner.tables import RunRow
from services.runtime.consumer import Rejected
from services.runtime.database import Sessions
from services.runtime.waiting import wait_at_most

__all__ = ["Clock", "Limits", "Runner"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

_REASON_LIMIT = 2000
_WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class Limits:
    """How runs are executed by one runner."""

    instance: str
    work_dir: Path
    python: str
    max_concurrent_runs: int = 4
    output_limit_bytes: int = 64 * 1024
    kill_grace_s: float = 2.0
    stop_grace_s: float = 10.0
    poll_interval_s: float = 1.0
    max_queue_age_s: float = 1800.0
    lease_s: float = 30.0


def _recorded(request: RunbookRequest, digest: str, now: datetime) -> RunRow:
    """The row of a request just received, waiting to start."""
    return RunRow(
        run_id=request.run_id,
        request_digest=digest,
        request_event_id=request.event_id,
        correlation_id=request.correlation_id or request.incident_id,
        incident_id=request.incident_id,
        model=request.model,
        model_version=request.model_version,
        runbook=request.runbook,
        tier=request.tier.value,
        requested_by=request.requested_by,
        approved_by=request.approved_by,
        reason=printable(request.reason)[:_REASON_LIMIT],
        state=RunState.REQUESTED.value,
        asked_at=request.occurred_at,
        requested_at=now,
    )


@dataclass(frozen=True)
class _Claim:
    run_id: str
    admitted: Admitted
    requested_by: str


class Runner:
    """Accepts, starts, executes and recovers runbook runs."""

    def __init__(
        self,
        sessions: Sessions,
        catalog: Catalog,
        limits: Limits,
        *,
        environment: Mapping[str, str],
        clock: Clock = utc_now,
        committed: Callable[[], None] = lambda: None,
        flush: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._limits = limits
        self._environment = dict(environment)
        self._clock = clock
        self._committed = committed
        self._flush = flush
        self._wake = asyncio.Event()
        self._executions: dict[asyncio.Task[None], str] = {}
        self._ended: set[str] = set()  # runs whose outcome is recorded, their task cleaning up
        self._renewed_at = float("-inf")
        self._swept_at = float("-inf")

    @property
    def executing(self) -> int:
        """How many runs this process is executing now."""
        return len(self._executions)

    async def accept(self, request: RunbookRequest) -> None:
        """Record a request (or its refusal); a run id already recorded is not recorded again.

        Raises :class:`Rejected` (the request goes to the dead-letter topic) when its
        identifiers are unsafe to store, or when its run id was used for a different request.
        """
        problem = request_problem(request)
        if problem is not None:
            raise Rejected(problem)
        ask = Ask.of(request)
        admission = admit(self._catalog, ask, python=self._limits.python)
        async with self._sessions() as session, session.begin():
            store = RunStore(session)
            existing = await store.get(request.run_id)
            if existing is not None:
                if existing.request_digest != ask.digest():
                    raise Rejected(
                        f"run id {request.run_id!r} was already used for a different request"
                    )
                log.warning(
                    "run %s received again (a redelivery or a replay of event %s); it is %s "
                    "and is not run again",
                    existing.run_id,
                    request.event_id,
                    existing.state,
                )
                return
            row = _recorded(request, ask.digest(), self._clock())
            if isinstance(admission, Refused):
                row.supplied = as_recorded(dict(request.parameters))
                store.add(row)
                store.move(
                    row,
                    RunState.REFUSED,
                    parameters=row.supplied,
                    detail=admission.reason,
                    finished_at=self._clock(),
                )
            else:
                row.supplied = dict(request.parameters)
                row.parameters = admission.parameters
                store.add(row)
        self._committed()
        self._wake.set()

    async def on_incident_resolved(self, resolved: IncidentResolved) -> None:
        """Remember that an incident was resolved: its runs asked for before then are skipped
        when the worker gets to them, on this runner or after a restart."""
        async with self._sessions() as session, session.begin():
            await RunStore(session).record_resolution(resolved.incident_id, resolved.occurred_at)
        self._wake.set()

    async def recover(self) -> int:
        """Mark ``abandoned`` the runs this instance id left in progress, and those of any
        runner whose lease lapsed; return how many.

        Call once at start-up, before :meth:`work`: those runs' processes died with their runner
        (or were killed as it stopped), and whatever they did is unknown, so they are reported
        for a person to judge rather than run again.
        """
        return await self._abandon("the runner died") + await self.abandon_lapsed()

    async def abandon_lapsed(self) -> int:
        """Mark ``abandoned`` the runs in progress whose runner stopped renewing their lease
        (it died, or lost the database for longer than the lease); return how many."""
        now = self._clock()
        async with self._sessions() as session, session.begin():
            store = RunStore(session)
            rows = list(await store.lapsed(now))
            for row in rows:
                lease = "its lease" if row.lease_until is None else "the lease"
                store.move(
                    row,
                    RunState.ABANDONED,
                    detail=(
                        f"its runner {row.owner} stopped renewing {lease} (it died or lost the "
                        f"database) while the run was {row.state}; it is not run again"
                    ),
                    finished_at=now,
                )
        if rows:
            log.warning(
                "%d run(s) abandoned, their runner's lease lapsed: %s",
                len(rows),
                ", ".join(f"{r.run_id} ({r.owner})" for r in rows),
            )
            self._committed()
        return len(rows)

    async def keep_leases(self) -> None:
        """Renew the leases of the runs this process executes, stop those another runner
        already judged abandoned, and abandon other runners' lapsed runs — each at most every
        third of the lease."""
        due = self._limits.lease_s / 3
        if time.monotonic() - self._renewed_at >= due:
            self._renewed_at = time.monotonic()
            await self._renew()
        if time.monotonic() - self._swept_at >= due:
            self._swept_at = time.monotonic()
            await self.abandon_lapsed()

    async def _renew(self) -> None:
        executing = {t: r for t, r in self._executions.items() if r not in self._ended}
        if not executing:
            return
        until = self._clock() + timedelta(seconds=self._limits.lease_s)
        async with self._sessions() as session, session.begin():
            kept = await RunStore(session).renew(
                self._limits.instance, set(executing.values()), until
            )
        for task, run_id in executing.items():
            if run_id not in kept and not task.done():
                log.error(
                    "run %s was judged abandoned by another runner (this one did not renew its "
                    "lease in time); its process is stopped and its result not reported",
                    run_id,
                )
                task.cancel()

    async def work(self) -> None:
        """Start waiting runs until cancelled; on cancellation let runs finish for a grace
        period, then stop the rest and report them abandoned."""
        try:
            while True:
                self._wake.clear()
                try:
                    await self.keep_leases()
                except Exception:
                    log.warning("keeping the runs' leases failed; retrying", exc_info=True)
                await self.start_waiting()
                await wait_at_most(self._wake, self._limits.poll_interval_s)
        except asyncio.CancelledError:
            await self._stop()
            raise

    async def start_waiting(self) -> int:
        """Start as many waiting runs as the limits allow; return how many started."""
        started = 0
        while self.executing < self._limits.max_concurrent_runs:
            claim = await self._claim_next()
            if claim is None:
                break
            if isinstance(claim, _Claim):
                task = asyncio.create_task(self._execute(claim), name=f"run:{claim.run_id}")
                self._executions[task] = claim.run_id
                task.add_done_callback(self._finished_execution)
                started += 1
        return started

    async def wait_idle(self) -> None:
        """Wait until no run executes in this process."""
        while self._executions:
            await asyncio.gather(*self._executions, return_exceptions=True)

    def _finished_execution(self, task: asyncio.Task[None]) -> None:
        self._ended.discard(self._executions.pop(task, ""))
        if not task.cancelled() and task.exception() is not None:
            log.error("run execution failed", exc_info=task.exception())
        self._wake.set()

    async def _claim_next(self) -> _Claim | RunState | None:
        """Start the oldest waiting run: skip or expire it if it is no longer wanted, re-admit it
        against the catalogue, check its runbook's per-model limit, hash its scripts, and move it
        to ``running`` — or refuse it."""
        async with self._sessions() as session, session.begin():
            store = RunStore(session)
            await store.serialise_claims()
            row = await store.next_requested()
            if row is None:
                return None
            now = self._clock()
            stale = before_start(
                row.asked_at,
                now,
                max_queue_age=timedelta(seconds=self._limits.max_queue_age_s),
                resolved_at=await store.resolved_at(row.incident_id),
            )
            if stale is not None:
                store.move(row, stale.state, detail=stale.detail, finished_at=now)
                claim: _Claim | RunState = stale.state
            else:
                admission = admit(self._catalog, ask_of(row), python=self._limits.python)
                if isinstance(admission, Refused):
                    store.move(row, RunState.REFUSED, detail=admission.reason, finished_at=now)
                    claim = RunState.REFUSED
                else:
                    claim = await self._start(store, row, admission, now)
        self._committed()
        return claim

    async def _start(
        self, store: RunStore, row: RunRow, admitted: Admitted, now: datetime
    ) -> _Claim | RunState:
        runbook = admitted.runbook
        active = await store.active_count(row.runbook, row.model)
        if active >= runbook.max_concurrent_per_model:
            store.move(
                row,
                RunState.REFUSED,
                detail=(
                    f"limit reached: {active} run(s) of {runbook.name!r} for model "
                    f"{row.model!r} already in progress (at most "
                    f"{runbook.max_concurrent_per_model} at once)"
                ),
                finished_at=now,
            )
            return RunState.REFUSED
        try:
            script_sha256 = await asyncio.to_thread(sha256_of, admitted.script)
            verify_sha256 = await asyncio.to_thread(sha256_of, admitted.verify_script)
        except OSError as error:
            store.move(
                row, RunState.REFUSED, detail=f"cannot read the script: {error}", finished_at=now
            )
            return RunState.REFUSED
        store.move(
            row,
            RunState.RUNNING,
            owner=self._limits.instance,
            lease_until=now + timedelta(seconds=self._limits.lease_s),
            parameters=admitted.parameters,
            argv=admitted.argv,
            verify_argv=admitted.verify_argv,
            script_sha256=script_sha256,
            verify_script_sha256=verify_sha256,
            started_at=now,
        )
        return _Claim(row.run_id, admitted, row.requested_by)

    async def _execute(self, claim: _Claim) -> None:
        runbook = claim.admitted.runbook
        self._limits.work_dir.mkdir(parents=True, exist_ok=True)
        work_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self._limits.work_dir))
        # The script acts for whoever asked for the run (a retrain it asks for is theirs).
        environment = self._environment | {
            "VIGIL_RUN_ID": claim.run_id,
            "VIGIL_ON_BEHALF_OF": claim.requested_by,
        }
        try:
            command = await self._run(
                claim.admitted.argv, environment, work_dir, runbook.timeout_seconds
            )
            if command.error is not None:
                verdict = Verdict(RunState.FAILED, f"command could not start: {command.error}")
            else:
                verdict = after_command(
                    command.exit_code,
                    timed_out=command.timed_out,
                    timeout_s=runbook.timeout_seconds,
                    stderr=command.stderr,
                )
            outputs = {
                "exit_code": command.exit_code,
                "stdout": command.stdout,
                "stderr": command.stderr,
                "truncated": command.truncated,
            }
            recorded = await self._record(claim.run_id, verdict, outputs)
            if not recorded or verdict.state is not RunState.VERIFYING:
                return
            check = await self._run(
                claim.admitted.verify_argv,
                environment,
                work_dir,
                runbook.verify.timeout_seconds,
                merge_stderr=True,
            )
            if check.error is not None:
                verdict = Verdict(
                    RunState.VERIFY_FAILED, f"verification could not start: {check.error}"
                )
            else:
                verdict = after_verification(
                    check.exit_code,
                    timed_out=check.timed_out,
                    timeout_s=runbook.verify.timeout_seconds,
                )
            await self._record(
                claim.run_id,
                verdict,
                {
                    "verify_exit_code": check.exit_code,
                    "verify_output": check.stdout,
                    "truncated": command.truncated or check.truncated,
                },
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, work_dir, True)

    async def _run(
        self,
        argv: list[str],
        environment: Mapping[str, str],
        work_dir: Path,
        timeout_s: float,
        *,
        merge_stderr: bool = False,
    ) -> CommandResult:
        return await run_command(
            argv,
            env=environment,
            cwd=work_dir,
            timeout_s=timeout_s,
            output_limit=self._limits.output_limit_bytes,
            kill_grace_s=self._limits.kill_grace_s,
            merge_stderr=merge_stderr,
        )

    async def _record(self, run_id: str, verdict: Verdict, changes: Mapping[str, object]) -> bool:
        """Move a run to a verdict's state, retrying a failed write; a run whose result cannot
        be written stays in progress and is reported abandoned once its lease lapses. A run
        another runner already reported abandoned (its lease lapsed) keeps that report: ``False``
        then, and the run goes no further."""
        delay = 0.2
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                async with self._sessions() as session, session.begin():
                    store = RunStore(session)
                    row = await store.get(run_id)
                    assert row is not None
                    if row.owner != self._limits.instance or RunState(row.state) not in (
                        ACTIVE_STATES
                    ):
                        log.error(
                            "run %s ended %s here, but another runner had already reported it "
                            "%s (its lease lapsed); that report stands",
                            run_id,
                            verdict.state.value,
                            row.state,
                        )
                        return False
                    if verdict.state is not RunState.VERIFYING:
                        changes = {**changes, "finished_at": self._clock()}
                    store.move(row, verdict.state, detail=verdict.detail, **changes)
                self._committed()
                if verdict.state is not RunState.VERIFYING:
                    self._ended.add(run_id)
                return True
            except Exception:
                if attempt == _WRITE_ATTEMPTS:
                    raise
                log.warning("writing run %s failed (attempt %d)", run_id, attempt, exc_info=True)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _stop(self) -> None:
        deadline = time.monotonic() + self._limits.stop_grace_s
        while self._executions and (left := deadline - time.monotonic()) > 0:
            # The runs finishing in the grace period are still this runner's: keep their lease.
            await asyncio.wait(set(self._executions), timeout=min(left, self._limits.lease_s / 3))
            with contextlib.suppress(Exception):
                await self._renew()
        for task in list(self._executions):
            task.cancel()
        await asyncio.gather(*self._executions, return_exceptions=True)
        if await self._abandon("the runner stopped") and self._flush is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush(), 5.0)

    async def _abandon(self, cause: str) -> int:
        async with self._sessions() as session, session.begin():
            store = RunStore(session)
            rows = list(await store.active_of(self._limits.instance))
            for row in rows:
                store.move(
                    row,
                    RunState.ABANDONED,
                    detail=f"{cause} while the run was {row.state}; it is not run again",
                    finished_at=self._clock(),
                )
        if rows:
            log.warning("%d run(s) abandoned: %s", len(rows), ", ".join(r.run_id for r in rows))
            self._committed()
        return len(rows)

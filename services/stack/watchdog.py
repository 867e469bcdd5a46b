"""Platform alerts only the supervisor can raise: a service unready too long, a restart loop.

The supervisor sees every process, so it checks them (:func:`supervised_readings`, pure, over its
status) and publishes the alerts to the alerts topic as a service would, through the same
:class:`~services.runtime.self_watch.SelfWatch` the services run (so the same episode rules and
fingerprints apply):

===================  ===================================================  =====================
kind                 bad when                                             subject
===================  ===================================================  =====================
``service_unready``  the service has not been ready (``/readyz`` 200)     ``supervisor/<name>``
                     for ``unready_after_s``: starting, unready or
                     waiting to restart
``restart_loop``     it crashed ``crashes`` times in a row (each before   ``supervisor/<name>``
                     it stayed ready ``stable_after_s``); over once it
                     has stayed ready that long
===================  ===================================================  =====================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contracts.alerts import AlertKind, Severity
from services.runtime.self_watch import Probe, Reading
from services.stack.supervisor import ChildState, ChildStatus

__all__ = ["WatchdogPolicy", "supervised_readings", "supervisor_probe"]


@dataclass(frozen=True)
class WatchdogPolicy:
    """When the supervisor alerts about its services."""

    unready_after_s: float = 60.0
    restart_loop_crashes: int = 3
    stable_after_s: float = 60.0


def supervised_readings(rows: Sequence[ChildStatus], policy: WatchdogPolicy) -> list[Reading]:
    """One ``service_unready`` and one ``restart_loop`` reading per supervised service."""
    readings = []
    for row in rows:
        if row.state in (ChildState.STOPPING, ChildState.STOPPED):
            continue  # stopped on purpose: nothing to say either way
        unready_s = row.unready_s or 0.0
        readings.append(
            Reading(
                kind=AlertKind.SERVICE_UNREADY,
                subject=f"supervisor/{row.name}",
                bad=row.unready_s is not None and unready_s >= policy.unready_after_s,
                severity=Severity.CRITICAL,
                summary=(
                    f"{row.name} has not been ready for {unready_s:.0f} s ({row.state.value})"
                    if row.unready_s is not None
                    else f"{row.name} is ready"
                ),
                evidence={
                    "service": row.name,
                    "state": row.state.value,
                    "unready_s": round(unready_s, 1),
                    "threshold_s": policy.unready_after_s,
                    "restarts": row.restarts,
                },
            )
        )
        settled = row.state is ChildState.READY and (row.ready_s or 0.0) >= policy.stable_after_s
        readings.append(
            Reading(
                kind=AlertKind.RESTART_LOOP,
                subject=f"supervisor/{row.name}",
                bad=row.crashes_in_a_row >= policy.restart_loop_crashes and not settled,
                severity=Severity.CRITICAL,
                summary=(
                    f"{row.name} crashed {row.crashes_in_a_row} time(s) in a row "
                    f"(last exit status {row.last_exit}); {row.restarts} restart(s) in all"
                    if not settled
                    else f"{row.name} has stayed ready {row.ready_s or 0.0:.0f} s"
                ),
                evidence={
                    "service": row.name,
                    "state": row.state.value,
                    "crashes_in_a_row": row.crashes_in_a_row,
                    "threshold": policy.restart_loop_crashes,
                    "restarts": row.restarts,
                    "last_exit": row.last_exit,
                },
            )
        )
    return readings


def supervisor_probe(status: Callable[[], list[ChildStatus]], policy: WatchdogPolicy) -> Probe:
    """The probe the supervisor's self-watch runs over its status."""

    async def probe() -> list[Reading]:
        return supervised_readings(status(), policy)

    return probe

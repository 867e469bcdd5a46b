"""The incident log's own platform probe: pages that reached nobody on an incident still open.

A notification is ``failed`` once every retry of one contact gave up (the dispatcher already
fails the page over to the next tier, ``Dispatcher._fail_over``). While an unresolved incident
holds such a notification, someone who should know about it may not: the self-watch
(:mod:`services.runtime.self_watch`) raises a ``paging_failed`` alert, subject
``incident-log/paging``, and it recovers when no open incident holds one (they resolved). Failed
pages of the ``paging_failed`` incident itself do not count, or it could never recover.
"""

from __future__ import annotations

from sqlmodel import col, func, select

from contracts.alerts import AlertKind
from contracts.incidents import IncidentStatus
from services.incident_log.paging.tables import NotificationRow
from services.incident_log.tables import IncidentRow
from services.runtime.database import Sessions
from services.runtime.self_watch import Probe, Reading

__all__ = ["paging_probe"]

_LISTED = 20


def paging_probe(sessions: Sessions) -> Probe:
    """A probe of failed notifications on unresolved incidents."""

    async def probe() -> list[Reading]:
        failed_on_open = (
            select(NotificationRow.incident_id, NotificationRow.person, NotificationRow.last_error)
            .join(IncidentRow, col(IncidentRow.id) == col(NotificationRow.incident_id))
            .where(col(NotificationRow.status) == "failed")
            .where(col(IncidentRow.status) != IncidentStatus.RESOLVED.value)
            # the incident this alert opens may fail to page too: it must not keep itself open
            .where(col(IncidentRow.kind) != AlertKind.PAGING_FAILED.value)
        )
        async with sessions() as session:
            count = int(
                (
                    await session.exec(select(func.count()).select_from(failed_on_open.subquery()))
                ).one()
            )
            listed = (
                (
                    await session.exec(
                        failed_on_open.order_by(col(NotificationRow.id)).limit(_LISTED)
                    )
                ).all()
                if count
                else []
            )
        incidents = sorted({row[0] for row in listed})
        people = sorted({row[1] for row in listed})
        return [
            Reading(
                kind=AlertKind.PAGING_FAILED,
                subject="incident-log/paging",
                bad=count > 0,
                summary=(
                    f"{count} page(s) reached nobody on open incidents "
                    f"{', '.join(incidents) or '-'} (people: {', '.join(people) or '-'})"
                    if count
                    else "no failed page on an open incident"
                ),
                evidence={
                    "failed": count,
                    "incidents": incidents,
                    "people": people,
                    "last_error": next((row[2] for row in listed if row[2]), None),
                },
            )
        ]

    return probe

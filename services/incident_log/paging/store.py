"""Persistence of paging: people, contacts, schedules, owners, pages and notifications.

Everything happens in the caller's session (one transaction). Pages and due notifications are
claimed ``FOR UPDATE SKIP LOCKED`` so several incident-log replicas share the work on PostgreSQL
(on SQLite the one writer holds the lock anyway).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.notifications import NotificationReason
from services.incident_log.paging.planning import PageIntent
from services.incident_log.paging.schedules import Override, Schedule
from services.incident_log.paging.tables import (
    ContactRow,
    ModelOwnersRow,
    NotificationRow,
    OverrideRow,
    PageRow,
    PagingKeyRow,
    PersonRow,
    ScheduleRow,
    UsedLinkRow,
)
from services.runtime.leases import lease_key

__all__ = ["PagingStore", "page_row", "page_values"]

_DUE = ("pending", "retrying", "sending")
_PAGED_REASONS = (NotificationReason.PAGE.value, NotificationReason.REMINDER.value)


def page_row(intent: PageIntent) -> PageRow:
    """The row of a page intent."""
    return PageRow(**page_values(intent))


def page_values(intent: PageIntent) -> dict[str, Any]:
    """The column values of a page intent's row (for a multi-row insert)."""
    return {
        "id": f"pg-{secrets.token_hex(8)}",
        "incident_id": intent.incident_id,
        "tier": intent.tier.value,
        "reason": intent.reason.value,
        "targets": list(intent.targets),
        "actor": intent.actor,
        "snapshot": intent.snapshot,
        "created_at": intent.at,
        "expanded_at": None,
        "recipients": None,
        "unresolved": None,
    }


def schedule_of(row: ScheduleRow) -> Schedule:
    """The domain schedule of a row."""
    return Schedule.model_validate({"name": row.name, "tier": row.tier, "layers": row.layers})


def override_of(row: OverrideRow) -> Override:
    """The domain override of a row."""
    return Override(
        id=row.id,
        schedule=row.schedule,
        person=row.person,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_at=row.created_at,
        created_by=row.created_by,
    )


class PagingStore:
    """Reads and writes paging state in one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- people -----------------------------------------------------------------------------

    async def people(self) -> Sequence[PersonRow]:
        return (await self.session.exec(select(PersonRow).order_by(col(PersonRow.name)))).all()

    async def person(self, name: str) -> PersonRow | None:
        return await self.session.get(PersonRow, name)

    async def contacts(self, person: str | None = None) -> Sequence[ContactRow]:
        query = select(ContactRow).order_by(col(ContactRow.person), col(ContactRow.created_at))
        if person is not None:
            query = query.where(ContactRow.person == person)
        return (await self.session.exec(query)).all()

    async def person_names(self) -> frozenset[str]:
        return frozenset((await self.session.exec(select(PersonRow.name))).all())

    # -- schedules and owners ----------------------------------------------------------------

    async def schedules(self) -> dict[str, Schedule]:
        rows = (await self.session.exec(select(ScheduleRow))).all()
        return {row.name: schedule_of(row) for row in rows}

    async def overrides(self, *, ending_after: datetime) -> list[Override]:
        rows = (
            await self.session.exec(
                select(OverrideRow)
                .where(OverrideRow.ends_at > ending_after, col(OverrideRow.cancelled_at).is_(None))
                .order_by(col(OverrideRow.starts_at))
            )
        ).all()
        return [override_of(row) for row in rows]

    async def owners_of(self, model: str) -> list[str]:
        row = await self.session.get(ModelOwnersRow, model)
        return list(row.owners) if row else []

    async def set_owners(self, model: str, version: int, owners: list[str]) -> None:
        """Keep the owners of the newest registered version."""
        row = await self.session.get(ModelOwnersRow, model, with_for_update=True)
        if row is None:
            self.session.add(ModelOwnersRow(model=model, version=version, owners=owners))
        elif version >= row.version:
            row.version, row.owners = version, owners
            self.session.add(row)

    # -- pages and notifications -------------------------------------------------------------

    async def pending_pages(self, limit: int) -> Sequence[PageRow]:
        query = (
            select(PageRow)
            .where(col(PageRow.expanded_at).is_(None))
            .order_by(col(PageRow.created_at), col(PageRow.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.exec(query)).all()

    async def paged_people(self, incident_id: str) -> list[str]:
        """Everyone paged (or reminded) about an incident so far, in order."""
        rows = (
            await self.session.exec(
                select(NotificationRow.person)
                .where(
                    NotificationRow.incident_id == incident_id,
                    col(NotificationRow.reason).in_(_PAGED_REASONS),
                )
                .order_by(col(NotificationRow.created_at))
            )
        ).all()
        return list(dict.fromkeys(rows))

    async def lock_rate_windows(self, people: Iterable[str]) -> None:
        """Hold these people's rate windows until the transaction ends: a dispatcher counts a
        person's recent pages and adds its own in one transaction, and another replica's
        dispatcher counting the same person at once would find the same room and page past
        ``pages_per_window``. On PostgreSQL a transaction-level advisory lock per person, taken
        in name order (two dispatchers never wait on each other crosswise); a SQLite write
        transaction is exclusive already."""
        if self.session.get_bind().dialect.name != "postgresql":
            return
        for person in sorted(set(people)):
            await self.session.exec(
                select(func.pg_advisory_xact_lock(lease_key(f"rate-window:{person}")))
            )

    async def pages_since(self, person: str, since: datetime) -> int:
        """How many pages and reminders were addressed to a person since ``since`` (each page
        counted once, however many contacts it went to)."""
        count = await self.session.exec(
            select(func.count(func.distinct(NotificationRow.page_id))).where(
                NotificationRow.person == person,
                NotificationRow.created_at >= since,
                col(NotificationRow.reason).in_(_PAGED_REASONS),
                NotificationRow.status != "held",
                NotificationRow.status != "digested",
            )
        )
        return int(count.one())

    async def has_pending_pages(self) -> bool:
        query = select(PageRow.id).where(col(PageRow.expanded_at).is_(None)).limit(1)
        return (await self.session.exec(query)).first() is not None

    async def has_held(self) -> bool:
        query = select(NotificationRow.id).where(NotificationRow.status == "held").limit(1)
        return (await self.session.exec(query)).first() is not None

    async def has_due(self, now: datetime) -> bool:
        query = (
            select(NotificationRow.id)
            .where(
                col(NotificationRow.status).in_(_DUE),
                or_(
                    col(NotificationRow.next_attempt_at).is_(None),
                    col(NotificationRow.next_attempt_at) <= now,
                ),
            )
            .limit(1)
        )
        return (await self.session.exec(query)).first() is not None

    async def pages_by_id(self, ids: set[str]) -> dict[str, PageRow]:
        rows = (await self.session.exec(select(PageRow).where(col(PageRow.id).in_(ids)))).all()
        return {row.id: row for row in rows}

    async def contacts_by_id(self, ids: set[str]) -> dict[str, ContactRow]:
        query = select(ContactRow).where(col(ContactRow.id).in_(ids))
        return {row.id: row for row in (await self.session.exec(query)).all()}

    async def notifications_by_id(self, ids: set[str]) -> dict[str, NotificationRow]:
        """Notifications by key, locked for update."""
        query = select(NotificationRow).where(col(NotificationRow.id).in_(ids)).with_for_update()
        return {row.id: row for row in (await self.session.exec(query)).all()}

    async def due_notifications(self, now: datetime, limit: int) -> Sequence[NotificationRow]:
        query = (
            select(NotificationRow)
            .where(
                col(NotificationRow.status).in_(_DUE),
                or_(
                    col(NotificationRow.next_attempt_at).is_(None),
                    col(NotificationRow.next_attempt_at) <= now,
                ),
            )
            .order_by(col(NotificationRow.next_attempt_at), col(NotificationRow.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.exec(query)).all()

    async def held(self, limit: int) -> Sequence[NotificationRow]:
        query = (
            select(NotificationRow)
            .where(NotificationRow.status == "held")
            .order_by(col(NotificationRow.person), col(NotificationRow.created_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.exec(query)).all()

    async def notifications_of(self, incident_id: str) -> Sequence[NotificationRow]:
        query = (
            select(NotificationRow)
            .where(NotificationRow.incident_id == incident_id)
            .order_by(col(NotificationRow.created_at), col(NotificationRow.id))
        )
        return (await self.session.exec(query)).all()

    async def page(self, page_id: str) -> PageRow | None:
        return await self.session.get(PageRow, page_id)

    # -- acknowledge links -------------------------------------------------------------------

    async def link_key(self) -> bytes:
        """The link-signing key, made on first use (a concurrent maker's key wins if first)."""
        row = await self.session.get(PagingKeyRow, "ack-links")
        if row is None:
            async with self.session.begin_nested():
                try:
                    self.session.add(PagingKeyRow(name="ack-links", value=secrets.token_hex(32)))
                    await self.session.flush()
                except IntegrityError:
                    pass
            row = await self.session.get(PagingKeyRow, "ack-links", populate_existing=True)
            assert row is not None
        return bytes.fromhex(row.value)

    async def spend_link(self, nonce: str, incident_id: str, person: str, now: datetime) -> bool:
        """Mark a link used in this transaction; ``False`` if it was used before."""
        if await self.session.get(UsedLinkRow, nonce) is not None:
            return False
        self.session.add(
            UsedLinkRow(nonce=nonce, incident_id=incident_id, person=person, used_at=now)
        )
        await self.session.flush()
        return True

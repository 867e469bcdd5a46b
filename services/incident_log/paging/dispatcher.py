"""The dispatcher: expands pages into notifications and delivers them, with retries and digests.

Runs as a background task of the incident log. Each pass

1. **expands** pending pages: resolves the tier's targets to people at the page's time (schedules,
   overrides, owners) or, for an acknowledgement or resolution, takes everyone paged so far; writes
   one notification per person and contact, keyed by a hash of (page, person, contact), and holds
   it instead when the person is over the rate limit;
2. **releases digests**: a person whose window has room again gets one digest of what was held;
3. **delivers** due notifications: claims them in a short transaction (status ``sending`` with a
   lease), sends outside any transaction, then records each outcome — on the incident's timeline
   and as a ``notification.attempted`` event staged in the outbox — retrying with exponential
   backoff and jitter until ``give_up_after``, when the notification is marked failed.

A crash between the claim and the record leaves the notification ``sending``; when its lease
ends it is sent again under the same idempotency key (delivery is at least once; a receiver that
honours the key sees it once).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.envelope import utc_now
from contracts.heartbeats import HeartbeatEchoed
from contracts.incidents import Tier
from contracts.notifications import (
    Channel,
    DeliveryOutcome,
    NotificationAttempted,
    NotificationReason,
)
from services.incident_log.paging.channels import Channels, Contact, DeliveryFailed
from services.incident_log.paging.links import issue_link_token
from services.incident_log.paging.messages import Notice
from services.incident_log.paging.planning import (
    PAGED,
    Recipients,
    resolve_recipients,
    retry_delay,
)
from services.incident_log.paging.store import PagingStore
from services.incident_log.paging.tables import (
    ContactRow,
    HeartbeatRow,
    NotificationRow,
    PageRow,
)
from services.incident_log.tables import TimelineRow
from services.runtime.database import Sessions
from services.runtime.outbox import stage
from services.runtime.waiting import wait_at_most

__all__ = ["Dispatcher", "PagingConfig", "notification_key"]

log = logging.getLogger(__name__)

PAGER = "system:pager"
PRODUCER = "incident-log"
_RATE_LIMITED = (NotificationReason.PAGE, NotificationReason.REMINDER)
_NOT_ECHOED = col(HeartbeatRow.echoed_at).is_(None)
_KEEP_ECHOED_HEARTBEATS = timedelta(hours=1)


@dataclass(frozen=True)
class PagingConfig:
    """How the dispatcher pages (from the incident log's settings)."""

    public_url: str = "http://127.0.0.1:8700"
    retry_base: timedelta = timedelta(seconds=5)
    retry_cap: timedelta = timedelta(minutes=10)
    give_up_after: timedelta = timedelta(hours=1)
    attempt_timeout: timedelta = timedelta(seconds=10)
    pages_per_window: int = 5
    rate_window: timedelta = timedelta(minutes=10)
    link_ttl: timedelta = timedelta(hours=24)
    batch_size: int = 100
    concurrency: int = 20


def notification_key(page_id: str, person: str, contact_id: str) -> str:
    """The stable idempotency key of one notification."""
    digest = hashlib.sha256(f"{page_id}/{person}/{contact_id}".encode()).hexdigest()
    return f"ntf-{digest[:24]}"


@dataclass(frozen=True)
class _Claim:
    key: str
    attempt: int
    contact: Contact | None
    notice: Notice


class Dispatcher:
    """Expands and delivers pages until cancelled."""

    def __init__(
        self,
        sessions: Sessions,
        channels: Channels,
        config: PagingConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        committed: Callable[[], None] = lambda: None,
        poll_interval_s: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._channels = channels
        self._config = config
        self._clock = clock
        self._committed = committed
        self._poll_interval_s = poll_interval_s
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for work now (call after committing a page)."""
        self._wake.set()

    async def run(self) -> None:
        """Expand, release and deliver until cancelled; a failing pass is logged and retried."""
        while True:
            self._wake.clear()
            try:
                busy = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("paging pass failed; retrying")
                busy = 0
            if busy:
                continue
            await wait_at_most(self._wake, self._poll_interval_s)

    async def step(self) -> int:
        """One pass; return how much it did. Expanding and claiming share one transaction, so a
        fresh page is on its way after one write (SQLite has a single writer)."""
        done = await self.echo_heartbeats()
        done += await self.release_digests()
        now = self._clock()
        if not await self._any(lambda store: _has_work(store, now)):
            return done
        async with self._sessions() as session, session.begin():
            expanded = await self._expand(session, now)
            claims = await self._claim(session, now)
        if expanded:
            self._committed()
        await self._deliver(claims)
        return done + expanded + len(claims)

    # -- the dead man's switch ----------------------------------------------------------------

    async def echo_heartbeats(self) -> int:
        """Answer each ``heartbeat`` alert the incident log took with a ``heartbeat.echoed``,
        staged in the outbox: the echo proves alerts, the incident log's consumer and database,
        this paging loop and the relay all work (docs/adr/0013-watching-vigil.md)."""
        async with self._sessions() as session:  # a read first: no write lock when none waits
            waiting = (await session.exec(select(HeartbeatRow).where(_NOT_ECHOED).limit(1))).all()
        if not waiting:
            return 0
        now = self._clock()
        async with self._sessions() as session, session.begin():
            rows = list(
                (
                    await session.exec(
                        select(HeartbeatRow)
                        .where(_NOT_ECHOED)
                        .limit(self._config.batch_size)
                        .with_for_update(skip_locked=True)  # replicas echo each row once
                    )
                ).all()
            )
            stage(
                session,
                [
                    HeartbeatEchoed(
                        producer=PRODUCER,
                        source=row.source,
                        alert_event_id=UUID(row.alert_event_id),
                        sent_at=row.sent_at,
                        received_at=row.received_at,
                    )
                    for row in rows
                ],
            )
            for row in rows:
                row.echoed_at = now
                session.add(row)
            await session.exec(
                delete(HeartbeatRow).where(
                    col(HeartbeatRow.echoed_at) < now - _KEEP_ECHOED_HEARTBEATS
                )
            )
        self._committed()
        return len(rows)

    # -- expansion ---------------------------------------------------------------------------

    async def expand_pages(self) -> int:
        """Turn pending pages into notifications."""
        if not await self._any(PagingStore.has_pending_pages):
            return 0
        async with self._sessions() as session, session.begin():
            expanded = await self._expand(session, self._clock())
        if expanded:
            self._committed()
        return expanded

    async def _expand(self, session: AsyncSession, now: datetime) -> int:
        store = PagingStore(session)
        pages = await store.pending_pages(self._config.batch_size)
        if not pages:
            return 0
        schedules = await store.schedules()
        overrides = await store.overrides(ending_after=min(p.created_at for p in pages))
        people = await store.person_names()
        contacts: dict[str, list[ContactRow]] = defaultdict(list)
        for contact in await store.contacts():
            contacts[contact.person].append(contact)
        resolved = [
            (page, await self._recipients(store, page, schedules, overrides, people))
            for page in pages
        ]
        await store.lock_rate_windows(
            person
            for page, recipients in resolved
            if NotificationReason(page.reason) in _RATE_LIMITED
            for person in recipients.people
        )
        recent: dict[str, int] = {}  # pages per person in the rate window, kept as we add
        for page, recipients in resolved:
            for person in recipients.people:
                held = False
                if NotificationReason(page.reason) in _RATE_LIMITED:
                    if person not in recent:
                        since = now - self._config.rate_window
                        recent[person] = await store.pages_since(person, since)
                    held = recent[person] >= self._config.pages_per_window
                    recent[person] += 0 if held else 1
                _notifications(session, page, person, contacts[person], now, held=held)
            page.expanded_at = now
            page.recipients = recipients.people
            page.unresolved = recipients.unresolved
            session.add(page)
            _timeline(
                session,
                page.incident_id,
                now,
                "paging",
                {
                    "reason": page.reason,
                    "tier": page.tier,
                    "people": recipients.people,
                    "unresolved": recipients.unresolved,
                },
            )
        return len(pages)

    async def _any(self, probe: Callable[[PagingStore], Awaitable[bool]]) -> bool:
        """A read without the write lock: whether there is work at all (most passes find none,
        and on SQLite a write transaction would queue behind the incident log's own)."""
        async with self._sessions() as session:
            return await probe(PagingStore(session))

    async def _recipients(
        self,
        store: PagingStore,
        page: PageRow,
        schedules: Any,
        overrides: Any,
        people: frozenset[str],
    ) -> Recipients:
        if PAGED in page.targets:
            paged = await store.paged_people(page.incident_id)
            return Recipients([p for p in paged if p != page.actor], [])
        owners = await store.owners_of(page.snapshot["model"]) if "owners" in page.targets else []
        return resolve_recipients(
            page.targets,
            Tier(page.tier),
            page.created_at,
            schedules=schedules,
            overrides=overrides,
            owners=owners,
            people=people,
        )

    # -- digests -----------------------------------------------------------------------------

    async def release_digests(self) -> int:
        """Send each person whose rate window has room one digest of what was held."""
        if not await self._any(PagingStore.has_held):
            return 0
        now = self._clock()
        async with self._sessions() as session, session.begin():
            store = PagingStore(session)
            held = await store.held(self._config.batch_size * 10)
            by_person: dict[str, list[NotificationRow]] = defaultdict(list)
            for row in held:
                by_person[row.person].append(row)
            await store.lock_rate_windows(by_person)
            released = 0
            for person, rows in by_person.items():
                recent = await store.pages_since(person, now - self._config.rate_window)
                if recent >= self._config.pages_per_window:
                    continue
                pages = await store.pages_by_id({row.page_id for row in rows})
                items = {
                    page.id: _digest_item(page)
                    for page in sorted(pages.values(), key=lambda p: (p.created_at, p.id))
                }
                held_keys = "/".join(sorted(row.id for row in rows))
                digest = PageRow(
                    id=f"dg-{hashlib.sha256(held_keys.encode()).hexdigest()[:16]}",
                    incident_id=rows[0].incident_id,
                    tier=rows[0].tier,
                    reason=NotificationReason.DIGEST.value,
                    targets=[f"person:{person}"],
                    snapshot={
                        "items": list(items.values()),
                        "model": next(iter(items.values()), {}).get("model", "vigil"),
                        "title": f"{len(items)} held notifications",
                    },
                    created_at=now,
                    expanded_at=now,
                    recipients=[person],
                    unresolved=[],
                )
                session.add(digest)
                for contact in await store.contacts(person):
                    session.add(
                        NotificationRow(
                            id=notification_key(digest.id, person, contact.id),
                            page_id=digest.id,
                            incident_id=digest.incident_id,
                            person=person,
                            contact_id=contact.id,
                            channel=contact.channel,
                            reason=NotificationReason.DIGEST.value,
                            tier=digest.tier,
                            status="pending",
                            next_attempt_at=now,
                            created_at=now,
                        )
                    )
                for row in rows:
                    row.status, row.digest_id = "digested", digest.id
                    session.add(row)
                released += 1
        return released

    # -- delivery ----------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Attempt every due notification once; record what became of each."""
        now = self._clock()
        if not await self._any(lambda store: store.has_due(now)):
            return 0
        async with self._sessions() as session, session.begin():
            claims = await self._claim(session, now)
        await self._deliver(claims)
        return len(claims)

    async def _deliver(self, claims: list[_Claim]) -> None:
        if not claims:
            return
        limit = asyncio.Semaphore(self._config.concurrency)

        async def attempt(claim: _Claim) -> str | None:
            if claim.contact is None:
                return "the contact was removed"
            async with limit:
                try:
                    await asyncio.wait_for(
                        self._channels.send(claim.contact, claim.notice),
                        self._config.attempt_timeout.total_seconds(),
                    )
                except DeliveryFailed as error:
                    return str(error) or "delivery failed"
                except TimeoutError:
                    return f"no answer within {self._config.attempt_timeout.total_seconds():g} s"
            return None

        errors = await asyncio.gather(*(attempt(claim) for claim in claims))
        await self._record(list(zip(claims, errors, strict=True)))

    async def _claim(self, session: AsyncSession, now: datetime) -> list[_Claim]:
        """Mark due notifications as being sent (with a lease) and say what to send."""
        store = PagingStore(session)
        rows = await store.due_notifications(now, self._config.batch_size)
        if not rows:
            return []
        lease = now + 2 * self._config.attempt_timeout
        key = await store.link_key()
        pages = await store.pages_by_id({row.page_id for row in rows})
        contacts = await store.contacts_by_id({row.contact_id for row in rows if row.contact_id})
        claims: list[_Claim] = []
        for row in rows:
            row.status = "sending"
            row.attempts += 1
            row.first_attempt_at = row.first_attempt_at or now
            row.next_attempt_at = lease
            session.add(row)
            claims.append(
                _Claim(
                    key=row.id,
                    attempt=row.attempts,
                    contact=_contact(contacts.get(row.contact_id or "")),
                    notice=self._notice(row, pages[row.page_id], key),
                )
            )
        return claims

    def _notice(self, row: NotificationRow, page: PageRow, key: bytes) -> Notice:
        snapshot = page.snapshot
        reason = NotificationReason(row.reason)
        base = self._config.public_url.rstrip("/")
        ack_url = None
        if reason in _RATE_LIMITED:
            token = issue_link_token(
                key,
                row.incident_id,
                row.person,
                Tier(row.tier),
                page.created_at + self._config.link_ttl,
                nonce=row.id,
            )
            ack_url = f"{base}/ack/{token}"
        return Notice(
            key=row.id,
            incident_id=row.incident_id,
            person=row.person,
            reason=reason,
            tier=row.tier,
            title=snapshot.get("title", row.incident_id),
            model=snapshot.get("model", "vigil"),
            model_version=snapshot.get("model_version"),
            status=snapshot.get("status", "-"),
            severity=snapshot.get("severity", "-"),
            at=page.created_at,
            console_url=f"{base}/console/incidents/{row.incident_id}",
            ack_url=ack_url,
            actor=page.actor,
            items=list(snapshot.get("items", [])),
        )

    async def _record(self, outcomes: list[tuple[_Claim, str | None]]) -> None:
        now = self._clock()
        async with self._sessions() as session, session.begin():
            claimed = await PagingStore(session).notifications_by_id({c.key for c, _ in outcomes})
            for claim, error in outcomes:
                row = claimed.get(claim.key)
                if row is None or row.status != "sending" or row.attempts != claim.attempt:
                    continue  # the lease ran out and another pass took it over
                if error is None:
                    row.status, row.delivered_at, row.last_error = "delivered", now, None
                    row.next_attempt_at = None
                    outcome = DeliveryOutcome.DELIVERED
                elif claim.contact is None or (
                    row.first_attempt_at is not None
                    and now - row.first_attempt_at >= self._config.give_up_after
                ):
                    row.status, row.last_error, row.next_attempt_at = "failed", error, None
                    outcome = DeliveryOutcome.FAILED
                    log.error("page %s to %s failed for good: %s", row.id, row.person, error)
                    session.add(row)
                    await self._fail_over(session, row, now)
                else:
                    delay = retry_delay(
                        row.attempts,
                        base=self._config.retry_base,
                        cap=self._config.retry_cap,
                        rng=self._rng,
                    )
                    row.status, row.last_error = "retrying", error
                    row.next_attempt_at = now + delay
                    outcome = DeliveryOutcome.RETRYING
                session.add(row)
                details = {
                    "person": row.person,
                    "channel": row.channel,
                    "reason": row.reason,
                    "outcome": outcome.value,
                    "attempt": row.attempts,
                    "key": row.id,
                    **({"error": error} if error else {}),
                    **(
                        {"next_attempt_at": row.next_attempt_at.isoformat()}
                        if outcome is DeliveryOutcome.RETRYING and row.next_attempt_at
                        else {}
                    ),
                }
                _timeline(session, row.incident_id, now, "notification", details)
                stage(
                    session,
                    [
                        NotificationAttempted(
                            producer=PRODUCER,
                            correlation_id=row.incident_id,
                            occurred_at=now,
                            incident_id=row.incident_id,
                            model=claim.notice.model,
                            tier=Tier(row.tier),
                            person=row.person,
                            channel=Channel(row.channel or Channel.WEBHOOK),
                            reason=NotificationReason(row.reason),
                            idempotency_key=row.id,
                            attempt=row.attempts,
                            outcome=outcome,
                            error=error[:2000] if error else None,
                        )
                    ],
                )
        self._committed()

    async def _fail_over(
        self, session: AsyncSession, failed: NotificationRow, now: datetime
    ) -> None:
        """A page that reached a person by no contact at all pages the next tier's schedules
        (the same tier's at L3): a failed page must itself page someone."""
        if NotificationReason(failed.reason) not in _RATE_LIMITED:
            return
        siblings = [
            row
            for row in await PagingStore(session).notifications_of(failed.incident_id)
            if row.page_id == failed.page_id and row.person == failed.person
        ]
        if any(row.status not in ("failed", "skipped") for row in siblings):
            return  # another contact of the person got it, or may still
        page = await PagingStore(session).page(failed.page_id)
        if page is None:
            return
        tier = Tier(failed.tier)
        target = {Tier.L1: Tier.L2, Tier.L2: Tier.L3}.get(tier, Tier.L3)
        session.add(
            PageRow(
                id=f"fo-{hashlib.sha256(failed.page_id.encode()).hexdigest()[:16]}-{failed.person}",
                incident_id=failed.incident_id,
                tier=target.value,
                reason=NotificationReason.PAGE.value,
                targets=["tier"],
                actor=PAGER,
                snapshot=page.snapshot | {"failed_over_from": failed.person},
                created_at=now,
            )
        )
        _timeline(
            session,
            failed.incident_id,
            now,
            "page_failed_over",
            {"person": failed.person, "tier": tier.value, "to_tier": target.value},
        )


def _notifications(
    session: AsyncSession,
    page: PageRow,
    person: str,
    contacts: list[ContactRow],
    now: datetime,
    *,
    held: bool,
) -> None:
    """A person's notifications for a page: one per contact, or one ``skipped`` without any.
    Their keys are new: a page is expanded once, in the transaction that marks it expanded."""
    common: dict[str, Any] = {
        "page_id": page.id,
        "incident_id": page.incident_id,
        "person": person,
        "reason": page.reason,
        "tier": page.tier,
        "created_at": now,
    }
    if not contacts:
        session.add(
            NotificationRow(
                id=notification_key(page.id, person, "-"),
                status="skipped",
                last_error=f"{person} has no contact method",
                **common,
            )
        )
    for contact in contacts:
        session.add(
            NotificationRow(
                id=notification_key(page.id, person, contact.id),
                contact_id=contact.id,
                channel=contact.channel,
                status="held" if held else "pending",
                next_attempt_at=None if held else now,
                **common,
            )
        )


async def _has_work(store: PagingStore, now: datetime) -> bool:
    return await store.has_pending_pages() or await store.has_due(now)


def _contact(row: ContactRow | None) -> Contact | None:
    if row is None:
        return None
    return Contact(id=row.id, channel=Channel(row.channel), address=row.address, secret=row.secret)


def _digest_item(page: PageRow) -> dict[str, Any]:
    snapshot = page.snapshot
    return {
        "incident_id": page.incident_id,
        "model": snapshot.get("model", "vigil"),
        "tier": page.tier,
        "reason": page.reason,
        "summary": f"{snapshot.get('title', page.incident_id)} ({page.incident_id}, {page.tier})",
    }


def _timeline(
    session: AsyncSession, incident_id: str, at: datetime, action: str, details: dict[str, Any]
) -> None:
    session.add(
        TimelineRow(incident_id=incident_id, at=at, actor=PAGER, action=action, details=details)
    )

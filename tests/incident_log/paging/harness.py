"""A paging world for tests: the incident log's use cases and dispatcher on a real database, a
real HTTP receiver and a real SMTP server on loopback, and a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from fastapi import FastAPI

from services.incident_log.api import install_incident_api
from services.incident_log.auth import install_authentication
from services.incident_log.migrations import HISTORY
from services.incident_log.paging.api import install_paging_api
from services.incident_log.paging.channels import Channels, SmtpSettings
from services.incident_log.paging.dispatcher import Dispatcher, PagingConfig
from services.incident_log.routing import RoutingPolicy
from services.incident_log.service import IncidentLog
from services.incident_log.tokens import token_digest
from services.runtime import (
    Sessions,
    create_engine,
    free_port,
    session_factory,
)
from services.runtime.migrations import migrate
from services.stack.pager import PageReceiver
from tests.clock import FakeClock
from tests.http_tools import serving

ADMIN = "admin-secret"


@dataclass
class Mailbox:
    """What the SMTP server received."""

    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content or envelope.content)
        message["X-Test-Rcpt"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


@dataclass
class PagingWorld:
    """Everything a paging test drives."""

    log: IncidentLog
    dispatcher: Dispatcher
    sessions: Sessions
    clock: FakeClock[datetime]
    receiver: PageReceiver
    receiver_url: str
    mailbox: Mailbox
    api: httpx.AsyncClient

    async def settle(self, *, passes: int = 50) -> None:
        """Run dispatcher passes until one does nothing."""
        for _ in range(passes):
            if not await self.dispatcher.step():
                return
        raise AssertionError("the dispatcher kept finding work")

    async def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.api.request(
            method, path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs
        )
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    async def person(self, name: str, *, webhook: bool = True, email: bool = False) -> str | None:
        """Create a person with a signed webhook to the receiver (and an e-mail); return the
        webhook's secret."""
        await self.admin("PUT", f"/people/{name}", json={})
        secret = None
        if webhook:
            contact = await self.admin(
                "POST",
                f"/people/{name}/contacts",
                json={"channel": "webhook", "address": f"{self.receiver_url}/hooks/{name}"},
            )
            secret = contact["secret"]
            self.receiver.secrets[name] = secret
        if email:
            await self.admin(
                "POST",
                f"/people/{name}/contacts",
                json={"channel": "email", "address": f"{name}@example.test"},
            )
        return secret

    async def schedule(self, name: str, tier: str | None, members: list[str], **layer: Any) -> None:
        await self.admin(
            "PUT",
            f"/schedules/{name}",
            json={
                "tier": tier,
                "layers": [
                    {
                        "name": "primary",
                        "members": members,
                        "rotation": "daily",
                        "handoff_time": "09:00",
                        "timezone": "UTC",
                        "start": "2026-01-01",
                    }
                    | layer
                ],
            },
        )


@asynccontextmanager
async def paging_world(
    database_url: str,
    policy: RoutingPolicy,
    clock: FakeClock[datetime],
    *,
    config: PagingConfig | None = None,
    wrap_receiver: Callable[[Any], Any] | None = None,
) -> AsyncIterator[PagingWorld]:
    engine = create_engine(database_url)
    await migrate(engine, HISTORY)
    sessions = session_factory(engine)
    log = IncidentLog(sessions, policy, clock=clock)
    receiver = PageReceiver(clock=lambda: clock.now.timestamp())
    mailbox = Mailbox()
    smtp_port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    app = FastAPI()
    install_authentication(app, sessions, admin_sha256=token_digest(ADMIN), clock=log.now)
    install_incident_api(app, log, sessions)
    install_paging_api(app, sessions, log)
    receiver_app = receiver.app()
    try:
        async with (
            serving(wrap_receiver(receiver_app) if wrap_receiver else receiver_app) as url,
            httpx.AsyncClient(timeout=10) as http,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://incident-log"
            ) as api,
        ):
            channels = Channels(
                http,
                SmtpSettings(host="127.0.0.1", port=smtp_port, sender="vigil@example.test"),
                clock=lambda: clock.now.timestamp(),
            )
            dispatcher = Dispatcher(
                sessions,
                channels,
                config or PagingConfig(public_url="http://incident-log.test"),
                clock=clock,
            )
            yield PagingWorld(log, dispatcher, sessions, clock, receiver, url, mailbox, api)
    finally:
        await asyncio.to_thread(controller.stop)
        await engine.dispose()

"""Delivering one notice to one contact: HTTP POST for webhooks, chat and pagers; SMTP for e-mail.

An attempt either delivers or raises :class:`DeliveryFailed` with a reason for the timeline.
Every HTTP request carries the notification's ``Idempotency-Key`` (the same on every retry) so a
receiver can drop a repeat; generic webhooks are also signed (``messages.sign``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib
import httpx

from contracts.notifications import Channel
from services.incident_log.paging.messages import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Notice,
    chat_body,
    email_parts,
    encode,
    pagerduty_body,
    sign,
    webhook_body,
)

__all__ = ["Channels", "Contact", "DeliveryFailed", "SmtpSettings"]


class DeliveryFailed(Exception):
    """The attempt did not deliver; the message says why."""


@dataclass(frozen=True)
class Contact:
    """Where to send: the channel, its address, and its secret (signing secret or pager key)."""

    id: str
    channel: Channel
    address: str
    secret: str | None


@dataclass(frozen=True)
class SmtpSettings:
    """The SMTP relay e-mail goes through."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = 10.0


class Channels:
    """Sends notices; one HTTP client for all HTTP channels."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        smtp: SmtpSettings | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._smtp = smtp
        self._clock = clock

    async def send(self, contact: Contact, notice: Notice) -> None:
        """Deliver once, or raise :class:`DeliveryFailed`."""
        if contact.channel is Channel.EMAIL:
            await self._email(contact, notice)
            return
        if contact.channel is Channel.WEBHOOK:
            body = encode(webhook_body(notice))
        elif contact.channel is Channel.CHAT:
            body = encode(chat_body(notice))
        else:
            body = encode(pagerduty_body(notice, contact.secret or ""))
        headers = {"Content-Type": "application/json", "Idempotency-Key": notice.key}
        if contact.channel is Channel.WEBHOOK and contact.secret:
            timestamp = int(self._clock())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(contact.secret, timestamp, body)
        try:
            response = await self._http.post(contact.address, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"{type(error).__name__}: {error}"[:500] or "HTTP error") from None
        if response.status_code >= 300:
            raise DeliveryFailed(f"HTTP {response.status_code} from the receiver")

    async def _email(self, contact: Contact, notice: Notice) -> None:
        if self._smtp is None:
            raise DeliveryFailed("no SMTP relay is configured (VIGIL_INCIDENT_LOG_SMTP_HOST)")
        subject, text, html = email_parts(notice)
        message = EmailMessage()
        message["From"] = self._smtp.sender
        message["To"] = contact.address
        message["Subject"] = subject
        message["Message-ID"] = f"<{notice.key}@vigil>"
        message["X-Vigil-Idempotency-Key"] = notice.key
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        try:
            await aiosmtplib.send(
                message,
                hostname=self._smtp.host,
                port=self._smtp.port,
                username=self._smtp.username,
                password=self._smtp.password,
                start_tls=self._smtp.starttls,
                timeout=self._smtp.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(f"SMTP: {error}"[:500]) from None

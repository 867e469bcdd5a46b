"""What a notification says, in each channel's shape, and how a webhook body is signed.

Pure. One :class:`Notice` (the incident as it was when the page was decided, who is told and why,
the console and acknowledge links) renders to a generic webhook body, a Slack-compatible chat
body, a PagerDuty Events v2 body, or an e-mail with plain-text and HTML parts.

Webhook signatures follow the common ``timestamp.body`` scheme (Stripe, Slack): the header
``X-Vigil-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`` beside
``X-Vigil-Timestamp``; a receiver recomputes it with the contact's secret, compares in constant
time and refuses old timestamps, which stops forgeries and replays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from contracts.notifications import NotificationReason

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Notice",
    "chat_body",
    "email_parts",
    "pagerduty_body",
    "sign",
    "verify_signature",
    "webhook_body",
]

SIGNATURE_HEADER = "X-Vigil-Signature"
TIMESTAMP_HEADER = "X-Vigil-Timestamp"

_HEADLINES = {
    NotificationReason.PAGE: "Paged",
    NotificationReason.REMINDER: "Reminder, still unacknowledged",
    NotificationReason.ACKNOWLEDGED: "Acknowledged",
    NotificationReason.RESOLVED: "Resolved",
    NotificationReason.DIGEST: "Digest",
}


@dataclass(frozen=True)
class Notice:
    """Everything one notification tells one person."""

    key: str
    incident_id: str
    person: str
    reason: NotificationReason
    tier: str
    title: str
    model: str
    model_version: int | None
    status: str
    severity: str
    at: datetime
    console_url: str
    ack_url: str | None = None
    actor: str | None = None
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def headline(self) -> str:
        """One line: what happened, to which incident."""
        if self.reason is NotificationReason.DIGEST:
            return f"[Vigil] {len(self.items)} more incident notifications for {self.person}"
        done_by = f" by {self.actor}" if self.actor else ""
        return (
            f"[Vigil {self.tier}] {_HEADLINES[self.reason]}{done_by}: {self.title} "
            f"({self.incident_id}, {self.severity})"
        )


def webhook_body(notice: Notice) -> dict[str, Any]:
    """The generic JSON body."""
    return {
        "idempotency_key": notice.key,
        "reason": notice.reason.value,
        "person": notice.person,
        "incident": {
            "id": notice.incident_id,
            "title": notice.title,
            "model": notice.model,
            "model_version": notice.model_version,
            "tier": notice.tier,
            "status": notice.status,
            "severity": notice.severity,
            "url": notice.console_url,
        },
        "actor": notice.actor,
        "ack_url": notice.ack_url,
        "at": notice.at.isoformat(),
        "summary": notice.headline,
        "items": notice.items,
    }


def chat_body(notice: Notice) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook body (``text`` plus blocks)."""
    links = f"<{notice.console_url}|Open in the console>"
    if notice.ack_url:
        links += f" · <{notice.ack_url}|Acknowledge>"
    lines = [f"*{notice.headline}*", f"model `{notice.model}` · status {notice.status}", links]
    lines += [f"• {item['summary']}" for item in notice.items]
    return {
        "text": notice.headline,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}],
    }


_PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def pagerduty_body(notice: Notice, routing_key: str) -> dict[str, Any]:
    """A PagerDuty Events API v2 body: trigger, acknowledge or resolve, deduplicated per
    incident, so a team's existing pager follows the incident."""
    action = {
        NotificationReason.ACKNOWLEDGED: "acknowledge",
        NotificationReason.RESOLVED: "resolve",
    }.get(notice.reason, "trigger")
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": notice.incident_id,
    }
    if action == "trigger":
        body["payload"] = {
            "summary": notice.headline[:1024],
            "source": f"vigil:{notice.model}",
            "severity": _PD_SEVERITY.get(notice.severity, "error"),
            "timestamp": notice.at.isoformat(),
            "component": notice.model,
            "group": notice.tier,
            "custom_details": webhook_body(notice),
        }
        body["links"] = [{"href": notice.console_url, "text": "Vigil console"}]
    return body


def email_parts(notice: Notice) -> tuple[str, str, str]:
    """Subject, plain text and HTML of the e-mail."""
    rows = [
        ("Incident", notice.incident_id),
        (
            "Model",
            f"{notice.model}" + (f" v{notice.model_version}" if notice.model_version else ""),
        ),
        ("Tier", notice.tier),
        ("Status", notice.status),
        ("Severity", notice.severity),
    ]
    text = [notice.headline, ""]
    text += [f"{name}: {value}" for name, value in rows]
    text += [f"- {item['summary']}" for item in notice.items]
    text += ["", f"Console: {notice.console_url}"]
    if notice.ack_url:
        text.append(f"Acknowledge: {notice.ack_url}")
    html_rows = "".join(
        f"<tr><th align='left'>{escape(name)}</th><td>{escape(str(value))}</td></tr>"
        for name, value in rows
    )
    items = "".join(f"<li>{escape(item['summary'])}</li>" for item in notice.items)
    ack = f" · <a href='{escape(notice.ack_url)}'>Acknowledge</a>" if notice.ack_url else ""
    html = (
        f"<html><body><h2>{escape(notice.headline)}</h2><table>{html_rows}</table>"
        + (f"<ul>{items}</ul>" if items else "")
        + f"<p><a href='{escape(notice.console_url)}'>Open in the console</a>{ack}</p>"
        "</body></html>"
    )
    return notice.headline, "\n".join(text) + "\n", html


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for a body sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


def verify_signature(
    secret: str, timestamp: int, body: bytes, signature: str, *, now: int, tolerance_s: int = 300
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode())

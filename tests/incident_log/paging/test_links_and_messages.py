"""Acknowledge links cannot be altered, forged or used late; every channel's body says the same
thing; and a webhook's signature verifies with the contact's secret and fails on any change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from contracts import NotificationReason, Tier
from services.incident_log.paging.links import (
    LinkExpired,
    LinkInvalid,
    issue_link_token,
    read_link_token,
)
from services.incident_log.paging.messages import (
    Notice,
    chat_body,
    email_parts,
    encode,
    pagerduty_body,
    sign,
    webhook_body,
)
from services.stack.pager import verify_signature

KEY = b"k" * 32
NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)


def test_a_link_reads_back_its_claims_until_it_expires() -> None:
    token = issue_link_token(KEY, "inc-1", "ana", Tier.L2, NOW + timedelta(hours=1), nonce="n1")
    claims = read_link_token(KEY, token, NOW)
    assert (claims.incident_id, claims.person, claims.tier, claims.nonce) == (
        "inc-1",
        "ana",
        Tier.L2,
        "n1",
    )
    with pytest.raises(LinkExpired):
        read_link_token(KEY, token, NOW + timedelta(hours=1))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: "x" + t,  # claims changed
        lambda t: t.split(".")[0],  # no signature
        lambda t: "ünïcode." + t.split(".")[1],
        lambda t: "a" * 5000,
    ],
)
def test_a_tampered_or_foreign_link_is_refused(tamper: object) -> None:
    token = issue_link_token(KEY, "inc-1", "ana", Tier.L1, NOW + timedelta(hours=1))
    with pytest.raises(LinkInvalid):
        read_link_token(KEY, tamper(token), NOW)  # type: ignore[operator]
    with pytest.raises(LinkInvalid):
        read_link_token(b"another key", token, NOW)


NOTICE = Notice(
    key="ntf-1",
    incident_id="inc-1",
    person="ana",
    reason=NotificationReason.PAGE,
    tier="L1",
    title="breast-cancer v3: recall decay",
    model="breast-cancer",
    model_version=3,
    status="open",
    severity="critical",
    at=NOW,
    console_url="http://127.0.0.1:8700/console/incidents/inc-1",
    ack_url="http://127.0.0.1:8700/ack/abc.def",
)


def test_every_channel_carries_the_incident_and_its_links() -> None:
    webhook = webhook_body(NOTICE)
    assert webhook["incident"]["id"] == "inc-1"
    assert webhook["ack_url"] == NOTICE.ack_url
    chat = chat_body(NOTICE)["blocks"][0]["text"]["text"]
    assert NOTICE.console_url in chat
    assert str(NOTICE.ack_url) in chat
    pager = pagerduty_body(NOTICE, "routing-key-0123456789")
    assert pager["event_action"] == "trigger"
    assert pager["dedup_key"] == "inc-1"
    assert pager["payload"]["severity"] == "critical"
    resolved = Notice(**{**NOTICE.__dict__, "reason": NotificationReason.RESOLVED})
    assert pagerduty_body(resolved, "k")["event_action"] == "resolve"
    subject, text, html = email_parts(NOTICE)
    assert "inc-1" in subject
    assert str(NOTICE.ack_url) in text
    assert "<table>" in html


def test_html_in_a_title_is_escaped_in_the_email() -> None:
    hostile = Notice(**{**NOTICE.__dict__, "title": "<script>alert(1)</script>"})
    _, _, html = email_parts(hostile)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_a_signature_verifies_with_the_secret_and_fails_on_any_change() -> None:
    body = encode(webhook_body(NOTICE))
    stamp = int(NOW.timestamp())
    signature = sign("whsec_secret", stamp, body)
    assert verify_signature("whsec_secret", stamp, body, signature, now=stamp + 10)
    tampered = json.loads(body)
    tampered["incident"]["tier"] = "L3"
    assert not verify_signature("whsec_secret", stamp, encode(tampered), signature, now=stamp)
    assert not verify_signature("another", stamp, body, signature, now=stamp)
    assert not verify_signature("whsec_secret", stamp, body, signature, now=stamp + 301)  # replay
    assert not verify_signature("whsec_secret", stamp + 1, body, signature, now=stamp)

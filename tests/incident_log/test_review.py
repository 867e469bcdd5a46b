"""The post-incident review, pure: runs followed through approval, decisions, and a Markdown
document whose tables no text can break."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from services.incident_log.review import (
    IncidentSummary,
    PageFact,
    ReviewEntry,
    build_review,
    review_markdown,
)
from tests.factories import MODEL, T0

MINUTE = timedelta(minutes=1)
INCIDENT = IncidentSummary(
    id="inc-1",
    title="breast-cancer v3: manual — odd",
    model=MODEL,
    model_version=3,
    kind="manual",
    severity="warning",
    status="resolved",
    tier="L1",
    opened_at=T0,
    resolved_at=T0 + 10 * MINUTE,
    resolved_tier="L1",
)


def entry(minutes: int, actor: str, action: str, **details: Any) -> ReviewEntry:
    to_tier = "L1" if action == "opened" else None
    return ReviewEntry(T0 + minutes * MINUTE, actor, action, None, to_tier, details)


def test_runs_are_followed_through_approval_and_a_rejected_one_stays_rejected() -> None:
    timeline = [
        entry(0, "system:incident-log", "opened", summary="odd"),
        entry(1, "ann", "acknowledged", tier="L1"),
        entry(2, "ann", "runbook_approval_requested", run_id="r1", runbook="purge", reason="x"),
        entry(3, "bo", "runbook_rejected", run_id="r1", runbook="purge", requested_by="ann"),
        entry(4, "ann", "runbook_approval_requested", run_id="r2", runbook="purge", reason="y"),
        entry(5, "bo", "runbook_approved", run_id="r2", runbook="purge", requested_by="ann"),
        entry(5, "ann", "runbook_requested", run_id="r2", runbook="purge", reason="y"),
        entry(6, "runbook:purge", "runbook_started", run_id="r2", runbook="purge"),
        entry(
            7, "runbook:purge", "runbook_finished", run_id="r2", runbook="purge",
            state="succeeded", exit_code=0, verify_exit_code=0,
        ),
        entry(10, "ann", "resolved", reason="purged"),
    ]  # fmt: skip
    pages = [PageFact("ann", "webhook", "L1", "opened", "delivered", T0)]
    review = build_review(INCIDENT, timeline, pages, "")
    runs = {run.run_id: run for run in review.runbooks}
    assert (runs["r1"].outcome, runs["r1"].approved_by) == ("rejected", None)
    assert (runs["r2"].outcome, runs["r2"].approved_by, runs["r2"].requested_by) == (
        "succeeded",
        "bo",
        "ann",
    )
    assert review.tiers["L1"].mtta_seconds == 60
    assert review.tiers["L1"].mttr_seconds == 600
    assert [d.action for d in review.decisions] == [
        "acknowledged",
        "runbook_rejected",
        "runbook_approved",
        "runbook_requested",
        "resolved",
    ]
    assert list(review.paged) == ["ann"]


def test_no_text_breaks_the_documents_tables() -> None:
    hostile = "fine | injected | cells\n| L9 | 1 | 0 min |"
    timeline = [
        entry(0, "system:incident-log", "opened", summary=hostile),
        entry(1, "eve|l", "commented", text=hostile),
    ]
    document = review_markdown(build_review(INCIDENT, timeline, [], "- [ ] keep | as typed"))
    rows = [line for line in document.splitlines() if line.startswith("| 20")]
    assert len(rows) == 2  # one line per timeline entry, whatever the text held
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 5 for row in rows)  # 4 cells each
    assert "| L9 |" not in document.replace("\\| L9 \\|", "")
    assert document.endswith("## Action items\n\n- [ ] keep | as typed\n")

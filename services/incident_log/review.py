"""The post-incident review: one incident's story, as a Markdown document people edit and keep.

Pure. Built from the incident, its timeline and its pages (:func:`build_review`), it holds

- the **timeline** (every entry, oldest first);
- **MTTA / MTTR per tier** for this incident, computed as the statistics page computes them
  (:func:`services.incident_log.stats.response_stats` on this one incident);
- the **runbooks run** and their outcomes, one row per run id (asked, approved or rejected,
  started, finished with its state and exit codes);
- the **decisions**: acknowledgements, escalations (a person's or a timer's, with the trigger),
  status changes, resolutions and reopenings, runbook approvals and rejections, retrain
  requests, model approvals, promotions and rollbacks — each with who decided and why;
- **who was paged**: each person, by which channels, at which tier, and what became of it;
- the **action items**: free Markdown people write and save (``incident_reviews`` table), kept
  apart from the generated parts so regenerating never loses them.

:func:`review_markdown` renders it; the API, the CLI (``vigil incidents review``) and the
console show that same document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.incident_log.stats import IncidentFacts, TimelineFact, response_stats

__all__ = [
    "DECISIONS",
    "IncidentSummary",
    "PageFact",
    "Review",
    "ReviewEntry",
    "RunbookRun",
    "TierTimes",
    "build_review",
    "review_markdown",
]

DECISIONS = frozenset(
    {
        "acknowledged",
        "acknowledged_from_page",
        "claimed",
        "took_over",
        "escalated",
        "status_mitigating",
        "status_monitoring",
        "resolved",
        "reopened",
        "runbook_requested",
        "runbook_approved",
        "runbook_rejected",
        "retrain_requested",
        "model_approved",
        "model_rejected",
        "model_promoted",
        "model_rolled_back",
    }
)
"""Timeline actions that are decisions someone (or a timer) took."""

_RUN_STEPS = {
    "runbook_approval_requested": "held for approval",
    "runbook_requested": "requested",
    "runbook_approved": "approved",
    "runbook_rejected": "rejected",
    "runbook_approval_expired": "approval expired",
    "runbook_started": "running",
}


@dataclass(frozen=True)
class IncidentSummary:
    """What the review says of the incident itself."""

    id: str
    title: str
    model: str
    model_version: int | None
    kind: str
    severity: str
    status: str
    tier: str
    opened_at: datetime
    resolved_at: datetime | None
    resolved_tier: str | None


@dataclass(frozen=True)
class ReviewEntry:
    """One timeline entry."""

    at: datetime
    actor: str
    action: str
    to_status: str | None
    to_tier: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class PageFact:
    """One notification sent (or tried) about the incident."""

    person: str
    channel: str | None
    tier: str
    reason: str
    status: str
    created_at: datetime


@dataclass
class TierTimes:
    """How fast one tier answered: acknowledged (MTTA) and resolved there (MTTR), seconds."""

    reached: int = 0
    mtta_seconds: float | None = None
    mttr_seconds: float | None = None


@dataclass
class RunbookRun:
    """One runbook run asked for on the incident, and how it ended."""

    run_id: str
    runbook: str
    requested_by: str
    requested_at: datetime
    reason: str
    outcome: str
    approved_by: str | None = None
    exit_code: int | None = None
    verify_exit_code: int | None = None


@dataclass
class Review:
    """Everything the review document says."""

    incident: IncidentSummary
    timeline: list[ReviewEntry]
    tiers: dict[str, TierTimes]
    runbooks: list[RunbookRun]
    decisions: list[ReviewEntry]
    paged: dict[str, list[PageFact]] = field(default_factory=dict)
    action_items: str = ""


def build_review(
    incident: IncidentSummary,
    timeline: Sequence[ReviewEntry],
    pages: Sequence[PageFact],
    action_items: str,
) -> Review:
    """Gather an incident's review from its state, history and pages."""
    figures = response_stats(
        [
            IncidentFacts(
                incident.id,
                incident.model,
                incident.kind,
                incident.opened_at,
                incident.resolved_at,
                incident.resolved_tier,
            )
        ],
        [
            TimelineFact(
                incident.id, entry.at, entry.action, entry.to_tier or entry.details.get("tier")
            )
            for entry in timeline
        ],
    )
    tiers = {
        tier: TierTimes(group.incidents, group.mtta_seconds, group.mttr_seconds)
        for tier, group in sorted(figures.by_tier.items())
    }
    paged: dict[str, list[PageFact]] = {}
    for page in sorted(pages, key=lambda p: p.created_at):
        paged.setdefault(page.person, []).append(page)
    return Review(
        incident=incident,
        timeline=list(timeline),
        tiers=tiers,
        runbooks=_runs(timeline),
        decisions=[entry for entry in timeline if entry.action in DECISIONS],
        paged=paged,
        action_items=action_items,
    )


def _runs(timeline: Sequence[ReviewEntry]) -> list[RunbookRun]:
    runs: dict[str, RunbookRun] = {}
    for entry in timeline:
        run_id = entry.details.get("run_id")
        if not isinstance(run_id, str) or not entry.action.startswith("runbook_"):
            continue
        run = runs.get(run_id)
        if run is None:
            run = runs[run_id] = RunbookRun(
                run_id=run_id,
                runbook=str(entry.details.get("runbook", "?")),
                requested_by=str(entry.details.get("requested_by") or entry.actor),
                requested_at=entry.at,
                reason=str(entry.details.get("reason") or ""),
                outcome="requested",
            )
        if entry.action == "runbook_finished":
            run.outcome = str(entry.details.get("state", "finished"))
            run.exit_code = entry.details.get("exit_code")
            run.verify_exit_code = entry.details.get("verify_exit_code")
        elif entry.action in _RUN_STEPS and run.outcome not in ("rejected", "approval expired"):
            run.outcome = _RUN_STEPS[entry.action]
        if entry.action == "runbook_approved":
            run.approved_by = entry.actor
    return list(runs.values())


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f} min"


def _when(at: datetime | None) -> str:
    return "—" if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(text: object) -> str:
    """Text safe in one Markdown table cell (no line breaks, pipes escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _what(entry: ReviewEntry) -> str:
    details = entry.details
    said = details.get("reason") or details.get("text") or details.get("summary") or ""
    if entry.action == "escalated":
        return f"to {entry.to_tier} ({details.get('trigger', '?')}): {said}"
    if entry.action.startswith("runbook_") and details.get("runbook"):
        state = f" → {details['state']}" if details.get("state") else ""
        return f"{details['runbook']} ({details.get('run_id', '')}){state} {said}".strip()
    if entry.action == "paging":
        people = ", ".join(details.get("people") or []) or "nobody"
        return f"{details.get('reason', '')} at {details.get('tier', '')} → {people}"
    if entry.action == "notification":
        return (
            f"{details.get('reason', '')} to {details.get('person', '')} by "
            f"{details.get('channel', '')}: {details.get('outcome', '')}"
        )
    return str(said)


def review_markdown(review: Review) -> str:
    """The review as a Markdown document."""
    incident = review.incident
    version = f" v{incident.model_version}" if incident.model_version is not None else ""
    lines = [
        f"# Post-incident review: {incident.id}",
        "",
        f"**{_cell(incident.title)}**",
        "",
        f"- Model: {incident.model}{version}",
        f"- Opened by: {incident.kind} ({incident.severity}) at {_when(incident.opened_at)}",
        f"- Now: {incident.status} at {incident.tier}",
        f"- Resolved: {_when(incident.resolved_at)}"
        + (f" at {incident.resolved_tier}" if incident.resolved_tier else ""),
        "",
        "## Response times per tier",
        "",
        "| tier | reached | MTTA | MTTR |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {tier} | {times.reached} | {_minutes(times.mtta_seconds)} | "
        f"{_minutes(times.mttr_seconds)} |"
        for tier, times in review.tiers.items()
    ]
    lines += ["", "## Runbooks run", ""]
    if review.runbooks:
        lines += ["| run | runbook | asked by | approved by | outcome | exit | verify |"]
        lines += ["|---|---|---|---|---|---|---|"]
        lines += [
            f"| {run.run_id} | {run.runbook} | {_cell(run.requested_by)} | "
            f"{_cell(run.approved_by or '—')} | {run.outcome} | "
            f"{'—' if run.exit_code is None else run.exit_code} | "
            f"{'—' if run.verify_exit_code is None else run.verify_exit_code} |"
            for run in review.runbooks
        ]
    else:
        lines.append("No runbook ran.")
    lines += ["", "## Decisions", ""]
    if review.decisions:
        lines += ["| time | who | decision | why |", "|---|---|---|---|"]
        lines += [
            f"| {_when(entry.at)} | {_cell(entry.actor)} | {entry.action} | {_cell(_what(entry))} |"
            for entry in review.decisions
        ]
    else:
        lines.append("No decision was taken.")
    lines += ["", "## Who was paged", ""]
    if review.paged:
        lines += ["| person | tier | channels | why | outcome |", "|---|---|---|---|---|"]
        for person, pages in review.paged.items():
            channels = ", ".join(sorted({page.channel or "none" for page in pages}))
            tiers = ", ".join(sorted({page.tier for page in pages}))
            reasons = ", ".join(sorted({page.reason for page in pages}))
            outcomes = ", ".join(sorted({page.status for page in pages}))
            lines.append(
                f"| {_cell(person)} | {tiers} | {channels} | {_cell(reasons)} | {outcomes} |"
            )
    else:
        lines.append("Nobody was paged.")
    lines += ["", "## Timeline", "", "| time | actor | action | details |", "|---|---|---|---|"]
    lines += [
        f"| {_when(entry.at)} | {_cell(entry.actor)} | {entry.action} | "
        f"{_cell(_what(entry))[:300]} |"
        for entry in review.timeline
    ]
    lines += ["", "## Action items", "", review.action_items.strip() or "_None recorded yet._", ""]
    return "\n".join(lines)

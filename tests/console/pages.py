"""Every page of the console, in one place: the accessibility check visits each of them.

A new page goes here; ``test_every_console_page_is_listed`` fails until it does. Placeholders
``{incident}`` and ``{model}`` are filled in by the test that visits the pages.
"""

from __future__ import annotations

PAGES: tuple[str, ...] = (
    "/console/login",
    "/console/",
    "/console/incidents/{incident}",
    "/console/incidents/{incident}/review",
    "/console/new-incident",
    "/console/models",
    "/console/models/{model}",
    "/console/oncall",
    "/console/people",
    "/console/stats",
    "/console/tokens",
)

NOT_PAGES: frozenset[str] = frozenset(
    {"/console/events", "/console/incidents/{incident_id}/review.md"}
)
"""GET routes that are not pages: the change feed and the review as a Markdown download (fragments
are parts of pages, checked there)."""

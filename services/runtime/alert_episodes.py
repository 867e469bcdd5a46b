"""Alert episodes of platform checks: when a check's subject raises an alert, and when it recovers.

Each subject (a consumer group's topic, a service's outbox, a supervised process) is checked
periodically; every check says *bad* or *good*. An episode opens after ``raise_after``
consecutive bad checks and closes after ``resolve_after`` consecutive good ones::

    quiet ──raise_after bad──▶ raise due ──published──▶ raised
      ▲                          │ not published: still due at the next check
      │                                                      │ resolve_after good
      └────────published──────── recovery due ◀──────────────┘

A transition takes effect only once the caller says its alert went out (:meth:`AlertEpisodes.\
settle`), so an alert that could not be published is due again at the next check instead of
being lost; a good check while a raise is due cancels it (nothing was said, nothing to take back).

Pure: no clock, no I/O. The self-watch of every service (:mod:`services.runtime.self_watch`) and
the ``vigil up`` supervisor (``services/stack/watchdog.py``) feed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["AlertEpisodes", "Transition"]


class Transition(StrEnum):
    """What a check makes due."""

    RAISE = "raise"
    RESOLVE = "resolve"


@dataclass
class _Subject:
    raised: bool = False
    bad_in_a_row: int = 0
    good_in_a_row: int = 0


class AlertEpisodes:
    """Counts consecutive bad and good checks per subject and says which alerts are due."""

    def __init__(self, *, raise_after: int, resolve_after: int) -> None:
        if raise_after < 1 or resolve_after < 1:
            raise ValueError(
                f"raise_after and resolve_after must be at least 1, got {raise_after}, "
                f"{resolve_after}"
            )
        self._raise_after = raise_after
        self._resolve_after = resolve_after
        self._subjects: dict[str, _Subject] = {}

    def observe(self, subject: str, *, bad: bool) -> Transition | None:
        """Record one check of a subject; return the alert now due about it, if any.

        The same transition is returned at every check until :meth:`settle` records it.
        """
        state = self._subjects.setdefault(subject, _Subject())
        if bad:
            state.bad_in_a_row += 1
            state.good_in_a_row = 0
            if not state.raised and state.bad_in_a_row >= self._raise_after:
                return Transition.RAISE
        else:
            state.good_in_a_row += 1
            state.bad_in_a_row = 0
            if state.raised and state.good_in_a_row >= self._resolve_after:
                return Transition.RESOLVE
        if not state.raised and not state.bad_in_a_row:
            del self._subjects[subject]  # nothing to remember about a quiet subject
        return None

    def settle(self, subject: str, transition: Transition) -> None:
        """The alert of a transition was published: the episode is now open (or closed)."""
        state = self._subjects.setdefault(subject, _Subject())
        state.raised = transition is Transition.RAISE
        if not state.raised and not state.bad_in_a_row:
            del self._subjects[subject]

    def raised(self) -> list[str]:
        """Subjects whose episode is open, in order."""
        return sorted(subject for subject, state in self._subjects.items() if state.raised)

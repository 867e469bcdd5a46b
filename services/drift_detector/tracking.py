"""Following one model version's stream: windows, tests, the sequential mode and episodes.

:meth:`Tracker.advance` takes the next rows of a model version (in event order) and returns what
happened: the windows that closed and were tested, the alerts to raise or recover, and — once
enough live scores have been seen — the profile with its score reference. It is pure: the state
goes in and a new state comes out, so the service keeps the new state only once it is saved
with the results it staged for the broker; a profile that gained its score reference is adopted
the same way (:meth:`Tracker.adopt`), once the reference is saved.

Order of work for a batch::

    collect scores for the score reference (first N live scores of the version, ADR 0008)
    sequential charts over the rows --alarm--> close the open window early (once it has
    window cutter (count or time)               min_rows) and call it drifted
    each closed window --evaluate--> report --episodes--> raise / recover
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from contracts.alerts import AlertKind, alert_fingerprint
from contracts.drift import SequentialAlarm
from contracts.monitoring import Window
from services.drift_detector.detector import DriftPolicy, DriftReport, evaluate
from services.drift_detector.encoding import FeatureBatch
from services.drift_detector.episodes import (
    EpisodeState,
    Raised,
    Recovered,
    observe_window,
    window_key,
)
from services.drift_detector.profiles import SCORE_FEATURE, ReferenceProfile
from services.drift_detector.sequential import CusumState, SequentialDetector, SequentialPolicy
from services.drift_detector.windows import (
    ClosedWindow,
    OpenWindow,
    WindowSpec,
    add_rows,
    close_window,
    out_of_bounds,
)

__all__ = [
    "Progress",
    "TestedWindow",
    "Tracker",
    "TrackerConfig",
    "TrackerState",
    "Transition",
    "fingerprint_subject",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TrackerConfig:
    """Everything that decides how a version's stream is judged."""

    window: WindowSpec = field(default_factory=WindowSpec)
    policy: DriftPolicy = field(default_factory=DriftPolicy)
    sequential: SequentialPolicy | None = field(default_factory=SequentialPolicy)
    score_reference_rows: int = 1000
    raise_after: int = 1
    recover_after: int = 3
    future_tolerance: timedelta = timedelta(minutes=5)
    """How far past the wall clock at receipt an event may be dated (time windows only)."""

    def __post_init__(self) -> None:
        if self.window.min_rows < self.policy.min_rows:
            raise ValueError(
                f"windows of {self.window.min_rows} rows are below the detector's minimum "
                f"{self.policy.min_rows}"
            )
        if self.score_reference_rows < self.policy.min_rows:
            raise ValueError("score_reference_rows is below the detector's minimum window")


@dataclass(frozen=True, eq=False)
class TrackerState:
    """A model version's progress through its stream."""

    window: OpenWindow = field(default_factory=OpenWindow)
    cusum: CusumState | None = None
    pending_alarm: SequentialAlarm | None = None
    data: EpisodeState = field(default_factory=EpisodeState)
    score: EpisodeState = field(default_factory=EpisodeState)
    score_sample: tuple[FloatArray, ...] = ()


@dataclass(frozen=True)
class TestedWindow:
    """A closed window, its report, and the verdict including the sequential mode."""

    window: Window
    report: DriftReport
    alarm: SequentialAlarm | None
    drifted: bool
    drivers: tuple[str, ...]
    in_episode: bool = False
    """An episode of either signal was open before this window was judged (so the window that
    recovers it counts)."""

    @property
    def full_report(self) -> bool:
        """Whether the window's report carries every figure: a window that drifted (data or
        score) or fell inside an open episode, so every alert's and recovery's window. A clean
        window outside any episode publishes the decision figures only (ADR 0008)."""
        return self.drifted or self.report.score_drifted or self.in_episode


@dataclass(frozen=True)
class Transition:
    """An episode of one signal opened or closed at a window."""

    kind: AlertKind
    change: Raised | Recovered
    tested: TestedWindow


@dataclass(frozen=True)
class Progress:
    """What one call of :meth:`Tracker.advance` produced."""

    state: TrackerState
    profile: ReferenceProfile
    windows: list[TestedWindow]
    transitions: list[Transition]
    score_reference: FloatArray | None = None
    """The live scores (in stream order) that became the score reference in this call; the
    caller stores them and then adopts ``profile``."""

    @property
    def profile_changed(self) -> bool:
        """Whether this call completed the score reference."""
        return self.score_reference is not None


def fingerprint_subject(features: Sequence[str]) -> str:
    """The feature-set part of a drift fingerprint: sorted names joined by commas."""
    return ",".join(sorted(features)) or "dataset"


class Tracker:
    """Judges the stream of one model version against its profile."""

    def __init__(self, profile: ReferenceProfile, config: TrackerConfig) -> None:
        self.profile = profile
        self.config = config
        self.sequential = (
            SequentialDetector(profile.numeric, config.sequential)
            if config.sequential is not None and profile.numeric.names
            else None
        )

    def adopt(self, profile: ReferenceProfile) -> None:
        """Judge from now on against ``profile``: the one a call's progress completed with its
        score reference, once that reference is stored."""
        self.profile = profile

    def start(
        self, data: EpisodeState | None = None, score: EpisodeState | None = None
    ) -> TrackerState:
        """Return the state of a stream not seen yet (episodes may be restored from storage)."""
        return TrackerState(
            cusum=self.sequential.start() if self.sequential is not None else None,
            data=data or EpisodeState(),
            score=score or EpisodeState(),
        )

    def refusals(
        self, state: TrackerState, occurred_at: Sequence[datetime], *, now: datetime
    ) -> list[str | None]:
        """Return why each next event (in stream order) is refused for its date, or ``None``."""
        return out_of_bounds(
            state.window,
            self.config.window,
            occurred_at,
            now=now,
            future_tolerance=self.config.future_tolerance,
        )

    def advance(
        self, state: TrackerState, batch: FeatureBatch, times: FloatArray, *, now: datetime
    ) -> Progress:
        """Take the next rows (event times in epoch seconds) and return what they caused."""
        profile, batch, state, reference = self._collect_scores(state, batch)
        windows: list[TestedWindow] = []
        transitions: list[Transition] = []
        position = 0
        while position < batch.rows:
            part = batch.slice(position, batch.rows)
            part_times = times[position:]
            alarm, taken = None, part.rows
            sequential, cusum = self.sequential, state.cusum
            armed = state.data.episode is None and state.pending_alarm is None
            if state.pending_alarm is not None:
                # Close the alarmed window as soon as it can be tested, not at a batch boundary,
                # so that windows do not depend on how the stream was batched.
                shortfall = self.config.window.min_rows - state.window.rows
                taken = min(part.rows, max(shortfall, 0))
            elif sequential is not None and cusum is not None and armed:
                cusum, alarm, upto = sequential.update(cusum, part)
                state = replace(state, cusum=cusum)
                if upto is not None:
                    taken = upto
            opened, closed = add_rows(
                state.window, self.config.window, part.slice(0, taken), part_times[:taken]
            )
            state = replace(state, window=opened)
            tests: list[tuple[ClosedWindow, SequentialAlarm | None]] = [(w, None) for w in closed]
            pending = alarm or state.pending_alarm
            if pending is not None and alarm is not None and closed and opened.rows == 0:
                tests[-1] = (closed[-1], pending)  # the alarm's row closed a window by itself
                pending = None
            elif pending is not None and opened.rows >= self.config.window.min_rows:
                opened, early = close_window(opened, self.config.window.kind)
                state = replace(state, window=opened)
                if early is not None:
                    tests.append((early, pending))
                pending = None
            state = replace(state, pending_alarm=pending)
            for window, window_alarm in tests:
                state = self._test(state, profile, window, window_alarm, now, windows, transitions)
            position += taken
        return Progress(
            state=state,
            profile=profile,
            windows=windows,
            transitions=transitions,
            score_reference=reference,
        )

    def _collect_scores(
        self, state: TrackerState, batch: FeatureBatch
    ) -> tuple[ReferenceProfile, FeatureBatch, TrackerState, FloatArray | None]:
        """Take the version's first live scores as the score reference; they are not tested."""
        profile = self.profile
        wanted = self.config.score_reference_rows
        if profile.scores is not None or batch.scores is None or wanted == 0:
            return profile, batch, state, None
        have = sum(len(sample) for sample in state.score_sample)
        present = np.flatnonzero(~np.isnan(batch.scores))
        taken = present[: wanted - have]
        scores = batch.scores.copy()
        sample = (*state.score_sample, scores[taken].copy())
        scores[taken] = np.nan
        batch = replace(batch, scores=scores)
        if have + len(taken) < wanted:
            return profile, batch, replace(state, score_sample=sample), None
        reference = np.concatenate(sample)
        profile = profile.with_scores(reference.tolist())
        return profile, batch, replace(state, score_sample=()), reference

    def _test(
        self,
        state: TrackerState,
        profile: ReferenceProfile,
        closed: ClosedWindow,
        alarm: SequentialAlarm | None,
        now: datetime,
        windows: list[TestedWindow],
        transitions: list[Transition],
    ) -> TrackerState:
        report = evaluate(profile, closed.batch, self.config.policy)
        drivers = report.drivers
        if alarm is not None:
            drivers = drivers + tuple(name for name in alarm.features if name not in drivers)
        tested = TestedWindow(
            window=closed.window,
            report=report,
            alarm=alarm,
            drifted=report.drifted or alarm is not None,
            drivers=drivers,
            in_episode=state.data.episode is not None or state.score.episode is not None,
        )
        windows.append(tested)
        opening = window_key(closed.window)

        def observe(
            kind: AlertKind, series: EpisodeState, drifted: bool, drivers: tuple[str, ...]
        ) -> tuple[EpisodeState, Raised | Recovered | None]:
            return observe_window(
                series,
                drifted=drifted,
                drivers=drivers,
                fingerprint=self._fingerprint(kind),
                now=now,
                raise_after=self.config.raise_after,
                recover_after=self.config.recover_after,
                window=opening,
            )

        data, change = observe(AlertKind.DATA_DRIFT, state.data, tested.drifted, tested.drivers)
        state = replace(state, data=data)
        if change is not None:
            transitions.append(Transition(AlertKind.DATA_DRIFT, change, tested))
            if isinstance(change, Recovered) and self.sequential is not None:
                state = replace(state, cusum=self.sequential.start())
        if report.score is not None:
            score, change = observe(
                AlertKind.PREDICTION_DRIFT, state.score, report.score_drifted, (SCORE_FEATURE,)
            )
            state = replace(state, score=score)
            if change is not None:
                transitions.append(Transition(AlertKind.PREDICTION_DRIFT, change, tested))
        return state

    def _fingerprint(self, kind: AlertKind) -> _Fingerprint:
        return _Fingerprint(self.profile.model, self.profile.version, kind)


@dataclass(frozen=True)
class _Fingerprint:
    model: str
    version: int
    kind: AlertKind

    def __call__(self, features: Sequence[str]) -> str:
        return alert_fingerprint(self.model, self.version, self.kind, fingerprint_subject(features))

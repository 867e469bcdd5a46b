"""The monitor's decisions without I/O: events in; figures, comparisons and alerts out.

::

    predictions ──┬──────────────▶ windows ◀── outcomes ◀── label join ◀── labels
                  └─▶ label join      │ close by count or event time
                                      ▼
                                   metrics ───────────────▶ metrics.computed
        scores ─▶ estimate (no labels) ┤                       (realised beside estimated)
                                      ├─▶ thresholds ─────▶ alert.raised / alert.recovered
                                      └─▶ champion vs challenger ─▶ variants.compared
    probe runs ─────────────────▶ thresholds ─────────────▶ probe_failed alerts

A regressor (``spec.task`` regression) goes the same way with ``value.predicted`` and
``value.recorded``: its windows report MAE, RMSE and R² instead of class figures, without a
confusion matrix, a low-confidence rate or a label-free estimate; a truth of the wrong kind for
its model (a number for a classifier, a class for a regressor) is refused.

Each model's clock is event time: the latest ``occurred_at`` seen on its predictions and labels.
It closes event-time windows and expires waiting joins, so replaying the same events gives the same
figures whatever the wall clock says. So that one mis-dated event cannot move a clock for good, an
event dated beyond :attr:`MonitorPolicy.future_tolerance` past the wall clock at receipt, or
further behind its model's clock than the join TTL (or the window span, if longer), is refused
before it touches anything (:class:`~services.runtime.event_time.EventTimeBounds`).

This module decides; :mod:`services.monitor.reporting` shapes and words the events it publishes
(the figures' ``metrics.computed``, each alert's evidence and summary, ``variants.compared``).

Everything that must survive a restart (waiting joins, open windows, alert episodes, model clocks,
champion/challenger samples) is recorded as it changes and handed over by
:meth:`Monitor.drain_changes`; the adapter commits it with the outputs in one transaction.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
from pydantic import JsonValue

from contracts.alerts import AlertKind, Severity, alert_fingerprint
from contracts.envelope import Envelope
from contracts.feedback import LabelRecorded, ValueRecorded
from contracts.monitoring import ComparisonVerdict, EstimatedMetric, MetricsComputed, ProbeCompleted
from contracts.registry import (
    Deployment,
    MetricDirection,
    MetricTarget,
    ModelTask,
    ModelVersionRecord,
)
from contracts.scoring import PredictionMade, ValuePredicted
from contracts.scoring_api import PROBE_REQUEST_ID_PREFIX
from services.monitor.comparison import Outcome, ValueOutcome, compare_values, compare_variants
from services.monitor.estimation import ESTIMATED_METRICS, Calibration, Reference, estimate_binary
from services.monitor.join import (
    DuplicateEntry,
    Expired,
    JoinChanges,
    Joined,
    LabelJoin,
    PendingLabel,
    PendingPrediction,
)
from services.monitor.loss_estimation import ESTIMATED_LOSSES, LossReference, estimate_losses
from services.monitor.metrics import (
    classification_metrics,
    low_confidence_rate,
    regression_metrics,
)
from services.monitor.reporting import (
    PRODUCER,
    calibration_summary,
    challenger_withdrawn,
    challenger_worse,
    estimate_contradicted,
    estimated_decay_alert,
    metric_alert,
    metrics_computed,
    probe_alert,
    variants_compared,
)
from services.monitor.residuals import SUBJECT as RESIDUAL_SUBJECT
from services.monitor.residuals import (
    ResidualReference,
    compare_residuals,
    residual,
    residual_alert,
)
from services.monitor.thresholds import (
    Episode,
    Reading,
    TransitionKind,
    advance,
    read,
    recovery_level,
)
from services.monitor.windows import ClosedWindow, Series, Window, WindowPolicy, Windows
from services.runtime.event_time import EventTimeBounds

__all__ = [
    "PROBE_SUBJECT",
    "Changes",
    "ModelClock",
    "Monitor",
    "MonitorPolicy",
    "Pairing",
    "Refusal",
    "Snapshot",
    "Step",
    "watched_targets",
]

PROBE_SUBJECT = "golden_set"
"""Subject of the probe's alert fingerprint."""

_CHAMPION, _CHALLENGER = "champion", "challenger"
RECENT_WINDOWS = 100
"""Closed windows per series kept in memory for ``GET /estimates/{model}``."""


@dataclass(frozen=True)
class MonitorPolicy:
    """How the monitor measures and judges; the service's settings fill it in."""

    window: WindowPolicy = field(default_factory=WindowPolicy)
    join_ttl: timedelta = timedelta(days=7)
    join_max_pending: int = 100_000
    min_labelled: int = 30
    """A quality metric is judged on a window only with at least this many labelled predictions."""
    min_predictions: int = 30
    """The low-confidence rate is judged on a window only with at least this many predictions."""
    hysteresis: float = 0.5
    recovery_windows: int | None = None
    """Windows a recovery must last; ``None``: the version's ``consecutive_windows``."""
    comparison_min_samples: int = 200
    comparison_alpha: float = 0.05
    comparison_max_samples: int = 5_000
    comparison_resamples: int = 999
    future_tolerance: timedelta = timedelta(minutes=5)
    """How far past the wall clock at receipt an event may be dated (clock skew)."""
    estimation: bool = True
    """Estimate binary classifiers' metrics from scores and regressors' losses from features
    (label-free), and alert on the estimate."""
    calibration_rows: int = 300
    """Labelled outcomes a version's reference needs before its calibration (a regressor's loss
    models) is fitted."""
    estimation_samples: int = 500
    """Label vectors sampled per window for the estimate's 95 % band."""
    residual_reference_rows: int = 300
    """A regressor version's first labelled outcomes whose residuals its windows are tested
    against (residual drift)."""

    def __post_init__(self) -> None:
        if not 0 <= self.hysteresis <= 1:
            raise ValueError("hysteresis must be between 0 and 1")
        if self.min_labelled < 1 or self.min_predictions < 1:
            raise ValueError("min_labelled and min_predictions must be at least 1")
        if self.calibration_rows < 50 or self.estimation_samples < 10:
            raise ValueError("calibration_rows must be at least 50, estimation_samples 10")
        if self.residual_reference_rows < 30:
            raise ValueError("residual_reference_rows must be at least 30")
        self.event_time_bounds()  # refuses a negative tolerance

    def event_time_bounds(self) -> EventTimeBounds:
        """The dates an event may carry: up to ``future_tolerance`` past the wall clock, and back
        to the longest horizon the monitor keeps state for behind its model's clock (an older
        prediction could only expire unjoined, an older label join nothing)."""
        return EventTimeBounds(
            future_tolerance=self.future_tolerance,
            horizon=max(self.join_ttl, self.window.span or timedelta(0)),
        )


@dataclass(frozen=True)
class Refusal:
    """An input event the monitor cannot act on, and why (it goes to the dead-letter topic)."""

    event_id: UUID
    reason: str


@dataclass
class Step:
    """What handling some input produced."""

    outputs: list[Envelope] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


@dataclass
class ModelClock:
    """A model's event-time clock, and labels that expired unjoined since its last window."""

    watermark: datetime | None = None
    expired_labels: int = 0


@dataclass
class Pairing:
    """A champion and its challenger being compared, with their labelled outcomes since
    ``started_at`` (the newest ``comparison_max_samples`` of each side, numbered)."""

    champion_version: int
    challenger_version: int
    started_at: datetime
    alerted: bool = False
    next_seq: int = 0
    champion: deque[tuple[int, Outcome | ValueOutcome]] = field(default_factory=deque)
    challenger: deque[tuple[int, Outcome | ValueOutcome]] = field(default_factory=deque)

    @property
    def versions(self) -> tuple[int, int]:
        return (self.champion_version, self.challenger_version)

    def side(self, name: str) -> deque[tuple[int, Outcome | ValueOutcome]]:
        return self.champion if name == _CHAMPION else self.challenger


@dataclass
class Changes:
    """State that changed since the last drain, as the adapter persists it."""

    join: JoinChanges
    windows: dict[Series, Window | None]
    episodes: dict[str, Episode]
    clocks: dict[str, ModelClock]
    pairings: dict[str, Pairing | None]
    ended_pairings: list[tuple[str, int, int]]
    outcomes: list[tuple[str, int, int, str, int, Outcome | ValueOutcome]]
    """Model, champion version, challenger version, side, sequence number, outcome."""
    references: dict[tuple[str, int], Reference | LossReference] = field(default_factory=dict)
    """Versions' references (gathering rows, or calibrated; a regressor's keeps its rows)."""
    residual_references: dict[tuple[str, int], ResidualReference] = field(default_factory=dict)
    """Regressor versions' reference residuals (gathering, or full)."""


@dataclass
class Snapshot:
    """Everything :meth:`Monitor.restore` needs, as loaded from storage."""

    pending: list[PendingPrediction | PendingLabel] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    episodes: dict[str, Episode] = field(default_factory=dict)
    clocks: dict[str, ModelClock] = field(default_factory=dict)
    pairings: dict[str, Pairing] = field(default_factory=dict)
    references: dict[tuple[str, int], Reference | LossReference] = field(default_factory=dict)
    residual_references: dict[tuple[str, int], ResidualReference] = field(default_factory=dict)


class Monitor:
    """The monitor's state and rules. Not thread-safe: the adapter serialises calls."""

    def __init__(self, policy: MonitorPolicy, *, seed: int = 0) -> None:
        self._policy = policy
        self._bounds = policy.event_time_bounds()
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        self._records: dict[tuple[str, int], ModelVersionRecord] = {}
        self._join = LabelJoin(ttl=policy.join_ttl, max_pending=policy.join_max_pending)
        self._windows = Windows(policy.window)
        self._episodes: dict[str, Episode] = {}
        self._clocks: dict[str, ModelClock] = {}
        self._pairings: dict[str, Pairing] = {}
        self._deployments: dict[str, Deployment] = {}
        self._changed_episodes: set[str] = set()
        self._changed_clocks: set[str] = set()
        self._changed_pairings: set[str] = set()
        self._ended_pairings: list[tuple[str, int, int]] = []
        self._new_outcomes: list[tuple[str, int, int, str, int, Outcome | ValueOutcome]] = []
        self._references: dict[tuple[str, int], Reference | LossReference] = {}
        self._changed_references: set[tuple[str, int]] = set()
        self._residuals: dict[tuple[str, int], ResidualReference] = {}
        self._changed_residuals: set[tuple[str, int]] = set()
        self._recent: dict[Series, deque[dict[str, JsonValue]]] = {}

    # ------------------------------------------------------------------ what the monitor knows

    def know(self, record: ModelVersionRecord) -> None:
        """Learn a version's record (its maintenance instructions)."""
        self._records[(record.model, record.version)] = record

    def knows(self, model: str, version: int) -> bool:
        return (model, version) in self._records

    def record(self, model: str, version: int) -> ModelVersionRecord | None:
        return self._records.get((model, version))

    def versions_in_use(self, models: Iterable[str]) -> set[tuple[str, int]]:
        """Return the versions of these models that open windows, waiting predictions and
        comparisons refer to: the records handling their events may need."""
        needed: set[tuple[str, int]] = set()
        for model in models:
            needed.update((model, series.version) for series in self._windows.series_of(model))
            needed.update((model, version) for version in self._join.versions_waiting(model))
            pairing = self._pairings.get(model)
            if pairing is not None:
                needed.update((model, version) for version in pairing.versions)
        return needed

    def calibrate(self, model: str, version: int, calibration: Calibration) -> None:
        """Use a calibration fitted elsewhere (on the version's evaluation data, say) instead of
        waiting for its first labelled outcomes."""
        self._references[(model, version)] = Reference(calibration=calibration)
        self._changed_references.add((model, version))

    def calibration(self, model: str, version: int) -> Calibration | None:
        reference = self._references.get((model, version))
        return reference.calibration if isinstance(reference, Reference) else None

    def recent_windows(self, model: str) -> list[dict[str, JsonValue]]:
        """The newest closed windows of a model's series since start (``RECENT_WINDOWS`` each,
        not persisted): estimated beside realised metrics, oldest first."""
        return [
            window
            for series in sorted(s for s in self._recent if s.model == model)
            for window in self._recent[series]
        ]

    def keep_recent_of(self, previous: Monitor) -> None:
        """Carry the recent windows over from the memory this one replaces (they are not
        persisted, and a restore after a rebalance or a failed step must not wipe them)."""
        self._recent = previous._recent

    def deployment(self, model: str) -> Deployment | None:
        return self._deployments.get(model)

    def deployments(self) -> dict[str, Deployment]:
        return dict(self._deployments)

    # ------------------------------------------------------------------ inputs

    def add_predictions(
        self, events: Sequence[PredictionMade | ValuePredicted], *, now: datetime
    ) -> Step:
        """Count predictions (a classifier's classes, a regressor's numbers) in their windows and
        join them with waiting labels."""
        step = Step()
        for event in events:
            if event.request_id.startswith(PROBE_REQUEST_ID_PREFIX):
                continue  # the probe's golden set is not live traffic
            mistimed = self._out_of_bounds(event.model, event.occurred_at, now)
            if mistimed is not None:
                step.refusals.append(Refusal(event.event_id, mistimed))
                continue
            record = self._records.get((event.model, event.model_version))
            if record is None:
                step.refusals.append(
                    Refusal(
                        event.event_id,
                        f"model {event.model!r} version {event.model_version} is not registered",
                    )
                )
                continue
            problem = _invalid_prediction(event, record)
            series = Series(event.model, event.model_version, event.variant.value)
            pending = _pending(event)
            if problem is None and self._join.holds(pending.key):
                problem = (
                    f"duplicate prediction: request {event.request_id!r} by version "
                    f"{event.model_version} ({event.variant.value}) is already waiting for a label"
                )
            if problem is not None:
                step.refusals.append(Refusal(event.event_id, problem))
                continue
            self._tick(event.model, event.occurred_at, now, step)
            if isinstance(event, ValuePredicted):
                estimating = self._policy.estimation
                added = self._windows.add_prediction(
                    series,
                    event.occurred_at,
                    None,
                    event.latency_ms,
                    predicted_value=event.predicted_value if estimating else None,
                    features=dict(event.features) if estimating else None,
                )
                if estimating and self._loss_reference_gathers(event.model, event.model_version):
                    pending = replace(pending, features=dict(event.features))
            else:
                binary = self._policy.estimation and len(record.spec.classes) == 2
                positive = record.spec.positive
                added = self._windows.add_prediction(
                    series,
                    event.occurred_at,
                    event.confidence,
                    event.latency_ms,
                    positive_score=event.probabilities.get(positive, 0.0) if binary else None,
                    predicted_positive=event.predicted_class == positive,
                )
            self._closed(added, now, step)
            joined, evicted = self._join.add_prediction(pending)
            for pair in joined:
                self._score(pair, now, step)
            self._count_expired(evicted, now, step)
        return step

    def add_labels(self, events: Sequence[LabelRecorded | ValueRecorded], *, now: datetime) -> Step:
        """Join truths (a classifier's labels, a regressor's values) with waiting predictions (or
        let them wait) and score the pairs."""
        step = Step()
        for event in events:
            mistimed = self._out_of_bounds(event.model, event.occurred_at, now)
            if mistimed is not None:
                step.refusals.append(Refusal(event.event_id, mistimed))
                continue
            waiting = self._join.waiting_for(event.model, event.request_id)
            problem = self._wrong_truth(event, [p.version for p in waiting])
            truth: str | float = event.value if isinstance(event, ValueRecorded) else event.label
            label = PendingLabel(event.model, event.request_id, event.occurred_at, truth)
            if problem is None and not waiting and self._join.holds(label.key):
                problem = f"duplicate label: request {event.request_id!r} already has one waiting"
            if problem is not None:
                step.refusals.append(Refusal(event.event_id, problem))
                continue
            self._tick(event.model, event.occurred_at, now, step)
            try:
                joined, evicted = self._join.add_label(label)
            except DuplicateEntry as error:  # its predictions expired while the clock moved on
                step.refusals.append(Refusal(event.event_id, str(error)))
                continue
            for pair in joined:
                self._score(pair, now, step)
            self._count_expired(evicted, now, step)
        return step

    def _wrong_truth(
        self, event: LabelRecorded | ValueRecorded, waiting_versions: list[int]
    ) -> str | None:
        """Why a truth cannot be scored against its model: a number for a classifier, a class
        for a regressor, a class the version does not know. Judged on the versions whose
        predictions wait for it, or, with none waiting, on every version of the model the
        monitor knows when they agree on the task (a truth for a model it knows nothing of
        waits; if it then joins a prediction of the other kind, the window counts a mismatch)."""
        value = isinstance(event, ValueRecorded)
        versions = waiting_versions or sorted(v for m, v in self._records if m == event.model)
        records = [self._records[(event.model, v)] for v in versions]
        if not waiting_versions and len({r.spec.task for r in records}) != 1:
            return None
        for record in records:
            regression = record.spec.task is ModelTask.REGRESSION
            where = f"{event.model!r} version {record.version}"
            if value and not regression:
                return (
                    f"value.recorded for a classifier: {where} predicts a class; send its "
                    "truth as label.recorded"
                )
            if not value and regression:
                return (
                    f"label.recorded for a regression model: {where} predicts a number; send "
                    "its truth as value.recorded"
                )
            if (
                waiting_versions
                and isinstance(event, LabelRecorded)
                and event.label not in record.spec.classes
            ):
                return (
                    f"label {event.label!r} is not a class of {where} "
                    f"(classes: {', '.join(record.spec.classes)})"
                )
        return None

    def apply_deployment(
        self, model: str, deployment: Deployment, *, at: datetime, now: datetime
    ) -> Step:
        """Learn what serves a model; start or end its champion/challenger comparison."""
        step = Step()
        known = self._deployments.get(model)
        if known is not None and deployment.revision < known.revision:
            return step  # an older change arriving late
        self._deployments[model] = deployment
        wanted = (
            (deployment.champion.version, deployment.challenger.version)
            if deployment.champion is not None and deployment.challenger is not None
            else None
        )
        current = self._pairings.get(model)
        if current is not None and current.versions != wanted:
            self._end_pairing(model, current, now, step)
        if wanted is not None and (current is None or current.versions != wanted):
            self._pairings[model] = Pairing(wanted[0], wanted[1], started_at=at)
            self._changed_pairings.add(model)
        return step

    def record_probe(self, result: ProbeCompleted, *, version: int | None, now: datetime) -> Step:
        """Publish a probe run and raise (or recover) the model's probe alert."""
        step = Step(outputs=[result])
        fingerprint = alert_fingerprint(
            result.model, version, AlertKind.PROBE_FAILED, PROBE_SUBJECT
        )
        episode = self._episodes.get(fingerprint, Episode())
        reading = Reading.CLEAR if result.passed else Reading.BREACHED
        updated, transition = advance(
            episode, reading, result.accuracy, raise_after=1, recover_after=1
        )
        self._set_episode(fingerprint, updated)
        if transition is not None:
            step.outputs.append(
                probe_alert(
                    result,
                    version=version,
                    fingerprint=fingerprint,
                    transition=transition,
                    now=now,
                )
            )
        return step

    # ------------------------------------------------------------------ persistence

    def drain_changes(self) -> Changes:
        """Return and forget what changed since the last drain."""
        changes = Changes(
            join=self._join.drain(),
            windows=self._windows.drain(),
            episodes={fp: self._episodes[fp] for fp in self._changed_episodes},
            clocks={model: self._clocks[model] for model in self._changed_clocks},
            pairings={model: self._pairings.get(model) for model in self._changed_pairings},
            ended_pairings=self._ended_pairings,
            references={key: self._references[key] for key in self._changed_references},
            residual_references={key: self._residuals[key] for key in self._changed_residuals},
            outcomes=[
                row
                for row in self._new_outcomes
                if (pairing := self._pairings.get(row[0])) is not None
                and pairing.versions == (row[1], row[2])
            ],
        )
        self._changed_episodes = set()
        self._changed_clocks = set()
        self._changed_pairings = set()
        self._ended_pairings = []
        self._new_outcomes = []
        self._changed_references = set()
        self._changed_residuals = set()
        return changes

    def restore(self, snapshot: Snapshot) -> None:
        """Load state from storage into a fresh monitor."""
        self._join.restore(snapshot.pending)
        self._windows.restore(snapshot.windows)
        self._episodes.update(snapshot.episodes)
        self._clocks.update(snapshot.clocks)
        self._pairings.update(snapshot.pairings)
        self._references.update(snapshot.references)
        self._residuals.update(snapshot.residual_references)

    def status(self) -> dict[str, Any]:
        """Return a summary for operators: what waits, what is open, what alerts."""
        return {
            "pending_predictions": self._join.pending_predictions(),
            "pending_labels": self._join.pending_labels(),
            "open_windows": [
                {
                    "model": w.series.model,
                    "version": w.series.version,
                    "variant": w.series.variant,
                    "start": w.start.isoformat(),
                    "end": w.end.isoformat(),
                    "predictions": w.predictions,
                    "labelled": w.labelled,
                    "expired_unjoined": w.expired_unjoined,
                }
                for w in sorted(self._windows.open_windows(), key=lambda w: w.series)
            ],
            "alerting": sorted(fp for fp, episode in self._episodes.items() if episode.alerting),
            "comparisons": {
                model: {
                    "champion_version": p.champion_version,
                    "challenger_version": p.challenger_version,
                    "champion_outcomes": len(p.champion),
                    "challenger_outcomes": len(p.challenger),
                }
                for model, p in sorted(self._pairings.items())
            },
            "deployments": {
                model: {
                    "revision": d.revision,
                    "champion": d.champion.version if d.champion else None,
                    "challenger": d.challenger.version if d.challenger else None,
                    "challenger_share": d.challenger_share,
                    "mode": d.mode.value,
                }
                for model, d in sorted(self._deployments.items())
            },
            "clocks": {
                model: clock.watermark.isoformat() if clock.watermark else None
                for model, clock in sorted(self._clocks.items())
            },
            "calibrations": [
                {
                    "model": model,
                    "version": version,
                    "reference_rows": (
                        len(reference.scores)
                        if reference.calibration is None
                        else reference.calibration.quality.rows
                    ),
                    "calibrated": reference.calibration is not None,
                    "registered": (
                        None
                        if (known := self._records.get((model, version))) is None
                        or known.calibration is None
                        else known.calibration.model_dump()
                    ),
                    "quality": (
                        None
                        if reference.calibration is None
                        else reference.calibration.quality.to_dict()
                    ),
                }
                for (model, version), reference in sorted(self._references.items())
                if isinstance(reference, Reference)
            ],
            "loss_references": [
                {
                    "model": model,
                    "version": version,
                    "reference_rows": len(reference.true),
                    "complete": reference.complete,
                    "quality": None
                    if reference.model is None
                    else reference.model.quality.to_dict(),
                }
                for (model, version), reference in sorted(self._references.items())
                if isinstance(reference, LossReference)
            ],
            "residual_references": [
                {
                    "model": model,
                    "version": version,
                    "rows": len(reference.residuals),
                    "needed": reference.rows,
                    "full": reference.full,
                }
                for (model, version), reference in sorted(self._residuals.items())
            ],
        }

    # ------------------------------------------------------------------ internals

    def _out_of_bounds(self, model: str, at: datetime, now: datetime) -> str | None:
        """Why an event of this model, dated ``at`` and received at ``now``, is refused."""
        clock = self._clocks.get(model)
        return self._bounds.out_of_bounds(
            at, now=now, clock=None if clock is None else clock.watermark
        )

    def _tick(self, model: str, at: datetime, now: datetime, step: Step) -> None:
        """Move a model's event-time clock; close due windows and expire old joins."""
        clock = self._clocks.get(model)
        if clock is None:
            clock = self._clocks[model] = ModelClock()
        elif clock.watermark is not None and at <= clock.watermark:
            return
        clock.watermark = at
        self._changed_clocks.add(model)
        for closed in self._windows.close_due(model, at):
            self._closed(closed, now, step)
        self._count_expired(self._join.expire(model, at), now, step)

    def _count_expired(self, expired: list[Expired], now: datetime, step: Step) -> None:
        for gone in expired:
            entry = gone.entry
            clock = self._clocks.setdefault(entry.model, ModelClock())
            at = clock.watermark or entry.occurred_at
            if isinstance(entry, PendingPrediction):
                self._windows.add_expired(Series(entry.model, entry.version, entry.variant), at)
            else:
                clock.expired_labels += 1
                self._changed_clocks.add(entry.model)

    def _score(self, pair: Joined, now: datetime, step: Step) -> None:
        prediction, label = pair.prediction, pair.label
        series = Series(prediction.model, prediction.version, prediction.variant)
        spec = self._records[(prediction.model, prediction.version)].spec
        if spec.task is ModelTask.REGRESSION:
            self._score_value(pair, series, now, step)
            return
        if (
            not isinstance(label.label, str)
            or label.label not in spec.classes
            or prediction.predicted_class is None
            or prediction.confidence is None
        ):
            self._windows.add_label_mismatch(series, pair.at)
            return
        probabilities = [prediction.probabilities.get(c, 0.0) for c in spec.classes]
        if self._policy.estimation and len(spec.classes) == 2:
            key = (prediction.model, prediction.version)
            reference = self._references.get(key)
            if reference is None:
                reference = self._references[key] = Reference()
            if isinstance(reference, Reference) and reference.calibration is None:
                reference.add(
                    prediction.probabilities.get(spec.positive, 0.0),
                    label.label == spec.positive_class,
                    rows=self._policy.calibration_rows,
                )
                self._changed_references.add(key)
        self._sample_for_comparison(prediction, label)
        self._closed(
            self._windows.add_outcome(
                series,
                pair.at,
                y_true=label.label,
                y_pred=prediction.predicted_class,
                probabilities=probabilities,
                predicted_at=prediction.occurred_at,
            ),
            now,
            step,
        )

    def _score_value(self, pair: Joined, series: Series, now: datetime, step: Step) -> None:
        """Score a regressor's prediction with its true number (a class joined by request id
        before the monitor knew the model is counted as a mismatch, not scored)."""
        prediction, label = pair.prediction, pair.label
        if not isinstance(label.label, float) or prediction.predicted_value is None:
            self._windows.add_label_mismatch(series, pair.at)
            return
        if prediction.features is not None and self._loss_reference_gathers(
            prediction.model, prediction.version
        ):
            key = (prediction.model, prediction.version)
            reference = self._references.setdefault(key, LossReference())
            assert isinstance(reference, LossReference)  # a regressor's, by _loss_reference_gathers
            reference.add(
                prediction.features,
                prediction.predicted_value,
                label.label,
                rows=self._policy.calibration_rows,
            )
            self._changed_references.add(key)
        self._gather_residual(series, label.label, prediction.predicted_value)
        self._sample_for_comparison(prediction, label)
        self._closed(
            self._windows.add_value_outcome(
                series,
                pair.at,
                y_true=label.label,
                y_pred=prediction.predicted_value,
                predicted_at=prediction.occurred_at,
            ),
            now,
            step,
        )

    def _loss_reference_gathers(self, model: str, version: int) -> bool:
        """Whether a regressor's reference for the loss estimate still takes rows."""
        if not self._policy.estimation:
            return False
        reference = self._references.get((model, version))
        return reference is None or (
            isinstance(reference, LossReference) and not reference.complete
        )

    def _sample_for_comparison(self, prediction: PendingPrediction, label: PendingLabel) -> None:
        pairing = self._pairings.get(prediction.model)
        if pairing is None or prediction.occurred_at < pairing.started_at:
            return
        if prediction.version == pairing.champion_version:
            side = _CHAMPION
        elif prediction.version == pairing.challenger_version:
            side = _CHALLENGER
        else:
            return
        champion_spec = self._records[(prediction.model, pairing.champion_version)].spec
        outcome: Outcome | ValueOutcome
        if champion_spec.task is ModelTask.REGRESSION:
            if not isinstance(label.label, float) or prediction.predicted_value is None:
                return  # a side of another kind than the champion is not comparable
            outcome = ValueOutcome(y_true=label.label, y_pred=prediction.predicted_value)
        else:
            if (
                not isinstance(label.label, str)
                or prediction.predicted_class is None
                or prediction.confidence is None
            ):
                return
            outcome = Outcome(
                y_true=label.label,
                y_pred=prediction.predicted_class,
                probabilities=tuple(
                    prediction.probabilities.get(c, 0.0) for c in champion_spec.classes
                ),
                confidence=prediction.confidence,
            )
        outcomes = pairing.side(side)
        outcomes.append((pairing.next_seq, outcome))
        while len(outcomes) > self._policy.comparison_max_samples:
            outcomes.popleft()
        self._new_outcomes.append(
            (prediction.model, *pairing.versions, side, pairing.next_seq, outcome)
        )
        pairing.next_seq += 1
        self._changed_pairings.add(prediction.model)

    def _closed(self, closed: ClosedWindow | None, now: datetime, step: Step) -> None:
        if closed is None:
            return
        window = closed.window
        series = window.series
        record = self._records[(series.model, series.version)]
        spec = record.spec
        regression = spec.task is ModelTask.REGRESSION
        figures: dict[str, float | None]
        if regression:
            figures = regression_metrics(window.values_true, window.values_pred)
        else:
            figures = classification_metrics(
                window.y_true,
                window.y_pred,
                window.probabilities,
                classes=spec.classes,
                positive_class=spec.positive,
            )
            figures["low_confidence_rate"] = low_confidence_rate(
                window.confidences, spec.low_confidence_threshold
            )
        clock = self._clocks.setdefault(series.model, ModelClock())
        figures["expired_labels"] = float(clock.expired_labels)
        figures["label_class_mismatches"] = float(window.label_mismatches)
        if clock.expired_labels:
            clock.expired_labels = 0
            self._changed_clocks.add(series.model)
        calibration = self.calibration(series.model, series.version)
        if regression:
            estimated, quality = self._estimate_losses(window)
        else:
            estimated = self._estimate(calibration, window)
            quality = None if calibration is None else calibration_summary(calibration).model_dump()
        metrics_event = metrics_computed(
            closed,
            spec,
            figures,
            breaching=self._breaching(record, window.labelled, figures),
            estimated=estimated,
            calibration=calibration,
            now=now,
        )
        step.outputs.append(metrics_event)
        self._remember(metrics_event, spec.key_metric)
        self._judge(record, closed, figures, now, step)
        if regression:
            self._judge_residuals(record, closed, now, step)
        if estimated is not None and quality is not None:
            self._judge_estimate(record, closed, estimated, quality, now, step)
        self._compare(series, now, step)

    def _breaching(
        self, record: ModelVersionRecord, labelled: int, figures: dict[str, float | None]
    ) -> list[str] | None:
        """Watched metrics on the alerting side in this window; ``None`` on too few labels (what
        the incident log needs to call a new champion healthy)."""
        if labelled < self._policy.min_labelled:
            return None
        return sorted(
            target.metric
            for target in watched_targets(record)
            if read(figures.get(target.metric), target, self._policy.hysteresis) is Reading.BREACHED
        )

    def _judge(
        self,
        record: ModelVersionRecord,
        closed: ClosedWindow,
        figures: dict[str, float | None],
        now: datetime,
        step: Step,
    ) -> None:
        spec = record.spec
        window = closed.window
        series = window.series
        recover_after = self._policy.recovery_windows or spec.consecutive_windows
        for target in watched_targets(record):
            low_confidence = target.metric == "low_confidence_rate"
            enough = (
                window.predictions >= self._policy.min_predictions
                if low_confidence
                else window.labelled >= self._policy.min_labelled
            )
            value = figures.get(target.metric)
            reading = (
                read(value, target, self._policy.hysteresis) if enough else Reading.NO_EVIDENCE
            )
            kind = AlertKind.LOW_CONFIDENCE if low_confidence else AlertKind.METRIC_DECAY
            fingerprint = alert_fingerprint(series.model, series.version, kind, target.metric)
            episode = self._episodes.get(fingerprint, Episode())
            updated, transition = advance(
                episode,
                reading,
                value,
                raise_after=spec.consecutive_windows,
                recover_after=recover_after,
            )
            if updated != episode:
                self._set_episode(fingerprint, updated)
            if (
                target.metric == spec.key_metric
                and not low_confidence
                and reading in (Reading.CLEAR, Reading.BORDERLINE)
            ):
                self._contradict_estimate(closed, target, value, now, step)
            if transition is not None:
                severity = (
                    Severity.CRITICAL if target.metric == spec.key_metric else Severity.WARNING
                )
                step.outputs.append(
                    metric_alert(
                        closed,
                        figures,
                        target,
                        kind=kind,
                        severity=severity,
                        fingerprint=fingerprint,
                        transition=transition,
                        recovery_level=recovery_level(target, self._policy.hysteresis),
                        now=now,
                    )
                )

    def _gather_residual(self, series: Series, y_true: float, y_pred: float) -> None:
        """Add an outcome's residual to its version's reference while that gathers."""
        key = (series.model, series.version)
        reference = self._residuals.get(key)
        if reference is None:
            reference = ResidualReference(rows=self._policy.residual_reference_rows)
            self._residuals[key] = reference
        value = residual(y_true, y_pred)
        if value is not None and reference.add(value, series.variant):
            self._changed_residuals.add(key)

    def _judge_residuals(
        self, record: ModelVersionRecord, closed: ClosedWindow, now: datetime, step: Step
    ) -> None:
        """Raise ``residual_drift`` when ``consecutive_windows`` windows of at least
        ``min_labelled`` labels drift from the reference residuals (services/monitor/residuals.py);
        recover after as many clean ones. A window holding reference rows is not judged."""
        window = closed.window
        series = window.series
        key = (series.model, series.version)
        reference = self._residuals.get(key)
        if reference is None:
            return
        judged = reference.judges(series.variant)
        if reference.window_closed(series.variant):
            self._changed_residuals.add(key)
        if not judged or window.labelled < self._policy.min_labelled:
            return
        values = [
            residual(t, p) for t, p in zip(window.values_true, window.values_pred, strict=True)
        ]
        test = compare_residuals(reference.residuals, [v for v in values if v is not None])
        if test is None:
            return
        reading = Reading.BREACHED if test.drifted else Reading.CLEAR
        fingerprint = alert_fingerprint(
            series.model, series.version, AlertKind.RESIDUAL_DRIFT, RESIDUAL_SUBJECT
        )
        episode = self._episodes.get(fingerprint, Episode())
        updated, transition = advance(
            episode,
            reading,
            round(test.effect_size, 6),
            raise_after=record.spec.consecutive_windows,
            recover_after=self._policy.recovery_windows or record.spec.consecutive_windows,
        )
        if updated != episode:
            self._set_episode(fingerprint, updated)
        if transition is None:
            return
        step.outputs.append(
            residual_alert(
                model=series.model,
                version=series.version,
                variant=series.variant,
                fingerprint=fingerprint,
                transition=transition,
                test=test,
                window={
                    "kind": closed.kind.value,
                    "start": window.start.isoformat(),
                    "end": window.end.isoformat(),
                    "predictions": window.predictions,
                    "labelled": window.labelled,
                    "non_finite_residuals": len(values) - test.window_rows,
                },
                producer=PRODUCER,
                now=now,
            )
        )

    def _remember(self, event: MetricsComputed, key_metric: str) -> None:
        series = Series(event.model, event.model_version, event.variant.value)
        recent = self._recent.setdefault(series, deque(maxlen=RECENT_WINDOWS))
        recent.append(
            {
                "version": event.model_version,
                "variant": event.variant.value,
                "start": event.window.start.isoformat(),
                "end": event.window.end.isoformat(),
                "predictions": event.predictions,
                "labelled": event.labelled,
                "key_metric": key_metric,
                "realised": {
                    name: event.metrics.get(name)
                    for name in (*ESTIMATED_METRICS, *ESTIMATED_LOSSES)
                    if name in event.metrics
                },
                "estimated": (
                    None
                    if event.estimated is None
                    else {name: e.model_dump() for name, e in event.estimated.items()}
                ),
            }
        )

    def _estimate(
        self, calibration: Calibration | None, window: Window
    ) -> dict[str, EstimatedMetric] | None:
        if calibration is None or not window.positive_scores:
            return None
        # Seeded by the window itself, so a replay after a restart publishes the same band.
        identity = f"{window.series}|{window.start.isoformat()}|{window.predictions}"
        estimates = estimate_binary(
            calibration,
            window.positive_scores,
            window.predicted_positive,
            rng=np.random.default_rng([self._seed, zlib.crc32(identity.encode())]),
            samples=self._policy.estimation_samples,
        )
        return {
            name: EstimatedMetric(
                value=round(e.value, 6), lower=round(e.lower, 6), upper=round(e.upper, 6)
            )
            for name, e in estimates.items()
            if e is not None
        }

    def _estimate_losses(
        self, window: Window
    ) -> tuple[dict[str, EstimatedMetric] | None, dict[str, JsonValue] | None]:
        """A regressor's estimated MAE and RMSE, and its reference's quality (the evidence)."""
        reference = self._references.get((window.series.model, window.series.version))
        if not isinstance(reference, LossReference) or not window.predicted_values:
            return None, None
        model = reference.model
        if model is None:
            return None, None
        estimates = estimate_losses(model, window.features, window.predicted_values)
        estimated = {
            name: EstimatedMetric(
                value=round(e.value, 6), lower=round(e.lower, 6), upper=round(e.upper, 6)
            )
            for name, e in estimates.items()
            if e is not None
        }
        return estimated, model.quality.to_dict()

    def _judge_estimate(
        self,
        record: ModelVersionRecord,
        closed: ClosedWindow,
        estimated: dict[str, EstimatedMetric],
        quality: dict[str, JsonValue],
        now: datetime,
        step: Step,
    ) -> None:
        """Raise ``estimated_decay`` when the key metric's estimate crosses its threshold for
        ``consecutive_windows`` windows of at least ``min_predictions`` predictions; recover it
        when the estimate comes back (or realised labels contradict it: see
        :meth:`_contradict_estimate`)."""
        spec = record.spec
        regression = spec.task is ModelTask.REGRESSION
        if spec.key_metric not in (ESTIMATED_LOSSES if regression else ESTIMATED_METRICS):
            return
        target = spec.target(spec.key_metric)
        window = closed.window
        series = window.series
        estimate = estimated.get(target.metric)
        value = None if estimate is None else estimate.value
        scored = len(window.predicted_values if regression else window.positive_scores)
        enough = scored >= self._policy.min_predictions
        reading = read(value, target, self._policy.hysteresis) if enough else Reading.NO_EVIDENCE
        fingerprint = alert_fingerprint(
            series.model, series.version, AlertKind.ESTIMATED_DECAY, target.metric
        )
        episode = self._episodes.get(fingerprint, Episode())
        if episode.muted:  # contradicted by labels: re-armed once the estimate is clear again
            if reading is Reading.CLEAR:
                self._set_episode(fingerprint, Episode())
            return
        updated, transition = advance(
            episode,
            reading,
            value,
            raise_after=spec.consecutive_windows,
            recover_after=self._policy.recovery_windows or spec.consecutive_windows,
        )
        if transition is not None and transition.kind is TransitionKind.RAISED:
            updated = replace(updated, since=window.start.isoformat())
        elif updated.alerting:
            updated = replace(updated, since=episode.since)
        if updated != episode:
            self._set_episode(fingerprint, updated)
        if transition is None:
            return
        step.outputs.append(
            estimated_decay_alert(
                record,
                closed,
                target,
                estimated,
                quality,
                fingerprint=fingerprint,
                transition=transition,
                recovery_level=recovery_level(target, self._policy.hysteresis),
                now=now,
            )
        )

    def _contradict_estimate(
        self,
        closed: ClosedWindow,
        target: MetricTarget,
        realised: float | None,
        now: datetime,
        step: Step,
    ) -> None:
        """The realised metric is the judge: a window whose labelled predictions were all made
        since an ``estimated_decay`` was raised, judged not breached, closes that episode."""
        window = closed.window
        series = window.series
        fingerprint = alert_fingerprint(
            series.model, series.version, AlertKind.ESTIMATED_DECAY, target.metric
        )
        episode = self._episodes.get(fingerprint)
        if realised is None or episode is None or not episode.alerting or episode.since is None:
            return
        made = window.first_labelled_prediction_at
        if made is None or made < datetime.fromisoformat(episode.since):
            return  # labels of predictions from before the alert say nothing about it
        self._set_episode(fingerprint, Episode(muted=True))
        step.outputs.append(
            estimate_contradicted(
                closed,
                target,
                realised,
                fingerprint=fingerprint,
                raised_at_window=episode.since,
                labelled_since=made,
                now=now,
            )
        )

    def _compare(self, series: Series, now: datetime, step: Step) -> None:
        pairing = self._pairings.get(series.model)
        if pairing is None or series.version not in pairing.versions:
            return
        record = self._records[(series.model, pairing.champion_version)]
        spec = record.spec
        if spec.task is ModelTask.REGRESSION:
            comparison = compare_values(
                [o for _, o in pairing.champion if isinstance(o, ValueOutcome)],
                [o for _, o in pairing.challenger if isinstance(o, ValueOutcome)],
                metric=spec.key_metric,
                min_samples=self._policy.comparison_min_samples,
                alpha=self._policy.comparison_alpha,
                rng=self._rng,
                resamples=self._policy.comparison_resamples,
            )
        else:
            comparison = compare_variants(
                [o for _, o in pairing.champion if isinstance(o, Outcome)],
                [o for _, o in pairing.challenger if isinstance(o, Outcome)],
                metric=spec.key_metric,
                classes=spec.classes,
                positive_class=spec.positive,
                low_confidence_threshold=spec.low_confidence_threshold,
                min_samples=self._policy.comparison_min_samples,
                alpha=self._policy.comparison_alpha,
                rng=self._rng,
                resamples=self._policy.comparison_resamples,
            )
        compared = variants_compared(
            series.model,
            pairing.champion_version,
            pairing.challenger_version,
            comparison,
            min_samples=self._policy.comparison_min_samples,
            alpha=self._policy.comparison_alpha,
            now=now,
        )
        step.outputs.append(compared)
        if comparison.verdict is ComparisonVerdict.CHALLENGER_WORSE and not pairing.alerted:
            pairing.alerted = True
            self._changed_pairings.add(series.model)
            step.outputs.append(
                challenger_worse(
                    compared,
                    comparison,
                    fingerprint=_challenger_fingerprint(series.model, pairing, spec.key_metric),
                    now=now,
                )
            )

    def _end_pairing(self, model: str, pairing: Pairing, now: datetime, step: Step) -> None:
        del self._pairings[model]
        self._changed_pairings.add(model)
        self._ended_pairings.append((model, *pairing.versions))
        if pairing.alerted:
            spec = self._records.get((model, pairing.champion_version))
            metric = spec.spec.key_metric if spec is not None else "key_metric"
            step.outputs.append(
                challenger_withdrawn(
                    model,
                    pairing.champion_version,
                    pairing.challenger_version,
                    fingerprint=_challenger_fingerprint(model, pairing, metric),
                    now=now,
                )
            )

    def _set_episode(self, fingerprint: str, episode: Episode) -> None:
        self._episodes[fingerprint] = episode
        self._changed_episodes.add(fingerprint)


def _challenger_fingerprint(model: str, pairing: Pairing, metric: str) -> str:
    return alert_fingerprint(model, pairing.challenger_version, AlertKind.CHALLENGER_WORSE, metric)


def watched_targets(record: ModelVersionRecord) -> list[MetricTarget]:
    """The version's watched metrics, plus (a classifier's) the low-confidence rate against its
    maximum: a regressor has no confidence to judge."""
    spec = record.spec
    targets = list(spec.metrics)
    if spec.task is ModelTask.CLASSIFICATION and all(
        target.metric != "low_confidence_rate" for target in targets
    ):
        threshold = spec.max_low_confidence_rate
        baseline = min(record.metrics.get("low_confidence_rate", 0.0), threshold)
        targets.append(
            MetricTarget(
                metric="low_confidence_rate",
                baseline=baseline,
                threshold=threshold,
                direction=MetricDirection.LOWER_IS_BETTER,
            )
        )
    return targets


def _pending(event: PredictionMade | ValuePredicted) -> PendingPrediction:
    """What the join keeps of a prediction until its truth comes."""
    if isinstance(event, ValuePredicted):
        return PendingPrediction(
            model=event.model,
            request_id=event.request_id,
            version=event.model_version,
            variant=event.variant.value,
            occurred_at=event.occurred_at,
            predicted_class=None,
            probabilities={},
            confidence=None,
            predicted_value=event.predicted_value,
        )
    return PendingPrediction(
        model=event.model,
        request_id=event.request_id,
        version=event.model_version,
        variant=event.variant.value,
        occurred_at=event.occurred_at,
        predicted_class=event.predicted_class,
        probabilities=dict(event.probabilities),
        confidence=event.confidence,
    )


def _invalid_prediction(
    event: PredictionMade | ValuePredicted, record: ModelVersionRecord
) -> str | None:
    regression = record.spec.task is ModelTask.REGRESSION
    where = f"{event.model!r} version {event.model_version}"
    if isinstance(event, ValuePredicted):
        if not regression:
            return f"value.predicted for a classifier: {where} predicts a class"
        return None
    if regression:
        return f"prediction.made for a regression model: {where} predicts a number"
    classes = record.spec.classes
    if event.predicted_class not in classes:
        return (
            f"predicted class {event.predicted_class!r} is not a class of {event.model!r} "
            f"version {event.model_version} (classes: {', '.join(classes)})"
        )
    unknown = sorted(set(event.probabilities) - set(classes))
    if unknown:
        return f"probabilities name unknown classes {unknown} (classes: {', '.join(classes)})"
    return None

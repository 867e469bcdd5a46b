"""The validation gate: may a candidate be proposed in place of the champion? Pure.

Both models are scored on the same held-out rows. The candidate passes when

1. its **key metric** (the spec's ``key_metric``) is on the healthy side of that metric's
   threshold (the floor: recall ≥ 0.95 for a health model);
2. it is **non-inferior** to the champion on the key metric: the lower end of a paired bootstrap
   confidence interval of (candidate - champion), signed so that positive is better, is above
   ``-margin``. Paired: each resample draws the same rows for both models, so the interval
   reflects the models' difference and not the luck of the rows. McNemar's exact test on the
   rows only one model gets right is reported beside it;
3. every **guard metric** (the spec's other targets) is on the healthy side of its threshold.

A model with no champion is judged on 1 and 3 alone and the verdict says so. Figures on the
held-out rows that are recent live traffic are reported too (not gated: there may be few). The
pipeline leaves out of the comparison the held-out rows the champion was trained on, when enough
others remain (:func:`services.retrainer.retraining.pipeline.run_steps`).

A regressor (:class:`~services.retrainer.retraining.training.ValueScores`) is judged the same way
on its ``mae``, ``rmse`` or ``r2``; the margin of ``mae`` and ``rmse``, which are in the target's
unit, is relative (``margin`` times the champion's value), and in place of McNemar a Wilcoxon
signed-rank test on the paired absolute errors is reported (ADR 0022).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest, rankdata, wilcoxon

from contracts.registry import (
    MACRO_METRICS,
    MetricDirection,
    MonitoringSpec,
    per_class_metric,
)
from services.retrainer.retraining.regression_metrics import regression_metric
from services.retrainer.retraining.training import Scores, ValueScores

__all__ = ["GatePolicy", "Verdict", "judge", "metric_value", "with_measured_baselines"]


@dataclass(frozen=True)
class GatePolicy:
    """The gate's thresholds beyond the spec's (recorded with every verdict)."""

    margin: float = 0.02
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    min_live_rows: int = 30
    min_unseen_rows: int = 50

    def describe(self) -> dict[str, Any]:
        """Return the policy as JSON-ready figures."""
        return {
            "margin": self.margin,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "seed": self.seed,
            "min_live_rows": self.min_live_rows,
            "min_unseen_rows": self.min_unseen_rows,
        }


@dataclass(frozen=True)
class Verdict:
    """The gate's decision, every figure behind it, and each failed check for a person."""

    passed: bool
    figures: dict[str, Any]
    failures: list[str]
    summary: str


def _auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def metric_value(
    metric: str,
    scores: Scores | ValueScores,
    spec: MonitoringSpec,
    rows: np.ndarray | None = None,
) -> float | None:
    """Return one metric of scored rows (``rows`` selects a subset); ``None`` where undefined.

    Precision, recall and F1 are about the spec's positive class; the low-confidence rate counts
    predictions below the spec's ``low_confidence_threshold``. A regressor's scores have
    ``mae``, ``rmse`` and ``r2``.
    """
    pick = slice(None) if rows is None else rows
    if isinstance(scores, ValueScores):
        return regression_metric(metric, scores.truth[pick], scores.predicted[pick])
    truth = scores.truth[pick]
    if len(truth) == 0:
        return None
    predicted = scores.predicted[pick]
    actual_positive = truth == spec.positive_class
    predicted_positive = predicted == spec.positive_class
    true_positive = float(np.sum(actual_positive & predicted_positive))
    if metric == "accuracy":
        return float(np.mean(truth == predicted))
    if metric == "recall":
        positives = float(actual_positive.sum())
        return true_positive / positives if positives else None
    if metric == "precision":
        flagged = float(predicted_positive.sum())
        return true_positive / flagged if flagged else None
    if metric == "f1":
        denominator = float(actual_positive.sum() + predicted_positive.sum())
        return 2 * true_positive / denominator if denominator else None
    if metric == "roc_auc":
        return _auc(actual_positive, scores.positive_probability[pick])
    if metric == "log_loss":
        clipped = np.clip(scores.true_class_probability[pick], 1e-15, 1.0)
        return float(-np.mean(np.log(clipped)))
    if metric == "low_confidence_rate":
        return float(np.mean(scores.confidence[pick] < spec.low_confidence_threshold))
    if metric in MACRO_METRICS or per_class_metric(metric) is not None:
        return _per_class(metric, truth, predicted, spec)
    raise ValueError(f"unknown metric {metric!r}")


def _per_class(
    metric: str, truth: np.ndarray, predicted: np.ndarray, spec: MonitoringSpec
) -> float | None:
    """A per-class figure (``recall[c]``) or a macro mean over the classes where it is defined,
    as the monitor computes it (numpy counts: the gate's bootstrap calls this thousands of
    times)."""
    per_class = per_class_metric(metric)
    name = per_class[0] if per_class else metric.removesuffix("_macro")
    values = []
    for label in [per_class[1]] if per_class else spec.classes:
        actual, flagged = truth == label, predicted == label
        hits = float(np.sum(actual & flagged))
        denominator = {
            "recall": float(actual.sum()),
            "precision": float(flagged.sum()),
            "f1": float(actual.sum() + flagged.sum()) / 2,
        }[name]
        if denominator:
            values.append(hits / denominator)
    return float(np.mean(values)) if values else None


def _healthy(value: float, threshold: float, direction: MetricDirection) -> bool:
    if direction is MetricDirection.HIGHER_IS_BETTER:
        return value >= threshold
    return value <= threshold


def _bootstrap(
    statistic: Callable[[np.ndarray], float | None], size: int, policy: GatePolicy
) -> tuple[float, float, int]:
    """Return the (low, high) percentile interval of a paired statistic, and how many resamples
    had it undefined."""
    rng = np.random.default_rng(policy.seed)
    values = []
    undefined = 0
    for _ in range(policy.resamples):
        value = statistic(rng.integers(0, size, size=size))
        if value is None:
            undefined += 1
        else:
            values.append(value)
    if not values:
        return float("nan"), float("nan"), undefined
    tail = (1 - policy.confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high), undefined


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def judge(
    spec: MonitoringSpec,
    candidate: Scores | ValueScores,
    champion: Scores | ValueScores | None,
    policy: GatePolicy,
    *,
    live: np.ndarray | None = None,
) -> Verdict:
    """Judge a candidate against the champion (``None``: there is none) on the same rows.

    ``live`` marks the rows that are recent live traffic.
    """
    if champion is not None and not np.array_equal(candidate.truth, champion.truth):
        raise ValueError("candidate and champion must be scored on the same rows")
    if champion is not None and type(candidate) is not type(champion):
        raise ValueError("candidate and champion must be models of the same kind")
    key = spec.target(spec.key_metric)
    sign = 1.0 if key.direction is MetricDirection.HIGHER_IS_BETTER else -1.0
    failures: list[str] = []
    metrics: dict[str, Any] = {}
    for target in spec.metrics:
        ours = metric_value(target.metric, candidate, spec)
        theirs = metric_value(target.metric, champion, spec) if champion is not None else None
        role = "key" if target.metric == spec.key_metric else "guard"
        metrics[target.metric] = {
            "role": role,
            "candidate": ours,
            "champion": theirs,
            "threshold": target.threshold,
            "direction": target.direction.value,
        }
        if ours is None:
            failures.append(f"{target.metric} ({role}) is undefined on the held-out rows")
        elif not _healthy(ours, target.threshold, target.direction):
            side = (
                "below its floor"
                if target.direction is MetricDirection.HIGHER_IS_BETTER
                else "above its ceiling"
            )
            failures.append(f"{target.metric} ({role}) {ours:.3f} {side} {target.threshold}")

    figures: dict[str, Any] = {
        "held_out_rows": len(candidate.truth),
        "key_metric": spec.key_metric,
        "metrics": metrics,
        "policy": policy.describe(),
        "no_champion": champion is None,
    }
    summary_parts = [
        f"{spec.key_metric} {_fmt(metrics[spec.key_metric]['candidate'])}"
        + (f" vs {_fmt(metrics[spec.key_metric]['champion'])}" if champion is not None else "")
        + f" ({_bound(key.direction)} {key.threshold})"
    ]
    if champion is None:
        figures["non_inferiority"] = {"skipped": "no champion to compare with"}
        summary_parts.append("no champion to compare with")
    else:
        margin = _margin(spec.key_metric, metrics[spec.key_metric]["champion"], policy)
        figures["non_inferiority"] = _non_inferiority(spec, candidate, champion, policy, sign)
        figures["non_inferiority"]["margin"] = margin
        low = figures["non_inferiority"]["ci_low"]
        if low is None or low < -margin:
            failures.append(
                f"{spec.key_metric} may be worse than the champion's by more than "
                f"{margin if margin == policy.margin else f'{margin:.4g}'}: "
                f"{policy.confidence:.0%} interval of the difference starts at "
                f"{_fmt(low)}"
            )
        else:
            summary_parts.append(f"non-inferior: interval from {low:+.3f}")
        if isinstance(candidate, ValueScores) and isinstance(champion, ValueScores):
            figures["paired_errors"] = _paired_errors(candidate, champion)
        elif isinstance(candidate, Scores) and isinstance(champion, Scores):
            figures["mcnemar"] = _mcnemar(candidate, champion)
    figures["live"] = _live_figures(spec, candidate, champion, live, policy)
    passed = not failures
    summary = ", ".join(summary_parts) + ("" if passed else f"; failed: {'; '.join(failures)}")
    return Verdict(passed=passed, figures=figures, failures=failures, summary=summary)


def _bound(direction: MetricDirection) -> str:
    """What a threshold is to a metric: the least it may reach, or the most (an error's)."""
    return "floor" if direction is MetricDirection.HIGHER_IS_BETTER else "ceiling"


_UNIT_METRICS = frozenset({"mae", "rmse"})
"""Metrics in the target's unit: their margin is a share of the champion's value."""


def _margin(metric: str, champion: float | None, policy: GatePolicy) -> float:
    """The tolerated loss on the key metric: ``policy.margin`` itself for a metric on a fixed
    scale, ``policy.margin`` times the champion's value for an error in the target's unit (an
    absolute 0.02 would mean nothing for a target in the hundreds, everything for one in
    thousandths)."""
    if metric in _UNIT_METRICS and champion is not None:
        return policy.margin * abs(champion)
    return policy.margin


def _non_inferiority(
    spec: MonitoringSpec,
    candidate: Scores | ValueScores,
    champion: Scores | ValueScores,
    policy: GatePolicy,
    sign: float,
) -> dict[str, Any]:
    def difference(rows: np.ndarray) -> float | None:
        ours = metric_value(spec.key_metric, candidate, spec, rows)
        theirs = metric_value(spec.key_metric, champion, spec, rows)
        if ours is None or theirs is None:
            return None
        return sign * (ours - theirs)

    observed = difference(np.arange(len(candidate.truth)))
    low, high, undefined = _bootstrap(difference, len(candidate.truth), policy)
    defined = not np.isnan(low)
    return {
        "metric": spec.key_metric,
        "test": "paired bootstrap",
        "difference": observed,
        "ci_low": low if defined else None,
        "ci_high": high if defined else None,
        "confidence": policy.confidence,
        "margin": policy.margin,
        "resamples": policy.resamples,
        "undefined_resamples": undefined,
    }


def _mcnemar(candidate: Scores, champion: Scores) -> dict[str, Any]:
    ours = candidate.predicted == candidate.truth
    theirs = champion.predicted == champion.truth
    only_candidate = int(np.sum(ours & ~theirs))
    only_champion = int(np.sum(~ours & theirs))
    discordant = only_candidate + only_champion
    p_value = float(binomtest(only_candidate, discordant, 0.5).pvalue) if discordant else 1.0
    return {
        "test": "McNemar exact",
        "candidate_only_right": only_candidate,
        "champion_only_right": only_champion,
        "p_value": p_value,
    }


def _paired_errors(candidate: ValueScores, champion: ValueScores) -> dict[str, Any]:
    """Which model is closer on each row, and the Wilcoxon signed-rank test of the paired
    absolute errors (a regressor's counterpart of McNemar's test)."""
    ours = np.abs(candidate.truth - candidate.predicted)
    theirs = np.abs(champion.truth - champion.predicted)
    differences = ours - theirs
    p_value = (
        float(wilcoxon(ours, theirs, zero_method="wilcox").pvalue)
        if np.any(differences != 0)
        else 1.0
    )
    return {
        "test": "Wilcoxon signed-rank on absolute errors",
        "candidate_closer": int(np.sum(differences < 0)),
        "champion_closer": int(np.sum(differences > 0)),
        "p_value": p_value,
    }


def _live_figures(
    spec: MonitoringSpec,
    candidate: Scores | ValueScores,
    champion: Scores | ValueScores | None,
    live: np.ndarray | None,
    policy: GatePolicy,
) -> dict[str, Any]:
    rows = np.flatnonzero(live) if live is not None else np.array([], dtype=int)
    figures: dict[str, Any] = {"rows": len(rows)}
    if len(rows) < policy.min_live_rows:
        figures["note"] = f"fewer than {policy.min_live_rows} held-out live rows: not reported"
        return figures
    for target in spec.metrics:
        figures[target.metric] = {
            "candidate": metric_value(target.metric, candidate, spec, rows),
            "champion": (
                metric_value(target.metric, champion, spec, rows) if champion is not None else None
            ),
        }
    return figures


def with_measured_baselines(spec: MonitoringSpec, measured: dict[str, float]) -> MonitoringSpec:
    """Return the spec with each watched metric's baseline set to the value measured on the
    held-out rows, where that value is on the healthy side of its threshold (the monitor's
    hysteresis counts from the baseline)."""
    targets = []
    for target in spec.metrics:
        value = measured.get(target.metric)
        if value is not None and _healthy(value, target.threshold, target.direction):
            target = target.model_copy(update={"baseline": value})
        targets.append(target.model_dump(mode="json"))
    return MonitoringSpec.model_validate({**spec.model_dump(mode="json"), "metrics": targets})

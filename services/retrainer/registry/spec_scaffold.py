"""A first registration file for a model, drafted from its training data for a person to edit:
``vigil models spec --from-csv data.csv --target y`` writes it, ``vigil models register --spec``
reads it.

The file is the registration's metadata (``VersionMetadata``: lineage and the
``MonitoringSpec``) as commented YAML, so every field the registry takes can be written in it
and is checked by the same models before anything is sent.

What is drafted, and how:

- **features**: every column but the target, in the file's order; numeric when every non-empty
  value is a finite number, else categorical; nullable when a value is missing.
- **task**: the one given, else inferred from the target: **regression** when every value is a
  number and some value is not a whole number, or when the whole numbers take more than
  :data:`MAX_CLASSES` distinct values; classification otherwise (text, or a few whole numbers).
- **classes** (classification): the target's values; the positive class (what precision and
  recall are about) is the one given, else the rarest.
- **baselines and thresholds**: the rows are split as the retrainer splits them (a stratified
  quarter held out, seed 0, :func:`services.retrainer.retraining.training.split`); the model
  measured is the person's own artifact if given, else a reference pipeline trained on the other
  rows (the retrainer's default recipe). Each watched metric's baseline is its value on the
  held-out rows; its threshold is the edge of a 95 % bootstrap interval of that value on the healthy
  side's far end (2.5th percentile where higher is better, 97.5th where lower is), i.e. a value
  sampling noise alone reaches rarely on that many rows, and at least 0.05 from the baseline.
  Production windows are smaller or larger than the held-out split: the person should look at
  it.
- **regression**: MAE, RMSE and R² are watched (the key metric MAE unless another is given), on a
  plain (unstratified) held-out quarter, seed 0; the reference model is a ridge regression on the
  retrainer's default preprocessing. Thresholds are the bootstrap edge as above, and at least a
  readable margin worse: MAE and RMSE 10 % above their baseline, R² 0.05 below it.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
import yaml
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

from contracts.drift import FeatureKind
from contracts.registry import (
    LOWER_IS_BETTER_METRICS,
    REGRESSION_METRICS,
    MetricDirection,
    ModelTask,
    MonitoringSpec,
)
from services.retrainer.registry.api import VersionMetadata
from services.retrainer.retraining.gate import metric_value
from services.retrainer.retraining.recipes import Recipe, build_pipeline
from services.retrainer.retraining.regression_metrics import regression_metric
from services.retrainer.retraining.training import Scores, fit, score, split
from services.retrainer.retraining.training_data import parse_csv, targets, to_matrix
from services.runtime import as_model_input, mismatches_with_spec

__all__ = [
    "MAX_CLASSES",
    "Draft",
    "ScaffoldError",
    "draft_metadata",
    "infer_task",
    "metadata_yaml",
    "read_metadata",
    "reorder_training_csv",
]

_LOWER_IS_BETTER = frozenset({"log_loss", "low_confidence_rate"})
_RESAMPLES = 500
_MIN_MARGIN = 0.05
"""A proposed threshold is at least this far from its baseline (a perfect held-out score has no
bootstrap spread, and any single miss would alert)."""


MAX_CLASSES = 20
"""A whole-number target with more distinct values than this is drafted as a regression."""

_REGRESSION_MARGIN = {"mae": 0.10, "rmse": 0.10}
"""MAE and RMSE thresholds are at least this share above their baseline (in the target's unit,
so the margin scales with it); R² gets :data:`_MIN_MARGIN` below, as a classifier's rates do."""


class ScaffoldError(ValueError):
    """The data cannot make a spec; the message says why."""


@dataclass(frozen=True)
class Draft:
    """The drafted metadata, and what the baselines were measured on."""

    metadata: VersionMetadata
    measured_on: int
    measured_with: str


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _columns(content: bytes) -> tuple[list[str], list[list[str]]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ScaffoldError(f"not UTF-8 text: {error}") from None
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if len(rows) < 2:
        raise ScaffoldError("the file needs a header row and data rows")
    header, body = rows[0], rows[1:]
    if len(set(header)) != len(header) or any(not name for name in header):
        raise ScaffoldError(f"column names must be unique and non-empty: {header}")
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ScaffoldError(f"row {number} has {len(row)} values for {len(header)} columns")
    return header, body


def reorder_training_csv(content: bytes, spec: MonitoringSpec) -> bytes:
    """The CSV with its columns in the order the registry expects (features in spec order, then
    the label), whatever their order in the file."""
    header, body = _columns(content)
    expected = [feature.name for feature in spec.features] + [spec.label]
    if header == expected:
        return content
    if sorted(header) != sorted(expected):
        raise ScaffoldError(f"columns {header} are not the spec's {expected}")
    where = [header.index(name) for name in expected]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(expected)
    writer.writerows([row[i] for i in where] for row in body)
    return out.getvalue().encode()


def _features(header: list[str], body: list[list[str]], target: str) -> list[dict[str, Any]]:
    features = []
    for index, name in enumerate(header):
        if name == target:
            continue
        values = [row[index] for row in body]
        present = [value for value in values if value != ""]
        numeric = bool(present) and all(_is_number(value) for value in present)
        features.append(
            {
                "name": name,
                "kind": (FeatureKind.NUMERIC if numeric else FeatureKind.CATEGORICAL).value,
                "nullable": len(present) < len(values),
            }
        )
    return features


def _threshold(metric: str, scores: Scores, spec: MonitoringSpec) -> float | None:
    rng = np.random.default_rng(0)
    size = len(scores.truth)
    values = [
        value
        for _ in range(_RESAMPLES)
        if (value := metric_value(metric, scores, spec, rng.integers(0, size, size))) is not None
    ]
    if not values:
        return None
    tail = 97.5 if metric in _LOWER_IS_BETTER else 2.5
    return float(np.percentile(values, tail))


def infer_task(values: list[str]) -> ModelTask:
    """What a target column asks for: regression when every value is a number and some is not
    whole, or the whole numbers take more than :data:`MAX_CLASSES` values; else classification.

    >>> infer_task(["1", "0", "1"]), infer_task(["151.0", "75.0", "141.5"])
    (<ModelTask.CLASSIFICATION: 'classification'>, <ModelTask.REGRESSION: 'regression'>)
    >>> infer_task([str(n) for n in range(21)]), infer_task(["yes", "2.5"])
    (<ModelTask.REGRESSION: 'regression'>, <ModelTask.CLASSIFICATION: 'classification'>)
    """
    present = [value for value in values if value != ""]
    if not present or not all(_is_number(value) for value in present):
        return ModelTask.CLASSIFICATION
    numbers = {float(value) for value in present}
    if any(not number.is_integer() for number in numbers) or len(numbers) > MAX_CLASSES:
        return ModelTask.REGRESSION
    return ModelTask.CLASSIFICATION


def draft_metadata(
    content: bytes,
    *,
    target: str,
    key_metric: str | None = None,
    positive_class: str | None = None,
    task: ModelTask | None = None,
    dataset_name: str = "training-data",
    estimator: Any | None = None,
    owners: tuple[str, ...] = (),
) -> Draft:
    """Draft the registration metadata of a model trained on ``content`` (CSV with a header).

    ``task``: classification or regression (``None``: inferred, :func:`infer_task`);
    ``key_metric``: default recall (classification) or mae (regression). ``estimator``: the
    person's fitted model, measured on the held-out rows; ``None``: a reference model is trained
    on the other rows and measured instead.
    """
    header, body = _columns(content)
    if target not in header:
        raise ScaffoldError(f"no column {target!r}; columns: {', '.join(header)}")
    if len(header) < 2:
        raise ScaffoldError("the file needs at least one feature column beside the target")
    values = [row[header.index(target)] for row in body]
    task = task or infer_task(values)
    if task is ModelTask.REGRESSION:
        return _draft_regression(
            content,
            header,
            body,
            target=target,
            key_metric=key_metric or "mae",
            positive_class=positive_class,
            dataset_name=dataset_name,
            estimator=estimator,
            owners=owners,
        )
    key_metric = key_metric or "recall"
    counts = Counter(values)
    counts.pop("", None)
    if len(counts) < 2:
        raise ScaffoldError(f"the target {target!r} holds {len(counts)} class(es); need two")
    classes = sorted(counts)
    positive = (
        positive_class if positive_class is not None else min(classes, key=counts.__getitem__)
    )
    if positive not in counts:
        raise ScaffoldError(f"positive class {positive!r} is not one of {classes}")
    watched = list(dict.fromkeys([key_metric, "accuracy"]))
    placeholder = [
        {
            "metric": metric,
            "baseline": 0.0 if metric in _LOWER_IS_BETTER else 1.0,
            "threshold": 0.0 if metric in _LOWER_IS_BETTER else 1.0,
            "direction": (
                MetricDirection.LOWER_IS_BETTER
                if metric in _LOWER_IS_BETTER
                else MetricDirection.HIGHER_IS_BETTER
            ).value,
        }
        for metric in watched
    ]
    try:
        spec = MonitoringSpec.model_validate(
            {
                "features": _features(header, body, target),
                "label": target,
                "classes": classes,
                "positive_class": positive,
                "key_metric": key_metric,
                "metrics": placeholder,
                "owners": list(owners),
            }
        )
    except ValueError as error:
        raise ScaffoldError(str(error)) from None
    rows, dropped = parse_csv(reorder_training_csv(content, spec), spec)
    if dropped:
        raise ScaffoldError(f"{dropped} row(s) do not fit the drafted schema")
    recipe = Recipe()
    train_rows, held_out = split(rows, recipe)
    model = estimator if estimator is not None else fit(recipe, spec, rows.take(train_rows))
    measured = score(model, spec, rows.take(held_out))
    targets, baselines = [], {}
    for metric in watched:
        baseline = metric_value(metric, measured, spec)
        threshold = _threshold(metric, measured, spec)
        if baseline is None or threshold is None:
            raise ScaffoldError(f"{metric} is undefined on the held-out rows")
        baselines[metric] = round(baseline, 4)
        lower = metric in _LOWER_IS_BETTER
        threshold = (
            max(threshold, baseline + _MIN_MARGIN)
            if lower
            else min(threshold, baseline - _MIN_MARGIN)
        )
        threshold = min(max(threshold, 0.0), 1.0) if metric != "log_loss" else threshold
        # Round away from the baseline so rounding never puts the baseline past its threshold.
        rounded = math.ceil(threshold * 1e4) / 1e4 if lower else math.floor(threshold * 1e4) / 1e4
        targets.append(
            {
                "metric": metric,
                "baseline": round(baseline, 4),
                "threshold": rounded,
                "direction": (
                    MetricDirection.LOWER_IS_BETTER if lower else MetricDirection.HIGHER_IS_BETTER
                ).value,
            }
        )
    spec = MonitoringSpec.model_validate({**spec.model_dump(mode="json"), "metrics": targets})
    metadata = VersionMetadata(
        sklearn_version=sklearn.__version__,
        dataset_name=dataset_name,
        dataset_version="1",
        metrics=baselines,
        parameters={} if estimator is not None else dict(recipe.parameters()),
        code_version="unknown",
        spec=spec,
        reason="first version",
    )
    return Draft(
        metadata=metadata,
        measured_on=len(held_out),
        measured_with=type(model).__name__ if estimator is not None else "reference pipeline",
    )


def _draft_regression(
    content: bytes,
    header: list[str],
    body: list[list[str]],
    *,
    target: str,
    key_metric: str,
    positive_class: str | None,
    dataset_name: str,
    estimator: Any | None,
    owners: tuple[str, ...],
) -> Draft:
    """The draft of a regression model: MAE, RMSE and R² measured on a held-out quarter."""
    if positive_class is not None:
        raise ScaffoldError("a regression model has no positive class: drop --positive-class")
    column = header.index(target)
    for number, row in enumerate(body, start=2):
        if not _is_number(row[column]):
            raise ScaffoldError(
                f"row {number}: the target {target!r} is {row[column]!r}, not a finite number "
                "(a regression target is a number)"
            )
    watched = list(dict.fromkeys([key_metric, "mae", "rmse", "r2"]))
    placeholder = [
        {"metric": m, "baseline": 0.0, "threshold": 0.0, "direction": _direction(m).value}
        for m in watched
    ]
    try:
        spec = MonitoringSpec.model_validate(
            {
                "task": ModelTask.REGRESSION.value,
                "features": _features(header, body, target),
                "label": target,
                "key_metric": key_metric,
                "metrics": placeholder,
                "owners": list(owners),
            }
        )
    except ValueError as error:
        raise ScaffoldError(str(error)) from None
    rows, dropped = parse_csv(reorder_training_csv(content, spec), spec)
    if dropped:
        raise ScaffoldError(f"{dropped} row(s) do not fit the drafted schema")
    if len(rows) < 8:
        raise ScaffoldError(f"{len(rows)} rows are too few to hold a quarter out and measure it")
    recipe = Recipe()
    train_rows, held_out = train_test_split(
        np.arange(len(rows)), test_size=recipe.test_fraction, random_state=recipe.seed
    )
    model = estimator
    if model is None:
        model = build_pipeline(recipe, spec).set_params(model=Ridge())
        fitting = rows.take(sorted(int(i) for i in train_rows))
        model.fit(to_matrix(fitting, spec), targets(fitting, spec))
    elif problems := mismatches_with_spec(model, spec):
        raise ScaffoldError(f"the artifact does not fit the drafted spec: {'; '.join(problems)}")
    measured_rows = rows.take(sorted(int(i) for i in held_out))
    truth = targets(measured_rows, spec)
    try:
        inputs = as_model_input(model, spec, to_matrix(measured_rows, spec))
        with np.errstate(over="ignore", invalid="ignore"):
            predicted = np.asarray(model.predict(inputs), dtype=np.float64)
    except Exception as error:  # the person's model: its own failure is the message
        raise ScaffoldError(f"the model cannot score the held-out rows: {error}") from None
    if predicted.shape != truth.shape or not np.all(np.isfinite(predicted)):
        raise ScaffoldError("the model does not predict one finite number per held-out row")
    proposed, baselines = [], {}
    for metric in watched:
        target_of = _regression_target(metric, truth, predicted)
        if target_of is None:
            raise ScaffoldError(f"{metric} is undefined on the held-out rows")
        baselines[metric] = target_of["baseline"]
        proposed.append(target_of)
    spec = MonitoringSpec.model_validate({**spec.model_dump(mode="json"), "metrics": proposed})
    metadata = VersionMetadata(
        sklearn_version=sklearn.__version__,
        dataset_name=dataset_name,
        dataset_version="1",
        metrics=baselines,
        parameters={},
        code_version="unknown",
        spec=spec,
        reason="first version",
    )
    return Draft(
        metadata=metadata,
        measured_on=len(held_out),
        measured_with=(
            type(model).__name__ if estimator is not None else "reference ridge regression"
        ),
    )


def _direction(metric: str) -> MetricDirection:
    lower = metric in LOWER_IS_BETTER_METRICS
    return MetricDirection.LOWER_IS_BETTER if lower else MetricDirection.HIGHER_IS_BETTER


def _regression_target(
    metric: str, truth: np.ndarray, predicted: np.ndarray
) -> dict[str, Any] | None:
    """A regression metric's baseline on the held-out rows and its threshold: the far end of a
    95 % bootstrap interval, and at least the readable margin worse (rounded away from the
    baseline, to four significant digits)."""
    if metric not in REGRESSION_METRICS:
        raise ScaffoldError(f"{metric}: not a regression metric; use mae, rmse or r2")
    with np.errstate(over="ignore", invalid="ignore"):
        baseline = regression_metric(metric, truth, predicted)
        rng = np.random.default_rng(0)
        picks = (rng.integers(0, len(truth), len(truth)) for _ in range(_RESAMPLES))
        spread = [
            value
            for pick in picks
            if (value := regression_metric(metric, truth[pick], predicted[pick])) is not None
        ]
    if baseline is None or not math.isfinite(baseline) or not spread:
        return None
    lower = _direction(metric) is MetricDirection.LOWER_IS_BETTER
    if lower:
        edge = float(np.percentile(spread, 97.5))
        threshold = max(edge, baseline * (1 + _REGRESSION_MARGIN[metric]), baseline + 1e-9)
    else:
        threshold = min(float(np.percentile(spread, 2.5)), baseline - _MIN_MARGIN)
    if not math.isfinite(threshold):
        return None
    return {
        "metric": metric,
        "baseline": _significant(baseline),
        "threshold": _significant(threshold, up=lower, down=not lower),
        "direction": _direction(metric).value,
    }


def _significant(value: float, *, up: bool = False, down: bool = False) -> float:
    """``value`` to four significant digits, rounded up or down if asked (so a threshold stays
    on its side of the baseline).

    >>> _significant(44.61234), _significant(44.61234, up=True), _significant(0.123456, down=True)
    (44.61, 44.62, 0.1234)
    """
    if value == 0:
        return 0.0
    scale = 10.0 ** (3 - math.floor(math.log10(abs(value))))
    if up:
        return math.ceil(value * scale) / scale
    if down:
        return math.floor(value * scale) / scale
    return round(value * scale) / scale


_COMMENTS = {
    "sklearn_version": "scikit-learn version the artifact was saved with.",
    "dataset_name": "Lineage: the training data's name and version, as your team names them.",
    "metrics": "Measured at validation (drafted: on the held-out rows).",
    "parameters": "How the model was trained (free-form; the retrainer's recipe if it trains it).",
    "code_version": "The code that trained it: a git commit, a package version.",
    "spec": "What Vigil watches. Edit thresholds, owners and the positive class to taste.",
    "reason": "Kept in the registry's history.",
}


def metadata_yaml(draft: Draft, *, source: str) -> str:
    """The draft as commented YAML."""
    document = draft.metadata.model_dump(mode="json", exclude_none=True)
    lines = [
        f"# Registration of a model trained on {source}: edit, then",
        "#   vigil models register MODEL --artifact model.skops --spec THIS_FILE \\",
        f"#     --training-data {source}",
        f"# Baselines measured with the {draft.measured_with} on {draft.measured_on} held-out",
        "# rows; each threshold is the far end of a 95 % bootstrap interval of its baseline",
        (
            "# and at least 10 % worse for mae and rmse, 0.05 for r2"
            if draft.metadata.spec.task is ModelTask.REGRESSION
            else "# and at least 0.05 from it"
        )
        + " (services/retrainer/registry/spec_scaffold.py).",
        "# Every field: VersionMetadata in the registry's OpenAPI (GET /docs of the retrainer).",
        "",
    ]
    for key, value in document.items():
        if key in _COMMENTS:
            lines.append(f"# {_COMMENTS[key]}")
        lines.append(yaml.safe_dump({key: value}, sort_keys=False, width=100).rstrip())
    return "\n".join(lines) + "\n"


def read_metadata(text: str) -> VersionMetadata:
    """The registration metadata of a spec file, checked as the registry checks it."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScaffoldError(f"not YAML: {error}") from None
    if not isinstance(document, dict):
        raise ScaffoldError("the spec file must be a mapping of fields")
    try:
        return VersionMetadata.model_validate(document)
    except ValueError as error:
        raise ScaffoldError(str(error)) from None

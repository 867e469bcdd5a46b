"""A first registration file for a model, drafted from its training data for a person to edit:
``vigil models spec --from-csv data.csv --target y`` writes it, ``vigil models register --spec``
reads it.

The file is the registration's metadata (``VersionMetadata``: lineage and the
``MonitoringSpec``) as commented YAML, so every field the registry takes can be written in it
and is checked by the same models before anything is sent.

What is drafted, and how:

- **features**: every column but the target, in the file's order; numeric when every non-empty
  value is a finite number, else categorical; nullable when a value is missing.
- **classes**: the target's values; the positive class (what precision and recall are about) is
  the one given, else the rarest.
- **baselines and thresholds**: the rows are split as the retrainer splits them (a stratified
  quarter held out, seed 0, :func:`services.retrainer.training.split`); the model measured is
  the person's own artifact if given, else a reference pipeline trained on the other rows
  (the retrainer's default recipe). Each watched metric's baseline is its value on the held-out
  rows; its threshold is the edge of a 95 % bootstrap interval of that value on the healthy
  side's far end (2.5th percentile where higher is better, 97.5th where lower is), i.e. a value
  sampling noise alone reaches rarely on that many rows, and at least 0.05 from the baseline.
  Production windows are smaller or larger than the held-out split: the person should look at
  it.
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

from contracts.drift import FeatureKind
from contracts.registry import MetricDirection, MonitoringSpec
from services.retrainer.api import VersionMetadata
from services.retrainer.gate import metric_value
from services.retrainer.recipes import Recipe
from services.retrainer.training import Scores, fit, score, split
from services.retrainer.training_data import parse_csv

__all__ = [
    "Draft",
    "ScaffoldError",
    "draft_metadata",
    "metadata_yaml",
    "read_metadata",
    "reorder_training_csv",
]

_LOWER_IS_BETTER = frozenset({"log_loss", "low_confidence_rate"})
_RESAMPLES = 500
_MIN_MARGIN = 0.05
"""A proposed threshold is at least this far from its baseline (a perfect held-out score has no
bootstrap spread, and any single miss would alert)."""


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


def draft_metadata(
    content: bytes,
    *,
    target: str,
    key_metric: str = "recall",
    positive_class: str | None = None,
    dataset_name: str = "training-data",
    estimator: Any | None = None,
    owners: tuple[str, ...] = (),
) -> Draft:
    """Draft the registration metadata of a model trained on ``content`` (CSV with a header).

    ``estimator``: the person's fitted model, measured on the held-out rows; ``None``: a
    reference pipeline is trained on the other rows and measured instead.
    """
    header, body = _columns(content)
    if target not in header:
        raise ScaffoldError(f"no column {target!r}; columns: {', '.join(header)}")
    if len(header) < 2:
        raise ScaffoldError("the file needs at least one feature column beside the target")
    counts = Counter(row[header.index(target)] for row in body)
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
        "# and at least 0.05 from it (services/retrainer/spec_scaffold.py).",
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

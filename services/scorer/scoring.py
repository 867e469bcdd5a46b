"""Scoring a batch, pure: route each request, check its features, one ``predict_proba`` (a
classifier) or ``predict`` (a regressor, ``task: regression``) per version, and one result per
(request, version that scored it).

A batch is scored against one snapshot of the deployments, so every result names the version,
variant and deployment revision that really produced it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

import numpy as np

from contracts.registry import Deployment, ModelTask, MonitoringSpec, ServedVersion
from contracts.values import Features, Variant
from services.runtime.model_inputs import as_model_input
from services.scorer.features import FeatureLayout, FeatureProblem, feature_problems, to_matrix
from services.scorer.routing import route

__all__ = [
    "Item",
    "LoadedVersion",
    "NotLoadedError",
    "Refusal",
    "Result",
    "Scored",
    "score_batch",
]


@dataclass(frozen=True)
class Item:
    """One request to score."""

    model: str
    request_id: str
    entity_id: str | None
    features: Features
    event_id: UUID | None = None

    @property
    def sticky_id(self) -> str:
        """The id the traffic split sticks to: the entity, else the request."""
        return self.entity_id if self.entity_id is not None else self.request_id


@dataclass(frozen=True)
class LoadedVersion:
    """A version ready to score: its spec, its estimator and its classes as labels."""

    model: str
    version: int
    spec: MonitoringSpec
    estimator: Any
    classes: list[str]

    @cached_property
    def layout(self) -> FeatureLayout:
        """The spec's features as plain tuples, for the per-request checks."""
        return FeatureLayout.of(self.spec)


@dataclass(frozen=True)
class Scored:
    """One version's answer for one request: a class with its probabilities (a classifier), or
    a finite number, ``predicted_value`` (a regressor; the class fields are then empty)."""

    index: int
    model: str
    version: int
    variant: Variant
    served: bool
    revision: int
    predicted_class: str = ""
    probabilities: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0
    predicted_value: float | None = None


@dataclass(frozen=True)
class Refusal:
    """A request that cannot be scored, and why."""

    index: int
    message: str
    unknown_model: bool = False
    problems: tuple[FeatureProblem, ...] = ()


@dataclass(frozen=True)
class Result:
    """Everything a batch produced: answers in request order, and refusals."""

    scored: list[Scored]
    refused: list[Refusal]


_A = TypeVar("_A")


class NotLoadedError(RuntimeError):
    """A deployed version is not loaded (a bug or a race): retry rather than refuse."""


class _Task(NamedTuple):  # a tuple: one is made per request and version
    row: int
    version: ServedVersion
    variant: Variant
    served: bool
    revision: int


def score_batch(
    items: Sequence[Item],
    deployments: Mapping[str, Deployment],
    loaded: Callable[[str, int], LoadedVersion | None],
) -> Result:
    """Score a batch with one snapshot of the deployments."""
    refused: list[Refusal] = []
    groups: dict[tuple[str, int], list[_Task]] = defaultdict(list)
    versions: dict[tuple[str, int], LoadedVersion] = {}

    def version_of(model: str, number: int) -> LoadedVersion:
        key = (model, number)
        found = versions.get(key)
        if found is None:
            found = versions[key] = _require(loaded, model, number)
        return found

    for index, item in enumerate(items):
        deployment = deployments.get(item.model)
        chosen = route(item.model, deployment, item.sticky_id) if deployment else None
        if deployment is None or chosen is None:
            refused.append(
                Refusal(index, f"unknown model {item.model!r}: it is not deployed", True)
            )
            continue
        tasks = [_Task(index, chosen.served, chosen.variant, True, deployment.revision)]
        if chosen.shadow is not None:
            tasks.append(
                _Task(index, chosen.shadow, Variant.CHALLENGER, False, deployment.revision)
            )
        problems = _problems(item, [version_of(item.model, t.version.version) for t in tasks])
        if problems:
            refused.append(
                Refusal(
                    index,
                    f"request {item.request_id!r} does not fit {item.model}: "
                    + "; ".join(f"features.{p.feature}: {p.message}" for p in problems),
                    problems=tuple(problems),
                )
            )
            continue
        for task in tasks:
            groups[(item.model, task.version.version)].append(task)

    scored: list[Scored] = []
    failed: dict[int, str] = {}
    for (model, number), tasks in groups.items():
        version = version_of(model, number)
        rows = [items[task.row].features for task in tasks]
        if version.spec.task is ModelTask.REGRESSION:
            for task, value in zip(tasks, _predict(version, rows, _values), strict=True):
                if isinstance(value, str):
                    failed.setdefault(task.row, f"{model} v{number} cannot score it: {value}")
                    continue
                scored.append(
                    Scored(
                        index=task.row,
                        model=model,
                        version=number,
                        variant=task.variant,
                        served=task.served,
                        revision=task.revision,
                        predicted_value=value,
                    )
                )
            continue
        classes = version.classes
        for task, answer in zip(tasks, _predict(version, rows, _probabilities), strict=True):
            if isinstance(answer, str):
                failed.setdefault(task.row, f"{model} v{number} cannot score it: {answer}")
                continue
            row, top = answer
            scored.append(
                Scored(
                    index=task.row,
                    model=model,
                    version=number,
                    variant=task.variant,
                    served=task.served,
                    revision=task.revision,
                    predicted_class=classes[top],
                    probabilities=dict(zip(classes, row, strict=True)),
                    confidence=row[top],
                )
            )
    if failed:
        scored = [s for s in scored if s.index not in failed]
        refused.extend(
            Refusal(index, f"request {items[index].request_id!r}: {why}")
            for index, why in failed.items()
        )
        refused.sort(key=lambda refusal: refusal.index)
    scored.sort(key=lambda s: (s.index, not s.served))
    return Result(scored, refused)


def _predict(
    version: LoadedVersion,
    rows: list[Features],
    answer: Callable[[LoadedVersion, list[Features]], list[_A]],
) -> list[_A | str]:
    """Return each row's answer (class probabilities, or a number); if the model refuses the
    batch (an unseen category, say), score the rows one by one and return the error for the rows
    it refuses."""
    try:
        return list(answer(version, rows))
    except Exception:  # the model's own validation: find the rows it refuses
        pass
    results: list[_A | str] = []
    for row in rows:
        try:
            results.extend(answer(version, [row]))
        except Exception as error:
            results.append(f"{type(error).__name__}: {error}")
    return results


def _probabilities(
    version: LoadedVersion, rows: list[Features]
) -> list[tuple[list[float], int] | str]:
    """A classifier's probabilities per row with the index of the likeliest class, found for
    the whole batch at once; a row with a NaN or infinite probability is that row's failure (no
    event can carry it), not the batch's."""
    matrix = as_model_input(
        version.estimator, version.spec, to_matrix(version.spec, rows, version.layout)
    )
    probabilities = np.asarray(version.estimator.predict_proba(matrix), dtype=np.float64)
    if probabilities.shape != (len(rows), len(version.classes)):
        raise ValueError(f"predict_proba returned shape {probabilities.shape}")
    finite: list[bool] = np.isfinite(probabilities).all(axis=1).tolist()  # type: ignore[assignment]  # a 1-d array: a list
    tops: list[int] = np.argmax(probabilities, axis=1).tolist()  # the first of equals
    return [
        (row, top) if ok else f"the model predicted non-finite probabilities ({row})"
        for row, top, ok in zip(probabilities.tolist(), tops, finite, strict=True)
    ]


def _values(version: LoadedVersion, rows: list[Features]) -> list[float | str]:
    """A regressor's numbers; a NaN or infinity is that row's failure, not a value: no event
    can carry it, and a consumer could not compute an error from it."""
    matrix = as_model_input(
        version.estimator, version.spec, to_matrix(version.spec, rows, version.layout)
    )
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is checked for below
        values = np.asarray(version.estimator.predict(matrix), dtype=np.float64)
    if values.shape != (len(rows),):
        raise ValueError(f"predict returned shape {values.shape}, not one number per row")
    return [
        value if math.isfinite(value) else f"the model predicted a non-finite value ({value})"
        for value in values.tolist()
    ]


def _require(
    loaded: Callable[[str, int], LoadedVersion | None], model: str, number: int
) -> LoadedVersion:
    version = loaded(model, number)
    if version is None:
        raise NotLoadedError(f"{model} v{number} is deployed but not loaded")
    return version


def _problems(item: Item, versions: list[LoadedVersion]) -> list[FeatureProblem]:
    if all(version.layout.plainly_fits(item.features) for version in versions):
        return []
    problems: list[FeatureProblem] = []
    for version in versions:
        for problem in feature_problems(version.spec, item.features, version.layout):
            if problem not in problems:
                problems.append(problem)
    return problems

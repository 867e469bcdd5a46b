"""Seeded data for the drift detector's tests: profiles, windows, training CSVs, predictions."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from datetime import timedelta

import numpy as np

from contracts import FeatureKind, FeatureSpec, MonitoringSpec, PredictionMade, Variant
from services.drift_detector.encoding import MISSING, FeatureBatch
from services.drift_detector.profiles import ReferenceProfile, build_profile
from tests.factories import T0, make_spec

LEVELS = ("a", "b", "c")
LEVEL_SHARES = (0.5, 0.3, 0.2)


def numeric_names(k: int) -> list[str]:
    return [f"x{i}" for i in range(k)]


def correlated(rng: np.random.Generator, rows: int, k: int, rho: float = 0.0) -> np.ndarray:
    """Standard normal columns with pairwise correlation ``rho``."""
    shared = rng.normal(size=(rows, 1))
    values: np.ndarray = np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.normal(size=(rows, k))
    return values


def numeric_profile(
    reference: np.ndarray, *, model: str = "m", version: int = 1, max_rows: int = 5000
) -> ReferenceProfile:
    names = numeric_names(reference.shape[1])
    return build_profile(
        max_rows=max_rows,
        model=model,
        version=version,
        dataset_digest="sha256:" + "0" * 64,
        feature_order=names,
        numeric={name: reference[:, i] for i, name in enumerate(names)},
        categorical={},
    )


def numeric_batch(values: np.ndarray, scores: np.ndarray | None = None) -> FeatureBatch:
    rows = values.shape[0]
    return FeatureBatch(
        numeric=values,
        categorical=np.zeros((rows, 0), dtype=np.int64),
        unseen_text=np.full((rows, 0), None, dtype=object),
        scores=scores,
    )


def categories(
    rng: np.random.Generator, rows: int, shares: Sequence[float] = LEVEL_SHARES
) -> list[str | None]:
    return [str(level) for level in rng.choice(LEVELS, size=rows, p=list(shares))]


def mixed_profile(rng: np.random.Generator, rows: int = 3000) -> ReferenceProfile:
    """Two numeric features and one categorical ``device``."""
    values = rng.normal(size=(rows, 2))
    return build_profile(
        model="m",
        version=1,
        dataset_digest="sha256:" + "1" * 64,
        feature_order=["x0", "x1", "device"],
        numeric={"x0": values[:, 0], "x1": values[:, 1]},
        categorical={"device": categories(rng, rows)},
    )


def mixed_batch(
    profile: ReferenceProfile, values: np.ndarray, devices: Sequence[str | None]
) -> FeatureBatch:
    codes = profile.categorical.level_codes()[0]
    column = np.array([MISSING if d is None else codes.get(d, -2) for d in devices])
    unseen = np.array(
        [d if d is not None and d not in codes else None for d in devices], dtype=object
    )
    return FeatureBatch(
        numeric=values, categorical=column.reshape(-1, 1), unseen_text=unseen.reshape(-1, 1)
    )


# --- the service: a model version, its training CSV, and predictions ---------------------------

FEATURES = ["x0", "x1", "x2", "x3", "device"]


def service_spec() -> MonitoringSpec:
    return make_spec(
        features=[
            *(FeatureSpec(name=name, kind=FeatureKind.NUMERIC) for name in FEATURES[:4]),
            FeatureSpec(name="device", kind=FeatureKind.CATEGORICAL),
        ],
        label="label",
        classes=["yes", "no"],
        positive_class="yes",
        probe=None,
    )


def training_rows(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, list[str | None]]:
    return correlated(rng, rows, 4, rho=0.5), categories(rng, rows)


def training_csv(rng: np.random.Generator, rows: int = 2000) -> bytes:
    values, devices = training_rows(rng, rows)
    out = io.StringIO()
    out.write(",".join([*FEATURES, "label"]) + "\n")
    for row, device in zip(values, devices, strict=True):
        cells = [f"{v:.6f}" for v in row] + [device or "", "yes" if row[0] > 0 else "no"]
        out.write(",".join(cells) + "\n")
    return out.getvalue().encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def predictions(
    values: np.ndarray,
    devices: Sequence[str | None],
    *,
    model: str,
    version: int = 1,
    start: int = 0,
) -> list[PredictionMade]:
    """One prediction per row, one second apart, with a score that follows ``x0``."""
    events = []
    for i, (row, device) in enumerate(zip(values, devices, strict=True)):
        score = float(1 / (1 + np.exp(-row[0])))
        events.append(
            PredictionMade(
                producer="scorer",
                model=model,
                model_version=version,
                variant=Variant.CHAMPION,
                deployment_revision=1,
                request_id=f"req-{start + i}",
                occurred_at=T0 + timedelta(seconds=start + i),
                features={**{f"x{j}": float(row[j]) for j in range(4)}, "device": device},
                predicted_class="yes" if score >= 0.5 else "no",
                probabilities={"yes": score, "no": 1 - score},
                confidence=max(score, 1 - score),
                latency_ms=1.0,
            )
        )
    return events

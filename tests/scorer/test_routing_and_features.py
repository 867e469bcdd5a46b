"""The scorer's pure parts: sticky traffic split and feature checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contracts import (
    Deployment,
    DeploymentMode,
    FeatureKind,
    FeatureSpec,
    FeatureValue,
    ServedVersion,
    Variant,
)
from services.scorer.features import FeatureProblem, feature_problems, to_matrix
from services.scorer.routing import route
from tests.factories import make_spec

V1, V2, V3 = (
    ServedVersion(version=n, artifact_uri=f"sha256/{n}", artifact_sha256=f"{n:064x}")
    for n in (1, 2, 3)
)


def canary(share: float, challenger: ServedVersion = V2, **overrides: object) -> Deployment:
    return Deployment(
        revision=4, champion=V1, challenger=challenger, challenger_share=share, **overrides
    )


@pytest.mark.parametrize("share", [0.01, 0.1, 0.25, 0.5])
def test_the_observed_share_over_ten_thousand_requests_is_within_one_point(share: float) -> None:
    deployment = canary(share)
    routes = [route("m", deployment, f"req-{n}") for n in range(10_000)]
    to_challenger = sum(1 for r in routes if r is not None and r.variant is Variant.CHALLENGER)
    assert abs(to_challenger / 10_000 - share) <= 0.01


def test_the_same_id_always_lands_on_the_same_variant_for_a_deployment() -> None:
    deployment = canary(0.3)
    first = [route("m", deployment, f"patient-{n}") for n in range(2_000)]
    again = [
        route("m", deployment.model_copy(update={"revision": 9}), f"patient-{n}")
        for n in range(2_000)
    ]
    assert first == again


def test_raising_the_share_only_moves_ids_to_the_challenger() -> None:
    low = [route("m", canary(0.1), f"e-{n}") for n in range(5_000)]
    high = [route("m", canary(0.4), f"e-{n}") for n in range(5_000)]
    for before, after in zip(low, high, strict=True):
        assert before is not None
        assert after is not None
        if before.variant is Variant.CHALLENGER:
            assert after.variant is Variant.CHALLENGER


def test_a_new_challenger_reshuffles_who_is_in_the_canary() -> None:
    with_v2 = [route("m", canary(0.5), f"e-{n}") for n in range(1_000)]
    with_v3 = [route("m", canary(0.5, V3), f"e-{n}") for n in range(1_000)]
    same = sum(
        1
        for a, b in zip(with_v2, with_v3, strict=True)
        if a is not None and b is not None and a.variant == b.variant
    )
    assert 350 < same < 650  # independent halves agree about half of the time


def test_shadow_mode_serves_the_champion_and_scores_the_challenger_aside() -> None:
    deployment = canary(0.5, mode=DeploymentMode.SHADOW)
    routes = [route("m", deployment, f"e-{n}") for n in range(1_000)]
    assert all(r is not None and r.served == V1 and r.variant is Variant.CHAMPION for r in routes)
    shadowed = sum(1 for r in routes if r is not None and r.shadow == V2)
    assert 400 < shadowed < 600


def test_no_champion_means_no_route() -> None:
    assert route("m", Deployment(revision=1, champion=None), "x") is None


def test_features_are_checked_by_name_type_and_missing_value_rules() -> None:
    spec = make_spec()  # mean radius: numeric; mean texture: numeric, nullable
    assert feature_problems(spec, {"mean radius": 14.2, "mean texture": None}) == []
    assert feature_problems(spec, {"mean radius": 14, "mean texture": math.nan}) == []
    cases: dict[str, tuple[dict[str, FeatureValue], list[FeatureProblem]]] = {
        "missing": ({"mean texture": 1.0}, [FeatureProblem("mean radius", "missing")]),
        "extra": (
            {"mean radius": 1.0, "mean texture": 1.0, "colour": "red"},
            [FeatureProblem("colour", "not a feature of the model")],
        ),
        "text": (
            {"mean radius": "big", "mean texture": 1.0},
            [FeatureProblem("mean radius", "expected a number, got str 'big'")],
        ),
        "boolean": (
            {"mean radius": True, "mean texture": 1.0},
            [FeatureProblem("mean radius", "expected a number, got bool True")],
        ),
        "nan": (
            {"mean radius": math.nan, "mean texture": 1.0},
            [FeatureProblem("mean radius", "NaN is not allowed")],
        ),
        "null": (
            {"mean radius": None, "mean texture": 1.0},
            [FeatureProblem("mean radius", "null is not allowed")],
        ),
        "infinite": (
            {"mean radius": math.inf, "mean texture": 1.0},
            [FeatureProblem("mean radius", "infinite values are not allowed")],
        ),
    }
    for name, (features, expected) in cases.items():
        assert feature_problems(spec, features) == expected, name


def test_categorical_features_take_text_and_make_an_object_matrix() -> None:
    spec = make_spec(
        features=[
            FeatureSpec(name="size", kind=FeatureKind.NUMERIC, nullable=True),
            FeatureSpec(name="colour", kind=FeatureKind.CATEGORICAL),
        ],
        probe=None,
    )
    assert feature_problems(spec, {"size": 1.0, "colour": 3}) == [
        FeatureProblem("colour", "expected text (a category), got int 3")
    ]
    matrix = to_matrix(spec, [{"colour": "red", "size": 2.0}])
    assert matrix.dtype == object
    assert matrix.tolist() == [[2.0, "red"]]
    numeric = to_matrix(make_spec(), [{"mean texture": None, "mean radius": 3}])
    assert numeric.dtype == np.float64
    assert numeric[0, 0] == 3.0
    assert math.isnan(numeric[0, 1])

"""Reference profiles: built once from training data, stored and loaded unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contracts import DatasetRef, FeatureValue
from services.drift_detector.detector import evaluate
from services.drift_detector.encoding import encode_rows
from services.drift_detector.profiles import FileProfileStore, ProfileError, build_profile
from services.drift_detector.references import profile_from_training_data
from tests.drift_detector.data import (
    FEATURES,
    digest_of,
    mixed_profile,
    numeric_batch,
    numeric_profile,
    service_spec,
    training_csv,
)
from tests.factories import make_version_record


def test_profiles_round_trip_through_the_file_store(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    profile = mixed_profile(rng).with_scores(rng.uniform(size=300).tolist())
    store = FileProfileStore(tmp_path)
    assert store.load("m", 1) is None
    store.save(profile)
    assert store.path("m", 1) == tmp_path / "drift" / "profiles" / "m" / "v1.npz"
    loaded = store.load("m", 1)
    assert loaded is not None
    assert loaded.feature_order == profile.feature_order
    assert loaded.categorical.levels == profile.categorical.levels
    assert loaded.scores is not None
    usual: dict[str, FeatureValue] = {"x0": 0.5, "x1": -1.0, "device": "b"}
    unusual: dict[str, FeatureValue] = {"x0": 2.0, "x1": 1.0, "device": "z"}
    rows = [usual] * 60 + [unusual] * 40
    scores = [0.9] * 100
    first = evaluate(profile, encode_rows(profile, rows, scores).batch)
    second = evaluate(loaded, encode_rows(loaded, rows, scores).batch)
    assert first.features == second.features
    assert first.score == second.score
    assert first.joint == second.joint


def test_a_profile_from_the_registrys_training_csv_uses_the_specs_feature_kinds() -> None:
    data = training_csv(np.random.default_rng(1), rows=500)
    record = make_version_record(
        spec=service_spec(), dataset=DatasetRef(name="t", version="1", digest=digest_of(data))
    )
    profile = profile_from_training_data(record, data, max_rows=5000)
    assert profile.numeric.names == ("x0", "x1", "x2", "x3")
    assert profile.categorical.names == ("device",)
    assert profile.feature_order == tuple(FEATURES)
    assert profile.categorical.levels == (("a", "b", "c"),)
    assert profile.positive_class == "yes"
    assert profile.rows == 500


def test_large_training_sets_are_sampled_reproducibly() -> None:
    rng = np.random.default_rng(2)
    big = rng.normal(size=(20_000, 2))
    first = numeric_profile(big, max_rows=1000)
    second = numeric_profile(big, max_rows=1000)
    assert first.numeric.rows == 1000
    np.testing.assert_array_equal(first.numeric.sorted_values, second.numeric.sorted_values)


def test_training_data_that_cannot_be_profiled_is_a_clear_error() -> None:
    spec = service_spec()
    record = make_version_record(spec=spec)
    with pytest.raises(ProfileError, match="no column"):
        profile_from_training_data(record, b"x0,x1,label\n1,2,yes\n", max_rows=10)
    bad = b"x0,x1,x2,x3,device,label\n1,2,3,oops,a,yes\n"
    with pytest.raises(ProfileError, match="'x3', data row 1: 'oops' is not a number"):
        profile_from_training_data(record, bad, max_rows=10)
    with pytest.raises(ProfileError, match="no rows"):
        profile_from_training_data(record, b"x0,x1,x2,x3,device,label\n", max_rows=10)
    with pytest.raises(ProfileError, match="empty"):
        profile_from_training_data(record, b"", max_rows=10)


def test_categorical_levels_declared_in_the_spec_are_known_even_if_unseen_in_training() -> None:
    profile = build_profile(
        model="m",
        version=1,
        dataset_digest="sha256:" + "2" * 64,
        feature_order=["device"],
        numeric={},
        categorical={"device": ["a", "b", "a", None]},
        known_levels={"device": ["a", "b", "tablet"]},
    )
    assert profile.categorical.levels == (("a", "b", "tablet"),)
    assert profile.categorical.missing.tolist() == [1]


def test_columns_missing_different_numbers_of_values_are_judged_as_if_profiled_alone() -> None:
    # Training data with a few blanks in one column only is ordinary; such a column's reference
    # is shorter than its neighbours', and each column is judged as if profiled alone.
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(400, 3))
    reference[:7, 0] = np.nan
    reference[100:150, 2] = np.nan
    window = rng.normal(loc=(0.0, 0.4, 0.0), size=(300, 3))
    window[:20, 0] = np.nan
    together = evaluate(numeric_profile(reference), numeric_batch(window))
    for column, judged in enumerate(together.features):
        alone = evaluate(
            numeric_profile(reference[:, [column]]), numeric_batch(window[:, [column]])
        )
        (expected,) = alone.features
        assert (judged.statistic, judged.p_value, judged.effect_size, judged.psi) == (
            expected.statistic,
            expected.p_value,
            expected.effect_size,
            expected.psi,
        )
        assert judged.missing_rate_reference == expected.missing_rate_reference
    assert together.features[0].missing_rate_reference == 7 / 400

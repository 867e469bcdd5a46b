"""Encoding live rows: schema mismatches and wrong types are refused per row, never coerced."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contracts import FeatureValue
from services.drift_detector.encoding import (
    MISSING,
    UNSEEN,
    category_text,
    encode_columns,
    encode_rows,
    numeric_value,
    parse_csv,
)
from services.drift_detector.profiles import ProfileError, ReferenceProfile
from tests.drift_detector.data import mixed_profile


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return mixed_profile(np.random.default_rng(0))


def test_valid_rows_are_encoded_and_bad_rows_are_refused_with_the_reason(
    profile: ReferenceProfile,
) -> None:
    rows: list[dict[str, FeatureValue]] = [
        {"x0": 1.0, "x1": 2, "device": "a"},
        {"x0": 1.0, "x1": 2.0, "device": "a", "colour": "red"},
        {"x0": 1.0, "device": "a"},
        {"x0": "high", "x1": 2.0, "device": "a"},
        {"x0": True, "x1": 2.0, "device": "a"},
        {"x0": math.inf, "x1": 2.0, "device": "a"},
        {"x0": None, "x1": 2.0, "device": None},
        {"x0": 0.0, "x1": 2.0, "device": "tablet"},
        {"x0": 0.0, "x1": 2.0, "device": 1.5},
    ]
    encoded = encode_rows(profile, rows, [0.1] * len(rows))
    assert encoded.accepted == [0, 6, 7]
    assert "unknown ['colour']" in encoded.errors[1]
    assert "absent ['x1']" in encoded.errors[2]
    assert "feature 'x0': expected a number, got str 'high'" in encoded.errors[3]
    assert "got bool True" in encoded.errors[4]
    assert "finite" in encoded.errors[5]
    assert "feature 'device': expected a category" in encoded.errors[8]
    batch = encoded.batch
    assert batch.rows == 3
    assert np.isnan(batch.numeric[1, 0])
    assert batch.categorical[:, 0].tolist() == [0, MISSING, UNSEEN]
    assert batch.unseen_counts()[0] == {"tablet": 1}
    assert batch.scores is not None
    assert batch.scores.tolist() == [0.1, 0.1, 0.1]


def test_categories_name_the_same_level_whether_sent_as_text_or_numbers() -> None:
    assert category_text(1) == category_text("1") == category_text(1.0) == "1"
    assert category_text(True) == "true"
    assert category_text(None) is None
    assert math.isnan(numeric_value(None))
    with pytest.raises(ValueError, match="finite"):
        numeric_value(-math.inf)


def test_csv_columns_encode_the_same_as_rows(profile: ReferenceProfile) -> None:
    table = parse_csv("x0,x1,device\n1.5,2,a\nNA,3,\n0,1,tablet\n", categorical=["device"])
    by_columns = encode_columns(profile, table)
    by_rows = encode_rows(profile, table.records(list(profile.feature_order))).batch
    np.testing.assert_array_equal(by_columns.numeric, by_rows.numeric)
    np.testing.assert_array_equal(by_columns.categorical, by_rows.categorical)
    assert by_columns.unseen_counts() == by_rows.unseen_counts()


def test_csv_files_that_do_not_match_are_refused_clearly(profile: ReferenceProfile) -> None:
    with pytest.raises(ProfileError, match="unknown \\['extra'\\]"):
        encode_columns(profile, parse_csv("x0,x1,device,extra\n1,2,a,3\n", categorical=["device"]))
    with pytest.raises(ProfileError, match="wrong kind"):
        encode_columns(profile, parse_csv("x0,x1,device\n1,2,3\n"))
    with pytest.raises(ProfileError, match="line 3: 2 cells for 3 columns"):
        parse_csv("x0,x1,device\n1,2,a\n1,2\n", categorical=["device"])
    with pytest.raises(ProfileError, match="repeats a column"):
        parse_csv("x0,x0\n1,2\n")
    with pytest.raises(ProfileError, match="no categorical column"):
        parse_csv("x0\n1\n", categorical=["device"])

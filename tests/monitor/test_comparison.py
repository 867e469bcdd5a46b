"""Champion against challenger: no verdict below the minimum sample size; the right verdict on
seeded streams with a known difference; p-values equal the reference tests'."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency
from sklearn.metrics import f1_score, roc_auc_score

from contracts import ComparisonVerdict
from services.monitor.comparison import (
    Comparison,
    Outcome,
    class_metric,
    compare_variants,
    positive_class_metric,
)
from services.monitor.metrics import classification_metrics

CLASSES = ("malignant", "benign")


def outcomes(
    rng: np.random.Generator, n: int, recall: float, *, noise: float = 0.15
) -> list[Outcome]:
    """``n`` labelled predictions, half positive; positives caught with probability ``recall``."""
    made = []
    for index in range(n):
        truth = "malignant" if index % 2 == 0 else "benign"
        right = truth == "benign" or rng.random() < recall
        predicted = truth if right else "benign"
        p = float(np.clip((0.8 if predicted == "malignant" else 0.2) + rng.normal(0, noise), 0, 1))
        made.append(Outcome(truth, predicted, (p, 1 - p), max(p, 1 - p)))
    return made


def compare(
    champion: list[Outcome],
    challenger: list[Outcome],
    metric: str = "recall",
    min_samples: int = 200,
    seed: int = 0,
) -> Comparison:
    return compare_variants(
        champion,
        challenger,
        metric=metric,
        classes=CLASSES,
        positive_class="malignant",
        low_confidence_threshold=0.75,
        min_samples=min_samples,
        alpha=0.05,
        rng=np.random.default_rng(seed),
        resamples=499,
    )


def test_no_winner_is_called_below_the_minimum_sample_size() -> None:
    rng = np.random.default_rng(1)
    champion, challenger = outcomes(rng, 2000, 0.95), outcomes(rng, 300, 0.5)
    result = compare(champion, challenger, min_samples=200)
    # 300 labels but only 150 positives: recall rests on too few observations for a verdict.
    assert result.challenger_samples == 150
    assert result.verdict is ComparisonVerdict.INSUFFICIENT_DATA
    assert result.p_value is None
    assert result.challenger_value == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize(
    ("champion_recall", "challenger_recall", "verdict"),
    [
        (0.95, 0.85, ComparisonVerdict.CHALLENGER_WORSE),
        (0.85, 0.95, ComparisonVerdict.CHALLENGER_BETTER),
        (0.9, 0.9, ComparisonVerdict.NO_SIGNIFICANT_DIFFERENCE),
    ],
)
def test_the_right_variant_wins_on_a_seeded_stream_with_a_known_difference(
    champion_recall: float, challenger_recall: float, verdict: ComparisonVerdict
) -> None:
    rng = np.random.default_rng(7)
    result = compare(outcomes(rng, 2000, champion_recall), outcomes(rng, 2000, challenger_recall))
    assert result.verdict is verdict
    assert result.test == "two-proportion z-test"
    assert result.champion_samples == result.challenger_samples == 1000


def test_the_z_test_p_value_equals_the_uncorrected_chi_square_test() -> None:
    rng = np.random.default_rng(11)
    champion, challenger = outcomes(rng, 800, 0.9), outcomes(rng, 600, 0.86)
    result = compare(champion, challenger)

    def counts(side: list[Outcome]) -> list[int]:
        positives = [o for o in side if o.y_true == "malignant"]
        caught = sum(o.y_pred == "malignant" for o in positives)
        return [caught, len(positives) - caught]

    reference = chi2_contingency([counts(champion), counts(challenger)], correction=False)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)


def test_lower_is_better_metrics_call_the_smaller_value_the_winner() -> None:
    rng = np.random.default_rng(5)
    sharp = outcomes(rng, 1000, 0.95, noise=0.05)
    vague = outcomes(rng, 1000, 0.95, noise=0.35)
    result = compare(vague, sharp, metric="log_loss")
    assert result.test == "Welch's t-test on per-label log loss"
    assert result.challenger_value is not None
    assert result.champion_value is not None
    assert result.challenger_value < result.champion_value
    assert result.verdict is ComparisonVerdict.CHALLENGER_BETTER


@pytest.mark.parametrize("metric", ["f1", "roc_auc"])
def test_metrics_that_are_not_means_use_a_seeded_permutation_test(metric: str) -> None:
    rng = np.random.default_rng(9)
    champion, challenger = outcomes(rng, 400, 0.95), outcomes(rng, 400, 0.6)
    first = compare(champion, challenger, metric=metric, seed=3)
    again = compare(champion, challenger, metric=metric, seed=3)
    assert first.test == "permutation test (499 resamples)"
    assert first.p_value == again.p_value
    assert first.verdict is ComparisonVerdict.CHALLENGER_WORSE


def test_identical_perfect_sides_show_no_difference() -> None:
    perfect = [Outcome("malignant", "malignant", (0.9, 0.1), 0.9)] * 300
    result = compare(perfect, perfect, metric="accuracy")
    assert result.p_value == 1.0
    assert result.verdict is ComparisonVerdict.NO_SIGNIFICANT_DIFFERENCE


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="min_samples"):
        compare([], [], min_samples=0)
    with pytest.raises(ValueError, match="no significance test"):
        compare([], [], metric="auprc")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_vectorised_resample_metrics_equal_scikit_learns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.random(300) < 0.4
    predicted = rng.random(300) < 0.5
    scores = np.round(rng.random(300), 1)  # ties, as real probabilities have
    rows = np.stack([rng.permutation(300)[:200] for _ in range(4)])
    f1 = positive_class_metric("f1", truth, predicted, scores, rows)
    auc = positive_class_metric("roc_auc", truth, predicted, scores, rows)
    for row, f1_value, auc_value in zip(rows, f1, auc, strict=True):
        assert f1_value == pytest.approx(f1_score(truth[row], predicted[row]))
        assert auc_value == pytest.approx(roc_auc_score(truth[row], scores[row]))


WINES = ("class_0", "class_1", "class_2")


def three_classes(rng: np.random.Generator, n: int, right: float) -> list[Outcome]:
    """``n`` labelled predictions over three classes, each right with probability ``right``."""
    made = []
    for _ in range(n):
        truth = int(rng.integers(0, 3))
        predicted = truth if rng.random() < right else int((truth + rng.integers(1, 3)) % 3)
        probabilities = np.full(3, 0.1)
        probabilities[predicted] = 0.8
        made.append(Outcome(WINES[truth], WINES[predicted], tuple(probabilities), 0.8))
    return made


@pytest.mark.parametrize(
    "metric", ["recall_macro", "precision_macro", "f1_macro", "recall[class_1]", "f1[class_2]"]
)
def test_a_multiclass_canary_is_compared_on_macro_and_per_class_metrics(metric: str) -> None:
    """A macro or per-class key metric once raised "no vectorised form" in the permutation
    test, so the monitor dead-lettered the predictions of every canary of a multiclass model."""
    rng = np.random.default_rng(4)
    champion, challenger = three_classes(rng, 300, 0.55), three_classes(rng, 300, 0.95)
    result = compare_variants(
        champion,
        challenger,
        metric=metric,
        classes=WINES,
        positive_class="class_0",
        low_confidence_threshold=0.75,
        min_samples=100,
        alpha=0.05,
        rng=np.random.default_rng(0),
        resamples=299,
    )
    assert result.test == "permutation test (299 resamples)"
    assert result.p_value is not None
    assert result.p_value < 0.05
    assert result.verdict is ComparisonVerdict.CHALLENGER_BETTER


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_vectorised_class_metrics_equal_the_windows_figures(seed: int) -> None:
    """Resampled per-class and macro figures equal what the monitor publishes for a window,
    also where a class is missing from a sample (it leaves the macro mean)."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=60, p=[0.6, 0.35, 0.05])
    predicted = rng.choice(3, size=60, p=[0.5, 0.45, 0.05])
    rows = np.stack([rng.permutation(60)[:15] for _ in range(20)])
    for kind in ("precision", "recall", "f1"):
        macro = class_metric(kind, truth, predicted, [0, 1, 2], rows)
        second = class_metric(kind, truth, predicted, [1], rows)
        for row, macro_value, second_value in zip(rows, macro, second, strict=True):
            figures = classification_metrics(
                [WINES[c] for c in truth[row]],
                [WINES[c] for c in predicted[row]],
                [[1 / 3] * 3] * len(row),
                classes=WINES,
                positive_class="class_0",
            )
            for value, name in ((macro_value, f"{kind}_macro"), (second_value, f"{kind}[class_1]")):
                expected = figures[name]
                if expected is None:
                    assert np.isnan(value), (name, value)
                else:
                    assert value == pytest.approx(expected), name

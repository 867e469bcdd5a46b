"""Label-free estimation benchmark: Vigil's estimator beside NannyML's CBPE on the same windows.

Everything is built here, seeded, from data sets that ship with scikit-learn (no download):

- **breast cancer** (569 rows; positive class: malignant), a logistic regression;
- **digits** (1,797 rows; positive: the digit is 5 or more), a Gaussian naive Bayes (badly
  calibrated scores: what calibration is for);
- **diabetes** (442 rows; positive: progression above the median), a logistic regression.

Each data set is split (stratified, seeded) into training rows (the model is fitted on them),
reference rows (scored: both estimators calibrate on them) and an analysis pool. Windows of
``--window`` rows are drawn from the pool with replacement: uniformly (*no shift*), or with
weights ``exp(beta * z)`` on one standardised feature with ``beta`` rising window by window
(*covariate shift*: P(x) changes, P(y | x) does not, which is CBPE's assumption). Per window the
realised recall (the demo's key metric) is compared with Vigil's estimate
(:func:`services.monitor.estimation.estimate_binary`) and NannyML's (``nannyml.CBPE``, isotonic
calibration, ``chunk_size`` = the window, so the chunks are the same windows).

The no-shift scenarios also run the monitor's alert rule on Vigil's estimate (threshold = the
reference recall minus ``--margin``, raise after 3 consecutive windows below it) and count
false ``estimated_decay`` alerts.

**Regression** (direct loss estimation, :mod:`services.monitor.loss_estimation`): a seeded
``HistGradientBoostingRegressor`` on **diabetes** (the disease progression itself), on
**friedman1** (``make_friedman1``, 3,000 rows, noise 1) and on **friedman1_hetero** (the same
with noise growing with the first feature, so where the model errs depends on the inputs). The
same splits, windows and shifts as above; per window the realised MAE is compared with Vigil's
estimate, NannyML's ``DLE`` (when importable), and the naive baseline that assumes every window
errs as the reference did (``regression_ratio_vigil_to_naive`` < 1 is DLE earning its keep); the
``regression_error_feature_shift_*`` keys repeat this on friedman1_hetero shifted along the very
feature its errors grow with (the random feature above rarely is one that matters). The
no-shift scenarios count false ``estimated_decay`` with the rule above on the MAE (threshold:
the reference MAE times 1 + ``--regression-margin``, lower is better).

NannyML is for this benchmark only (``pip install nannyml statsmodels``; the optional
dependency group ``bench-estimation``). Without it the NannyML figures are ``null``.

``python bench/estimation.py [--quick]``; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, make_friedman1
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from services.monitor.estimation import estimate_binary, fit_calibration
from services.monitor.loss_estimation import estimate_losses, fit_loss_model

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # NannyML phones home otherwise

KEY_METRIC = "recall"
RAISE_AFTER = 3


@dataclass
class Scored:
    """Rows scored by a fitted model: positive-class score, predicted and true positive."""

    features: np.ndarray
    score: np.ndarray
    predicted: np.ndarray
    truth: np.ndarray


@dataclass
class Task:
    name: str
    reference: Scored
    pool: Scored


def _tasks(seed: int) -> list[Task]:
    cancer = load_breast_cancer()
    digits = load_digits()
    diabetes = load_diabetes()
    specs: list[tuple[str, np.ndarray, np.ndarray, Callable[[], Any]]] = [
        (
            "breast_cancer",
            cancer.data,
            cancer.target == 0,
            lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000)),
        ),
        ("digits", digits.data, digits.target >= 5, GaussianNB),
        (
            "diabetes",
            diabetes.data,
            diabetes.target > np.median(diabetes.target),
            lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        ),
    ]
    tasks = []
    for name, x, y, build in specs:
        x_train, x_rest, y_train, y_rest = train_test_split(
            x, y, train_size=0.4, stratify=y, random_state=seed
        )
        x_ref, x_pool, y_ref, y_pool = train_test_split(
            x_rest, y_rest, train_size=0.5, stratify=y_rest, random_state=seed
        )
        model = build().fit(x_train, y_train)

        def scored(features: np.ndarray, truth: np.ndarray, model: Any = model) -> Scored:
            score = model.predict_proba(features)[:, list(model.classes_).index(True)]
            return Scored(features, score, score >= 0.5, truth.astype(bool))

        tasks.append(Task(name, scored(x_ref, y_ref), scored(x_pool, y_pool)))
    return tasks


def _windows(
    task: Task | RegressionTask,
    *,
    shift: bool,
    windows: int,
    size: int,
    rng: np.random.Generator,
    feature: int | None = None,
) -> list[np.ndarray]:
    """Row indices of each window of the pool (with replacement), shifted along ``feature``
    (drawn at random unless given)."""
    pool = task.pool
    drawn_feature = int(rng.integers(pool.features.shape[1]))
    feature = drawn_feature if feature is None else feature
    column = pool.features[:, feature]
    z = (column - column.mean()) / (column.std() or 1.0)
    sign = rng.choice([-1.0, 1.0])
    drawn = []
    for k in range(windows):
        beta = sign * 2.5 * k / max(windows - 1, 1) if shift else 0.0
        weights = np.exp(beta * z)
        drawn.append(rng.choice(len(z), size=size, replace=True, p=weights / weights.sum()))
    return drawn


@dataclass
class Valued:
    """Rows scored by a fitted regressor: features, predicted and true values."""

    features: np.ndarray
    predicted: np.ndarray
    truth: np.ndarray

    def rows(self, index: np.ndarray | None = None) -> list[dict[str, Any]]:
        """The features as the monitor sees them: one dict per row, named columns."""
        x = self.features if index is None else self.features[index]
        return [{f"f{j}": float(v) for j, v in enumerate(row)} for row in x]


@dataclass
class RegressionTask:
    name: str
    reference: Valued
    pool: Valued


def _regression_tasks(seed: int) -> list[RegressionTask]:
    diabetes = load_diabetes()
    x_f, y_f = make_friedman1(n_samples=3000, noise=1.0, random_state=seed)
    noise = np.random.default_rng(seed).normal(size=len(y_f)) * (0.5 + 4.0 * x_f[:, 0])
    specs = [
        ("diabetes", diabetes.data, diabetes.target),
        ("friedman1", x_f, y_f),
        ("friedman1_hetero", x_f, y_f + noise),
    ]
    tasks = []
    for name, x, y in specs:
        x_train, x_rest, y_train, y_rest = train_test_split(x, y, train_size=0.4, random_state=seed)
        x_ref, x_pool, y_ref, y_pool = train_test_split(
            x_rest, y_rest, train_size=0.5, random_state=seed
        )
        model = HistGradientBoostingRegressor(random_state=seed).fit(x_train, y_train)
        tasks.append(
            RegressionTask(
                name,
                Valued(x_ref, model.predict(x_ref), y_ref),
                Valued(x_pool, model.predict(x_pool), y_pool),
            )
        )
    return tasks


def _vigil_dle(task: RegressionTask, windows: list[np.ndarray]) -> list[float | None]:
    reference = task.reference
    model = fit_loss_model(reference.rows(), reference.predicted, reference.truth)
    out: list[float | None] = []
    for rows in windows:
        estimate = estimate_losses(model, task.pool.rows(rows), task.pool.predicted[rows])["mae"]
        out.append(None if estimate is None else estimate.value)
    return out


def _nannyml_dle(task: RegressionTask, windows: list[np.ndarray]) -> list[float | None] | None:
    try:
        import nannyml  # type: ignore[import-untyped,import-not-found,unused-ignore]
        import pandas as pd
    except ImportError:
        return None

    names = [f"f{j}" for j in range(task.pool.features.shape[1])]

    def frame(valued: Valued, index: np.ndarray) -> Any:
        data = pd.DataFrame(valued.features[index], columns=names)
        data["y_pred"] = valued.predicted[index]
        data["y_true"] = valued.truth[index]
        return data

    reference = frame(task.reference, np.arange(len(task.reference.truth)))
    analysis = frame(task.pool, np.concatenate(windows))
    estimator = nannyml.DLE(
        feature_column_names=names,
        y_pred="y_pred",
        y_true="y_true",
        metrics=["mae"],
        chunk_size=len(windows[0]),
        tune_hyperparameters=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(reference)
        result = (
            estimator.estimate(analysis.drop(columns=["y_true"])).filter(period="analysis").to_df()
        )
    values = result[("mae", "value")].tolist()
    if len(values) != len(windows):
        raise RuntimeError(f"NannyML made {len(values)} chunks of {len(windows)} windows")
    return [None if v is None or not np.isfinite(v) else float(v) for v in values]


def _regression(
    seeds: range, per_scenario: int, size: int, margin: float
) -> dict[str, float | int | None]:
    """Vigil's DLE, NannyML's (if importable) and the reference's MAE on the same windows."""
    vigil_errors: list[float] = []
    naive_errors: list[float] = []
    both: tuple[list[float], list[float]] = ([], [])
    false_alarms = windows_total = 0
    nannyml_available = True
    # Shifts along the feature the errors grow with (friedman1_hetero's first): what DLE is for.
    along: tuple[list[float], list[float]] = ([], [])
    for seed in seeds:
        for task in _regression_tasks(seed):
            reference_mae = float(np.mean(np.abs(task.reference.truth - task.reference.predicted)))
            if task.name == "friedman1_hetero":
                rng = np.random.default_rng([seed, 2, 7])
                windows = _windows(
                    task, shift=True, windows=per_scenario, size=size, rng=rng, feature=0
                )
                for rows, mine in zip(windows, _vigil_dle(task, windows), strict=True):
                    truth = float(
                        np.mean(np.abs(task.pool.truth[rows] - task.pool.predicted[rows]))
                    )
                    if mine is not None:
                        along[0].append(abs(mine - truth))
                        along[1].append(abs(reference_mae - truth))
            for shift in (False, True):
                rng = np.random.default_rng([seed, int(shift), len(task.name), 7])
                windows = _windows(task, shift=shift, windows=per_scenario, size=size, rng=rng)
                realised = [
                    float(np.mean(np.abs(task.pool.truth[r] - task.pool.predicted[r])))
                    for r in windows
                ]
                vigil = _vigil_dle(task, windows)
                nanny = _nannyml_dle(task, windows)
                if nanny is None:
                    nannyml_available = False
                    nanny = [None] * len(windows)
                for truth, mine, theirs in zip(realised, vigil, nanny, strict=True):
                    windows_total += 1
                    naive_errors.append(abs(reference_mae - truth))
                    if mine is not None:
                        vigil_errors.append(abs(mine - truth))
                    if mine is not None and theirs is not None:
                        both[0].append(abs(mine - truth))
                        both[1].append(abs(theirs - truth))
                if not shift:
                    # lower is better: an alarm is RAISE_AFTER estimates above the threshold
                    false_alarms += _false_alarms(
                        [None if v is None else -v for v in vigil], -reference_mae * (1 + margin)
                    )
                mine_mae = _mae(
                    [abs(m - t) for m, t in zip(vigil, realised, strict=True) if m is not None]
                )
                naive_mae = _mae([abs(reference_mae - t) for t in realised])
                scenario = f"{task.name}/{'shift' if shift else 'no-shift'}/seed{seed}"
                print(
                    f"{scenario:32s} vigil DLE MAE {mine_mae or float('nan'):.4f}   "
                    f"naive (reference MAE) {naive_mae or float('nan'):.4f}   "
                    f"mean realised MAE {np.mean(realised):.3f}"
                )
    vigil_mae = _mae(both[0]) if nannyml_available else _mae(vigil_errors)
    nannyml_mae = _mae(both[1]) if nannyml_available else None
    naive_mae = _mae(naive_errors)
    return {
        "regression_vigil_mae": None if vigil_mae is None else round(vigil_mae, 5),
        "regression_nannyml_mae": None if nannyml_mae is None else round(nannyml_mae, 5),
        "regression_naive_mae": None if naive_mae is None else round(naive_mae, 5),
        "regression_ratio_vigil_to_naive": (
            None if vigil_mae is None or not naive_mae else round(vigil_mae / naive_mae, 4)
        ),
        "regression_ratio_vigil_to_nannyml": (
            None if vigil_mae is None or not nannyml_mae else round(vigil_mae / nannyml_mae, 4)
        ),
        "regression_windows": windows_total,
        "regression_error_feature_shift_vigil_mae": _rounded(_mae(along[0])),
        "regression_error_feature_shift_naive_mae": _rounded(_mae(along[1])),
        "regression_error_feature_shift_ratio_vigil_to_naive": (
            None if not along[1] else round(float(np.mean(along[0]) / np.mean(along[1])), 4)
        ),
        "regression_false_alarms": false_alarms,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 5)


def _realised(task: Task, rows: np.ndarray) -> float | None:
    truth = task.pool.truth[rows]
    if not truth.any():
        return None
    return float(recall_score(truth, task.pool.predicted[rows]))


def _vigil(task: Task, windows: list[np.ndarray], seed: int) -> list[float | None]:
    calibration = fit_calibration(task.reference.score, task.reference.truth)
    rng = np.random.default_rng(seed)
    out: list[float | None] = []
    for rows in windows:
        estimate = estimate_binary(
            calibration, task.pool.score[rows], task.pool.predicted[rows], rng=rng
        )[KEY_METRIC]
        out.append(None if estimate is None else estimate.value)
    return out


def _nannyml(task: Task, windows: list[np.ndarray]) -> list[float | None] | None:
    try:
        import nannyml  # type: ignore[import-untyped,import-not-found,unused-ignore]
        import pandas as pd
    except ImportError:
        return None

    def frame(score: np.ndarray, predicted: np.ndarray, truth: np.ndarray) -> Any:
        return pd.DataFrame(
            {
                "y_pred_proba": score,
                "y_pred": predicted.astype(int),
                "y_true": truth.astype(int),
            }
        )

    reference = frame(task.reference.score, task.reference.predicted, task.reference.truth)
    rows = np.concatenate(windows)
    analysis = frame(task.pool.score[rows], task.pool.predicted[rows], task.pool.truth[rows])
    estimator = nannyml.CBPE(
        metrics=[KEY_METRIC],
        y_pred_proba="y_pred_proba",
        y_pred="y_pred",
        y_true="y_true",
        problem_type="classification_binary",
        chunk_size=len(windows[0]),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(reference)
        result = (
            estimator.estimate(analysis.drop(columns=["y_true"])).filter(period="analysis").to_df()
        )
    values = result[(KEY_METRIC, "value")].tolist()
    if len(values) != len(windows):
        raise RuntimeError(f"NannyML made {len(values)} chunks of {len(windows)} windows")
    return [None if v is None or not np.isfinite(v) else float(v) for v in values]


def _false_alarms(estimates: list[float | None], threshold: float) -> int:
    """Alerts the monitor's rule would raise: RAISE_AFTER consecutive estimates below the
    threshold raise one alert; the streak then starts again."""
    alarms = streak = 0
    for value in estimates:
        streak = streak + 1 if value is not None and value < threshold else 0
        if streak == RAISE_AFTER:
            alarms += 1
            streak = 0
    return alarms


def _mae(errors: list[float]) -> float | None:
    return float(np.mean(errors)) if errors else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds and windows")
    parser.add_argument("--window", type=int, default=150, help="rows per window")
    parser.add_argument("--margin", type=float, default=0.1, help="threshold below reference")
    parser.add_argument(
        "--regression-margin",
        type=float,
        default=0.2,
        help="MAE threshold: the reference MAE times 1 + this",
    )
    args = parser.parse_args()
    seeds = range(2) if args.quick else range(6)
    per_scenario = 10 if args.quick else 20

    started = time.perf_counter()
    vigil_errors: list[float] = []
    nannyml_errors: list[float] = []
    both_errors: tuple[list[float], list[float]] = ([], [])
    false_alarms = 0
    windows_total = 0
    nannyml_available = True
    rows_out = []
    for seed in seeds:
        for task in _tasks(seed):
            reference_recall = float(recall_score(task.reference.truth, task.reference.predicted))
            for shift in (False, True):
                rng = np.random.default_rng([seed, int(shift), len(task.name)])
                windows = _windows(
                    task, shift=shift, windows=per_scenario, size=args.window, rng=rng
                )
                realised = [_realised(task, rows) for rows in windows]
                vigil = _vigil(task, windows, seed)
                nanny = _nannyml(task, windows)
                if nanny is None:
                    nannyml_available = False
                    nanny = [None] * len(windows)
                for truth, mine, theirs in zip(realised, vigil, nanny, strict=True):
                    if truth is None:
                        continue
                    windows_total += 1
                    if mine is not None:
                        vigil_errors.append(abs(mine - truth))
                    if theirs is not None:
                        nannyml_errors.append(abs(theirs - truth))
                    if mine is not None and theirs is not None:
                        both_errors[0].append(abs(mine - truth))
                        both_errors[1].append(abs(theirs - truth))
                if not shift:
                    false_alarms += _false_alarms(vigil, reference_recall - args.margin)
                scenario = f"{task.name}/{'shift' if shift else 'no-shift'}/seed{seed}"
                mine_mae = _mae(
                    [
                        abs(m - t)
                        for m, t in zip(vigil, realised, strict=False)
                        if m is not None and t is not None
                    ]
                )
                their_mae = _mae(
                    [
                        abs(n - t)
                        for n, t in zip(nanny, realised, strict=False)
                        if n is not None and t is not None
                    ]
                )
                rows_out.append((scenario, mine_mae, their_mae))
                print(
                    f"{scenario:32s} vigil MAE {mine_mae or float('nan'):.4f}   "
                    f"nannyml MAE {their_mae if their_mae is not None else float('nan'):.4f}"
                )
    vigil_mae = _mae(both_errors[0]) if nannyml_available else _mae(vigil_errors)
    nannyml_mae = _mae(both_errors[1]) if nannyml_available else None
    regression = _regression(seeds, per_scenario, args.window, args.regression_margin)
    print(
        json.dumps(
            {
                "benchmark": "estimation",
                "metric": KEY_METRIC,
                "vigil_mae": None if vigil_mae is None else round(vigil_mae, 5),
                "nannyml_mae": None if nannyml_mae is None else round(nannyml_mae, 5),
                "ratio_vigil_to_nannyml": (
                    None
                    if vigil_mae is None or not nannyml_mae
                    else round(vigil_mae / nannyml_mae, 4)
                ),
                "windows": windows_total,
                "window_rows": args.window,
                "no_shift_false_estimated_decay": false_alarms,
                **regression,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()

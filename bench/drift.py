"""Drift detection benchmark: Vigil's detector beside a per-column scipy KS + Bonferroni baseline.

Everything is built here, seeded, from data that ships offline:

- **breast cancer** (scikit-learn, 569 rows x 30 features): a Gaussian copula per class (each
  feature's empirical quantile function, the classes' normal-score correlation) is fitted once and
  sampled, so reference and current samples are independent draws of any size from one
  population, with the real data's skewed marginals, point masses and strong correlations;
- **synthetic**: eight numeric features (correlated normals, lognormal, exponential, uniform,
  Poisson counts) and one categorical ``segment`` with five levels.

Every pair draws a fresh 2,000-row reference (the "training set") and a current window. No-shift
pairs at 100 / 1,000 / 10,000 rows measure false alarms; shifted pairs (1,000 rows) measure
detection per shift type; a gradual ramp measures the delay after onset; 1,000-row x 30-column
windows measure throughput: the verdict alone (``vigil_rows_per_s``), and as the service runs
it, the verdict with the report it publishes (``vigil_with_report_objects_rows_per_s``: the
``DriftReported``, compact on these clean windows; ``vigil_with_report_json_rows_per_s`` adds
the JSON the outbox stores); beside them every feature's full evidence objects
(``vigil_with_full_report_objects_rows_per_s``, what the key above measured before clean
windows published compact reports) and the full report of drifted windows
(``vigil_drifted_window_with_report_rows_per_s``). The baseline (what alibi-detect does by
default) runs on the same pairs in the same run: scipy ``ks_2samp`` per numeric column (missing
values dropped), ``chi2_contingency`` per categorical column, Bonferroni, at alpha 0.05 (its
default) and 0.01 (Vigil's). Vigil runs ``evaluate`` with its default policy; the ramp uses the
service's tracker (fixed 1,000-row windows, with and without the sequential mode).

The throughput figures also come as CPU time per window (``*_cpu_us_per_window``), which a
loaded machine distorts far less than wall time. ``--compare-with CHECKOUT`` times another
checkout's detector (say ``main``'s) against this one's in two worker processes, alternating
10-window rounds so that both see the same load, and reports median CPU per window and the
median paired ratio.

``python bench/drift.py [--quick] [--throughput-only | --compare-with CHECKOUT]``; the last
line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special, stats
from sklearn.datasets import load_breast_cancer

from contracts.monitoring import Window, WindowKind
from services.drift_detector.detector import DriftPolicy, evaluate
from services.drift_detector.encoding import MISSING, UNSEEN, FeatureBatch
from services.drift_detector.profiles import ReferenceProfile, build_profile
from services.drift_detector.reporting import drift_reported
from services.drift_detector.sequential import SequentialPolicy
from services.drift_detector.tracking import TestedWindow, Tracker, TrackerConfig
from services.drift_detector.windows import WindowSpec

REFERENCE_ROWS = 2000
WINDOW_ROWS = 1000
NO_SHIFT_SIZES = (100, 1000, 10_000)
RUNS = 3  # --quick repeats the throughput timing and reports the median
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Sample:
    """Rows of a population: numeric matrix (NaN missing) and categorical text columns."""

    numeric: np.ndarray
    categorical: list[list[str | None]] = field(default_factory=list)


class Copula:
    """One class of the breast-cancer data: empirical marginals joined by a Gaussian copula."""

    def __init__(self, rows: np.ndarray) -> None:
        self.sorted = np.sort(rows, axis=0)
        n = rows.shape[0]
        ranks = stats.rankdata(rows, axis=0)
        scores = special.ndtri((ranks - 0.5) / n)
        correlation = np.corrcoef(scores, rowvar=False)
        self.cholesky = np.linalg.cholesky(correlation + 1e-6 * np.eye(rows.shape[1]))

    def sample(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        z = rng.standard_normal((rows, self.sorted.shape[1])) @ self.cholesky.T
        position = special.ndtr(z) * (self.sorted.shape[0] - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, self.sorted.shape[0] - 1)
        fraction = position - low
        columns = np.arange(self.sorted.shape[1])
        values: np.ndarray = (1 - fraction) * self.sorted[low, columns] + fraction * self.sorted[
            high, columns
        ]
        return values


class BreastCancer:
    """The breast-cancer population; ``malignant_share`` sets the class prior."""

    name = "breast_cancer"

    def __init__(self) -> None:
        data = load_breast_cancer()
        self.numeric_names = [str(name) for name in data.feature_names]
        self.categorical_names: list[str] = []
        self.malignant = Copula(data.data[data.target == 0])
        self.benign = Copula(data.data[data.target == 1])
        self.malignant_share = float(np.mean(data.target == 0))
        big = self.sample(np.random.default_rng(12345), 50_000)
        self.sd = big.numeric.std(axis=0)
        self.median = np.median(big.numeric, axis=0)

    def sample(
        self, rng: np.random.Generator, rows: int, malignant_share: float | None = None
    ) -> Sample:
        share = self.malignant_share if malignant_share is None else malignant_share
        malignant = rng.random(rows) < share
        values = np.empty((rows, len(self.numeric_names)))
        values[malignant] = self.malignant.sample(rng, int(malignant.sum()))
        values[~malignant] = self.benign.sample(rng, int((~malignant).sum()))
        return Sample(values)


class Synthetic:
    """Eight numeric features of different shapes and one categorical ``segment``."""

    name = "synthetic"
    levels = ("A", "B", "C", "D", "E")
    shares = (0.4, 0.25, 0.15, 0.12, 0.08)

    def __init__(self) -> None:
        self.numeric_names = [f"x{i}" for i in range(8)]
        self.categorical_names = ["segment"]
        big = self.sample(np.random.default_rng(54321), 50_000)
        self.sd = big.numeric.std(axis=0)

    def sample(
        self,
        rng: np.random.Generator,
        rows: int,
        shares: tuple[float, ...] | None = None,
        new_level_share: float = 0.0,
    ) -> Sample:
        shared = rng.standard_normal((rows, 1))
        values = np.column_stack(
            [
                0.6 * shared + 0.8 * rng.standard_normal((rows, 4)),
                rng.lognormal(0, 0.7, rows),
                rng.exponential(2.0, rows),
                rng.uniform(0, 10, rows),
                rng.poisson(3, rows).astype(float),
            ]
        )
        segment: list[str | None] = [
            str(level) for level in rng.choice(self.levels, size=rows, p=shares or self.shares)
        ]
        if new_level_share:
            for index in np.flatnonzero(rng.random(rows) < new_level_share):
                segment[index] = "NEW"
        return Sample(values, [segment])


Population = BreastCancer | Synthetic


def profile_of(population: Population, reference: Sample) -> ReferenceProfile:
    names = population.numeric_names + population.categorical_names
    return build_profile(
        model="bench",
        version=1,
        dataset_digest="sha256:" + "0" * 64,
        feature_order=names,
        numeric={n: reference.numeric[:, i] for i, n in enumerate(population.numeric_names)},
        categorical=dict(zip(population.categorical_names, reference.categorical, strict=True)),
        max_rows=REFERENCE_ROWS,
    )


def batch_of(profile: ReferenceProfile, sample: Sample) -> FeatureBatch:
    rows = sample.numeric.shape[0]
    codes = profile.categorical.level_codes()
    categorical = np.empty((rows, len(codes)), dtype=np.int64)
    unseen = np.full((rows, len(codes)), None, dtype=object)
    for j, column in enumerate(sample.categorical):
        for i, text in enumerate(column):
            if text is None:
                categorical[i, j] = MISSING
            elif text in codes[j]:
                categorical[i, j] = codes[j][text]
            else:
                categorical[i, j], unseen[i, j] = UNSEEN, text
    return FeatureBatch(numeric=sample.numeric, categorical=categorical, unseen_text=unseen)


# --- the baseline: per-column scipy tests, Bonferroni ----------------------------------------


def baseline_min_p(reference: Sample, current: Sample) -> tuple[float, int]:
    """Smallest per-column p-value (KS numeric, chi-square categorical) and the column count."""
    p_values = []
    for j in range(reference.numeric.shape[1]):
        x = reference.numeric[:, j]
        y = current.numeric[:, j]
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        p_values.append(stats.ks_2samp(x, y).pvalue if len(y) else 1.0)
    for ref_column, cur_column in zip(reference.categorical, current.categorical, strict=True):
        levels = sorted({v for v in ref_column + cur_column if v is not None})
        table = np.array(
            [[column.count(level) for level in levels] for column in (ref_column, cur_column)]
        )
        table = table[:, table.sum(axis=0) > 0]
        p_values.append(stats.chi2_contingency(table).pvalue if table.shape[1] > 1 else 1.0)
    return float(min(p_values)), len(p_values)


def baseline_drifted(min_p: float, columns: int, alpha: float) -> bool:
    return min_p * columns < alpha


# --- scenarios ---------------------------------------------------------------------------------


Shift = Callable[[np.random.Generator, int], Sample]


def scenarios(bc: BreastCancer, sy: Synthetic) -> dict[str, tuple[Population, Shift]]:
    """Shift type -> (population, draw a shifted window of n rows)."""

    def mean_shift(features: int, size: float) -> Shift:
        def draw(rng: np.random.Generator, rows: int) -> Sample:
            sample = bc.sample(rng, rows)
            chosen = rng.choice(len(bc.numeric_names), size=features, replace=False)
            sample.numeric[:, chosen] += size * bc.sd[chosen]
            return sample

        return draw

    def noise(rng: np.random.Generator, rows: int) -> Sample:
        sample = bc.sample(rng, rows)
        sample.numeric += rng.standard_normal(sample.numeric.shape) * 0.5 * bc.sd
        return sample

    def variance(rng: np.random.Generator, rows: int) -> Sample:
        sample = bc.sample(rng, rows)
        chosen = rng.choice(len(bc.numeric_names), size=5, replace=False)
        centre = bc.median[chosen]
        sample.numeric[:, chosen] = centre + (sample.numeric[:, chosen] - centre) * np.sqrt(1.5)
        return sample

    def knocked_out(fill: float) -> Shift:
        def draw(rng: np.random.Generator, rows: int) -> Sample:
            sample = bc.sample(rng, rows)
            feature = rng.integers(len(bc.numeric_names))
            sample.numeric[rng.random(rows) < 0.1, feature] = fill
            return sample

        return draw

    def prior(rng: np.random.Generator, rows: int) -> Sample:
        return bc.sample(rng, rows, malignant_share=0.6)

    def subset(rng: np.random.Generator, rows: int) -> Sample:
        pool = bc.sample(rng, rows * 4)
        feature = rng.integers(len(bc.numeric_names))
        keep = rng.random(rows * 4) < np.where(
            pool.numeric[:, feature] > bc.median[feature], 0.7, 0.3
        )
        return Sample(pool.numeric[np.flatnonzero(keep)[:rows]])

    def frequency(rng: np.random.Generator, rows: int) -> Sample:
        return sy.sample(rng, rows, shares=(0.3, 0.25, 0.2, 0.15, 0.1))

    def new_level(rng: np.random.Generator, rows: int) -> Sample:
        return sy.sample(rng, rows, new_level_share=0.05)

    table: dict[str, tuple[Population, Shift]] = {
        "gaussian_noise": (bc, noise),
        "variance_change": (bc, variance),
        "knocked_out_zeros": (bc, knocked_out(0.0)),
        "knocked_out_missing": (bc, knocked_out(np.nan)),
        "label_prior_shift": (bc, prior),
        "covariate_shift_subset": (bc, subset),
        "categorical_frequency_shift": (sy, frequency),
        "new_level_5pct": (sy, new_level),
    }
    for features in (1, 5, 15):
        for size in (0.1, 0.25, 0.5):
            table[f"mean_shift_{features}f_{size}sd"] = (bc, mean_shift(features, size))
    return table


@dataclass
class Tally:
    ours: int = 0
    baseline_05: int = 0
    baseline_01: int = 0
    pairs: int = 0

    def add(self, ours: bool, min_p: float, columns: int) -> None:
        self.pairs += 1
        self.ours += ours
        self.baseline_05 += baseline_drifted(min_p, columns, 0.05)
        self.baseline_01 += baseline_drifted(min_p, columns, 0.01)

    def rates(self) -> dict[str, float]:
        return {
            "vigil": self.ours / self.pairs,
            "scipy_ks_bonferroni_005": self.baseline_05 / self.pairs,
            "scipy_ks_bonferroni_001": self.baseline_01 / self.pairs,
        }


def run_pair(
    population: Population,
    draw: Callable[[np.random.Generator, int], Sample],
    rng: np.random.Generator,
    rows: int,
    tally: Tally,
) -> None:
    reference = population.sample(rng, REFERENCE_ROWS)
    current = draw(rng, rows)
    profile = profile_of(population, reference)
    report = evaluate(profile, batch_of(profile, current), DriftPolicy())
    tally.add(report.drifted, *baseline_min_p(reference, current))


# --- gradual ramp --------------------------------------------------------------------------


@dataclass
class RampResult:
    delays: dict[str, list[float]]
    early: dict[str, int]
    """Alarms before the onset, per detector."""


RAMP_SLOPE = 1 / 5000  # sd per row: 1 sd 5,000 rows after onset
RAMP_FEATURES = 5


def ramp_stream(bc: BreastCancer, rng: np.random.Generator, onset: int, length: int) -> np.ndarray:
    values = bc.sample(rng, length).numeric
    chosen = rng.choice(len(bc.numeric_names), size=RAMP_FEATURES, replace=False)
    ramp = np.clip((np.arange(length) - onset) * RAMP_SLOPE, 0, None)
    values[:, chosen] += ramp[:, None] * bc.sd[chosen]
    return values


def first_alarm_tracker(
    profile: ReferenceProfile, values: np.ndarray, sequential: bool
) -> int | None:
    """Row (end of the window) at which the service's tracker first reports drift."""
    config = TrackerConfig(
        window=WindowSpec(size=WINDOW_ROWS, min_rows=100),
        policy=DriftPolicy(min_rows=100),
        sequential=SequentialPolicy() if sequential else None,
        score_reference_rows=100,
    )
    tracker = Tracker(profile, config)
    state = tracker.start()
    for start in range(0, len(values), 250):
        chunk = values[start : start + 250]
        batch = FeatureBatch(
            numeric=chunk,
            categorical=np.zeros((len(chunk), 0), dtype=np.int64),
            unseen_text=np.full((len(chunk), 0), None, dtype=object),
        )
        progress = tracker.advance(
            state, batch, np.arange(start, start + len(chunk), dtype=float), now=NOW
        )
        state = progress.state
        for tested in progress.windows:
            if tested.drifted:
                return int(tested.window.end.timestamp()) + 1
    return None


def first_alarm_baseline(reference: np.ndarray, values: np.ndarray, alpha: float) -> int | None:
    for end in range(WINDOW_ROWS, len(values) + 1, WINDOW_ROWS):
        window = values[end - WINDOW_ROWS : end]
        p = min(
            stats.ks_2samp(reference[:, j], window[:, j]).pvalue for j in range(values.shape[1])
        )
        if p * values.shape[1] < alpha:
            return end
    return None


def measure_ramp(bc: BreastCancer, seeds: int, clean_seeds: int) -> dict[str, object]:
    detectors = ("vigil_sequential", "vigil_fixed_windows", "scipy_ks_bonferroni_005")
    delays: dict[str, list[float]] = {name: [] for name in detectors}
    early = dict.fromkeys(detectors, 0)
    missed = dict.fromkeys(detectors, 0)
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        reference = bc.sample(rng, REFERENCE_ROWS)
        profile = profile_of(bc, reference)
        onset = 3000 + int(rng.integers(0, WINDOW_ROWS))
        values = ramp_stream(bc, rng, onset, onset + 6000)
        alarms = {
            "vigil_sequential": first_alarm_tracker(profile, values, True),
            "vigil_fixed_windows": first_alarm_tracker(profile, values, False),
            "scipy_ks_bonferroni_005": first_alarm_baseline(reference.numeric, values, 0.05),
        }
        for name, row in alarms.items():
            if row is None:
                missed[name] += 1
            elif row <= onset:
                early[name] += 1
            else:
                delays[name].append(row - onset)
    clean_alarms = dict.fromkeys(detectors, 0)
    for seed in range(clean_seeds):
        rng = np.random.default_rng(5000 + seed)
        reference = bc.sample(rng, REFERENCE_ROWS)
        profile = profile_of(bc, reference)
        values = bc.sample(rng, 10_000).numeric
        clean_alarms["vigil_sequential"] += first_alarm_tracker(profile, values, True) is not None
        clean_alarms["vigil_fixed_windows"] += (
            first_alarm_tracker(profile, values, False) is not None
        )
        clean_alarms["scipy_ks_bonferroni_005"] += (
            first_alarm_baseline(reference.numeric, values, 0.05) is not None
        )
    return {
        "median_delay_rows": {
            name: (statistics.median(values) if values else None) for name, values in delays.items()
        },
        "alarmed_before_onset": early,
        "missed": missed,
        "clean_10k_row_streams_with_a_false_alarm": {
            name: count / clean_seeds for name, count in clean_alarms.items()
        },
        "ramp": f"{RAMP_FEATURES} features, +1 sd per 5,000 rows",
        "streams": seeds,
        "clean_streams": clean_seeds,
    }


# --- throughput ----------------------------------------------------------------------------


def measure_throughput(bc: BreastCancer, repeats: int) -> dict[str, float | str]:
    rng = np.random.default_rng(7)
    reference = bc.sample(rng, REFERENCE_ROWS)
    profile = profile_of(bc, reference)
    windows = [bc.sample(rng, WINDOW_ROWS) for _ in range(5)]
    batches = [batch_of(profile, window) for window in windows]

    cpu: dict[str, float] = {}

    def timed(run: Callable[[int], object], count: int, name: str = "") -> float:
        """Wall seconds per call; also this process's CPU seconds per call, under ``name``
        (a loaded machine stretches wall time far more than CPU time)."""
        run(0)
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(count):
            run(i)
        if name:
            cpu[name] = (time.process_time() - cpu_started) / count
        return (time.perf_counter() - started) / count

    drifted_batches = [batch_of(profile, noise_shift(bc, 0.5)(rng, WINDOW_ROWS)) for _ in range(4)]
    if not all(evaluate(profile, batch).drifted for batch in drifted_batches):
        raise RuntimeError("a window meant to drift did not: the drifted-window figure is void")
    window = Window(kind=WindowKind.COUNT, start=NOW, end=NOW, size=WINDOW_ROWS)

    def published(batch: FeatureBatch, serialise: bool = False) -> object:
        """What the service does per tested window: the verdict, then the report it publishes
        (compact on a clean window, full on a drifted one) and, with ``serialise``, the JSON
        the outbox stores."""
        report = evaluate(profile, batch)
        tested = TestedWindow(window, report, None, report.drifted, report.drivers)
        event = drift_reported(profile, tested, producer="drift-detector")
        return event.model_dump_json() if serialise else event

    baseline = timed(lambda i: baseline_min_p(reference, windows[i % 5]), max(repeats // 5, 3))
    ours = timed(lambda i: evaluate(profile, batches[i % 5]).drifted, repeats, "verdict")
    with_report = timed(lambda i: published(batches[i % 5]), repeats, "published")
    with_json = timed(lambda i: published(batches[i % 5], serialise=True), repeats)
    full = timed(lambda i: evaluate(profile, batches[i % 5]).features, repeats)
    drifted = timed(lambda i: published(drifted_batches[i % 4]), max(repeats // 2, 3))
    return {
        "window": f"{WINDOW_ROWS} rows x {len(bc.numeric_names)} columns",
        "vigil_rows_per_s": WINDOW_ROWS / ours,
        "vigil_with_report_objects_rows_per_s": WINDOW_ROWS / with_report,
        "scipy_ks_loop_rows_per_s": WINDOW_ROWS / baseline,
        "speedup": baseline / ours,
        "speedup_with_report_objects": baseline / with_report,
        "vigil_with_report_json_rows_per_s": WINDOW_ROWS / with_json,
        "vigil_with_full_report_objects_rows_per_s": WINDOW_ROWS / full,
        "vigil_drifted_window_with_report_rows_per_s": WINDOW_ROWS / drifted,
        "published_report_speedup_over_full_report_objects": full / with_report,
        "vigil_cpu_us_per_window": cpu["verdict"] * 1e6,
        "vigil_with_report_objects_cpu_us_per_window": cpu["published"] * 1e6,
        "vigil_with_report_objects_cpu_rows_per_s": WINDOW_ROWS / cpu["published"],
    }


def throughput_figures(bc: BreastCancer, quick: bool) -> dict[str, Any]:
    """The throughput figures; --quick repeats the timing three times and reports the median
    of each figure (and every run's published-report rows/s)."""
    timings = [measure_throughput(bc, 60 if quick else 300) for _ in range(RUNS if quick else 1)]
    throughput: dict[str, Any] = {
        key: value if isinstance(value, str) else statistics.median(float(t[key]) for t in timings)
        for key, value in timings[0].items()
    }
    throughput["runs"] = len(timings)
    throughput["vigil_with_report_objects_rows_per_s_runs"] = [
        round(float(t["vigil_with_report_objects_rows_per_s"])) for t in timings
    ]
    return throughput


ROUND_WINDOWS = 10


def serve_rounds() -> None:
    """Worker of --compare-with: per line read, time ROUND_WINDOWS clean windows of the
    published-report path (and as many verdicts) and print the CPU and wall seconds of each."""
    bc = BreastCancer()
    rng = np.random.default_rng(7)
    profile = profile_of(bc, bc.sample(rng, REFERENCE_ROWS))
    batches = [batch_of(profile, bc.sample(rng, WINDOW_ROWS)) for _ in range(5)]
    window = Window(kind=WindowKind.COUNT, start=NOW, end=NOW, size=WINDOW_ROWS)

    def published(batch: FeatureBatch) -> object:
        report = evaluate(profile, batch)
        tested = TestedWindow(window, report, None, report.drifted, report.drivers)
        return drift_reported(profile, tested, producer="drift-detector")

    def timed(run: Callable[[FeatureBatch], object]) -> tuple[float, float]:
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(ROUND_WINDOWS):
            run(batches[i % 5])
        return time.process_time() - cpu_started, time.perf_counter() - started

    for batch in batches:
        published(batch)
    print("ready", flush=True)
    for _ in sys.stdin:
        figures = (*timed(published), *timed(lambda batch: evaluate(profile, batch).drifted))
        print(" ".join(f"{value:.9f}" for value in figures), flush=True)


def _exchange(worker: subprocess.Popen[str], line: str | None) -> str:
    """Send ``line`` to a worker (if any) and return its next line of output."""
    if worker.stdin is None or worker.stdout is None:
        raise RuntimeError("a worker has no pipes")
    if line is not None:
        worker.stdin.write(line)
        worker.stdin.flush()
    return worker.stdout.readline().strip()


def compare(checkout: str, rounds: int) -> dict[str, Any]:
    """Time another checkout's detector (``baseline``) against this one's (``this``), in
    alternating rounds, and report median seconds per window and this one's speed-up."""
    here = str(Path(__file__).resolve().parent.parent)
    workers = {}
    for name, root in (("baseline", str(Path(checkout).resolve())), ("this", here)):
        environment = dict(os.environ, PYTHONPATH=root)
        workers[name] = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=root,
        )
    samples: dict[str, list[list[float]]] = {name: [] for name in workers}
    try:
        for worker in workers.values():
            if _exchange(worker, None) != "ready":
                raise RuntimeError("a worker did not start")
        for round_ in range(rounds):
            # Alternate which goes first, so neither always follows the other.
            order = list(workers) if round_ % 2 == 0 else list(reversed(workers))
            for name in order:
                answer = _exchange(workers[name], "\n").split()
                samples[name].append([float(value) / ROUND_WINDOWS for value in answer])
    finally:
        for worker in workers.values():
            if worker.stdin is not None:
                worker.stdin.close()
            worker.wait(timeout=60)
    keys = ("published_cpu_s", "published_wall_s", "verdict_cpu_s", "verdict_wall_s")
    medians = {
        name: {key: statistics.median(row[i] for row in rows) for i, key in enumerate(keys)}
        for name, rows in samples.items()
    }
    ratios = {
        key: statistics.median(
            base[i] / this[i]
            for base, this in zip(samples["baseline"], samples["this"], strict=True)
        )
        for i, key in enumerate(keys)
    }
    return {
        "benchmark": "drift_compare",
        "window": f"{WINDOW_ROWS} rows x 30 columns",
        "rounds": rounds,
        "windows_per_round": ROUND_WINDOWS,
        "baseline_cpu_us_per_window": {
            key.removesuffix("_cpu_s"): medians["baseline"][key] * 1e6
            for key in keys
            if "cpu" in key
        },
        "this_cpu_us_per_window": {
            key.removesuffix("_cpu_s"): medians["this"][key] * 1e6 for key in keys if "cpu" in key
        },
        "this_published_cpu_rows_per_s": WINDOW_ROWS / medians["this"]["published_cpu_s"],
        "baseline_published_cpu_rows_per_s": WINDOW_ROWS / medians["baseline"]["published_cpu_s"],
        "speedup_over_baseline_paired_median": ratios,
        "load_average": list(os.getloadavg()),
    }


def noise_shift(bc: BreastCancer, sd: float) -> Callable[[np.random.Generator, int], Sample]:
    """Windows with noise of ``sd`` reference standard deviations added: drifted windows."""

    def draw(rng: np.random.Generator, rows: int) -> Sample:
        sample = bc.sample(rng, rows)
        sample.numeric += rng.standard_normal(sample.numeric.shape) * sd * bc.sd
        return sample

    return draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs; under a minute")
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="time the detector only (no detection, false-alarm or ramp figures): for comparing "
        "two versions of the code, run alternately",
    )
    parser.add_argument(
        "--compare-with",
        metavar="CHECKOUT",
        help="time the published-report path of another checkout's code (e.g. main's) against "
        "this one's, alternating small rounds between two worker processes so both see the "
        "same machine load; prints medians and their ratio",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    quick = arguments.quick
    if arguments.worker:
        serve_rounds()
        return
    if arguments.compare_with:
        print(json.dumps(compare(arguments.compare_with, 40 if quick else 150)))
        return
    if arguments.throughput_only:
        print(json.dumps(throughput_figures(BreastCancer(), quick), separators=(",", ":")))
        return
    shifted_seeds, clean_seeds, ramp_seeds, ramp_clean = (
        (5, 12, 5, 5) if quick else (25, 60, 20, 20)
    )
    started = time.perf_counter()
    bc, sy = BreastCancer(), Synthetic()

    detection: dict[str, dict[str, float]] = {}
    overall = Tally()
    for name, (population, draw) in scenarios(bc, sy).items():
        tally = Tally()
        for seed in range(shifted_seeds):
            run_pair(population, draw, np.random.default_rng([seed, len(name)]), WINDOW_ROWS, tally)
        detection[name] = tally.rates()
        overall.ours += tally.ours
        overall.baseline_05 += tally.baseline_05
        overall.baseline_01 += tally.baseline_01
        overall.pairs += tally.pairs
        print(
            f"{name:32s} vigil {tally.ours}/{tally.pairs}  scipy@0.05 "
            f"{tally.baseline_05}/{tally.pairs}  scipy@0.01 {tally.baseline_01}/{tally.pairs}"
        )

    false_alarms = Tally()
    per_size: dict[str, dict[str, float]] = {}
    for rows in NO_SHIFT_SIZES:
        size_tally = Tally()
        for population in (bc, sy):
            for seed in range(clean_seeds):
                rng = np.random.default_rng([seed, rows, len(population.name)])
                run_pair(population, population.sample, rng, rows, size_tally)
        per_size[str(rows)] = size_tally.rates()
        for attribute in ("ours", "baseline_05", "baseline_01", "pairs"):
            setattr(
                false_alarms,
                attribute,
                getattr(false_alarms, attribute) + getattr(size_tally, attribute),
            )
        print(
            f"no shift, {rows:>6} rows                vigil {size_tally.ours}/{size_tally.pairs}  "
            f"scipy@0.05 {size_tally.baseline_05}/{size_tally.pairs}  "
            f"scipy@0.01 {size_tally.baseline_01}/{size_tally.pairs}"
        )

    ramp = measure_ramp(bc, ramp_seeds, ramp_clean)
    print(f"gradual ramp: median delay after onset {ramp['median_delay_rows']}")
    throughput = throughput_figures(bc, quick)
    throughput_runs = throughput.pop("vigil_with_report_objects_rows_per_s_runs")
    print(
        f"throughput on {throughput['window']}: vigil {throughput['vigil_rows_per_s']:,.0f} rows/s "
        f"({throughput['vigil_with_report_objects_rows_per_s']:,.0f} with the published report, "
        f"{throughput['vigil_with_full_report_objects_rows_per_s']:,.0f} with full reports), "
        f"scipy KS loop {throughput['scipy_ks_loop_rows_per_s']:,.0f} rows/s, "
        f"x{throughput['speedup']:.1f}"
    )
    figures = {
        "benchmark": "drift",
        "quick": quick,
        "shifted_pairs": overall.pairs,
        "no_shift_pairs": false_alarms.pairs,
        "detection_rate": overall.rates(),
        "false_alarm_rate": false_alarms.rates(),
        "false_alarm_rate_by_rows": per_size,
        "detection_by_shift": detection,
        "gradual_ramp": ramp,
        "throughput": throughput,
        "vigil_with_report_objects_rows_per_s_runs": throughput_runs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(figures, separators=(",", ":"), default=float))


if __name__ == "__main__":
    main()

"""Diagnose drift on a model version and attach the report to its incident (level two).

The report puts the version's training data (from the registry) beside its recent live inputs
(from `predictions`): per feature the mean, spread, quantiles and missing rate of both, the
two-sample KS statistic, and the shift in reference standard deviations; the features ranked by
how far they moved; the drift detector's latest verdict (from `drift`); and the model's metrics
on labelled live data sliced by quartile of the most shifted feature (from `labels`), which shows
where the model now fails. With --verify it instead checks the report is on the timeline.

Exit codes:
  0  the report is attached (with --verify: it is on the incident's timeline)
  1  with --verify: the report is not on the timeline
  2  bad arguments or environment
  3  not enough live data to compare (fewer than --min-rows predictions of the version)
  4  a Vigil API refused or could not be reached
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, recall_score
from vigil_runbook import DONE, NOT_APPLICABLE, UNHEALTHY, api, fail, read_events

from contracts import (
    DriftReported,
    Envelope,
    FeatureKind,
    LabelRecorded,
    ModelVersionRecord,
    PredictionMade,
    Topic,
)

TITLE = "drift diagnosis"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--incident", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", type=int, help="default: the incident's version")
    parser.add_argument("--rows", type=int, default=1000, help="recent predictions to compare")
    parser.add_argument("--min-rows", type=int, default=50)
    parser.add_argument("--verify", action="store_true")
    args = parser.parse_args()
    run_id = os.environ.get("VIGIL_RUN_ID", "manual")

    if args.verify:
        with api("incident-log") as incidents:
            timeline = incidents.get(f"/incidents/{args.incident}/timeline")
        attached = [
            entry
            for entry in timeline
            if entry["action"] == "report_attached"
            and entry["details"].get("report", {}).get("run_id") == run_id
        ]
        if not attached:
            fail(UNHEALTHY, f"no report of run {run_id} on {args.incident}'s timeline")
        print(f"report of run {run_id} is on {args.incident}'s timeline")
        raise SystemExit(DONE)

    with api("incident-log") as incidents:
        incident = incidents.get(f"/incidents/{args.incident}")
    version = args.version or incident["model_version"]
    if version is None:
        with api("registry") as registry:
            version = registry.get(f"/models/{args.model}/deployment")["champion"]["version"]
    with api("registry") as registry:
        record = ModelVersionRecord.model_validate(
            registry.get(f"/models/{args.model}/versions/{version}")
        )
        training = registry.get_bytes(f"/datasets/{record.dataset.digest}")
    reference = _columns(training.decode())

    def of_version(event: Envelope) -> bool:
        return (
            isinstance(event, PredictionMade)
            and event.model == args.model
            and event.model_version == version
            and event.served
        )

    predictions = [
        e
        for e in read_events(Topic.PREDICTIONS, of_version, until=lambda _: False, timeout_s=5.0)
        if isinstance(e, PredictionMade)
    ][-args.rows :]
    if len(predictions) < args.min_rows:
        fail(NOT_APPLICABLE, f"only {len(predictions)} live predictions of v{version}")
    wanted = {p.request_id for p in predictions}
    labels = {
        e.request_id: e.label
        for e in read_events(
            Topic.LABELS,
            lambda e: (
                isinstance(e, LabelRecorded) and e.model == args.model and e.request_id in wanted
            ),
            until=lambda _: False,
            timeout_s=5.0,
        )
        if isinstance(e, LabelRecorded)
    }
    reports = [
        e
        for e in read_events(
            Topic.DRIFT,
            lambda e: (
                isinstance(e, DriftReported)
                and e.model == args.model
                and e.model_version == version
            ),
            until=lambda _: False,
            timeout_s=5.0,
        )
        if isinstance(e, DriftReported)
    ]

    features = _compare(record, reference, predictions)
    ranked = sorted(
        (f for f in features if f.get("ks") is not None), key=lambda f: f["ks"], reverse=True
    )
    slices = _slices(record, predictions, labels, ranked[0]["feature"] if ranked else None)
    report: dict[str, Any] = {
        "run_id": run_id,
        "model": args.model,
        "version": version,
        "reference": {
            "dataset": record.dataset.version,
            "rows": len(next(iter(reference.values()), [])),
        },
        "current": {
            "predictions": len(predictions),
            "labelled": sum(p.request_id in labels for p in predictions),
        },
        "top_drifted": [f["feature"] for f in ranked[:5]],
        "detector": (
            {
                "drifted": reports[-1].drifted,
                "drivers": list(reports[-1].drivers),
                "window": reports[-1].window.model_dump(mode="json"),
            }
            if reports
            else None
        ),
        "features": features,
        "slices": slices,
    }
    with api("incident-log") as incidents:
        incidents.post(
            f"/incidents/{args.incident}/reports",
            {"title": f"{TITLE}: {args.model} v{version}", "report": report},
        )
    print(f"{TITLE} of {args.model} v{version}: top drifted {', '.join(report['top_drifted'])}")
    for row in slices:
        print(f"  {row['slice']}: {row['labelled']} labelled, recall {row['recall']}")
    raise SystemExit(DONE)


def _columns(text: str) -> dict[str, list[str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return {name: [row[name] for row in rows] for name in (rows[0].keys() if rows else [])}


def _numbers(values: list[Any]) -> np.ndarray:
    out = []
    for value in values:
        try:
            out.append(float(value) if value not in ("", None) else math.nan)
        except (TypeError, ValueError):
            out.append(math.nan)
    return np.array(out, dtype=float)


def _summary(values: np.ndarray) -> dict[str, float | None]:
    present = values[~np.isnan(values)]
    if present.size == 0:
        return {"mean": None, "std": None, "p05": None, "p50": None, "p95": None, "missing": 1.0}
    p05, p50, p95 = np.quantile(present, [0.05, 0.5, 0.95])
    return {
        "mean": round(float(present.mean()), 6),
        "std": round(float(present.std()), 6),
        "p05": round(float(p05), 6),
        "p50": round(float(p50), 6),
        "p95": round(float(p95), 6),
        "missing": round(1 - present.size / values.size, 6),
    }


def _compare(
    record: ModelVersionRecord, reference: dict[str, list[str]], predictions: list[PredictionMade]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for spec in record.spec.features:
        current_raw = [p.features.get(spec.name) for p in predictions]
        if spec.kind is FeatureKind.CATEGORICAL:
            ref_levels = {v for v in reference.get(spec.name, []) if v != ""}
            new = sorted({str(v) for v in current_raw if v is not None} - ref_levels)
            rows.append(
                {"feature": spec.name, "kind": "categorical", "new_levels": new, "ks": None}
            )
            continue
        ref = _numbers(reference.get(spec.name, []))
        cur = _numbers(current_raw)
        ref_present, cur_present = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
        ks = (
            float(stats.ks_2samp(ref_present, cur_present).statistic)
            if ref_present.size and cur_present.size
            else None
        )
        scale = float(ref_present.std()) if ref_present.size else 0.0
        shift = (
            (float(cur_present.mean()) - float(ref_present.mean())) / scale
            if scale > 0 and cur_present.size
            else None
        )
        rows.append(
            {
                "feature": spec.name,
                "kind": "numeric",
                "reference": _summary(ref),
                "current": _summary(cur),
                "ks": None if ks is None else round(ks, 6),
                "shift_in_reference_sd": None if shift is None else round(shift, 4),
            }
        )
    return rows


def _slices(
    record: ModelVersionRecord,
    predictions: list[PredictionMade],
    labels: dict[str, str],
    feature: str | None,
) -> list[dict[str, Any]]:
    labelled = [p for p in predictions if p.request_id in labels]
    if feature is None or not labelled:
        return []
    values = _numbers([p.features.get(feature) for p in labelled])
    present = values[~np.isnan(values)]
    if present.size < 4:
        return []
    cuts = np.quantile(present, [0.25, 0.5, 0.75])
    positive = record.spec.positive_class
    out: list[dict[str, Any]] = []
    for index, (low, high) in enumerate(zip([-math.inf, *cuts], [*cuts, math.inf], strict=True)):
        members = [p for p, v in zip(labelled, values, strict=True) if low < v <= high]
        truth = [labels[p.request_id] for p in members]
        guess = [p.predicted_class for p in members]
        out.append(
            {
                "slice": f"{feature} quartile {index + 1} ({_edge(low)} .. {_edge(high)}]",
                "labelled": len(members),
                "accuracy": round(float(accuracy_score(truth, guess)), 4) if members else None,
                "recall": (
                    round(float(recall_score(truth, guess, pos_label=positive, zero_division=0)), 4)
                    if positive in truth
                    else None
                ),
            }
        )
    return out


def _edge(value: float) -> str:
    return "-inf" if value == -math.inf else "inf" if value == math.inf else f"{value:.4g}"


if __name__ == "__main__":
    main()

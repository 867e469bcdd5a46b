"""``vigil drift``: run the drift detector on files, without the service.

``vigil drift compare --reference ref.csv --current cur.csv [--categorical col,...] [--json]``
profiles the reference file exactly as the service profiles a training dataset, tests the current
file as one window with the same detector and policy, and prints the report: a table for people,
or JSON for scripts. The exit status is 0 when it ran (drift or not; with ``--fail-on-drift``, 1
when it found drift, so a CI job can stop on it) and 2 when the input cannot be tested, with the
reason.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from contracts.drift import Correction, FeatureDrift
from services.drift_detector.detector import (
    DriftPolicy,
    DriftReport,
    NumericTest,
    WindowError,
    evaluate,
)
from services.drift_detector.encoding import encode_columns, parse_csv
from services.drift_detector.profiles import ProfileError, ReferenceProfile, build_profile
from services.runtime.command_line import ExitCode

__all__ = ["app", "compare_files"]

app = typer.Typer(help="Detect drift between data sets.", no_args_is_help=True)


@app.callback()
def drift() -> None:
    """Detect drift between data sets (the drift detector, without the service)."""


def compare_files(
    reference: Path, current: Path, categorical: list[str], policy: DriftPolicy
) -> tuple[ReferenceProfile, DriftReport]:
    """Profile ``reference`` and test ``current`` against it as one window."""
    reference_data = reference.read_bytes()
    reference_table = parse_csv(reference_data, categorical=categorical, source=str(reference))
    profile = build_profile(
        model="compare",
        version=1,
        dataset_digest="sha256:" + hashlib.sha256(reference_data).hexdigest(),
        feature_order=reference_table.header,
        numeric=reference_table.numeric,
        categorical=reference_table.categorical,
        max_rows=max(reference_table.rows, 2),
    )
    current_table = parse_csv(current.read_bytes(), categorical=categorical, source=str(current))
    return profile, evaluate(profile, encode_columns(profile, current_table), policy)


@app.command()
def compare(
    reference: Path = typer.Option(
        ..., exists=True, dir_okay=False, readable=True, help="Reference CSV (header row)."
    ),
    current: Path = typer.Option(
        ..., exists=True, dir_okay=False, readable=True, help="Current CSV, same columns."
    ),
    categorical: str = typer.Option(
        "", help="Comma-separated categorical columns; the others must be numbers."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    alpha: float = typer.Option(0.01, min=0.0, max=1.0, help="Family-wise significance level."),
    correction: Correction = typer.Option(
        Correction.BONFERRONI, help="Multiple-testing correction."
    ),
    numeric_test: NumericTest = typer.Option(
        NumericTest.CRAMERVONMISES, help="Test deciding numeric distributions."
    ),
    fail_on_drift: bool = typer.Option(
        False, "--fail-on-drift", help="Exit 1 when CURRENT drifted (to gate a CI job)."
    ),
) -> None:
    """Test whether CURRENT drifted from REFERENCE, feature by feature and as a whole."""
    console = Console()
    columns = [name.strip() for name in categorical.split(",") if name.strip()]
    try:
        policy = DriftPolicy(alpha=alpha, correction=correction, numeric_test=numeric_test)
        profile, report = compare_files(reference, current, columns, policy)
    except (ProfileError, WindowError, ValueError) as error:
        Console(stderr=True).print(f"[red]cannot compare:[/red] {error}")
        raise typer.Exit(ExitCode.USAGE) from None
    if as_json:
        typer.echo(json.dumps(report_document(profile, report), indent=2))
    else:
        _print_report(console, report)
    if fail_on_drift and report.drifted:
        raise typer.Exit(ExitCode.FAILED)


def report_document(profile: ReferenceProfile, report: DriftReport) -> dict[str, Any]:
    """The report as a JSON-ready document."""
    return {
        "drifted": report.drifted,
        "drivers": list(report.drivers),
        "rows": report.rows,
        "reference_rows": profile.rows,
        "hypotheses": report.hypotheses,
        "alpha": report.policy.alpha,
        "correction": report.policy.correction.value,
        "features": [feature.model_dump(mode="json") for feature in report.features],
        "joint": None if report.joint is None else report.joint.model_dump(mode="json"),
    }


def _print_report(console: Console, report: DriftReport) -> None:
    verdict = (
        "[bold red]drift[/bold red]" if report.drifted else "[bold green]no drift[/bold green]"
    )
    console.print(
        f"{verdict}: {report.rows} rows tested, {report.hypotheses} hypotheses, "
        f"{report.policy.correction.value} at alpha {report.policy.alpha}"
    )
    if report.drivers:
        console.print("drivers, strongest first: " + ", ".join(report.drivers))
    table = Table(show_lines=False)
    for header in ("feature", "kind", "test", "statistic", "p", "adjusted p", "effect", "PSI"):
        table.add_column(
            header, justify="left" if header in {"feature", "kind", "test"} else "right"
        )
    table.add_column("missing ref -> cur", justify="right")
    table.add_column("verdict")
    for feature in report.features:
        table.add_row(*_row(feature))
    console.print(table)
    if report.joint is not None:
        joint = report.joint
        console.print(
            f"joint location test (Hotelling): T2 {_number(joint.statistic)}, "
            f"p {_number(joint.p_value)}, adjusted {_number(joint.adjusted_p_value)}, "
            f"Mahalanobis {_number(joint.effect_size)}"
            + (" [red]fired[/red]" if joint.fired else "")
        )


def _row(feature: FeatureDrift) -> list[str]:
    verdict = ("[red]drift[/red]: " + ", ".join(feature.reasons)) if feature.drifted else "ok"
    if feature.new_categories:
        verdict += f" (new: {', '.join(feature.new_categories[:3])})"
    return [
        feature.feature,
        feature.kind.value,
        feature.test,
        _number(feature.statistic),
        _number(feature.p_value),
        _number(feature.adjusted_p_value),
        _number(feature.effect_size),
        _number(feature.psi),
        f"{feature.missing_rate_reference:.1%} -> {feature.missing_rate_current:.1%}",
        verdict,
    ]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"

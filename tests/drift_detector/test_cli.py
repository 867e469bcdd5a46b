"""``vigil drift compare``: the same detector on two files, as a table or JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from services.drift_detector.cli import app


def write_csv(path: Path, rng: np.random.Generator, rows: int, *, shift: float = 0.0) -> Path:
    lines = ["age,income,plan"]
    for _ in range(rows):
        plan = rng.choice(["basic", "pro"], p=[0.7, 0.3])
        lines.append(f"{rng.normal(40, 10):.2f},{rng.normal(50, 5) + shift * 5:.2f},{plan}")
    path.write_text("\n".join(lines) + "\n")
    return path


def compare_as_json(reference: Path, current: Path) -> list[str]:
    """The arguments of ``compare`` on two of these files, ``plan`` categorical, as JSON: the
    same call in process and through the ``vigil`` entry point."""
    return [
        "compare",
        "--reference",
        str(reference),
        "--current",
        str(current),
        "--categorical",
        "plan",
        "--json",
    ]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    reference = write_csv(tmp_path / "ref.csv", rng, 1000)
    same = write_csv(tmp_path / "same.csv", rng, 500)
    shifted = write_csv(tmp_path / "shifted.csv", rng, 500, shift=1.0)
    return reference, same, shifted


def test_compare_prints_json_naming_the_shifted_feature(files: tuple[Path, Path, Path]) -> None:
    reference, _, shifted = files
    result = CliRunner().invoke(app, compare_as_json(reference, shifted))
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["drifted"] is True
    assert document["drivers"] == ["income"]
    assert [f["feature"] for f in document["features"]] == ["age", "income", "plan"]
    assert document["features"][2]["kind"] == "categorical"


def test_compare_prints_a_table_for_people(files: tuple[Path, Path, Path]) -> None:
    reference, same, _ = files
    result = CliRunner().invoke(
        app,
        ["compare", "--reference", str(reference), "--current", str(same), "--categorical", "plan"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "no drift" in result.output
    assert "income" in result.output
    assert "cramervonmises" in result.output


def test_compare_explains_input_it_cannot_test(
    files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    reference, _, _ = files
    text_in_numbers = tmp_path / "bad.csv"
    text_in_numbers.write_text("age,income,plan\nforty,50,basic\n")
    result = CliRunner().invoke(
        app, ["compare", "--reference", str(reference), "--current", str(text_in_numbers)]
    )
    assert result.exit_code == 2
    assert "'plan'" in result.output or "not a number" in result.output
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("age,income,plan\n40,50,basic\n")
    result = CliRunner().invoke(
        app,
        ["compare", "--reference", str(reference), "--current", str(tiny), "--categorical", "plan"],
    )
    assert result.exit_code == 2
    assert "at least 30" in result.output


def test_the_vigil_command_has_the_drift_group(files: tuple[Path, Path, Path]) -> None:
    reference, _, shifted = files
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from services.cli import main; main()",
            "drift",
            *compare_as_json(reference, shifted),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["drivers"] == ["income"]


@pytest.mark.parametrize("as_json", [False, True])
def test_fail_on_drift_exits_1_on_drift_and_0_without(
    files: tuple[Path, Path, Path], as_json: bool
) -> None:
    reference, same, shifted = files
    json_flag = ["--json"] if as_json else []
    common = ["compare", "--reference", str(reference), "--categorical", "plan", *json_flag]
    drifted = CliRunner().invoke(app, [*common, "--current", str(shifted), "--fail-on-drift"])
    assert drifted.exit_code == 1, drifted.output
    assert ("drift" in drifted.output) if not as_json else json.loads(drifted.output)["drifted"]
    steady = CliRunner().invoke(app, [*common, "--current", str(same), "--fail-on-drift"])
    assert steady.exit_code == 0, steady.output
    without_flag = CliRunner().invoke(app, [*common, "--current", str(shifted)])
    assert without_flag.exit_code == 0, without_flag.output

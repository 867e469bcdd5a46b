"""``vigil models spec`` drafts a registration file from training data; ``vigil models register
--spec`` sends it (with the training CSV in any column order) to a registry served over
loopback HTTP."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
import skops.io
import yaml
from sklearn.datasets import load_wine
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from services.retrainer.registry.cli import app as models_cli
from services.retrainer.registry.spec_scaffold import (
    ScaffoldError,
    draft_metadata,
    metadata_yaml,
    read_metadata,
    reorder_training_csv,
)
from tests.http_tools import serving
from tests.registry_tools import registry

TARGET = "cultivar"


def wine_csv(*, target_at: int = -1, shop: bool = False, holes: bool = False) -> bytes:
    """The wine data as a binary problem (barolo or other), the target at column ``target_at``,
    optionally with a categorical column and missing values."""
    data = load_wine()
    names = [str(n) for n in data.feature_names][:5]
    labels = np.where(data.target == 0, "barolo", "other")
    header = list(names) + (["shop"] if shop else [])
    position = len(header) + 1 + target_at if target_at < 0 else target_at
    header.insert(position, TARGET)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for index, (row, label) in enumerate(zip(data.data[:, :5], labels, strict=True)):
        values = [repr(float(v)) for v in row]
        if holes and index % 17 == 3:
            values[1] = ""
        if shop:
            values.append(["north", "south", "east"][index % 3])
        values.insert(position, str(label))
        writer.writerow(values)
    return out.getvalue().encode()


def test_the_draft_infers_the_schema_and_proposes_thresholds_below_the_baselines() -> None:
    draft = draft_metadata(
        wine_csv(target_at=2, shop=True, holes=True), target=TARGET, key_metric="recall"
    )
    spec = draft.metadata.spec
    kinds = {f.name: (f.kind.value, f.nullable) for f in spec.features}
    assert list(kinds) == ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "shop"]
    assert kinds["malic_acid"] == ("numeric", True)
    assert kinds["alcohol"] == ("numeric", False)
    assert kinds["shop"] == ("categorical", False)
    assert (spec.label, spec.classes, spec.positive_class) == (
        TARGET,
        ["barolo", "other"],
        "barolo",
    )
    assert spec.key_metric == "recall"
    assert [t.metric for t in spec.metrics] == ["recall", "accuracy"]
    for target in spec.metrics:
        assert 0 <= target.threshold <= target.baseline - 0.05 + 1e-9
        assert draft.metadata.metrics[target.metric] == target.baseline
    assert draft.measured_on == 45  # a quarter of 178 rows
    assert draft.metadata.parameters["estimator"] == "logistic_regression"


def test_the_yaml_reads_back_as_the_same_metadata_and_keeps_its_comments() -> None:
    draft = draft_metadata(wine_csv(), target=TARGET, key_metric="f1", positive_class="other")
    text = metadata_yaml(draft, source="wine.csv")
    assert text.startswith("# Registration of a model trained on wine.csv")
    assert "# What Vigil watches." in text
    assert read_metadata(text) == draft.metadata
    edited = yaml.safe_load(text)
    edited["spec"]["owners"] = ["ana"]
    assert read_metadata(yaml.safe_dump(edited)).spec.owners == ["ana"]


def test_the_persons_own_model_is_measured_when_given() -> None:
    content = wine_csv()
    rows = list(csv.reader(io.StringIO(content.decode())))[1:]
    features = np.array([[float(v) for v in row[:-1]] for row in rows])
    labels = np.array([row[-1] for row in rows])
    never_barolo = DummyClassifier(strategy="constant", constant="other").fit(features, labels)
    draft = draft_metadata(content, target=TARGET, estimator=never_barolo)
    assert draft.measured_with == "DummyClassifier"
    assert draft.metadata.parameters == {}
    recall = draft.metadata.spec.target("recall")
    assert (recall.baseline, recall.threshold) == (0.0, 0.0)  # measured: it never finds one
    good = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    assert draft_metadata(content, target=TARGET, estimator=good).metadata.metrics["recall"] > 0.8


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        (b"a,b\n1,x\n2,y\n", {"target": "y"}, "no column 'y'"),
        (b"a,y\n1,x\n2,x\n", {"target": "y"}, "1 class"),
        (b"a,y\n1,x\n2,z\n3,x\n", {"target": "y", "positive_class": "q"}, "'q' is not one of"),
        (b"a,y\n1,x\n2\n", {"target": "y"}, "row 3 has 1 values"),
        (b"a,a,y\n1,2,x\n", {"target": "y"}, "unique"),
        (b"a,y\n", {"target": "y"}, "header row and data rows"),
        (b"\xff\xfe", {"target": "y"}, "UTF-8"),
        (wine_csv(), {"target": TARGET, "key_metric": "happiness"}, "unknown metric"),
    ],
)
def test_data_that_cannot_make_a_spec_is_explained(
    content: bytes, kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(ScaffoldError, match=message):
        draft_metadata(content, **kwargs)  # type: ignore[arg-type]  # the parametrised keywords


def test_the_training_csv_is_put_in_the_spec_order() -> None:
    content = wine_csv(target_at=0)
    spec = draft_metadata(content, target=TARGET).metadata.spec
    reordered = reorder_training_csv(content, spec).decode().splitlines()
    assert reordered[0].split(",")[-1] == TARGET
    assert reordered[1].split(",")[-1] in {"barolo", "other"}
    same = wine_csv()
    assert reorder_training_csv(same, spec) is same
    with pytest.raises(ScaffoldError, match="not the spec's"):
        reorder_training_csv(b"a,b\n1,2\n", spec)


def test_vigil_models_spec_writes_a_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    data = tmp_path / "wine.csv"
    data.write_bytes(wine_csv())
    output = tmp_path / "spec.yaml"
    arguments = ["spec", "--from-csv", str(data), "--target", TARGET, "-o", str(output)]
    first = CliRunner().invoke(models_cli, [*arguments, "--owner", "ana"])
    assert first.exit_code == 0, first.output
    assert read_metadata(output.read_text()).spec.owners == ["ana"]
    again = CliRunner().invoke(models_cli, arguments)
    assert again.exit_code == 2
    assert "exists" in again.output
    wrong = CliRunner().invoke(
        models_cli, ["spec", "--from-csv", str(data), "--target", "nope", "-o", str(tmp_path / "x")]
    )
    assert wrong.exit_code == 2
    assert "no column 'nope'" in wrong.output


@pytest.mark.integration
async def test_vigil_models_register_sends_the_spec_file_to_a_registry_over_http(
    tmp_path: Path,
) -> None:
    content = wine_csv(target_at=0)  # the label first: register reorders it
    data = tmp_path / "wine.csv"
    data.write_bytes(content)
    spec_path = tmp_path / "spec.yaml"
    draft = draft_metadata(content, target=TARGET)
    spec_path.write_text(metadata_yaml(draft, source="wine.csv"))
    rows = list(csv.reader(io.StringIO(content.decode())))[1:]
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        np.array([[float(v) for v in row[1:]] for row in rows]), np.array([r[0] for r in rows])
    )
    artifact = tmp_path / "model.skops"
    artifact.write_bytes(skops.io.dumps(model))
    broken = tmp_path / "broken.yaml"
    broken.write_text(spec_path.read_text().replace("key_metric: recall", "key_metric: joy"))

    async with (
        registry(f"sqlite:///{tmp_path / 'registry.db'}") as reg,
        serving(reg.app) as url,
    ):

        def register(spec: Path, token: str = "token-ana") -> tuple[int, str]:
            arguments = ["register", "wine", "--artifact", str(artifact), "--spec", str(spec)]
            arguments += ["--training-data", str(data), "--url", url, "--token", token]
            result = CliRunner().invoke(models_cli, arguments, env={"COLUMNS": "200"})
            return result.exit_code, result.output

        refused = await asyncio.to_thread(register, broken)
        assert refused[0] == 2
        assert "key_metric 'joy' has no target in metrics" in refused[1]
        low_role = await asyncio.to_thread(register, spec_path, "token-lee")
        assert low_role[0] == 3
        assert "403" in low_role[1]
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/models/wine")).status_code == 404  # nothing stored
        code, output = await asyncio.to_thread(register, spec_path)
        assert code == 0, output
        assert "registered wine v1" in output
        async with httpx.AsyncClient(base_url=url) as http:
            version = (await http.get("/models/wine/versions/1")).json()
    assert version["spec"]["key_metric"] == "recall"
    assert version["spec"]["label"] == TARGET
    assert version["metrics"] == draft.metadata.metrics

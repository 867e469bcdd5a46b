"""The pipeline's cache on disk, under the state folder.

``pipeline/steps/<step>/<key>.json`` holds a step's outputs; the bytes they name are
content-addressed: intermediate data under ``pipeline/blobs``, held-out sets and snapshots in the
registry's dataset store, models in its artifact store (so a registered candidate is served from
where it was trained into). A record counts only while every file it names is present and
matches its hash, so deleting files can cost a recomputation, never a wrong answer.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.retrainer.artifacts import ArtifactStore
from services.retrainer.content import ContentStore
from services.retrainer.datasets import DatasetStore
from services.retrainer.pipeline import Step
from services.runtime import DEFAULT_TRUSTED_TYPES, load_model

__all__ = ["FileStepStore"]

_BLOB_FIELDS = {
    "prepared_sha256": "blobs",
    "train_sha256": "blobs",
    "test_sha256": "datasets",
    "artifact_sha256": "artifacts",
}


class FileStepStore:
    """Step records as JSON files; blobs, datasets and artifacts in content stores."""

    def __init__(
        self, state_dir: Path, *, trusted_types: Sequence[str] = DEFAULT_TRUSTED_TYPES
    ) -> None:
        self._trusted_types = tuple(trusted_types)
        self._steps = state_dir / "pipeline" / "steps"
        self._stores: dict[str, ContentStore] = {
            "blobs": ContentStore(state_dir / "pipeline" / "blobs", suffix=".json"),
            "datasets": DatasetStore(state_dir),
            "artifacts": ArtifactStore(state_dir),
        }

    def _path(self, step: Step, key: str) -> Path:
        return self._steps / step.value / f"{key}.json"

    def outputs(self, step: Step, key: str) -> dict[str, Any] | None:
        """Return a step's outputs if recorded and every content they name is present."""
        path = self._path(step, key)
        if not path.exists():
            return None
        outputs: dict[str, Any] = json.loads(path.read_text())
        for name, store in _BLOB_FIELDS.items():
            sha256 = outputs.get(name)
            if isinstance(sha256, str) and self._stores[store].get_now(sha256) is None:
                return None
        return outputs

    def record(self, step: Step, key: str, outputs: dict[str, Any]) -> None:
        """Record a step's outputs (written aside, then renamed)."""
        path = self._path(step, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "w") as file:
                json.dump(outputs, file, sort_keys=True)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def put_blob(self, content: bytes) -> str:
        """Keep intermediate bytes."""
        return self._stores["blobs"].put_now(content)

    def blob(self, sha256: str) -> bytes:
        """Return intermediate bytes."""
        return self._require("blobs", sha256)

    def put_dataset(self, content: bytes) -> str:
        """Keep a dataset CSV."""
        return self._stores["datasets"].put_now(content)

    def dataset(self, sha256: str) -> bytes:
        """Return a dataset CSV."""
        return self._require("datasets", sha256)

    def put_artifact(self, content: bytes) -> str:
        """Keep a model artifact."""
        return self._stores["artifacts"].put_now(content)

    def artifact(self, sha256: str) -> bytes:
        """Return a model artifact."""
        return self._require("artifacts", sha256)

    def load_model(self, sha256: str) -> Any:
        """Return an artifact's estimator, checked by hash and loaded without untrusted types."""
        return load_model(self.artifact(sha256), sha256=sha256, trusted=self._trusted_types)

    def _require(self, store: str, sha256: str) -> bytes:
        content = self._stores[store].get_now(sha256)
        if content is None:
            raise FileNotFoundError(f"{store}: nothing stored under {sha256}")
        return content

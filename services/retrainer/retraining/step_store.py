"""The pipeline's cache in the retrainer's database.

``retrainer_step_records`` holds a step's outputs under the key of its inputs; the bytes they
name are content-addressed in ``retrainer_content``: intermediate data as ``blob``, held-out sets
and snapshots as the registry's ``dataset``, models as its ``artifact`` (so a registered
candidate is served from where it was trained into). A record counts only while every content it
names is present and matches its hash, so losing content can cost a recomputation, never a wrong
answer. Every replica on one database shares the cache: a run taken over by another replica
resumes from the steps the first one recorded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from contracts.envelope import utc_now
from services.retrainer.content import ContentStore
from services.retrainer.content_tables import StepRecordRow
from services.retrainer.registry.artifacts import ArtifactStore
from services.retrainer.registry.datasets import DatasetStore
from services.retrainer.retraining.pipeline import Step
from services.runtime import DEFAULT_TRUSTED_TYPES, load_model

__all__ = ["DatabaseStepStore"]

_CONTENT_FIELDS = {
    "prepared_sha256": "blob",
    "train_sha256": "blob",
    "test_sha256": "dataset",
    "artifact_sha256": "artifact",
}


class DatabaseStepStore:
    """Step records and the content they name, in the retrainer's database."""

    def __init__(
        self, engine: Engine, *, trusted_types: Sequence[str] = DEFAULT_TRUSTED_TYPES
    ) -> None:
        self.engine = engine
        self._trusted_types = tuple(trusted_types)
        self._stores: dict[str, ContentStore] = {
            "blob": ContentStore(engine, kind="blob", suffix=".json"),
            "dataset": DatasetStore(engine),
            "artifact": ArtifactStore(engine),
        }

    def outputs(self, step: Step, key: str) -> dict[str, Any] | None:
        """Return a step's outputs if recorded and every content they name is present."""
        query = select(StepRecordRow.outputs).where(  # type: ignore[call-overload]  # SQLModel column
            StepRecordRow.step == step.value, StepRecordRow.key == key
        )
        with self.engine.connect() as connection:
            found = connection.execute(query).scalar_one_or_none()
        if found is None:
            return None
        outputs: dict[str, Any] = json.loads(found)
        for name, kind in _CONTENT_FIELDS.items():
            sha256 = outputs.get(name)
            if isinstance(sha256, str) and self._stores[kind].get_now(sha256) is None:
                return None
        return outputs

    def record(self, step: Step, key: str, outputs: dict[str, Any]) -> None:
        """Record a step's outputs; a record under the same key is replaced (one statement)."""
        text = json.dumps(outputs, sort_keys=True, allow_nan=False)
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(StepRecordRow.__table__).values(  # type: ignore[attr-defined]  # set by SQLModel for table=True classes
            step=step.value, key=key, outputs=text, recorded_at=utc_now()
        )
        statement = statement.on_conflict_do_update(
            index_elements=["step", "key"],
            set_={
                "outputs": statement.excluded.outputs,
                "recorded_at": statement.excluded.recorded_at,
            },
        )
        with self.engine.begin() as connection:
            connection.execute(statement)

    def put_blob(self, content: bytes) -> str:
        """Keep intermediate bytes."""
        return self._stores["blob"].put_now(content)

    def blob(self, sha256: str) -> bytes:
        """Return intermediate bytes (:class:`MissingContentError` if there are none)."""
        return self._stores["blob"].require(sha256)

    def put_dataset(self, content: bytes) -> str:
        """Keep a dataset CSV."""
        return self._stores["dataset"].put_now(content)

    def dataset(self, sha256: str) -> bytes:
        """Return a dataset CSV (:class:`MissingContentError` if there is none)."""
        return self._stores["dataset"].require(sha256)

    def put_artifact(self, content: bytes) -> str:
        """Keep a model artifact."""
        return self._stores["artifact"].put_now(content)

    def artifact(self, sha256: str) -> bytes:
        """Return a model artifact (:class:`MissingContentError` if there is none)."""
        return self._stores["artifact"].require(sha256)

    def load_model(self, sha256: str) -> Any:
        """Return an artifact's estimator, checked by hash and loaded without untrusted types."""
        return load_model(self.artifact(sha256), sha256=sha256, trusted=self._trusted_types)

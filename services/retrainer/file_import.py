"""The one-time import of a state folder's content files into the retrainer's database.

Retrainers before ADR 0017's content tables kept artifacts, datasets and the step cache as files
under the state folder (``artifacts/sha256/<hex>.skops``, ``datasets/sha256/<hex>.csv``,
``pipeline/blobs/sha256/<hex>.json``, ``pipeline/steps/<step>/<key>.json``). On start the
retrainer moves any such file into its database: a content file is checked against its name,
inserted (``ON CONFLICT DO NOTHING``) and deleted once the insert committed, so an import killed
mid-way is finished by the next start and two replicas importing one folder at once do not
collide. A file whose bytes do not match its name is left in place and reported, never imported.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from contracts.envelope import utc_now
from services.retrainer.content import ContentStore, CorruptContentError, insert_ignoring_duplicates
from services.retrainer.content_tables import StepRecordRow
from services.retrainer.retraining.pipeline import Step

__all__ = ["CONTENT_FOLDERS", "FileImport", "import_state_files"]

log = logging.getLogger(__name__)

CONTENT_FOLDERS = {
    "artifact": (Path("artifacts") / "sha256", ".skops"),
    "dataset": (Path("datasets") / "sha256", ".csv"),
    "blob": (Path("pipeline") / "blobs" / "sha256", ".json"),
}
"""Where each kind of content was kept under the state folder, and its file suffix."""

_STEPS = Path("pipeline") / "steps"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass
class FileImport:
    """What an import did."""

    imported: int = 0
    step_records: int = 0
    refused: list[Path] = field(default_factory=list)
    """Files left in place: bytes not matching their name, or a step record that is not JSON."""


def import_state_files(state_dir: Path, engine: Engine) -> FileImport:
    """Move the content and step-record files under ``state_dir`` into the database."""
    report = FileImport()
    for kind, (folder, suffix) in CONTENT_FOLDERS.items():
        store = ContentStore(engine, kind=kind, suffix=suffix)
        for path in sorted((state_dir / folder).glob(f"*{suffix}")):
            sha256 = path.name.removesuffix(suffix)
            if not _HEX64.fullmatch(sha256):
                continue
            try:
                store.put_checked(sha256, path.read_bytes())
            except FileNotFoundError:
                continue  # another replica imported it first
            except CorruptContentError:
                log.warning("not imported: %s does not match its SHA-256", path)
                report.refused.append(path)
                continue
            path.unlink(missing_ok=True)
            report.imported += 1
    steps = {step.value for step in Step}
    for path in sorted((state_dir / _STEPS).glob("*/*.json")):
        if path.parent.name not in steps or not _HEX64.fullmatch(path.stem):
            continue
        try:
            outputs = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except ValueError:
            log.warning("not imported: %s is not JSON", path)
            report.refused.append(path)
            continue
        # The database's record wins: it is newer than any file left from before.
        statement = insert_ignoring_duplicates(engine, StepRecordRow.__table__).values(  # type: ignore[attr-defined]  # set by SQLModel for table=True classes
            step=path.parent.name,
            key=path.stem,
            outputs=json.dumps(outputs, sort_keys=True),
            recorded_at=utc_now(),
        )
        with engine.begin() as connection:
            connection.execute(statement)
        path.unlink(missing_ok=True)
        report.step_records += 1
    if report.imported or report.step_records:
        log.info(
            "imported %d content files and %d step records from %s into the database",
            report.imported,
            report.step_records,
            state_dir,
        )
    return report

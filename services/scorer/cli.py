"""``vigil labels send FILE``: ground truth from a file to the scorer's ``POST /labels``.

The file is CSV with a header (columns ``request_id`` and ``label``, or ``value`` for a
regression model's true number; optionally ``model`` and ``occurred_at``) or JSON lines (one
object per line with the same fields); ``--model`` names the model when the file does not.
Labels go in requests of at most 1000; a request the scorer could not acknowledge (503,
unreachable) is sent again, which counts once (the same label has the same event id). A refusal
prints the scorer's reason and exits 3; an unreachable scorer exits 4; a file that cannot be read as
labels exits 2 (:mod:`services.runtime.command_line`).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from contracts.scoring_api import MAX_LABELS_PER_REQUEST, Label, LabelsRequest
from services.runtime.api_client import ApiClient, ApiError, default_token, service_url
from services.runtime.command_line import ExitCode, exit_code_for, fail, out, url_option
from services.runtime.names import ServiceName

__all__ = ["app", "read_labels"]

app = typer.Typer(help="Ground truth: send labels of earlier predictions.", no_args_is_help=True)

_ATTEMPTS = 5


@app.callback()
def labels() -> None:
    """Ground truth: send labels of earlier predictions (to the scorer's POST /labels)."""


class LabelFileError(ValueError):
    """The file cannot be read as labels; the message names the line."""


def read_labels(path: Path, *, model: str | None = None) -> list[Label]:
    """The labels of a CSV (header row) or JSON-lines file (``.jsonl``/``.ndjson``)."""
    text = path.read_text(encoding="utf-8-sig")
    jsonl = path.suffix.lower() in {".jsonl", ".ndjson"}
    rows = _json_lines(text) if jsonl else _csv_rows(text)
    found = []
    for line, row in rows:
        fields = {key: value for key, value in row.items() if value not in (None, "")}
        if model is not None:
            fields.setdefault("model", model)
        try:
            found.append(Label.model_validate(fields))
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in error.errors()
            )
            raise LabelFileError(f"{path}:{line}: {problems}") from None
    return found


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        if None in row:
            raise LabelFileError(f"line {reader.line_num}: more values than header columns")
        yield reader.line_num, row


def _json_lines(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise LabelFileError(f"line {number}: not JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise LabelFileError(f"line {number}: not a JSON object")
        yield number, row


def _batches(items: Sequence[Label], size: int) -> Iterator[Sequence[Label]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _send(api: ApiClient, batch: Sequence[Label]) -> Any:
    body = LabelsRequest(labels=list(batch)).model_dump(mode="json", exclude_none=True)
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return api.post("/labels", body)
        except ApiError as error:
            if (error.status is not None and error.status != 503) or attempt == _ATTEMPTS:
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


@app.command("send")
def send(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CSV with a header, or .jsonl."
        ),
    ],
    model: Annotated[
        str | None, typer.Option("--model", help="The model, when the file has no model column.")
    ] = None,
    url: Annotated[str | None, url_option(ServiceName.SCORER)] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="VIGIL_TOKEN",
            help="API token (role l2 or higher, or scope labels:write); default: the running "
            "local stack's admin token.",
        ),
    ] = None,
) -> None:
    """Send the labels of FILE (request_id, label or value[, model, occurred_at]) to the
    scorer."""
    try:
        found = read_labels(file, model=model)
    except LabelFileError as error:
        fail(ExitCode.USAGE, f"cannot read labels: {error}", markup=False)
    if not found:
        fail(ExitCode.USAGE, f"no labels in {file}", markup=False)
    api = ApiClient(url or service_url(ServiceName.SCORER), token=token or default_token())
    sent = 0
    try:
        for batch in _batches(found, MAX_LABELS_PER_REQUEST):
            sent += int(_send(api, batch)["published"])
    except ApiError as error:
        fail(exit_code_for(error), f"error after {sent} label(s) sent: {error}", markup=False)
    finally:
        api.close()
    out.print(f"sent {sent} label(s) to the labels topic")

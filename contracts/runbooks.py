"""Runbook runs: the incident log asks for a catalogued script, the runner reports what happened.

Run states::

    requested ──▶ running ──▶ verifying ──▶ succeeded
        │            │            ├───────▶ verify_failed
        │            │            ├───────▶ timed_out
        │            │            └───────▶ abandoned
        │            ├──▶ failed
        │            ├──▶ timed_out
        │            ├──▶ abandoned   (the runner died mid-run; never silently re-run)
        │            └──▶ skipped     (the script found nothing to do: exit NOTHING_TO_DO_EXIT)
        ├──▶ refused                  (not in the catalogue, bad parameters, limit reached)
        ├──▶ expired                  (waited longer than the runner's maximum queue age)
        └──▶ skipped                  (its incident was resolved before it started)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from contracts.envelope import Envelope
from contracts.incidents import Tier
from contracts.values import ModelName

__all__ = [
    "NOTHING_TO_DO_EXIT",
    "RunState",
    "RunbookFinished",
    "RunbookRequest",
    "RunbookStarted",
]

ParameterValue = str | int | float | bool

NOTHING_TO_DO_EXIT = 5
"""Exit status by which a runbook's command says the situation it was asked to act on no longer
holds (the version it was about no longer serves), so it did nothing: the run ends ``skipped``,
without verification."""


class RunState(StrEnum):
    """Final (and intermediate) states of one runbook run."""

    REQUESTED = "requested"
    RUNNING = "running"
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    VERIFY_FAILED = "verify_failed"
    ABANDONED = "abandoned"
    REFUSED = "refused"
    EXPIRED = "expired"
    SKIPPED = "skipped"


class RunbookRequest(Envelope):
    """Run one catalogued runbook for an incident, with parameters bound from it."""

    type: Literal["runbook.request"] = "runbook.request"
    run_id: str = Field(
        min_length=1,
        max_length=100,
        description="Id of this run; the runner runs each id at most once.",
        examples=["run-7f3a"],
    )
    incident_id: str = Field(
        min_length=1, description="Incident; the Kafka key.", examples=["inc-000042"]
    )
    model: ModelName
    runbook: str = Field(min_length=1, description="Catalogue name.", examples=["rollback-model"])
    parameters: dict[str, ParameterValue] = Field(
        default_factory=dict,
        description="Parameter values; the runner validates them against the catalogue.",
        examples=[{"model": "breast-cancer", "to_version": 2}],
    )
    requested_by: str = Field(
        min_length=1, description="Person or system that asked.", examples=["system:incident-log"]
    )
    tier: Tier = Field(description="Tier on whose behalf it runs.", examples=[Tier.L1])
    reason: str = Field(
        min_length=1, description="Why it runs.", examples=["metric decay right after deploy"]
    )
    model_version: int | None = Field(
        default=None,
        ge=1,
        description="Model version the incident is about; parameters may be bound from it.",
        examples=[3],
    )
    approved_by: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Person who approved this run, for runbooks that need approval; must differ from "
            "`requested_by`."
        ),
        examples=["bo"],
    )
    expires_at: AwareDatetime | None = Field(
        default=None,
        description=(
            "Until when the request may be acted on; signed, so a request kept and produced "
            "again later is refused. Set by the incident log when it signs."
        ),
        examples=["2026-11-23T10:15:00Z"],
    )
    signature: str | None = Field(
        default=None,
        max_length=200,
        description=(
            "`v1=` and the hex HMAC-SHA256, under the key the incident log shares with the "
            "runner, of the request's canonical fields (services/runtime/request_signing.py); "
            "the runner runs no request whose signature does not check."
        ),
        examples=["v1=5d41402abc4b2a76b9719d911017c592ae3a8b2f0c6b1d8e9f0a1b2c3d4e5f60"],
    )


class RunbookStarted(Envelope):
    """The runner started a run (its script hash is fixed from here on)."""

    type: Literal["runbook.started"] = "runbook.started"
    run_id: str = Field(min_length=1, description="Id of the run.", examples=["run-7f3a"])
    incident_id: str = Field(
        min_length=1, description="Incident; the Kafka key.", examples=["inc-000042"]
    )
    model: ModelName
    runbook: str = Field(min_length=1, description="Catalogue name.", examples=["rollback-model"])
    script_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the script file that runs.",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )
    argv: list[str] = Field(
        description="The exact argument vector executed (no shell).",
        examples=[["runbooks/rollback_model.py", "--model", "breast-cancer"]],
    )
    verify_argv: list[str] = Field(
        default_factory=list,
        description="The exact argument vector of the verification, run if the command succeeds.",
        examples=[["runbooks/verify_model.py", "--model", "breast-cancer"]],
    )
    verify_script_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the verification script.",
        examples=["60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"],
    )


class RunbookFinished(Envelope):
    """A run reached a final state."""

    type: Literal["runbook.finished"] = "runbook.finished"
    run_id: str = Field(min_length=1, description="Id of the run.", examples=["run-7f3a"])
    incident_id: str = Field(
        min_length=1, description="Incident; the Kafka key.", examples=["inc-000042"]
    )
    model: ModelName
    runbook: str = Field(min_length=1, description="Catalogue name.", examples=["rollback-model"])
    state: RunState = Field(description="Final state.", examples=[RunState.SUCCEEDED])
    script_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the script that ran; null when refused before running.",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )
    parameters: dict[str, ParameterValue] = Field(
        default_factory=dict, description="Parameters it ran with.", examples=[{"to_version": 2}]
    )
    exit_code: int | None = Field(
        default=None, description="Exit status of the command; null if it never ran.", examples=[0]
    )
    verify_exit_code: int | None = Field(
        default=None, description="Exit status of the verification.", examples=[1]
    )
    stdout: str = Field(default="", description="Captured output, capped.", examples=["ok"])
    stderr: str = Field(default="", description="Captured errors, capped.", examples=[""])
    verify_output: str = Field(
        default="", description="Captured output of the verification, capped.", examples=[""]
    )
    truncated: bool = Field(
        default=False, description="True when any captured output was cut.", examples=[False]
    )
    started_at: AwareDatetime | None = Field(
        default=None, description="When the command started.", examples=["2026-11-22T10:15:00Z"]
    )
    detail: str = Field(
        default="",
        description="Why it ended so, for a person (refusal reason, timeout, ...).",
        examples=["verification exited 1: recall 0.81 < 0.95"],
    )

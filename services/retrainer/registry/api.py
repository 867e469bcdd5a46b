"""The registry's HTTP API: parse → rules (via the store) → answer.

The read paths are the ones :class:`services.runtime.RegistryClient` uses (the scorer, monitor and
drift detector) and are open. The write paths are what ``vigil models …``, the console and
runbooks call: they need a caller (:mod:`services.retrainer.callers`) of role ``l2`` or higher,
whose name is recorded as who registered or moved what.

The routes are module-level functions on :data:`router`; :func:`install_registry_api` gives an
app the registry they act on (:data:`Api`), and the caller comes from
:data:`~services.retrainer.callers.Caller`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
)
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from contracts.registry import (
    Deployment,
    DeploymentMode,
    ModelTask,
    ModelVersionRecord,
    MonitoringSpec,
)
from contracts.values import FiniteJson, ModelName
from services.retrainer.callers import Caller, require_role
from services.retrainer.registry.artifacts import ArtifactError, ArtifactStore, check_artifact
from services.retrainer.registry.datasets import DatasetError, DatasetStore, check_dataset
from services.retrainer.registry.deployments import (
    MAX_CHALLENGER_SHARE,
    Action,
    Alias,
    AliasMove,
    DeploymentRevision,
    RegistryRuleError,
    alias_moves,
    deployment_at,
)
from services.retrainer.registry.store import ConcurrentChangeError, NotFoundError, RegistryStore
from services.retrainer.registry.trial_scoring import trial_score_and_calibration
from services.runtime import DEFAULT_TRUSTED_TYPES
from services.runtime.app_state import AppState
from services.runtime.identity import Identity
from services.runtime.scopes import Scope

__all__ = [
    "REGISTRATION_PATH",
    "REGISTRY_WRITER_ROLE",
    "AliasMoveOut",
    "Api",
    "ChangeReason",
    "DeployRequest",
    "DeploymentAt",
    "History",
    "ModelDetail",
    "ModelSummaryOut",
    "RegistryApi",
    "RevisionOut",
    "RollbackRequest",
    "TrafficRequest",
    "VersionMetadata",
    "install_registry_api",
    "router",
]

ModelPath = Annotated[
    ModelName, Path(description="Registry name of the model.", examples=["breast-cancer"])
]


MAX_VERSION = 2**31 - 1
"""The highest version number a request may name (a database integer)."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class VersionMetadata(_Body):
    """The JSON part of a registration: lineage and maintenance instructions."""

    sklearn_version: str = Field(min_length=1, examples=["1.6.1"])
    dataset_name: str = Field(min_length=1, examples=["breast-cancer"])
    dataset_version: str = Field(min_length=1, examples=["2026-11-22.1"])
    evaluation_dataset_name: str | None = Field(default=None, examples=["breast-cancer"])
    evaluation_dataset_version: str | None = Field(default=None, examples=["2026-11-22.1-test"])
    metrics: dict[str, float] = Field(default_factory=dict, examples=[{"recall": 0.97}])
    parameters: dict[str, FiniteJson] = Field(default_factory=dict, examples=[{"C": 1.0}])
    code_version: str = Field(min_length=1, examples=["vigil 0.1.0"])
    spec: MonitoringSpec
    reason: str = Field(examples=["initial model"])
    incident_id: str | None = Field(default=None, examples=["inc-000042"])


class ChangeReason(_Body):
    """Why a change is made (kept in the history, with the caller as actor)."""

    reason: str = Field(min_length=1, max_length=2000, examples=["recall fell after the deploy"])
    incident_id: str | None = Field(default=None, max_length=100, examples=["inc-000042"])


class RollbackRequest(ChangeReason):
    """Roll back one step, optionally only if the deployment is still the one the caller saw."""

    expected_revision: int | None = Field(
        default=None,
        ge=1,
        strict=True,
        description=(
            "Roll back only if this revision is still in force (compare-and-set); otherwise 409 "
            "and nothing changes."
        ),
        examples=[7],
    )


class DeployRequest(ChangeReason):
    """Serve a champion, and optionally a challenger with its share and mode."""

    champion: int = Field(ge=1, le=MAX_VERSION, examples=[3])
    challenger: int | None = Field(default=None, ge=1, le=MAX_VERSION, examples=[4])
    challenger_share: float = Field(default=0.0, ge=0.0, le=MAX_CHALLENGER_SHARE, examples=[0.1])
    mode: DeploymentMode = DeploymentMode.CANARY


class TrafficRequest(ChangeReason):
    """Change the challenger's share of traffic (and the mode, if given)."""

    challenger_share: float = Field(ge=0.0, le=MAX_CHALLENGER_SHARE, examples=[0.1])
    mode: DeploymentMode | None = None


class RevisionOut(BaseModel):
    """One revision of a deployment."""

    model: str
    revision: int
    action: Action
    actor: str
    reason: str
    incident_id: str | None
    at: datetime
    deployment: Deployment

    @classmethod
    def of(cls, entry: DeploymentRevision) -> RevisionOut:
        return cls(
            model=entry.model,
            revision=entry.revision,
            action=entry.action,
            actor=entry.actor,
            reason=entry.reason,
            incident_id=entry.incident_id,
            at=entry.at,
            deployment=entry.deployment,
        )


class AliasMoveOut(BaseModel):
    """An alias moved to a version (``null``: cleared)."""

    alias: Alias
    version: int | None
    previous_version: int | None
    revision: int
    action: Action
    actor: str
    reason: str
    incident_id: str | None
    at: datetime

    @classmethod
    def of(cls, move: AliasMove) -> AliasMoveOut:
        return cls(**{name: getattr(move, name) for name in cls.model_fields})


class History(BaseModel):
    """Every revision and every alias move of a model, oldest first."""

    model: str
    revisions: list[RevisionOut]
    alias_moves: list[AliasMoveOut]


class DeploymentAt(BaseModel):
    """What served a model at a point in time."""

    model: str
    at: datetime
    champion: int | None
    challenger: int | None
    revision: RevisionOut | None


class ModelSummaryOut(BaseModel):
    """A model, its number of versions and what serves it."""

    name: str
    versions: int
    latest_version: int | None
    deployment: Deployment | None


class ModelDetail(BaseModel):
    """A model with all its versions, its aliases and its deployment."""

    name: str
    versions: list[ModelVersionRecord]
    aliases: dict[Alias, int]
    deployment: Deployment | None


REGISTRY_WRITER_ROLE = "l2"
"""The lowest role that may register, deploy, shift traffic, promote or roll back."""


async def _registry_writer(who: Caller) -> Identity:
    require_role(who, REGISTRY_WRITER_ROLE, "change the registry")
    return who


Writer = Annotated[Identity, Depends(_registry_writer)]
"""A caller allowed to change the registry (401 / 403 / 503 otherwise)."""


async def _rollbacker(who: Caller) -> Identity:
    require_role(who, REGISTRY_WRITER_ROLE, "change the registry", scope=Scope.REGISTRY_ROLLBACK)
    return who


Rollbacker = Annotated[Identity, Depends(_rollbacker)]
"""A caller allowed to roll a deployment back: a writer, or a token scoped ``registry:rollback``
(the runbook runner's)."""

DATASET_READER_ROLE = "l2"
"""The lowest role that may read training data and snapshots (features and labels)."""


REGISTRATION_PATH = re.compile(r"/models/[^/]+/versions")
"""The registration route: its uploads (artifact and datasets) have their own size limit."""

_MAX_METADATA_BYTES = 1024 * 1024
_REGISTRATION_FILES = ("artifact", "training_data", "evaluation_data")
_REGISTRATION_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["metadata", "artifact", "training_data"],
                "properties": {
                    "metadata": {
                        "type": "string",
                        "description": "JSON object: lineage and spec (schema VersionMetadata).",
                    },
                    "artifact": {
                        "type": "string",
                        "format": "binary",
                        "description": "The model as a skops file.",
                    },
                    "training_data": {
                        "type": "string",
                        "format": "binary",
                        "description": "Training set CSV: feature columns in spec order, then "
                        "label.",
                    },
                    "evaluation_data": {
                        "type": "string",
                        "format": "binary",
                        "description": "Evaluation set CSV that the metrics come from.",
                    },
                },
            }
        }
    },
}


async def _task_change(store: RegistryStore, model: str, task: ModelTask) -> str | None:
    """Why a version of another task than the model's latest cannot join it (``None``: it may).

    A model's events, labels, windows and retrains assume one task: a regressor's v2 of a
    classifier would leave the monitor joining numbers to classes. (Checked before the
    registration's transaction: two concurrent first registrations of different tasks are not
    caught.)"""
    try:
        versions = await store.versions(model)
    except NotFoundError:
        return None
    latest = versions[-1] if versions else None
    if latest is None or latest.spec.task is task:
        return None
    return (
        f"model {model!r} is a {latest.spec.task.value} model (v{latest.version}); a version "
        f"with task: {task.value} cannot join it: register it under another name"
    )


def _problem(field: str, message: str, kind: str = "value_error") -> HTTPException:
    return HTTPException(422, [{"loc": ["body", field], "msg": message, "type": kind}])


def _metadata_errors(error: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "loc": ["body", "metadata", *problem["loc"]],
            "msg": problem["msg"],
            "type": problem["type"],
        }
        for problem in error.errors(include_url=False)
    ]


@dataclass(frozen=True)
class RegistryApi:
    """What the registry's routes act on: the store, where artifacts and datasets are kept, the
    clock that stamps registrations and moves, and the types an artifact may load."""

    store: RegistryStore
    artifacts: ArtifactStore
    datasets: DatasetStore
    clock: Callable[[], datetime]
    trusted_types: Sequence[str] = DEFAULT_TRUSTED_TYPES


_SLOT = AppState[RegistryApi]("registry_api")
Api = Annotated[RegistryApi, Depends(_SLOT)]
"""The :class:`RegistryApi` the app was given by :func:`install_registry_api`."""

router = APIRouter(tags=["registry"])


def install_registry_api(
    app: FastAPI,
    *,
    store: RegistryStore,
    artifacts: ArtifactStore,
    datasets: DatasetStore,
    clock: Callable[[], datetime],
    trusted_types: Sequence[str] = DEFAULT_TRUSTED_TYPES,
) -> None:
    """Add the registry's routes and error mapping to an app, bound to one registry (the caller
    is checked as :func:`~services.retrainer.callers.install_callers` set up on the app)."""
    _SLOT.put(app, RegistryApi(store, artifacts, datasets, clock, trusted_types))
    app.include_router(router)

    async def not_found(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 404)

    async def conflict(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 409)

    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(RegistryRuleError, conflict)
    app.add_exception_handler(ConcurrentChangeError, conflict)


@router.get("/models")
async def list_models(api: Api) -> list[ModelSummaryOut]:
    """Every model with its latest version and deployment."""
    return [ModelSummaryOut(**vars(summary)) for summary in await api.store.models()]


@router.get("/models/{model}")
async def show_model(model: ModelPath, api: Api) -> ModelDetail:
    """A model's versions, aliases and deployment."""
    versions = await api.store.versions(model)
    return ModelDetail(
        name=model,
        versions=versions,
        aliases=await api.store.aliases(model),
        deployment=await api.store.deployment(model),
    )


@router.get("/models/{model}/versions")
async def list_versions(model: ModelPath, api: Api) -> list[ModelVersionRecord]:
    """Every version of a model, oldest first."""
    return await api.store.versions(model)


@router.post(
    "/models/{model}/versions",
    status_code=201,
    openapi_extra={"requestBody": _REGISTRATION_BODY},
    responses={409: {"description": "The registry's rules refuse the version."}},
)
async def register_version(
    model: ModelPath, who: Writer, request: Request, api: Api
) -> ModelVersionRecord:
    """Register the next version of a model (the model is created on its first version).

    The artifact must load with skops without untrusted types and fit the spec (feature
    count and names, classes, task), the spec's task must be that of the model's earlier
    versions, the datasets must fit the spec (a regression target: a finite number), and
    the model must score a sample of its training data as the scorer would (422 naming the
    problem otherwise, with nothing stored). Without ``metrics``, the version records those
    measured on the evaluation data, else on the training sample (a regression model: mae,
    rmse, r2). Publishes ``model.registered``.

    The multipart body is read only after the caller is known (FastAPI would parse and
    spool declared form fields before any dependency runs).
    """
    async with request.form(max_files=3, max_fields=1, max_part_size=_MAX_METADATA_BYTES) as form:
        metadata = form.get("metadata")
        parts = {field: form.get(field) for field in _REGISTRATION_FILES}
        missing = [
            {"loc": ["body", field], "msg": "Field required", "type": "missing"}
            for field, value in (("metadata", metadata), *parts.items())
            if value is None and field != "evaluation_data"
        ]
        if missing:
            raise HTTPException(422, missing)
        if not isinstance(metadata, str):
            raise _problem("metadata", "expected a form field, not a file", "string_type")
        files: dict[str, bytes] = {}
        for field, part in parts.items():
            if isinstance(part, UploadFile):
                files[field] = await part.read()
            elif part is not None:
                raise _problem(field, "expected a file", "file_type")
    artifact, training_data = files["artifact"], files["training_data"]
    evaluation_data = files.get("evaluation_data")
    try:
        meta = VersionMetadata.model_validate_json(metadata)
    except ValidationError as error:
        raise HTTPException(422, _metadata_errors(error)) from None
    if (meta.evaluation_dataset_name is None) != (evaluation_data is None) or (
        meta.evaluation_dataset_version is None
    ) != (evaluation_data is None):
        raise _problem(
            "evaluation_data",
            "send evaluation_data together with evaluation_dataset_name and _version",
        )
    task_change = await _task_change(api.store, model, meta.spec.task)
    if task_change is not None:
        raise _problem("metadata", task_change)
    try:
        estimator = await asyncio.to_thread(
            check_artifact, artifact, meta.spec, trusted_types=api.trusted_types
        )
    except ArtifactError as error:
        raise _problem("artifact", str(error)) from None
    for field, content in (
        ("training_data", training_data),
        ("evaluation_data", evaluation_data),
    ):
        if content is None:
            continue
        try:
            check_dataset(content, meta.spec)
        except DatasetError as error:
            raise _problem(field, str(error)) from None
    try:
        measured, calibration = await asyncio.to_thread(
            trial_score_and_calibration, estimator, meta.spec, training_data, evaluation_data
        )
    except ArtifactError as error:
        raise _problem("artifact", str(error)) from None
    refs = {}
    for field, content, name, version in (
        ("training_data", training_data, meta.dataset_name, meta.dataset_version),
        (
            "evaluation_data",
            evaluation_data,
            meta.evaluation_dataset_name,
            meta.evaluation_dataset_version,
        ),
    ):
        if content is None or name is None or version is None:
            continue
        refs[field] = await api.datasets.put_dataset(content, name=name, version=version)
    sha256 = await api.artifacts.put(artifact)
    registered_at = api.clock()

    def make_record(version: int) -> ModelVersionRecord:
        return ModelVersionRecord(
            model=model,
            version=version,
            artifact_uri=api.artifacts.uri_of(sha256),
            artifact_sha256=sha256,
            sklearn_version=meta.sklearn_version,
            dataset=refs["training_data"],
            metrics=meta.metrics or measured,
            evaluation_dataset=refs.get("evaluation_data"),
            calibration=calibration,
            parameters=meta.parameters,
            code_version=meta.code_version,
            spec=meta.spec,
            registered_by=who.name,
            reason=meta.reason,
            incident_id=meta.incident_id,
            registered_at=registered_at,
        )

    return await api.store.register(model, make_record)


@router.get("/models/{model}/versions/{version}")
async def show_version(
    model: ModelPath, version: Annotated[int, Path(ge=1, le=MAX_VERSION)], api: Api
) -> ModelVersionRecord:
    """A version's lineage and maintenance instructions."""
    return await api.store.version(model, version)


@router.get("/models/{model}/deployment", responses={404: {"description": "Never deployed."}})
async def show_deployment(model: ModelPath, api: Api) -> Deployment:
    """What serves a model now."""
    deployment = await api.store.deployment(model)
    if deployment is None:
        raise HTTPException(404, f"model {model!r} was never deployed")
    return deployment


@router.put(
    "/models/{model}/deployment",
    responses={
        409: {
            "description": "The registry's rules refuse the deployment (e.g. a version "
            "not registered)."
        }
    },
)
async def deploy(model: ModelPath, who: Writer, body: DeployRequest, api: Api) -> RevisionOut:
    """Serve a champion (and a challenger at a share, as canary or shadow).

    Publishes ``model.deployed`` with the whole new deployment.
    """
    entry = await api.store.deploy(
        model,
        champion=body.champion,
        challenger=body.challenger,
        share=body.challenger_share,
        mode=body.mode,
        actor=who.name,
        reason=body.reason,
        incident_id=body.incident_id,
        at=api.clock(),
    )
    return RevisionOut.of(entry)


@router.put(
    "/models/{model}/deployment/traffic",
    responses={409: {"description": "No deployment, or no challenger to give a share to."}},
)
async def set_traffic(model: ModelPath, who: Writer, body: TrafficRequest, api: Api) -> RevisionOut:
    """Change the challenger's share (0 to 50 %) and optionally the mode."""
    entry = await api.store.set_traffic(
        model,
        share=body.challenger_share,
        mode=body.mode,
        actor=who.name,
        reason=body.reason,
        incident_id=body.incident_id,
        at=api.clock(),
    )
    return RevisionOut.of(entry)


@router.post(
    "/models/{model}/deployment/promote",
    responses={409: {"description": "There is no challenger to promote."}},
)
async def promote(model: ModelPath, who: Writer, body: ChangeReason, api: Api) -> RevisionOut:
    """Make the challenger the champion. Publishes ``model.promoted``."""
    entry = await api.store.promote(
        model, actor=who.name, reason=body.reason, incident_id=body.incident_id, at=api.clock()
    )
    return RevisionOut.of(entry)


@router.post(
    "/models/{model}/deployment/rollback",
    responses={
        409: {"description": "Nothing to roll back to, or expected_revision is no longer in force."}
    },
)
async def rollback(
    model: ModelPath, who: Rollbacker, body: RollbackRequest, api: Api
) -> RevisionOut:
    """One step back: withdraw the challenger, or else restore the previous champion.

    With ``expected_revision``, only if that revision is still in force (409 otherwise).
    Publishes ``model.rolled_back``.
    """
    entry = await api.store.rollback(
        model,
        actor=who.name,
        reason=body.reason,
        incident_id=body.incident_id,
        at=api.clock(),
        expected_revision=body.expected_revision,
    )
    return RevisionOut.of(entry)


@router.get("/models/{model}/history")
async def history(model: ModelPath, api: Api) -> History:
    """Every deployment revision and alias move: who moved what, when and why."""
    entries = await api.store.history(model)
    return History(
        model=model,
        revisions=[RevisionOut.of(entry) for entry in entries],
        alias_moves=[AliasMoveOut.of(move) for move in alias_moves(entries)],
    )


@router.get("/models/{model}/deployment/at")
async def deployed_at(
    model: ModelPath,
    time: Annotated[AwareDatetime, Query(description="Timezone-aware ISO 8601 time.")],
    api: Api,
) -> DeploymentAt:
    """What was in production at a time: champion, challenger and the revision in force."""
    entry = deployment_at(await api.store.history(model), time)
    deployment = entry.deployment if entry else None
    return DeploymentAt(
        model=model,
        at=time,
        champion=deployment.champion.version if deployment and deployment.champion else None,
        challenger=(
            deployment.challenger.version if deployment and deployment.challenger else None
        ),
        revision=RevisionOut.of(entry) if entry else None,
    )


@router.get("/deployments")
async def list_deployments(api: Api) -> dict[str, Deployment]:
    """The current deployment of every deployed model."""
    return await api.store.deployments()


@router.get(
    "/artifacts/{sha256}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def get_artifact(
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")], api: Api
) -> Response:
    """A registered version's artifact (skops file), by SHA-256."""
    content = await api.artifacts.get(sha256) if await api.store.knows_artifact(sha256) else None
    if content is None:
        raise HTTPException(404, f"no registered artifact {sha256}")
    return Response(content, media_type="application/octet-stream")


@router.get(
    "/datasets/{digest}",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_dataset(
    who: Caller,
    digest: Annotated[str, Path(pattern=r"^sha256:[0-9a-f]{64}$")],
    api: Api,
) -> Response:
    """A dataset by digest: CSV, the spec's features then the label column. It is training
    data (or a snapshot of live examples): role l2 or higher, or scope ``datasets:read``."""
    require_role(who, DATASET_READER_ROLE, "read training data", scope=Scope.DATASETS_READ)
    content = await api.datasets.get(digest.removeprefix("sha256:"))
    if content is None:
        raise HTTPException(404, f"no dataset {digest}")
    return Response(content, media_type="text/csv")

"""Test doubles of the services the monitor talks to over HTTP: the registry's read API and the
scorer's ``POST /predict`` (both speaking the real contracts), and a loopback server to run them
(or the monitor itself) on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException, Response

from contracts import Deployment, Features, ModelVersionRecord
from contracts.scoring_api import Prediction, PredictRequest, PredictResponse
from services.runtime import free_port


class FakeRegistry:
    """The registry's read API over a dict: versions and deployments."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, int], ModelVersionRecord] = {}
        self.deployments: dict[str, Deployment] = {}
        self.requests = 0
        self.down = False

    def add(self, *records: ModelVersionRecord) -> FakeRegistry:
        for record in records:
            self.records[(record.model, record.version)] = record
        return self

    def deploy(self, model: str, deployment: Deployment) -> FakeRegistry:
        self.deployments[model] = deployment
        return self

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.down:
            raise httpx.ConnectError("registry down")
        parts = request.url.path.strip("/").split("/")
        if parts == ["deployments"]:
            body = {m: d.model_dump(mode="json") for m, d in self.deployments.items()}
            return httpx.Response(200, json=body)
        if len(parts) == 3 and parts[0] == "models" and parts[2] == "deployment":
            deployment = self.deployments.get(parts[1])
            if deployment is None:
                return httpx.Response(404, json={"detail": "never deployed"})
            return httpx.Response(200, content=deployment.model_dump_json())
        if len(parts) == 4 and parts[0] == "models" and parts[2] == "versions":
            record = self.records.get((parts[1], int(parts[3])))
            if record is None:
                return httpx.Response(404, json={"detail": "no such version"})
            return httpx.Response(200, content=record.model_dump_json())
        return httpx.Response(404, json={"detail": "not found"})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def app(self) -> FastAPI:
        """The same API as a FastAPI app, for a loopback server."""
        app = FastAPI()

        @app.get("/{path:path}")
        async def any_get(path: str) -> Response:
            answer = self.handle(httpx.Request("GET", f"http://registry/{path}"))
            return Response(answer.content, answer.status_code, media_type="application/json")

        return app


E = TypeVar("E")

ScorerMode = Literal["right", "wrong", "error", "slow", "garbage"]


def radius_rule(features: Features) -> str:
    """A stand-in model: large tumours are malignant."""
    radius = features.get("mean radius")
    return "malignant" if isinstance(radius, int | float) and radius > 15 else "benign"


class FakeScorer:
    """``POST /predict`` speaking :mod:`contracts.scoring_api`, answering with a rule; its mode
    turns it into a broken model (``wrong``), a failing server (``error``), a hung one
    (``slow``) or one that answers nonsense (``garbage``)."""

    def __init__(self, version: int = 1, rule: Callable[[Features], str] = radius_rule) -> None:
        self.version = version
        self.rule = rule
        self.mode: ScorerMode = "right"
        self.slow_seconds = 30.0
        self.calls = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/predict")
        async def predict(request: PredictRequest) -> PredictResponse:
            self.calls += 1
            if self.mode == "error":
                raise HTTPException(status_code=503, detail="model not loaded")
            if self.mode == "slow":
                await asyncio.sleep(self.slow_seconds)
            predictions = []
            for instance in request.instances:
                answer = self.rule(instance.features)
                if self.mode == "wrong":
                    answer = "benign" if answer == "malignant" else "malignant"
                predictions.append(
                    Prediction(
                        request_id=instance.request_id or "made-up",
                        model_version=self.version,
                        variant="champion",
                        predicted_class=answer,
                        probabilities={answer: 0.9, "other": 0.1},
                        confidence=0.9,
                    )
                )
            return PredictResponse(model=request.model, predictions=predictions)

        @app.post("/garbage/predict")
        async def garbage() -> dict[str, str]:
            return {"not": "a prediction"}

        return app


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve an ASGI app on a free loopback port for the block; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        task.cancel()
        raise AssertionError(f"loopback server on port {port} did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)

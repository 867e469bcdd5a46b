"""What the scorer serves: the newest deployment it knows per model. Pure.

Deployments arrive from ``models`` events and from the registry's API, in any order and more than
once; the revision decides, so an older or repeated deployment never replaces a newer one. A batch
takes one :meth:`DeploymentBook.snapshot` and scores every request with it, so a deployment that
changes mid-batch never mis-attributes a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from contracts.registry import Deployment

__all__ = ["DeploymentBook"]


class DeploymentBook:
    """The newest known deployment of every model."""

    def __init__(self) -> None:
        self._deployments: dict[str, Deployment] = {}

    def is_newer(self, model: str, deployment: Deployment) -> bool:
        """Whether a deployment is newer than the one held for its model."""
        held = self._deployments.get(model)
        return held is None or deployment.revision > held.revision

    def apply(self, model: str, deployment: Deployment) -> bool:
        """Hold a deployment if it is newer; return whether it was taken."""
        if not self.is_newer(model, deployment):
            return False
        # Replace the mapping rather than mutate it: snapshots already taken stay as they were.
        self._deployments = self._deployments | {model: deployment}
        return True

    def snapshot(self) -> Mapping[str, Deployment]:
        """Return the deployments as they are now; later changes do not affect it."""
        return MappingProxyType(self._deployments)

    def __contains__(self, model: object) -> bool:
        return model in self._deployments

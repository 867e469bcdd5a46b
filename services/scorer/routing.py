"""Sticky traffic split, pure: which deployment slot answers a request.

A request goes to the challenger when a hash of (model, champion version, challenger version,
entity id or else request id) falls below the challenger's share. The same id therefore always
lands on the same variant for a given pair of versions, and raising the share only moves more ids
to the challenger, never back. The hash is uniform, so the observed share converges on the
configured one (within a percentage point over 10,000 ids).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from contracts.registry import Deployment, DeploymentMode, ServedVersion
from contracts.values import Variant

__all__ = ["Route", "challenger_bucket", "route"]

_SCALE = float(2**64)


@dataclass(frozen=True)
class Route:
    """Who answers a request, and who scores it in the shadow (never returned)."""

    served: ServedVersion
    variant: Variant
    shadow: ServedVersion | None = None


def challenger_bucket(model: str, deployment: Deployment, sticky_id: str) -> float:
    """Return a number in [0, 1) fixed by the id and the deployment's pair of versions.

    >>> from contracts.registry import ServedVersion
    >>> v = [ServedVersion(version=n, artifact_uri="a", artifact_sha256="0" * 64) for n in (1, 2)]
    >>> d = Deployment(revision=1, champion=v[0], challenger=v[1], challenger_share=0.1)
    >>> challenger_bucket("m", d, "patient-1") == challenger_bucket("m", d, "patient-1")
    True
    """
    champion = deployment.champion.version if deployment.champion else 0
    challenger = deployment.challenger.version if deployment.challenger else 0
    key = f"{model}\x1f{champion}\x1f{challenger}\x1f{sticky_id}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def route(model: str, deployment: Deployment, sticky_id: str) -> Route | None:
    """Return the route of a request (``None`` if the deployment has no champion)."""
    champion = deployment.champion
    if champion is None:
        return None
    challenger = deployment.challenger
    if challenger is None or deployment.challenger_share <= 0:
        return Route(champion, Variant.CHAMPION)
    picked = challenger_bucket(model, deployment, sticky_id) < deployment.challenger_share
    if not picked:
        return Route(champion, Variant.CHAMPION)
    if deployment.mode is DeploymentMode.SHADOW:
        return Route(champion, Variant.CHAMPION, shadow=challenger)
    return Route(challenger, Variant.CHALLENGER)

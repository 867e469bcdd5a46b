"""The routing policy: where alerts go, with which runbooks and timers, and what inhibits what.

Loaded from YAML (``runbooks/routing.yaml``) and validated at start. The first route whose matcher
accepts one of an incident's signals wins; the last route must accept every alert. The chosen route
is frozen into the incident when it is routed (``group_wait`` after it opens), so editing the
policy never changes a running escalation.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts.alerts import AlertKind, Severity
from contracts.incidents import Tier

__all__ = [
    "InhibitionRule",
    "Matcher",
    "PolicyError",
    "Route",
    "RoutingPolicy",
    "TierTimers",
    "load_policy",
    "route_for",
]


_MAX_MINUTES = 60 * 24 * 366  # a year: longer is a typo, and timedelta overflows far beyond


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Matcher(_Strict):
    """Which alerts a rule applies to; an empty list matches anything."""

    kinds: list[AlertKind] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=list)
    models: list[str] = Field(
        default_factory=list, description="Model names or shell-style patterns ('churn-*')."
    )

    def matches(self, model: str, kind: AlertKind, severity: Severity) -> bool:
        """Whether an alert with these attributes matches."""
        return (
            (not self.kinds or kind in self.kinds)
            and (not self.severities or severity in self.severities)
            and (not self.models or any(fnmatch.fnmatchcase(model, p) for p in self.models))
        )

    @property
    def matches_everything(self) -> bool:
        """Whether the matcher has no conditions."""
        return not (self.kinds or self.severities or self.models)

    @property
    def covers_every_alert(self) -> bool:
        """Whether the matcher restricts nothing: no condition, or only conditions every alert
        meets (every kind, every severity, a model pattern without one literal character, such
        as ``*`` or ``[!x]*``)."""
        return (
            (not self.kinds or set(self.kinds) >= set(AlertKind))
            and (not self.severities or set(self.severities) >= set(Severity))
            and (not self.models or any(_wildcards_only(pattern) for pattern in self.models))
        )


def _wildcards_only(pattern: str) -> bool:
    """Whether a shell-style pattern names no literal character (``*``, ``?``, ``[...]`` only)."""
    return not re.sub(r"\[!?\]?[^\]]*\]|[*?]", "", pattern)


class TierTimers(_Strict):
    """How long a tier has before the incident escalates, and whom it pages meanwhile."""

    ack_timeout_minutes: float = Field(
        gt=0, le=_MAX_MINUTES, description="Escalate if not acknowledged by then."
    )
    mitigate_timeout_minutes: float = Field(
        gt=0,
        le=_MAX_MINUTES,
        description="Escalate if not mitigated (monitoring or resolved) by then.",
    )
    notify: list[str] | None = Field(
        default=None,
        description=(
            "Who is paged when the incident reaches this tier: `schedule:NAME`, `person:NAME`, "
            "`owners` (the model's owners, else this tier's schedules) or `tier` (the schedules "
            "of this tier). Default: `owners` at L3, `tier` below."
        ),
    )
    remind_every_minutes: float | None = Field(
        default=None,
        gt=0,
        le=_MAX_MINUTES,
        description="Page the same people again this often while nobody acknowledges.",
    )

    @field_validator("notify")
    @classmethod
    def _targets(cls, targets: list[str] | None) -> list[str] | None:
        for target in targets or []:
            kind, _, name = target.partition(":")
            if (kind in ("owners", "tier") and not name) or (
                kind in ("schedule", "person") and name
            ):
                continue
            raise ValueError(
                f"unknown notify target {target!r}: use schedule:NAME, person:NAME, owners or tier"
            )
        return targets

    def notify_targets(self, tier: Tier) -> list[str]:
        """Whom the tier pages, with the default filled in."""
        if self.notify is not None:
            return list(self.notify)
        return ["owners"] if tier is Tier.L3 else ["tier"]

    @property
    def remind_every(self) -> timedelta | None:
        """How often to remind, if at all."""
        minutes = self.remind_every_minutes
        return timedelta(minutes=minutes) if minutes is not None else None

    @property
    def ack_timeout(self) -> timedelta:
        """The acknowledgement timeout."""
        return timedelta(minutes=self.ack_timeout_minutes)

    @property
    def mitigate_timeout(self) -> timedelta:
        """The mitigation timeout."""
        return timedelta(minutes=self.mitigate_timeout_minutes)


class Route(_Strict):
    """Where matching alerts go: the level-one runbook chain and each tier's timers."""

    name: str = Field(min_length=1)
    match: Matcher = Field(default_factory=Matcher)
    runbooks: list[str] = Field(
        default_factory=list,
        description="Level-one runbooks, run in order until one is verified; empty: go to L2.",
    )
    tiers: dict[Tier, TierTimers]

    @model_validator(mode="after")
    def _every_tier_has_timers(self) -> Self:
        missing = [tier.value for tier in Tier if tier not in self.tiers]
        if missing:
            raise ValueError(f"route {self.name!r}: no timers for {', '.join(missing)}")
        return self


class InhibitionRule(_Strict):
    """While a *source* signal is active on an open incident, *target* alerts are suppressed.

    ``equal`` names the attributes source and target must share (``model``, ``model_version``).
    A source of ``retrain_in_flight`` is active while a retrain of the model is in flight: asked
    and not yet answered (for at most ``retrain_answer_timeout_minutes``), or answered with a run
    that has not ended (for at most ``retrain_timeout_minutes``); see
    :mod:`services.incident_log.retrains`.
    """

    name: str = Field(min_length=1)
    source: Matcher | None = None
    retrain_in_flight: bool = False
    target: Matcher
    equal: list[str] = Field(default_factory=lambda: ["model"])

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.source is None) == (not self.retrain_in_flight):
            raise ValueError(f"inhibition {self.name!r}: give either source or retrain_in_flight")
        unknown = set(self.equal) - {"model", "model_version"}
        if unknown:
            raise ValueError(f"inhibition {self.name!r}: cannot compare {sorted(unknown)}")
        return self


class RoutingPolicy(_Strict):
    """The whole policy file."""

    group_wait_seconds: float = Field(
        default=30,
        ge=0,
        description="How long a new incident gathers correlated alerts before it is routed.",
    )
    correlation_window_minutes: float = Field(
        default=30, ge=0, description="Alerts on one model version this close join one incident."
    )
    reopen_window_minutes: float = Field(
        default=60, ge=0, description="A recurrence this soon after resolution reopens it."
    )
    claim_lease_minutes: float = Field(
        default=30, gt=0, description="A claim lapses after this long without activity."
    )
    retrain_timeout_minutes: float = Field(
        default=120, gt=0, description="A retrain counts as in flight for at most this long."
    )
    retrain_answer_timeout_minutes: float = Field(
        default=5,
        gt=0,
        description=(
            "A retrain ask the retrainer has not answered counts as in flight for at most this "
            "long (a retrainer that is down cannot mute decay alerts for long)."
        ),
    )
    routes: list[Route] = Field(min_length=1)
    inhibitions: list[InhibitionRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _last_route_catches_all(self) -> Self:
        names = [route.name for route in self.routes]
        if len(set(names)) != len(names):
            raise ValueError("route names must be unique")
        if not self.routes[-1].match.matches_everything:
            raise ValueError(
                f"the last route ({self.routes[-1].name!r}) must match every alert (no conditions)"
            )
        return self

    @property
    def group_wait(self) -> timedelta:
        """How long a new incident waits for correlated alerts before it is routed."""
        return timedelta(seconds=self.group_wait_seconds)

    @property
    def correlation_window(self) -> timedelta:
        """How close in time correlated alerts are."""
        return timedelta(minutes=self.correlation_window_minutes)

    @property
    def reopen_window(self) -> timedelta:
        """How soon after resolution a recurrence reopens."""
        return timedelta(minutes=self.reopen_window_minutes)

    @property
    def claim_lease(self) -> timedelta:
        """How long a claim lasts without activity."""
        return timedelta(minutes=self.claim_lease_minutes)

    @property
    def retrain_timeout(self) -> timedelta:
        """How long a retrain counts as in flight."""
        return timedelta(minutes=self.retrain_timeout_minutes)

    @property
    def retrain_answer_timeout(self) -> timedelta:
        """How long an unanswered retrain ask counts as in flight."""
        return timedelta(minutes=self.retrain_answer_timeout_minutes)


class PolicyError(ValueError):
    """The policy file is missing, not YAML, or invalid; the message names the file and field."""


def load_policy(path: Path) -> RoutingPolicy:
    """Read and validate a routing policy file."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise PolicyError(f"{path}: cannot read the routing policy: {error}") from None
    except yaml.YAMLError as error:
        raise PolicyError(f"{path}: not valid YAML: {error}") from None
    try:
        return RoutingPolicy.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in problem['loc']) or '(file)'}: {problem['msg']}"
            for problem in error.errors(include_url=False)
        )
        raise PolicyError(f"{path}: invalid routing policy: {problems}") from None


def route_for(
    policy: RoutingPolicy, model: str, signals: Iterable[tuple[AlertKind, Severity]]
) -> Route:
    """Return the first route matching any of a model's signals (the last route matches all)."""
    kinds = list(signals)
    return next(
        route
        for route in policy.routes
        if any(route.match.matches(model, kind, severity) for kind, severity in kinds)
        or route.match.matches_everything
    )

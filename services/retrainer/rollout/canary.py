"""The canary: what to do with an approved candidate serving a share of traffic, on each of the
monitor's live comparisons with the champion. Pure.

::

    approved ──deploy as challenger (10 %)──▶ canary ──challenger_worse──────────────▶ rolled back
                                                 │ ──no difference or better, both sides
                                                 │   with enough labels───────────────▶ promoted
                                                 └──insufficient data / too few labels──▶ (wait)

Automation may withdraw a candidate, never promote one past a person: only a candidate whose
promotion request was approved is ever in the canary stage, and a comparison about any other pair
of versions changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from contracts.monitoring import ComparisonVerdict, VariantsCompared

__all__ = ["CanaryAction", "CanaryDecision", "Rollout", "judge_canary"]


class Rollout(StrEnum):
    """Where an approved candidate is in its rollout."""

    CANARY = "canary"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    WITHDRAWN = "withdrawn"


class CanaryAction(StrEnum):
    """What a comparison calls for."""

    WAIT = "wait"
    PROMOTE = "promote"
    ROLL_BACK = "roll_back"
    IGNORE = "ignore"


@dataclass(frozen=True)
class CanaryDecision:
    """An action and its reason, for the timeline."""

    action: CanaryAction
    reason: str


def judge_canary(
    comparison: VariantsCompared,
    *,
    candidate_version: int,
    champion_version: int,
    rollout: Rollout | None,
    min_labels: int,
) -> CanaryDecision:
    """Decide on a comparison of the candidate (in canary) with the champion.

    ``min_labels`` is the retrainer's own floor on labels per side; the monitor's
    ``min_samples`` applies too, whichever is higher.
    """
    if rollout is not Rollout.CANARY:
        return CanaryDecision(CanaryAction.IGNORE, f"v{candidate_version} is not in canary")
    if (comparison.challenger_version, comparison.champion_version) != (
        candidate_version,
        champion_version,
    ):
        return CanaryDecision(
            CanaryAction.IGNORE,
            f"comparison of v{comparison.challenger_version} with v{comparison.champion_version}"
            f" is not about canary v{candidate_version} against champion v{champion_version}",
        )
    figures = (
        f"{comparison.metric} {_fmt(comparison.challenger_value)} vs "
        f"{_fmt(comparison.champion_value)} on {comparison.challenger_samples} / "
        f"{comparison.champion_samples} labels ({comparison.test}, p={_fmt(comparison.p_value)})"
    )
    if comparison.verdict is ComparisonVerdict.CHALLENGER_WORSE:
        return CanaryDecision(CanaryAction.ROLL_BACK, f"canary worse on live traffic: {figures}")
    if comparison.verdict is ComparisonVerdict.INSUFFICIENT_DATA:
        return CanaryDecision(CanaryAction.WAIT, f"not enough labels yet: {figures}")
    needed = max(min_labels, comparison.min_samples)
    if min(comparison.challenger_samples, comparison.champion_samples) < needed:
        return CanaryDecision(CanaryAction.WAIT, f"needs {needed} labels on each side: {figures}")
    return CanaryDecision(
        CanaryAction.PROMOTE,
        f"canary {comparison.verdict.value.replace('_', ' ')} on live traffic: {figures}",
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"

"""Whether a routing policy's level-one chains can run from a catalogue, pure.

The incident log reads the routing policy and the runner reads the catalogue, each validated
alone at start; a route naming a runbook the runner does not have, one that answers none of the
route's alert kinds, one that level one may not run, or one needing a value only a person can
give, would only surface when an incident escalates because its level-one run was refused.
``vigil runbooks check-routing`` checks the pair before either service starts (here, outside both
services, because only this pair needs both).
"""

from __future__ import annotations

from contracts.alerts import AlertKind
from contracts.incidents import Tier
from services.incident_log.routing import RoutingPolicy
from services.runbook_runner.catalog import Catalog

__all__ = ["chain_problems"]


def chain_problems(policy: RoutingPolicy, catalog: Catalog) -> list[str]:
    """Every reason a route's level-one runbook chain could not run as the policy means it."""
    problems: list[str] = []
    for route in policy.routes:
        where = f"route {route.name!r}"
        answered: set[AlertKind] = set()
        for name in route.runbooks:
            runbook = catalog.get(name)
            if runbook is None:
                problems.append(f"{where}: runbook {name!r} is not in the catalogue")
                continue
            answered |= set(runbook.alert_kinds)
            if runbook.tier is not Tier.L1:
                problems.append(
                    f"{where}: runbook {name!r} needs tier {runbook.tier.value}, "
                    "but level-one chains run as L1"
                )
            if runbook.needs_approval:
                problems.append(
                    f"{where}: runbook {name!r} needs approval, "
                    "but level-one chains run without a person to approve them"
                )
            if route.match.kinds and not set(route.match.kinds) & set(runbook.alert_kinds):
                problems.append(
                    f"{where}: runbook {name!r} answers none of the route's alert kinds "
                    f"({', '.join(kind.value for kind in route.match.kinds)})"
                )
            problems.extend(
                f"{where}: runbook {name!r} needs parameter {parameter!r}, "
                "which only a person can give"
                for parameter, spec in runbook.parameters.items()
                if spec.required and spec.source is None
            )
        uncovered = [kind.value for kind in route.match.kinds if kind not in answered]
        if uncovered and answered & set(route.match.kinds):  # else reported per runbook above
            problems.append(f"{where}: no runbook of its chain answers {', '.join(uncovered)}")
    return problems

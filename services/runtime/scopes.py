"""Scopes: the calls a service's token may make, named once for every service; and the roles a
person's token carries, lowest first.

An incident-log token carries a role (a person's) or scopes (one of Vigil's own services'). A
scoped token may make exactly the calls its scopes name and nothing else (403), whatever a role
would allow; it cannot sign in to the console. The service that serves a call checks its scope:

=================== ==================================================== ==============
scope               calls                                                checked by
=================== ==================================================== ==============
incidents:read      ``GET /incidents/{id}``, ``…/timeline``, ``…/alerts``, incident log
                    ``GET /incidents``
incidents:report    ``POST /incidents/{id}/reports``                     incident log
retrain:request     ``POST /incidents/{id}/retrain``; ``POST /retrains``  incident log;
                                                                         retrainer
retrain:on-behalf   the same, naming the person asked for                incident log;
                    (``on_behalf_of``: four-eyes follows the person)     retrainer
registry:rollback   ``POST /models/{model}/deployment/rollback``         retrainer
datasets:read       ``GET /datasets/{digest}``                           retrainer
labels:write        ``POST /labels``                                     scorer
=================== ==================================================== ==============

:data:`SERVICE_SCOPES` is what each service needs, from every service-to-service HTTP call in
Vigil; the others (scorer → registry reads, monitor → registry reads and scorer ``/predict``,
retrainer and scorer → incident log ``/whoami`` with the caller's own token) need no token at
all. ``labels:write`` is held by no Vigil service: it is for a team's own labelling job.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from services.runtime.names import ServiceName

__all__ = ["ROLES", "SERVICE_SCOPES", "Scope", "role_at_least", "scopes_text"]

ROLES = ("viewer", "l1", "l2", "l3", "admin")
"""The identity provider's roles, lowest first."""


def role_at_least(role: str, lowest: str) -> bool:
    """Whether ``role`` ranks at or above ``lowest`` (an unknown role ranks below all).

    >>> role_at_least("l3", "l2"), role_at_least("l1", "l2"), role_at_least("root", "viewer")
    (True, False, False)
    """
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(lowest)


class Scope(StrEnum):
    """One kind of call a scoped token may make."""

    INCIDENTS_READ = "incidents:read"
    INCIDENTS_REPORT = "incidents:report"
    RETRAIN_REQUEST = "retrain:request"
    RETRAIN_ON_BEHALF = "retrain:on-behalf"
    REGISTRY_ROLLBACK = "registry:rollback"
    DATASETS_READ = "datasets:read"
    LABELS_WRITE = "labels:write"


SERVICE_SCOPES: dict[ServiceName, frozenset[Scope]] = {
    ServiceName.DRIFT_DETECTOR: frozenset({Scope.DATASETS_READ}),
    ServiceName.RUNBOOK_RUNNER: frozenset(
        {
            Scope.INCIDENTS_READ,
            Scope.INCIDENTS_REPORT,
            Scope.RETRAIN_REQUEST,
            Scope.RETRAIN_ON_BEHALF,
            Scope.REGISTRY_ROLLBACK,
            Scope.DATASETS_READ,
        }
    ),
}
"""The scopes of each service that calls another's authenticated API: the drift detector reads
reference datasets; the runner's scripts read incidents, attach reports, ask for retrains, roll
back and read training data (``runbooks/*.py``); it asks for retrains on behalf of the person who
ran the runbook. A service absent here gets no token."""


def scopes_text(scopes: Iterable[Scope | str]) -> str:
    """Scopes as one sorted, comma-separated line (for messages and tables).

    >>> scopes_text([Scope.DATASETS_READ, Scope.INCIDENTS_READ])
    'datasets:read, incidents:read'
    """
    return ", ".join(sorted(str(scope) for scope in scopes))

"""The environment a runbook script sees: an allow-list of the runner's, plus Vigil's own.

Nothing else of the runner's environment reaches a script: not its database URL, not its
broker credentials, not any secret a deployment put there. What a script needs to call Vigil's
HTTP APIs is given explicitly: the service addresses, a token scoped to runbooks, the run's
identity (``VIGIL_RUN_ID``) and the person or system that asked for the run
(``VIGIL_ON_BEHALF_OF``, from the request's ``requested_by``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["script_environment"]


def script_environment(
    inherited: Mapping[str, str], allow: Iterable[str], vigil: Mapping[str, str]
) -> dict[str, str]:
    """Return the allow-listed variables of ``inherited``, overlaid with ``vigil``'s.

    >>> script_environment({"PATH": "/bin", "DB_PASSWORD": "x"}, ["PATH"], {"VIGIL_RUN_ID": "r1"})
    {'PATH': '/bin', 'VIGIL_RUN_ID': 'r1'}
    """
    kept = {name: inherited[name] for name in allow if name in inherited}
    return kept | dict(vigil)

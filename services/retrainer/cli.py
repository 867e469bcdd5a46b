"""The retrainer's command line: where the service is and how to call it, for every room's
commands (``vigil models`` in :mod:`.registry.cli`, ``vigil retrain`` in :mod:`.retraining.cli`,
``vigil approve`` / ``vigil reject`` in :mod:`.rollout.cli`).

The URL comes from ``--url``, ``VIGIL_REGISTRY_URL`` (the retrainer serves the registry) or the
running local stack; the token from ``--token``, ``VIGIL_TOKEN``, or the local stack's
credentials (:mod:`services.runtime.local_stack`). A refusal prints the
service's reason and exits 3; an unreachable service exits 4 (:mod:`services.runtime.command_line`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Annotated

from services.runtime.api_client import ApiClient
from services.runtime.command_line import api_client, url_option
from services.runtime.names import ServiceName

__all__ = ["Url", "client_for"]

Url = Annotated[str | None, url_option(ServiceName.RETRAINER)]
"""The retrainer's URL (it serves the registry: ``VIGIL_REGISTRY_URL``)."""


def client_for(url: str | None, token: str | None) -> AbstractContextManager[ApiClient]:
    """A client of the retrainer (a minute per call: registering trains nothing but uploads and
    checks an artifact); an API error ends the command (the exit-code rule)."""
    return api_client(ServiceName.RETRAINER, url, token, timeout_s=60.0)

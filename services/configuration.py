"""The configuration reference: every environment variable each service reads, generated from
the settings classes themselves (``vigil settings`` prints it; docs/configuration.md holds it)."""

from __future__ import annotations

import importlib
from pathlib import Path

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from services.runtime.names import ServiceName
from services.runtime.settings import KafkaSettings, ServiceSettings

__all__ = ["reference"]

_INTRO = """# Configuration reference

Generated from the settings classes by `vigil settings` (a test keeps this file in sync: run
`make docs` after changing a setting). Every setting is an environment variable; the shared ones
(`VIGIL_KAFKA_*`, `VIGIL_STATE_DIR`, the service URLs) mean the same to every service.
"""


def reference() -> str:
    """The whole reference, as Markdown."""
    parts = [_INTRO, "## Shared by every service\n", _table(KafkaSettings, shared=False)]
    parts.append(_table(ServiceSettings, shared=True))
    for service in ServiceName:
        settings = importlib.import_module(f"{service.package}.settings").Settings
        parts += [f"## {service.value}\n", _table(settings, shared=False)]
    stack = importlib.import_module("services.stack.stack").StackSettings
    parts += [_STACK_INTRO, _table(stack, shared=False)]
    parts += [_CLI_INTRO, _cli_table()]
    return "\n".join(parts)


_CLI_INTRO = """## The command line (vigil)

What `vigil incidents`, `vigil models`, `vigil retrain`, `vigil labels` and the other commands
that call a service read (each also shows in its `--help`). With none set, they use the stack
running on this machine, as found by `services/runtime/local_stack.py` (`stack.json` in
`$VIGIL_STATE_DIR`, else `.vigil` or `.vigil-demo` of the current folder: `vigil up`, `vigil
demo`, `make run`), else the default ports. A stack file is used only if it is the user's own and
writable by no one else, names loopback URLs only and a credentials file beside it, and its
process is alive and older than the file; any other is ignored, so a cloned folder cannot steer a
token elsewhere.
"""


def _cli_table() -> str:
    from services.runtime.api_client import CLI_VARIABLES

    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | {default} | {meaning} |" for name, default, meaning in CLI_VARIABLES]
    return "\n".join(rows) + "\n"


_STACK_INTRO = """## vigil up (the supervisor)

Read by `vigil up` and `vigil demo` (besides `VIGIL_STATE_DIR` and `VIGIL_KAFKA_*`): the stack,
its restarts, and how it watches Vigil (services/stack/watch.py; docs/operations.md, "Platform
alerts"). `VIGIL_STACK_SERVICE_ENV` passes settings to the services.
"""


def _table(settings: type[BaseSettings], *, shared: bool) -> str:
    """A table of a class's variables: the shared ones (read under one name by every service),
    or the class's own (read under its prefix, or under one name some services share, such as
    ``VIGIL_RUNBOOK_SIGNING_KEY``)."""
    env_prefix = settings.model_config.get("env_prefix", "")
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in settings.model_fields.items():
        aliased = isinstance(field.validation_alias, AliasChoices)
        if name == "kafka" or (shared and not aliased):
            continue
        if not shared and aliased and name in ServiceSettings.model_fields:
            continue
        variable = _variable(name, field, env_prefix)
        rows.append(f"| `{variable}` | {_default(field)} | {_meaning(field)} |")
    return "\n".join(rows) + "\n"


def _variable(name: str, field: FieldInfo, env_prefix: str) -> str:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return next(choice for choice in alias.choices if isinstance(choice, str))
    return f"{env_prefix}{name}".upper()


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]  # factories here take none
        except TypeError:
            return "(computed)"
        if isinstance(value, BaseSettings):
            return "(see above)"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, Path) and value.is_absolute():
        return "(this checkout's folder)"
    if isinstance(value, list):
        return f"`{','.join(str(getattr(item, 'value', item)) for item in value)}`"
    text = getattr(value, "value", value)
    return f"`{text}`".replace("|", "\\|")


def _meaning(field: FieldInfo) -> str:
    return (field.description or "").replace("|", "\\|").replace("\n", " ")

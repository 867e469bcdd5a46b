"""A replica starting: migrate one service's database, print what it found and left (JSON).

``python -m tests.migrations.migrate_once SERVICE URL [VERSIONS]``; prints ``ready`` first, so a
test knows the process is up before it lets the migrations through. ``VERSIONS`` replaces the
service's revisions folder (a test's copy with a revision of its own).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from dataclasses import replace
from pathlib import Path

from services.runtime import create_engine
from services.runtime.migrations import SchemaHistory, migrate


async def main(service: str, url: str, versions: str | None) -> None:
    history: SchemaHistory = importlib.import_module(
        f"services.{service.replace('-', '_')}.migrations"
    ).HISTORY
    if versions is not None:
        history = replace(history, versions=Path(versions))
    engine = create_engine(url)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        upgrade = await migrate(engine, history)
    finally:
        await engine.dispose()
    sys.stdout.write(json.dumps({"before": upgrade.before, "after": upgrade.after}) + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))

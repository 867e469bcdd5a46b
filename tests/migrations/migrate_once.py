"""A replica starting: migrate one service's database, print what it found and left (JSON).

``python -m tests.migrations.migrate_once SERVICE URL``; prints ``ready`` first, so a test knows
the process is up before it lets the migrations through.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys

from services.runtime import create_engine
from services.runtime.migrations import SchemaHistory, migrate


async def main(service: str, url: str) -> None:
    history: SchemaHistory = importlib.import_module(
        f"services.{service.replace('-', '_')}.migrations"
    ).HISTORY
    engine = create_engine(url)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        upgrade = await migrate(engine, history)
    finally:
        await engine.dispose()
    sys.stdout.write(json.dumps({"before": upgrade.before, "after": upgrade.after}) + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

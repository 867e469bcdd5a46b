"""Service databases get their schema only through their migrations."""

from __future__ import annotations

from pathlib import Path

import services

SERVICES = Path(services.__file__).parent


def test_no_service_code_creates_tables_behind_the_migrations() -> None:
    offenders = [
        str(path.relative_to(SERVICES))
        for path in SERVICES.rglob("*.py")
        if "migrations" not in path.parts
        and ("create_all" in path.read_text() or "ADD COLUMN" in path.read_text().upper())
    ]
    assert offenders == [], "add a revision instead (docs/DEVELOPING.md, Changing a table)"

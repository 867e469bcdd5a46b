"""The docs' code tables name modules and functions that exist.

`docs/architecture.md` ("Where it lives"), `docs/retraining.md` and `docs/monitor.md` ("Where in
the code") map behaviour to a module and a function; a rename that forgets the docs would send a
reader to nothing. Each row's `path.py` must exist and each backticked `Name.attr` in the next
cell must be defined in it: a top-level class, function or assignment, then a method, a nested
function or a class attribute inside it. Read with `ast`, nothing imported, so the test is fast
and pure.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (document, heading of the section whose tables point at code)
DOCUMENTS = [
    ("docs/architecture.md", "## Where it lives"),
    ("docs/retraining.md", "## Where in the code"),
    ("docs/monitor.md", "## Where in the code"),
]

_MODULE = re.compile(r"^`([\w./-]+\.py)`$")
_NAME = re.compile(r"`([^`]+)`")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class Pointer:
    """One row's module and one of the names it gives for it."""

    document: str
    line: int
    module: str
    name: str


def section(text: str, heading: str) -> list[tuple[int, str]]:
    """The numbered lines under ``heading`` up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    level = heading.split(" ", 1)[0]
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        return []
    body: list[tuple[int, str]] = []
    for number, line in enumerate(lines[start + 1 :], start + 2):
        marks = line.split(" ", 1)[0]
        if marks and set(marks) == {"#"} and len(marks) <= len(level):
            break
        body.append((number, line))
    return body


def pointers(document: str, text: str, heading: str) -> tuple[list[Pointer], list[str]]:
    """Every (module, name) pair in the section's tables, and the rows that give none."""
    found: list[Pointer] = []
    malformed: list[str] = []
    for number, line in section(text, heading):
        if not line.startswith("|") or set(line.replace("|", "").strip()) <= {"-", " ", ":"}:
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        modules = [i for i, cell in enumerate(cells) if _MODULE.match(cell)]
        if not modules:
            if any(cell in ("module", "function") for cell in cells):
                continue  # the header row
            malformed.append(f"{document}:{number}: no `path.py` cell: {line}")
            continue
        index = modules[0]
        match = _MODULE.match(cells[index])
        assert match is not None
        names = _NAME.findall(cells[index + 1]) if index + 1 < len(cells) else []
        if not names or not all(_DOTTED.match(name) for name in names):
            malformed.append(f"{document}:{number}: no `Name.attr` after the module: {line}")
            continue
        found += [Pointer(document, number, match.group(1), name) for name in names]
    return found, malformed


def _defined(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """Names a block defines: classes, functions and assigned names, not looking into them
    (but into ``if`` / ``try`` / ``with`` blocks, which define names at the same level)."""
    names: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.AsyncWith | ast.For | ast.While):
            inner = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                inner += handler.body
            names.update(_defined(inner))
    return names


def missing(source: str | ast.Module, dotted: str) -> str | None:
    """Why ``dotted`` is not defined in ``source`` (``None`` when it is)."""
    tree = ast.parse(source) if isinstance(source, str) else source
    scope: list[ast.stmt] = tree.body
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        node = _defined(scope).get(part)
        if node is None:
            where = ".".join(parts[:depth]) or "the module"
            return f"{part!r} is not defined in {where}"
        if depth + 1 < len(parts):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                return f"{'.'.join(parts[: depth + 1])} is not a class or function"
            scope = node.body
    return None


def all_pointers() -> tuple[list[Pointer], list[str]]:
    found: list[Pointer] = []
    malformed: list[str] = []
    for document, heading in DOCUMENTS:
        text = (ROOT / document).read_text(encoding="utf-8")
        rows, bad = pointers(document, text, heading)
        found += rows
        malformed += bad
    return found, malformed


def test_each_document_has_its_code_table() -> None:
    for document, heading in DOCUMENTS:
        text = (ROOT / document).read_text(encoding="utf-8")
        rows, _ = pointers(document, text, heading)
        assert rows, f"{document} has no table of code under {heading!r}"


def test_every_row_names_a_module_and_a_function() -> None:
    _, malformed = all_pointers()
    assert not malformed, "\n".join(malformed)


def test_every_named_function_is_defined_in_its_module() -> None:
    found, _ = all_pointers()
    problems: list[str] = []
    sources: dict[str, ast.Module | None] = {}
    for pointer in found:
        if pointer.module not in sources:
            path = ROOT / pointer.module
            sources[pointer.module] = (
                ast.parse(path.read_text(encoding="utf-8")) if path.is_file() else None
            )
        source = sources[pointer.module]
        where = f"{pointer.document}:{pointer.line}"
        if source is None:
            problems.append(f"{where}: {pointer.module} does not exist")
            continue
        why = missing(source, pointer.name)
        if why is not None:
            problems.append(f"{where}: {pointer.module} {pointer.name}: {why}")
    assert not problems, "\n".join(problems)


def test_the_readme_leads_to_the_table() -> None:
    """The first hop: the README's link to the architecture names the table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "architecture.md#where-it-lives" in readme


SAMPLE = """
import os

LIMIT = 3


class Store:
    size: int = 0

    async def save(self) -> None:
        pass


def create_app() -> None:
    async def on_request() -> None:
        pass

    if os.name:
        def helper() -> None:
            pass


try:
    from fast import speed
except ImportError:
    def speed() -> None:
        pass
"""


@pytest.mark.parametrize(
    "name",
    [
        "LIMIT",
        "Store",
        "Store.save",
        "Store.size",
        "create_app",
        "create_app.on_request",
        "create_app.helper",
        "speed",
    ],
)
def test_a_defined_name_is_found(name: str) -> None:
    assert missing(SAMPLE, name) is None


@pytest.mark.parametrize(
    "name",
    ["Stor", "Store.sav", "create_app.on_requests", "LIMIT.real", "on_request", "os"],
)
def test_a_misspelt_or_misplaced_name_is_not_found(name: str) -> None:
    assert missing(SAMPLE, name) is not None


def test_a_misspelt_row_is_reported() -> None:
    text = (
        "## Where it lives\n\n| behaviour | module | function |\n|---|---|---|\n"
        "| triage | `services/incident_log/service.py` | `IncidentLog.handle_alert` |\n"
        "| words | `services/incident_log/service.py` | the handler |\n"
        "## Next\n| x | `nowhere.py` | `f` |\n"
    )
    rows, malformed = pointers("doc.md", text, "## Where it lives")
    assert [(p.module, p.name, p.line) for p in rows] == [
        ("services/incident_log/service.py", "IncidentLog.handle_alert", 5)
    ]
    assert len(malformed) == 1
    assert "doc.md:6" in malformed[0]
    source = (ROOT / rows[0].module).read_text(encoding="utf-8")
    assert missing(source, "IncidentLog.handle_alert") is not None
    assert missing(source, "IncidentLog.on_alerts") is None

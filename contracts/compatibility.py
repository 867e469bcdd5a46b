"""The compatibility promise between releases, checked on the events' JSON Schemas.

Within one ``schema_version`` an event type may only gain optional fields and enum values, so
that a consumer written against a released schema reads every later event, and a producer
written against it (a client sending scoring requests or labels) is still accepted. Against the
released schema, a change is breaking when it

- removes (or renames) a field, or moves the event to another topic or key field;
- narrows a type: drops a JSON type or an enum value, changes a ``const``, adds or tightens a
  bound (``maxLength``, ``minimum``, ``pattern``, …), or forbids extra properties;
- widens a type with a JSON type the old schema does not allow (``null`` included), which a
  consumer of the old schema does not expect;
- adds a required field, or makes a required field optional.

A breaking change ships as a new model whose ``schema_version`` is higher than the released one;
:func:`breaking_changes` then has nothing to compare. Consumers must ignore fields they do not
know and treat an enum value they do not know as "other" (docs/events.md). Standard library
only: the released schemas are plain JSON files under ``contracts/released/<version>/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "ACCEPTED_BREAKS",
    "RELEASED_DIR",
    "breaking_changes",
    "check_release",
    "latest_release",
]

RELEASED_DIR = Path(__file__).parent / "released"

_NO_CLASSES = (
    "Regression models (ADR 0022) have no classes: a spec with `task: regression` leaves them "
    "out. A classifier's registration still carries both; a consumer reads `spec.task` (absent "
    "means classification) before it reads the classes."
)

ACCEPTED_BREAKS: dict[str, dict[str, str]] = {
    "model.registered": dict.fromkeys(
        (
            "record.spec.classes: no longer required",
            "record.spec.positive_class: no longer required",
            "record.spec.positive_class: may now be null",
        ),
        _NO_CLASSES,
    ),
}
"""Breaking changes made on purpose since the last release, per event type: each problem as
:func:`breaking_changes` words it, with the reason. Reviewed like code; emptied at the next
release, whose schemas then hold the change."""

# Bounds that may only loosen: an upper bound may rise or go, a lower bound fall or go.
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_EXACT = ("pattern", "format", "const", "multipleOf")


def latest_release(released_dir: Path = RELEASED_DIR) -> Path:
    """Return the folder of the newest release's schemas (by version number)."""
    folders = [path for path in released_dir.iterdir() if path.is_dir()]
    if not folders:
        raise FileNotFoundError(f"no released schemas under {released_dir}")
    return max(folders, key=lambda path: tuple(int(part) for part in path.name.split(".")))


def check_release(
    released: Path,
    current: Path,
    accepted: dict[str, dict[str, str]] | None = None,
) -> dict[str, list[str]]:
    """Compare every released event schema (``<type>.json``) with the current one; return the
    breaking changes per event type that are not ``accepted`` (empty when the promise holds)."""
    allowed = ACCEPTED_BREAKS if accepted is None else accepted
    found: dict[str, list[str]] = {}
    for old_path in sorted(released.glob("*.json")):
        new_path = current / old_path.name
        if not new_path.exists():
            found[old_path.stem] = ["event type removed"]
            continue
        problems = [
            problem
            for problem in breaking_changes(
                json.loads(old_path.read_text()), json.loads(new_path.read_text())
            )
            if problem not in allowed.get(old_path.stem, {})
        ]
        if problems:
            found[old_path.stem] = problems
    return found


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Return why a consumer or producer of the ``old`` event schema breaks on ``new``; nothing
    when ``new`` is a new model (a higher ``schema_version``)."""
    old_version, new_version = _schema_version(old), _schema_version(new)
    if new_version > old_version:
        return []
    problems = []
    if new_version < old_version:
        problems.append(f"schema_version went back from {old_version} to {new_version}")
    for extension in ("x-vigil-topic", "x-vigil-key-field"):
        if old.get(extension) != new.get(extension):
            problems.append(f"{extension} changed: {old.get(extension)} -> {new.get(extension)}")
    return problems + _Comparison(old, new).compare(old, new, "")


def _schema_version(schema: dict[str, Any]) -> int:
    field = schema.get("properties", {}).get("schema_version", {})
    return int(field.get("const", field.get("default", 1)))


class _Comparison:
    """One walk over an old and a new schema, each resolving ``$ref`` in its own document."""

    def __init__(self, old_root: dict[str, Any], new_root: dict[str, Any]) -> None:
        self._roots = (old_root, new_root)
        self._seen: set[tuple[str, str, str]] = set()

    def compare(self, old: dict[str, Any], new: dict[str, Any], where: str) -> list[str]:
        refs = (str(old.get("$ref", "")), str(new.get("$ref", "")), where)
        if refs[0] and refs in self._seen:
            return []  # a recursive model: this pair is being compared already
        self._seen.add(refs)
        old, new = self._resolve(old, 0), self._resolve(new, 1)
        old_options, new_options = _options(old), _options(new)
        old_types = {self._type(option, 0) for option in old_options}
        new_types = {self._type(option, 1) for option in new_options}
        at = where or "(event)"
        problems = [f"{at}: no longer accepts {kind}" for kind in sorted(old_types - new_types)]
        problems += [f"{at}: may now be {kind}" for kind in sorted(new_types - old_types)]
        for kind in sorted(old_types & new_types):
            olds = [self._resolve(o, 0) for o in old_options if self._type(o, 0) == kind]
            news = [self._resolve(n, 1) for n in new_options if self._type(n, 1) == kind]
            for old_option, new_option in self._pairs(olds, news, at, kind, problems):
                problems += self._compare_one(old_option, new_option, where)
        return problems

    @staticmethod
    def _pairs(
        olds: list[dict[str, Any]],
        news: list[dict[str, Any]],
        at: str,
        kind: str,
        problems: list[str],
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Pair the variants of one JSON type across a union: by name (an event's ``type``
        constant, else the model's title), the rest in order; an old variant left with no
        partner is a shape the field no longer accepts."""
        if len(olds) == 1 and len(news) == 1:
            return [(olds[0], news[0])]
        named_news = {_variant_name(n): n for n in news if _variant_name(n)}
        pairs, unmatched = [], []
        for old_option in olds:
            partner = named_news.get(_variant_name(old_option) or "")
            if partner is not None:
                pairs.append((old_option, partner))
            else:
                unmatched.append(old_option)
        spare = [n for n in news if all(n is not p for _, p in pairs)]
        for old_option in unmatched:  # renamed, or gone if nothing is left to pair it with
            if spare:
                pairs.append((old_option, spare.pop(0)))
            else:
                name = _variant_name(old_option) or kind
                problems.append(f"{at}: no longer accepts the {name} variant")
        return pairs

    def _compare_one(self, old: dict[str, Any], new: dict[str, Any], where: str) -> list[str]:
        at = where or "(event)"
        problems = []
        for bound in _UPPER:
            if bound in new and (bound not in old or new[bound] < old[bound]):
                problems.append(f"{at}: {bound} tightened to {new[bound]}")
        for bound in _LOWER:
            if bound in new and (bound not in old or new[bound] > old[bound]):
                problems.append(f"{at}: {bound} tightened to {new[bound]}")
        for keyword in _EXACT:
            if keyword in new and new.get(keyword) != old.get(keyword):
                problems.append(f"{at}: {keyword} changed to {new[keyword]!r}")
        if "enum" in old:
            dropped = [v for v in old["enum"] if v not in new.get("enum", old["enum"])]
            problems += [f"{at}: no longer accepts {value!r}" for value in dropped]
        elif "enum" in new:
            problems.append(f"{at}: now limited to {new['enum']!r}")
        if new.get("uniqueItems") is True and old.get("uniqueItems") is not True:
            problems.append(f"{at}: items must now be unique")
        if "items" in old or "items" in new:
            problems += self.compare(old.get("items", {}), new.get("items", {}), f"{where}[]")
        problems += self._compare_objects(old, new, where)
        return problems

    def _compare_objects(self, old: dict[str, Any], new: dict[str, Any], where: str) -> list[str]:
        problems = []
        old_fields, new_fields = old.get("properties", {}), new.get("properties", {})
        prefix = f"{where}." if where else ""
        for name in old_fields:
            if name not in new_fields:
                problems.append(f"{prefix}{name}: removed (or renamed)")
            else:
                problems += self.compare(old_fields[name], new_fields[name], prefix + name)
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        problems += [
            f"{prefix}{name}: new required field" for name in sorted(new_required - old_required)
        ]
        problems += [
            f"{prefix}{name}: no longer required" for name in sorted(old_required - new_required)
        ]
        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        if new_extra is False and old_extra is not False:
            problems.append(f"{where or '(event)'}: extra properties now forbidden")
        elif isinstance(old_extra, dict) and isinstance(new_extra, dict):
            problems += self.compare(old_extra, new_extra, f"{where}{{*}}")
        return problems

    def _resolve(self, schema: dict[str, Any], side: int) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self._roots[side]
            for part in str(schema["$ref"]).removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def _type(self, option: dict[str, Any], side: int) -> str:
        option = self._resolve(option, side)
        if "type" in option:
            return str(option["type"])
        if "properties" in option:
            return "object"
        return "any"


def _variant_name(option: dict[str, Any]) -> str | None:
    event_type = option.get("properties", {}).get("type", {})
    if isinstance(event_type, dict) and "const" in event_type:
        return str(event_type["const"])
    title = option.get("title")
    return str(title) if title else None


def _options(schema: dict[str, Any]) -> list[dict[str, Any]]:
    options = schema.get("anyOf") or schema.get("oneOf")
    return list(options) if options else [schema]

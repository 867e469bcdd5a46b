"""The checked-in JSON Schemas and AsyncAPI document match the models."""

from __future__ import annotations

from contracts import generate


def test_generated_files_match_the_models() -> None:
    expected = generate.render()
    stale = [
        str(path.relative_to(generate.HERE.parent))
        for path, text in expected.items()
        if not path.exists() or path.read_text() != text
    ]
    extra = sorted(
        str(path.relative_to(generate.HERE.parent))
        for path in set(generate.SCHEMAS_DIR.glob("*.json")) - set(expected)
    )
    assert not stale, f"generated contracts are out of date: {stale}; run `make schemas`"
    assert not extra, f"generated contracts no model has: {extra}; run `make schemas`"

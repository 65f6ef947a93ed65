"""The published JSON Schemas (packaged with pecflow, identical to schemas/ in the repo): read and
compiled once per process."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def published(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        resources.files("pecflow").joinpath("schemas", name).read_text("utf-8")
    )
    return loaded


@cache
def validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(published(name))
    return Draft202012Validator(_ends_at_the_end(published(name)))


def _ends_at_the_end(node: Any) -> Any:
    """The schema with each `pattern`'s final `$` as `\\Z`: in the published (ECMA-262) patterns `$`
    ends the text, while Python's also matches before a final newline ("archivio\\n" passed)."""
    if isinstance(node, dict):
        return {
            key: value[:-1] + r"\Z"
            if key == "pattern"
            and isinstance(value, str)
            and value.endswith("$")
            and not value.endswith("\\$")
            else _ends_at_the_end(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_ends_at_the_end(value) for value in node]
    return node

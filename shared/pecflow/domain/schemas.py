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
    return Draft202012Validator(published(name))

"""The time pecflow reads. In AWS it is the system clock; the local stack can install its own
(e.g. a virtual clock moved by tests) through PECFLOW_CLOCK="module:function", a function
returning seconds since the epoch."""

from __future__ import annotations

import importlib
import os
import time
from datetime import UTC, datetime

_hook_spec: str | None = None
_hook = time.time


def timestamp() -> float:
    """Seconds since the epoch, from the installed clock."""
    global _hook_spec, _hook
    spec = os.environ.get("PECFLOW_CLOCK")
    if spec != _hook_spec:
        _hook_spec = spec
        if spec:
            module, _, name = spec.partition(":")
            _hook = getattr(importlib.import_module(module), name)
        else:
            _hook = time.time
    return _hook()


def now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.fromtimestamp(timestamp(), UTC)


def iso(when: datetime | None = None) -> str:
    """A sortable UTC timestamp string, as stored in tables."""
    return (when or now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

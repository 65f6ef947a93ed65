"""The local stack's clock: real time, or a virtual time that tests move by hand.

`local.clock.now()` is the hook for code that wants the stack's time: it reads whichever clock
the event runner installed (the system clock otherwise). `PECFLOW_CLOCK=local.clock:now` is set
in the environment while a runner runs, so pecflow code can find the hook without importing
`local` in AWS. moto's SQS follows a virtual clock too: see `LocalAws.follow_clock`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Protocol

CLOCK_ENV = "PECFLOW_CLOCK"
CLOCK_HOOK = "local.clock:now"


class Clock(Protocol):
    virtual: bool

    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...


class SystemClock:
    virtual = False

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class VirtualClock:
    """Time stands still until `advance`. Kept in whole microseconds so sums stay exact."""

    virtual = True

    def __init__(self, start: datetime | float | None = None):
        if start is None:
            start = float(int(time.time()))  # now, to the second
        if isinstance(start, datetime):
            if start.tzinfo is None:
                raise ValueError("VirtualClock needs an aware datetime (e.g. tzinfo=UTC)")
            start = start.timestamp()
        self._micros = round(start * 1_000_000)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._micros / 1_000_000

    def now_millis(self) -> float:
        return self._micros / 1_000

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._micros += round(seconds * 1_000_000)
            return self.now()

    def advance_to(self, when: float) -> float:
        """Move to `when` (epoch seconds); never backwards."""
        with self._lock:
            self._micros = max(self._micros, round(when * 1_000_000))
            return self.now()

    def __repr__(self) -> str:
        return f"VirtualClock({datetime.fromtimestamp(self.now(), UTC).isoformat()})"


_current: Clock = SystemClock()


def now() -> float:
    """The local stack's time, in epoch seconds."""
    return _current.now()


def utcnow() -> datetime:
    return datetime.fromtimestamp(_current.now(), UTC)


def current() -> Clock:
    return _current


def install(clock: Clock) -> Clock:
    """Make `clock` the one `now()` reads; returns the previous one."""
    global _current
    previous, _current = _current, clock
    return previous


@contextmanager
def installed(clock: Clock) -> Iterator[Clock]:
    previous = install(clock)
    try:
        yield clock
    finally:
        install(previous)

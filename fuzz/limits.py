"""Time and memory bounds of one fuzz input: a hang or a runaway allocation is a crash, not a stall."""

from __future__ import annotations

import resource
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SECONDS_PER_INPUT = 10.0  # the slowest honest input (a 256 kB message on a busy machine) takes < 2 s
MEMORY_MB = 1024  # the address space of a fuzzing process: the Lambda functions have 512 MB to 1 GB


class InputTimeout(BaseException):
    """One input ran longer than its bound (a BaseException: no `except Exception` swallows it)."""


@contextmanager
def bounded_time(seconds: float) -> Iterator[None]:
    """Raise InputTimeout in the block after `seconds` (main thread only; elsewhere unbounded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise InputTimeout(f"one input took more than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cap_memory(megabytes: int = MEMORY_MB) -> None:
    """This process may map at most `megabytes` (RLIMIT_AS): past it, allocations fail (MemoryError)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard < 0 else min(limit, hard), hard))


def run_bounded(run: Callable[[bytes], None], data: bytes, seconds: float = SECONDS_PER_INPUT) -> None:
    with bounded_time(seconds):
        run(data)

"""The simulator's work: a FIFO lane per mailbox served by a few threads (so UIDs follow the
order events happened for that mailbox, and mailboxes are served in parallel), and a schedule
of work due at a time of the network's clock (DELAY, the 12 h / 24 h notices).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime

Task = Callable[[], None]


class MailboxLanes:
    """Tasks run in submission order per lane (a mailbox), lanes in parallel on `workers` threads."""

    def __init__(self, workers: int, on_error: Callable[[BaseException], None], name: str = "pec-lane"):
        self._cond = threading.Condition()
        self._queues: dict[str, deque[Task]] = {}  # lanes with queued work or being served
        self._ready: deque[str] = deque()  # lanes with work and no thread on them
        self._busy: set[str] = set()
        self._in_flight = 0
        self._stopping = False
        self._on_error = on_error
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True) for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, lane: str, task: Task) -> None:
        with self._cond:
            if self._stopping:
                return
            self._in_flight += 1
            if lane not in self._queues:
                self._queues[lane] = deque()
                if lane not in self._busy:
                    self._ready.append(lane)
            self._queues[lane].append(task)
            self._cond.notify_all()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                lane = self._ready.popleft()
                self._busy.add(lane)
                task = self._queues[lane].popleft()
            try:
                task()
            except BaseException as error:  # a simulator bug: reported by wait_idle, never lost
                self._on_error(error)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._busy.discard(lane)
                    if self._queues[lane]:
                        self._ready.append(lane)
                    else:
                        del self._queues[lane]
                    self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def wait_idle(self, deadline: float) -> bool:
        with self._cond:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._queues.clear()
            self._ready.clear()
            self._cond.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)


class Schedule:
    """Work due at a clock time; `due(now)` hands out (in time order) what is due."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heap: list[tuple[datetime, int, str, Task]] = []
        self._seq = itertools.count()

    def add(self, when: datetime, lane: str, task: Task) -> None:
        with self._lock:
            heapq.heappush(self._heap, (when, next(self._seq), lane, task))

    def due(self, now: datetime) -> list[tuple[str, Task]]:
        with self._lock:
            out = []
            while self._heap and self._heap[0][0] <= now:
                _, _, lane, task = heapq.heappop(self._heap)
                out.append((lane, task))
            return out

    def has_due(self, now: datetime) -> bool:
        with self._lock:
            return bool(self._heap) and self._heap[0][0] <= now

    def pending(self) -> list[datetime]:
        """When the work not yet due falls (for inspection)."""
        with self._lock:
            return sorted(when for when, *_ in self._heap)

    def clear(self) -> None:
        with self._lock:
            self._heap.clear()

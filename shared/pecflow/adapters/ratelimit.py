"""The DynamoDB-backed rate limiter: one item per sending mailbox, shared by every concurrent
sender (docs/architecture.md, flow 4). The decisions are `pecflow.domain.quota`'s; this module only keeps
the state and takes slots atomically.

Item (QuotaTable, key `mailbox`, lower-cased):
- `version`: bumped by every write; each write is conditional on the version read, so two
  senders can never both take the last slot. A sender that loses the race re-reads and decides
  again (at most `max_attempts` times, then it answers "try again in a second").
- rolling policies: `times`, the slots taken within the last window plus margin, packed as
  little-endian float64 in one Binary attribute (exact, 8 bytes a slot: 2 KB for Aruba's 250;
  a limit above MAX_ROLLING_LIMIT is refused: use fixed windows).
- fixed policies: `windows`, [start, end, count] of the current windows, so the item stays
  a few bytes whatever the limit.
- `latest`: the latest slot ever taken. Slots are taken in time order: a sender whose clock
  is behind gets its slot at `latest` (Decision.at, a few ms later than its `now`).
- `shape`: the policy's window shape. If the mailbox's policy changes, the old state is
  carried over conservatively (fixed counts become sends at the end of their window).
A refusal reads and writes nothing: one strongly consistent read.
"""

from __future__ import annotations

import math
import random
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from pecflow.domain import clock, quota
from pecflow.domain.quota import Decision, QuotaPolicy

MAX_ROLLING_LIMIT = 2_000  # 8 bytes a slot: items under 16 KB, writes under 16 WCU
CONTENTION_WAIT = 1.0  # seconds, when every attempt lost its race


@dataclass
class LimiterStats:
    """Counters of one RateLimiter (for metrics and the benchmark)."""

    acquired: int = 0
    refused: int = 0
    conflicts: int = 0  # conditional writes that lost a race (each one re-read and re-decided)
    contended: int = 0  # acquisitions that gave up after max_attempts races
    released: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("acquired", "refused", "conflicts", "contended", "released")}


class RateLimiter:
    """`acquire` before each send, `release` if the send then does not happen.

    `table`: the QuotaTable (a boto3 Table, or its name with `dynamodb` a boto3 resource).
    `policy_for(mailbox)`: the mailbox's QuotaPolicy (its margin must cover the time from
    `acquire` to the end of SMTP DATA). Each lost race costs one attempt and one winner takes
    each round: keep `max_attempts` at least the number of senders that can run at once for a
    mailbox (the send queue's MaximumConcurrency). Safe to share between threads."""

    def __init__(
        self,
        table: Any,
        policy_for: Callable[[str], QuotaPolicy],
        *,
        dynamodb: Any = None,
        max_attempts: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if isinstance(table, str):
            if dynamodb is None:
                import boto3

                dynamodb = boto3.resource("dynamodb")
            table = dynamodb.Table(table)
        self.table_name = table.name
        # the resource's client: thread-safe, and it converts plain Python values itself
        self.client = table.meta.client
        self.policy_for = policy_for
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.stats = LimiterStats()

    def acquire(self, mailbox: str, now: float | None = None, *, horizon: float = 0.0) -> Decision:
        """Take a slot for one send from `mailbox` at `now` (default: pecflow.domain.clock), or say
        how long to wait. Allowed: send at `at` (normally `now`) — not before. Refused:
        nothing was taken; try again after `wait_seconds` (the real next slot: ceil it for SQS).

        With a `horizon` (seconds), a slot up to that far in the future is reserved instead of
        refused: the caller holds it and sends at `at`. Waiting senders then get successive
        slots and each wakes once, instead of all waking for the same slot."""
        key = mailbox.lower()
        now = clock.timestamp() if now is None else float(now)
        policy = self.policy_for(mailbox)
        check_storable(policy)
        for attempt in range(self.max_attempts):
            state = self._read(key)
            taken_at = now if state.latest is None else max(now, state.latest)
            slots = _Slots.of(state, policy, taken_at)
            slot = slots.next_slot(taken_at)
            if policy.pace_seconds and state.latest is not None and slot - now > policy.pace_seconds:
                # a slot that must wait anyway is also paced: waiting senders wake one by one,
                # at the speed they can send (a slot free now is never delayed by the pace)
                slot = slots.next_slot(max(slot, state.latest + policy.pace_seconds))
            if slot > taken_at:
                if slot - now > horizon:
                    self.stats.add(refused=1)
                    return Decision(False, slot - now, slot)
                taken_at = slot
                slots = _Slots.of(state, policy, taken_at)
            slots.take(taken_at)
            if self._write(key, state.version, slots.item(key, state.version + 1, taken_at)):
                self.stats.add(acquired=1)
                return Decision(True, taken_at - now, taken_at)
            self.stats.add(conflicts=1)
            self._backoff(attempt)
        self.stats.add(contended=1)
        return Decision(False, CONTENTION_WAIT, None)

    def release(self, mailbox: str, at: float) -> bool:
        """Give back the slot taken at `at` (Decision.at) for a send that did not happen.
        False when there is nothing to give back (already released, or too old to matter)."""
        key = mailbox.lower()
        at = float(at)
        policy = self.policy_for(mailbox)
        for attempt in range(self.max_attempts):
            state = self._read(key)
            if state.version == 0 or state.shape != _shape(policy):
                return False  # nothing stored, or kept under another policy: keep it (safe side)
            slots = _Slots.of(state, policy, state.latest if state.latest is not None else at)
            if not slots.give_back(at):
                return False
            if self._write(key, state.version, slots.item(key, state.version + 1, state.latest)):
                self.stats.add(released=1)
                return True
            self.stats.add(conflicts=1)
            self._backoff(attempt)
        raise RuntimeError(
            f"could not release the slot of {mailbox} at {at}: {self.max_attempts} concurrent writes in a row"
        )

    def slots(self, mailbox: str) -> dict:
        """What is stored for `mailbox` (plain values): for tests, the CLI and diagnostics."""
        state = self._read(mailbox.lower())
        return {
            "version": state.version,
            "shape": state.shape,
            "latest": state.latest,
            "times": list(state.times),
            "windows": [list(w) for w in state.windows],
        }

    def used(self, mailbox: str, policy: QuotaPolicy, now: float) -> int:
        """Slots taken in the window that holds `now` (rolling: the window ending now, with the
        slots already reserved after it): what the mailbox's health shows of its quota."""
        state = self._read(mailbox.lower())
        if state.version == 0:
            return 0
        slots = _Slots.of(state, policy, now)
        if policy.rolling:
            return sum(1 for t in slots.times if t > now - policy.window_seconds)
        start, _ = quota.window_of(policy, now)
        return slots.counts.get(start, 0)

    def _backoff(self, attempt: int) -> None:
        """Full jitter, doubling: racing senders spread out instead of colliding again."""
        self.sleep(random.uniform(0, min(0.1, 0.004 * 2**attempt)))

    # --- DynamoDB ---------------------------------------------------------------------------------
    def _read(self, key: str) -> _Stored:
        item = self.client.get_item(TableName=self.table_name, Key={"mailbox": key}, ConsistentRead=True).get(
            "Item"
        )
        return _Stored.from_item(item)

    def _write(self, key: str, version: int, item: dict) -> bool:
        condition: dict[str, Any]
        if version == 0:
            condition = {"ConditionExpression": "attribute_not_exists(mailbox)"}
        else:
            condition = {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": version},
            }
        try:
            self.client.put_item(TableName=self.table_name, Item=item, **condition)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise


def check_storable(policy: QuotaPolicy) -> None:
    """Raise ValueError for a policy the limiter cannot keep in one small item."""
    if policy.rolling and policy.limit > MAX_ROLLING_LIMIT:
        raise ValueError(
            f"a rolling quota keeps one timestamp per send: at most {MAX_ROLLING_LIMIT} per window "
            f"(got {policy.limit}); use fixed windows (rolling=False) for larger limits"
        )


# --- the stored state -----------------------------------------------------------------------------
def _shape(policy: QuotaPolicy) -> str:
    if policy.rolling:
        return "rolling"
    return f"fixed|{policy.window_seconds!r}|{policy.timezone or ''}|{policy.margin_seconds!r}"


def _number(value: float) -> Decimal:
    return Decimal(repr(float(value)))  # repr round-trips: the same float comes back


def _pack(times: list[float]) -> bytes:
    return struct.pack(f"<{len(times)}d", *times)


def _unpack(blob: Any) -> tuple[float, ...]:
    if blob is None:
        return ()
    data = bytes(getattr(blob, "value", blob))  # boto3 hands Binary attributes back wrapped
    return struct.unpack(f"<{len(data) // 8}d", data)


@dataclass(frozen=True)
class _Stored:
    version: int = 0
    shape: str | None = None
    latest: float | None = None
    times: tuple[float, ...] = ()
    windows: tuple[tuple[float, float, int], ...] = ()

    @classmethod
    def from_item(cls, item: dict | None) -> _Stored:
        if not item:
            return cls()
        return cls(
            int(item["version"]),
            item.get("shape"),
            float(item["latest"]) if item.get("latest") is not None else None,
            _unpack(item.get("times")),
            tuple((float(s), float(e), int(c)) for s, e, c in item.get("windows", [])),
        )


class _Slots:
    """The slots of one mailbox under its current policy, pruned to what still matters."""

    def __init__(
        self, policy: QuotaPolicy, times: list[float], counts: dict[float, int], ends: dict[float, float]
    ):
        self.policy = policy
        self.times = times  # rolling
        self.counts = counts  # fixed: window start -> slots counted
        self.ends = ends  # fixed: window start -> end

    @classmethod
    def of(cls, stored: _Stored, policy: QuotaPolicy, now: float) -> _Slots:
        slots = cls(policy, [], {}, {})
        if stored.shape == _shape(policy):
            if policy.rolling:
                slots.times = quota.prune(policy, stored.times, now)
            else:
                for start, end, count in stored.windows:
                    if end > now:
                        slots.counts[start], slots.ends[start] = count, end
            return slots
        # Another policy wrote this state. Times are exact; a fixed window's count is taken as
        # that many sends at the latest moment they can have happened (its end, or now): later
        # than in truth, so the windows they fall in are, if anything, fuller than in truth.
        points = [(t, 1) for t in stored.times]
        for _start, end, count in stored.windows:
            points.append((min(now, _before(end)), min(count, policy.limit) if policy.rolling else count))
        for t, count in points:
            slots.take(t, count)
        if policy.rolling:
            slots.times = quota.prune(policy, slots.times, now)
        else:
            for start in [s for s, end in slots.ends.items() if end <= now]:
                del slots.counts[start], slots.ends[start]
        return slots

    def next_slot(self, now: float) -> float:
        if self.policy.rolling:
            return quota.next_slot(self.policy, self.times, now)
        return quota.next_slot_for_counts(self.policy, self.counts, now)

    def take(self, at: float, count: int = 1) -> None:
        if self.policy.rolling:
            self.times.extend([at] * count)
            self.times.sort()
            return
        for start, end in quota.counting_windows(self.policy, at):
            self.counts[start] = self.counts.get(start, 0) + count
            self.ends[start] = end

    def give_back(self, at: float) -> bool:
        if self.policy.rolling:
            if at not in self.times:
                return False
            self.times.remove(at)
            return True
        windows = [
            start for start, _ in quota.counting_windows(self.policy, at) if self.counts.get(start, 0) > 0
        ]
        for start in windows:
            self.counts[start] -= 1
        return bool(windows)

    def item(self, key: str, version: int, latest: float | None) -> dict:
        item: dict[str, Any] = {"mailbox": key, "version": version, "shape": _shape(self.policy)}
        if latest is not None:
            item["latest"] = _number(latest)
        if self.policy.rolling:
            item["times"] = _pack(self.times)
        else:
            item["windows"] = [[_number(s), _number(self.ends[s]), c] for s, c in sorted(self.counts.items())]
        return item


def _before(t: float) -> float:
    return math.nextafter(t, -math.inf)

"""moto's SQS on the local stack's clock, at a cost that stays linear in the queue's length.

moto re-reads the clock for every message it looks at, computes every queue attribute (three scans
of the queue) to read one, copies the set of in-flight groups again each time an in-flight message
turns visible, and builds every receipt handle list to find one. With the 20,000 jobs of a soak's
campaign asleep in the send queue, one receive took seconds. These replacements keep moto's
behaviour (same order, same groups held back, same dead-letter moves) with one clock reading per
call and plain comparisons.

At 20,000 jobs even one pass over the queue per call was most of a soak's time (a receive with
nothing ready 15 ms, the runner's "is anything ready?" 2.6 ms per pump, "when does the next one
wake?" 14 ms), so each queue keeps an index (`_Index`): its messages by the time they become
visible (a heap; every change of `visible_at` or `delayed_until` pushes an entry, stale entries
are dropped when they surface), the ready ones in the queue's order, every receipt handle given,
and the in-flight groups counted. A receive visits the ready messages only; `any_ready` and
`next_ready_at` answer the runner without a pass. An index that no longer counts the queue's
messages (a path it does not see changed them) is built again.

`patch(clock)` installs them and returns the function that restores moto's own.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from copy import deepcopy
from typing import Any

# a FIFO receive iterates the in-flight set while other request threads change it, and the
# indexes are shared with the runner's thread: the operations that touch them, one at a time
_LOCK = threading.RLock()
_TIES = itertools.count()  # heap entries of one message at one time never compare messages


def _ready_at(message: Any) -> float:
    return max(message.visible_at, message.delayed_until)


class _Pending(set):
    """moto's in-flight set, with its messages' groups counted as they come and go."""

    def __init__(self, messages: Any = ()) -> None:
        super().__init__(messages)
        self.groups = Counter(m.group_id for m in self if m.group_id is not None)

    def add(self, message: Any) -> None:
        if message not in self:
            super().add(message)
            if message.group_id is not None:
                self.groups[message.group_id] += 1

    def discard(self, message: Any) -> None:
        if message in self:
            super().discard(message)
            if message.group_id is not None:
                self.groups[message.group_id] -= 1

    def remove(self, message: Any) -> None:
        if message not in self:
            raise KeyError(message)
        self.discard(message)

    def _recount(self) -> None:
        self.groups = Counter(m.group_id for m in self if m.group_id is not None)

    def _changed(name: str) -> Any:  # noqa: N805 - builds the other mutators
        def call(self: Any, *args: Any) -> Any:
            result = getattr(set, name)(self, *args)
            self._recount()
            return result

        return call

    clear = _changed("clear")
    pop = _changed("pop")
    update = _changed("update")
    difference_update = _changed("difference_update")
    intersection_update = _changed("intersection_update")
    symmetric_difference_update = _changed("symmetric_difference_update")
    __ior__ = _changed("__ior__")
    __iand__ = _changed("__iand__")
    __isub__ = _changed("__isub__")
    __ixor__ = _changed("__ixor__")
    del _changed


# each message's index, by the message's id: not on the message, which moto deep-copies
_OWNERS: dict[int, _Index] = {}


class _Index:
    """A queue's messages by the time they become ready (visible and not delayed)."""

    def __init__(self, queue: Any) -> None:
        self.epoch = _epoch
        self.seq = itertools.count()
        self.members: dict[int, tuple[Any, int]] = {}  # id -> (message, its place in the queue)
        self.future: list[tuple] = []  # (ready at, seq, tie, message), ready after the last settle
        self.ready: list[tuple] = []  # (seq, ready at, tie, message): the queue's order
        self.taken: list[tuple] = []
        self.handles: dict[str, Any] = {}  # every receipt handle given -> its message
        for message in queue._messages:
            self.admit(message)
            for handle in message.all_receipt_handles:
                if handle is not None:
                    self.handles[handle] = message

    @property
    def count(self) -> int:
        return len(self.members)

    def admit(self, message: Any) -> None:
        self.members[id(message)] = (message, next(self.seq))
        _OWNERS[id(message)] = self
        self.moved(message)

    def moved(self, message: Any) -> None:
        seq = self.members[id(message)][1]
        heapq.heappush(self.future, (_ready_at(message), seq, next(_TIES), message))

    def removed(self, message: Any) -> None:
        if self.holds(message):
            del self.members[id(message)]
            if _OWNERS.get(id(message)) is self:
                del _OWNERS[id(message)]
            for handle in message.all_receipt_handles:
                self.handles.pop(handle, None)

    def holds(self, message: Any) -> bool:
        entry = self.members.get(id(message))
        return entry is not None and entry[0] is message

    def settle(self, now: float) -> None:
        """Entries whose time has come move to the ready heap (stale ones are dropped)."""
        future = self.future
        while future and future[0][0] <= now:
            at, seq, tie, message = heapq.heappop(future)
            if self.holds(message) and _ready_at(message) == at:
                heapq.heappush(self.ready, (seq, at, tie, message))

    def ready_in_order(self, now: float) -> Iterator[Any]:
        """The messages ready at `now`, in the queue's order; the caller ends with `give_back`."""
        self.settle(now)
        self.taken = []
        seen = set()
        while self.ready:
            entry = heapq.heappop(self.ready)
            seq, at, tie, message = entry
            if not self.holds(message) or _ready_at(message) != at or seq in seen:
                continue  # stale: removed, visible at another time since, or pushed twice
            seen.add(seq)
            if at > now:  # the clock went back
                heapq.heappush(self.future, (at, seq, tie, message))
                continue
            self.taken.append(entry)
            yield message

    def give_back(self) -> None:
        for entry in self.taken:  # those still ready stay; stale ones are dropped later
            heapq.heappush(self.ready, entry)
        self.taken = []

    def any_ready(self, now: float) -> bool:
        found = next(self.ready_in_order(now), None) is not None
        self.give_back()
        return found

    def next_ready_at(self, now: float) -> float | None:
        self.settle(now)
        future = self.future
        while future:
            at, _, _, message = future[0]
            if self.holds(message) and _ready_at(message) == at:
                return at
            heapq.heappop(future)
        return None


_EPOCH = itertools.count()
_epoch = next(_EPOCH)  # a new one at each patch: what changed in between was not seen


def index(queue: Any) -> _Index:
    """The queue's index, built again if it no longer counts the queue's messages."""
    found = queue.__dict__.get("_pf_index")
    if found is None or found.epoch != _epoch or found.count != len(queue._messages):
        found = queue.__dict__["_pf_index"] = _Index(queue)
    return found


def any_ready(queue: Any, now_millis: float) -> bool:
    """Whether a receive at `now_millis` has a message to look at (moto's `visible and not
    delayed`); its FIFO group may still be in flight."""
    with _LOCK:
        return index(queue).any_ready(now_millis)


def next_ready_at(queue: Any, now_millis: float) -> float | None:
    """When (epoch ms) the first message not ready at `now_millis` becomes ready."""
    with _LOCK:
        return index(queue).next_ready_at(now_millis)


def patch(clock: Any) -> Callable[[], None]:
    global _epoch
    import moto.sqs.models as sqs_models

    _epoch = next(_EPOCH)
    millis: Callable[[], float] = getattr(clock, "now_millis", lambda: clock.now() * 1000)
    real_unix_time = sqs_models.unix_time
    real_unix_time_millis = sqs_models.unix_time_millis
    message_class, queue_class, backend_class = sqs_models.Message, sqs_models.Queue, sqs_models.SQSBackend
    saved = {
        (cls, name): cls.__dict__[name]
        for cls, names in (
            (message_class, ("visible", "delayed", "mark_received")),
            (
                queue_class,
                (
                    "messages",
                    "approximate_number_of_messages",
                    "approximate_number_of_messages_delayed",
                    "approximate_number_of_messages_not_visible",
                    "delete_message",
                    "add_message",
                ),
            ),
            (
                backend_class,
                (
                    "receive_message",
                    "is_message_valid_based_on_retention_period",
                    "_validate_message",
                    "send_message",
                    "delete_message",
                    "delete_message_batch",
                    "change_message_visibility",
                    "change_message_visibility_batch",
                    "purge_queue",
                ),
            ),
        )
        for name in names
    }
    not_counting = threading.local()  # inside a call that reads only the queue's settings

    def unix_time(dt: Any = None) -> float:
        return clock.now() if dt is None else real_unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return millis() if dt is None else real_unix_time_millis(dt)

    def ready(queue: Any, now: float) -> list[Any]:
        return [m for m in queue._messages if now >= m.visible_at and now >= m.delayed_until]

    def ready_at_property(name: str) -> property:
        # moto sets these in place; each change is pushed on the message's queue's index
        def get(message: Any) -> Any:
            try:
                return message.__dict__[name]
            except KeyError:
                raise AttributeError(name) from None

        def set_(message: Any, value: Any) -> None:
            message.__dict__[name] = value
            owner = _OWNERS.get(id(message))
            if owner is not None and owner.holds(message):
                owner.moved(message)

        return property(get, set_)

    real_mark_received = saved[(message_class, "mark_received")]

    def mark_received(message: Any, visibility_timeout: int | None = None) -> None:
        real_mark_received(message, visibility_timeout)
        owner = _OWNERS.get(id(message))
        if owner is not None and owner.holds(message):
            owner.handles[message.receipt_handle] = message

    real_add_message = saved[(queue_class, "add_message")]

    def add_message(queue: Any, message: Any) -> None:
        with _LOCK:
            owned = index(queue)
            real_add_message(queue, message)
            if queue._messages and queue._messages[-1] is message:
                owned.admit(message)

    def count(select: Callable[[Any, float], bool]) -> property:
        def counted(queue: Any) -> int:
            if getattr(not_counting, "on", False):
                return 0
            now = millis()
            return sum(1 for m in queue._messages if select(m, now))

        return property(counted)

    def settings_only(call: Callable[..., Any]) -> Callable[..., Any]:
        # moto reads one setting through `queue.attributes`, which counts the whole queue
        def reading_settings(*args: Any, **kwargs: Any) -> Any:
            before = getattr(not_counting, "on", False)
            not_counting.on = True
            try:
                return call(*args, **kwargs)
            finally:
                not_counting.on = before

        return reading_settings

    def holding(handle: str) -> Callable[[Any], bool]:
        return lambda m: m.receipt_handle == handle or handle in m._old_receipt_handles

    def find(queue: Any, handle: str) -> Any:
        owned = index(queue)
        message = owned.handles.get(handle)
        if message is not None and owned.holds(message) and holding(handle)(message):
            return message
        return next((m for m in queue._messages if m.receipt_handle == handle), None) or next(
            filter(holding(handle), queue._messages), None
        )

    def queue_delete_message(queue: Any, receipt_handle: str) -> None:
        if receipt_handle in queue.deleted_messages:
            return  # deleted already: moto (and SQS) accept it again
        message = find(queue, receipt_handle)
        if message is None:
            raise sqs_models.ReceiptHandleIsInvalid()
        queue.pending_messages.discard(message)
        queue.deleted_messages.update(message.all_receipt_handles)
        owned = index(queue)
        queue._messages.remove(message)  # moto's Message has no __eq__: this one
        owned.removed(message)

    def change_message_visibility(
        backend: Any, queue_name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        queue = backend.get_queue(queue_name)
        message = find(queue, receipt_handle)
        if message is None:
            raise sqs_models.ReceiptHandleIsInvalid
        if millis() + int(visibility_timeout) * 1000 - message.sent_timestamp > 43200 * 1000:
            raise sqs_models.InvalidParameterValue(
                f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
                "VisibilityTimeout for the message is beyond the limit [43200 seconds]"
            )
        message.change_visibility(visibility_timeout)
        if millis() >= message.visible_at:
            queue.pending_messages.discard(message)

    def receive_message(
        backend: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: Any = None,
    ) -> list[Any]:
        # the runner never waits (its clock would stand still): moto's loop, run once
        queue = backend.get_queue(queue_name)
        now = millis()
        if not isinstance(queue._pending_messages, _Pending):
            queue._pending_messages = _Pending(queue._pending_messages)
        pending = queue._pending_messages
        redrive = queue.redrive_policy if queue.dead_letter_queue is not None else None
        retention_ms = int(queue.message_retention_period) * 1000
        result: list[Any] = []
        to_dead_letters = []
        # moto holds back the groups in flight when the call began and, once an in-flight message
        # turned visible again, those in flight at that moment (this call's first receipts too):
        # held[g] = in flight at the start (the live count, less this call's changes) + `extra`
        changed: Counter = Counter()  # this call's changes to the in-flight count, by group
        extra: Counter = Counter()
        since: Counter = Counter()  # groups received since then

        def held(group: Any) -> int:
            return pending.groups[group] - changed[group] + extra[group]

        owned = index(queue)
        try:
            for message in owned.ready_in_order(now):
                group = message.group_id
                if message in pending:  # in flight, visible again: its consumer timed out
                    pending.remove(message)
                    if group is not None:
                        changed[group] -= 1
                        if held(group):
                            extra[group] -= 1
                    extra.update(since)
                    since.clear()
                if queue.fifo_queue and group and held(group) > 0:
                    continue  # an earlier message of its group is in flight
                if redrive and message.approximate_receive_count >= redrive["maxReceiveCount"]:
                    to_dead_letters.append(message)
                    continue
                pending.add(message)
                if group is not None:
                    changed[group] += 1
                    since[group] += 1
                message.mark_received(visibility_timeout=visibility_timeout)
                received = deepcopy(message)
                sqs_models._filter_message_attributes(received, message_attribute_names or [])
                if message.sent_timestamp + retention_ms <= now:
                    break
                result.append(received)
                if len(result) >= count:
                    break
        finally:
            owned.give_back()
        for message in to_dead_letters:
            queue._messages.remove(message)
            owned.removed(message)
            queue.dead_letter_queue.add_message(message)
        return result

    def retained(backend: Any, queue_name: str, message: Any) -> bool:
        retention_ms = int(backend.get_queue(queue_name).message_retention_period) * 1000
        return bool(message.sent_timestamp + retention_ms > millis())

    lock = _LOCK

    def serialised(call: Callable[..., Any]) -> Callable[..., Any]:
        def one_at_a_time(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return call(*args, **kwargs)

        return one_at_a_time

    sqs_models.unix_time = unix_time
    sqs_models.unix_time_millis = unix_time_millis
    message_class.visible = property(lambda m: millis() >= m.visible_at)
    message_class.delayed = property(lambda m: millis() < m.delayed_until)
    queue_class.messages = property(lambda q: ready(q, millis()))
    queue_class.approximate_number_of_messages = count(
        lambda m, now: now >= m.visible_at and now >= m.delayed_until
    )
    queue_class.approximate_number_of_messages_delayed = count(lambda m, now: now < m.delayed_until)
    queue_class.approximate_number_of_messages_not_visible = count(lambda m, now: now < m.visible_at)
    queue_class.delete_message = queue_delete_message
    queue_class.add_message = add_message
    message_class.visible_at = ready_at_property("visible_at")
    message_class.delayed_until = ready_at_property("delayed_until")
    message_class.mark_received = mark_received
    backend_class.is_message_valid_based_on_retention_period = retained
    for name in ("_validate_message", "send_message"):
        setattr(backend_class, name, settings_only(saved[(backend_class, name)]))
    backend_class.receive_message = serialised(receive_message)
    backend_class.change_message_visibility = serialised(change_message_visibility)
    for name in ("delete_message", "delete_message_batch", "change_message_visibility_batch", "purge_queue"):
        setattr(backend_class, name, serialised(saved[(backend_class, name)]))

    def restore() -> None:
        sqs_models.unix_time = real_unix_time
        sqs_models.unix_time_millis = real_unix_time_millis
        for (cls, name), original in saved.items():
            setattr(cls, name, original)
        for name in ("visible_at", "delayed_until"):  # the values stay in each message's __dict__
            delattr(message_class, name)
        _OWNERS.clear()

    return restore

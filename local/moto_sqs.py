"""moto's SQS on the local stack's clock, at a cost that stays linear in the queue's length.

moto re-reads the clock for every message it looks at, computes every queue attribute (three scans
of the queue) to read one, copies the set of in-flight groups again each time an in-flight message
turns visible, and builds every receipt handle list to find one. With the 20,000 jobs of a soak's
campaign asleep in the send queue, one receive took seconds. These replacements keep moto's
behaviour (same order, same groups held back, same dead-letter moves) with one clock reading per
call and plain comparisons.

`patch(clock)` installs them and returns the function that restores moto's own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from copy import deepcopy
from typing import Any


def patch(clock: Any) -> Callable[[], None]:
    import moto.sqs.models as sqs_models

    millis: Callable[[], float] = getattr(clock, "now_millis", lambda: clock.now() * 1000)
    real_unix_time = sqs_models.unix_time
    real_unix_time_millis = sqs_models.unix_time_millis
    message_class, queue_class, backend_class = sqs_models.Message, sqs_models.Queue, sqs_models.SQSBackend
    saved = {
        (cls, name): cls.__dict__[name]
        for cls, names in (
            (message_class, ("visible", "delayed")),
            (
                queue_class,
                (
                    "messages",
                    "approximate_number_of_messages",
                    "approximate_number_of_messages_delayed",
                    "approximate_number_of_messages_not_visible",
                    "delete_message",
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
        queue._messages = [m for m in queue._messages if m is not message]

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
        pending = queue.pending_messages
        held = (
            Counter(m.group_id for m in pending if m.group_id is not None) if queue.fifo_queue else Counter()
        )
        redrive = queue.redrive_policy if queue.dead_letter_queue is not None else None
        retention_ms = int(queue.message_retention_period) * 1000
        result: list[Any] = []
        to_dead_letters = []
        # moto holds back the groups in flight when the call began and, once an in-flight message
        # turned visible again, those in flight at that moment (this call's first receipts too)
        since = Counter()  # groups received since then
        for message in ready(queue, now):
            if message in pending:  # in flight, visible again: its consumer timed out
                pending.remove(message)
                if message.group_id is not None and held[message.group_id]:
                    held[message.group_id] -= 1
                held += since
                since.clear()
            if queue.fifo_queue and message.group_id and held[message.group_id] > 0:
                continue  # an earlier message of its group is in flight
            if redrive and message.approximate_receive_count >= redrive["maxReceiveCount"]:
                to_dead_letters.append(message)
                continue
            pending.add(message)
            if message.group_id is not None:
                since[message.group_id] += 1
            message.mark_received(visibility_timeout=visibility_timeout)
            received = deepcopy(message)
            sqs_models._filter_message_attributes(received, message_attribute_names or [])
            if message.sent_timestamp + retention_ms <= now:
                break
            result.append(received)
            if len(result) >= count:
                break
        for message in to_dead_letters:
            queue._messages.remove(message)
            queue.dead_letter_queue.add_message(message)
        return result

    def retained(backend: Any, queue_name: str, message: Any) -> bool:
        retention_ms = int(backend.get_queue(queue_name).message_retention_period) * 1000
        return bool(message.sent_timestamp + retention_ms > millis())

    # a FIFO receive iterates the in-flight set while other request threads change it: the
    # operations that touch it, one at a time
    lock = threading.RLock()

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

    return restore

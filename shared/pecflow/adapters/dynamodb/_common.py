"""What the table adapters share: cleaning values for DynamoDB, conditional writes and how
their refusals are read, paging, whole items behind a keys-only index, the resource."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from decimal import Decimal
from itertools import islice
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

CONFLICT_ATTEMPTS = 4
CONFLICT_BACKOFF_SECONDS = 0.05
# a job found moved on when its move is written is read again and the move retried from its new
# state (where allowed) at most this many times in all; past that the refusal is raised
MOVE_ATTEMPTS = 5
BATCH_GET = 100  # keys per BatchGetItem (DynamoDB's limit)
BATCH_GET_ROUNDS = 8  # requests for the keys DynamoDB left unprocessed, then the read is refused


class Conflict(Exception):
    """A conditional write found the item in another state than expected."""


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to int/float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    return value


def _clean(item: dict, *, keep: Collection[str] = ()) -> dict:
    """Drop None and empty strings/lists DynamoDB would refuse or store uselessly (at the top
    level, not the attributes named in `keep`)."""
    out = {}
    for key, value in item.items():
        if key not in keep and (value is None or value == "" or value == [] or value == {}):
            continue
        if isinstance(value, float):
            value = Decimal(repr(value))
        elif isinstance(value, dict):
            value = _clean(value)
        elif isinstance(value, list):
            value = [
                _clean(v) if isinstance(v, dict) else (Decimal(repr(v)) if isinstance(v, float) else v)
                for v in value
            ]
        out[key] = value
    return out


# cancellation reasons of a transaction (and error codes of a single write) that say another
# writer or the capacity got in the way, not the data: the same write may succeed when tried again
_CONTENTION_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
_CONTENTION_CODES = frozenset({"TransactionConflictException"})
_LISTED_REASONS = re.compile(r"\[([A-Za-z, ]*)\]\s*$")


def cancellation_reasons(exc: ClientError) -> list[str]:
    """The reason codes of a cancelled transaction, one per item in order ("None" for an item
    that was fine). botocore parses them into `CancellationReasons`; where only the message has
    them ("... specific reasons [ConditionalCheckFailed, None]") they are read from it."""
    reasons = exc.response.get("CancellationReasons")
    if reasons is not None:
        return [str((reason or {}).get("Code") or "None") for reason in reasons]
    listed = _LISTED_REASONS.search(str(exc.response.get("Error", {}).get("Message", "")))
    return [code.strip() for code in listed.group(1).split(",")] if listed else []


def write_refusal(exc: ClientError) -> str | None:
    """Why DynamoDB refused a conditional write: "condition" (a condition did not hold: the item
    is not as the write required), "contention" (a conflicting transaction or throttling: try
    again), or None (anything else, e.g. invalid data: an error to raise)."""
    code = exc.response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return "condition"
    if code in _CONTENTION_CODES:
        return "contention"
    if code == "TransactionCanceledException":
        reasons = cancellation_reasons(exc)
        if any(reason in _CONTENTION_REASONS for reason in reasons):
            return "contention"  # tried again: a failed condition, if any, shows then on its own
        if "ConditionalCheckFailed" in reasons and set(reasons) <= {"ConditionalCheckFailed", "None"}:
            return "condition"
    return None


def _backoff(attempt: int) -> None:
    time.sleep(CONFLICT_BACKOFF_SECONDS * 2**attempt * random.uniform(0.5, 1.5))


def _try_write(write: Callable[..., Any], **request: Any) -> ClientError | None:
    """A conditional DynamoDB write: None when written, the error when its condition did not
    hold. A refusal for contention is tried again (CONFLICT_ATTEMPTS in all) and then raised, as
    is any other error."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            write(**request)
            return None
        except ClientError as exc:
            refusal = write_refusal(exc)
            if refusal == "condition":
                return exc
            if refusal != "contention" or attempt == CONFLICT_ATTEMPTS - 1:
                raise
        _backoff(attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _conditional_write(write: Callable[..., Any], **request: Any) -> bool:
    """A conditional DynamoDB write: True when written, False when its condition did not hold."""
    return _try_write(write, **request) is None


_REFUSED_DATA = ("ValidationException", "SerializationException")


def is_service_failure(exc: BaseException) -> bool:
    """Did AWS (or the network to it) fail, rather than the data we gave it? A service failure
    stops the work there, to be tried again; refused data (an item over 400 KB, a value DynamoDB
    cannot store) is a problem of that one message."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") not in _REFUSED_DATA
    if isinstance(exc, BotoCoreError):
        return not isinstance(exc, ParamValidationError)
    return isinstance(exc, (OSError, TimeoutError))


def pages(read: Callable[..., dict], **request: Any) -> Iterator[dict]:
    """Every page of a Query or Scan (`read`: the table's `query` or `scan`), following
    LastEvaluatedKey."""
    while True:
        page = read(**request)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def whole_items(
    client: Any,
    table_name: str,
    keys: Iterable[dict],
    key_names: tuple[str, ...],
    on_request: Callable[[], object] | None = None,
) -> Iterator[dict]:
    """The items of `table_name` whose keys a keys-only index gave (`keys`: its items, with the
    table's `key_names` among their attributes), read whole by BatchGetItem, BATCH_GET at a time,
    in the index's order; streamed, as `keys` is. An item gone since the index was read is left
    out. Keys DynamoDB leaves unprocessed (throttled, or over 16 MB in one answer) are asked again
    with backoff, BATCH_GET_ROUNDS requests in all, then RuntimeError. `client`: the resource's
    (`table.meta.client`), which takes and gives Python values. `on_request`: called at each
    request (a page counting what it cost)."""
    keys = iter(keys)
    while batch := [{name: k[name] for name in key_names} for k in islice(keys, BATCH_GET)]:
        found: dict[tuple, dict] = {}
        request: dict[str, Any] = {table_name: {"Keys": batch}}
        for attempt in range(BATCH_GET_ROUNDS):
            answer = client.batch_get_item(RequestItems=request)
            if on_request is not None:
                on_request()
            for item in answer.get("Responses", {}).get(table_name, []):
                found[tuple(item[name] for name in key_names)] = item
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
            if attempt == BATCH_GET_ROUNDS - 1:
                raise RuntimeError(f"DynamoDB left items of {table_name} unread (throttled): try again")
            _backoff(attempt)
        for k in batch:
            item = found.get(tuple(k[name] for name in key_names))
            if item is not None:
                yield item


def _resource(dynamodb):
    if dynamodb is not None:
        return dynamodb
    import boto3

    return boto3.resource("dynamodb")

"""DynamoDB adapters: mailboxes and their cursors, message records, outgoing messages.

Table layout (template.yaml is the source of truth for names and indexes):
- Mailboxes (address, item): item "config" holds MailboxConfig and the poll status;
  "cursor#<folder>" holds the folder's Cursor.
- Messages (mailbox, message): one record per distinct raw message per mailbox, message =
  "sha256:<hex>" so a message fetched twice (crash, UIDVALIDITY change) is recorded once.
  Index ByDate (mailbox, received_key); sparse index Unmatched (unmatched_mailbox,
  received_key) lists receipts whose original is unknown; sparse index Quarantined
  (quarantined_mailbox, received_key) lists messages whose processing failed (archived, recorded
  as a bounded summary with the reason); sparse index ByLocation (location, uid) finds the record
  of a UID still on the provider.
- Outgoing (message_id, recipient): "#message" describes one message we sent (mailbox,
  subject, identificativo once accepted, campaign); one row per recipient carries the job
  state and every receipt about it. Sparse index ByIdentificativo (identificativo) finds a
  message from the provider's id (replies, SdI PecMessageId).
Every state change is a conditional write; counters move in the same transaction. A job's move
is conditional on the exact state its counter deltas were computed from: when the job moved
meanwhile it is read again and the move applied from there, if allowed (the counters stay exact).
A write DynamoDB refuses for contention (a transaction cancelled by `TransactionConflict` on the
campaign item every job's counters share, or by throttling; `TransactionConflictException`) is
tried again a few times, then raised: only `ConditionalCheckFailed` means "the condition did not
hold".
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Collection, Iterable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from pecflow.domain import clock
from pecflow.domain.mailbox import Cursor, MailboxConfig, location
from pecflow.domain.reconcile import COUNTERS, Job, Move, State, counter_deltas
from pecflow.domain.records import KEPT_EMPTY, MESSAGE_ROW, NewJob, job_items, state_stamp

# a write refused for contention is tried this many times in all, then raised (the queue or the next
# poll tries again); the waits between tries start at CONFLICT_BACKOFF_SECONDS and double, jittered
CONFLICT_ATTEMPTS = 4
CONFLICT_BACKOFF_SECONDS = 0.05
# a job found moved on when its move is written is read again and the move retried from its new
# state (where allowed) at most this many times in all; past that the refusal is raised
MOVE_ATTEMPTS = 5


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


def _resource(dynamodb):
    if dynamodb is not None:
        return dynamodb
    import boto3

    return boto3.resource("dynamodb")


# --- mailboxes -----------------------------------------------------------------------------------
class MailboxStore:
    def __init__(self, table_name: str, dynamodb=None):
        self.table = _resource(dynamodb).Table(table_name)

    def put(self, config: MailboxConfig) -> None:
        now = clock.iso()
        self.table.update_item(
            Key={"address": config.address.lower(), "item": "config"},  # as every read finds it
            UpdateExpression="SET #c = :c, updated_at = :now, created_at = if_not_exists(created_at, :now), "
            "#s = if_not_exists(#s, :empty)",
            ExpressionAttributeNames={"#c": "config", "#s": "status"},
            ExpressionAttributeValues={":c": _clean(config.to_item()), ":now": now, ":empty": {}},
        )

    def get(self, address: str) -> MailboxConfig | None:
        item = self.table.get_item(
            Key={"address": address.lower(), "item": "config"}, ConsistentRead=True
        ).get("Item")
        return MailboxConfig.from_item(_plain(item["config"])) if item else None

    def get_with_status(self, address: str) -> tuple[MailboxConfig | None, dict]:
        """The configuration and the poll status, in one read."""
        item = self.table.get_item(
            Key={"address": address.lower(), "item": "config"}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None, {}
        return MailboxConfig.from_item(_plain(item["config"])), _plain(item.get("status", {}))

    def status(self, address: str) -> dict:
        item = self.table.get_item(
            Key={"address": address.lower(), "item": "config"}, ConsistentRead=True
        ).get("Item")
        return _plain(item.get("status", {})) if item else {}

    def list(self, *, enabled_only: bool = False) -> list[MailboxConfig]:
        kwargs: dict = {"FilterExpression": Attr("item").eq("config")}
        configs = []
        while True:
            page = self.table.scan(**kwargs)
            configs += [MailboxConfig.from_item(_plain(i["config"])) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        configs.sort(key=lambda c: c.address)
        return [c for c in configs if c.enabled] if enabled_only else configs

    def set_enabled(self, address: str, enabled: bool) -> None:
        if not _conditional_write(
            self.table.update_item,
            Key={"address": address.lower(), "item": "config"},
            UpdateExpression="SET #c.enabled = :e, updated_at = :now",
            ConditionExpression=Attr("address").exists(),
            ExpressionAttributeNames={"#c": "config"},
            ExpressionAttributeValues={":e": enabled, ":now": clock.iso()},
        ):
            raise KeyError(f"no mailbox {address}")

    def record_poll(
        self,
        address: str,
        *,
        ok: bool,
        error_kind: str | None = None,
        error: str | None = None,
        usage: dict | None = None,
        fetched: int = 0,
    ) -> None:
        """The outcome of one poll on the mailbox record (what `pecflow mailbox list` shows)."""
        key = {"address": address.lower(), "item": "config"}
        now = clock.iso()
        fields: dict = {"last_poll_at": now}
        if ok:
            fields |= {"last_success_at": now, "consecutive_failures": 0, "last_fetched": fetched}
            removed = ["last_error", "error_kind"]
        else:
            fields |= {
                "last_error": (error or "")[:1000] or "unknown error",
                "error_kind": error_kind or "error",
                "last_error_at": now,
            }
            removed = []
        if usage:
            fields["usage"] = _clean(usage)
            fields["usage_at"] = now
        names = {
            "#s": "status",
            **{f"#f{i}": name for i, name in enumerate(fields)},
            **{f"#r{i}": name for i, name in enumerate(removed)},
        }
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        sets = [f"#s.#f{i} = :v{i}" for i in range(len(fields))]
        if not ok:
            names["#n"] = "consecutive_failures"
            values |= {":zero": 0, ":one": 1}
            sets.append("#s.#n = if_not_exists(#s.#n, :zero) + :one")
        expression = "SET " + ", ".join(sets)
        if removed:
            expression += " REMOVE " + ", ".join(f"#s.#r{i}" for i in range(len(removed)))
        self.table.update_item(
            Key=key,
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def note_quarantine(self, address: str, *, uid: int, sha256: str, reason: str) -> None:
        """One more quarantined message on the mailbox's status (what `pecflow mailbox list` shows)."""
        self.table.update_item(
            Key={"address": address.lower(), "item": "config"},
            UpdateExpression="SET #s.#q = if_not_exists(#s.#q, :zero) + :one, #s.#l = :last",
            ExpressionAttributeNames={"#s": "status", "#q": "quarantined", "#l": "last_quarantined"},
            ExpressionAttributeValues={
                ":zero": 0,
                ":one": 1,
                ":last": {"uid": uid, "sha256": sha256, "reason": reason[:1000], "at": clock.iso()},
            },
        )

    def get_cursor(self, address: str, folder: str) -> Cursor:
        item = self.table.get_item(
            Key={"address": address.lower(), "item": f"cursor#{folder}"}, ConsistentRead=True
        ).get("Item")
        if not item:
            return Cursor(folder)
        item = _plain(item)
        return Cursor(
            folder,
            item.get("uidvalidity"),
            item.get("last_uid", 0),
            item.get("uidnext"),
            item.get("highestmodseq"),
            item.get("attempt_uid"),
            item.get("attempts", 0),
        )

    def save_cursor(self, address: str, cursor: Cursor) -> None:
        """Move the cursor forward (never back within one UIDVALIDITY)."""
        condition = (
            Attr("uidvalidity").not_exists()
            | Attr("uidvalidity").ne(cursor.uidvalidity)
            | Attr("last_uid").lte(cursor.last_uid)
        )
        item = _clean(
            {
                "address": address.lower(),
                "item": f"cursor#{cursor.folder}",
                "folder": cursor.folder,
                "uidvalidity": cursor.uidvalidity,
                "last_uid": cursor.last_uid,
                "uidnext": cursor.uidnext,
                "highestmodseq": cursor.highestmodseq,
                "attempt_uid": cursor.attempt_uid,
                "attempts": cursor.attempts or None,
                "updated_at": clock.iso(),
            }
        )
        if not _conditional_write(self.table.put_item, Item=item, ConditionExpression=condition):
            raise Conflict(f"cursor of {address}/{cursor.folder} is already past UID {cursor.last_uid}")


# --- message records -----------------------------------------------------------------------------
def record_key(sha256: str) -> str:
    return f"sha256:{sha256}"


class MessageStore:
    def __init__(self, table_name: str, dynamodb=None):
        self.table = _resource(dynamodb).Table(table_name)

    is_service_failure = staticmethod(is_service_failure)

    def record(self, mailbox: str, record: dict) -> bool:
        """Write a new record; False (and nothing written) when this message is already recorded."""
        item = _clean({**record, "mailbox": mailbox.lower(), "message": record_key(record["sha256"])})
        return _conditional_write(
            self.table.put_item, Item=item, ConditionExpression=Attr("message").not_exists()
        )

    def relocate(self, mailbox: str, sha256: str, *, folder: str, uid: int, uidvalidity: int) -> None:
        """A recorded message seen again at another UID (after a UIDVALIDITY change)."""
        self.table.update_item(
            Key={"mailbox": mailbox.lower(), "message": record_key(sha256)},
            UpdateExpression="SET #f = :f, uid = :u, uidvalidity = :v, #l = :l",
            ExpressionAttributeNames={"#f": "folder", "#l": "location"},
            ExpressionAttributeValues={
                ":f": folder,
                ":u": uid,
                ":v": uidvalidity,
                ":l": location(mailbox, folder, uidvalidity),
            },
        )

    def get(self, mailbox: str, sha256: str) -> dict | None:
        item = self.table.get_item(
            Key={"mailbox": mailbox.lower(), "message": record_key(sha256)}, ConsistentRead=True
        ).get("Item")
        return _plain(item) if item else None

    def set_fields(self, mailbox: str, sha256: str, fields: dict, remove: Iterable[str] = ()) -> None:
        fields = _clean(fields)
        removed = list(remove)
        if not fields and not removed:
            return
        names = {f"#k{i}": k for i, k in enumerate(fields)} | {f"#r{i}": k for i, k in enumerate(removed)}
        expression = ""
        if fields:
            expression = "SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(fields)))
        if removed:
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed)))
        kwargs = (
            {"ExpressionAttributeValues": {f":v{i}": v for i, v in enumerate(fields.values())}}
            if fields
            else {}
        )
        self.table.update_item(
            Key={"mailbox": mailbox.lower(), "message": record_key(sha256)},
            UpdateExpression=expression.strip(),
            ExpressionAttributeNames=names,
            **kwargs,
        )

    def at_location(self, mailbox: str, folder: str, uidvalidity: int, uids: list[int]) -> dict[int, dict]:
        """Records of the given UIDs still on the provider, by UID."""
        if not uids:
            return {}
        low, high = min(uids), max(uids)
        wanted = set(uids)
        found: dict[int, dict] = {}
        kwargs = {
            "IndexName": "ByLocation",
            "KeyConditionExpression": Key("location").eq(location(mailbox, folder, uidvalidity))
            & Key("uid").between(low, high),
        }
        while True:
            page = self.table.query(**kwargs)
            for item in page.get("Items", []):
                uid = int(item["uid"])
                if uid in wanted:
                    found[uid] = _plain(item)
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def query(
        self, mailbox: str, *, index: str = "ByDate", newest_first: bool = True, limit: int = 100
    ) -> list[dict]:
        key = {"Unmatched": "unmatched_mailbox", "Quarantined": "quarantined_mailbox"}.get(index, "mailbox")
        page = self.table.query(
            IndexName=index,
            KeyConditionExpression=Key(key).eq(mailbox.lower()),
            ScanIndexForward=not newest_first,
            Limit=limit,
        )
        return [_plain(i) for i in page.get("Items", [])]

    def count(self, mailbox: str) -> int:
        total, kwargs = 0, {"KeyConditionExpression": Key("mailbox").eq(mailbox.lower()), "Select": "COUNT"}
        while True:
            page = self.table.query(**kwargs)
            total += page["Count"]
            if "LastEvaluatedKey" not in page:
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# --- outgoing messages and their recipients' jobs ------------------------------------------------------
_stamp = state_stamp


def _job(item: dict) -> Job:
    item = _plain(item)
    return Job(
        item["recipient"], State(item["state"]), bool(item.get("certified", True)), item.get("campaign_id")
    )


def _holds(only_if: dict | None, item: dict) -> bool:
    """Do the `only_if` conditions of a move hold on the item as read?"""
    item = _plain(item)
    return all(
        name not in item if value is None else name in item and item[name] == _plain(value)
        for name, value in (only_if or {}).items()
    )


class OutgoingStore:
    def __init__(self, table_name: str, dynamodb=None, *, campaigns_table: str | None = None):
        resource = _resource(dynamodb)
        self.table = resource.Table(table_name)
        # the resource's client serialises plain Python values itself (as the Table API does)
        self.client = resource.meta.client
        self.table_name = table_name
        self.campaigns_table = campaigns_table

    def register(
        self,
        message_id: str,
        *,
        mailbox: str,
        recipients: list[str],
        subject: str | None = None,
        state: State = State.SENT,
        campaign_id: str | None = None,
        extra: dict | None = None,
    ) -> bool:
        """Record a message we send (False when it is already known). Recipients start in `state`."""
        now = clock.iso()
        head = _clean(
            {
                "message_id": message_id,
                "recipient": MESSAGE_ROW,
                "mailbox": mailbox.lower(),
                "subject": subject,
                "campaign_id": campaign_id,
                "created_at": now,
                "recipients": [r.lower() for r in recipients],
                **(extra or {}),
            }
        )
        if not _conditional_write(
            self.table.put_item, Item=head, ConditionExpression=Attr("message_id").not_exists()
        ):
            return False
        with self.table.batch_writer() as batch:
            for address in recipients:
                batch.put_item(
                    Item={
                        **_clean(
                            {
                                "message_id": message_id,
                                "recipient": address.lower(),
                                "state": str(state),
                                "certified": True,
                                "campaign_id": campaign_id,
                                "created_at": now,
                                "updated_at": now,
                                _stamp(state): now,
                            }
                        ),
                        "receipts": {},
                    }
                )
        return True

    def add_jobs(self, jobs: list[dict]) -> int:
        """Create campaign jobs, pending, each only where it does not exist: a job already there
        (a retried or duplicated fan-out, a repeated resend) is never rewritten, so a job that
        moved on keeps its state, claim and receipts. `jobs`: dicts with message_id, recipient,
        mailbox, campaign_id, row, attempt, values. Returns how many were created."""
        now = clock.iso()
        items = []
        for job in jobs:
            head, row = job_items(NewJob.from_dict(job), now)  # the shape: pecflow/domain/records.py
            items.append((_clean(head), _clean(row, keep=KEPT_EMPTY)))
        if not items:
            return 0
        absent = "attribute_not_exists(message_id)"
        # the usual case, nothing there yet: the whole batch in one conditional transaction
        if _conditional_write(
            self.client.transact_write_items,
            TransactItems=[
                {"Put": {"TableName": self.table_name, "Item": item, "ConditionExpression": absent}}
                for pair in items
                for item in pair
            ],
        ):
            return len(items)
        written = 0
        for head, row in items:  # some exist: job by job, its two items together where both are absent
            if _conditional_write(
                self.client.transact_write_items,
                TransactItems=[
                    {"Put": {"TableName": self.table_name, "Item": item, "ConditionExpression": absent}}
                    for item in (head, row)
                ],
            ):
                written += 1
                continue
            if _conditional_write(self.table.put_item, Item=row, ConditionExpression=absent):
                written += 1
            _conditional_write(self.table.put_item, Item=head, ConditionExpression=absent)
        return written

    def job(self, message_id: str) -> dict | None:
        """A campaign job: its one recipient row (with the head's fields)."""
        rows = [
            _plain(i)
            for i in self.table.query(
                KeyConditionExpression=Key("message_id").eq(message_id), ConsistentRead=True
            ).get("Items", [])
        ]
        head = next((r for r in rows if r["recipient"] == MESSAGE_ROW), None)
        jobs = [r for r in rows if r["recipient"] != MESSAGE_ROW]
        if head is None or not jobs:
            return None
        return {**jobs[0], "head": head}

    def reserve_slot(self, message_id: str, recipient: str, at: float) -> bool:
        """Note the quota slot a pending job holds, unless it holds one already (a duplicate of
        the job may have reserved first). False: not noted, give the slot back."""
        return _conditional_write(
            self.table.update_item,
            Key={"message_id": message_id, "recipient": recipient.lower()},
            UpdateExpression="SET slot_at = :at",
            ConditionExpression="#s = :pending AND (attribute_not_exists(slot_at) OR slot_at = :none)",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":at": Decimal(repr(at)), ":pending": str(State.PENDING), ":none": 0},
        )

    def set_job_fields(self, message_id: str, recipient: str, fields: dict) -> None:
        fields = _clean(fields)
        if not fields:
            return
        self.table.update_item(
            Key={"message_id": message_id, "recipient": recipient.lower()},
            UpdateExpression="SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames={f"#k{i}": k for i, k in enumerate(fields)},
            ExpressionAttributeValues={f":v{i}": v for i, v in enumerate(fields.values())},
        )

    def campaign_jobs(self, campaign_id: str):
        """Every job of a campaign, in row then attempt order (streamed, page by page)."""
        kwargs = {"IndexName": "ByCampaign", "KeyConditionExpression": Key("campaign_id").eq(campaign_id)}
        while True:
            page = self.table.query(**kwargs)
            for item in page.get("Items", []):
                yield _plain(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def message(self, message_id: str) -> dict | None:
        item = self.table.get_item(
            Key={"message_id": message_id, "recipient": MESSAGE_ROW}, ConsistentRead=True
        ).get("Item")
        return _plain(item) if item else None

    def message_and_jobs(self, message_id: str) -> tuple[dict | None, list[Job]]:
        """The message's head row and its recipients' jobs, in one query."""
        page = self.table.query(KeyConditionExpression=Key("message_id").eq(message_id), ConsistentRead=True)
        items = page.get("Items", [])
        head = next((_plain(i) for i in items if i["recipient"] == MESSAGE_ROW), None)
        return head, [_job(i) for i in items if i["recipient"] != MESSAGE_ROW]

    def jobs(self, message_id: str) -> list[Job]:
        page = self.table.query(KeyConditionExpression=Key("message_id").eq(message_id), ConsistentRead=True)
        return [_job(i) for i in page.get("Items", []) if i["recipient"] != MESSAGE_ROW]

    def by_identificativo(self, identificativo: str) -> str | None:
        page = self.table.query(
            IndexName="ByIdentificativo", KeyConditionExpression=Key("identificativo").eq(identificativo)
        )
        items = page.get("Items", [])
        return items[0]["message_id"] if items else None

    def set_identificativo(self, message_id: str, identificativo: str) -> None:
        self.table.update_item(
            Key={"message_id": message_id, "recipient": MESSAGE_ROW},
            UpdateExpression="SET identificativo = if_not_exists(identificativo, :i)",
            ExpressionAttributeValues={":i": identificativo},
        )

    def try_move(self, message_id: str, recipient: Job, move: Move, **kwargs) -> bool:
        """Like `apply`, but says whether this very write made the move (False: the job was not
        in a state, or with the fields, the move requires)."""
        outcome: list[bool] = []
        self.apply(message_id, recipient, move, _applied=outcome, **kwargs)
        return bool(outcome and outcome[0])

    def apply(
        self,
        message_id: str,
        recipient: Job,
        move: Move | None,
        *,
        receipt_id: str | None = None,
        receipt: dict | None = None,
        certified: bool | None = None,
        also_set: dict | None = None,
        only_if: dict | None = None,
        also_remove: tuple[str, ...] = (),
        _applied: list | None = None,
    ) -> State:
        """Apply `move` to one recipient's job with a conditional write (and its campaign's
        counters in the same transaction); record the receipt on the job whatever happens.
        `also_set` is written (and `also_remove` removed) by the same write; `only_if` adds
        conditions (attribute equal to a value, or absent for None). Returns the job's state afterwards.

        The move is tried only when it applies to `recipient.state`, the state the caller read.
        Its write requires the job to be exactly in that state (and certified flag), the one the
        counter deltas are computed from. When the job moved meanwhile, it is read again and, if
        the move (and `only_if`) still holds there, written again from that state: the counters
        stay exact (MOVE_ATTEMPTS in all; past that the refusal is raised). A write refused for
        contention is tried again, then raised (`_try_write`), never taken for a refusal."""
        key = {"message_id": message_id, "recipient": recipient.address}
        now = clock.iso()
        # the reconciled view keeps every receipt (duplicates and late ones too), keyed by its sha256
        record = (
            (
                "receipts.#r = if_not_exists(receipts.#r, :info)",
                {"#r": receipt_id},
                {":info": _clean({**(receipt or {}), "recorded_at": now})},
            )
            if receipt_id
            else None
        )
        state = recipient.state
        if move is not None and move.applies_to(recipient.state):
            job = recipient
            refused: ClientError | None = None
            for _ in range(MOVE_ATTEMPTS):
                write, request = self._move_write(
                    key, job, move, now, record, certified, receipt, also_set, only_if, also_remove
                )
                refused = _try_write(write, **request)
                if refused is None:
                    if _applied is not None:
                        _applied.append(True)
                    return move.to
                # the job is not as the write required: as it is now, may the move still be made?
                item = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
                if not item or "state" not in item:
                    break  # no such job
                job = _job(item)
                state = job.state
                if not move.applies_to(job.state) or not _holds(only_if, item):
                    break  # refused: not from this state, or not for this claim
            else:  # moved every time it was read: raised, the caller tries again later
                assert refused is not None
                raise refused
        if _applied is not None:
            _applied.append(False)
        if record:  # refused or not tried: the receipt alone
            self.table.update_item(
                Key=key,
                UpdateExpression="SET " + record[0],
                ExpressionAttributeNames=record[1],
                ExpressionAttributeValues=record[2],
            )
        return state

    def _move_write(
        self,
        key: dict,
        job: Job,
        move: Move,
        now: str,
        record: tuple | None,
        certified: bool | None,
        receipt: dict | None,
        also_set: dict | None,
        only_if: dict | None,
        also_remove: tuple[str, ...],
    ) -> tuple[Callable[..., Any], dict]:
        """The write moving `job`, as it was read, by `move`: conditional on that very state and
        certified flag, with the counter deltas from them in the same transaction."""
        new_certified = job.certified if certified is None else certified
        sets = [
            "#s = :to",
            "updated_at = :now",
            "#stamp = if_not_exists(#stamp, :now)",
            "#cert = :cert",
            "last_reason = :why",
        ]
        names = {"#s": "state", "#stamp": _stamp(move.to), "#cert": "certified"}
        values = {
            ":to": str(move.to),
            ":now": now,
            ":cert": new_certified,
            ":why": move.reason,
            ":from": str(job.state),
            ":was": job.certified,
        }
        # exactly what the deltas are computed from (a job without the flag is read as certified)
        was = "#cert = :was" if not job.certified else "(attribute_not_exists(#cert) OR #cert = :was)"
        conditions = ["#s = :from", was]
        if record:
            sets.append(record[0])
            names.update(record[1])
            values.update(record[2])
        extra = dict(also_set or {})
        if receipt and move.to in (State.DELIVERY_FAILED, State.NOT_ACCEPTED):
            # a failure receipt's own words become the job's error text
            extra["error"] = (receipt.get("error_detail") or receipt.get("error") or move.reason)[:1000]
        for i, (name, value) in enumerate(_clean(extra).items()):
            sets.append(f"#x{i} = :x{i}")
            names[f"#x{i}"], values[f":x{i}"] = name, value
        for i, (name, value) in enumerate((only_if or {}).items()):
            names[f"#c{i}"] = name
            if value is None:
                conditions.append(f"attribute_not_exists(#c{i})")
            else:
                conditions.append(f"#c{i} = :c{i}")
                values[f":c{i}"] = value
        expression = "SET " + ", ".join(sets)
        if also_remove:
            names.update({f"#d{i}": name for i, name in enumerate(also_remove)})
            expression += " REMOVE " + ", ".join(f"#d{i}" for i in range(len(also_remove)))
        update = {
            "Key": key,
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        campaign_id = job.campaign_id if self.campaigns_table else None
        deltas = (
            counter_deltas(job.state, move.to, certified=new_certified, old_certified=job.certified)
            if campaign_id
            else {}
        )
        if not campaign_id or not deltas:  # nothing else to keep in step: a conditional write
            return self.table.update_item, update
        counters = self._counter_update(campaign_id, deltas)
        items = [{"Update": {"TableName": self.table_name, **update}}, counters]
        return self.client.transact_write_items, {"TransactItems": items}

    def count_in_campaign(self, campaign_id: str, name: str, delta: int) -> None:
        """Add `delta` to a figure of the campaign item kept beside its counters (e.g. dead_lettered)."""
        if self.campaigns_table:
            self.client.update_item(
                TableName=self.campaigns_table,
                Key={"campaign_id": campaign_id},
                UpdateExpression="ADD #n :d",
                ExpressionAttributeNames={"#n": name},
                ExpressionAttributeValues={":d": delta},
            )

    def _counter_update(self, campaign_id: str, deltas: dict[str, int]) -> dict:
        names = {f"#c{i}": name for i, name in enumerate(deltas)}
        values = {f":d{i}": delta for i, delta in enumerate(deltas.values())}
        return {
            "Update": {
                "TableName": self.campaigns_table,
                "Key": {"campaign_id": campaign_id},
                "UpdateExpression": "ADD " + ", ".join(f"counters.#c{i} :d{i}" for i in range(len(deltas))),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def view(self, message_id: str) -> dict | None:
        """The reconciled view: the message, each recipient's state, and all their receipts."""
        page = self.table.query(KeyConditionExpression=Key("message_id").eq(message_id), ConsistentRead=True)
        items = [_plain(i) for i in page.get("Items", [])]
        head = next((i for i in items if i["recipient"] == MESSAGE_ROW), None)
        if head is None:
            return None
        return {**head, "jobs": [i for i in items if i["recipient"] != MESSAGE_ROW]}


# --- campaigns ---------------------------------------------------------------------------------------
class CampaignStore:
    """The campaign item: definition, status, fan-out progress, and its counters."""

    def __init__(self, table_name: str, dynamodb=None):
        self.table = _resource(dynamodb).Table(table_name)

    def get(self, campaign_id: str) -> dict | None:
        item = self.table.get_item(Key={"campaign_id": campaign_id}, ConsistentRead=True).get("Item")
        return _plain(item) if item else None

    def create(self, campaign_id: str, fields: dict) -> bool:
        """Create the campaign once (False when it exists: a repeated S3 event or a resume)."""
        now = clock.iso()
        item = {
            **_clean({**fields, "campaign_id": campaign_id, "created_at": now, "updated_at": now}),
            "counters": dict.fromkeys(COUNTERS, 0),
        }
        return _conditional_write(
            self.table.put_item, Item=item, ConditionExpression=Attr("campaign_id").not_exists()
        )

    def update(
        self, campaign_id: str, fields: dict, *, only_if_status: tuple[str, ...] | None = None
    ) -> bool:
        fields = {**_clean(fields), "updated_at": clock.iso()}
        names = {f"#k{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": v for i, v in enumerate(fields.values())}
        kwargs = {}
        if only_if_status:
            names["#status"] = "status"
            values.update({f":s{i}": s for i, s in enumerate(only_if_status)})
            kwargs["ConditionExpression"] = (
                "#status IN (" + ", ".join(f":s{i}" for i in range(len(only_if_status))) + ")"
            )
        return _conditional_write(
            self.table.update_item,
            Key={"campaign_id": campaign_id},
            UpdateExpression="SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            **kwargs,
        )

    def note_problem(self, campaign_id: str, text: str, *, keep: int = 20) -> bool:
        """Add a line to the campaign's `problems` (what `campaign stats` shows), up to `keep` lines."""
        return _conditional_write(
            self.table.update_item,
            Key={"campaign_id": campaign_id},
            UpdateExpression="SET problems = list_append(if_not_exists(problems, :empty), :p), updated_at = :now",
            ConditionExpression="attribute_exists(campaign_id) AND (attribute_not_exists(problems) "
            "OR size(problems) < :keep)",
            ExpressionAttributeValues={":empty": [], ":p": [text[:1000]], ":now": clock.iso(), ":keep": keep},
        )

    def start_counting(self, campaign_id: str, total: int) -> bool:
        """Set the counters for `total` jobs to send, once (a resumed fan-out does not count twice)."""
        return _conditional_write(
            self.table.update_item,
            Key={"campaign_id": campaign_id},
            UpdateExpression="SET counters.#t = :t, counters.#s = :t, counting_started = :yes",
            ConditionExpression=Attr("counting_started").not_exists(),
            ExpressionAttributeNames={"#t": "total", "#s": "to_send"},
            ExpressionAttributeValues={":t": total, ":yes": True},
        )

    def add_jobs(self, campaign_id: str, count: int) -> None:
        """More jobs to send (a resend of the failed ones)."""
        self.table.update_item(
            Key={"campaign_id": campaign_id},
            UpdateExpression="ADD counters.#t :n, counters.#s :n",
            ExpressionAttributeNames={"#t": "total", "#s": "to_send"},
            ExpressionAttributeValues={":n": count},
        )

    def checkpoint(self, campaign_id: str, next_row: int, queued: int, expected_next_row: int) -> bool:
        """Fan-out progress: rows before `next_row` are queued. Conditional on the last checkpoint."""
        return _conditional_write(
            self.table.update_item,
            Key={"campaign_id": campaign_id},
            UpdateExpression="SET fanout_next_row = :n, fanout_queued = :q, updated_at = :now",
            ConditionExpression=Attr("fanout_next_row").not_exists()
            | Attr("fanout_next_row").eq(expected_next_row),
            ExpressionAttributeValues={":n": next_row, ":q": queued, ":now": clock.iso()},
        )

    def counters(self, campaign_id: str) -> dict[str, int]:
        item = self.get(campaign_id) or {}
        return {name: int(item.get("counters", {}).get(name, 0)) for name in COUNTERS}

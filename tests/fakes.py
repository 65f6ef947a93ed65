"""In-memory fakes of every port the services use, for unit tests without AWS, IMAP or SMTP.

Each fake behaves as its adapter does, as the callers can observe it: what is stored (values
cleaned as DynamoDB keeps them: None, "" and empty lists or maps dropped, whole floats back as
ints), every conditional write refused when the adapter's condition does not hold, updates that
create the item where DynamoDB's would, and the same errors where the adapter raises them
(a ClientError ValidationException for a document path DynamoDB cannot update, Conflict for a
cursor moving back, KeyError for an unknown mailbox, ArchiveError, MailboxUnavailable). They use the
real domain types (MailboxConfig, Cursor, Job, State, Decision, Usage, FolderStatus).
tests/integration/test_fakes_contract.py runs the same scenarios against each fake and its
adapter on moto, so the two cannot drift apart.

- FakeMailboxStore, FakeMessageStore, FakeOutgoingStore, FakeCampaignStore: the DynamoDB stores
  (the outgoing store moves its campaign's counters in the fake campaign store it is given, as
  the real one does in one transaction; its `interfere` makes its next move writes refused for
  contention, as DynamoDB refuses them under load, which moto never does);
- FakeArchive: the S3 archive (sha256 keys, checksums, never overwritten; can be told to fail
  its puts, and objects can be deleted or tampered with);
- FakeImapServer / FakeImapSession: a provider's mailboxes (folders of (uid, raw bytes) under a
  UIDVALIDITY, quota) and one logged-in session counting its IMAP commands as the real one does;
- FakeSmtp: the provider's SMTP access point, `submit(config, raw, recipients)` as the sender's
  handler wires it; the real SmtpSubmitter speaks to it, so refusals at MAIL, RCPT or DATA and a
  lost answer map to the same Submission as in production;
- FakeRateLimiter: the rate limiter's own decisions (the real RateLimiter's code) kept in memory;
  scripted decisions can be queued in front of them;
- FakeQueue (SQS, FIFO deduplication), FakeSecrets (the secret store and `password_of`),
  FakeCampaignFiles (a campaign's files in a versioned bucket, pinned reads);
- FakeClock: the time pecflow reads (installed through PECFLOW_CLOCK).

The fakes take the adapters' own code where it is the behaviour itself rather than the storage
(SmtpSubmitter's reading of SMTP answers, RateLimiter's slot decisions, the adapters' error
classes), so they test the services, not a second copy of those rules.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import smtplib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from imapclient.exceptions import IMAPClientError

from pecflow.adapters.dynamodb import CONFLICT_ATTEMPTS, MOVE_ATTEMPTS, Conflict, write_refusal
from pecflow.adapters.mail import CONNECTION_ERRORS, SmtpSubmitter
from pecflow.adapters.ratelimit import LimiterStats, RateLimiter
from pecflow.adapters.ratelimit import _Stored as _LimiterState
from pecflow.domain import clock
from pecflow.domain.mailbox import (
    Cursor,
    FolderStatus,
    MailboxConfig,
    Usage,
    uid_map_items,
    uid_map_key,
    uid_map_partition,
    uid_map_place,
    uid_map_removal,
    uid_map_without,
)
from pecflow.domain.ports import (
    Archived,
    ArchiveError,
    Fetched,
    MailboxUnavailable,
    PackageChanged,
    Submission,
    Verification,
)
from pecflow.domain.quota import Decision, QuotaPolicy, policy_from_spec
from pecflow.domain.reconcile import COUNTERS, Job, Move, State, counter_deltas, weighted
from pecflow.domain.records import (
    KEPT_EMPTY,
    MESSAGE_ROW,
    CampaignRecord,
    JobRecord,
    MessageRecord,
    NewJob,
    job_items,
    left_behind,
    move_stamps,
    on_provider_records,
    receipt_entry,
    receipts_written,
    registered_items,
    rows_covered,
)

ITEM_LIMIT = 400_000  # DynamoDB refuses items over 400 KB


# --- time -------------------------------------------------------------------------------------------
class FakeClock:
    """The time pecflow reads, moved by tests. Install it with
    `monkeypatch.setenv("PECFLOW_CLOCK", "tests.fakes:fake_time")` (see `install`)."""

    def __init__(self, start: datetime = datetime(2026, 3, 2, 9, tzinfo=UTC)):
        self.t = start.timestamp()

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def set(self, when: datetime | float) -> None:
        self.t = when.timestamp() if isinstance(when, datetime) else float(when)

    def install(self, monkeypatch) -> FakeClock:
        global CLOCK
        CLOCK = self
        monkeypatch.setenv("PECFLOW_CLOCK", "tests.fakes:fake_time")
        return self


CLOCK = FakeClock()


def fake_time() -> float:
    return CLOCK.t


# --- what DynamoDB keeps ---------------------------------------------------------------------------
def _validation(message: str, operation: str = "UpdateItem") -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, operation)


def _no_path(operation: str = "UpdateItem") -> ClientError:
    """What DynamoDB answers to SET/ADD on a nested path whose parent map does not exist."""
    return _validation("The document path provided in the update expression is invalid for update", operation)


def _clean(item: dict, *, keep: Iterable[str] = ()) -> dict:
    """As the adapters clean what they write: None, "", [] and {} dropped (nested maps cleaned first,
    so a map left empty by the cleaning stays, as in the adapters), except the attributes in `keep`."""
    out = {}
    for key, value in item.items():
        if key not in keep and (value is None or value == "" or value == [] or value == {}):
            continue
        if isinstance(value, dict):
            value = _clean(value)
        elif isinstance(value, list):
            value = [_clean(v) if isinstance(v, dict) else v for v in value]
        out[key] = value
    return out


def _plain(value: Any) -> Any:
    """A stored value as the adapters read it back: numbers through Decimal (whole floats are ints)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    return copy.deepcopy(value)


def _kept(item: dict, *, keep: Iterable[str] = ()) -> dict:
    """What DynamoDB keeps of an item the adapters write (cleaned, numbers normalised, a copy)."""
    return _plain(_clean(item, keep=keep))


def _check_size(item: dict, operation: str = "PutItem") -> None:
    size = len(json.dumps(item, ensure_ascii=False, default=str).encode("utf-8", "replace"))
    if size > ITEM_LIMIT:
        raise _validation("Item size has exceeded the maximum allowed size", operation)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


_REFUSED_DATA = ("ValidationException", "SerializationException")


def is_service_failure(exc: BaseException) -> bool:
    """As the DynamoDB adapter classifies errors: a ClientError other than refused data, or a
    network error, is the service failing (the work stops, to be tried again); a
    ValidationException (an item over 400 KB, a value DynamoDB cannot store) is that record's."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") not in _REFUSED_DATA
    return isinstance(exc, (OSError, TimeoutError))


# --- what DynamoDB answers under contention (moto never does) -----------------------------------------
def transaction_cancelled(*reasons: str) -> ClientError:
    """A cancelled transaction as botocore parses it: one reason per item, "None" for an item
    that was fine (TransactionConflict, ThrottlingError, ConditionalCheckFailed, ValidationError...)."""
    return ClientError(
        {
            "Error": {
                "Code": "TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for specific "
                f"reasons [{', '.join(reasons)}]",
            },
            "CancellationReasons": [
                {"Code": reason} if reason == "None" else {"Code": reason, "Message": reason}
                for reason in reasons
            ],
        },
        "TransactWriteItems",
    )


def contention_error(reason: str, *, transaction: bool) -> ClientError:
    """What DynamoDB answers to a move's write refused for `reason`: a transaction (the job, then
    its campaign's counters) cancelled for it on the counters item; a single write refused with
    TransactionConflictException (another transaction holds the item) or the reason's own code."""
    if transaction:
        return transaction_cancelled("None", reason)
    code = {"TransactionConflict": "TransactionConflictException"}.get(reason, reason)
    return ClientError({"Error": {"Code": code, "Message": reason}}, "UpdateItem")


def _holds(only_if: dict | None, item: dict) -> bool:
    """A move's `only_if` conditions on the stored item: equal to the value, or absent for None."""
    return all(
        name not in item if value is None else name in item and item[name] == value
        for name, value in (only_if or {}).items()
    )


# --- mailboxes ---------------------------------------------------------------------------------------
class FakeMailboxStore:
    """MailboxStore: the mailbox configurations, their poll status and their folders' cursors."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict] = {}
        self.cursor_writes: list[tuple[str, Cursor]] = []  # every cursor saved, in order (for tests)

    def put(self, config: MailboxConfig) -> None:
        now = clock.iso()
        address = config.address.lower()  # as every read looks it up (the config keeps it as given)
        item = self.items.setdefault(
            (address, "config"), {"address": address, "item": "config", "created_at": now}
        )
        item["config"] = _kept(config.to_item())
        item["updated_at"] = now
        item.setdefault("status", {})

    def _config_item(self, address: str) -> dict | None:
        return self.items.get((address.lower(), "config"))

    def get(self, address: str) -> MailboxConfig | None:
        item = self._config_item(address)
        return MailboxConfig.from_item(copy.deepcopy(item["config"])) if item else None

    def get_with_status(self, address: str) -> tuple[MailboxConfig | None, dict]:
        item = self._config_item(address)
        if not item:
            return None, {}
        return MailboxConfig.from_item(copy.deepcopy(item["config"])), copy.deepcopy(item.get("status", {}))

    def status(self, address: str) -> dict:
        item = self._config_item(address)
        return copy.deepcopy(item.get("status", {})) if item else {}

    def list(self, *, enabled_only: bool = False) -> list[MailboxConfig]:
        configs = [
            MailboxConfig.from_item(copy.deepcopy(i["config"]))
            for (_, kind), i in self.items.items()
            if kind == "config" and "config" in i
        ]
        configs.sort(key=lambda c: c.address)
        return [c for c in configs if c.enabled] if enabled_only else configs

    def set_enabled(self, address: str, enabled: bool) -> None:
        item = self._config_item(address)
        if item is None:
            raise KeyError(f"no mailbox {address}")
        if "config" not in item:
            raise _no_path()
        item["config"]["enabled"] = enabled
        item["updated_at"] = clock.iso()

    def _status_map(self, address: str) -> dict:
        item = self._config_item(address)
        if item is None or not isinstance(item.get("status"), dict):
            raise _no_path()  # DynamoDB: SET status.x on an item without a status map
        return item["status"]

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
        status = self._status_map(address)
        now = clock.iso()
        status["last_poll_at"] = now
        if ok:
            status |= {"last_success_at": now, "consecutive_failures": 0, "last_fetched": fetched}
            status.pop("last_error", None)
            status.pop("error_kind", None)
        if error or not ok:
            status |= {
                "last_error": (error or "")[:1000] or "unknown error",
                "error_kind": error_kind or "error",
                "last_error_at": now,
            }
        if not ok:
            status["consecutive_failures"] = status.get("consecutive_failures", 0) + 1
        if usage:
            status["usage"] = _kept(usage)
            status["usage_at"] = now

    def note_quarantine(self, address: str, *, uid: int, sha256: str, reason: str) -> None:
        status = self._status_map(address)
        status["quarantined"] = status.get("quarantined", 0) + 1
        status["last_quarantined"] = {
            "uid": uid,
            "sha256": sha256,
            "reason": reason[:1000],
            "at": clock.iso(),
        }

    def get_cursor(self, address: str, folder: str) -> Cursor:
        item = self.items.get((address.lower(), f"cursor#{folder}"))
        if not item:
            return Cursor(folder)
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
        """Forward only within one UIDVALIDITY (Conflict otherwise), as the adapter's condition."""
        key = (address.lower(), f"cursor#{cursor.folder}")
        current = self.items.get(key)
        if (
            current is not None
            and "uidvalidity" in current
            and current["uidvalidity"] == cursor.uidvalidity
            and not current.get("last_uid", 0) <= cursor.last_uid
        ):
            raise Conflict(f"cursor of {address}/{cursor.folder} is already past UID {cursor.last_uid}")
        self.items[key] = _kept(
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
        self.cursor_writes.append((address.lower(), cursor))


# --- message records ---------------------------------------------------------------------------------
_INDEX_KEYS = {None: "mailbox", "Unmatched": "unmatched_mailbox", "Quarantined": "quarantined_mailbox"}


class FakeMessageStore:
    """MessageStore: one record per distinct raw message per mailbox, keyed by its sha256."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict] = {}
        self.uid_map: dict[tuple[str, str], bytes] = {}  # beside the records, as in MessagesTable

    is_service_failure = staticmethod(is_service_failure)

    @staticmethod
    def _key(mailbox: str, sha256: str) -> tuple[str, str]:
        return mailbox.lower(), f"sha256:{sha256}"

    def record(self, mailbox: str, record: dict) -> bool:
        item = _kept({**record, "mailbox": mailbox.lower(), "message": f"sha256:{record['sha256']}"})
        _check_size(item)
        key = self._key(mailbox, record["sha256"])
        if key in self.items:
            return False
        self.items[key] = item
        return True

    def _upsert(self, mailbox: str, sha256: str) -> dict:
        key = self._key(mailbox, sha256)
        return self.items.setdefault(key, {"mailbox": key[0], "message": key[1]})

    def relocate(self, mailbox: str, sha256: str, *, folder: str, uid: int, uidvalidity: int) -> None:
        self._upsert(mailbox, sha256).update(folder=folder, uid=uid, uidvalidity=uidvalidity)

    def get(self, mailbox: str, sha256: str) -> MessageRecord | None:
        item = self.items.get(self._key(mailbox, sha256))
        return MessageRecord.from_item(copy.deepcopy(item)) if item else None

    def set_fields(self, mailbox: str, sha256: str, fields: dict, remove: Iterable[str] = ()) -> None:
        fields = _kept(fields)
        removed = list(remove)
        if not fields and not removed:
            return
        key = self._key(mailbox, sha256)
        item = {**self.items.get(key, {"mailbox": key[0], "message": key[1]}), **fields}
        for name in removed:
            item.pop(name, None)
        _check_size(item, "UpdateItem")  # refused: the record stays as it was
        self.items[key] = item

    # the UID map: its items as the adapter keeps them, (partition, sort key) -> packed entries
    def map_uids(self, mailbox: str, folder: str, uidvalidity: int, shas: Mapping[int, str]) -> None:
        for key, packed in uid_map_items(folder, uidvalidity, shas):
            self.uid_map[(uid_map_partition(mailbox), key)] = packed

    def unmap_uids(
        self, mailbox: str, folder: str, uidvalidity: int, uids: Iterable[int] | None = None
    ) -> None:
        removal = uid_map_removal(uids)
        if removal is None:
            return
        gone, high = removal
        for key, packed in self._map_items(mailbox, folder, uidvalidity, high):
            left = uid_map_without(packed, gone)
            if left == b"":
                del self.uid_map[key]
            elif left is not None:
                self.uid_map[key] = left

    def at_location(
        self, mailbox: str, folder: str, uidvalidity: int, uids: list[int]
    ) -> dict[int, MessageRecord]:
        if not uids:
            return {}
        items = self._map_items(mailbox, folder, uidvalidity, max(uids))
        return on_provider_records(mailbox, folder, uidvalidity, (packed for _, packed in items), set(uids))

    def _map_items(self, mailbox: str, folder: str, uidvalidity: int, high: int | None):
        """(key, packed) of the folder's items under `uidvalidity` whose first UID is at most
        `high`, in sort-key order (a list: the caller may change the map)."""
        low = _utf8(uid_map_key(folder, uidvalidity, 0))
        top = _utf8(uid_map_key(folder, uidvalidity, 2**32 - 1 if high is None else high))
        return [
            (key, packed)
            for key, packed in sorted(self.uid_map.items(), key=lambda kv: _utf8(kv[0][1]))
            if key[0] == uid_map_partition(mailbox)
            and low <= _utf8(key[1]) <= top
            and uid_map_place(key[1])[:2] == (folder, uidvalidity)
        ]

    def query(
        self, mailbox: str, *, index: str | None = None, newest_first: bool = True, limit: int = 100
    ) -> list[MessageRecord]:
        if index not in _INDEX_KEYS:
            raise _validation(f"the index {index} cannot be queried by mailbox", "Query")
        name = _INDEX_KEYS[index]
        found = [
            i
            for i in self.items.values()
            if i.get(name) == mailbox.lower() and isinstance(i.get("received_key"), str)  # sparse index
        ]
        found.sort(key=lambda i: (_utf8(i["received_key"]), _utf8(i["message"])), reverse=newest_first)
        return [MessageRecord.from_item(copy.deepcopy(i)) for i in found[:limit]]

    def every(self, mailbox: str):
        return [
            MessageRecord.from_item(copy.deepcopy(i))
            for (m, _), i in sorted(self.items.items())
            if m == mailbox.lower()
        ]

    def count(self, mailbox: str) -> int:
        return sum(1 for m, _ in self.items if m == mailbox.lower())

    # for tests
    def records(self, mailbox: str) -> list[dict]:
        return [copy.deepcopy(i) for (m, _), i in self.items.items() if m == mailbox.lower()]


# --- campaigns -----------------------------------------------------------------------------------------
class FakeCampaignStore:
    """CampaignStore: the campaign item, its status and its counters."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}

    def get(self, campaign_id: str) -> CampaignRecord | None:
        item = self.items.get(campaign_id)
        return CampaignRecord.from_item(copy.deepcopy(item)) if item else None

    def of_mailbox(self, mailbox: str, *, limit: int = 50, start_key: dict | None = None):
        found = sorted(
            (i for i in self.items.values() if i.get("mailbox") == mailbox.lower() and i.get("created_at")),
            key=lambda i: (i["created_at"], i["campaign_id"]),
            reverse=True,
        )
        if start_key:
            after = (start_key["created_at"], start_key["campaign_id"])
            found = [i for i in found if (i["created_at"], i["campaign_id"]) < after]
        page = found[:limit]
        more = len(found) > limit
        last = page[-1] if page and more else None
        following = {k: last[k] for k in ("campaign_id", "mailbox", "created_at")} if last else None
        return [CampaignRecord.from_item(copy.deepcopy(i)) for i in page], following

    def create(self, campaign_id: str, fields: dict) -> bool:
        if campaign_id in self.items:
            return False
        now = clock.iso()
        self.items[campaign_id] = {
            **_kept({**fields, "campaign_id": campaign_id, "created_at": now, "updated_at": now}),
            "counters": dict.fromkeys(COUNTERS, 0),
            "row_counters": dict.fromkeys(COUNTERS, 0),
        }
        return True

    def update(
        self, campaign_id: str, fields: dict, *, only_if_status: tuple[str, ...] | None = None
    ) -> bool:
        item = self.items.get(campaign_id)
        if only_if_status and (item is None or item.get("status") not in only_if_status):
            return False
        item = self.items.setdefault(campaign_id, {"campaign_id": campaign_id})
        item.update(_kept(fields), updated_at=clock.iso())
        return True

    def note_problem(self, campaign_id: str, text: str, *, keep: int = 20) -> bool:
        item = self.items.get(campaign_id)
        if item is None or len(item.get("problems", [])) >= keep:
            return False
        item["problems"] = [*item.get("problems", []), text[:1000]]
        item["updated_at"] = clock.iso()
        return True

    def _counters_map(self, campaign_id: str) -> dict:
        item = self.items.get(campaign_id)
        if item is None or not isinstance(item.get("counters"), dict):
            raise _no_path()  # SET/ADD counters.x without a counters map
        return item["counters"]

    def start_counting(self, campaign_id: str, total: int, rows: int | None = None) -> bool:
        item = self.items.get(campaign_id)
        if item is not None and "counting_started" in item:
            return False
        counters = self._counters_map(campaign_id)
        counters["total"] = counters["to_send"] = total
        covered = total if rows is None else rows
        self.items[campaign_id]["row_counters"] = {
            **dict.fromkeys(COUNTERS, 0),
            "total": covered,
            "to_send": covered,
        }
        self.items[campaign_id]["counting_started"] = True
        return True

    def add_jobs(self, campaign_id: str, count: int, rows: int | None = None) -> None:
        counters = self._counters_map(campaign_id)
        row_counters = self.items[campaign_id].get("row_counters")  # absent on an older campaign: left so
        for name in ("total", "to_send"):
            counters[name] = counters.get(name, 0) + count
            if isinstance(row_counters, dict):
                row_counters[name] = row_counters.get(name, 0) + (count if rows is None else rows)

    def checkpoint(
        self, campaign_id: str, next_row: int, queued: int, expected_next_row: int, rows: int | None = None
    ) -> bool:
        item = self.items.get(campaign_id)
        if item is not None and "fanout_next_row" in item and item["fanout_next_row"] != expected_next_row:
            return False
        item = self.items.setdefault(campaign_id, {"campaign_id": campaign_id})
        item.update(
            fanout_next_row=next_row,
            fanout_queued=queued,
            fanout_queued_rows=queued if rows is None else rows,
            updated_at=clock.iso(),
        )
        return True

    def counters(self, campaign_id: str) -> dict[str, int]:
        item = self.items.get(campaign_id) or {}
        return {name: int(item.get("counters", {}).get(name, 0)) for name in COUNTERS}

    # what the outgoing store does to the campaign item
    def _keeps_rows(self, campaign_id: str) -> bool:
        """The condition of a move's counters counted in rows: the item has row_counters."""
        return isinstance(self.items.get(campaign_id, {}).get("row_counters"), dict)

    def _transact_counters(self, campaign_id: str, deltas: dict[str, int], rows: int | None = None) -> None:
        """The counter half of a job's move transaction (with `rows`, the same deltas weighted in
        row_counters: `_keeps_rows` was checked). With no campaign item, or one without counters,
        the document path is invalid: DynamoDB cancels the transaction with a ValidationError,
        which the outgoing store raises (not a refused move). (moto raises a ValidationException:
        an error all the same.)"""
        item = self.items.get(campaign_id)
        if item is None or not isinstance(item.get("counters"), dict):
            raise transaction_cancelled("None", "ValidationError")
        for name, delta in deltas.items():
            item["counters"][name] = item["counters"].get(name, 0) + delta
        for name, delta in weighted(deltas, rows).items() if rows is not None else ():
            item["row_counters"][name] = item["row_counters"].get(name, 0) + delta

    def _add_figure(self, campaign_id: str, name: str, delta: int) -> None:
        item = self.items.setdefault(campaign_id, {"campaign_id": campaign_id})
        item[name] = item.get(name, 0) + delta


# --- outgoing messages and their jobs ----------------------------------------------------------------------
class FakeOutgoingStore:
    """OutgoingStore: "#message" rows and one job row per recipient, moved by conditional writes;
    with `campaigns`, every move changes its campaign's counters together with the job."""

    def __init__(self, campaigns: FakeCampaignStore | None = None) -> None:
        self.rows: dict[tuple[str, str], dict] = {}
        self.campaigns = campaigns
        self.unrowed: set[str] = set()  # as the adapter: campaigns found without row_counters
        self._interference: list[str] = []  # reasons the next move writes are refused for
        self._writes: list[str] | None = None  # the move writes tried since `interfere`
        # every write request the adapter would make: "transaction" or "update" (a move), "receipt"
        # (receipts alone), "identificativo"
        self.write_requests: list[str] = []

    def interfere(self, reasons: Iterable[str]) -> list[str]:
        """Refuse the next move writes for contention, one per reason ("TransactionConflict",
        "ThrottlingError", ...; "ValidationError" for refused data), as DynamoDB does under load.
        Returns the list of the move writes tried from now on ("transaction" or "update")."""
        self._interference = list(reasons)
        self._writes = []
        return self._writes

    # -- reading
    def _rows_of(self, message_id: str) -> list[dict]:
        rows = [r for (m, _), r in self.rows.items() if m == message_id]
        return sorted(rows, key=lambda r: _utf8(r["recipient"]))

    @staticmethod
    def _job(item: dict) -> Job:
        return Job(
            item["recipient"],
            State(item["state"]),
            bool(item.get("certified", True)),
            item.get("campaign_id"),
            rows_covered(item.get("rows")),
        )

    def job(self, message_id: str) -> JobRecord | None:
        rows = [copy.deepcopy(r) for r in self._rows_of(message_id)]
        head = next((r for r in rows if r["recipient"] == MESSAGE_ROW), None)
        jobs = [r for r in rows if r["recipient"] != MESSAGE_ROW]
        if head is None or not jobs:
            return None
        return JobRecord.from_item({**jobs[0], "head": head})

    def message(self, message_id: str) -> dict | None:
        head = self.rows.get((message_id, MESSAGE_ROW))
        return copy.deepcopy(head) if head else None

    def message_and_jobs(self, message_id: str) -> tuple[dict | None, list[Job]]:
        rows = self._rows_of(message_id)
        head = next((copy.deepcopy(r) for r in rows if r["recipient"] == MESSAGE_ROW), None)
        return head, [self._job(r) for r in rows if r["recipient"] != MESSAGE_ROW]

    def jobs(self, message_id: str) -> list[Job]:
        return [self._job(r) for r in self._rows_of(message_id) if r["recipient"] != MESSAGE_ROW]

    def by_identificativo(self, identificativo: str) -> str | None:
        return next(
            (r["message_id"] for r in self.rows.values() if r.get("identificativo") == identificativo), None
        )

    def campaign_jobs(self, campaign_id: str) -> Iterable[JobRecord]:
        rows = [
            r
            for r in self.rows.values()
            if r.get("campaign_id") == campaign_id and isinstance(r.get("job_key"), str)
        ]
        for row in sorted(rows, key=lambda r: _utf8(r["job_key"])):
            yield JobRecord.from_item(copy.deepcopy(row))

    def campaign_job_page(
        self, campaign_id: str, *, after: Mapping[str, str] | None = None, limit: int = 100
    ) -> tuple[list[JobRecord], bool]:
        """As the store's Query of ByCampaign: `limit` jobs after the job at `after`."""
        self.job_pages_read = getattr(self, "job_pages_read", 0) + 1
        rows = sorted(
            (r for r in self.rows.values()
             if r.get("campaign_id") == campaign_id and isinstance(r.get("job_key"), str)),
            key=lambda r: (_utf8(r["job_key"]), _utf8(r["message_id"]), _utf8(r["recipient"])),
        )  # fmt: skip
        if after:
            mark = (_utf8(after["job_key"]), _utf8(after["message_id"]), _utf8(after["recipient"]))
            rows = [r for r in rows
                    if (_utf8(r["job_key"]), _utf8(r["message_id"]), _utf8(r["recipient"])) > mark]  # fmt: skip
        return [JobRecord.from_item(copy.deepcopy(r)) for r in rows[:limit]], len(rows) >= limit

    def view(self, message_id: str) -> dict | None:
        rows = [copy.deepcopy(r) for r in self._rows_of(message_id)]
        head = next((r for r in rows if r["recipient"] == MESSAGE_ROW), None)
        if head is None:
            return None
        return {**head, "jobs": [r for r in rows if r["recipient"] != MESSAGE_ROW]}

    # -- creating
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
        if (message_id, MESSAGE_ROW) in self.rows:
            return False
        # the shapes: pecflow/domain/records.py
        head, rows = registered_items(
            message_id, mailbox, recipients, subject, state, campaign_id, extra, now=clock.iso()
        )
        self.rows[(message_id, MESSAGE_ROW)] = _kept(head)
        for row in rows:  # a batch write: rows are put whatever is there
            self.rows[(message_id, row["recipient"])] = _kept(row, keep=KEPT_EMPTY)
        return True

    def add_jobs(self, jobs: list[dict], *, created: list[str] | None = None) -> int:
        """Each job's head and row created where absent, never rewritten. Returns the rows created
        (their Message-IDs added to `created` when given)."""
        now = clock.iso()
        written = 0
        for job in jobs:
            head, row = job_items(NewJob.from_dict(job), now)  # the adapter's shape
            head, row = _kept(head), _kept(row, keep=KEPT_EMPTY)
            if (row["message_id"], row["recipient"]) not in self.rows:
                self.rows[(row["message_id"], row["recipient"])] = row
                written += 1
                if created is not None:
                    created.append(row["message_id"])
            self.rows.setdefault((head["message_id"], MESSAGE_ROW), head)
        return written

    # -- writing
    def _upsert(self, message_id: str, recipient: str) -> dict:
        return self.rows.setdefault(
            (message_id, recipient), {"message_id": message_id, "recipient": recipient}
        )

    def set_identificativo(self, message_id: str, identificativo: str) -> None:
        self.write_requests.append("identificativo")
        self._upsert(message_id, MESSAGE_ROW).setdefault("identificativo", identificativo)

    def reserve_slot(self, message_id: str, recipient: str, at: float) -> bool:
        row = self.rows.get((message_id, recipient.lower()))
        if row is None or row.get("state") != str(State.PENDING) or row.get("slot_at", 0) != 0:
            return False
        row["slot_at"] = _plain(float(at))
        return True

    def set_job_fields(self, message_id: str, recipient: str, fields: dict) -> None:
        fields = _kept(fields)
        if fields:
            self._upsert(message_id, recipient.lower()).update(fields)

    def count_in_campaign(self, campaign_id: str, name: str, delta: int) -> None:
        if self.campaigns is not None:
            self.campaigns._add_figure(campaign_id, name, delta)

    def _record_receipts(self, key: tuple[str, str], infos: dict[str, dict]) -> None:
        self.write_requests.append("receipt")
        row = self.rows.get(key)
        if row is None or not isinstance(row.get("receipts"), dict):
            raise _no_path()  # SET receipts.x where there is no receipts map
        for receipt_id, info in infos.items():
            row["receipts"].setdefault(receipt_id, copy.deepcopy(info))

    def try_move(self, message_id: str, recipient: Job, move: Move, **kwargs) -> bool:
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
        carried: dict[str, dict] | None = None,
        also_set: dict | None = None,
        only_if: dict | None = None,
        also_remove: tuple[str, ...] = (),
        _applied: list | None = None,
    ) -> State:
        """As the adapter: the move is tried only when it applies to the state the caller read
        (`recipient.state`); its write is conditional on exactly that state and certified flag
        (and `only_if`), and the counters move from them; when the job moved meanwhile to a state
        the move applies from, it is made from there; a write refused for contention (`interfere`)
        is tried again, then raised; the receipt (and the `carried` ones) recorded whatever
        happens, by the same write."""
        key = (message_id, recipient.address)  # as the adapter: the address as the Job has it
        now = clock.iso()
        receipts = receipts_written(receipt_id, receipt, carried)
        infos = {rid: _kept(receipt_entry(r, recipient.address, now)) for rid, r in receipts.items()}
        state = recipient.state
        if move is not None and move.applies_to(recipient.state):
            job = recipient
            write = {
                "now": now,
                "certified": certified,
                "infos": infos,
                "receipt": receipt,
                "also_set": also_set,
                "only_if": only_if,
                "also_remove": also_remove,
            }
            for _ in range(MOVE_ATTEMPTS):
                if self._write_move(key, job, move, **write):
                    if _applied is not None:
                        _applied.append(True)
                    return move.to
                row = self.rows.get(key)  # read again: may the move still be made, from where it is?
                if row is None or "state" not in row:
                    break
                job = self._job(row)
                state = job.state
                if not move.applies_to(job.state) or not _holds(only_if, row):
                    break
            else:  # (the job cannot move behind the fake's back: as the adapter, for completeness)
                raise ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "UpdateItem")
        if _applied is not None:
            _applied.append(False)
        if infos:
            self._record_receipts(key, infos)
        return state

    def _write_move(
        self,
        key: tuple[str, str],
        job: Job,
        move: Move,
        *,
        now: str,
        certified: bool | None,
        infos: dict[str, dict],
        receipt: dict | None,
        also_set: dict | None,
        only_if: dict | None,
        also_remove: tuple[str, ...],
    ) -> bool:
        """One conditional write moving `job` (as read) by `move`: a transaction with the counter
        deltas from its state when there are some (and, where the campaign keeps them, the row
        counters weighted by `job.rows`, conditional on the job covering that many rows), tried
        again while refused for contention, as the adapter's `_try_write`. False: its condition
        did not hold. A campaign without row counters refuses the transaction: as the adapter,
        it is noted in `unrowed` and the move written again without them."""
        new_certified = job.certified if certified is None else certified
        deltas = (
            counter_deltas(job.state, move.to, certified=new_certified, old_certified=job.certified)
            if job.campaign_id and self.campaigns is not None
            else {}
        )
        for attempt in range(CONFLICT_ATTEMPTS):
            self.write_requests.append("transaction" if deltas else "update")
            if self._writes is not None:
                self._writes.append("transaction" if deltas else "update")
            if not self._interference:
                break
            refused = contention_error(self._interference.pop(0), transaction=bool(deltas))
            if write_refusal(refused) != "contention" or attempt == CONFLICT_ATTEMPTS - 1:
                raise refused
        rows = job.rows if deltas and job.campaign_id not in self.unrowed else None
        row = self.rows.get(key)
        holds = (
            row is not None
            and row.get("state") == str(job.state)
            and row.get("certified", True) == job.certified
            and _holds(only_if, row)
            and (rows is None or rows_covered(row.get("rows")) == rows)
        )
        if rows is not None and not self.campaigns._keeps_rows(job.campaign_id):
            self.unrowed.add(job.campaign_id)  # the counters' condition failed too
            if holds:  # the job held: written again without the row counters
                return self._write_move(
                    key, job, move, now=now, certified=certified, infos=infos, receipt=receipt,
                    also_set=also_set, only_if=only_if, also_remove=also_remove,
                )  # fmt: skip
            return False
        if not holds:
            return False
        if infos and not isinstance(row.get("receipts"), dict):
            raise _no_path()
        if deltas:
            self.campaigns._transact_counters(job.campaign_id, deltas, rows)  # raises when cancelled
        row["state"] = str(move.to)
        row["updated_at"] = now
        for stamp in move_stamps(move):
            row.setdefault(stamp, now)
        row["certified"] = new_certified
        row["last_reason"] = move.reason
        for receipt_id, info in infos.items():
            row["receipts"].setdefault(receipt_id, copy.deepcopy(info))
        extra = dict(also_set or {})
        if receipt and move.to in (State.DELIVERY_FAILED, State.NOT_ACCEPTED):
            extra["error"] = (receipt.get("error_detail") or receipt.get("error") or move.reason)[:1000]
        row.update(_kept(extra))
        for name in (*also_remove, *left_behind(move.to, kept={*extra, *also_remove})):
            row.pop(name, None)
        return True


# --- the S3 archive ---------------------------------------------------------------------------------------
@dataclass
class ArchivedObject:
    body: bytes
    checksum: str  # the SHA-256 S3 stored with the object (hex)
    version_id: str


class FakeArchive:
    """Archive: the raw bytes keyed by their sha256, never overwritten, with the checksum S3 keeps.
    `fail_puts()` makes the next puts (or every one, until `heal()`) raise as S3 would."""

    def __init__(self, prefix: str = "messages/") -> None:
        self.prefix = prefix
        self.objects: dict[str, ArchivedObject] = {}
        self.created: list[str] = []  # keys, once per object written (for tests)
        self.downloads: dict[str, tuple[str, bytes]] = {}  # files taken out for a person
        self._failures: list[BaseException] = []
        self._down: BaseException | None = None
        self._versions = 0

    def key_for(self, sha: str) -> str:
        return f"{self.prefix}{sha[:2]}/{sha}.eml"

    def fail_puts(self, error: BaseException | None = None, *, times: int | None = None) -> None:
        """The next `times` puts (None: every put until `heal()`) raise `error` (default: S3 unavailable)."""
        error = error or ClientError(
            {"Error": {"Code": "ServiceUnavailable", "Message": "Please reduce your request rate"}},
            "PutObject",
        )
        if times is None:
            self._down = error
        else:
            self._failures += [error] * times

    def heal(self) -> None:
        self._down, self._failures = None, []

    def _version(self) -> str:
        self._versions += 1
        return f"v{self._versions}"

    def store(self, raw: bytes, sha: str | None = None) -> Archived:
        if self._down is not None:
            raise self._down
        if self._failures:
            raise self._failures.pop(0)
        sha = sha or sha256_hex(raw)
        key = self.key_for(sha)
        if key in self.objects:  # If-None-Match refused the put: the same bytes?
            check = self.verify(key, sha, deep=False)
            if not check.ok:
                raise ArchiveError(f"{key} exists but does not match: {check.reason}")
            return Archived(key, False)
        if sha256_hex(raw) != sha:  # S3 checks the body against ChecksumSHA256 (moto does not)
            raise ClientError(
                {"Error": {"Code": "BadDigest", "Message": "The SHA256 you specified did not match"}},
                "PutObject",
            )
        version = self._version()
        self.objects[key] = ArchivedObject(bytes(raw), sha, version)
        self.created.append(key)
        return Archived(key, True, version)

    def store_again(self, raw: bytes, sha: str) -> Archived:
        if self._down is not None:
            raise self._down
        if sha256_hex(raw) != sha:
            raise ArchiveError(f"the bytes hash to {sha256_hex(raw)}, not {sha}: not archived again")
        key, version = self.key_for(sha), self._version()
        self.objects[key] = ArchivedObject(bytes(raw), sha, version)
        self.created.append(key)
        return Archived(key, True, version)

    def verify(self, key: str, sha: str, *, deep: bool = True) -> Verification:
        obj = self.objects.get(key)
        if obj is None:
            return Verification(False, f"object {key} is missing")
        if obj.checksum != sha:
            return Verification(False, f"object {key} checksum {obj.checksum} differs from {sha}")
        if deep:
            actual = sha256_hex(obj.body)
            if actual != obj.checksum:
                return Verification(False, f"object {key} does not match its stored checksum: {actual}")
            if actual != sha:
                return Verification(False, f"object {key} content hashes to {actual}, not {sha}")
        return Verification(True, "verified")

    def get(self, key: str) -> bytes:
        obj = self.objects.get(key)
        if obj is None:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "no such key"}}, "GetObject")
        return obj.body

    # what a person downloads (pecflow.services.inbox.Originals; Downloads on S3)
    def download_url(self, key: str, filename: str) -> str:
        return f"https://archive.test/{key}?as={filename}"

    def file_url(self, key: str, data: bytes, filename: str) -> str:
        self.downloads[key] = (filename, bytes(data))
        return f"https://downloads.test/{key}"

    # what can happen to an archived object behind our back (for tests)
    def delete(self, key: str) -> None:
        """A delete marker: the object is gone."""
        self.objects.pop(key)

    def overwrite(self, key: str, body: bytes) -> None:
        """A new version with other bytes (and their own checksum)."""
        self.objects[key] = ArchivedObject(body, sha256_hex(body), self._version())

    def corrupt(self, key: str, body: bytes) -> None:
        """Other bytes under the checksum stored for the original."""
        self.objects[key].body = body


# --- IMAP -------------------------------------------------------------------------------------------------
@dataclass
class FakeMessage:
    uid: int
    raw: bytes
    internaldate: datetime  # aware
    flags: tuple[str, ...] = ()


@dataclass
class FakeFolder:
    uidvalidity: int
    uidnext: int = 1
    modseq: int = 1
    messages: dict[int, FakeMessage] = field(default_factory=dict)

    def add(self, raw: bytes, when: datetime, flags: tuple[str, ...] = ()) -> int:
        uid = self.uidnext
        self.messages[uid] = FakeMessage(uid, bytes(raw), when, flags)
        self.uidnext += 1
        self.modseq += 1
        return uid


class FakeAccount:
    """One mailbox on the provider: folders of (uid, raw bytes) under their UIDVALIDITY."""

    def __init__(self, server: FakeImapServer, address: str, password: str, quota_kb: int | None):
        self.server, self.address, self.password, self.quota_kb = server, address, password, quota_kb
        self.folders: dict[str, FakeFolder] = {"INBOX": FakeFolder(server.next_uidvalidity())}

    def folder(self, name: str = "INBOX") -> FakeFolder:
        return self.folders[name]

    def append(self, raw: bytes, *, folder: str = "INBOX", when: datetime | None = None) -> int:
        if folder not in self.folders:
            self.folders[folder] = FakeFolder(self.server.next_uidvalidity())
        when = when or clock.now()
        return self.folders[folder].add(raw, when if when.tzinfo else when.astimezone())

    def rebuild(self, folder: str = "INBOX") -> None:
        """The provider rebuilds a folder: empty, under a new UIDVALIDITY."""
        self.folders[folder] = FakeFolder(self.server.next_uidvalidity())

    def uids(self, folder: str = "INBOX") -> list[int]:
        return sorted(self.folders[folder].messages) if folder in self.folders else []

    def raws(self, folder: str = "INBOX") -> list[bytes]:
        return (
            [m.raw for _, m in sorted(self.folders[folder].messages.items())]
            if folder in self.folders
            else []
        )

    @property
    def used_kb(self) -> int:
        return sum(len(m.raw) for f in self.folders.values() for m in f.messages.values()) // 1024


class FakeImapServer:
    """A provider's IMAP server. `open(config, password)` is ImapSession.open: it logs in (one
    command) or raises MailboxUnavailable as the adapter does."""

    def __init__(self, *, capabilities: Iterable[str] = ("QUOTA", "MOVE", "UIDPLUS", "CONDSTORE")):
        self.capabilities = frozenset(c.upper() for c in capabilities)
        self.accounts: dict[str, FakeAccount] = {}
        self.unreachable = False
        self.drop_after: int | None = None  # sessions opened from now on break at that command
        self.sessions: list[FakeImapSession] = []
        self._uidvalidity = 1_000

    def next_uidvalidity(self) -> int:
        self._uidvalidity += 1
        return self._uidvalidity

    def add_account(
        self, address: str, password: str = "secret", *, quota_kb: int | None = None
    ) -> FakeAccount:
        self.accounts[address.lower()] = FakeAccount(self, address.lower(), password, quota_kb)
        return self.accounts[address.lower()]

    def open(self, config: MailboxConfig, password: str, *, timeout: float = 30.0) -> FakeImapSession:
        if self.unreachable:
            raise MailboxUnavailable(
                "unreachable", f"cannot reach {config.imap_host}:{config.imap_port}: connection refused"
            )
        session = FakeImapSession(self)
        session._command()  # LOGIN
        account = self.accounts.get(config.login.lower())
        if account is None or account.password != password:
            session.close()
            raise MailboxUnavailable(
                "auth", f"login refused for {config.login}: [AUTHENTICATIONFAILED] Authentication failed."
            )
        session.account = account
        if self.drop_after is not None:
            session.break_after(self.drop_after)
        self.sessions.append(session)
        return session


class FakeImapSession:
    """ImapSession on a FakeImapServer. `commands` counts IMAP commands as the real session does
    (every tagged command, LOGIN and LOGOUT included); `break_after(n)` makes the connection
    drop (ConnectionResetError, as a socket would) at the n-th command from now."""

    connection_errors = CONNECTION_ERRORS

    def __init__(self, server: FakeImapServer):
        self.server = server
        self.account: FakeAccount | None = None
        self.commands = 0
        self.fetched: list[list[int]] = []  # each FETCH of bodies, its UIDs (for tests)
        self.closed = False
        self._selected: str | None = None
        self._break_at: int | None = None

    def break_after(self, n: int) -> None:
        self._break_at = self.commands + n

    def _command(self) -> None:
        if self.closed:
            raise IMAPClientError("the connection is closed")
        self.commands += 1
        if self._break_at is not None and self.commands >= self._break_at:
            self.closed = True
            raise ConnectionResetError(104, "Connection reset by peer")

    def _folder(self, name: str) -> FakeFolder:
        folder = self.account.folders.get(name)
        if folder is None:
            raise IMAPClientError(f"select/status failed: Mailbox doesn't exist: {name}")
        return folder

    def _status_of(self, folder: FakeFolder) -> FolderStatus:
        condstore = "CONDSTORE" in self.server.capabilities
        return FolderStatus(
            folder.uidvalidity, folder.uidnext, len(folder.messages), folder.modseq if condstore else None
        )

    def status(self, folder: str) -> FolderStatus:
        self._command()  # STATUS (the capabilities came with the login)
        return self._status_of(self._folder(folder))

    def select(self, folder: str) -> FolderStatus:
        self._command()  # EXAMINE
        self._selected = folder
        return self._status_of(self._folder(folder))

    def _current(self) -> FakeFolder:
        if self._selected is None:
            raise IMAPClientError("command not allowed: no folder selected")
        return self._folder(self._selected)

    def uids_from(self, first_uid: int) -> list[int]:
        self._command()  # UID SEARCH
        return sorted(uid for uid in self._current().messages if uid >= first_uid)

    def uids_before(self, when: datetime) -> list[int]:
        self._command()  # SEARCH BEFORE <date>
        day = when.date()
        return sorted(uid for uid, m in self._current().messages.items() if m.internaldate.date() < day)

    def sizes(self, uids: list[int]) -> list[tuple[int, int]]:
        if not uids:
            return []
        self._command()  # UID FETCH RFC822.SIZE
        messages = self._current().messages
        return [(uid, len(messages[uid].raw)) for uid in uids if uid in messages]

    def fetch(self, uids: list[int]) -> list[Fetched]:
        if not uids:
            return []
        self._command()  # UID FETCH BODY.PEEK[] INTERNALDATE FLAGS
        self.fetched.append(list(uids))
        messages = self._current().messages
        return [
            Fetched(uid, messages[uid].raw, messages[uid].internaldate.astimezone(UTC), messages[uid].flags)
            for uid in uids
            if uid in messages  # expunged meanwhile
        ]

    def internaldates(self, uids: list[int]) -> dict[int, tuple[datetime | None, int]]:
        if not uids:
            return {}
        self._command()  # UID FETCH INTERNALDATE RFC822.SIZE
        messages = self._current().messages
        # imapclient hands INTERNALDATE back naive, in local time
        return {
            uid: (messages[uid].internaldate.astimezone().replace(tzinfo=None), len(messages[uid].raw))
            for uid in uids
            if uid in messages
        }

    def usage(self, folder: str = "INBOX") -> Usage | None:
        if "QUOTA" not in self.server.capabilities:
            return None
        self._command()  # GETQUOTAROOT
        if self.account.quota_kb is None:
            return None
        return Usage(self.account.used_kb, self.account.quota_kb)

    def move(self, folder: str, uids: list[int], target: str) -> None:
        if not uids:
            return
        self._command()  # LIST (folder_exists)
        if target not in self.account.folders:
            self._command()  # CREATE
            self.account.folders[target] = FakeFolder(self.server.next_uidvalidity())
        self._command()  # SELECT
        self._selected = folder
        source = self._folder(folder)
        if "MOVE" in self.server.capabilities:
            self._command()  # UID MOVE
        else:
            self._command()  # UID COPY
            self._command()  # UID STORE +FLAGS \Deleted
            self._command()  # UID EXPUNGE / EXPUNGE
        for uid in sorted(uids):
            message = source.messages.pop(uid, None)
            if message is not None:
                self.account.folders[target].add(message.raw, message.internaldate, message.flags)
        source.modseq += 1

    def expunge(self, folder: str, uids: list[int]) -> None:
        if not uids:
            return
        self._command()  # SELECT
        self._selected = folder
        source = self._folder(folder)
        self._command()  # UID STORE +FLAGS \Deleted
        self._command()  # UID EXPUNGE (or EXPUNGE)
        for uid in uids:
            source.messages.pop(uid, None)
        source.modseq += 1

    def close(self) -> None:
        if not self.closed:
            self.commands += 1  # LOGOUT
            self.closed = True


# --- SMTP -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Received:
    """A message the provider received (DATA completed, whatever became of the answer)."""

    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True)
class SmtpBehaviour:
    """How the access point handles one submission."""

    kind: str = (
        "accept"  # accept | refuse_mail | refuse_rcpt | refuse_data | lose_answer | drop | unavailable
    )
    code: int = 250
    text: str = "2.0.0 Ok: queued"
    unavailable_kind: str = "unreachable"


class _SmtpConnection:
    """The part of smtplib.SMTP that SmtpSubmitter uses, answering as `behaviour` says."""

    def __init__(self, server: FakeSmtp, behaviour: SmtpBehaviour):
        self.server, self.behaviour = server, behaviour
        self.mail_from: str | None = None
        self.rcpts: list[str] = []
        self.quit_called = False

    def has_extn(self, name: str) -> bool:
        return name.lower() == "size"

    def mail(self, sender: str, options=()):
        if self.behaviour.kind == "drop":
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        if self.behaviour.kind == "refuse_mail":
            return self.behaviour.code, self.behaviour.text.encode()
        self.mail_from = sender
        return 250, b"2.1.0 Ok"

    def rcpt(self, recipient: str, options=()):
        if self.behaviour.kind == "refuse_rcpt":
            return self.behaviour.code, self.behaviour.text.encode()
        self.rcpts.append(recipient)
        return 250, b"2.1.5 Ok"

    def rset(self):
        self.mail_from, self.rcpts = None, []
        return 250, b"2.0.0 Ok"

    def data(self, raw: bytes):
        kind = self.behaviour.kind
        if kind == "refuse_data_command":  # smtplib raises when DATA itself is not answered 354
            raise smtplib.SMTPDataError(self.behaviour.code, self.behaviour.text.encode())
        if kind == "refuse_data":  # the provider reads the message, then refuses it
            return self.behaviour.code, self.behaviour.text.encode()
        self.server.received.append(Received(self.mail_from or "", tuple(self.rcpts), bytes(raw)))
        if kind == "lose_answer":  # the message went; its answer never came back
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return self.behaviour.code, self.behaviour.text.encode()

    def quit(self):
        self.quit_called = True
        return 221, b"2.0.0 Bye"

    def close(self):
        pass


class FakeSmtp:
    """The provider's SMTP access point, as the sender's `submit(config, raw, recipients)` sees it.
    It answers each submission as the next queued behaviour says (`refuse_rcpt()`, `refuse_data()`,
    `lose_answer()`, `drop()`, `unavailable()`), then as `default`. `received` is what reached the
    provider: the messages that were sent, whatever the sender learned of it."""

    def __init__(self, default: SmtpBehaviour | None = None):
        self.default = default or SmtpBehaviour()
        self.queue: list[SmtpBehaviour] = []
        self.received: list[Received] = []
        self.submissions: list[tuple[str, tuple[str, ...], Submission | str]] = []  # every attempt

    def then(self, behaviour: SmtpBehaviour) -> FakeSmtp:
        self.queue.append(behaviour)
        return self

    def refuse_mail(self, code: int = 553, text: str = "5.7.1 Sender not allowed") -> FakeSmtp:
        return self.then(SmtpBehaviour("refuse_mail", code, text))

    def refuse_rcpt(self, code: int = 550, text: str = "5.1.1 Recipient address rejected") -> FakeSmtp:
        return self.then(SmtpBehaviour("refuse_rcpt", code, text))

    def refuse_data(
        self, code: int = 554, text: str = "5.6.0 Message refused", *, at_command: bool = False
    ) -> FakeSmtp:
        """Refused at DATA: after reading the message, or (`at_command`) at the DATA command itself."""
        return self.then(SmtpBehaviour("refuse_data_command" if at_command else "refuse_data", code, text))

    def lose_answer(self) -> FakeSmtp:
        return self.then(SmtpBehaviour("lose_answer"))

    def drop(self) -> FakeSmtp:
        """The connection breaks before DATA: nothing is sent."""
        return self.then(SmtpBehaviour("drop"))

    def unavailable(self, kind: str = "auth") -> FakeSmtp:
        """The mailbox cannot be opened (login refused, unreachable, TLS): MailboxUnavailable."""
        return self.then(SmtpBehaviour("unavailable", unavailable_kind=kind))

    def submit(self, config: MailboxConfig, raw: bytes, recipients: list[str]) -> Submission:
        behaviour = self.queue.pop(0) if self.queue else self.default
        if behaviour.kind == "unavailable":
            self.submissions.append(
                (config.address, tuple(recipients), f"unavailable: {behaviour.unavailable_kind}")
            )
            raise MailboxUnavailable(
                behaviour.unavailable_kind,
                f"SMTP to {config.smtp_host or config.imap_host}: {behaviour.kind}",
            )
        connection = _SmtpConnection(self, behaviour)
        try:
            result = SmtpSubmitter(connection).submit(raw, config.address, recipients)
        finally:
            connection.quit()
        self.submissions.append((config.address, tuple(recipients), result))
        return result

    def received_by(self, recipient: str) -> int:
        return sum(1 for r in self.received if recipient in r.recipients)


# --- the rate limiter ----------------------------------------------------------------------------------
class FakeRateLimiter(RateLimiter):
    """RateLimiter with its state in memory: the real limiter's decisions (rolling and fixed windows,
    horizon reservations, pace, release), its versioned conditional writes kept in a dict.
    `script(decision, ...)` queues decisions `acquire` returns first, whatever the slots say.
    `acquired` and `released` list what the callers took and gave back."""

    def __init__(
        self,
        policy_for: Callable[[str], QuotaPolicy] | None = None,
        *,
        policy: QuotaPolicy | str = "aruba",
        max_attempts: int = 8,
    ) -> None:
        fixed = policy_from_spec(policy) if isinstance(policy, str) else policy
        self.table_name = "fake-quota"
        self.client = None
        self.policy_for = policy_for or (lambda mailbox: fixed)
        self.max_attempts = max_attempts
        self.sleep = lambda seconds: None
        self.stats = LimiterStats()
        self.items: dict[str, dict] = {}
        self.scripted: list[Decision] = []
        self.acquired: list[tuple[str, float]] = []
        self.released: list[tuple[str, float]] = []

    def script(self, *decisions: Decision) -> None:
        self.scripted.extend(decisions)

    def acquire(self, mailbox: str, now: float | None = None, *, horizon: float = 0.0) -> Decision:
        decision = self.scripted.pop(0) if self.scripted else super().acquire(mailbox, now, horizon=horizon)
        if decision.allowed:
            self.acquired.append((mailbox.lower(), decision.at))
        return decision

    def release(self, mailbox: str, at: float) -> bool:
        self.released.append((mailbox.lower(), float(at)))
        return super().release(mailbox, at)

    def held(self, mailbox: str) -> list[float]:
        """Slots taken and not given back (by the callers' account)."""
        held = [at for m, at in self.acquired if m == mailbox.lower()]
        for m, at in self.released:
            if m == mailbox.lower() and at in held:
                held.remove(at)
        return held

    def _read(self, key: str) -> _LimiterState:
        return _LimiterState.from_item(copy.deepcopy(self.items.get(key)))

    def _write(self, key: str, version: int, item: dict) -> bool:
        current = self.items.get(key)
        if (current is None) != (version == 0) or (current is not None and current["version"] != version):
            return False
        self.items[key] = copy.deepcopy(item)
        return True


# --- queues, secrets, campaign files ------------------------------------------------------------------
class FakeQueue:
    """Queue (SQS): `sent` is every entry accepted, `messages` what is on the queue (a FIFO entry
    whose deduplication id was seen in the last five minutes is accepted and dropped, as SQS does).
    `fail_ids` makes send_batch report those entry ids under "Failed"."""

    DEDUPLICATION_SECONDS = 300

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.messages: list[dict] = []
        self.visibility: list[tuple[str, int]] = []
        self.fail_ids: set[str] = set()
        self._seen: dict[str, float] = {}

    def _enqueue(self, entry: dict) -> None:
        self.sent.append(entry)
        dedupe = entry.get("MessageDeduplicationId")
        now = clock.timestamp()
        if dedupe is not None:
            if now - self._seen.get(dedupe, float("-inf")) < self.DEDUPLICATION_SECONDS:
                return
            self._seen[dedupe] = now
        self.messages.append(entry)

    def send_batch(self, entries: list[dict]) -> dict:
        if not 1 <= len(entries) <= 10:
            code = "EmptyBatchRequest" if not entries else "TooManyEntriesInBatchRequest"
            raise ClientError({"Error": {"Code": code, "Message": code}}, "SendMessageBatch")
        if len({e["Id"] for e in entries}) != len(entries):
            raise ClientError(
                {"Error": {"Code": "BatchEntryIdsNotDistinct", "Message": "ids repeat"}}, "SendMessageBatch"
            )
        answer: dict = {"Successful": [], "Failed": []}
        for entry in entries:
            if entry["Id"] in self.fail_ids:
                answer["Failed"].append({"Id": entry["Id"], "Code": "InternalError", "SenderFault": False})
                continue
            self._enqueue({k: v for k, v in entry.items() if k != "Id"})
            answer["Successful"].append({"Id": entry["Id"]})
        if not answer["Failed"]:
            del answer["Failed"]
        return answer

    def send(self, entry: dict) -> None:
        self._enqueue({k: v for k, v in entry.items() if k != "Id"})

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        if not 0 <= seconds <= 43_200:
            raise ClientError(
                {"Error": {"Code": "InvalidParameterValue", "Message": f"VisibilityTimeout {seconds}"}},
                "ChangeMessageVisibility",
            )
        self.visibility.append((receipt_handle, seconds))

    def bodies(self) -> list[dict]:
        """The bodies of the messages on the queue, in order (and takes them off it)."""
        taken, self.messages = self.messages, []
        return [json.loads(m["MessageBody"]) for m in taken]


class FakeSecrets:
    """SecretStore (what the CLI writes) and the functions' `password_of(config, refresh=False)`."""

    def __init__(self, passwords: dict[str, str] | None = None) -> None:
        self.secrets: dict[str, tuple[str, str]] = {}
        self.passwords = {k.lower(): v for k, v in (passwords or {}).items()}
        self.reads: list[tuple[str, bool]] = []

    def put(self, name: str, value: str, description: str) -> None:
        self.secrets[name] = (value, description)

    def password_of(self, config: MailboxConfig, refresh: bool = False) -> str:
        self.reads.append((config.address.lower(), refresh))
        return self.passwords[config.address.lower()]


@dataclass
class _FileVersion:
    version_id: str
    etag: str
    body: bytes


class FakeCampaignFiles:
    """CampaignFiles: one campaign's files in a versioned bucket. A read given a pin returns the
    pinned bytes, or raises PackageChanged when that version is gone; `replace` uploads a new one."""

    def __init__(self, campaign_id: str, files: dict[str, bytes] | None = None) -> None:
        self.campaign_id = campaign_id
        self.versions: dict[str, list[_FileVersion]] = {}
        self._count = 0
        for name, body in (files or {}).items():
            self.replace(name, body)

    def replace(self, name: str, body: bytes) -> str:
        self._count += 1
        version = _FileVersion(f"v{self._count}", f'"{hashlib.md5(body).hexdigest()}"', bytes(body))
        self.versions.setdefault(name, []).append(version)
        return version.version_id

    def delete(self, name: str, version_id: str | None = None) -> None:
        """The file gone (or only one of its versions)."""
        if version_id is None:
            self.versions.pop(name, None)
        else:
            self.versions[name] = [v for v in self.versions.get(name, []) if v.version_id != version_id]

    def _version(self, name: str, pin: dict | None) -> _FileVersion:
        versions = self.versions.get(name) or []
        if pin and pin.get("version_id"):
            found = next((v for v in versions if v.version_id == pin["version_id"]), None)
        elif pin and pin.get("etag"):
            found = versions[-1] if versions and versions[-1].etag == pin["etag"] else None
        else:
            found = versions[-1] if versions else None
        if found is not None:
            return found
        if pin:
            raise PackageChanged(
                f"{name} is no longer the file validated for this campaign: it was replaced or deleted"
            )
        raise FileNotFoundError(
            f"{name} is not among the campaign's files: was it deleted after the campaign was checked?"
        )

    def pin(self, name: str, version_id: str | None = None) -> dict | None:
        versions = self.versions.get(name) or []
        found = (
            next((v for v in versions if v.version_id == version_id), None)
            if version_id
            else (versions[-1] if versions else None)
        )
        return {"version_id": found.version_id, "etag": found.etag} if found else None

    def read(self, name: str, pin: dict | None = None) -> bytes:
        return self._version(name, pin).body

    def open_with_size(self, name: str, pin: dict | None = None):
        body = self._version(name, pin).body
        return io.BytesIO(body), len(body)

    def exists(self, name: str) -> bool:
        return bool(self.versions.get(name))

    def attachments(self) -> Iterable[tuple[str, int]]:
        for name in sorted(self.versions, key=_utf8):
            if name.startswith("attachments/") and self.versions[name]:
                yield name[len("attachments/") :], len(self.versions[name][-1].body)

    def put(self, name: str, body, content_type: str) -> None:
        self.replace(name, body.read())


# --- wiring helpers --------------------------------------------------------------------------------------
def config(address: str = "ufficio@pec.azienda.test", **kw) -> MailboxConfig:
    """A mailbox configuration for the fakes (the host is never reached)."""
    return MailboxConfig(address, "imap.fake.test", **kw)


class FakeAuditStore:
    """The audit table in memory, with the adapter's append condition (the head must still be
    the event's predecessor). `events` are the stored rows, for tests to tamper with."""

    def __init__(self):
        from pecflow.domain.audit import ChainHead

        self._head_type = ChainHead
        self.rows: dict[str, dict[int, object]] = {}
        self.heads: dict[str, object] = {}
        self.lock = threading.Lock()

    def head(self, mailbox: str):
        return self.heads.get(mailbox.lower()) or self._head_type(mailbox.lower())

    def append(self, event) -> bool:
        with self.lock:
            head = self.head(event.mailbox)
            if (head.seq, head.hash) != (event.seq - 1, event.prev_hash) or event.seq in self.rows.get(
                event.mailbox, {}
            ):
                return False
            self.rows.setdefault(event.mailbox, {})[event.seq] = event
            self.heads[event.mailbox] = self._head_type(event.mailbox, event.seq, event.hash)
            return True

    def events(self, mailbox: str, *, after: int = 0):
        rows = self.rows.get(mailbox.lower(), {})
        return [rows[seq] for seq in sorted(rows) if seq > after]

    def of_message(self, mailbox: str, message: str, limit: int = 200):
        return [e for e in self.events(mailbox) if e.message == message][:limit]


class FakeInboxStore:
    """The inbox table in memory: rows and the postings of their words, pages by the same plans
    (one partition, newest first, residual filters; a word search by `word_page` over postings
    queried and rows read as DynamoDB does), acts written with their audit event atomically and
    only at the expected version. Counts items read like DynamoDB's ScannedCount."""

    def __init__(self, audit: FakeAuditStore):
        self.audit = audit
        self.items: dict[tuple[str, str], dict] = {}
        self.lock = threading.Lock()
        self.adds: list[tuple[str, bool]] = []  # (sha256, new) of each add, for tests

    def add(self, mailbox: str, record: dict, *, campaign_id: str | None = None, new: bool = False) -> bool:
        from pecflow.domain.inbox import inbox_row

        self.adds.append((record["sha256"], new))
        row = _kept(inbox_row(mailbox, record, campaign_id=campaign_id))
        with self.lock:
            if (row["pk"], row["sk"]) in self.items:
                return False
            self.items[(row["pk"], row["sk"])] = row
            return True

    def index_words(self, mailbox: str, rows: list, *, new_rows: list = ()) -> None:
        from pecflow.domain.inbox import joined, open_sks, postings

        items = postings(mailbox, rows)
        for item in items:
            _check_size(item, "BatchWriteItem")
        with self.lock:
            for row in new_rows:  # unconditional puts: a row there already would be overwritten
                row = _kept(row)
                if (row["pk"], row["sk"]) in self.items:
                    raise AssertionError(
                        f"a new row would overwrite {row['pk']}: its message was recorded before"
                    )
                self.items[(row["pk"], row["sk"])] = row
                self.adds.append((row["sha256"], True))
            for item in items:
                for sk in open_sks(item):
                    opened = joined(self.items.get((item["pk"], sk)), item, sk)
                    if opened is not None:
                        self.items[(item["pk"], sk)] = opened
                        break
                else:
                    self.items[(item["pk"], item["sk"])] = _kept(item)

    def rows(self) -> list[dict]:
        from pecflow.domain.inbox import ROW_SORT

        return [copy.deepcopy(i) for (_, sk), i in sorted(self.items.items()) if sk == ROW_SORT]

    def word_index(self) -> dict[str, list]:
        """What the postings say, however batched: per word partition, its entries once each,
        newest first (two runs that index the same messages compare equal)."""
        from pecflow.domain.inbox import ROW_SORT, entries_of

        index: dict[str, set] = {}
        for (pk, sk), item in self.items.items():
            if sk != ROW_SORT:
                index.setdefault(pk, set()).update(entries_of(item))
        return {pk: sorted(found, reverse=True) for pk, found in sorted(index.items())}

    def row(self, mailbox: str, sha256: str):
        from pecflow.domain.inbox import ROW_SORT, row_key

        item = self.items.get((row_key(mailbox, sha256), ROW_SORT))
        return copy.deepcopy(item) if item else None

    def act(
        self,
        mailbox,
        sha256,
        *,
        expected_version,
        set_fields,
        remove=(),
        audit,
        require_deleted=False,
    ) -> str:
        from pecflow.domain.inbox import ROW_SORT, row_key

        with self.lock, self.audit.lock:
            item = self.items.get((row_key(mailbox, sha256), ROW_SORT))
            if (
                item is None
                or int(item.get("version", 0)) != expected_version
                or (require_deleted is not None and bool(item.get("deleted")) != require_deleted)
            ):
                return "row-changed"
            head = self.audit.head(audit.mailbox)
            if (head.seq, head.hash) != (audit.seq - 1, audit.prev_hash):
                return "audit-moved"
            self.audit.rows.setdefault(audit.mailbox, {})[audit.seq] = audit
            self.audit.heads[audit.mailbox] = type(head)(audit.mailbox, audit.seq, audit.hash)
            for name, value in set_fields.items():
                if value is None or value == "":
                    item.pop(name, None)
                else:
                    item[name] = _kept({"v": value})["v"]
            for name in remove:
                if set_fields.get(name) in (None, ""):
                    item.pop(name, None)
            item["version"] = expected_version + 1
            return "done"

    def page(self, plan, *, limit, start_key=None):
        from types import SimpleNamespace

        from pecflow.domain.inbox import matches, request_size

        if plan.token_index:
            return self._word_page(plan, limit, start_key)
        if plan.also:
            return self._merged_page(plan, limit, start_key)
        sort = "received_key"
        candidates = self._partition(plan, plan.key_value)
        if start_key:
            after = (_utf8(start_key[sort]), _utf8(start_key["pk"]))
            candidates = [i for i in candidates if (_utf8(i[sort]), _utf8(i["pk"])) < after]
        # as the adapter asks DynamoDB: requests of (room + 1) items evaluated, filters after
        rows: list[dict] = []
        read = requests = 0
        next_key = None
        position = 0
        ask = 0
        while True:
            room = limit - len(rows)
            ask = request_size(room, ask)
            batch = candidates[position : position + ask]
            position += len(batch)
            requests += 1
            read += len(batch)
            found = [i for i in batch if matches(i, plan)]
            rows.extend(copy.deepcopy(i) for i in found[:room])
            if len(found) > room:
                last = rows[-1]
                next_key = {
                    "pk": last["pk"],
                    "sk": last["sk"],
                    sort: last[sort],
                    plan.key_attribute: plan.key_value,
                }
                break
            if position >= len(candidates) and len(batch) < ask:
                break
        return SimpleNamespace(rows=rows, next_key=next_key, items_read=read, requests=requests)

    def _partition(self, plan, value, before=None):
        """The rows of one partition of the plan's index in its sort-key range, newest first."""
        sort = "received_key"
        found = [
            i
            for i in self.items.values()
            if i.get(plan.key_attribute) == value
            and (plan.sort_from is None or i[sort] >= plan.sort_from)
            and (plan.sort_to is None or i[sort] <= plan.sort_to)
            # as the adapter's key condition: `between` (a date range) includes `before` itself
            and (
                before is None
                or (_utf8(i[sort]) <= _utf8(before) if plan.sort_from else _utf8(i[sort]) < _utf8(before))
            )
        ]
        return sorted(found, key=lambda i: (_utf8(i[sort]), _utf8(i["pk"])), reverse=True)

    def _merged_page(self, plan, limit, start_key):
        """As the adapter: each partition queried (`Limit` items evaluated, filters after,
        resumed after the last key evaluated), merged by `merged_page`."""
        from types import SimpleNamespace

        from pecflow.domain.inbox import matches, merged_page

        cost = {"read": 0, "requests": 0}

        def query(partition, before, start, count):
            rows = self._partition(plan, partition, before)
            position = int(start["position"]) if start else 0
            batch = rows[position : position + count]
            cost["read"] += len(batch)
            cost["requests"] += 1
            more = position + len(batch) < len(rows)
            if len(batch) == count and not more:  # as moto: a key to go on from while the
                last = _utf8(batch[-1]["received_key"])  # partition holds older items, in range or not
                more = any(
                    i.get(plan.key_attribute) == partition and _utf8(i["received_key"]) < last
                    for i in self.items.values()
                )
            found = [copy.deepcopy(i) for i in batch if matches(i, plan)]
            return found, {"position": position + len(batch)} if more else None

        rows, next_key = merged_page(plan, limit, start_key, query)
        return SimpleNamespace(
            rows=rows, next_key=next_key, items_read=cost["read"], requests=cost["requests"]
        )

    def _word_page(self, plan, limit, start_key):
        """As the adapter: the word's postings by Query (sk range, newest first, `Limit` items,
        resumed after the last key), the rows by BatchGetItem (100 keys a request)."""
        from types import SimpleNamespace

        from pecflow.domain.inbox import ROW_SORT, word_page

        cost = {"read": 0, "requests": 0}
        postings = sorted(
            (i for (pk, _), i in self.items.items() if pk == plan.key_value),
            key=lambda i: _utf8(i["sk"]),
            reverse=True,
        )

        def query(sk_from, sk_to, count, start):
            found = [
                i
                for i in postings
                if (sk_from is None or i["sk"] >= sk_from)
                and (sk_to is None or i["sk"] <= sk_to)
                and (start is None or _utf8(i["sk"]) < _utf8(start["sk"]))
            ]
            cost["requests"] += 1
            cost["read"] += len(found[:count])
            last = {"pk": plan.key_value, "sk": found[count - 1]["sk"]} if len(found) > count else None
            return copy.deepcopy(found[:count]), last

        def fetch(entries):
            cost["read"] += len(entries)
            cost["requests"] += -(-len(entries) // 100)
            rows = (self.items.get((e.row_pk, ROW_SORT)) for e in entries)
            return [copy.deepcopy(r) for r in rows if r is not None]

        rows, next_key = word_page(plan, limit, start_key, query, fetch)
        return SimpleNamespace(
            rows=rows, next_key=next_key, items_read=cost["read"], requests=cost["requests"]
        )


class FakePeopleStore:
    """PeopleTable in memory: people and their roles per mailbox."""

    def __init__(self):
        self.people: dict[str, dict] = {}
        self.roles: dict[tuple[str, str], str] = {}

    def add(self, person, *, created_at: str) -> bool:
        if person.username in self.people:
            return False
        self.people[person.username] = {
            "email": person.email, "name": person.name, "enabled": person.enabled, "created_at": created_at,
        }  # fmt: skip
        return True

    def person(self, username: str):
        from pecflow.domain.access import Person, Role

        head = self.people.get(username)
        if head is None:
            return None
        roles = {m: Role(r) for (u, m), r in self.roles.items() if u == username}
        return Person(username, head["email"], head["name"], head["enabled"], roles)

    def set_enabled(self, username: str, enabled: bool) -> bool:
        if username not in self.people:
            return False
        self.people[username]["enabled"] = enabled
        return True

    def set_role(self, username: str, mailbox: str, role) -> None:
        if role is None:
            self.roles.pop((username, mailbox.lower()), None)
        else:
            self.roles[(username, mailbox.lower())] = role.value

    def on_mailbox(self, mailbox: str):
        from pecflow.domain.access import Role

        return sorted((u, Role(r)) for (u, m), r in self.roles.items() if m == mailbox.lower())

    def everyone(self):
        return [self.person(u) for u in sorted(self.people)]


class FakeDirectory:
    """The sign-in accounts (Cognito) in memory."""

    def __init__(self):
        self.accounts: dict[str, dict] = {}

    def create(self, username: str, email: str, name: str) -> None:
        self.accounts[username] = {"email": email, "name": name, "enabled": True}

    def set_enabled(self, username: str, enabled: bool) -> None:
        self.accounts[username]["enabled"] = enabled


class FakeUploads:
    """The campaign bucket as the API uses it: upload links, the manifest, exports."""

    def __init__(self):
        self.links: list[tuple[str, str]] = []
        self.manifests: dict[str, bytes] = {}
        self.exports: dict[str, bytes] = {}

    def upload_link(self, campaign_id: str, name: str, seconds: int = 900) -> str:
        self.links.append((campaign_id, name))
        return f"https://campaigns.example/{campaign_id}/{name}?signed"

    def put_manifest(self, campaign_id: str, raw: bytes) -> None:
        self.manifests[campaign_id] = raw

    def export_link(self, campaign_id: str, name: str, body, seconds: int = 900) -> str:
        self.exports[name] = body.read()
        return f"https://campaigns.example/{campaign_id}/export/{name}?signed"


class Ticking:
    """A `now` for the services that moves one second at each call (thread-safe): every audit
    event and act gets its own time, in order."""

    def __init__(self, start: datetime | None = None):
        self.at = start or datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            self.at += timedelta(seconds=1)
            return self.at


# --- alerts -----------------------------------------------------------------------------------------
class FakeAlertGroups:
    """AlertsTable in memory, as pecflow.adapters.alerts.AlertGroupsTable keeps it (atomic)."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.fail: Exception | None = None

    def add(self, key: str, count: int, fields: dict) -> int:
        if self.fail is not None:
            raise self.fail
        with self.lock:
            item = self.items.setdefault(key, {"group": key, **fields, "count": 0})
            item["count"] += count
            return int(item["count"])

    def claim(self, key: str, count: int) -> bool:
        return self._set_once(key, "published_count", count)

    def claim_summary(self, key: str, total: int) -> bool:
        return self._set_once(key, "summarized", total)

    def _set_once(self, key: str, name: str, value: int) -> bool:
        with self.lock:
            item = self.items.get(key)
            if item is None or name in item:
                return False
            item[name] = value
            return True

    def claim_run(self, key: str, expires: int) -> bool:
        with self.lock:
            if key in self.items:
                return False
            self.items[key] = {"group": key, "expires": expires}
            return True

    def closed(self, before: str) -> list[dict]:
        with self.lock:
            return [
                dict(i)
                for i in self.items.values()
                if "period_end" in i
                and i["period_end"] <= before
                and "published_count" in i
                and "summarized" not in i
                and i["count"] > i["published_count"]
            ]


class FakeAlertChannel:
    """The alarms topic: what was published (subject, text, attributes)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict]] = []
        self.fail: Exception | None = None

    def publish(self, subject: str, text: str, attributes: dict) -> None:
        if self.fail is not None:
            raise self.fail
        self.published.append((subject, text, dict(attributes)))


class FakeInvoiceStore:
    """InvoicesTable (pecflow.adapters.dynamodb.invoices.InvoiceStore): items per mailbox by key,
    an invoice written only if its key is free, moves conditional on the version."""

    def __init__(self):
        self.items: dict[tuple[str, str], dict] = {}
        self.writes = 0

    def add(self, mailbox: str, item: dict) -> bool:
        key = (mailbox.lower(), str(item["invoice"]))
        if key in self.items:
            return False
        self.items[key] = _kept({**item, "mailbox": key[0], "item": key[1]})
        self.writes += 1
        return True

    def get(self, mailbox: str, key: str) -> dict | None:
        found = self.items.get((mailbox.lower(), key))
        return _plain(found) if found is not None else None

    def move(self, mailbox: str, key: str, *, version: int, fields: dict, remove=()) -> bool:
        item = self.items.get((mailbox.lower(), key))
        if item is None or item.get("version") != version:
            return False
        values = _kept(dict(fields))
        for name in remove:
            if name not in values:
                item.pop(name, None)
        item.update(values)
        item["version"] = version + 1
        self.writes += 1
        return True

    def _prefixed(self, mailbox: str, prefix: str) -> list[dict]:
        return [
            _plain(item)
            for (box, key), item in sorted(self.items.items())
            if box == mailbox.lower() and key.startswith(prefix)
        ]

    def invoices(self, mailbox: str, direction: str | None = None):
        for prefix in [direction] if direction else ["active", "passive"]:
            yield from self._prefixed(mailbox, f"{prefix}#")

    def by_identificativo(self, mailbox: str, identificativo: str) -> str | None:
        found = self.items.get((mailbox.lower(), f"sdi#{identificativo}"))
        return found["target"] if found else None

    def link_identificativo(self, mailbox: str, identificativo: str, key: str) -> None:
        item = (mailbox.lower(), f"sdi#{identificativo}")
        self.items[item] = {"mailbox": item[0], "item": item[1], "target": key}

    def keep_unmatched(self, mailbox: str, entry: dict) -> None:
        key = (mailbox.lower(), str(entry["entry"]))
        self.items.setdefault(key, _kept({**entry, "mailbox": key[0], "item": key[1]}))

    def unmatched(self, mailbox: str) -> list[dict]:
        return self._prefixed(mailbox, "unmatched#")

    def drop_unmatched(self, mailbox: str, entry_key: str) -> None:
        self.items.pop((mailbox.lower(), entry_key), None)

    def settings(self, mailbox: str) -> dict:
        return _plain(self.items.get((mailbox.lower(), "settings"), {}))

    def set_settings(self, mailbox: str, values: dict) -> None:
        key = (mailbox.lower(), "settings")
        self.items[key] = _kept({**self.settings(mailbox), **values, "mailbox": key[0], "item": key[1]})


class FakeInvoiceFiles:
    """fatture/ in the archive bucket: keys to bytes."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes, content_type: str) -> None:
        if not key.startswith("fatture/"):
            raise ValueError(f"invoice files live under fatture/, not {key!r}")
        self.objects[key] = data

    def get(self, key: str) -> bytes:
        return self.objects[key]

"""MessagesTable: one record per message received, keyed by mailbox and SHA-256, stored as
`domain.records.stored_record` says (under 1 KB: what it can be told from left out) and read
back whole (`whole_record`); beside them, in partition SIGNATURES, one item per signature
content (the provider's signer and the verdict's sentence), shared by the records that name it;
and in each mailbox's partition "<address>#uids" its UID map (`domain.mailbox.uid_map_items`):
which archived message each UID still on the provider is, one item per fetched batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from pecflow.adapters.dynamodb._common import (
    _clean,
    _conditional_write,
    _plain,
    _resource,
    is_service_failure,
    pages,
    whole_items,
)
from pecflow.domain.mailbox import (
    uid_map_items,
    uid_map_key,
    uid_map_partition,
    uid_map_place,
    uid_map_removal,
    uid_map_without,
)
from pecflow.domain.records import DERIVED, MessageRecord, on_provider_records, stored_record, whole_record

# --- message records -----------------------------------------------------------------------------
RECORD_KEY = ("mailbox", "message")  # the table's key
SIGNATURES = "#signatures"  # the partition of the signature items (no mailbox is named so)


def record_key(sha256: str) -> str:
    return f"sha256:{sha256}"


def received_keys(
    table: Any,
    mailbox: str,
    start: str | None = None,
    end: str | None = None,
    *,
    newest_first: bool = False,
    limit: int | None = None,
    scanned: list[int] | None = None,
) -> list[dict]:
    """The keys of a mailbox's records received in [`start`, `end`) (ISO 8601 UTC, as
    `received_key` begins; None: open), sorted by received_key. No index orders them (one
    would cost an index write per message received): the mailbox's partition is read, records
    only (the signature items and the UID maps are other partitions), the period filtered on
    it. A period's reader (an export, a dry run, a CLI list) reads the whole mailbox once, at
    0.25 RRU per 1 KB record, for the index writes every message saved. `scanned` gets the
    items read, page by page."""
    condition = Attr("received_key").exists()
    if start is not None:
        condition = condition & Attr("received_key").gte(start)
    if end is not None:
        condition = condition & Attr("received_key").lt(end)
    request = {
        "KeyConditionExpression": Key("mailbox").eq(mailbox.lower()),
        "FilterExpression": condition,
        "ProjectionExpression": "mailbox, message, received_key",
    }
    keys: list[dict] = []
    for page in pages(table.query, **request):
        if scanned is not None:
            scanned.append(int(page.get("ScannedCount", 0)))
        keys += page.get("Items", [])
    keys.sort(key=lambda k: (str(k["received_key"]), str(k["message"])), reverse=newest_first)
    return keys[:limit] if limit is not None else keys


class SignatureItems:
    """The signature items of a table: each written once (a conditional put, skipped when this
    process wrote or read it already) and read once per process. They are named by the SHA-256
    of their content, so what is cached never goes stale."""

    _known: dict[tuple[str, str], dict] = {}  # (table, reference) -> content, for every store of the process

    def __init__(self, table: Any):
        self.table = table

    def keep(self, ref: str, content: dict) -> None:
        if (self.table.name, ref) in self._known:
            return
        _conditional_write(
            self.table.put_item,
            Item=_clean({**content, "mailbox": SIGNATURES, "message": ref}),
            ConditionExpression=Attr("message").not_exists(),
        )
        self._remember(ref, content)

    def get(self, ref: str) -> dict:
        known = self._known.get((self.table.name, ref))
        if known is not None:
            return known
        item = self.table.get_item(Key={"mailbox": SIGNATURES, "message": ref}, ConsistentRead=True).get(
            "Item"
        )
        if item is None:  # written before any record naming it, and never deleted
            raise LookupError(f"signature item {ref} missing from {self.table.name}")
        content = {k: v for k, v in _plain(item).items() if k not in RECORD_KEY}
        return self._remember(ref, content)

    def _remember(self, ref: str, content: dict) -> dict:
        if len(self._known) >= 256:
            self._known.clear()
        self._known[(self.table.name, ref)] = content
        return content

    def whole(self, item: dict) -> dict:
        """A stored record (as DynamoDB gives it) whole, as it was recorded."""
        return whole_record(_plain(item), self.get)

    def records(self, keys: Iterable[dict]) -> Iterator[dict]:
        """The records of the keys given (`received_keys`), read by BatchGetItem (`whole_items`)
        and given whole, in the keys' order, streamed."""
        for item in whole_items(self.table.meta.client, self.table.name, keys, RECORD_KEY):
            yield self.whole(item)


class MessageStore:
    def __init__(self, table_name: str, dynamodb=None):
        self.table = _resource(dynamodb).Table(table_name)
        self.signatures = SignatureItems(self.table)

    is_service_failure = staticmethod(is_service_failure)

    def record(self, mailbox: str, record: dict) -> bool:
        """Write a new record; False (and nothing written) when this message is already recorded."""
        item, shared = stored_record(
            _clean({**record, "mailbox": mailbox.lower(), "message": record_key(record["sha256"])})
        )
        for ref, content in shared:  # before the record that names it
            self.signatures.keep(ref, content)
        return _conditional_write(
            self.table.put_item, Item=item, ConditionExpression=Attr("message").not_exists()
        )

    def relocate(self, mailbox: str, sha256: str, *, folder: str, uid: int, uidvalidity: int) -> None:
        """A recorded message seen again at another UID (after a UIDVALIDITY change)."""
        self.table.update_item(
            Key={"mailbox": mailbox.lower(), "message": record_key(sha256)},
            UpdateExpression="SET #f = :f, uid = :u, uidvalidity = :v",
            ExpressionAttributeNames={"#f": "folder"},
            ExpressionAttributeValues={":f": folder, ":u": uid, ":v": uidvalidity},
        )

    def get(self, mailbox: str, sha256: str) -> MessageRecord | None:
        item = self.table.get_item(
            Key={"mailbox": mailbox.lower(), "message": record_key(sha256)}, ConsistentRead=True
        ).get("Item")
        return MessageRecord.from_item(self.signatures.whole(item)) if item else None

    def set_fields(self, mailbox: str, sha256: str, fields: dict, remove: Iterable[str] = ()) -> None:
        # a derived attribute removed is stored as NULL: absent, a record's reader would derive it
        fields = _clean(fields) | {name: None for name in remove if name in DERIVED}
        removed = [name for name in remove if name not in DERIVED]
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

    # --- the UID map ---------------------------------------------------------------------------
    def map_uids(self, mailbox: str, folder: str, uidvalidity: int, shas: Mapping[int, str]) -> None:
        """A fetched batch's UID map: one item (a write unit) per UID_MAP_ENTRIES UIDs."""
        for key, packed in uid_map_items(folder, uidvalidity, shas):
            self.table.put_item(Item={"mailbox": uid_map_partition(mailbox), "message": key, "uids": packed})

    def unmap_uids(
        self, mailbox: str, folder: str, uidvalidity: int, uids: Iterable[int] | None = None
    ) -> None:
        """The items holding these UIDs written again without them (deleted once empty)."""
        removal = uid_map_removal(uids)
        if removal is None:
            return
        gone, high = removal
        for item in self._map_items(mailbox, folder, uidvalidity, high, consistent=True):
            left = uid_map_without(item["uids"], gone)
            if left == b"":
                self.table.delete_item(Key={"mailbox": item["mailbox"], "message": item["message"]})
            elif left is not None:  # under its key still: its first UID or an earlier one
                self.table.put_item(Item={**item, "uids": left})

    def at_location(
        self, mailbox: str, folder: str, uidvalidity: int, uids: list[int]
    ) -> dict[int, MessageRecord]:
        """What the UID map says of the given UIDs (`on_provider_records`), by UID: the items of
        the folder's UIDVALIDITY up to the highest UID asked, read."""
        if not uids:
            return {}
        items = self._map_items(mailbox, folder, uidvalidity, max(uids))
        return on_provider_records(mailbox, folder, uidvalidity, (i["uids"] for i in items), set(uids))

    def _map_items(
        self, mailbox: str, folder: str, uidvalidity: int, high: int | None, *, consistent: bool = False
    ) -> Iterator[dict]:
        """The map's items of a folder under a UIDVALIDITY whose first UID is at most `high`, in
        order, the packed entries as bytes. An entry never changes (a UID is one message): a read
        that missed the last write misses only entries the guard takes at its next run;
        `consistent` for a rewrite, which must not bring back entries taken out."""
        low_key = uid_map_key(folder, uidvalidity, 0)
        high_key = uid_map_key(folder, uidvalidity, 2**32 - 1 if high is None else high)
        key = Key("mailbox").eq(uid_map_partition(mailbox)) & Key("message").between(low_key, high_key)
        for page in pages(self.table.query, KeyConditionExpression=key, ConsistentRead=consistent):
            for item in page.get("Items", []):
                if uid_map_place(item["message"])[:2] == (folder, uidvalidity):  # not a folder "<folder>#..."
                    yield {**item, "uids": bytes(item["uids"])}

    def query(
        self, mailbox: str, *, index: str | None = None, newest_first: bool = True, limit: int = 100
    ) -> list[MessageRecord]:
        """Up to `limit` records by received_key, whole: of the mailbox (`received_keys`, the
        records read by BatchGetItem), or of a sparse index, Unmatched or Quarantined, which
        holds its records whole."""
        if index is None:
            keys = received_keys(self.table, mailbox, newest_first=newest_first, limit=limit)
            return [MessageRecord.from_item(i) for i in self.signatures.records(keys)]
        key = {"Unmatched": "unmatched_mailbox", "Quarantined": "quarantined_mailbox"}[index]
        items = self.table.query(
            IndexName=index,
            KeyConditionExpression=Key(key).eq(mailbox.lower()),
            ScanIndexForward=not newest_first,
            Limit=limit,
        ).get("Items", [])
        return [MessageRecord.from_item(self.signatures.whole(i)) for i in items]

    def every(self, mailbox: str) -> Iterator[MessageRecord]:
        """Every record of a mailbox (a Query of its partition, page by page)."""
        for page in pages(self.table.query, KeyConditionExpression=Key("mailbox").eq(mailbox.lower())):
            for item in page.get("Items", []):
                yield MessageRecord.from_item(self.signatures.whole(item))

    def count(self, mailbox: str) -> int:
        key = Key("mailbox").eq(mailbox.lower())
        return sum(
            page["Count"] for page in pages(self.table.query, KeyConditionExpression=key, Select="COUNT")
        )

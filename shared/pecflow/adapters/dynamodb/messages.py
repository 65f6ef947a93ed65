"""MessagesTable: one record per message received, keyed by mailbox and SHA-256."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

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
from pecflow.domain.mailbox import location
from pecflow.domain.records import MessageRecord

# --- message records -----------------------------------------------------------------------------
RECORD_KEY = ("mailbox", "message")  # the table's key: all that index ByDate keeps, with received_key


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

    def get(self, mailbox: str, sha256: str) -> MessageRecord | None:
        item = self.table.get_item(
            Key={"mailbox": mailbox.lower(), "message": record_key(sha256)}, ConsistentRead=True
        ).get("Item")
        return MessageRecord.from_item(_plain(item)) if item else None

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

    def at_location(
        self, mailbox: str, folder: str, uidvalidity: int, uids: list[int]
    ) -> dict[int, MessageRecord]:
        """Records of the given UIDs still on the provider, by UID: as index ByLocation projects
        them (where and what they are: sha256, s3_key, received_at, uid), not whole."""
        if not uids:
            return {}
        low, high = min(uids), max(uids)
        wanted = set(uids)
        found: dict[int, MessageRecord] = {}
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
                    found[uid] = MessageRecord.from_item(_plain(item))
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def query(
        self, mailbox: str, *, index: str = "ByDate", newest_first: bool = True, limit: int = 100
    ) -> list[MessageRecord]:
        """Up to `limit` records of an index, whole. ByDate keeps only the keys (a record's write
        is then one index write unit, not two): its records are read by BatchGetItem; Unmatched
        and Quarantined, sparse and small, hold their records whole."""
        key = {"Unmatched": "unmatched_mailbox", "Quarantined": "quarantined_mailbox"}.get(index, "mailbox")
        items = self.table.query(
            IndexName=index,
            KeyConditionExpression=Key(key).eq(mailbox.lower()),
            ScanIndexForward=not newest_first,
            Limit=limit,
        ).get("Items", [])
        if index == "ByDate":
            items = list(whole_items(self.table.meta.client, self.table.name, items, RECORD_KEY))
        return [MessageRecord.from_item(_plain(i)) for i in items]

    def every(self, mailbox: str) -> Iterator[MessageRecord]:
        """Every record of a mailbox (a Query of its partition, page by page)."""
        for page in pages(self.table.query, KeyConditionExpression=Key("mailbox").eq(mailbox.lower())):
            for item in page.get("Items", []):
                yield MessageRecord.from_item(_plain(item))

    def count(self, mailbox: str) -> int:
        key = Key("mailbox").eq(mailbox.lower())
        return sum(
            page["Count"] for page in pages(self.table.query, KeyConditionExpression=key, Select="COUNT")
        )

"""The conservation exports' state: the messages received in a period (MessagesTable, the
mailbox's partition: `received_keys`) and the exported periods, on MailboxesTable beside the
mailbox's configuration.

Items on MailboxesTable (address = the mailbox):

    item "conservation"                         the head: `exports`, the number of periods recorded
    item "conservation#<first>_<last>"          one exported period: first, last, the package's
                                                SHA-256 and size, the index's SHA-256, documents,
                                                created_at, created_by, filename

A period is recorded by one transaction: the period's item (only if new) and the head's count
(only if still the count read before the export). Two exports racing therefore cannot both be
recorded: the second is refused and says so; the overlap check it made stays true.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from boto3.dynamodb.conditions import Key

from pecflow.adapters.dynamodb._common import _clean, _plain, _resource, _try_write
from pecflow.adapters.dynamodb.messages import SignatureItems, received_keys

HEAD = "conservation"
PREFIX = "conservation#"


class PeriodMessages:
    """MessagesTable's records of a mailbox received between two ISO instants, oldest first."""

    def __init__(self, table_name: str, dynamodb: Any = None):
        self.table = _resource(dynamodb).Table(table_name)
        self.signatures = SignatureItems(self.table)

    def received_between(self, mailbox: str, start: str, end: str) -> Iterator[dict[str, Any]]:
        """`start` included, `end` excluded (ISO 8601 UTC, as `received_key` begins), oldest
        first: the period's keys (`received_keys`), the records read whole by BatchGetItem,
        streamed."""
        yield from self.signatures.records(received_keys(self.table, mailbox, start, end))

    def counts_between(self, mailbox: str, periods: Sequence[tuple[str, str]]) -> list[int]:
        """How many records each [start, end) holds: the mailbox's keys read once for them all."""
        keys = [
            str(k["received_key"]) for k in received_keys(self.table, mailbox, min(p[0] for p in periods))
        ]
        return [bisect_left(keys, end) - bisect_left(keys, start) for start, end in periods]


class ExportedPeriods:
    def __init__(self, table_name: str, dynamodb: Any = None):
        self.table_name = table_name
        self.table = _resource(dynamodb).Table(table_name)
        self.client = self.table.meta.client

    def recorded(self, mailbox: str) -> tuple[int, list[dict[str, Any]]]:
        """The head's count and every exported period of the mailbox, oldest first."""
        head = self.table.get_item(Key={"address": mailbox.lower(), "item": HEAD}, ConsistentRead=True).get(
            "Item"
        )
        periods: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("address").eq(mailbox.lower()) & Key("item").begins_with(PREFIX),
            "ConsistentRead": True,
        }
        while True:
            page = self.table.query(**kwargs)
            periods += [_plain(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        periods.sort(key=lambda p: str(p.get("first")))
        return int(_plain(head or {}).get("exports", 0)), periods

    def record(self, mailbox: str, period: Mapping[str, Any], *, seen: int) -> bool:
        """Record an exported period; False (nothing written) when another export was recorded
        since `seen` was read, or this very period already was."""
        address = mailbox.lower()
        fields = _clean(dict(period))
        head_condition = "attribute_not_exists(exports)" if seen == 0 else "exports = :seen"
        values = {":one": 1} | ({":seen": seen} if seen else {})
        writes = [
            {  # an update creating the item (the function may update MailboxesTable, never put)
                "Update": {
                    "TableName": self.table_name,
                    "Key": {"address": address, "item": f"{PREFIX}{period['first']}_{period['last']}"},
                    "UpdateExpression": "SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(fields))),
                    "ConditionExpression": "attribute_not_exists(address)",
                    "ExpressionAttributeNames": {f"#k{i}": k for i, k in enumerate(fields)},
                    "ExpressionAttributeValues": {f":v{i}": v for i, v in enumerate(fields.values())},
                }
            },
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": {"address": address, "item": HEAD},
                    "UpdateExpression": "ADD exports :one",
                    "ConditionExpression": head_condition,
                    "ExpressionAttributeValues": values,
                }
            },
        ]
        return _try_write(self.client.transact_write_items, TransactItems=writes) is None

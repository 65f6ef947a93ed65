"""How many messages of a mailbox wait to be handled: a COUNT query on the inbox's ByHandling index
(the rows "da gestire"; receipts have no handling key), read for the mailbox's health."""

from __future__ import annotations

from typing import Any

from pecflow.adapters.dynamodb._common import _resource, pages
from pecflow.domain.handling import Status


class InboxCounts:
    def __init__(self, table_name: str, dynamodb: Any = None):
        self.client = _resource(dynamodb).Table(table_name).meta.client
        self.table_name = table_name

    def to_handle(self, mailbox: str) -> int:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "ByHandling",
            "KeyConditionExpression": "handling_pk = :pk",
            "ExpressionAttributeValues": {":pk": f"{mailbox.lower()}#{Status.OPEN.value}"},
            "Select": "COUNT",
        }
        return sum(int(page.get("Count", 0)) for page in pages(self.client.query, **kwargs))

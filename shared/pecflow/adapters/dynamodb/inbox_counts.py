"""How many messages of a mailbox wait to be handled: a COUNT query of the inbox's ByList partition
of the messages «da gestire» (`message_list`), read for the mailbox's health."""

from __future__ import annotations

from typing import Any

from pecflow.adapters.dynamodb._common import _resource, pages
from pecflow.domain.handling import Status
from pecflow.domain.inbox import message_list


class InboxCounts:
    def __init__(self, table_name: str, dynamodb: Any = None):
        self.client = _resource(dynamodb).Table(table_name).meta.client
        self.table_name = table_name

    def to_handle(self, mailbox: str) -> int:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "ByList",
            "KeyConditionExpression": "list_pk = :pk",
            "ExpressionAttributeValues": {":pk": message_list(mailbox, Status.OPEN)},
            "Select": "COUNT",
        }
        return sum(int(page.get("Count", 0)) for page in pages(self.client.query, **kwargs))

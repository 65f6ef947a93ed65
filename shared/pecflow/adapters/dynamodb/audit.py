"""AuditTable: the audit log, (mailbox, seq) per event; seq 0 is the mailbox's head (the last
event's number and hash). An event and the head's move are one transaction, conditional on the
head being the one the event was chained to: two acts at once never take the same number, and
the loser is chained again after the winner (pecflow.domain.audit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from boto3.dynamodb.conditions import Key

from pecflow.adapters.dynamodb._common import _plain, _resource, _try_write, pages
from pecflow.domain.audit import AuditEvent, ChainHead

HEAD = 0


def _event(item: dict[str, Any]) -> AuditEvent:
    item = _plain(item)
    return AuditEvent(
        mailbox=item["mailbox"],
        seq=int(item["seq"]),
        at=item["at"],
        actor=item["actor"],
        action=item["action"],
        message=item.get("message"),
        source_ip=item.get("source_ip"),
        client=item.get("client"),
        details=dict(item.get("details") or {}),
        prev_hash=item["prev_hash"],
        hash=item["hash"],
    )


class AuditStore:
    def __init__(self, table_name: str, dynamodb=None):
        self.table = _resource(dynamodb).Table(table_name)
        self.client = self.table.meta.client
        self.table_name = table_name

    def head(self, mailbox: str) -> ChainHead:
        item = self.table.get_item(Key={"mailbox": mailbox.lower(), "seq": HEAD}, ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return ChainHead(mailbox.lower())
        return ChainHead(mailbox.lower(), int(item["head_seq"]), str(item["head_hash"]))

    def append(self, event: AuditEvent) -> bool:
        """Write the event and move the head to it, only if the head is still the event's
        predecessor; False (nothing written) when another event took that place first."""
        return (
            _try_write(self.client.transact_write_items, TransactItems=audit_items(self.table_name, event))
            is None
        )

    def events(self, mailbox: str, *, after: int = 0, page: int = 500) -> Iterator[AuditEvent]:
        """The mailbox's events in order of their numbers (the head item left out)."""
        key = Key("mailbox").eq(mailbox.lower()) & Key("seq").gt(after)
        for result in pages(self.table.query, KeyConditionExpression=key, Limit=page):
            for item in result.get("Items", []):
                yield _event(item)

    def of_message(self, mailbox: str, message: str, limit: int = 200) -> list[AuditEvent]:
        """The audit trail of one message (index ByMessage), oldest first."""
        result = self.table.query(
            IndexName="ByMessage",
            KeyConditionExpression=Key("message_key").eq(f"{mailbox.lower()}#{message}"),
            Limit=limit,
        )
        return [_event(item) for item in result.get("Items", [])]


def audit_items(table_name: str, event: AuditEvent) -> list[dict[str, Any]]:
    """The two writes of an audit event, for a transaction (alone, or with the act it records):
    the event where no event has its number, and the head moved to it from its predecessor."""
    item: dict[str, Any] = {
        "mailbox": event.mailbox,
        "seq": event.seq,
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }
    for name in ("message", "source_ip", "client"):
        value = getattr(event, name)
        if value:
            item[name] = value
    if event.message:
        item["message_key"] = f"{event.mailbox}#{event.message}"
    if event.details:
        item["details"] = dict(event.details)
    values: dict[str, Any] = {":seq": event.seq, ":hash": event.hash}
    if event.seq == 1:
        head_condition = "attribute_not_exists(head_seq)"
    else:
        head_condition = "head_seq = :prev AND head_hash = :prev_hash"
        values |= {":prev": event.seq - 1, ":prev_hash": event.prev_hash}
    return [
        {"Put": {"TableName": table_name, "Item": item, "ConditionExpression": "attribute_not_exists(seq)"}},
        {
            "Update": {
                "TableName": table_name,
                "Key": {"mailbox": event.mailbox, "seq": HEAD},
                "UpdateExpression": "SET head_seq = :seq, head_hash = :hash",
                "ConditionExpression": head_condition,
                "ExpressionAttributeValues": values,
            }
        },
    ]

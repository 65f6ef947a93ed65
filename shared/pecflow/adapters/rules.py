"""Where the rules live and write: each mailbox's rules document on its configuration item in
MailboxesTable (attribute `rules`, the document as JSON text, with who changed it and when), the
auto-replies' claims beside it (items "autoreply#<rule>#<sender>"), and the `save` and `pdf`
actions' files in the archive bucket under rules/ (the poller may write nowhere else there but
messages/)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Attr

from pecflow.adapters.dynamodb._common import _conditional_write, _resource
from pecflow.adapters.dynamodb.messages import SignatureItems, received_keys
from pecflow.domain import clock

SAVED_PREFIX = "rules/"


class MailboxRules:
    """The rules document of each mailbox, on its item "config" (one read per poll at most:
    the runner keeps it a minute)."""

    def __init__(self, table_name: str, dynamodb: Any = None):
        self.table = _resource(dynamodb).Table(table_name)

    def rules(self, mailbox: str) -> dict[str, Any] | None:
        item = self.table.get_item(
            Key={"address": mailbox.lower(), "item": "config"},
            ProjectionExpression="#r",
            ExpressionAttributeNames={"#r": "rules"},
            ConsistentRead=True,
        ).get("Item")
        text = (item or {}).get("rules")
        return json.loads(text) if text else None

    def set_rules(self, mailbox: str, document: dict[str, Any], *, by: str) -> None:
        if not _conditional_write(
            self.table.update_item,
            Key={"address": mailbox.lower(), "item": "config"},
            UpdateExpression="SET #r = :r, rules_updated_at = :now, rules_updated_by = :by",
            ConditionExpression=Attr("address").exists(),
            ExpressionAttributeNames={"#r": "rules"},
            ExpressionAttributeValues={
                ":r": json.dumps(document, ensure_ascii=False, sort_keys=True),
                ":now": clock.iso(),
                ":by": by,
            },
        ):
            raise KeyError(f"La casella {mailbox} non è configurata: aggiungila prima.")


class AutoReplyClaims:
    """Who a mailbox's rule answered and until when, one item per (mailbox, rule, sender) in
    MailboxesTable: a claim is one conditional write, so of two pollers answering the same
    sender at once exactly one wins. A claim held for the same message is granted again, as it
    was (the rules run again on a message whose poll stopped half-way): the reply still goes out
    once, by its job id."""

    def __init__(self, table_name: str, dynamodb: Any = None):
        self.table = _resource(dynamodb).Table(table_name)

    @staticmethod
    def item(rule: str, sender: str) -> str:
        return f"autoreply#{hashlib.sha256(rule.casefold().encode()).hexdigest()[:16]}#{sender.lower()}"

    def claim(
        self, mailbox: str, sender: str, rule: str, *, sha256: str, now: datetime, period: timedelta
    ) -> str | None:
        key = {"address": mailbox.lower(), "item": self.item(rule, sender)}
        until = now + period
        if _conditional_write(
            self.table.put_item,
            Item={
                **key,
                "rule": rule,
                "sender": sender.lower(),
                "sha256": sha256,
                "replied_at": clock.iso(now),
                "until": clock.iso(until),
                "expires_at": int(until.timestamp()) + 86_400,  # for a TTL on the table, if one is set
            },
            ConditionExpression=Attr("address").not_exists() | Attr("until").lte(clock.iso(now)),
        ):
            return None
        held = self.table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
        if held.get("sha256") == sha256:
            return None  # this message's own claim: its period stays as it was
        return str(held.get("replied_at") or clock.iso(now))


class SavedFiles:
    """The `save` action's files: s3://<bucket>/rules/<the rule's prefix>/..., encrypted like
    the archive. A file saved again (a message's rules run again) is overwritten with the same
    bytes."""

    def __init__(self, bucket: str, s3: Any = None, *, kms_key_id: str | None = None):
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        self.s3, self.bucket, self.kms_key_id = s3, bucket, kms_key_id

    def put(self, key: str, data: bytes, content_type: str) -> None:
        extra = {"ServerSideEncryption": "aws:kms"}
        if self.kms_key_id:
            extra["SSEKMSKeyId"] = self.kms_key_id
        self.s3.put_object(
            Bucket=self.bucket,
            Key=f"{SAVED_PREFIX}{key}",
            Body=data,
            ContentType=content_type or "application/octet-stream",
            ChecksumAlgorithm="SHA256",
            **extra,
        )


class RecordedMessages:
    """Message records of a period, oldest first, as stored (the dry run's input): their keys
    (`received_keys`: the mailbox's partition read, the period's kept) and the records read whole
    by BatchGetItem. `reads` counts the items DynamoDB read: the partition's and the records."""

    def __init__(self, table_name: str, dynamodb: Any = None):
        self.table = _resource(dynamodb).Table(table_name)
        self.signatures = SignatureItems(self.table)
        self.reads = 0

    def since(self, mailbox: str, since: str) -> Iterator[dict[str, Any]]:
        for record in self.signatures.records(self._keys(mailbox, since)):
            self.reads += 1
            yield record

    def _keys(self, mailbox: str, since: str) -> list[dict[str, Any]]:
        scanned: list[int] = []
        keys = received_keys(self.table, mailbox, since, scanned=scanned)
        self.reads += sum(scanned)
        return keys

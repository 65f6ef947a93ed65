"""Alerts on AWS: the grouping items (AlertsTable), the channel (the alarms topic, and a chat
webhook whose URL is a secret), what the scheduled check counts (MessagesTable's Unmatched
index, InboxTable's ByList partition of the messages «da gestire») and each mailbox's alert
settings (MailboxesTable item "alerts"). Nothing here sends mail: alerts never leave through a
PEC mailbox."""

from __future__ import annotations

import json
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from pecflow.adapters.dynamodb._common import pages
from pecflow.domain.handling import Status
from pecflow.domain.inbox import message_list

WEBHOOK_TIMEOUT = 5.0  # seconds: a slow chat service never holds a poll
WEBHOOK_PAUSE = 300.0  # after a failure the webhook rests this long (no retry storm)
SECRET_CACHE = 300.0


def _refused(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class AlertGroupsTable:
    """One item per (cause, subject, period): `count`, and once its alert is out
    `published_count`; `summarized` once its summary is. Items expire by TTL (`expires`)."""

    def __init__(self, table_name: str, client: Any):
        self.table_name, self.client = table_name, client

    def add(self, key: str, count: int, fields: Mapping[str, Any]) -> int:
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": _value(v) for i, v in enumerate(fields.values())}
        sets = ", ".join(f"#f{i} = if_not_exists(#f{i}, :f{i})" for i in range(len(fields)))
        answer = self.client.update_item(
            TableName=self.table_name,
            Key={"group": {"S": key}},
            UpdateExpression=f"ADD #c :n SET {sets}",
            ExpressionAttributeNames={"#c": "count", **names},
            ExpressionAttributeValues={":n": {"N": str(count)}, **values},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["count"]["N"])

    def claim(self, key: str, count: int) -> bool:
        return self._set_once(key, "published_count", count)

    def claim_summary(self, key: str, total: int) -> bool:
        return self._set_once(key, "summarized", total)

    def _set_once(self, key: str, name: str, value: int) -> bool:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"group": {"S": key}},
                UpdateExpression="SET #a = :v",
                ConditionExpression="attribute_exists(#g) AND attribute_not_exists(#a)",
                ExpressionAttributeNames={"#a": name, "#g": "group"},
                ExpressionAttributeValues={":v": {"N": str(value)}},
            )
        except ClientError as exc:
            if _refused(exc):
                return False
            raise
        return True

    def claim_run(self, key: str, expires: int) -> bool:
        """A marker item written once (the scheduled check of one period)."""
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={"group": {"S": key}, "expires": {"N": str(expires)}},
                ConditionExpression="attribute_not_exists(#g)",
                ExpressionAttributeNames={"#g": "group"},
            )
        except ClientError as exc:
            if _refused(exc):
                return False
            raise
        return True

    def closed(self, before: str) -> list[dict[str, Any]]:
        """A Scan: the table holds two days of groups, a few items per mailbox and cause."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": "period_end <= :now AND attribute_exists(published_count) "
            "AND attribute_not_exists(summarized) AND #c > published_count",
            "ExpressionAttributeNames": {"#c": "count"},
            "ExpressionAttributeValues": {":now": {"S": before}},
        }
        return [
            _plain_item(item) for page in pages(self.client.scan, **kwargs) for item in page.get("Items", [])
        ]


def _value(value: Any) -> dict[str, str]:
    return {"N": str(value)} if isinstance(value, int) else {"S": str(value)}


def _plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _number(v["N"]) if "N" in v else v.get("S") for k, v in item.items()}


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


class AlertChannel:
    """The alarms topic (e-mail subscribers, and any other), and a chat webhook when its secret
    holds an https:// URL: Slack, Teams and Google Chat all take a JSON POST of {"text": ...}.
    The URL is never logged nor put in an error (it carries its own credential)."""

    def __init__(
        self,
        topic_arn: str,
        sns: Any,
        *,
        webhook_url: Callable[[], str | None] | None = None,
        post: Callable[[str, bytes, float], int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.topic_arn, self.sns = topic_arn, sns
        self.webhook_url = webhook_url or (lambda: None)
        self.post = post or _post
        self.monotonic = monotonic
        self._resting_until = 0.0

    def publish(self, subject: str, text: str, attributes: Mapping[str, Any]) -> None:
        self.sns.publish(
            TopicArn=self.topic_arn,
            Subject=_sns_subject(subject),
            Message=text,
            MessageAttributes={name: _attribute(value) for name, value in attributes.items()},
        )
        self._to_webhook(subject, text)

    def _to_webhook(self, subject: str, text: str) -> None:
        if self.monotonic() < self._resting_until:
            return
        url = self.webhook_url()
        if not url:
            return
        body = json.dumps({"text": f"*{subject}*\n{text}"}, ensure_ascii=False).encode("utf-8")
        try:
            status = self.post(url, body, WEBHOOK_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the reason, never the URL
            status, reason = 0, type(exc).__name__
        else:
            reason = f"HTTP {status}"
        if not 200 <= status < 300:
            self._resting_until = self.monotonic() + WEBHOOK_PAUSE
            raise RuntimeError(
                f"webhook della chat non raggiunto ({reason}): l'avviso è comunque sul topic; "
                f"nuovo tentativo fra {WEBHOOK_PAUSE / 60:g} minuti"
            )


def _post(url: str, body: bytes, timeout: float) -> int:
    if not url.startswith("https://"):
        raise ValueError("not an https URL")
    request = urllib.request.Request(  # noqa: S310 - https only, checked above
        url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _sns_subject(subject: str) -> str:
    """SNS takes an ASCII subject under 100 characters, on one line."""
    ascii_text = unicodedata.normalize("NFKD", subject).encode("ascii", "ignore").decode()
    return " ".join(ascii_text.split())[:99] or "pecflow"


def _attribute(value: Any) -> dict[str, str]:
    if isinstance(value, (list, tuple)):
        return {"DataType": "String.Array", "StringValue": json.dumps(list(value), ensure_ascii=False)}
    return {"DataType": "String", "StringValue": str(value)}


def webhook_url_from_secret(
    secret_id: str, secrets: Any, cache: float = SECRET_CACHE
) -> Callable[[], str | None]:
    """The webhook URL in the secret (read at most every `cache` seconds); None unless it is an
    https:// URL (the secret is created holding a placeholder)."""
    held: list[tuple[float, str | None]] = []

    def read() -> str | None:
        if held and time.monotonic() - held[0][0] < cache:
            return held[0][1]
        value = str(secrets.get_secret_value(SecretId=secret_id).get("SecretString") or "").strip()
        url = value if value.startswith("https://") else None
        held[:] = [(time.monotonic(), url)]
        return url

    return read


class Waiting:
    """What the scheduled check counts, oldest first: receipts unmatched (MessagesTable's
    Unmatched index) and messages «da gestire» (their partition of InboxTable's ByList) received before
    a time, when one of them was received since `since` (it has just crossed the threshold; the
    others were told at an earlier check). One small query per mailbox and cause when none did."""

    def __init__(self, messages_table: str, inbox_table: str, client: Any):
        self.messages_table, self.inbox_table, self.client = messages_table, inbox_table, client

    def unmatched_before(self, mailbox: str, before: str, since: str, limit: int) -> tuple[int, list[str]]:
        key = mailbox.lower()
        return self._count(self.messages_table, "Unmatched", "unmatched_mailbox", key, before, since, limit)

    def to_handle_before(self, mailbox: str, before: str, since: str, limit: int) -> tuple[int, list[str]]:
        if not self.inbox_table:
            return 0, []
        key = message_list(mailbox, Status.OPEN)
        return self._count(self.inbox_table, "ByList", "list_pk", key, before, since, limit)

    def _count(
        self, table: str, index: str, name: str, key: str, before: str, since: str, limit: int
    ) -> tuple[int, list[str]]:
        crossed = self.client.query(
            TableName=table,
            IndexName=index,
            KeyConditionExpression="#k = :k AND received_key BETWEEN :since AND :before",
            ExpressionAttributeNames={"#k": name},
            ExpressionAttributeValues={":k": {"S": key}, ":since": {"S": since}, ":before": {"S": before}},
            Limit=1,
        )
        if not crossed.get("Items"):
            return 0, []
        query: dict[str, Any] = {
            "TableName": table,
            "IndexName": index,
            "KeyConditionExpression": "#k = :k AND received_key < :before",
            "ExpressionAttributeNames": {"#k": name},
            "ExpressionAttributeValues": {":k": {"S": key}, ":before": {"S": before}},
        }
        first = self.client.query(**query, Limit=limit)
        items = [_plain_item(i) for i in first.get("Items", [])]
        if not items:
            return 0, []
        total = sum(int(page.get("Count", 0)) for page in pages(self.client.query, **query, Select="COUNT"))
        return total, [_describe(i) for i in items]


def _describe(item: Mapping[str, Any]) -> str:
    from pecflow.domain.alerts import example

    return example(
        ("ricevuto", str(item.get("received_key") or "")[:16].replace("T", " ")),
        ("tipo", item.get("kind")),
        ("da", item.get("from")),
        ("oggetto", f"«{item['subject']}»" if item.get("subject") else None),
    )


class AlertSettings:
    """A mailbox's alert settings: MailboxesTable item (address, "alerts")."""

    def __init__(self, table_name: str, client: Any):
        self.table_name, self.client = table_name, client

    def get(self, mailbox: str) -> dict[str, Any]:
        item = self.client.get_item(
            TableName=self.table_name, Key={"address": {"S": mailbox.lower()}, "item": {"S": "alerts"}}
        ).get("Item")
        return {k: v for k, v in _plain_item(item).items() if k not in ("address", "item")} if item else {}

    def set(self, mailbox: str, **hours: float | None) -> None:
        item = {"address": {"S": mailbox.lower()}, "item": {"S": "alerts"}}
        item |= {name: {"N": str(value)} for name, value in hours.items() if value is not None}
        self.client.put_item(TableName=self.table_name, Item=item)

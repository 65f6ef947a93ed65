"""InvoicesTable: each mailbox's invoices and what leads to them, in the mailbox's partition.

Sort keys: `active#<file name>` and `passive#<file name>` (an invoice, pecflow.domain.invoices
.key_of), `sdi#<IdentificativoSdI>` (the invoice it names), `unmatched#<sha256>#<file>` (a
notification no invoice was found for, yet), `settings` (the mailbox's SdI address).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from pecflow.adapters.dynamodb._common import _clean, _conditional_write, _plain, _resource, pages

SETTINGS = "settings"


class InvoiceStore:
    def __init__(self, table_name: str, dynamodb: Any = None):
        self.table = _resource(dynamodb).Table(table_name)

    def _key(self, mailbox: str, item: str) -> dict[str, str]:
        return {"mailbox": mailbox.lower(), "item": item}

    def add(self, mailbox: str, item: Mapping[str, Any]) -> bool:
        body = _clean({**item, **self._key(mailbox, str(item["invoice"]))})
        return _conditional_write(
            self.table.put_item, Item=body, ConditionExpression=Attr("item").not_exists()
        )

    def get(self, mailbox: str, key: str) -> dict[str, Any] | None:
        found = self.table.get_item(Key=self._key(mailbox, key), ConsistentRead=True).get("Item")
        return _plain(found) if found else None

    def move(
        self, mailbox: str, key: str, *, version: int, fields: Mapping[str, Any], remove: Iterable[str] = ()
    ) -> bool:
        values = _clean(dict(fields))
        names = {f"#f{i}": name for i, name in enumerate(values)}
        sets = [f"#f{i} = :f{i}" for i in range(len(values))] + ["#v = :next"]
        gone = {f"#r{i}": name for i, name in enumerate(remove) if name not in values}
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(gone) if gone else "")
        return _conditional_write(
            self.table.update_item,
            Key=self._key(mailbox, key),
            UpdateExpression=expression,
            ConditionExpression="#v = :version",
            ExpressionAttributeNames={**names, **gone, "#v": "version"},
            ExpressionAttributeValues={
                **{f":f{i}": value for i, value in enumerate(values.values())},
                ":version": version,
                ":next": version + 1,
            },
        )

    def _query(self, mailbox: str, prefix: str) -> Iterator[dict[str, Any]]:
        key = Key("mailbox").eq(mailbox.lower()) & Key("item").begins_with(prefix)
        for page in pages(self.table.query, KeyConditionExpression=key):
            for item in page.get("Items", []):
                yield _plain(item)

    def invoices(self, mailbox: str, direction: str | None = None) -> Iterator[dict[str, Any]]:
        for prefix in [direction] if direction else ["active", "passive"]:
            yield from self._query(mailbox, f"{prefix}#")

    def by_identificativo(self, mailbox: str, identificativo: str) -> str | None:
        found = self.get(mailbox, f"sdi#{identificativo}")
        return str(found["target"]) if found and found.get("target") else None

    def link_identificativo(self, mailbox: str, identificativo: str, key: str) -> None:
        self.table.put_item(Item={**self._key(mailbox, f"sdi#{identificativo}"), "target": key})

    def keep_unmatched(self, mailbox: str, entry: Mapping[str, Any]) -> None:
        body = _clean({**entry, **self._key(mailbox, str(entry["entry"]))})
        _conditional_write(self.table.put_item, Item=body, ConditionExpression=Attr("item").not_exists())

    def unmatched(self, mailbox: str) -> list[dict[str, Any]]:
        return list(self._query(mailbox, "unmatched#"))

    def drop_unmatched(self, mailbox: str, entry_key: str) -> None:
        self.table.delete_item(Key=self._key(mailbox, entry_key))

    def settings(self, mailbox: str) -> dict[str, Any]:
        return self.get(mailbox, SETTINGS) or {}

    def set_settings(self, mailbox: str, values: Mapping[str, Any]) -> None:
        self.table.put_item(Item=_clean({**self.settings(mailbox), **values, **self._key(mailbox, SETTINGS)}))

"""InboxTable: each received message's row (what a list shows, its presa in carico, the bin) and
its word items (pecflow.domain.inbox). Pages are read from the one index a filter names (never a
Scan); a person's act on a message and its audit event are one transaction, so no act happens
unaudited and no audit event tells of an act that did not happen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.exceptions import ClientError

from pecflow.adapters.dynamodb._common import (
    _clean,
    _plain,
    _resource,
    _try_write,
    cancellation_reasons,
)
from pecflow.adapters.dynamodb.audit import audit_items
from pecflow.domain.audit import AuditEvent
from pecflow.domain.inbox import (
    INDEXES,
    ROW_SORT,
    Plan,
    has_words,
    inbox_row,
    matches,
    row_key,
    word_items,
)


@dataclass(slots=True)
class Page:
    """A page of rows, the key to continue from (None: the last page), and what it cost."""

    rows: list[dict[str, Any]]
    next_key: dict[str, Any] | None
    items_read: int = 0
    requests: int = 0
    notes: list[str] = field(default_factory=list)


class ActOutcome:
    DONE = "done"
    ROW_CHANGED = "row-changed"  # the row is not as the act was decided on: read it again
    AUDIT_MOVED = "audit-moved"  # another event took the audit number: chain again


def _residual_filter(plan: Plan) -> ConditionBase | None:
    condition: ConditionBase | None = None
    for attribute, allowed in plan.residual:
        part: ConditionBase | None = None
        for value in allowed:
            one = Attr(attribute).not_exists() if value == "" else Attr(attribute).eq(value)
            part = one if part is None else part | one
        if part is not None:
            condition = part if condition is None else condition & part
    return condition


def _sort_condition(plan: Plan, name: str) -> ConditionBase | None:
    if plan.sort_from and plan.sort_to:
        return Key(name).between(plan.sort_from, plan.sort_to)
    if plan.sort_from:
        return Key(name).gte(plan.sort_from)
    if plan.sort_to:
        return Key(name).lte(plan.sort_to)
    return None


class InboxStore:
    def __init__(self, table_name: str, dynamodb=None, *, audit_table: str | None = None):
        self.table = _resource(dynamodb).Table(table_name)
        self.client = self.table.meta.client
        self.table_name = table_name
        self.audit_table = audit_table

    # --- writing ------------------------------------------------------------------------------
    def add(self, mailbox: str, record: Mapping[str, Any], *, campaign_id: str | None = None) -> bool:
        """A newly recorded message: its word items, then its row (only if it has none: a message
        recorded again keeps its presa in carico). False when the row was there already."""
        sha256 = str(record["sha256"])
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for item in word_items(mailbox, sha256, record):
                batch.put_item(Item=item)
        row = _clean(inbox_row(mailbox, record, campaign_id=campaign_id))
        refused = _try_write(self.table.put_item, Item=row, ConditionExpression=Attr("pk").not_exists())
        return refused is None

    def act(
        self,
        mailbox: str,
        sha256: str,
        *,
        expected_version: int,
        set_fields: Mapping[str, Any],
        remove: tuple[str, ...] = (),
        audit: AuditEvent,
        require_deleted: bool | None = False,
    ) -> str:
        """Change a row (only if its version is still `expected_version`, and it is in the bin
        or not as `require_deleted` says; None: either) and append the audit event, in one
        transaction. The row's version moves by one."""
        if self.audit_table is None:
            raise RuntimeError("InboxStore needs the audit table to record acts")
        names: dict[str, str] = {"#v": "version"}
        values: dict[str, Any] = {
            ":expected": expected_version,
            ":next": expected_version + 1,
        }
        sets = ["#v = :next"]
        for i, (name, value) in enumerate(sorted(set_fields.items())):
            if value is None or value == "":
                remove = (*remove, name)
                continue
            names[f"#s{i}"] = name
            values[f":s{i}"] = _clean({"v": value})["v"]
            sets.append(f"#s{i} = :s{i}")
        removes = []
        for i, name in enumerate(
            sorted(set(remove) - set(k for k, v in set_fields.items() if v not in (None, "")))
        ):
            names[f"#r{i}"] = name
            removes.append(f"#r{i}")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        condition = "#v = :expected"
        if require_deleted is not None:
            names["#d"] = "deleted"
            condition += " AND " + ("attribute_exists(#d)" if require_deleted else "attribute_not_exists(#d)")
        update = {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": row_key(mailbox, sha256), "sk": ROW_SORT},
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        writes = [update, *audit_items(self.audit_table, audit)]
        refused = _try_write(self.client.transact_write_items, TransactItems=writes)
        if refused is None:
            return ActOutcome.DONE
        reasons = cancellation_reasons(refused) if isinstance(refused, ClientError) else []
        if reasons and reasons[0] == "ConditionalCheckFailed":
            return ActOutcome.ROW_CHANGED
        return ActOutcome.AUDIT_MOVED

    # --- reading ------------------------------------------------------------------------------
    def row(self, mailbox: str, sha256: str) -> dict[str, Any] | None:
        item = self.table.get_item(
            Key={"pk": row_key(mailbox, sha256), "sk": ROW_SORT}, ConsistentRead=True
        ).get("Item")
        return _plain(item) if item else None

    def page(self, plan: Plan, *, limit: int, start_key: Mapping[str, Any] | None = None) -> Page:
        """Up to `limit` rows newest first, from `start_key` (a previous page's next_key)."""
        if plan.token_index:
            return self._word_page(plan, limit, start_key)
        key = Key(plan.key_attribute).eq(plan.key_value)
        sort = _sort_condition(plan, "received_key")
        kwargs: dict[str, Any] = {
            "IndexName": plan.index,
            "KeyConditionExpression": key & sort if sort is not None else key,
            "ScanIndexForward": False,
        }
        residual = _residual_filter(plan)
        if residual is not None:
            kwargs["FilterExpression"] = residual
        return self._collect(kwargs, limit, start_key, index_key=(plan.key_attribute, "received_key"))

    def _collect(
        self,
        kwargs: dict[str, Any],
        limit: int,
        start_key: Mapping[str, Any] | None,
        index_key: tuple[str, str],
    ) -> Page:
        """Query until `limit` rows matched; one row more is asked for, so a page that ends the
        list says so (no empty last page)."""
        page = Page([], None)
        if start_key:
            kwargs["ExclusiveStartKey"] = dict(start_key)
        while True:
            room = limit - len(page.rows)
            result = self.table.query(**kwargs, Limit=room + 1)
            page.requests += 1
            page.items_read += int(result.get("ScannedCount", 0))
            items = [_plain(i) for i in result.get("Items", [])]
            page.rows.extend(items[:room])
            if len(items) > room:  # more than fit: the next page starts after the last row shown
                last = page.rows[-1]
                page.next_key = {k: last[k] for k in ("pk", "sk", *index_key)}
                return page
            last_evaluated = result.get("LastEvaluatedKey")
            if not last_evaluated:
                return page
            kwargs["ExclusiveStartKey"] = last_evaluated

    def _word_page(self, plan: Plan, limit: int, start_key: Mapping[str, Any] | None) -> Page:
        key = Key("pk").eq(plan.key_value)
        sort = _sort_condition(plan, "sk")
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": key & sort if sort is not None else key,
            "ScanIndexForward": False,
        }
        condition: ConditionBase | None = None
        for word in plan.words:
            one = Attr("words").contains(word)
            condition = one if condition is None else condition & one
        if condition is not None:
            kwargs["FilterExpression"] = condition
        page = Page([], None)
        if start_key:
            kwargs["ExclusiveStartKey"] = dict(start_key)
        while True:
            result = self.table.query(**kwargs, Limit=max(limit - len(page.rows), 10))
            page.requests += 1
            page.items_read += int(result.get("ScannedCount", 0))
            hits = [_plain(i) for i in result.get("Items", [])]
            hits = [h for h in hits if has_words(h, plan)]
            rows = self._rows(plan.key_value.split("#w#")[0], [h["sha256"] for h in hits], page)
            for hit in hits:
                row = rows.get(hit["sha256"])
                if row is not None and matches(row, plan):
                    page.rows.append(row)
                    if len(page.rows) == limit:
                        page.next_key = {"pk": hit["pk"], "sk": hit["sk"]}
                        return page
            last_evaluated = result.get("LastEvaluatedKey")
            if not last_evaluated:
                return page
            kwargs["ExclusiveStartKey"] = last_evaluated

    def _rows(self, mailbox: str, shas: list[str], page: Page) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        keys = [{"pk": row_key(mailbox, sha), "sk": ROW_SORT} for sha in dict.fromkeys(shas)]
        for start in range(0, len(keys), 100):
            wanted: list[dict[str, Any]] = keys[start : start + 100]
            while wanted:
                result = self.client.batch_get_item(RequestItems={self.table_name: {"Keys": wanted}})
                page.requests += 1
                for item in result.get("Responses", {}).get(self.table_name, []):
                    page.items_read += 1
                    found[str(item["sha256"])] = _plain(item)
                wanted = (result.get("UnprocessedKeys") or {}).get(self.table_name, {}).get("Keys", [])
        return found


__all__ = ["INDEXES", "ActOutcome", "InboxStore", "Page"]

"""InboxTable: each received message's row (what a list shows, its presa in carico, the bin) and
the postings of its words (pecflow.domain.inbox). Pages are read from the one index a filter names (never a
Scan); a person's act on a message and its audit event are one transaction, so no act happens
unaudited and no audit event tells of an act that did not happen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    whole_items,
)
from pecflow.adapters.dynamodb.audit import audit_items
from pecflow.domain.audit import AuditEvent
from pecflow.domain.inbox import (
    INDEXES,
    ROW_SORT,
    Entry,
    Plan,
    inbox_row,
    merged_page,
    open_entries,
    open_room,
    open_sks,
    postings,
    request_size,
    row_key,
    word_page,
)

# open postings this process found too full, (table, pk, sk) -> the fewest entries refused: no
# more that many are tried again (they only fill up), fewer may still fit
_REFUSED: dict[tuple[str, Any, str], int] = {}


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
    for name, allowed in plan.residual:
        part: ConditionBase | None = None
        for value in allowed:
            one = Attr(name).not_exists() if value == "" else Attr(name).eq(value)
            part = one if part is None else part | one
        if part is not None:
            condition = part if condition is None else condition & part
    return condition


def _key_range(name: str, low: str | None, high: str | None) -> ConditionBase | None:
    """A sort key between `low` and `high` (either None: open on that side; both: no condition)."""
    if low and high:
        return Key(name).between(low, high)
    if low:
        return Key(name).gte(low)
    if high:
        return Key(name).lte(high)
    return None


class InboxStore:
    def __init__(self, table_name: str, dynamodb=None, *, audit_table: str | None = None):
        self.table = _resource(dynamodb).Table(table_name)
        self.client = self.table.meta.client
        self.table_name = table_name
        self.audit_table = audit_table

    # --- writing ------------------------------------------------------------------------------
    def add(
        self, mailbox: str, record: Mapping[str, Any], *, campaign_id: str | None = None, new: bool = False
    ) -> bool:
        """A recorded message's row (only if it has none: a message recorded again keeps its presa
        in carico). False when the row was there. `new`: the record was written just now, so no row
        can exist yet (the poller's case: one read less). Its words: `index_words`."""
        row = _clean(inbox_row(mailbox, record, campaign_id=campaign_id))
        if not new and self.row(mailbox, str(record["sha256"])) is not None:
            return False
        refused = _try_write(self.table.put_item, Item=row, ConditionExpression=Attr("pk").not_exists())
        return refused is None

    def index_words(
        self, mailbox: str, rows: list[Mapping[str, Any]], *, new_rows: Sequence[dict[str, Any]] = ()
    ) -> None:
        """The postings of a batch of rows' words (`postings`), written together (a batch written
        again overwrites its own); first `new_rows`, rows of messages recorded just now (so none
        can be there yet: no condition), in the same requests."""
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for row in new_rows:
                batch.put_item(Item=_clean(row))
            for item in postings(mailbox, rows):
                if not self._append(item):
                    batch.put_item(Item=item)

    def _append(self, item: Mapping[str, Any]) -> bool:
        """A few entries added to an open posting with room (`open_sks`): a refusal is remembered
        by the process (it costs a write), so as many entries are not tried there again."""
        count = len(item["entries"])
        for sk in open_sks(item):
            key = (self.table_name, item["pk"], sk)
            if count >= _REFUSED.get(key, count + 1):
                continue
            refused = _try_write(
                self.table.update_item,
                Key={"pk": item["pk"], "sk": sk},
                UpdateExpression="SET #e = list_append(if_not_exists(#e, :none), :new)",
                ConditionExpression="attribute_not_exists(#e) OR size(#e) <= :room",
                ExpressionAttributeNames={"#e": "entries"},
                ExpressionAttributeValues={":none": [], ":new": open_entries(item), ":room": open_room(item)},
            )
            if refused is None:
                return True
            if len(_REFUSED) >= 10_000:
                _REFUSED.clear()
            _REFUSED[key] = count  # fewer than any refused before, or the first
        return False

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
        transaction. The version moves by one."""
        if self.audit_table is None:
            raise RuntimeError("InboxStore needs the audit table to record acts")
        version = expected_version + 1
        row_update = _update_expression(set_fields, remove, version=version)
        names, values = dict(row_update[1]), {**row_update[2], ":expected": expected_version}
        condition = "#v = :expected"
        if require_deleted is not None:
            names["#d"] = "deleted"
            condition += " AND " + ("attribute_exists(#d)" if require_deleted else "attribute_not_exists(#d)")
        update = {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": row_key(mailbox, sha256), "sk": ROW_SORT},
                "UpdateExpression": row_update[0],
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
        if plan.also:
            return self._merged_page(plan, limit, start_key)
        key = Key(plan.key_attribute).eq(plan.key_value)
        sort = _key_range("received_key", plan.sort_from, plan.sort_to)
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": key & sort if sort is not None else key,
            "ScanIndexForward": False,
            "IndexName": plan.index,
        }
        condition = _residual_filter(plan)
        if condition is not None:
            kwargs["FilterExpression"] = condition
        return self._collect(kwargs, limit, start_key, index_key=(plan.key_attribute, "received_key"))

    def _merged_page(self, plan: Plan, limit: int, start_key: Mapping[str, Any] | None) -> Page:
        """Several partitions of the plan's index merged newest first (`merged_page`)."""
        page = Page([], None)
        condition = _residual_filter(plan)

        def query(
            partition: str, before: str | None, start: Mapping[str, Any] | None, count: int
        ) -> tuple[list[dict[str, Any]], Any]:
            key = Key(plan.key_attribute).eq(partition)
            if before is None or (plan.sort_to is not None and plan.sort_to < before):
                sort = _key_range("received_key", plan.sort_from, plan.sort_to)
            elif plan.sort_from is None:
                sort = Key("received_key").lt(before)
            else:  # `between` includes `before`: merged_page leaves it out
                sort = Key("received_key").between(plan.sort_from, before)
            kwargs: dict[str, Any] = {
                "IndexName": plan.index,
                "KeyConditionExpression": key & sort if sort is not None else key,
                "ScanIndexForward": False,
                "Limit": count,
            }
            if condition is not None:
                kwargs["FilterExpression"] = condition
            if start:
                kwargs["ExclusiveStartKey"] = dict(start)
            result = self.table.query(**kwargs)
            page.requests += 1
            page.items_read += int(result.get("ScannedCount", 0))
            return [_plain(i) for i in result.get("Items", [])], result.get("LastEvaluatedKey")

        page.rows, page.next_key = merged_page(plan, limit, start_key, query)
        return page

    def _word_page(self, plan: Plan, limit: int, start_key: Mapping[str, Any] | None) -> Page:
        """A word search (`word_page`): the word's postings by Query, the rows by BatchGetItem."""
        page = Page([], None)

        def query(
            sk_from: str | None, sk_to: str | None, count: int, start: Mapping[str, Any] | None
        ) -> tuple[list[Any], Any]:
            key = Key("pk").eq(plan.key_value)
            sort = _key_range("sk", sk_from, sk_to)
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": key & sort if sort is not None else key,
                "ScanIndexForward": False,
                "Limit": count,
            }
            if start:
                kwargs["ExclusiveStartKey"] = dict(start)
            result = self.table.query(**kwargs)
            page.requests += 1
            page.items_read += int(result.get("ScannedCount", 0))
            return result.get("Items", []), result.get("LastEvaluatedKey")

        def counted() -> None:
            page.requests += 1

        def fetch(entries: list[Entry]) -> list[dict[str, Any]]:
            page.items_read += len(entries)
            keys = [{"pk": e.row_pk, "sk": ROW_SORT} for e in entries]
            return [_plain(i) for i in whole_items(self.client, self.table_name, keys, ("pk", "sk"), counted)]

        page.rows, page.next_key = word_page(plan, limit, start_key, query, fetch)
        return page

    def _collect(
        self,
        kwargs: dict[str, Any],
        limit: int,
        start_key: Mapping[str, Any] | None,
        index_key: tuple[str, str],
    ) -> Page:
        """Query until `limit` rows matched; one row more is asked for, so a page that ends the
        list says so (no empty last page). Where filters leave rows out, each further request
        asks for twice as many items (`request_size`), so a rare match costs few requests."""
        page = Page([], None)
        if start_key:
            kwargs["ExclusiveStartKey"] = dict(start_key)
        ask = 0
        while True:
            room = limit - len(page.rows)
            ask = request_size(room, ask)
            result = self.table.query(**kwargs, Limit=ask)
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


def _update_expression(
    set_fields: Mapping[str, Any], remove: tuple[str, ...], *, version: int
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """SET the fields (None or "": REMOVE them), REMOVE `remove`, and move the version on."""
    names: dict[str, str] = {"#v": "version"}
    values: dict[str, Any] = {":next": version}
    sets, removes = ["#v = :next"], []
    kept = {k: v for k, v in set_fields.items() if v not in (None, "")}
    for i, (name, value) in enumerate(sorted(kept.items())):
        names[f"#s{i}"], values[f":s{i}"] = name, _clean({"v": value})["v"]
        sets.append(f"#s{i} = :s{i}")
    gone = sorted((set(remove) | {k for k, v in set_fields.items() if v in (None, "")}) - set(kept))
    for i, name in enumerate(gone):
        names[f"#r{i}"] = name
        removes.append(f"#r{i}")
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    return expression, names, values


__all__ = ["INDEXES", "ActOutcome", "InboxStore", "Page"]

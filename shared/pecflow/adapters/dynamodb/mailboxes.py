"""MailboxesTable: (address, "config" | "cursor#<folder>"): configuration, poll status and cursors."""

from __future__ import annotations

from boto3.dynamodb.conditions import Attr

from pecflow.adapters.dynamodb._common import (
    Conflict,
    _clean,
    _conditional_write,
    _plain,
    _resource,
    pages,
)
from pecflow.domain import clock
from pecflow.domain.mailbox import Cursor, MailboxConfig


# --- mailboxes -----------------------------------------------------------------------------------
class MailboxStore:
    def __init__(self, table_name: str, dynamodb=None):
        self.table = _resource(dynamodb).Table(table_name)

    def put(self, config: MailboxConfig) -> None:
        now = clock.iso()
        self.table.update_item(
            Key={"address": config.address.lower(), "item": "config"},  # as every read finds it
            UpdateExpression="SET #c = :c, updated_at = :now, created_at = if_not_exists(created_at, :now), "
            "#s = if_not_exists(#s, :empty)",
            ExpressionAttributeNames={"#c": "config", "#s": "status"},
            ExpressionAttributeValues={":c": _clean(config.to_item()), ":now": now, ":empty": {}},
        )

    def get(self, address: str) -> MailboxConfig | None:
        item = self.table.get_item(
            Key={"address": address.lower(), "item": "config"}, ConsistentRead=True
        ).get("Item")
        return MailboxConfig.from_item(_plain(item["config"])) if item else None

    def get_with_status(self, address: str) -> tuple[MailboxConfig | None, dict]:
        """The configuration and the poll status, in one read."""
        item = self.table.get_item(
            Key={"address": address.lower(), "item": "config"}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None, {}
        return MailboxConfig.from_item(_plain(item["config"])), _plain(item.get("status", {}))

    def status(self, address: str) -> dict:
        item = self.table.get_item(
            Key={"address": address.lower(), "item": "config"}, ConsistentRead=True
        ).get("Item")
        return _plain(item.get("status", {})) if item else {}

    def list(self, *, enabled_only: bool = False) -> list[MailboxConfig]:
        read = pages(self.table.scan, FilterExpression=Attr("item").eq("config"))
        configs = [
            MailboxConfig.from_item(_plain(i["config"])) for page in read for i in page.get("Items", [])
        ]
        configs.sort(key=lambda c: c.address)
        return [c for c in configs if c.enabled] if enabled_only else configs

    def set_enabled(self, address: str, enabled: bool) -> None:
        if not _conditional_write(
            self.table.update_item,
            Key={"address": address.lower(), "item": "config"},
            UpdateExpression="SET #c.enabled = :e, updated_at = :now",
            ConditionExpression=Attr("address").exists(),
            ExpressionAttributeNames={"#c": "config"},
            ExpressionAttributeValues={":e": enabled, ":now": clock.iso()},
        ):
            raise KeyError(f"no mailbox {address}")

    def record_poll(
        self,
        address: str,
        *,
        ok: bool,
        error_kind: str | None = None,
        error: str | None = None,
        usage: dict | None = None,
        fetched: int = 0,
    ) -> None:
        """The outcome of one poll on the mailbox record (what `pecflow mailbox list` shows); `ok`
        with an `error`: the poll went through and left a problem to see (an archive copy)."""
        key = {"address": address.lower(), "item": "config"}
        now = clock.iso()
        fields: dict = {"last_poll_at": now}
        removed = ["last_error", "error_kind"]
        if ok:
            fields |= {"last_success_at": now, "consecutive_failures": 0, "last_fetched": fetched}
        if error or not ok:
            fields |= {
                "last_error": (error or "")[:1000] or "unknown error",
                "error_kind": error_kind or "error",
                "last_error_at": now,
            }
            removed = []
        if usage:
            fields["usage"] = _clean(usage)
            fields["usage_at"] = now
        names = {
            "#s": "status",
            **{f"#f{i}": name for i, name in enumerate(fields)},
            **{f"#r{i}": name for i, name in enumerate(removed)},
        }
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        sets = [f"#s.#f{i} = :v{i}" for i in range(len(fields))]
        if not ok:
            names["#n"] = "consecutive_failures"
            values |= {":zero": 0, ":one": 1}
            sets.append("#s.#n = if_not_exists(#s.#n, :zero) + :one")
        expression = "SET " + ", ".join(sets)
        if removed:
            expression += " REMOVE " + ", ".join(f"#s.#r{i}" for i in range(len(removed)))
        self.table.update_item(
            Key=key,
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def note_quarantine(self, address: str, *, uid: int, sha256: str, reason: str) -> None:
        """One more quarantined message on the mailbox's status (what `pecflow mailbox list` shows)."""
        self.table.update_item(
            Key={"address": address.lower(), "item": "config"},
            UpdateExpression="SET #s.#q = if_not_exists(#s.#q, :zero) + :one, #s.#l = :last",
            ExpressionAttributeNames={"#s": "status", "#q": "quarantined", "#l": "last_quarantined"},
            ExpressionAttributeValues={
                ":zero": 0,
                ":one": 1,
                ":last": {"uid": uid, "sha256": sha256, "reason": reason[:1000], "at": clock.iso()},
            },
        )

    def get_cursor(self, address: str, folder: str) -> Cursor:
        item = self.table.get_item(
            Key={"address": address.lower(), "item": f"cursor#{folder}"}, ConsistentRead=True
        ).get("Item")
        if not item:
            return Cursor(folder)
        item = _plain(item)
        return Cursor(
            folder,
            item.get("uidvalidity"),
            item.get("last_uid", 0),
            item.get("uidnext"),
            item.get("highestmodseq"),
            item.get("attempt_uid"),
            item.get("attempts", 0),
        )

    def save_cursor(self, address: str, cursor: Cursor) -> None:
        """Move the cursor forward (never back within one UIDVALIDITY)."""
        condition = (
            Attr("uidvalidity").not_exists()
            | Attr("uidvalidity").ne(cursor.uidvalidity)
            | Attr("last_uid").lte(cursor.last_uid)
        )
        item = _clean(
            {
                "address": address.lower(),
                "item": f"cursor#{cursor.folder}",
                "folder": cursor.folder,
                "uidvalidity": cursor.uidvalidity,
                "last_uid": cursor.last_uid,
                "uidnext": cursor.uidnext,
                "highestmodseq": cursor.highestmodseq,
                "attempt_uid": cursor.attempt_uid,
                "attempts": cursor.attempts or None,
                "updated_at": clock.iso(),
            }
        )
        if not _conditional_write(self.table.put_item, Item=item, ConditionExpression=condition):
            raise Conflict(f"cursor of {address}/{cursor.folder} is already past UID {cursor.last_uid}")

"""PeopleTable: one account per person ("person" item) and their role on each mailbox
("role#<mailbox>" items, with `mailbox` for the index ByMailbox). A person and all their roles
are one Query."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from pecflow.adapters.dynamodb._common import _clean, _plain, _resource, _try_write, pages
from pecflow.domain.access import Person, Role

PERSON = "person"
ROLE_PREFIX = "role#"
DIRECTORY = "#people"  # the person items' `mailbox`: everyone is one Query of ByMailbox


def _person(items: list[dict[str, Any]]) -> Person | None:
    head = next((i for i in items if i["item"] == PERSON), None)
    if head is None:
        return None
    roles = {str(i["mailbox"]): Role(str(i["role"])) for i in items if str(i["item"]).startswith(ROLE_PREFIX)}
    return Person(
        username=str(head["username"]),
        email=str(head.get("email") or ""),
        name=str(head.get("name") or ""),
        enabled=bool(head.get("enabled", True)),
        roles=roles,
    )


class PeopleStore:
    def __init__(self, table_name: str, dynamodb=None):
        self.table = _resource(dynamodb).Table(table_name)

    def add(self, person: Person, *, created_at: str) -> bool:
        """A new person; False (nothing written) when the username is taken."""
        item = _clean(
            {
                "username": person.username,
                "item": PERSON,
                "email": person.email,
                "name": person.name,
                "enabled": person.enabled,
                "created_at": created_at,
                "mailbox": DIRECTORY,
            }
        )
        return (
            _try_write(self.table.put_item, Item=item, ConditionExpression=Attr("username").not_exists())
            is None
        )

    def person(self, username: str) -> Person | None:
        read = pages(
            self.table.query, KeyConditionExpression=Key("username").eq(username), ConsistentRead=True
        )
        return _person([_plain(i) for page in read for i in page.get("Items", [])])

    def set_enabled(self, username: str, enabled: bool) -> bool:
        """False when there is no such person."""
        refused = _try_write(
            self.table.update_item,
            Key={"username": username, "item": PERSON},
            UpdateExpression="SET enabled = :e",
            ConditionExpression=Attr("username").exists(),
            ExpressionAttributeValues={":e": enabled},
        )
        return refused is None

    def set_role(self, username: str, mailbox: str, role: Role | None) -> None:
        key = {"username": username, "item": ROLE_PREFIX + mailbox.lower()}
        if role is None:
            self.table.delete_item(Key=key)
        else:
            self.table.put_item(Item={**key, "mailbox": mailbox.lower(), "role": role.value})

    def on_mailbox(self, mailbox: str) -> list[tuple[str, Role]]:
        """(username, role) of everyone with a role on the mailbox."""
        read = pages(
            self.table.query, IndexName="ByMailbox", KeyConditionExpression=Key("mailbox").eq(mailbox.lower())
        )
        return sorted(
            (str(i["username"]), Role(str(i["role"])))
            for page in read
            for i in page.get("Items", [])
            if str(i["item"]).startswith(ROLE_PREFIX)
        )

    def everyone(self) -> list[Person]:
        """Every person, by username."""
        read = pages(
            self.table.query, IndexName="ByMailbox", KeyConditionExpression=Key("mailbox").eq(DIRECTORY)
        )
        names = [str(i["username"]) for page in read for i in page.get("Items", [])]
        people = [self.person(name) for name in sorted(names)]
        return [p for p in people if p is not None]

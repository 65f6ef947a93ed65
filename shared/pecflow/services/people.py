"""People and their roles: one account per person (no shared logins), a role per mailbox. Who
may change whom is pecflow.domain.access's rule; every change is audited (an account's in the
`#people` log, a role's in its mailbox's). The sign-in account (Cognito: password, TOTP) is made
and disabled with the person, through the `Directory` port.

The installation's operator (the CLI, with the stack's AWS credentials) may change anyone; a
person acting through the API only within the mailboxes they administer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from pecflow.domain import clock
from pecflow.domain.access import Action, Forbidden, Person, Role, may_change_person, may_grant
from pecflow.domain.audit import AuditAction
from pecflow.domain.mailbox import is_address
from pecflow.services.audit import AuditLog

PEOPLE_LOG = "#people"  # the audit chain of account changes
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")


class PeopleError(ValueError):
    """A change that cannot be made as asked (a clear sentence for the person)."""


class PeopleForbidden(PeopleError):
    """A change the acting person's roles do not allow."""


class NoSuchPerson(PeopleError):
    """No person by that username (the API answers 404)."""


class PeopleStore(Protocol):
    def add(self, person: Person, *, created_at: str) -> bool: ...
    def person(self, username: str) -> Person | None: ...
    def set_enabled(self, username: str, enabled: bool) -> bool: ...
    def set_role(self, username: str, mailbox: str, role: Role | None) -> None: ...
    def on_mailbox(self, mailbox: str) -> list[tuple[str, Role]]: ...
    def everyone(self) -> list[Person]: ...


class Directory(Protocol):
    """The sign-in accounts."""

    def create(self, username: str, email: str, name: str) -> None: ...
    def set_enabled(self, username: str, enabled: bool) -> None: ...


Actor = Person | str  # a person (API), or the installation's operator by name (CLI)


class PeopleAdmin:
    def __init__(
        self,
        store: PeopleStore,
        audit: AuditLog,
        directory: Directory | None = None,
        *,
        now: Callable[[], datetime] = clock.now,
    ):
        self.store, self.audit, self.directory, self.now = store, audit, directory, now

    @staticmethod
    def _name(actor: Actor) -> str:
        return actor.username if isinstance(actor, Person) else actor

    def add(self, actor: Actor, username: str, email: str, name: str = "") -> Person:
        username = username.strip().lower()
        if not USERNAME.match(username):
            raise PeopleError(
                f"{username!r} cannot be a username: 2 to 63 lower-case letters, digits, '.', '_' or '-'"
            )
        address = email.strip().lower()
        if not is_address(address):
            raise PeopleError(f"{email!r} is not an e-mail address")
        if isinstance(actor, Person) and not may_change_person(actor, None):
            raise PeopleForbidden("only an admin of a mailbox can add people")
        person = Person(username, address, name.strip())
        if not self.store.add(person, created_at=clock.iso(self.now())):
            raise PeopleError(f"there is already a person called {username}")
        if self.directory is not None:
            self.directory.create(username, address, person.name)
        self.audit.record(
            PEOPLE_LOG, actor=self._name(actor), action=AuditAction.PERSON_CHANGE, message=username,
            details={"change": "added", "email": address, "name": person.name},
        )  # fmt: skip
        return person

    def set_enabled(self, actor: Actor, username: str, enabled: bool) -> Person:
        target = self._existing(username)
        if isinstance(actor, Person):
            if actor.username == target.username and not enabled:
                raise PeopleError("you cannot disable your own account")
            if not may_change_person(actor, target):
                raise PeopleForbidden(
                    f"you can change only people whose every mailbox you administer: not {username}"
                )
        self.store.set_enabled(target.username, enabled)
        if self.directory is not None:
            self.directory.set_enabled(target.username, enabled)
        self.audit.record(
            PEOPLE_LOG, actor=self._name(actor), action=AuditAction.PERSON_CHANGE, message=target.username,
            details={"change": "enabled" if enabled else "disabled"},
        )  # fmt: skip
        return self._existing(username)

    def set_role(self, actor: Actor, username: str, mailbox: str, role: Role | None) -> Person:
        """Grant or change (`role`) or revoke (None) a person's role on a mailbox."""
        target = self._existing(username)
        mailbox = mailbox.strip().lower()
        if isinstance(actor, Person) and not may_grant(actor, mailbox, role):
            raise Forbidden(mailbox, actor.role_on(mailbox) or Role.VIEWER, Action.MANAGE_PEOPLE)
        before = target.roles.get(mailbox)
        if before == role:
            return target
        self.store.set_role(target.username, mailbox, role)
        self.audit.record(
            mailbox, actor=self._name(actor), action=AuditAction.ROLE_CHANGE, message=target.username,
            details={"from": before.value if before else "none", "to": role.value if role else "none"},
        )  # fmt: skip
        return self._existing(username)

    def people(self, mailbox: str | None = None) -> list[Person]:
        if mailbox is None:
            return self.store.everyone()
        names = [name for name, _ in self.store.on_mailbox(mailbox)]
        found = [self.store.person(name) for name in names]
        return [p for p in found if p is not None]

    def _existing(self, username: str) -> Person:
        person = self.store.person(username.strip().lower())
        if person is None:
            raise NoSuchPerson(f"there is no person called {username}")
        return person

"""Who may do what on a mailbox: one role per person per mailbox, each role allowing what the
one below allows and more (viewer < operator < manager < admin). Checked on the server on every
route; a person without a role on a mailbox is never told it exists (the API answers 404, not
403). Pure domain code: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Role(StrEnum):
    VIEWER = "viewer"  # list, read, download
    OPERATOR = "operator"  # + take in charge, release, mark handled, reply, forward
    MANAGER = "manager"  # + assign to others, campaigns from the mailbox
    ADMIN = "admin"  # + delete and restore, people and roles, rules


class _Rank(IntEnum):
    viewer = 1
    operator = 2
    manager = 3
    admin = 4


def rank(role: Role) -> int:
    return int(_Rank[role.value])


class Action(StrEnum):
    LIST = "list"
    READ = "read"
    DOWNLOAD = "download"
    TAKE_IN_CHARGE = "take-in-charge"
    RELEASE = "release"
    MARK_HANDLED = "mark-handled"
    REOPEN = "reopen"
    REPLY = "reply"
    FORWARD = "forward"
    ASSIGN = "assign"  # to another person, or over another person's hold
    CAMPAIGN = "campaign"  # create, start, pause, resume, cancel, resend campaigns from the mailbox
    DELETE = "delete"
    RESTORE = "restore"
    MANAGE_PEOPLE = "manage-people"  # grant and revoke roles on the mailbox, add and disable people
    MANAGE_RULES = "manage-rules"
    MANAGE_MAILBOX = "manage-mailbox"  # its settings and health


MINIMUM_ROLE: Mapping[Action, Role] = {
    Action.LIST: Role.VIEWER,
    Action.READ: Role.VIEWER,
    Action.DOWNLOAD: Role.VIEWER,
    Action.TAKE_IN_CHARGE: Role.OPERATOR,
    Action.RELEASE: Role.OPERATOR,
    Action.MARK_HANDLED: Role.OPERATOR,
    Action.REOPEN: Role.OPERATOR,
    Action.REPLY: Role.OPERATOR,
    Action.FORWARD: Role.OPERATOR,
    Action.ASSIGN: Role.MANAGER,
    Action.CAMPAIGN: Role.MANAGER,
    Action.DELETE: Role.ADMIN,
    Action.RESTORE: Role.ADMIN,
    Action.MANAGE_PEOPLE: Role.ADMIN,
    Action.MANAGE_RULES: Role.ADMIN,
    Action.MANAGE_MAILBOX: Role.ADMIN,
}


def allows(role: Role, action: Action) -> bool:
    return rank(role) >= rank(MINIMUM_ROLE[action])


class AccessError(Exception):
    """A request the person's roles do not allow."""


class NotVisible(AccessError):
    """The person has no role on the mailbox (or the thing does not exist): said as 'not found',
    so nobody learns that a mailbox they cannot see exists."""


class Forbidden(AccessError):
    """The person sees the mailbox but their role does not allow the action."""

    def __init__(self, mailbox: str, role: Role, action: Action):
        needed = MINIMUM_ROLE[action]
        super().__init__(
            f"your role on {mailbox} is {role.value}: {action.value} needs {needed.value} or above"
        )
        self.mailbox, self.role, self.action, self.needed = mailbox, role, action, needed


class DisabledPerson(AccessError):
    """The account is disabled: every request is refused, whatever its token says."""


@dataclass(frozen=True, slots=True)
class Person:
    """One account per person (no shared logins), with their role on each mailbox they may see.
    Mailbox addresses are kept lower-case."""

    username: str
    email: str
    name: str = ""
    enabled: bool = True
    roles: Mapping[str, Role] = field(default_factory=dict)

    def role_on(self, mailbox: str) -> Role | None:
        return self.roles.get(mailbox.lower()) if self.enabled else None

    def mailboxes(self) -> list[str]:
        return sorted(self.roles) if self.enabled else []

    def require(self, mailbox: str, action: Action) -> Role:
        """The person's role on the mailbox if it allows the action; else NotVisible (no role)
        or Forbidden (a role below the one needed)."""
        if not self.enabled:
            raise DisabledPerson(f"the account {self.username} is disabled")
        role = self.role_on(mailbox)
        if role is None:
            raise NotVisible(f"mailbox {mailbox} not found")
        if not allows(role, action):
            raise Forbidden(mailbox, role, action)
        return role


def may_change_person(actor: Person, target: Person | None) -> bool:
    """Adding a person needs admin on at least one mailbox; changing or disabling someone needs
    admin on every mailbox they hold a role on (no admin can reach past their own mailboxes)."""
    admin_of = {m for m, r in actor.roles.items() if r is Role.ADMIN} if actor.enabled else set()
    if not admin_of:
        return False
    return target is None or set(target.roles) <= admin_of


def may_grant(actor: Person, mailbox: str, role: Role | None) -> bool:
    """Granting, changing or revoking (role None) a role on a mailbox needs admin on it."""
    return actor.role_on(mailbox) is Role.ADMIN


def people_on(mailbox: str, people: Iterable[Person], action: Action) -> list[Person]:
    """The enabled people whose role on the mailbox allows the action (e.g. who may be assigned)."""
    out = []
    for person in people:
        role = person.role_on(mailbox)
        if role is not None and allows(role, action):
            out.append(person)
    return out

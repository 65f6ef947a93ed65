"""Presa in carico: who is handling a received message. Opening a message changes nothing here
(it is only a view in the audit log); a message is `da gestire` until a person takes it in charge
or a manager assigns it, then `in carico` to that one person, then `gestito` with an optional note.
Release and reopen bring it back to `da gestire`.

Named `handling` in code: `CLAIM` is the sender's job lock and `presa-in-carico` a receipt kind.

Each act is decided here from the message's current handling and gives the next one, with the
version it was decided on: the store writes it only if the version is still that one (one
conditional write), so of two people acting at once exactly one wins and the other is told who
holds the message and since when. Pure domain code: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from pecflow.domain.access import Role, rank

MAX_NOTE_CHARS = 2000


class Status(StrEnum):
    OPEN = "da-gestire"
    IN_CHARGE = "in-carico"
    HANDLED = "gestito"


class Act(StrEnum):
    TAKE = "take-in-charge"
    RELEASE = "release"
    ASSIGN = "assign"
    MARK_HANDLED = "mark-handled"
    REOPEN = "reopen"


@dataclass(frozen=True, slots=True)
class Handling:
    """A message's handling. `holder` is who has it in charge (or handled it), `since` when that
    began; `version` counts the writes (the condition of the next one)."""

    status: Status = Status.OPEN
    holder: str | None = None
    since: datetime | None = None
    by: str | None = None  # who made the last change (the assigner, for an assignment)
    note: str | None = None
    version: int = 0

    def held_by(self, person: str) -> bool:
        return self.status is Status.IN_CHARGE and self.holder == person


class HandlingConflict(Exception):
    """The act does not fit the message's handling now (the API answers 409 with this text and
    `code`: held-by-other, already-handled, not-in-charge)."""

    def __init__(self, code: str, message: str, current: Handling):
        super().__init__(message)
        self.code, self.current = code, current


class NotAllowed(Exception):
    """The person's role does not allow this act on someone else's message (403)."""


def _since(handling: Handling) -> str:
    return handling.since.strftime("%d/%m/%Y %H:%M") if handling.since else "?"


def _held_by_other(handling: Handling) -> HandlingConflict:
    return HandlingConflict(
        "held-by-other", f"already in the charge of {handling.holder} since {_since(handling)}", handling
    )


def _handled(handling: Handling, hint: str = "") -> HandlingConflict:
    return HandlingConflict(
        "already-handled", f"already handled by {handling.holder} on {_since(handling)}{hint}", handling
    )


def decide(
    current: Handling,
    act: Act,
    *,
    actor: str,
    role: Role,
    now: datetime,
    to: str | None = None,
    note: str | None = None,
) -> Handling:
    """The handling after `actor` (with `role` on the mailbox) does `act`; the same handling when
    the act is already done (taking what you hold, releasing what is open): repeating an act is
    harmless. Raises HandlingConflict or NotAllowed."""
    manager = rank(role) >= rank(Role.MANAGER)
    if note is not None:
        note = note.strip()[:MAX_NOTE_CHARS] or None

    def to_state(status: Status, holder: str | None, note: str | None = None) -> Handling:
        since = now if holder is not None else None
        return replace(
            current,
            status=status,
            holder=holder,
            since=since,
            by=actor,
            note=note,
            version=current.version + 1,
        )

    if act is Act.TAKE:
        if current.held_by(actor):
            return current
        if current.status is Status.IN_CHARGE:
            raise _held_by_other(current)
        if current.status is Status.HANDLED:
            raise _handled(current, ": reopen it first")
        return to_state(Status.IN_CHARGE, actor)

    if act is Act.ASSIGN:
        if not manager:
            raise NotAllowed("only a manager or an admin of the mailbox can assign messages")
        if not to:
            raise ValueError("assign to whom? name the person")
        if current.held_by(to):
            return current
        if current.status is Status.HANDLED:
            raise _handled(current, ": reopen it first")
        return to_state(Status.IN_CHARGE, to)

    if act is Act.RELEASE:
        if current.status is Status.OPEN:
            return current
        if current.status is Status.HANDLED:
            raise _handled(current, ": reopen it instead")
        if current.holder != actor and not manager:
            raise _held_by_other(current)
        return to_state(Status.OPEN, None)

    if act is Act.MARK_HANDLED:
        if current.status is Status.HANDLED:
            raise _handled(current)
        if current.status is Status.IN_CHARGE and current.holder != actor and not manager:
            raise _held_by_other(current)
        # an open message marked handled is taken in charge and handled in one act
        holder = current.holder if current.status is Status.IN_CHARGE else actor
        return to_state(Status.HANDLED, holder, note=note)

    if act is Act.REOPEN:
        if current.status is not Status.HANDLED:
            return current
        return to_state(Status.OPEN, None, note=note)

    raise ValueError(f"unknown act {act!r}")


def require_in_own_charge(current: Handling, actor: str, what: str) -> None:
    """A reply or a forward needs the message in the actor's own charge, so two people never
    answer the same message in parallel."""
    if current.held_by(actor):
        return
    if current.status is Status.IN_CHARGE:
        raise _held_by_other(current)
    raise HandlingConflict("not-in-charge", f"take the message in charge before you {what} it", current)

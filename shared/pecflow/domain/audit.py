"""The audit log: every act of a person on a mailbox (a view, a download, a presa in carico, a
reply, a delete, a role change, …) is an append-only event, numbered per mailbox and chained by
hash: each event carries the hash of the one before it, and its own hash covers all its fields.
An event altered, removed or moved breaks the chain at that point, and `verify` names the first
broken link. The mailbox's head (last number and hash, written in the same transaction as each
event) shows events cut from the end.

A chain whose every hash an intruder recomputed is only caught with a key (`key`: the hashes are
then HMAC-SHA256, and nobody without the key can forge them) or against an exported head.
Pure domain code: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

GENESIS = "0" * 64  # the link of a mailbox's first event
MAX_DETAIL_CHARS = 1000


class AuditAction(StrEnum):
    VIEW = "view"
    DOWNLOAD = "download"
    TAKE_IN_CHARGE = "take-in-charge"
    RELEASE = "release"
    ASSIGN = "assign"
    MARK_HANDLED = "mark-handled"
    REOPEN = "reopen"
    REPLY = "reply"
    FORWARD = "forward"
    DELETE = "delete"
    RESTORE = "restore"
    ROLE_CHANGE = "role-change"
    PERSON_CHANGE = "person-change"
    CAMPAIGN = "campaign"
    RULES_CHANGE = "rules-change"
    RULE = "rule"  # an automatic rule acted on a message (actor "regole automatiche")
    TAG = "tag"
    EXPORT = "export"
    EVIDENCE = "evidence"  # an evidence pack of the message built and downloaded
    CONSERVATION = "conservation-export"  # a period of the mailbox exported for conservation (pdv)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    mailbox: str
    seq: int  # 1, 2, 3, … per mailbox
    at: str  # ISO 8601, UTC, microseconds
    actor: str  # the person's username ("system" for pecflow's own acts)
    action: str
    message: str | None = None  # the message (or campaign) the act concerns
    source_ip: str | None = None
    client: str | None = None  # the browser's user agent, "pecflow-cli", …
    details: Mapping[str, str] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def content(self) -> dict[str, object]:
        """What the hash covers: every field but the hash itself."""
        fields = asdict(self)
        del fields["hash"]
        fields["details"] = dict(sorted(self.details.items()))
        return fields


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last event of a mailbox's chain (seq 0 and GENESIS: no event yet)."""

    mailbox: str
    seq: int = 0
    hash: str = GENESIS


def event_hash(event: AuditEvent, key: bytes | None = None) -> str:
    data = json.dumps(event.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if key is not None:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def next_event(
    head: ChainHead,
    *,
    actor: str,
    action: AuditAction | str,
    at: datetime,
    message: str | None = None,
    source_ip: str | None = None,
    client: str | None = None,
    details: Mapping[str, object] | None = None,
    key: bytes | None = None,
) -> AuditEvent:
    """The event that follows `head`; the store appends it only if the head is still `head`
    (a conditional write: two acts at once cannot take the same number)."""
    if at.tzinfo is None:
        raise ValueError("audit times must carry their time zone")
    event = AuditEvent(
        mailbox=head.mailbox,
        seq=head.seq + 1,
        at=at.astimezone(UTC).isoformat(timespec="microseconds"),
        actor=actor,
        action=str(action),
        message=message,
        source_ip=source_ip,
        client=(client or "")[:300] or None,
        details={k: str(v)[:MAX_DETAIL_CHARS] for k, v in (details or {}).items() if v is not None},
        prev_hash=head.hash,
    )
    return _sealed(event, key)


def _sealed(event: AuditEvent, key: bytes | None) -> AuditEvent:
    return replace(event, hash=event_hash(event, key))


def head_after(event: AuditEvent) -> ChainHead:
    return ChainHead(event.mailbox, event.seq, event.hash)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check: `broken_at` is the number of the first event that does not hold
    (None when the chain is whole), `reason` says what is wrong there."""

    mailbox: str
    checked: int
    broken_at: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(
    mailbox: str,
    events: Iterable[AuditEvent],
    head: ChainHead | None = None,
    key: bytes | None = None,
) -> Verdict:
    """Check a mailbox's chain, events in the order the store keeps them (by number): numbers
    1, 2, 3 … without gaps, each event's hash its own content's, each linked to the one before;
    with `head`, that nothing was cut from the end."""
    expected, prev, checked = 1, GENESIS, 0
    for event in events:
        if event.mailbox != mailbox:
            return Verdict(
                mailbox, checked, event.seq, f"event {event.seq} belongs to mailbox {event.mailbox}"
            )
        if event.seq > expected:
            missing = (
                f"event {expected}" if event.seq == expected + 1 else f"events {expected}–{event.seq - 1}"
            )
            return Verdict(
                mailbox, checked, expected, f"{missing} removed (the next event kept is {event.seq})"
            )
        if event.seq < expected:
            return Verdict(mailbox, checked, event.seq, f"event {event.seq} repeated or out of order")
        if not hmac.compare_digest(event.hash, event_hash(event, key)):
            return Verdict(mailbox, checked, event.seq, f"event {event.seq} was changed after it was written")
        if event.prev_hash != prev:
            return Verdict(
                mailbox,
                checked,
                event.seq,
                f"event {event.seq} does not follow event {event.seq - 1}: "
                f"an event before it was changed, removed or moved",
            )
        checked += 1
        expected, prev = event.seq + 1, event.hash
    if head is not None and (head.seq, head.hash) != (expected - 1, prev):
        if head.seq >= expected:
            return Verdict(
                mailbox,
                checked,
                expected,
                f"the log ends at event {expected - 1} but {head.seq} were written: the last ones were removed",
            )
        return Verdict(mailbox, checked, head.seq, f"the mailbox's head does not match event {head.seq}")
    return Verdict(mailbox, checked)

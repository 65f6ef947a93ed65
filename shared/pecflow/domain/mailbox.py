"""A PEC mailbox as pecflow knows it: its configuration, its polling cursor, its policy against
saturation, and the pure decisions taken on them. No I/O here."""

from __future__ import annotations

import re
import struct
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

_ADDRESS = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def is_address(text: str) -> bool:
    """A plain e-mail address (local@domain.tld), as mailboxes and people have."""
    return bool(_ADDRESS.match(text))


class ConfigError(ValueError):
    """A mailbox configuration that cannot work, with the reason."""


class Saturation(StrEnum):
    NEVER = "never"  # leave every message on the provider
    AFTER_DAYS = "after-days"  # move/expunge what is archived and older than N days
    ABOVE_QUOTA = "above-quota"  # ... oldest first while IMAP QUOTA usage is above X%


@dataclass(frozen=True, slots=True)
class SaturationPolicy:
    mode: Saturation = Saturation.NEVER
    days: int = 90
    percent: float = 80.0
    archive_folder: str | None = "Archivio-pecflow"  # moved there on the provider...
    expunge: bool = False  # ...or, when True, removed from the provider
    alarm_percent: float = 90.0  # usage above this raises the alarm metric

    def validate(self) -> None:
        if self.mode == Saturation.AFTER_DAYS and self.days < 1:
            raise ConfigError("saturation after-days needs days >= 1")
        if not 0 < self.percent <= 100 or not 0 < self.alarm_percent <= 100:
            raise ConfigError("saturation percentages must be in (0, 100]")
        if self.mode != Saturation.NEVER and not self.archive_folder and not self.expunge:
            raise ConfigError("a saturation policy must move to an archive folder or expunge")
        if self.mode == Saturation.ABOVE_QUOTA and not self.expunge:
            raise ConfigError(
                "above-quota needs expunge: moving to another folder of the same mailbox frees no quota"
            )


@dataclass(frozen=True, slots=True)
class MailboxConfig:
    """One PEC mailbox. Its password lives in Secrets Manager under `secret_id`, never here."""

    address: str
    imap_host: str
    imap_port: int = 993
    smtp_host: str | None = None
    smtp_port: int = 465
    folders: tuple[str, ...] = ("INBOX",)
    quota_preset: str = "aruba"
    saturation: SaturationPolicy = field(default_factory=SaturationPolicy)
    enabled: bool = True
    username: str | None = None  # IMAP/SMTP login when it is not the address itself
    secret_id: str | None = None
    tls_verify: bool = True  # False only for test servers with private certificates
    ca_bundle: str | None = None  # PEM of a private CA to trust (local stack)

    @property
    def login(self) -> str:
        return self.username or self.address

    def validate(self) -> MailboxConfig:
        if not _ADDRESS.match(self.address):
            raise ConfigError(f"not a mailbox address: {self.address!r}")
        if not self.imap_host:
            raise ConfigError("imap_host is required")
        for name, port in (("imap_port", self.imap_port), ("smtp_port", self.smtp_port)):
            if not 0 < int(port) < 65536:
                raise ConfigError(f"{name} {port} is not a TCP port")
        if not self.folders or any(not f.strip() for f in self.folders):
            raise ConfigError("at least one folder to watch is required")
        self.saturation.validate()
        from pecflow.domain.quota import policy_from_spec

        try:
            policy_from_spec(self.quota_preset)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return self

    def to_item(self) -> dict[str, Any]:
        item = asdict(self)
        item["folders"] = list(self.folders)
        item["saturation"] = {
            **asdict(self.saturation),
            "mode": str(self.saturation.mode),
            "percent": str(self.saturation.percent),
            "alarm_percent": str(self.saturation.alarm_percent),
        }
        return {k: v for k, v in item.items() if v is not None}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> MailboxConfig:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in item.items() if k in known}
        sat = dict(values.pop("saturation", {}) or {})
        for key in ("days",):
            if key in sat:
                sat[key] = int(sat[key])
        for key in ("percent", "alarm_percent"):
            if key in sat:
                sat[key] = float(sat[key])
        if "mode" in sat:
            sat["mode"] = Saturation(sat["mode"])
        for key in ("imap_port", "smtp_port"):
            if key in values:
                values[key] = int(values[key])
        values["folders"] = tuple(values.get("folders") or ("INBOX",))
        return cls(saturation=SaturationPolicy(**sat), **values)


def secret_name(stack: str, address: str) -> str:
    """Where a mailbox's password is kept in Secrets Manager."""
    return f"{stack}/mailbox/{address.lower()}"


# --- the polling cursor ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Cursor:
    """How far a folder has been read: messages up to `last_uid` are durably recorded.
    `attempt_uid` is the message being processed and `attempts` how many polls have started it:
    one that stopped polls before (time-out, out of memory) is found here by the next poll."""

    folder: str
    uidvalidity: int | None = None
    last_uid: int = 0
    uidnext: int | None = None
    highestmodseq: int | None = None
    attempt_uid: int | None = None
    attempts: int = 0

    def started(self, uid: int) -> Cursor:
        """The cursor noting that `uid` is being processed (once more, if it was already)."""
        return replace(self, attempt_uid=uid, attempts=self.attempts + 1 if self.attempt_uid == uid else 1)

    def done(self, uid: int, next_uid: int | None = None) -> Cursor:
        """`uid` recorded; `next_uid`, already at hand, starts now (saved with it: one write)."""
        return replace(self, last_uid=uid, attempt_uid=next_uid, attempts=1 if next_uid is not None else 0)


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What SELECT (or STATUS) says about a folder."""

    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None = None


class PollAction(StrEnum):
    NOTHING_NEW = "nothing-new"
    FETCH_NEW = "fetch-new"
    RESYNC = "resync"  # UIDVALIDITY changed: every UID is new; records dedupe by sha256


@dataclass(frozen=True, slots=True)
class PollPlan:
    action: PollAction
    from_uid: int  # fetch UIDs >= from_uid
    cursor: Cursor  # the cursor to continue from (reset on RESYNC)


def plan_poll(cursor: Cursor, status: FolderStatus) -> PollPlan:
    """Decide from one SELECT whether anything needs fetching: the constant-cost path."""
    if cursor.uidvalidity is not None and cursor.uidvalidity != status.uidvalidity:
        reset = Cursor(cursor.folder, status.uidvalidity, 0, None, None)
        return PollPlan(PollAction.RESYNC, 1, reset)
    current = cursor if cursor.uidvalidity is not None else replace(cursor, uidvalidity=status.uidvalidity)
    # UIDNEXT unchanged since the last complete poll: nothing arrived (whatever was deleted)
    if status.exists == 0 or status.uidnext <= current.last_uid + 1 or status.uidnext == current.uidnext:
        return PollPlan(PollAction.NOTHING_NEW, current.last_uid + 1, current)
    return PollPlan(PollAction.FETCH_NEW, current.last_uid + 1, current)


def chunks(uids_and_sizes: list[tuple[int, int]], *, max_messages: int, max_bytes: int) -> list[list[int]]:
    """UIDs in fetch batches bounded by count and total size (one huge message alone)."""
    out: list[list[int]] = []
    batch: list[int] = []
    size = 0
    for uid, length in sorted(uids_and_sizes):
        if batch and (len(batch) >= max_messages or size + length > max_bytes):
            out.append(batch)
            batch, size = [], 0
        batch.append(uid)
        size += length
    if batch:
        out.append(batch)
    return out


# --- saturation -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Usage:
    used_kb: int
    limit_kb: int | None

    @property
    def percent(self) -> float | None:
        return None if not self.limit_kb else 100.0 * self.used_kb / self.limit_kb


@dataclass(frozen=True, slots=True)
class OnProvider:
    """A message still on the provider, and what we know of its archived copy."""

    uid: int
    size: int
    received_at: datetime
    archived: bool  # recorded with an S3 key
    sha256: str | None = None


def saturation_candidates(
    policy: SaturationPolicy, usage: Usage | None, messages: list[OnProvider], now: datetime
) -> list[OnProvider]:
    """Archived messages the policy wants off the provider, oldest first. Each must still
    have its S3 copy verified before anything is moved or expunged."""
    archived = sorted((m for m in messages if m.archived), key=lambda m: (m.received_at, m.uid))
    if policy.mode == Saturation.AFTER_DAYS:
        limit = now - timedelta(days=policy.days)
        return [m for m in archived if m.received_at < limit]
    if policy.mode == Saturation.ABOVE_QUOTA and usage is not None and usage.percent is not None:
        assert usage.limit_kb is not None  # a percent is known
        excess_kb = usage.used_kb - usage.limit_kb * policy.percent / 100.0
        picked, freed = [], 0.0
        for m in archived:
            if freed >= excess_kb:
                break
            picked.append(m)
            freed += m.size / 1024.0
        return picked
    return []


# --- the UID map: which archived message each UID still on the provider is ----------------------------
# What the saturation guard reads (MessageStore.at_location), written once per fetched batch
# beside the records (not an index on each record: a GSI write per message). An item holds a
# batch's entries, at most UID_MAP_ENTRIES, packed: the UID in 4 bytes and the SHA-256 in 32
# (25 of them and the keys fit in a write unit). Its key names the folder, its UIDVALIDITY and the first UID, so a
# batch written again (a crash before the cursor passed it) overwrites its own; a UID in two
# items (a batch read again one message at a time) names the same message in both.
UID_MAP_PARTITION = "#uids"  # after the address: no mailbox's partition (an address ends with its domain)
UID_MAP_ENTRIES = 25
_UID_ENTRY = struct.Struct(">I32s")


def uid_map_partition(address: str) -> str:
    return f"{address.lower()}{UID_MAP_PARTITION}"


def uid_map_key(folder: str, uidvalidity: int, first_uid: int) -> str:
    """An item's sort key: UIDs zero-padded, so the items of a folder sort by their first UID."""
    return f"{folder}#{uidvalidity}#{first_uid:010d}"


def uid_map_place(key: str) -> tuple[str, int, int]:
    """Folder, UIDVALIDITY and first UID of an item's sort key (read from the right: a folder
    may hold a "#")."""
    folder, uidvalidity, first = key.rsplit("#", 2)
    return folder, int(uidvalidity), int(first)


def uid_map_items(folder: str, uidvalidity: int, shas: Mapping[int, str]) -> list[tuple[str, bytes]]:
    """A batch's entries (UID -> SHA-256 hex) as the items that hold them: (sort key, packed)."""
    uids = sorted(shas)
    return [
        (uid_map_key(folder, uidvalidity, part[0]), uid_map_pack({uid: shas[uid] for uid in part}))
        for part in (uids[i : i + UID_MAP_ENTRIES] for i in range(0, len(uids), UID_MAP_ENTRIES))
    ]


def uid_map_pack(shas: Mapping[int, str]) -> bytes:
    """Entries packed, in UID order."""
    return b"".join(_UID_ENTRY.pack(uid, bytes.fromhex(shas[uid])) for uid in sorted(shas))


def uid_map_entries(packed: bytes) -> dict[int, str]:
    """An item's entries: UID -> SHA-256 hex."""
    return {uid: sha.hex() for uid, sha in _UID_ENTRY.iter_unpack(packed)}


def uid_map_without(packed: bytes, gone: Collection[int] | None) -> bytes | None:
    """An item's entries without the UIDs `gone` (None: all of them), packed again: b"" when
    none is left, None when the item held none of them (nothing to write)."""
    entries = uid_map_entries(packed)
    left = {} if gone is None else {uid: sha for uid, sha in entries.items() if uid not in gone}
    return None if len(left) == len(entries) else uid_map_pack(left)


def uid_map_removal(uids: Iterable[int] | None) -> tuple[set[int] | None, int | None] | None:
    """What `unmap_uids` takes out of the map and the highest UID it reads up to (None: every
    UID of the folder's UIDVALIDITY); None when nothing is to be taken out."""
    gone = None if uids is None else set(uids)
    if gone == set():
        return None
    return gone, None if gone is None else max(gone)

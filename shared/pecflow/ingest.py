"""Mailbox ingestion: poll a mailbox, archive, classify, record, reconcile, advance the cursor.

Per message, in this order (a crash anywhere loses nothing and duplicates nothing):
  1. store the raw bytes in S3 (key by sha256, checksum verified by S3),
  2. classify,
  3. write the message record (conditional: a message already recorded is not recorded again),
  4. reconcile receipts with what we sent (conditional moves: replays are no-ops),
  5. advance the cursor past its UID.
The cursor moves only after the record is durable, so a crash re-fetches from the last
recorded UID. Work is bounded per invocation: fetches in chunks, and a deadline after which
the poll stops cleanly and says there is more to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from pecflow import clock, kinds
from pecflow.archive import Archive, sha256_hex
from pecflow.mailbox import (Cursor, MailboxConfig, OnProvider, PollAction, Saturation, chunks, plan_poll,
                             saturation_candidates)
from pecflow.mail import ImapSession
from pecflow.message import PecMessage, classify
from pecflow.reconcile import OutgoingPort, find_thread, reconcile_receipt
from pecflow.store import MailboxStore, MessageStore, location

CHUNK_MESSAGES = 25
CHUNK_BYTES = 24 * 1024 * 1024


@dataclass(slots=True)
class Faults:
    """Crash points for tests: each, when set, raises at that step of one message."""

    after_archive: Callable[[int], None] | None = None
    after_record: Callable[[int], None] | None = None
    before_cursor: Callable[[int], None] | None = None

    def hit(self, name: str, uid: int) -> None:
        hook = getattr(self, name)
        if hook is not None:
            hook(uid)


@dataclass(slots=True)
class PollResult:
    mailbox: str
    fetched: int = 0
    recorded: int = 0
    already_recorded: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    receipts_matched: int = 0
    receipts_unmatched: int = 0
    replies_threaded: int = 0
    more: bool = False            # stopped by the deadline: continue in another invocation
    imap_commands: int = 0
    moved: int = 0
    expunged: int = 0
    refused: list[str] = field(default_factory=list)   # saturation candidates kept, with the reason
    usage_percent: float | None = None
    resynced: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Ingestor:
    """Everything one poll needs, wired by the handler (or by tests with fakes)."""

    archive: Archive
    messages: MessageStore
    mailboxes: MailboxStore
    outgoing: OutgoingPort
    faults: Faults = field(default_factory=Faults)
    chunk_messages: int = CHUNK_MESSAGES
    chunk_bytes: int = CHUNK_BYTES
    on_message: Callable[[str, PecMessage], None] | None = None   # metrics/logging hook

    def poll(self, config: MailboxConfig, session: ImapSession, *,
             time_left: Callable[[], float] = lambda: float("inf"), margin: float = 20.0,
             usage_due: bool = True) -> PollResult:
        """Fetch what is new in every watched folder; then, when something arrived or when
        `usage_due`, read the quota usage and apply the saturation policy."""
        result = PollResult(config.address)
        try:
            for folder in config.folders:
                if not self._poll_folder(config, session, folder, result, time_left, margin):
                    result.more = True
                    break
            if not result.more and (result.fetched or usage_due):
                if config.saturation.mode != Saturation.NEVER:
                    self.guard_saturation(config, session, result)
                else:
                    usage = session.usage(config.folders[0])
                    result.usage_percent = usage.percent if usage else None
        finally:
            result.imap_commands = session.commands
        return result

    # -- fetching -----------------------------------------------------------------------------------
    def _poll_folder(self, config: MailboxConfig, session: ImapSession, folder: str, result: PollResult,
                     time_left, margin) -> bool:
        """Fetch what is new in one folder. False when the deadline stopped it midway."""
        address = config.address
        cursor = self.mailboxes.get_cursor(address, folder)
        status = session.status(folder)
        plan = plan_poll(cursor, status)
        if plan.action == PollAction.NOTHING_NEW:
            if (cursor.uidvalidity, cursor.uidnext, cursor.highestmodseq) != \
                    (status.uidvalidity, status.uidnext, status.highestmodseq):
                self.mailboxes.save_cursor(address, replace(plan.cursor, uidnext=status.uidnext,
                                                            highestmodseq=status.highestmodseq))
            return True
        status = session.select(folder)   # something to fetch: open the folder
        cursor = plan.cursor
        if plan.action == PollAction.RESYNC:
            result.resynced.append(folder)
            self.mailboxes.save_cursor(address, cursor)
        uids = session.uids_from(plan.from_uid)
        for batch in chunks(session.sizes(uids), max_messages=self.chunk_messages, max_bytes=self.chunk_bytes):
            if time_left() < margin:
                return False
            for fetched in session.fetch(batch):
                self._ingest_one(config, folder, status.uidvalidity, fetched, result)
                cursor = replace(cursor, last_uid=fetched.uid)
                self.mailboxes.save_cursor(address, cursor)
            if time_left() < margin:
                return False
        self.mailboxes.save_cursor(address, replace(cursor, uidnext=status.uidnext,
                                                    highestmodseq=status.highestmodseq))
        return True

    def _ingest_one(self, config: MailboxConfig, folder: str, uidvalidity: int, fetched, result: PollResult) -> None:
        address = config.address
        raw = fetched.raw
        sha = sha256_hex(raw)
        archived = self.archive.store(raw, sha)
        self.faults.hit("after_archive", fetched.uid)
        msg = classify(raw)
        result.fetched += 1
        result.by_kind[msg.kind] = result.by_kind.get(msg.kind, 0) + 1
        record = build_record(address, folder, uidvalidity, fetched.uid, fetched.internaldate, raw, sha,
                              archived.key, msg)
        if self.messages.record(address, record):
            result.recorded += 1
        else:
            result.already_recorded += 1
            self.messages.relocate(address, sha, folder=folder, uid=fetched.uid, uidvalidity=uidvalidity)
        self.faults.hit("after_record", fetched.uid)
        self._reconcile(address, sha, msg, result)
        if self.on_message is not None:
            self.on_message(address, msg)
        self.faults.hit("before_cursor", fetched.uid)

    def _reconcile(self, address: str, sha: str, msg: PecMessage, result: PollResult) -> None:
        if msg.kind in kinds.RICEVUTE:
            outcome = reconcile_receipt(self.outgoing, msg, receipt_id=sha)
            if outcome.status == "matched":
                result.receipts_matched += 1
                self.messages.set_fields(address, sha, {
                    "reconciled": "matched", "outgoing_message_id": outcome.message_id,
                    "reconcile_problems": outcome.problems}, remove=["unmatched_mailbox"])
            else:
                result.receipts_unmatched += 1
                self.messages.set_fields(address, sha, {
                    "reconciled": "unmatched", "unmatched_mailbox": address.lower(),
                    "reconcile_problems": outcome.problems})
        elif msg.kind == kinds.POSTA_CERTIFICATA:
            original = find_thread(self.outgoing, msg)
            if original is not None:
                result.replies_threaded += 1
                self.messages.set_fields(address, sha, {"thread_of": original})

    # -- saturation -----------------------------------------------------------------------------------
    def guard_saturation(self, config: MailboxConfig, session: ImapSession, result: PollResult) -> None:
        """Move or expunge archived messages as the mailbox's policy asks, oldest first. A
        message leaves the provider only after its S3 copy is read back and hashes right.
        Costs a QUOTA (and for after-days a SELECT and a SEARCH BEFORE) when there is nothing to do."""
        policy = config.saturation
        folder = config.folders[0]
        usage = session.usage(folder)
        result.usage_percent = usage.percent if usage else None
        if policy.mode == Saturation.ABOVE_QUOTA:
            if usage is None or usage.percent is None or usage.percent <= policy.percent:
                return
            session.select(folder)
            uids = session.uids_from(1)
        else:
            session.select(folder)
            uids = session.uids_before(clock.now() - timedelta(days=policy.days))
        cursor: Cursor = self.mailboxes.get_cursor(config.address, folder)
        uids = [u for u in uids if u <= cursor.last_uid]  # only what is recorded
        if not uids or cursor.uidvalidity is None:
            return
        recorded = self.messages.at_location(config.address, folder, cursor.uidvalidity, uids)
        dates = session.internaldates(list(recorded))
        on_provider = [OnProvider(uid, dates[uid][1], _aware(dates[uid][0]) or _parse_iso(rec.get("received_at")),
                                  archived=bool(rec.get("s3_key")), sha256=rec.get("sha256"))
                       for uid, rec in recorded.items() if uid in dates]
        verified: list[int] = []
        for message in saturation_candidates(policy, usage, on_provider, clock.now()):
            record = recorded[message.uid]
            check = self.archive.verify(record["s3_key"], record["sha256"], deep=True)
            if check.ok:
                verified.append(message.uid)
            else:
                result.refused.append(f"UID {message.uid}: {check.reason}")
                self.messages.set_fields(config.address, record["sha256"], {"archive_problem": check.reason})
        if not verified:
            return
        if policy.expunge:
            session.expunge(folder, verified)
            result.expunged += len(verified)
        else:
            session.move(folder, verified, policy.archive_folder)
            result.moved += len(verified)
        now = clock.iso()
        for uid in verified:
            self.messages.set_fields(config.address, recorded[uid]["sha256"], {
                "on_provider": "expunged" if policy.expunge else f"moved to {policy.archive_folder}",
                "left_provider_at": now}, remove=["location"])


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.astimezone()


def _parse_iso(value: str | None) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else clock.now()


def build_record(mailbox: str, folder: str, uidvalidity: int, uid: int, internaldate: datetime | None, raw: bytes,
                 sha: str, s3_key: str, msg: PecMessage) -> dict:
    """The message record: what the inbox lists and what reconciliation and evidence need."""
    received = internaldate or clock.now()
    received_key = f"{clock.iso(received)}#{sha[:16]}"
    record = {
        "sha256": sha, "size": len(raw), "s3_key": s3_key, "folder": folder, "uid": uid,
        "uidvalidity": uidvalidity, "location": location(mailbox, folder, uidvalidity),
        "received_at": clock.iso(received), "received_key": received_key, "recorded_at": clock.iso(),
        "kind": msg.kind, "subject": msg.subject, "message_id": msg.message_id,
        "from": msg.from_address, "to": msg.to, "cc": msg.cc,
        "date": msg.date.isoformat() if msg.date else None,
        "ref_message_id": msg.ref_message_id, "original_message_id": msg.original_message_id,
        "identificativo": msg.identificativo, "provider": msg.provider, "receipt_type": msg.receipt_type,
        "sender": msg.sender, "recipients": [{"address": r.address, "type": r.type} for r in msg.recipients],
        "original_subject": msg.original_subject,
        "timestamp": msg.timestamp.isoformat() if msg.timestamp else None,
        "delivered_to": msg.delivered_to, "error": msg.error, "error_detail": msg.error_detail,
        "problems": msg.problems[:50], "on_provider": "yes",
        "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size}
                        for a in msg.attachments[:100]],
    }
    if msg.sdi is not None:
        record["sdi"] = {"type": msg.sdi.type, "identificativo_sdi": msg.sdi.identificativo_sdi,
                         "nome_file": msg.sdi.nome_file, "pec_message_id": msg.sdi.pec_message_id}
    return record


def monotonic_deadline(seconds: float) -> Callable[[], float]:
    """A `time_left` for code running outside Lambda."""
    end = time.monotonic() + seconds
    return lambda: end - time.monotonic()

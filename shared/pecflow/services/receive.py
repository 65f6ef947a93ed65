"""Mailbox ingestion: poll a mailbox, archive, classify, reconcile, record, advance the cursor.

Per message, in this order (a crash anywhere loses nothing and duplicates nothing):
  1. store the raw bytes in S3 (key by sha256, checksum verified by S3),
  2. classify,
  3. reconcile receipts with what we sent (conditional moves: replays are no-ops; the receipt is
     kept on its job by sha256, once; an accettazione whose outcome (consegna, errore, ...)
     comes later in the same batch is written by the outcome's own write, and the batch is
     settled before the cursor passes it),
  4. write the message record with the reconciliation's outcome, in one write (conditional: a
     message already recorded is not recorded again; its outcome is updated on it),
  5. advance the cursor past its UID (written once per fetched batch, after the batch's UID map,
     what the saturation guard reads: a crash re-reads the batch, each step above being
     idempotent; the poll after it goes one message at a time).
The cursor moves only after the record is durable, so a crash re-fetches from the last
recorded UID, never skips one. Work is bounded per invocation: fetches in chunks, and a deadline after which
the poll stops cleanly and says there is more to do.

No message can stop a mailbox. A message that cannot be archived (S3 failing) stops the poll
there: it stays on the provider, is tried again at the next poll, and the mailbox's status says
why. Once archived, a message whose processing fails for a reason of its own (the parser, a
record DynamoDB refuses, reconciliation) is recorded as a bounded summary with the reason and
quarantined: the cursor moves on, the mailbox's status counts it. One that stopped the poller
itself (time-out, out of memory) is found on the cursor by the next polls, and after
MAX_ATTEMPTS starts it is quarantined without classifying it again. A failure of AWS itself
(throttling, network) is not the message's fault: the poll stops and the message is retried.
Records are bounded (long fields cut, the cut stated; the archived original keeps everything).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from pecflow.domain import clock
from pecflow.domain.inbox import inbox_row
from pecflow.domain.mailbox import (
    Cursor,
    MailboxConfig,
    OnProvider,
    PollAction,
    Saturation,
    chunks,
    plan_poll,
    saturation_candidates,
)
from pecflow.domain.ports import (
    Archive,
    Checkpoint,
    InboxListing,
    MailboxStore,
    MailSession,
    MessageStore,
    OutgoingPort,
    no_checkpoint,
)
from pecflow.domain.reconcile import Kept, find_thread, reconcile_kept, reconcile_receipt
from pecflow.pec import kinds
from pecflow.pec.message import PecMessage, bare_message_id, delivery_reference, parse
from pecflow.pec.rem import RemInfo
from pecflow.pec.signature import INVALID, SignatureCheck

CHUNK_MESSAGES = 25
CHUNK_BYTES = 24 * 1024 * 1024
MAX_MESSAGE_BYTES = 120 * 1024 * 1024  # larger messages are left on the provider, recorded as such
MAX_ATTEMPTS = 2  # polls that may die on one message before it is quarantined
RECORD_BUDGET = 300_000  # bytes of a record as JSON (DynamoDB's limit is 400 KB)


class ArchiveFailed(RuntimeError):
    """A message could not be archived: it stays on the provider and the poll stops there."""

    def __init__(self, uid: int, size: int, cause: BaseException):
        super().__init__(
            f"UID {uid} ({size:,} bytes) could not be archived: {type(cause).__name__}: {cause}; "
            "it stays in the mailbox and is tried again at the next poll"
        )
        self.uid = uid


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
    more: bool = False  # stopped by the deadline: continue in another invocation
    imap_commands: int = 0
    moved: int = 0
    expunged: int = 0
    refused: list[str] = field(default_factory=list)  # saturation candidates kept, with the reason
    usage_percent: float | None = None
    resynced: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)  # "UID n: reason"
    signatures: dict[str, int] = field(default_factory=dict)  # new records by signature outcome
    invalid_signatures: list[str] = field(default_factory=list)  # "UID n: reason" (at most 20)
    rules_applied: int = 0  # actions the mailbox's rules did
    rules_failed: list[str] = field(default_factory=list)  # "UID n: rule: action: reason" (at most 20)


@dataclass(slots=True)
class Batch:
    """A fetched batch, as reconciliation sees it: the Message-IDs its receipts on a delivery
    (consegna, errore, ...) refer to, each with the UID of the last one, and the accettazioni
    left to them (written by their writes, settled before the cursor passes where they were not)."""

    deliveries: dict[str, int]
    kept: list[Kept] = field(default_factory=list)
    before: Cursor | None = None  # the cursor before the first of them
    listed: list[dict] = field(default_factory=list)  # inbox rows whose words are indexed at the settle
    new_rows: dict[str, dict] = field(default_factory=dict)  # rows of messages recorded now, written then too
    listed_before: Cursor | None = None  # the cursor before the first of them
    # the UID map: UID -> SHA-256 of each message archived (new or recorded before), written at the settle
    folder: str = ""
    uidvalidity: int = 0
    mapped: dict[int, str] = field(default_factory=dict)
    mapped_before: Cursor | None = None  # the cursor before the first of them


@dataclass(slots=True)
class Ingestor:
    """Everything one poll needs, wired by the handler (or by tests with fakes)."""

    archive: Archive
    messages: MessageStore
    mailboxes: MailboxStore
    outgoing: OutgoingPort
    checkpoint: Checkpoint = no_checkpoint  # tests crash here (bootstrap overrides)
    chunk_messages: int = CHUNK_MESSAGES
    chunk_bytes: int = CHUNK_BYTES
    max_message_bytes: int = MAX_MESSAGE_BYTES
    on_message: Callable[[str, PecMessage], None] | None = None  # metrics/logging hook
    classify: Callable[[bytes], PecMessage] = parse
    inbox: InboxListing | None = None  # what people see: each recorded message's row
    # the provider's signature checked (pecflow.pec.signature.check_message with the trust
    # anchors bound): message, when it was received -> verdict; None: not checked
    check_signature: Callable[[PecMessage, datetime | None], SignatureCheck] | None = None
    # the mailbox's automatic rules (pecflow.services.rules.RuleRunner), run on each new record
    rules: MessageRules | None = None
    on_receipt: Callable[[str, PecMessage, str | None], None] | None = None  # alerts (failed deliveries)
    # SdI invoices and notifications (pecflow.services.invoices.InvoiceLedger), after the rules
    invoices: Any = None

    def poll(
        self,
        config: MailboxConfig,
        session: MailSession,
        *,
        time_left: Callable[[], float] = lambda: float("inf"),
        margin: float = 20.0,
        usage_due: bool = True,
    ) -> PollResult:
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
    def _poll_folder(
        self, config: MailboxConfig, session: MailSession, folder: str, result: PollResult, time_left, margin
    ) -> bool:
        """Fetch what is new in one folder. False when the deadline stopped it midway."""
        address = config.address
        cursor = self.mailboxes.get_cursor(address, folder)
        status = session.status(folder)
        plan = plan_poll(cursor, status)
        if plan.action == PollAction.NOTHING_NEW:
            if (cursor.uidvalidity, cursor.uidnext, cursor.highestmodseq) != (
                status.uidvalidity,
                status.uidnext,
                status.highestmodseq,
            ):
                self.mailboxes.save_cursor(
                    address, replace(plan.cursor, uidnext=status.uidnext, highestmodseq=status.highestmodseq)
                )
            return True
        status = session.select(folder)  # something to fetch: open the folder
        if plan.action == PollAction.RESYNC:
            result.resynced.append(folder)
            if cursor.uidvalidity is not None:  # the old UIDs name nothing now
                self.messages.unmap_uids(address, folder, cursor.uidvalidity)
            self.mailboxes.save_cursor(address, plan.cursor)
        cursor = plan.cursor
        sizes = dict(session.sizes(session.uids_from(plan.from_uid)))
        # The cursor is written once per fetched batch: noted as started at its first UID, then
        # done past its last. A poll that died inside a batch left that note: the next poll goes
        # one message at a time, each noted before it begins, so the message that stops the
        # poller is the one its attempts are counted on (and quarantined after MAX_ATTEMPTS).
        careful = cursor.attempt_uid is not None
        started: int | None = None  # the UID this poll has noted as started on the cursor
        for batch in self._batches(sizes):
            if time_left() < margin:
                return False
            if sizes[batch[0]] > self.max_message_bytes:  # alone in its batch, never fetched
                cursor = self._too_large(
                    config, folder, status.uidvalidity, batch[0], sizes[batch[0]], cursor, result
                )
                continue
            fetched_batch = session.fetch(batch)
            # an accettazione whose outcome (consegna, errore, ...) comes later in this batch is
            # written by the outcome's write (one where there were two), and settled before the cursor
            # passes the batch; not when going carefully: there the cursor passes each message
            batch_seen = Batch(
                {} if careful else _deliveries(fetched_batch), folder=folder, uidvalidity=status.uidvalidity
            )
            for i, fetched in enumerate(fetched_batch):
                if time_left() < margin:
                    self._settle(address, batch_seen)
                    if started is not None or not careful:  # noted but not begun: not an attempt
                        self.mailboxes.save_cursor(address, replace(cursor, attempt_uid=None, attempts=0))
                    return False
                if started != fetched.uid:
                    cursor = cursor.started(fetched.uid)
                    if careful or i == 0:
                        self.mailboxes.save_cursor(address, cursor)
                if not batch_seen.kept:
                    batch_seen.before = cursor
                if not batch_seen.listed:
                    batch_seen.listed_before = cursor
                if not batch_seen.mapped:
                    batch_seen.mapped_before = cursor
                try:
                    sha = self._ingest_one(
                        config, folder, status.uidvalidity, fetched, result, cursor.attempts, batch_seen
                    )
                except Exception:
                    # S3 or DynamoDB failing is not this message's fault: this was no attempt
                    self._settle(address, batch_seen)
                    self.mailboxes.save_cursor(address, replace(cursor, attempt_uid=None, attempts=0))
                    raise
                batch_seen.mapped[fetched.uid] = sha  # archived and recorded (or quarantined)
                following = fetched_batch[i + 1].uid if i + 1 < len(fetched_batch) else None
                cursor = cursor.done(fetched.uid, following)
                if careful or following is None:
                    self._settle(address, batch_seen)
                if careful or following is None:  # a batch's messages are re-read after a crash
                    self.mailboxes.save_cursor(address, cursor)
                started = following
            if time_left() < margin:
                return False
        self.mailboxes.save_cursor(
            address, replace(cursor, uidnext=status.uidnext, highestmodseq=status.highestmodseq)
        )
        return True

    def _batches(self, sizes: dict[int, int]):
        """Fetch batches in UID order; a message over `max_message_bytes` alone in its own."""
        fetchable: list[tuple[int, int]] = []
        for uid in sorted(sizes):
            if sizes[uid] <= self.max_message_bytes:
                fetchable.append((uid, sizes[uid]))
                continue
            yield from chunks(fetchable, max_messages=self.chunk_messages, max_bytes=self.chunk_bytes)
            fetchable = []
            yield [uid]
        yield from chunks(fetchable, max_messages=self.chunk_messages, max_bytes=self.chunk_bytes)

    def _ingest_one(
        self,
        config: MailboxConfig,
        folder: str,
        uidvalidity: int,
        fetched,
        result: PollResult,
        attempts: int = 1,
        batch: Batch | None = None,
    ) -> str:
        """`batch`: the fetched batch the message is in, as reconciliation sees it (`_reconcile`).
        The message's SHA-256, once it is archived and recorded (or quarantined)."""
        address = config.address
        raw = fetched.raw
        sha = hashlib.sha256(raw).hexdigest()
        try:
            archived = self.archive.store(raw, sha)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the message stays on the provider
            raise ArchiveFailed(fetched.uid, len(raw), exc) from exc
        self.checkpoint("after_archive", uid=fetched.uid)
        result.fetched += 1
        where = (address, folder, uidvalidity, fetched.uid, fetched.internaldate, raw, sha, archived.key)
        if attempts > MAX_ATTEMPTS:
            self._quarantine(
                where,
                result,
                None,
                "classify",
                f"processing stopped {attempts - 1} times before it "
                "finished (the poller ran out of time or memory on this message): not classified",
                batch=batch,
            )
            return sha
        msg = recorded = record = check = None
        try:
            msg = self.classify(raw)
            if self.check_signature is not None:
                check = self.check_signature(msg, fetched.internaldate or clock.now())
            record = build_record(*where, msg, signature=check)
            if self.rules is not None:
                record = self.rules.annotate(address, record, msg)
        except Exception as exc:  # noqa: BLE001 - this message's problem, unless AWS itself failed
            if self.messages.is_service_failure(exc):
                raise
            self._quarantine(where, result, msg, "record", _failure(exc), batch=batch)
            record = None
            if msg is None:
                return sha
        # reconciled before the record is written, so the outcome is written with it (one write,
        # not a put and an update): the moves are conditional and the receipt is kept on the job
        # by its sha256, so a poll that stops before the record does them again harmlessly
        campaign_id, outcome, not_reconciled = None, Reconciled(), None
        try:
            campaign_id, outcome = self._reconcile(address, sha, msg, result, batch, fetched.uid)
        except Exception as exc:  # noqa: BLE001 - as above
            if self.messages.is_service_failure(exc):
                raise
            not_reconciled = _failure(exc)
        self.checkpoint("after_reconcile", uid=fetched.uid)
        if record is not None:
            try:
                recorded = self.messages.record(address, {**record, **outcome.fields})
            except Exception as exc:  # noqa: BLE001 - as above
                if self.messages.is_service_failure(exc):
                    raise
                self._quarantine(where, result, msg, "record", _failure(exc), batch=batch)
        if recorded is not None:
            result.by_kind[msg.kind] = result.by_kind.get(msg.kind, 0) + 1
            if recorded:
                result.recorded += 1
                if check is not None:
                    _count_signature(result, fetched.uid, check)
            else:
                result.already_recorded += 1
                self.messages.relocate(address, sha, folder=folder, uid=fetched.uid, uidvalidity=uidvalidity)
        if not recorded and (outcome.fields or outcome.remove):  # recorded before, or its summary
            self.messages.set_fields(address, sha, outcome.fields, remove=outcome.remove)
        # a receipt whose record failed is reconciled all the same
        self.checkpoint("after_record", uid=fetched.uid)
        if not_reconciled is not None:
            self._quarantine(where, result, msg, "reconcile", not_reconciled, recorded=True)
        if self.on_receipt is not None and recorded:
            self.on_receipt(address, msg, campaign_id)
        if record is not None and recorded is not None:
            self._list(address, record, campaign_id, new=bool(recorded), batch=batch)
        if record is not None and recorded is not None and (recorded or self._rules_pending(address, sha)):
            self.checkpoint("before_rules", uid=fetched.uid)
            # archived, recorded and listed (or its row due at the settle): now the rules
            self._apply_rules(where, record, msg, result, batch)
        if self.invoices is not None and record is not None and recorded is not None and msg.sdi is not None:
            self.invoices.take(
                address, record, msg, lambda why: self._hold(where, result, why, stage="fatture")
            )
        if self.on_message is not None:
            self.on_message(address, msg)
        self.checkpoint("before_cursor", uid=fetched.uid)
        return sha

    def _quarantine(
        self,
        where: Where,
        result: PollResult,
        msg: PecMessage | None,
        stage: str,
        reason: str,
        *,
        recorded: bool = False,
        batch: Batch | None = None,
    ) -> None:
        """Record what is known of a message whose processing failed, with the reason, and count
        it on the mailbox: the poll goes on with the next message."""
        address, uid, sha = where[0], where[3], where[6]
        quarantine = {"stage": stage, "reason": reason[:1000], "at": clock.iso()}
        flag = {"quarantined": quarantine, "quarantined_mailbox": address.lower()}
        summary = summary_record(*where, msg, reason) | flag
        if recorded or not self.messages.record(address, summary):
            self.messages.set_fields(address, sha, flag)
        if not recorded:
            self._list(address, summary, None, batch=batch)
        kind = msg.kind if msg is not None else kinds.MALFORMED
        result.by_kind[kind] = result.by_kind.get(kind, 0) + 1
        result.quarantined.append(f"UID {uid}: {reason}")
        self.mailboxes.note_quarantine(address, uid=uid, sha256=sha, reason=f"{stage}: {reason}")

    def _apply_rules(
        self, where: Where, record: dict, msg: PecMessage, result: PollResult, batch: Batch | None = None
    ) -> None:
        """The mailbox's rules on a message just recorded. Whatever fails, the message stays
        recorded and listed: the failure is kept on its record with the reason, and counted."""
        if self.rules is None:
            return
        address, uid, sha = where[0], where[3], where[6]

        def failed(reason: str) -> None:
            if len(result.rules_failed) < 20:
                result.rules_failed.append(f"UID {uid}: {reason}"[:500])

        try:
            ran = self.rules.run(
                address,
                record,
                msg,
                lambda reason: self._hold(where, result, reason),
                listed=lambda: self._row_now(address, sha, batch),
            )
        except Exception as exc:  # noqa: BLE001 - the rules are unreadable: the message goes on
            reason = f"regole non applicate: {_failure(exc)}"
            failed(reason)
            ran = None, {"rules": {"at": clock.iso(), "applied": [], "failed": [reason]}}
        outcome, fields = ran or (None, {})
        if outcome is not None:
            result.rules_applied += len(outcome.applied)
            for reason in outcome.failed:
                failed(reason)
        if fields:
            try:
                self.messages.set_fields(address, sha, fields)
            except Exception as exc:  # noqa: BLE001 - the acts are done and audited already
                failed(f"esito delle regole non registrato: {_failure(exc)}")

    def _row_now(self, address: str, sha: str, batch: Batch | None) -> dict | None:
        """A new message's row, left for the batch's settle, written now (a rule acts on it);
        None if it was written before."""
        row = batch.new_rows.pop(sha, None) if batch is not None and self.inbox is not None else None
        if row is not None:
            self.inbox.index_words(address, [], new_rows=[row])  # type: ignore[union-attr]
        return row

    def _rules_pending(self, address: str, sha: str) -> bool:
        """A message recorded by an earlier poll that stopped before its rules ran (one read,
        only for a message fetched again)."""
        if self.rules is None:
            return False
        stored = self.messages.get(address, sha)
        return stored is not None and not stored.quarantined and "rules" not in stored.extra

    def _hold(self, where: Where, result: PollResult, reason: str, stage: str = "rules") -> None:
        """Quarantine a recorded message by a rule (as `_quarantine` does a failed one): kept,
        listed, flagged on its record with the reason, counted on the mailbox."""
        address, uid, sha = where[0], where[3], where[6]
        quarantine = {"stage": stage, "reason": reason[:1000], "at": clock.iso()}
        self.messages.set_fields(
            address, sha, {"quarantined": quarantine, "quarantined_mailbox": address.lower()}
        )
        result.quarantined.append(f"UID {uid}: {reason}")
        self.mailboxes.note_quarantine(address, uid=uid, sha256=sha, reason=f"{stage}: {reason}")

    def _too_large(
        self,
        config: MailboxConfig,
        folder: str,
        uidvalidity: int,
        uid: int,
        size: int,
        cursor: Cursor,
        result: PollResult,
    ) -> Cursor:
        """A message too large for the poller's memory: not fetched, left on the provider (nothing
        expunges a message without an archived copy), recorded and counted so a person sees it."""
        address = config.address
        reason = (
            f"{size / 1_000_000:,.1f} MB: larger than the {self.max_message_bytes / 1_000_000:,.0f} MB the "
            "poller can read; left on the provider, not archived"
        )
        marker = f"unfetched-{uidvalidity}-{uid}"
        summary = {
            "sha256": marker,
            "size": size,
            "folder": folder,
            "uid": uid,
            "uidvalidity": uidvalidity,
            "received_at": clock.iso(),
            "received_key": f"{clock.iso()}#{marker[:16]}",
            "recorded_at": clock.iso(),
            "kind": kinds.MALFORMED,
            "problems": [reason],
            "on_provider": "yes",
            "quarantined": {"stage": "fetch", "reason": reason, "at": clock.iso()},
            "quarantined_mailbox": address.lower(),
        }
        self.messages.record(address, summary)
        result.by_kind[kinds.MALFORMED] = result.by_kind.get(kinds.MALFORMED, 0) + 1
        result.quarantined.append(f"UID {uid}: {reason}")
        self.mailboxes.note_quarantine(address, uid=uid, sha256=marker, reason=f"fetch: {reason}")
        cursor = cursor.done(uid)
        self.mailboxes.save_cursor(address, cursor)
        return cursor

    def _list(
        self,
        address: str,
        record: dict,
        campaign_id: str | None,
        *,
        new: bool = False,
        batch: Batch | None = None,
    ) -> None:
        """The message's row in the inbox (once: a message recorded again keeps its row and
        its presa in carico). `new`: recorded by this very poll, so it has no row yet: written
        with the batch's postings (`_settle`, one request for the batch), or at once when a rule
        is to act on it (`_row_now`). Its words are indexed with the batch's, row new or not: a
        batch read again after a crash may have written rows and not their postings."""
        if self.inbox is None:
            return
        row = inbox_row(address, record, campaign_id=campaign_id)
        if batch is not None and new:
            batch.new_rows[str(record["sha256"])] = row
        else:
            self.inbox.add(address, record, campaign_id=campaign_id, new=new)
        if batch is None:
            self.inbox.index_words(address, [row])
        else:
            batch.listed.append(row)

    def _reconcile(
        self,
        address: str,
        sha: str,
        msg: PecMessage,
        result: PollResult,
        batch: Batch | None = None,
        uid: int = 0,
    ) -> tuple[str | None, Reconciled]:
        """Reconcile a receipt or thread a reply: the campaign the message belongs to, if any,
        and what its record says of it. A PEC accettazione (at `uid`) whose outcome (consegna,
        errore, ...) comes later in the same batch (`batch`) is matched but not written: the
        outcome's write on its job takes it along, and what none took is written when the batch
        is settled."""
        if msg.kind in kinds.RICEVUTE:
            keep = bool(
                batch is not None
                and msg.kind == kinds.ACCETTAZIONE
                and msg.rem is None
                and msg.ref_message_id
                and batch.deliveries.get(bare_message_id(msg.ref_message_id), 0) > uid
            )
            carry = batch.kept if batch is not None else ()
            outcome = reconcile_receipt(self.outgoing, msg, receipt_id=sha, keep=keep, carry=carry)
            if batch is not None and outcome.kept is not None:
                batch.kept.append(outcome.kept)
            if outcome.status == "matched":
                result.receipts_matched += 1
                fields = {
                    "reconciled": "matched",
                    "outgoing_message_id": outcome.message_id,
                    "reconcile_problems": outcome.problems,
                }
                return outcome.campaign_id, Reconciled(fields, ("unmatched_mailbox",))
            result.receipts_unmatched += 1
            fields = {
                "reconciled": "unmatched",
                "unmatched_mailbox": address.lower(),
                "reconcile_problems": outcome.problems,
            }
            return None, Reconciled(fields)
        if msg.kind == kinds.POSTA_CERTIFICATA:
            original = find_thread(self.outgoing, msg)
            if original is not None:
                result.replies_threaded += 1
                return None, Reconciled({"thread_of": original})
        return None, Reconciled()

    def _settle(self, address: str, batch: Batch) -> None:
        """A batch's UID map, the postings of its listed messages' words, and its accettazioni
        left to their outcomes written (receipt and move) on the jobs no outcome's write took them
        to. Failing (AWS), the cursor goes back before the first of them, not counted as an
        attempt: the next poll reads it again and does it all."""
        try:
            if batch.mapped:
                self.messages.map_uids(address, batch.folder, batch.uidvalidity, batch.mapped)
                batch.mapped.clear()
            if batch.listed and self.inbox is not None:
                self.inbox.index_words(address, batch.listed, new_rows=list(batch.new_rows.values()))
                batch.listed.clear()
                batch.new_rows.clear()
            while batch.kept:
                reconcile_kept(self.outgoing, batch.kept[0])
                batch.kept.pop(0)
        except Exception:
            # the first of what is left: every message mapped is listed or kept no earlier
            back = (
                batch.mapped_before if batch.mapped else batch.listed_before if batch.listed else batch.before
            )
            if back is not None:
                self.mailboxes.save_cursor(address, replace(back, attempt_uid=None, attempts=0))
            raise

    # -- saturation -----------------------------------------------------------------------------------
    def guard_saturation(self, config: MailboxConfig, session: MailSession, result: PollResult) -> None:
        """Move or expunge archived messages as the mailbox's policy asks, oldest first. A
        message leaves the provider only after its S3 copy is read back and hashes right. Which
        message a UID is, the UID map says (`at_location`); what leaves is taken out of it.
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
        on_provider = [
            OnProvider(
                uid,
                dates[uid][1],
                _aware(dates[uid][0]) or _parse_iso(rec.received_at),
                archived=bool(rec.s3_key),
                sha256=rec.sha256,
            )
            for uid, rec in recorded.items()
            if uid in dates
        ]
        verified: list[int] = []
        for message in saturation_candidates(policy, usage, on_provider, clock.now()):
            record = recorded[message.uid]
            # a candidate is archived: it has its S3 key
            check = self.archive.verify(record.s3_key or "", record.sha256, deep=True)
            if check.ok:
                verified.append(message.uid)
                continue
            self.messages.set_fields(config.address, record.sha256, {"archive_problem": check.reason})
            # the provider's copy is still there: put it back in the archive (it leaves the
            # provider only at a later check, once the archive's copy verifies)
            again = self._archive_again(session, message.uid, record.s3_key or "", record.sha256)
            result.refused.append(f"UID {message.uid}: {check.reason}" + (f"; {again}" if again else ""))
        if not verified:
            return
        if policy.expunge:
            session.expunge(folder, verified)
            result.expunged += len(verified)
        else:
            assert policy.archive_folder is not None  # a move policy is validated with its folder
            session.move(folder, verified, policy.archive_folder)
            result.moved += len(verified)
        now = clock.iso()
        for uid in verified:
            self.messages.set_fields(
                config.address,
                recorded[uid].sha256,
                {
                    "on_provider": "expunged" if policy.expunge else f"moved to {policy.archive_folder}",
                    "left_provider_at": now,
                },
            )
        self.messages.unmap_uids(config.address, folder, cursor.uidvalidity, verified)

    def _archive_again(self, session: MailSession, uid: int, key: str, sha: str) -> str | None:
        """The archive's copy failed its check: the provider's copy, if it still hashes to the
        record's SHA-256, stored again (the damaged version stays, versioned). Says what happened."""
        try:
            fetched = session.fetch([uid])
            if not fetched or hashlib.sha256(fetched[0].raw).hexdigest() != sha:
                return "the provider's copy differs too: not archived again"
            self.archive.store_again(fetched[0].raw, sha)
            check = self.archive.verify(key, sha, deep=True)
        except Exception as exc:  # noqa: BLE001 - the message stays on the provider whatever happens
            return f"not archived again: {type(exc).__name__}: {exc}"[:500]
        return "archived again from the provider" if check.ok else f"archived again, still {check.reason}"


def _deliveries(fetched_batch: list) -> dict[str, int]:
    """The Message-IDs the receipts on a delivery in a fetched batch refer to, each with the UID of
    the last of them (a glance at headers)."""
    refs = ((delivery_reference(f.raw), f.uid) for f in fetched_batch)
    return {ref: uid for ref, uid in sorted(refs, key=lambda r: r[1]) if ref}


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.astimezone()


def _parse_iso(value: str | None) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else clock.now()


def _count_signature(result: PollResult, uid: int, check: SignatureCheck) -> None:
    for what, one in check.checks():  # a REM message: its evidence's XAdES signature too
        result.signatures[one.outcome] = result.signatures.get(one.outcome, 0) + 1
        if one.outcome == INVALID and len(result.invalid_signatures) < 20:
            result.invalid_signatures.append(f"UID {uid}: {what + ': ' if what else ''}{one.reason[:300]}")


def build_record(
    mailbox: str,
    folder: str,
    uidvalidity: int,
    uid: int,
    internaldate: datetime | None,
    raw: bytes,
    sha: str,
    s3_key: str,
    msg: PecMessage,
    *,
    signature: SignatureCheck | None = None,
) -> dict:
    """The message record: what the inbox lists and what reconciliation and evidence need.
    Bounded: long values and lists are cut (the cut is a problem on the record; the archived
    original keeps everything), so no message makes a record DynamoDB refuses. `signature`: the
    provider's signature checked (none: not checked, no signature fields)."""
    cut: list[str] = []
    text = _Texts(cut)
    logical = msg.postacert if msg.postacert is not None else msg
    record = {
        **_place(folder, uidvalidity, uid, internaldate, raw, sha, s3_key),
        "kind": msg.kind,
        "subject": text("subject", msg.subject, 2000),
        "message_id": text("message_id", msg.message_id),
        "from": text("from", msg.from_address),
        "to": text.many("to", msg.to),
        "cc": text.many("cc", msg.cc),
        "date": msg.date.isoformat() if msg.date else None,
        # the conversation, as the sender's message cites it (for an envelope, the message inside)
        "in_reply_to": text("in_reply_to", logical.in_reply_to),
        # the first (the thread's root) and the last ones: long threads cite dozens
        "references": [text("references", r, 998) or "" for r in _ends(logical.references, 10)],
        "ref_message_id": text("ref_message_id", msg.ref_message_id),
        "original_message_id": text("original_message_id", msg.original_message_id),
        "identificativo": text("identificativo", msg.identificativo),
        "provider": text("provider", msg.provider),
        "receipt_type": text("receipt_type", msg.receipt_type),
        "sender": text("sender", msg.sender),
        "recipients": [
            {"address": text("recipients", r.address), "type": text("recipients", r.type)}
            for r in text.first("recipients", msg.recipients)
        ],
        "original_subject": text("original_subject", msg.original_subject, 2000),
        "timestamp": msg.timestamp.isoformat() if msg.timestamp else None,
        "delivered_to": text("delivered_to", msg.delivered_to),
        "error": text("error", msg.error),
        "error_detail": text("error_detail", msg.error_detail, 2000),
        "on_provider": "yes",
        "attachments": [
            {
                "filename": text("attachments", a.filename, 255),
                "content_type": text("attachments", a.content_type, 255),
                "size": a.size,
            }
            for a in text.first("attachments", msg.attachments)
        ],
    }
    if msg.sdi is not None:
        record["sdi"] = {
            "type": text("sdi", msg.sdi.type),
            "identificativo_sdi": text("sdi", msg.sdi.identificativo_sdi),
            "nome_file": text("sdi", msg.sdi.nome_file, 255),
            "pec_message_id": text("sdi", msg.sdi.pec_message_id),
        }
    if msg.rem is not None:
        record["rem"] = rem_map(text, msg.rem)
    if signature is not None:
        record.update(signature_fields(text, signature))
        if signature.evidence is not None:  # a REM evidence's own XAdES signature, as `rem.signature`
            record.setdefault("rem", {}).update(signature_fields(text, signature.evidence))
    problems = [text("problems", p, 500) for p in text.first("problems", msg.problems, 50)]
    if cut:
        problems.append(
            f"record fields cut to fit: {', '.join(sorted(set(cut)))} (the archived original is whole)"
        )
    record["problems"] = problems
    size = _json_size(record)
    if size > RECORD_BUDGET:  # only with many long multi-byte values, even cut
        raise RecordTooLarge(f"its record would take {size:,} bytes, over the {RECORD_BUDGET:,}-byte budget")
    return record


def signature_fields(text: _Texts, check: SignatureCheck) -> dict:
    """The provider's signature on the record: outcome, why, who signed and when."""
    fields: dict = {
        "signature": check.outcome,
        "signature_detail": text("signature_detail", check.reason, 500),
        "signed_at": check.signed_at.isoformat() if check.signed_at else None,
        "signed_at_from": check.signed_at_from,
    }
    if check.signer is not None:
        signer = check.signer.to_dict()
        fields["signer"] = {name: text("signer", value, 1000) for name, value in signer.items()}
    return fields


def rem_map(text: _Texts, rem: RemInfo) -> dict:
    """What a REM message says about itself, for the record (absent values left out): the
    inbox shows it as certified REM mail, with the event and why (PEC_FORMAT §10)."""
    values = {
        "message_type": text("rem", rem.message_type, 100),
        "event": text("rem", rem.event, 100),
        "reason": text("rem", rem.reason, 200),
        "reason_text": text("rem", rem.reason_text, 500),
        "evidence_id": text("rem", rem.evidence_id),
        "ua_message_id": text("rem", rem.ua_message_id),
        "policies": text.many("rem", list(rem.policies), 300, 10),
    }
    return {name: value for name, value in values.items() if value}


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What reconciliation says on a message's record: fields to set, fields to remove."""

    fields: dict = field(default_factory=dict)
    remove: tuple[str, ...] = ()


class MessageRules(Protocol):
    """A mailbox's rules run on a message just recorded: what they did and the record's new
    fields, or None when the mailbox has none (pecflow.services.rules.RuleRunner)."""

    def annotate(self, mailbox: str, record: dict, msg: PecMessage) -> dict:
        """The record as the rules need it (each attachment's format by content), written with
        it; never raises (the record as it was when anything fails)."""
        ...

    def run(
        self,
        mailbox: str,
        record: dict,
        msg: PecMessage,
        quarantine: Callable[[str], None],
        *,
        listed: Callable[[], Mapping[str, Any] | None] = ...,
    ) -> tuple[Any, dict] | None:
        """`listed`: called before a rule that matched acts (on the message's row, maybe); the row if
        it wrote it just then."""
        ...


# where a message is and what it is: mailbox, folder, uidvalidity, uid, internaldate, raw, sha256, S3 key
Where = tuple[str, str, int, int, datetime | None, bytes, str, str]


class RecordTooLarge(ValueError):
    """Even cut, a message's record would not fit its budget."""


def _ends(values: list[str], count: int) -> list[str]:
    """The first value and the last `count - 1`, in order."""
    return values if len(values) <= count else [values[0], *values[len(values) - count + 1 :]]


class _Texts:
    """Cuts values for a record: text at a length, lists at a count, noting what was cut. Text
    that cannot be stored (lone surrogates) is mended."""

    def __init__(self, cut: list[str]):
        self.cut = cut

    def __call__(self, name: str, value: str | None, limit: int = 1000) -> str | None:
        if value is None:
            return None
        if len(value) > limit:
            self.cut.append(name)
            value = value[:limit]
        return value.encode("utf-8", "replace").decode("utf-8")

    def many(self, name: str, values: list[str], limit: int = 1000, count: int = 100) -> list[str]:
        return [self(name, v, limit) or "" for v in self.first(name, values, count)]

    def first(self, name: str, values: list, count: int = 100) -> list:
        if len(values) > count:
            self.cut.append(name)
        return values[:count]


def _place(
    folder: str,
    uidvalidity: int,
    uid: int,
    internaldate: datetime | None,
    raw: bytes,
    sha: str,
    s3_key: str,
) -> dict:
    """Where a message is and what it is as bytes: the part of a record known before parsing."""
    received = internaldate or clock.now()
    return {
        "sha256": sha,
        "size": len(raw),
        "s3_key": s3_key,
        "folder": folder,
        "uid": uid,
        "uidvalidity": uidvalidity,
        "received_at": clock.iso(received),
        "received_key": f"{clock.iso(received)}#{sha[:16]}",
        "recorded_at": clock.iso(),
    }


def summary_record(
    mailbox: str,
    folder: str,
    uidvalidity: int,
    uid: int,
    internaldate: datetime | None,
    raw: bytes,
    sha: str,
    s3_key: str,
    msg: PecMessage | None,
    reason: str,
) -> dict:
    """What is recorded of a message whose processing failed: where it is, its kind if it was
    classified, a few short fields, and the reason."""
    text = _Texts([])
    record = {
        **_place(folder, uidvalidity, uid, internaldate, raw, sha, s3_key),
        "kind": msg.kind if msg is not None else kinds.MALFORMED,
        "on_provider": "yes",
        "problems": [text("problems", reason, 1000)],
    }
    if msg is not None:
        record |= {
            "subject": text("subject", msg.subject, 200),
            "from": text("from", msg.from_address, 200),
            "message_id": text("message_id", msg.message_id, 500),
            "ref_message_id": text("ref_message_id", msg.ref_message_id, 500),
            "identificativo": text("identificativo", msg.identificativo, 500),
        }
        if msg.rem is not None and msg.rem.event:
            record["rem"] = {"event": text("rem", msg.rem.event, 100)}
    return record


def _json_size(record: dict) -> int:
    return len(json.dumps(record, ensure_ascii=False, default=str).encode("utf-8", "replace"))


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


def monotonic_deadline(seconds: float) -> Callable[[], float]:
    """A `time_left` for code running outside Lambda."""
    end = time.monotonic() + seconds
    return lambda: end - time.monotonic()

"""Working the inbox together: what the API (and the CLI) call for a person. Every call first
checks the person's role on the mailbox (no role: "not found", pecflow.domain.access); each act
on a message is decided by pecflow.domain.handling and written with its audit event in one
transaction, conditional on the row's version, so of two people acting at once exactly one
wins and the other is told who holds the message. Opening a message records a view, nothing
else. Deleting moves a message's row to the bin (admins, with a reason); the archived original
and the message record are never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pecflow.domain import clock
from pecflow.domain.access import Action, NotVisible, Person, Role, allows
from pecflow.domain.audit import AuditAction, AuditEvent, next_event
from pecflow.domain.handling import Act, Handling, HandlingConflict, decide, require_in_own_charge
from pecflow.domain.inbox import (
    INDEXES,
    Filters,
    decode_cursor,
    encode_cursor,
    handling_fields,
    handling_of,
    inbox_row,
    is_receipt,
    listing_keys,
    page_size,
    plan,
)
from pecflow.domain.ports import Outbox, Queue
from pecflow.domain.reconcile import State
from pecflow.domain.records import receipt_order
from pecflow.domain.replies import FORWARD, REPLY, Direct, ReplyError, direct_message_id, make_direct
from pecflow.pec import reading
from pecflow.services.audit import AuditPort
from pecflow.services.sending import queue_entry

ACT_ATTEMPTS = 20
MAX_REASON_CHARS = 500
MAX_READ_BYTES = 50 * 1024 * 1024  # larger originals are downloaded, not opened by the API
THREAD_SIZE = 50  # messages of a conversation shown with one of them

ACTION_OF = {
    Act.TAKE: Action.TAKE_IN_CHARGE,
    Act.RELEASE: Action.RELEASE,
    Act.ASSIGN: Action.ASSIGN,
    Act.MARK_HANDLED: Action.MARK_HANDLED,
    Act.REOPEN: Action.REOPEN,
}
AUDIT_OF = {
    Act.TAKE: AuditAction.TAKE_IN_CHARGE,
    Act.RELEASE: AuditAction.RELEASE,
    Act.ASSIGN: AuditAction.ASSIGN,
    Act.MARK_HANDLED: AuditAction.MARK_HANDLED,
    Act.REOPEN: AuditAction.REOPEN,
}


# --- ports -----------------------------------------------------------------------------------------
class InboxRows(Protocol):
    def row(self, mailbox: str, sha256: str) -> dict[str, Any] | None: ...
    def page(self, plan: Any, *, limit: int, start_key: Mapping[str, Any] | None = None) -> Any: ...
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
    ) -> str: ...


class People(Protocol):
    def person(self, username: str) -> Person | None: ...


class Records(Protocol):
    def get(self, mailbox: str, sha256: str) -> Any: ...


class Originals(Protocol):
    """The archived originals, and links for a person to download one, or a file out of one."""

    def get(self, key: str) -> bytes: ...
    def download_url(self, key: str, filename: str) -> str: ...
    def file_url(self, key: str, data: bytes, filename: str) -> str: ...


# --- values ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Source:
    """Where a request came from, for the audit log."""

    ip: str | None = None
    client: str | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    rows: list[dict[str, Any]]
    cursor: str | None  # the next page, None on the last
    items_read: int
    requests: int


class InboxError(ValueError):
    """A request that cannot be done as asked (the API answers 400 with this text)."""


_ROW_KEYS = ("pk", "sk", "row_pk", "mailbox", "words", *INDEXES)


def shown(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as a person sees it: without the table's keys."""
    return {k: v for k, v in row.items() if k not in _ROW_KEYS}


class Inbox:
    def __init__(
        self,
        rows: InboxRows,
        audit: AuditPort,
        people: People,
        records: Records,
        *,
        cursor_secret: bytes,
        audit_key: bytes | None = None,
        now: Callable[[], datetime] = clock.now,
        outbox: Outbox | None = None,
        send_queue: Queue | None = None,
        originals: Originals | None = None,
    ):
        self.rows, self.audit, self.people, self.records = rows, audit, people, records
        self.cursor_secret, self.audit_key, self.now = cursor_secret, audit_key, now
        self.outbox, self.send_queue, self.originals = outbox, send_queue, originals

    # --- reading ----------------------------------------------------------------------------------
    def list(
        self,
        person: Person,
        mailbox: str,
        filters: Filters,
        *,
        cursor: str | None = None,
        size: int | None = None,
    ) -> Listing:
        person.require(mailbox, Action.DELETE if filters.bin else Action.LIST)  # the bin: admins
        query = plan(mailbox, filters)
        start = decode_cursor(cursor, query, self.cursor_secret) if cursor else None
        page = self.rows.page(query, limit=page_size(size), start_key=start)
        following = encode_cursor(page.next_key, query, self.cursor_secret) if page.next_key else None
        return Listing([shown(r) for r in page.rows], following, page.items_read, page.requests)

    def show(self, person: Person, mailbox: str, sha256: str, source: Source = Source()) -> dict[str, Any]:
        """One message: its record, its row, what it says (headers, text, files), the messages of
        its conversation, and what it is about or we sent from it with their receipts. Records a
        view (opening is not taking in charge)."""
        role = person.require(mailbox, Action.READ)
        row = self._visible_row(mailbox, sha256, role)
        fields = _fields(self.records.get(mailbox, sha256))
        self._record(person, mailbox, sha256, AuditAction.VIEW, source)
        # the reconciled view: the message of ours a receipt (or a reply to us) is about, and what
        # we sent from this one, each with its receipts
        about = fields.get("outgoing_message_id") or fields.get("thread_of")
        ours = [row.get("last_reply"), row.get("last_forward")]
        return {
            "message": fields or None,
            "row": shown(row),
            "about": self._sent(about) if about else None,
            "sent_from_here": [self._sent(m) or _interrupted(m) for m in ours if m],
            "content": self._content(fields),
            "thread": self._thread(mailbox, row),
        }

    def _content(self, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """What the archived original says, as a person reads it (None: no original to read)."""
        key = fields.get("s3_key")
        if self.originals is None or not key:
            return None
        size = int(fields.get("size") or 0)
        if size > MAX_READ_BYTES:
            return {
                "too_large": True,
                "note": f"this message ({size / 1e6:.0f} MB) is too large to open here: download the original",
                "headers": [],
                "files": [],
            }
        read = reading.read(self.originals.get(str(key)))
        return {
            "headers": [{"name": n, "value": v} for n, v in read.headers],
            "text": read.text,
            "from_html": read.from_html,
            "text_cut": read.text_cut,
            "envelope": read.envelope,
            "files": [
                {"index": f.index, "filename": f.filename, "content_type": f.content_type, "size": f.size}
                for f in read.files
            ],
        }

    def _thread(self, mailbox: str, row: Mapping[str, Any]) -> Sequence[dict[str, Any]]:
        """The received messages of the row's conversation, oldest first (itself included)."""
        root = row.get("thread")
        if not root:
            return []
        page = self.rows.page(plan(mailbox, Filters(thread=str(root))), limit=THREAD_SIZE)
        return [shown(r) for r in reversed(page.rows)]

    def download(self, person: Person, mailbox: str, sha256: str, source: Source = Source()) -> str:
        """A short-lived link to the original .eml, byte for byte as archived (recorded as a download)."""
        role = person.require(mailbox, Action.DOWNLOAD)
        self._visible_row(mailbox, sha256, role)
        key = _fields(self.records.get(mailbox, sha256)).get("s3_key")
        if not key or self.originals is None:
            raise InboxError("this message has no archived original to download")
        self._record(person, mailbox, sha256, AuditAction.DOWNLOAD, source)
        return self.originals.download_url(str(key), f"{sha256[:16]}.eml")

    def file(
        self, person: Person, mailbox: str, sha256: str, index: int, source: Source = Source()
    ) -> dict[str, Any]:
        """A short-lived link to one file of the message (its position in `content.files`),
        taken out of the archived original (recorded as a download, with the file's name)."""
        role = person.require(mailbox, Action.DOWNLOAD)
        self._visible_row(mailbox, sha256, role)
        fields = _fields(self.records.get(mailbox, sha256))
        key = fields.get("s3_key")
        if not key or self.originals is None:
            raise InboxError("this message has no archived original to take files from")
        if int(fields.get("size") or 0) > MAX_READ_BYTES:
            raise InboxError("this message is too large to open here: download the original")
        try:
            found, data = reading.file(self.originals.get(str(key)), index)
        except reading.NoSuchFile as exc:
            raise NotVisible(str(exc)) from None
        name = found.filename or f"file-{index + 1}"
        details = {"file": name, "index": index}
        self._record(person, mailbox, sha256, AuditAction.DOWNLOAD, source, details)
        url = self.originals.file_url(f"files/{sha256}/{index}", data, name)
        return {"url": url, "filename": name, "content_type": found.content_type, "size": len(data)}

    def _sent(self, message_id: str) -> dict[str, Any] | None:
        """A message we sent, as reconciled: to whom, its state, its receipts in order."""
        job = getattr(self.outbox, "job", None)
        record = job(message_id) if job is not None else None
        if record is None:
            return None
        receipts = sorted(
            ({"kind": r.get("kind"), "at": r.get("at"), "sha256": sha, "error": r.get("error")}
             for sha, r in record.receipts.items()),
            key=receipt_order,
        )  # fmt: skip
        head = record.head or {}
        return {
            "message_id": message_id,
            "subject": head.get("subject"),
            "to": record.recipient,
            "state": str(record.state),
            "error": record.error,
            "receipts": [{k: v for k, v in r.items() if v is not None} for r in receipts],
        }

    def _visible_row(self, mailbox: str, sha256: str, role: Role) -> dict[str, Any]:
        row = self.rows.row(mailbox, sha256)
        if row is None or (row.get("deleted") and not allows(role, Action.RESTORE)):
            raise NotVisible(f"message {sha256} not found in {mailbox}")
        return row

    # --- presa in carico ---------------------------------------------------------------------------
    def act(
        self,
        person: Person,
        mailbox: str,
        sha256: str,
        act: Act,
        *,
        to: str | None = None,
        note: str | None = None,
        source: Source = Source(),
    ) -> Handling:
        role = person.require(mailbox, ACTION_OF[act])
        if act is Act.ASSIGN:
            to = self._assignee(mailbox, to)
        for _ in range(ACT_ATTEMPTS):
            row = self._visible_row(mailbox, sha256, Role.VIEWER)  # the bin: no acts there
            if is_receipt(str(row.get("kind"))):
                raise InboxError(
                    "receipts are not taken in charge: they belong to the message they are about"
                )
            current = handling_of(row)
            after = decide(current, act, actor=person.username, role=role, now=self.now(), to=to, note=note)
            if after == current:
                return current  # already so: nothing to write, nothing to audit
            keys = listing_keys(mailbox, row, after)
            fields = {
                **handling_fields(after),
                "list_pk": keys["list_pk"],
                "holder_pk": keys["holder_pk"],
            }
            details = {
                "to": to,
                "note": after.note if act is Act.MARK_HANDLED else note,
                "was": current.holder,
            }
            event = self._event(person, mailbox, sha256, AUDIT_OF[act], source, details)
            outcome = self.rows.act(
                mailbox,
                sha256,
                expected_version=current.version,
                set_fields={k: v for k, v in fields.items() if k != "version"},
                audit=event,
            )
            if outcome == "done":
                return after
            # the row changed (someone acted first) or the audit number was taken: read again;
            # deciding again on the new row tells the loser who holds the message
        raise HandlingConflict("busy", "the message is busy: try again in a moment", handling_of(row))

    def _assignee(self, mailbox: str, to: str | None) -> str:
        if not to:
            raise InboxError("assign to whom? name the person")
        assignee = self.people.person(to)
        if assignee is None or not assignee.enabled:
            raise InboxError(f"there is no active person called {to}")
        role = assignee.role_on(mailbox)
        if role is None or not allows(role, Action.TAKE_IN_CHARGE):
            raise InboxError(
                f"{to} cannot take messages of {mailbox} in charge (their role does not allow it)"
            )
        return assignee.username

    # --- the bin -----------------------------------------------------------------------------------
    def delete(
        self, person: Person, mailbox: str, sha256: str, reason: str, source: Source = Source()
    ) -> None:
        """Move a message to the bin (admins, with a reason): out of every list but the bin's.
        The archived original and the message record stay as they are."""
        person.require(mailbox, Action.DELETE)
        reason = (reason or "").strip()
        if not reason:
            raise InboxError("say why the message is deleted (the reason is kept in the audit log)")
        reason = reason[:MAX_REASON_CHARS]
        for _ in range(ACT_ATTEMPTS):
            row = self._visible_row(mailbox, sha256, Role.ADMIN)
            if row.get("deleted"):
                return
            deleted = {"reason": reason, "by": person.username, "at": clock.iso(self.now())}
            keys = listing_keys(mailbox, row, handling_of(row), deleted=True)
            event = self._event(person, mailbox, sha256, AuditAction.DELETE, source, {"reason": reason})
            outcome = self.rows.act(
                mailbox,
                sha256,
                expected_version=int(row.get("version") or 0),
                set_fields={"deleted": deleted, **keys},
                audit=event,
                require_deleted=False,
            )
            if outcome == "done":
                return
        raise InboxError("the message is busy: try again in a moment")

    def restore(self, person: Person, mailbox: str, sha256: str, source: Source = Source()) -> None:
        person.require(mailbox, Action.RESTORE)
        for _ in range(ACT_ATTEMPTS):
            row = self._visible_row(mailbox, sha256, Role.ADMIN)
            if not row.get("deleted"):
                return
            keys = listing_keys(mailbox, row, handling_of(row))
            event = self._event(person, mailbox, sha256, AuditAction.RESTORE, source, {})
            outcome = self.rows.act(
                mailbox,
                sha256,
                expected_version=int(row.get("version") or 0),
                set_fields=dict(keys),
                remove=("deleted",),
                audit=event,
                require_deleted=True,
            )
            if outcome == "done":
                return
        raise InboxError("the message is busy: try again in a moment")

    # --- reply and forward --------------------------------------------------------------------
    def reply(self, person: Person, mailbox: str, sha256: str, text: str, source: Source = Source()) -> str:
        """Answer the message's sender, through the sender (quota, exactly once); the message must
        be in the person's own charge. Returns the reply's Message-ID (the same for a repeated
        request)."""
        return self._send(person, mailbox, sha256, REPLY, None, text, source)

    def forward(
        self, person: Person, mailbox: str, sha256: str, to: str, text: str, source: Source = Source()
    ) -> str:
        """Send the message, whole, to another address, with a note."""
        return self._send(person, mailbox, sha256, FORWARD, to, text, source)

    def _send(
        self, person: Person, mailbox: str, sha256: str, kind: str, to: str | None, text: str, source: Source
    ) -> str:
        if self.outbox is None or self.send_queue is None:
            raise RuntimeError("this inbox cannot send: no outbox or send queue wired")
        person.require(mailbox, Action.REPLY if kind == REPLY else Action.FORWARD)
        what = "reply to" if kind == REPLY else "forward"
        # the act (row and audit event together) first, then the outgoing job, then the queue: a
        # request stopped half-way and repeated finds its act done and completes the rest
        for _ in range(ACT_ATTEMPTS):
            row = self._visible_row(mailbox, sha256, Role.VIEWER)
            if is_receipt(str(row.get("kind"))):
                raise InboxError("a receipt is not answered: answer the message it is about")
            handling = handling_of(row)
            require_in_own_charge(handling, person.username, what)
            record = self.records.get(mailbox, sha256)
            if record is None:
                raise InboxError("this message has no record to answer from")
            direct = _direct(kind, mailbox, record, to, text, person.username)
            message_id = direct_message_id(sha256, direct)
            if row.get(f"last_{kind}") != message_id:
                details = {"message_id": message_id, "to": direct.to}
                action = AuditAction.REPLY if kind == REPLY else AuditAction.FORWARD
                outcome = self.rows.act(
                    mailbox,
                    sha256,
                    expected_version=handling.version,
                    set_fields={f"last_{kind}": message_id, f"last_{kind}_at": clock.iso(self.now())},
                    audit=self._event(person, mailbox, sha256, action, source, details),
                )
                if outcome != "done":
                    continue  # someone acted meanwhile: read again (the holder may have changed)
            self._queue(mailbox, sha256, direct, message_id)
            return message_id
        raise InboxError("the message is busy: try again in a moment")

    def queue_automatic_reply(
        self, mailbox: str, sha256: str, direct: Direct, message_id: str, *, actor: str, rule: str
    ) -> str:
        """A reply no person wrote (the rules' auto-reply, pecflow.services.rules): recorded on the
        message's row with its audit event by `actor`, then queued as a person's reply is (quota,
        exactly once by `message_id`, threaded, reconciled). Safe to repeat."""
        if self.outbox is None or self.send_queue is None:
            raise RuntimeError("this inbox cannot send: no outbox or send queue wired")
        for _ in range(ACT_ATTEMPTS):
            row = self.rows.row(mailbox, sha256)
            if row is None:
                raise InboxError("the message is not in the inbox")
            if row.get("last_reply") != message_id:
                event = next_event(
                    self.audit.head(mailbox),
                    actor=actor,
                    action=AuditAction.REPLY,
                    at=self.now(),
                    message=sha256,
                    details={"message_id": message_id, "to": direct.to, "rule": rule},
                    key=self.audit_key,
                )
                outcome = self.rows.act(
                    mailbox,
                    sha256,
                    expected_version=int(row.get("version") or 0),
                    set_fields={"last_reply": message_id, "last_reply_at": clock.iso(self.now())},
                    audit=event,
                    require_deleted=None,
                )
                if outcome != "done":
                    continue
            self._queue(mailbox, sha256, direct, message_id)
            return message_id
        raise InboxError("the message is busy: try again in a moment")

    def _queue(self, mailbox: str, sha256: str, direct: Direct, message_id: str) -> None:
        assert self.outbox is not None and self.send_queue is not None
        self.outbox.register(
            message_id,
            mailbox=mailbox.lower(),
            recipients=[direct.to],
            subject=direct.subject,
            state=State.PENDING,
            extra={"direct": direct.as_dict(), "origin": {"mailbox": mailbox.lower(), "sha256": sha256}},
        )  # False: registered already by the same request
        self.send_queue.send(queue_entry(message_id))  # the sender sends a job once, whatever

    # --- audit -------------------------------------------------------------------------------------
    def _event(
        self,
        person: Person,
        mailbox: str,
        sha256: str,
        action: AuditAction,
        source: Source,
        details: Mapping[str, object],
    ) -> AuditEvent:
        return next_event(
            self.audit.head(mailbox),
            actor=person.username,
            action=action,
            at=self.now(),
            message=sha256,
            source_ip=source.ip,
            client=source.client,
            details=details,
            key=self.audit_key,
        )

    def _record(
        self,
        person: Person,
        mailbox: str,
        sha256: str,
        action: AuditAction,
        source: Source,
        details: Mapping[str, object] | None = None,
    ) -> None:
        """An audit event alone (a view, a download): chained, with the same retries as an act."""
        for _ in range(ACT_ATTEMPTS):
            if self.audit.append(self._event(person, mailbox, sha256, action, source, details or {})):
                return
        raise InboxError("the audit log is busy: try again in a moment")


def _interrupted(message_id: str) -> dict[str, Any]:
    """A reply or forward whose act is recorded but whose job is not (the request stopped in
    between): repeating it completes it, and it still goes out once."""
    return {
        "message_id": message_id,
        "state": "interrupted",
        "error": "the request stopped before this was queued for sending: send it again "
        "(it will not go out twice)",
        "receipts": [],
    }


def _direct(kind: str, mailbox: str, record: Any, to: str | None, text: str, by: str):
    """The reply or forward of a recorded message: a reply goes to whom the message is from
    (for a PEC envelope, the certified sender of its daticert, not the provider's address)."""
    fields = _fields(record)
    if kind == REPLY:
        to = fields.get("sender") or fields.get("from")
    try:
        return make_direct(
            kind,
            mailbox=mailbox,
            to=str(to or ""),
            text=text,
            original_subject=fields.get("original_subject") or fields.get("subject"),
            original_message_id=fields.get("original_message_id") or fields.get("message_id"),
            original_key=fields.get("s3_key"),
            original_sha256=fields.get("sha256"),
            by=by,
        )
    except ReplyError as exc:
        raise InboxError(str(exc)) from None


REINDEX_FLUSH = 500  # rows whose postings are written together


def reindex(
    mailbox: str,
    records: Iterable[Any],
    inbox: Any,
    campaign_of: Callable[[str], str | None],
    progress: Callable[[int, int], None] = lambda seen, added: None,
) -> tuple[int, int]:
    """Give every recorded message of a mailbox its inbox row, where it has none (messages
    recorded before the inbox existed): receipts under their campaign; and the postings of every
    message's words, rows there or not (what tables written before postings need). Safe to
    repeat: a row there (with its presa in carico) is left as it is. Returns (records seen,
    rows added)."""
    seen = added = 0
    rows: list[dict[str, Any]] = []
    for record in records:
        fields = _fields(record)
        ours = fields.get("outgoing_message_id")
        campaign_id = campaign_of(str(ours)) if ours else None
        if inbox.add(mailbox, fields, campaign_id=campaign_id):
            added += 1
        rows.append(inbox_row(mailbox, fields, campaign_id=campaign_id))
        seen += 1
        if len(rows) >= REINDEX_FLUSH:
            inbox.index_words(mailbox, rows)
            rows = []
            progress(seen, added)
    if rows:
        inbox.index_words(mailbox, rows)
    progress(seen, added)
    return seen, added


def _fields(record: Any) -> dict[str, Any]:
    """A message record as its stored fields (a MessageRecord, or the dict a store keeps)."""
    if record is None:
        return {}
    return record.as_dict() if hasattr(record, "as_dict") else dict(record)

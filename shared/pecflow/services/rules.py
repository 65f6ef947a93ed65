"""A mailbox's automatic rules at work: run on each message once it is archived and recorded
(the ingestion calls `RuleRunner.run`), tried on recorded messages without acting (`dry_run`),
and written by an admin (`RulesDesk`).

An auto-reply (pecflow.domain.autoreply says when never) is claimed for its sender and period
first (`ReplyClaims`: one conditional write, so two pollers cannot both answer), then goes out as a
person's reply does (`AutoReplies`: the inbox's row and audit event, the sender's job by a
Message-ID fixed per message and rule, the send queue). Every auto-reply not sent is kept on the
message's record (`rules.skipped`) with the reason in words.

A rule that fails never loses or blocks a message: each action is tried on its own, a failure is
kept on the message's record with the reason and counted by the poll. Every act shows in the
message's audit trail as done by "regole automatiche". Rules never delete and never expunge.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from pecflow.domain import autoreply, clock
from pecflow.domain.access import Action, Person, Role
from pecflow.domain.audit import AuditAction, next_event
from pecflow.domain.evidence import RECEIPT_FIELDS, Receipt, Sent
from pecflow.domain.handling import Act
from pecflow.domain.printout import printout_pdf
from pecflow.domain.records import receipt_order
from pecflow.domain.replies import REPLY, Direct, make_direct, subject_for
from pecflow.domain.rules import (
    ACTOR,
    PDF_NAME,
    Decision,
    Pdf,
    RulesDocument,
    RulesError,
    decide,
    load,
    safe_name,
    save_folder,
    sniff,
)
from pecflow.pec.message import PecMessage
from pecflow.services.audit import AuditLog, AuditPort

CACHE_SECONDS = 60.0  # a poller sees a rules change within a minute
ACT_ATTEMPTS = 10
MAX_SNIFFED_ATTACHMENTS = 100  # as many as a record lists
MAX_PRINTED_RECEIPTS = 200  # receipts read into one printout (one read each)


# --- ports -----------------------------------------------------------------------------------------
class RulesStore(Protocol):
    """Where each mailbox's rules document is kept (as JSON)."""

    def rules(self, mailbox: str) -> dict[str, Any] | None: ...
    def set_rules(self, mailbox: str, document: dict[str, Any], *, by: str) -> None: ...


class SavedFiles(Protocol):
    """Where the `save` action writes (an S3 prefix of its own)."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...


class InboxActs(Protocol):
    """The inbox as the rules act on it, each act with its audit event."""

    def tag(
        self,
        mailbox: str,
        sha256: str,
        tags: Iterable[str],
        rule: str,
        *,
        row: Mapping[str, Any] | None = None,
    ) -> None: ...
    def assign(self, mailbox: str, sha256: str, username: str, rule: str) -> None: ...
    def note(self, mailbox: str, sha256: str, rule: str, details: Mapping[str, object]) -> None: ...


class Notifier(Protocol):
    def notify(self, people: Iterable[str], mailbox: str, record: Mapping[str, Any], rule: str) -> None: ...


class ReplyClaims(Protocol):
    """Who was answered automatically, per mailbox, sender and rule."""

    def claim(
        self, mailbox: str, sender: str, rule: str, *, sha256: str, now: datetime, period: timedelta
    ) -> str | None:
        """Claim the right to answer `sender` under `rule` for `period` from `now`, in one
        conditional write: None when claimed (or claimed already for this same message), else
        when the sender was answered last (ISO time)."""
        ...


class AutoReplies(Protocol):
    """The inbox, sending a reply no person wrote (pecflow.services.inbox.Inbox)."""

    def queue_automatic_reply(
        self, mailbox: str, sha256: str, direct: Direct, message_id: str, *, actor: str, rule: str
    ) -> str: ...


class Records(Protocol):
    def get(self, mailbox: str, sha256: str) -> Any: ...


class Jobs(Protocol):
    def job(self, message_id: str) -> Any: ...


# --- values ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class RulesOutcome:
    applied: list[str] = field(default_factory=list)  # "rule: what was done"
    failed: list[str] = field(default_factory=list)  # "rule: what: why"
    skipped: list[str] = field(default_factory=list)  # "rule: what was not done: why" (auto-replies)
    quarantined: str | None = None

    def fields(self) -> dict[str, Any]:
        """What the message's record keeps of the rules' work."""
        done = {"at": clock.iso(), "applied": self.applied[:50], "failed": self.failed[:50]}
        return {"rules": done | ({"skipped": self.skipped[:50]} if self.skipped else {})}


# --- running ---------------------------------------------------------------------------------------
class RuleRunner:
    """The rules of each mailbox, read through `store` (kept for CACHE_SECONDS), run on each new
    recorded message."""

    def __init__(
        self,
        store: RulesStore,
        *,
        files: SavedFiles | None = None,
        acts: InboxActs | None = None,
        notifier: Notifier | None = None,
        claims: ReplyClaims | None = None,
        replies: AutoReplies | None = None,
        records: Records | None = None,
        jobs: Jobs | None = None,
        monotonic: Callable[[], float] | None = None,
        now: Callable[[], datetime] = clock.now,
    ):
        import time

        self.store, self.files, self.acts, self.notifier = store, files, acts, notifier
        self.claims, self.replies, self.records, self.jobs = claims, replies, records, jobs
        self.monotonic, self.now = monotonic or time.monotonic, now
        self._cache: dict[str, tuple[float, RulesDocument | None]] = {}

    def document(self, mailbox: str) -> RulesDocument | None:
        key = mailbox.lower()
        cached = self._cache.get(key)
        if cached is not None and self.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        data = self.store.rules(key)
        document = load(data) if data else None
        self._cache[key] = (self.monotonic(), document)
        return document

    def with_formats(self, record: dict[str, Any], msg: PecMessage) -> list[dict[str, Any]]:
        """The record's attachments, each with its format as its content shows it."""
        logical = msg.postacert if msg.postacert is not None else msg
        attachments = []
        for entry, attachment in zip(record.get("attachments") or [], msg.attachments or logical.attachments):
            try:
                found = sniff(attachment.content())
            except Exception as exc:  # noqa: BLE001 - a part that cannot be decoded is no format we know
                found = "other"
                entry = entry | {"format_problem": f"{type(exc).__name__}: {exc}"[:200]}
            attachments.append(entry | {"format": found})
        return attachments[:MAX_SNIFFED_ATTACHMENTS]

    def annotate(self, mailbox: str, record: dict[str, Any], msg: PecMessage) -> dict[str, Any]:
        """Before the record is written, when the mailbox has rules: each attachment's format
        by content on it, and (a rule answering) what marks the message as automatic, so a dry
        run sees it too (no write of its own). Never raises: `run` tries again."""
        try:
            document = self.document(mailbox)
            if document is None or document.empty:
                return record
            more: dict[str, Any] = {}
            if document.replies:
                sign = autoreply.automatic_sign(autoreply.logical_headers(msg))
                if sign:
                    more["automatic"] = sign
            if record.get("attachments"):
                more["attachments"] = self.with_formats(record, msg)
            return record | more
        except Exception:  # noqa: BLE001 - the record is written as it is; `run` will say why
            return record

    def run(
        self,
        mailbox: str,
        record: dict[str, Any],
        msg: PecMessage,
        quarantine: Callable[[str], None],
        *,
        listed: Callable[[], Mapping[str, Any] | None] = lambda: None,
    ) -> tuple[RulesOutcome, dict[str, Any]] | None:
        """Run the mailbox's rules on a message just recorded. None: the mailbox has no rules.
        Else what was done and the record's new fields (attachment formats, the outcome; none
        for a message without attachments that no rule matched). `listed` is called before the
        first rule that matched acts: the message's inbox row is then written (the poller leaves
        a new message's row to its batch's end otherwise), and returned if it was written just
        then (the first act on the row starts from it, without reading it back).
        Raises only when the rules document itself cannot be read."""
        document = self.document(mailbox)
        if document is None or document.empty:
            return None
        fields: dict[str, Any] = {}
        if any("format" not in a for a in record.get("attachments") or []):  # `annotate` failed
            fields["attachments"] = self.with_formats(record, msg)
            record = record | fields
        outcome = RulesOutcome()
        decisions = decide(document, record)
        fresh_row = [listed() if decisions else None]  # taken by the first act on the row
        for decision in decisions:
            self._apply(mailbox, record, msg, decision, outcome, quarantine, fresh_row)
        if not decisions and not fields:
            return outcome, {}  # nothing to say: no write (running them again would do nothing too)
        return outcome, fields | outcome.fields()

    def _apply(
        self,
        mailbox: str,
        record: dict[str, Any],
        msg: PecMessage,
        decision: Decision,
        outcome: RulesOutcome,
        quarantine: Callable[[str], None],
        fresh_row: list[Mapping[str, Any] | None],
    ) -> None:
        sha, then, rule = str(record["sha256"]), decision.actions, decision.rule

        def attempt(what: str, act: Callable[[], str | None]) -> None:
            try:
                done = act()
                if done is not None:  # None: not done, and `outcome.skipped` says why
                    outcome.applied.append(f"{rule}: {done}")
            except Exception as exc:  # noqa: BLE001 - one action failing stops nothing else
                outcome.failed.append(f"{rule}: {what}: {type(exc).__name__}: {exc}"[:500])

        if then.quarantine:
            reason = f"regola «{rule}»: {then.quarantine}"

            def quarantined() -> str:
                quarantine(reason)
                outcome.quarantined = reason
                self._note(mailbox, sha, rule, {"action": "quarantine", "reason": then.quarantine})
                return f"in quarantena ({then.quarantine})"

            attempt("quarantena", quarantined)
        if then.save is not None:
            attempt("salvataggio", lambda: self._save(mailbox, record, msg, rule, then))
        if then.tags:
            attempt(
                "etichetta",
                lambda: self._tag(mailbox, sha, then.tags, rule, fresh_row.pop() if fresh_row else None),
            )
        if then.assign:
            fresh_row.clear()  # the assignment reads the row itself
            attempt("assegnazione", lambda: self._assign(mailbox, sha, str(then.assign), rule))
        if then.notify:
            attempt("avviso", lambda: self._notify(mailbox, record, then.notify, rule))
        replied: list[str] = []
        if then.reply is not None:
            reply = then.reply
            attempt(
                "risposta automatica",
                lambda: self._reply(mailbox, record, msg, rule, reply, outcome, replied),
            )
        if then.pdf is not None:
            pdf = then.pdf
            attempt("PDF", lambda: self._pdf(mailbox, record, msg, rule, pdf, replied))

    def _reply(
        self,
        mailbox: str,
        record: dict[str, Any],
        msg: PecMessage,
        rule: str,
        reply: autoreply.AutoReply,
        outcome: RulesOutcome,
        replied: list[str],
    ) -> str | None:
        """Answer in automatic, unless the message is one never to answer or its sender was
        answered within the period (then None, and why on `outcome.skipped`)."""
        sha = str(record["sha256"])
        reason = autoreply.refusal(mailbox, record, autoreply.automatic_sign(autoreply.logical_headers(msg)))
        if reason is not None:
            outcome.skipped.append(f"{rule}: nessuna risposta automatica: {reason}")
            return None
        if self.claims is None or self.replies is None:
            raise RuntimeError("questa installazione non invia risposte automatiche (nessuna coda di invio)")
        subject, text = autoreply.render(reply, mailbox, record, rule)
        direct = make_direct(
            REPLY,
            mailbox=mailbox,
            to=autoreply.sender_of(record),
            text=text,
            original_subject=record.get("original_subject") or record.get("subject"),
            original_message_id=record.get("original_message_id") or record.get("message_id"),
            original_references=tuple(r for r in record.get("references") or () if r),
            original_sha256=sha,
            by=ACTOR,
        )
        direct = replace(direct, automatic=True, subject=subject or direct.subject)
        last = self.claims.claim(
            mailbox.lower(), direct.to, rule, sha256=sha, now=self.now(), period=reply.period
        )
        if last is not None:
            outcome.skipped.append(
                f"{rule}: nessuna risposta automatica: a {direct.to} si è già risposto il {last[:16].replace('T', ' ')} "
                f"(al più una volta ogni {autoreply.period_words(reply.once_per)})"
            )
            return None
        message_id = autoreply.message_id(mailbox, sha, rule)
        self.replies.queue_automatic_reply(mailbox, sha, direct, message_id, actor=ACTOR, rule=rule)
        replied.append(message_id)
        return f"risposta automatica a {direct.to} in coda per l'invio ({message_id})"

    def _pdf(
        self, mailbox: str, record: dict[str, Any], msg: PecMessage, rule: str, pdf: Pdf, replied: list[str]
    ) -> str:
        """The printable PDF of the message with the receipts known so far of the messages of ours
        it is linked to (a receipt: the message it is about, with every receipt of it)."""
        if self.files is None:
            raise RuntimeError("nessuna destinazione di salvataggio configurata")
        sha = str(record["sha256"])
        stored = _fields(self.records.get(mailbox, sha)) if self.records is not None else {}
        fields = record | {k: stored[k] for k in ("outgoing_message_id", "thread_of") if stored.get(k)}
        linked = []
        about = fields.get("outgoing_message_id") or fields.get("thread_of")
        if about:
            linked.append((str(about), "riguarda"))
        linked += [(message_id, "risposta automatica") for message_id in replied]
        sent = [self._sent(mailbox, message_id, relation) for message_id, relation in linked]
        key = f"{save_folder(pdf, record)}/{PDF_NAME}"
        self.files.put(key, printout_pdf(mailbox.lower(), fields, msg.body_text(), sent), "application/pdf")
        receipts = sum(len(s.receipts) for s in sent)
        self._note(mailbox, sha, rule, {"action": "pdf", "to": key, "receipts": receipts})
        return f"PDF stampabile in {key} ({receipts} ricevute)"

    def _sent(self, mailbox: str, message_id: str, relation: str) -> Sent:
        job = self.jobs.job(message_id) if self.jobs is not None else None
        if job is None:
            return Sent(message_id, relation, None, None, "sconosciuto", None, {}, ())
        receipts = []
        ordered = sorted(job.receipts.items(), key=lambda item: receipt_order(item[1]))
        for receipt_sha, seen in ordered[:MAX_PRINTED_RECEIPTS]:
            found = _fields(self.records.get(job.mailbox or mailbox, receipt_sha)) if self.records else {}
            kept = {k: found[k] for k in RECEIPT_FIELDS if found.get(k) is not None}
            receipts.append(
                Receipt(receipt_sha, seen.get("kind") or kept.get("kind"), seen.get("at"), None, kept)
            )
        head = job.head or {}
        reached = {str(state.value): at for state, at in (job.reached_at or {}).items()}
        return Sent(message_id, relation, head.get("subject"), job.recipient, str(job.state), job.error,
                    reached, tuple(receipts))  # fmt: skip

    def _save(self, mailbox: str, record: dict[str, Any], msg: PecMessage, rule: str, then: Any) -> str:
        if self.files is None:
            raise RuntimeError("nessuna destinazione di salvataggio configurata")
        save = then.save
        folder = save_folder(save, record)
        saved = []
        logical = msg.postacert if msg.postacert is not None else msg
        if "header" in save.parts:
            self.files.put(f"{folder}/header.json", _header(record), "application/json")
            saved.append("header.json")
        if "body" in save.parts:
            body = msg.body_text()
            if body is not None:
                self.files.put(f"{folder}/body.txt", body.encode("utf-8"), "text/plain; charset=utf-8")
                saved.append("body.txt")
        if "attachments" in save.parts:
            used: set[str] = set()
            for n, attachment in enumerate(msg.attachments or logical.attachments, 1):
                name = safe_name(attachment.filename or "", f"allegato-{n}")
                if name in used or name in ("header.json", "body.txt"):
                    name = f"{n}-{name}"
                used.add(name)
                self.files.put(f"{folder}/{name}", attachment.content(), attachment.content_type)
                saved.append(name)
        self._note(
            mailbox, str(record["sha256"]), rule, {"action": "save", "to": folder, "files": len(saved)}
        )
        return f"salvati {len(saved)} file in {folder}/"

    def _tag(
        self, mailbox: str, sha: str, tags: Iterable[str], rule: str, row: Mapping[str, Any] | None = None
    ) -> str:
        if self.acts is None:
            raise RuntimeError("la casella non ha una posta in arrivo a cui dare etichette")
        self.acts.tag(mailbox, sha, tags, rule, row=row)
        return f"etichetta {', '.join(tags)}"

    def _assign(self, mailbox: str, sha: str, username: str, rule: str) -> str:
        if self.acts is None:
            raise RuntimeError("la casella non ha una posta in arrivo in cui assegnare")
        self.acts.assign(mailbox, sha, username, rule)
        return f"assegnato a {username}"

    def _notify(self, mailbox: str, record: dict[str, Any], people: Iterable[str], rule: str) -> str:
        if self.notifier is None:
            raise RuntimeError("nessun canale di avviso configurato: l'avviso non è partito")
        self.notifier.notify(people, mailbox, record, rule)
        self._note(mailbox, str(record["sha256"]), rule, {"action": "notify", "to": ", ".join(people)})
        return f"avvisati {', '.join(people)}"

    def _note(self, mailbox: str, sha: str, rule: str, details: Mapping[str, object]) -> None:
        if self.acts is not None:
            self.acts.note(mailbox, sha, rule, details)


def _fields(record: Any) -> dict[str, Any]:
    """A message record as its stored fields (a MessageRecord, or the dict a store keeps)."""
    if record is None:
        return {}
    return record.as_dict() if hasattr(record, "as_dict") else dict(record)


def _header(record: Mapping[str, Any]) -> bytes:
    names = (
        "kind", "from", "sender", "to", "cc", "subject", "original_subject", "date", "message_id",
        "identificativo", "provider", "received_at", "sha256", "s3_key", "signature", "sdi", "rem",
    )  # fmt: skip
    header = {name: record[name] for name in names if record.get(name) not in (None, [], "")}
    return json.dumps(header, ensure_ascii=False, indent=2, default=str).encode("utf-8")


# --- the inbox, acted on by the rules ------------------------------------------------------------
class RuleActs:
    """Tags, assignments and notes written on the inbox with their audit events, by the actor
    "regole automatiche". Assignment goes through the inbox service (the same checks as a
    person's: the assignee must be able to take the mailbox's messages in charge)."""

    def __init__(
        self,
        inbox: Any,  # pecflow.services.inbox.Inbox
        rows: Any,  # its InboxRows
        audit: AuditPort,
        *,
        now: Callable[[], datetime] = clock.now,
    ):
        self.inbox, self.rows, self.audit, self.now = inbox, rows, audit, now

    @staticmethod
    def robot(mailbox: str) -> Person:
        return Person(ACTOR, "", name=ACTOR, roles={mailbox.lower(): Role.ADMIN})

    def assign(self, mailbox: str, sha256: str, username: str, rule: str) -> None:
        self.inbox.act(self.robot(mailbox), mailbox, sha256, Act.ASSIGN, to=username, note=f"regola «{rule}»")

    def tag(
        self,
        mailbox: str,
        sha256: str,
        tags: Iterable[str],
        rule: str,
        *,
        row: Mapping[str, Any] | None = None,
    ) -> None:
        """`row`: the row as just written, if it was (else, and after a conflict, it is read)."""
        given = row
        for _ in range(ACT_ATTEMPTS):
            row, given = given if given is not None else self.rows.row(mailbox, sha256), None
            if row is None:
                raise RuntimeError("il messaggio non è nella posta in arrivo")
            had = list(row.get("tags") or [])
            added = [t for t in tags if t not in had]
            if not added:
                return
            event = next_event(
                self.audit.head(mailbox),
                actor=ACTOR,
                action=AuditAction.TAG,
                at=self.now(),
                message=sha256,
                details={"rule": rule, "tags": ", ".join(added)},
            )
            outcome = self.rows.act(
                mailbox,
                sha256,
                expected_version=int(row.get("version") or 0),
                set_fields={"tags": had + added},
                audit=event,
                require_deleted=None,
            )
            if outcome == "done":
                return
        raise RuntimeError("il messaggio è occupato: etichetta non data")

    def note(self, mailbox: str, sha256: str, rule: str, details: Mapping[str, object]) -> None:
        AuditLog(self.audit, now=self.now).record(
            mailbox, actor=ACTOR, action=AuditAction.RULE, message=sha256, details={"rule": rule, **details}
        )


# --- trying and writing ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Trial:
    """What the rules would do with one recorded message."""

    sha256: str
    received_at: str
    kind: str
    sender: str
    subject: str
    decisions: list[Decision]
    would: list[str] = field(default_factory=list)  # "rule: what a reply or PDF action would do"


def dry_run(
    document: RulesDocument, records: Iterable[Mapping[str, Any]], *, mailbox: str | None = None
) -> Iterable[Trial]:
    """What each rule would do on recorded messages, without doing it: for an auto-reply, to
    whom and with what subject, or why not (the once-per-period rule played over the period's
    messages in order: the replies sent before it are not looked up)."""
    answered: dict[tuple[str, str], datetime] = {}
    for record in records:
        decisions = decide(document, record)
        would = []
        box = str(mailbox or record.get("mailbox") or "")
        for decision in decisions:
            then, rule = decision.actions, decision.rule
            if then.reply is not None:
                would.append(f"{rule}: {_would_reply(box, record, rule, then.reply, answered)}")
            if then.pdf is not None:
                would.append(f"{rule}: PDF stampabile in {save_folder(then.pdf, record)}/{PDF_NAME}")
        yield Trial(
            sha256=str(record.get("sha256")),
            received_at=str(record.get("received_at") or ""),
            kind=str(record.get("kind") or ""),
            sender=str(record.get("sender") or record.get("from") or ""),
            subject=str(record.get("original_subject") or record.get("subject") or ""),
            decisions=decisions,
            would=would,
        )


def _would_reply(
    mailbox: str,
    record: Mapping[str, Any],
    rule: str,
    reply: autoreply.AutoReply,
    answered: dict[tuple[str, str], datetime],
) -> str:
    reason = autoreply.refusal(mailbox, record)
    if reason is not None:
        return f"nessuna risposta automatica: {reason}"
    try:
        subject, _ = autoreply.render(reply, mailbox, record, rule)
    except ValueError as exc:
        return f"la risposta automatica non partirebbe: {exc}"
    sender = autoreply.sender_of(record)
    try:
        at = datetime.fromisoformat(str(record.get("received_at")))
    except ValueError:
        at = clock.now()
    last = answered.get((rule, sender))
    if last is not None and at - last < reply.period:
        return (
            f"nessuna risposta automatica: a {sender} si sarebbe già risposto il {last:%d/%m/%Y %H:%M} "
            f"(al più una volta ogni {autoreply.period_words(reply.once_per)})"
        )
    answered[(rule, sender)] = at
    subject = subject or subject_for(REPLY, record.get("original_subject") or record.get("subject"))
    return f"risponderebbe a {sender} con oggetto «{subject}» (non inviata: è una prova)"


class RulesDesk:
    """An admin reads and writes a mailbox's rules; each change is audited."""

    def __init__(self, store: RulesStore, audit: AuditLog | None = None):
        self.store, self.audit = store, audit

    def show(self, person: Person | None, mailbox: str) -> dict[str, Any] | None:
        if person is not None:
            person.require(mailbox, Action.MANAGE_RULES)
        return self.store.rules(mailbox.lower())

    def set(
        self, person: Person | None, mailbox: str, data: Any, *, actor: str | None = None
    ) -> RulesDocument:
        """Check and store a document (RulesError lists its problems); `person` None: the
        operator's CLI, named by `actor`."""
        if person is not None:
            person.require(mailbox, Action.MANAGE_RULES)
        document = load(data)
        by = person.username if person is not None else (actor or "cli")
        self.store.set_rules(mailbox.lower(), dict(document.source), by=by)
        if self.audit is not None:
            self.audit.record(
                mailbox.lower(),
                actor=by,
                action=AuditAction.RULES_CHANGE,
                message=mailbox.lower(),
                details={"change": "rules", "rules": len(document.rules),
                         "accepted_formats": ", ".join(sorted(document.accepted.allow)) if document.accepted else "-"},
            )  # fmt: skip
        return document


__all__ = ["RuleActs", "RuleRunner", "RulesDesk", "RulesError", "RulesOutcome", "dry_run"]

"""The stored shapes, written once: the DynamoDB adapters and the in-memory fakes (tests/fakes.py)
both build a new campaign job's items with `job_items` (a registered message's with
`registered_items`), keep a receipt on a job as `receipt_entry` and drop what only sending
needed as `left_behind` says, read a job's row back as a `JobRecord`,
a campaign item as a `CampaignRecord` and a received message's record as a `MessageRecord`.
Pure: no I/O.

The outgoing table holds, per message we send, a head item (sort key `MESSAGE_ROW`) and one row
per recipient carrying the job's state (docs/architecture.md, "The outgoing job state machine").
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from pecflow.domain.reconcile import CampaignStatus, Job, Move, State
from pecflow.pec import kinds

MESSAGE_ROW = "#message"  # the sort key of a message's head item, beside its recipients' rows
# attributes a new job's row stores even when empty: the moves write each receipt into the map
# (the stores otherwise drop None, "" and empty lists and maps, as DynamoDB would keep them)
KEPT_EMPTY = ("receipts",)
# what a job needs only until it leaves pending and sending (its claim, the claim whose SMTP
# submission started, its quota slot, the last exception for the dead-letter queue): the move
# to any other state removes them (`left_behind`), keeping a job's row under 1 KB (a write unit)
SENDING_ONLY = ("claimed_at", "submitting_claim", "slot_at", "last_failure")
# what a job's row keeps of a receipt, besides `delivered_to` and `recorded_at` (`receipt_entry`):
# what the views read without opening its record (which has the rest, by the same sha256)
RECEIPT_ENTRY = ("kind", "at", "error", "error_detail", "rem_event", "rem_reason")


def job_key(row: int, attempt: int) -> str:
    """Sort key of a job in its campaign (index ByCampaign): row order, then attempt."""
    return f"{row:09d}#{attempt:03d}"


def rows_covered(rows: Sequence[int] | None) -> int:
    """The CSV rows a job's message covers, from its stored `rows`: a group's, or its one row."""
    return len(rows) if rows else 1


def state_stamp(state: State) -> str:
    """The attribute holding when a job reached `state`: at_sent, at_sent_uncertain, ..."""
    return "at_" + state.value.replace("?", "_uncertain").replace("-", "_")


@dataclass(frozen=True, slots=True)
class NewJob:
    """One campaign job to create: a row of the recipients' CSV (and its attempt) for one address."""

    message_id: str
    recipient: str
    mailbox: str
    campaign_id: str
    row: int
    attempt: int
    values: Mapping[str, Any] | None = None  # the row's merge fields (a group's: with `righe`)
    rows: tuple[int, ...] | None = None  # a group's rows (group_by): `row` is the first of them
    cc: str | None = None  # the campaign's fixed copy: one more recipient of the message, no job

    @classmethod
    def from_dict(cls, job: Mapping[str, Any]) -> NewJob:
        """From the dict the services pass to `OutgoingStore.add_jobs` (KeyError names a
        missing field)."""
        values = job.get("values")
        return cls(
            message_id=str(job["message_id"]),
            recipient=str(job["recipient"]),
            mailbox=str(job["mailbox"]),
            campaign_id=str(job["campaign_id"]),
            row=int(job["row"]),
            attempt=int(job["attempt"]),
            values=dict(values) if values is not None else None,
            rows=tuple(int(r) for r in job["rows"]) if job.get("rows") else None,
            cc=str(job["cc"]) if job.get("cc") else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """The dict `OutgoingStore.add_jobs` takes (the inverse of `from_dict`)."""
        return {
            "message_id": self.message_id,
            "recipient": self.recipient,
            "mailbox": self.mailbox,
            "campaign_id": self.campaign_id,
            "row": self.row,
            "attempt": self.attempt,
            "values": dict(self.values) if self.values is not None else None,
            **({"rows": list(self.rows)} if self.rows else {}),
            **({"cc": self.cc} if self.cc else {}),
        }

    @property
    def key(self) -> str:
        return job_key(self.row, self.attempt)

    @property
    def rows_covered(self) -> int:
        return rows_covered(self.rows)


def move_stamps(move: Move) -> tuple[str, ...]:
    """The `at_<state>` stamps a move writes where the job has none yet: its state's, and those
    of the states it implies the job passed (`Move.through`)."""
    return tuple(state_stamp(state) for state in (move.to, *sorted(move.through)))


def left_behind(state: State, *, kept: Collection[str] = ()) -> tuple[str, ...]:
    """The attributes a move to `state` removes from the job besides those it names (`kept`: it
    sets or removes them itself): SENDING_ONLY, past pending and sending."""
    if state in (State.PENDING, State.SENDING):
        return ()
    return tuple(name for name in SENDING_ONLY if name not in kept)


def receipt_entry(receipt: Mapping[str, Any], recipient: str, now: str) -> dict[str, Any]:
    """A receipt as the row of the job it concerns keeps it, in `receipts` by its sha256, recorded
    `now`: the RECEIPT_ENTRY fields, `delivered_to` only when it is not the job's `recipient`,
    and `recorded_at` only when the receipt says no time (`at`). Plain values, before cleaning."""
    entry = {name: receipt[name] for name in RECEIPT_ENTRY if receipt.get(name) not in (None, "")}
    if receipt.get("delivered_to") and receipt["delivered_to"] != recipient:
        entry["delivered_to"] = receipt["delivered_to"]
    if not entry.get("at"):
        entry["recorded_at"] = now
    return entry


# a job's receipts in the order the PEC flow gives them where their times tie (the same second):
# the provider's accettazione first, then the recipient provider's presa in carico, then the rest
_FLOW_RANK = {kinds.ACCETTAZIONE: 0, kinds.NON_ACCETTAZIONE: 0, kinds.PRESA_IN_CARICO: 1}


def receipt_order(receipt: Mapping[str, Any]) -> tuple[str, int]:
    """The sort key of a receipt kept on a job: its time, then its place in the PEC flow (a
    stored map of receipts promises no order of its own)."""
    return str(receipt.get("at") or receipt.get("recorded_at") or ""), _FLOW_RANK.get(
        str(receipt.get("kind")), 2
    )


def receipts_written(
    receipt_id: str | None, receipt: Mapping[str, Any] | None, carried: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, Mapping[str, Any]]:
    """The receipts one write keeps on a job (id -> receipt), in the order they came: those it
    carries (an accettazione its outcome takes along) before its own, as one by one."""
    return {**(carried or {}), **({receipt_id: receipt or {}} if receipt_id else {})}


def registered_items(
    message_id: str,
    mailbox: str,
    recipients: Sequence[str],
    subject: str | None,
    state: State,
    campaign_id: str | None,
    extra: Mapping[str, Any] | None,
    *,
    now: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The head item and the recipients' rows of a message registered `now` (a reply, a forward,
    an invoice, a test send), from `OutgoingStore.register`'s arguments, in its order: its
    recipients in `state`. Plain values, before the stores' cleaning; keep `KEPT_EMPTY` through it."""
    head: dict[str, Any] = {
        "message_id": message_id,
        "recipient": MESSAGE_ROW,
        "mailbox": mailbox.lower(),
        "subject": subject,
        "campaign_id": campaign_id,
        "created_at": now,
        "recipients": [r.lower() for r in recipients],
        **(extra or {}),
    }
    rows: list[dict[str, Any]] = [
        {
            "message_id": message_id,
            "recipient": address.lower(),
            "state": str(state),
            "certified": True,
            "campaign_id": campaign_id,
            "updated_at": now,
            state_stamp(state): now,  # when it was created (the head's created_at too)
            "receipts": {},
        }
        for address in recipients
    ]
    return head, rows


def job_items(job: NewJob, now: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The head item and the recipient's row of a new campaign job, created `now` (ISO time),
    pending. Plain values, before the stores' cleaning; keep `KEPT_EMPTY` through it. The head
    keeps the addresses as given; the row's key is the recipient in lower case. The row's
    creation time is its `at_pending` (the head's `created_at`)."""
    head: dict[str, Any] = {
        "message_id": job.message_id,
        "recipient": MESSAGE_ROW,
        "mailbox": job.mailbox,
        "campaign_id": job.campaign_id,
        "created_at": now,
        "recipients": [job.recipient],
        **({"cc": [job.cc.lower()]} if job.cc else {}),  # its receipts are expected, never a job's
    }
    row: dict[str, Any] = {
        "message_id": job.message_id,
        "recipient": job.recipient.lower(),
        "state": str(State.PENDING),
        "certified": True,
        "campaign_id": job.campaign_id,
        "job_key": job.key,
        "row": job.row,
        "attempt": job.attempt,
        "values": dict(job.values) if job.values is not None else None,
        **({"rows": list(job.rows)} if job.rows else {}),
        "updated_at": now,
        "mailbox": job.mailbox,
        state_stamp(State.PENDING): now,
        "receipts": {},
    }
    return head, row


# the attribute of each state's time stamp, and back
_STAMPS = {state_stamp(state): state for state in State}


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job as the outgoing store reads it back: a recipient's row (`OutgoingStore.job`, with
    its message's head item, and `campaign_jobs`, without). Every attribute the code writes on a
    job row is a field; an attribute this class does not know is kept in `extra`, never lost.
    Absent attributes are None (the stores never keep None or "": nothing is confused)."""

    message_id: str
    recipient: str  # the row's key: the address in lower case
    state: State
    certified: bool = True  # False: an external (non-PEC) recipient, learnt from the accettazione
    campaign_id: str | None = None
    mailbox: str | None = None  # the sending mailbox (campaign jobs)
    job_key: str | None = None  # `job_key(row, attempt)`: the job's place in its campaign
    row: int | None = None  # the CSV row (campaign jobs)
    attempt: int | None = None  # 1, then one more per resend
    values: Mapping[str, Any] | None = None  # the row's merge fields
    rows: tuple[int, ...] | None = None  # the CSV rows a group's message covers (group_by)
    created_at: str | None = None  # older rows only: now its first stamp says it (and the head's)
    updated_at: str | None = None
    reached_at: Mapping[State, str] = field(default_factory=dict)  # the `at_<state>` stamps
    receipts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # by sha256: `receipt_entry`
    last_reason: str | None = None  # why the last move was made
    error: str | None = None  # why it failed (SMTP refusal, render, a failure receipt's words)
    smtp_answer: str | None = None
    claimed_at: str | None = None  # the sender's claim (CLAIM), conditions the stale-claim moves
    slot_at: float | None = None  # the quota slot the job holds (0: none)
    submitting_claim: str | None = None  # the claim whose SMTP submission started
    sent_s3_key: str | None = None  # the archived bytes of what was submitted
    size: int | None = None  # of those bytes
    last_failure: str | None = None  # the last exception of a send, for the dead-letter queue
    dead_letter: str | None = None  # why its queue message was dead-lettered (until redriven)
    redriven_at: str | None = None
    head: Mapping[str, Any] | None = None  # the message's head item (`OutgoingStore.job` only)
    extra: Mapping[str, Any] = field(default_factory=dict)  # any other attribute, as stored

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> JobRecord:
        """From a job row as stored (plain values: ints and floats, not Decimals), with "head"
        when the store adds its message's head item. KeyError names a missing key attribute."""
        known = {f.name for f in fields(cls)} - {"reached_at", "extra"}
        typed: dict[str, Any] = {
            "message_id": str(item["message_id"]),
            "recipient": str(item["recipient"]),
            "state": State(item["state"]),
        }
        reached: dict[State, str] = {}
        extra: dict[str, Any] = {}
        for name, value in item.items():
            if name in typed:
                continue
            if name in _STAMPS:
                reached[_STAMPS[name]] = value
            elif name in known:
                typed[name] = value
            else:
                extra[name] = value
        if "certified" in typed:
            typed["certified"] = bool(typed["certified"])
        for name in ("row", "attempt", "size"):
            if typed.get(name) is not None:
                typed[name] = int(typed[name])
        if typed.get("rows") is not None:
            typed["rows"] = tuple(int(r) for r in typed["rows"])
        return cls(**typed, reached_at=reached, extra=extra)

    def as_dict(self) -> dict[str, Any]:
        """The row as stored (what `from_item` was given; a row read without `certified` or
        `receipts` shows their defaults): for exports and views."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "reached_at":
                out.update({state_stamp(state): at for state, at in value.items()})
            elif f.name == "extra":
                out.update(value)
            elif f.name == "state":
                out["state"] = str(value)
            elif value is not None:
                out[f.name] = value
        return out

    @property
    def rows_covered(self) -> int:
        """The CSV rows this job's message covers: those of its group, or its one row."""
        return rows_covered(self.rows)

    def as_job(self) -> Job:
        """The job as the state machine moves it (recipient, state, certified, campaign)."""
        return Job(self.recipient, self.state, self.certified, self.campaign_id, self.rows_covered)


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    """A campaign item as the campaign store reads it back (`CampaignStore.get`): its definition,
    pinned files, status, fan-out progress and counters. Every attribute the code writes is a
    field; an attribute this class does not know is kept in `extra`, never lost. Absent attributes
    are None, or empty for the collections (the stores never keep None, "" or an empty list or
    map)."""

    campaign_id: str
    status: CampaignStatus | None = None  # None only on an item a figure's update created
    mailbox: str | None = None  # the sending mailbox (from the manifest)
    manifest: Mapping[str, Any] | None = None  # the manifest as validated (`Manifest.to_dict`)
    dry_run: bool | None = None
    start_at: str | None = None  # ISO time: no job is sent before
    attempts: int | None = None
    files: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # the pins, by file name
    validation: Mapping[str, Any] | None = None  # the validation's summary
    invalid_reason: str | None = None
    problems: Sequence[str] = ()  # what `campaign stats` shows (`CampaignStore.note_problem`)
    counters: Mapping[str, int] = field(default_factory=dict)  # reconcile.COUNTERS
    # the same figures in CSV rows (each job weighted by the rows it covers); None on a campaign
    # created before they were kept
    row_counters: Mapping[str, int] | None = None
    counting_started: bool | None = None
    dead_lettered: int | None = None  # jobs stopped on the dead-letter queue, not redriven
    fanout_next_row: int | None = None  # the fan-out's checkpoint: rows before it are queued
    fanout_queued: int | None = None
    fanout_queued_rows: int | None = None  # the CSV rows those queued jobs cover
    fanout_error: str | None = None  # why the queuing stopped early
    fanout_finished_at: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # any other attribute, as stored

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> CampaignRecord:
        """From a campaign item as stored (plain values). KeyError without its id; ValueError for
        a status that is not a CampaignStatus."""
        known = {f.name for f in fields(cls)} - {"extra"}
        typed: dict[str, Any] = {"campaign_id": str(item["campaign_id"])}
        extra: dict[str, Any] = {}
        for name, value in item.items():
            if name in known:
                typed.setdefault(name, value)
            else:
                extra[name] = value
        if typed.get("status") is not None:
            typed["status"] = CampaignStatus(typed["status"])
        for name in ("attempts", "dead_lettered", "fanout_next_row", "fanout_queued", "fanout_queued_rows"):
            if typed.get(name) is not None:
                typed[name] = int(typed[name])
        for name in ("files", "counters"):
            if typed.get(name) is None:
                typed.pop(name, None)
        for name in ("counters", "row_counters"):
            if typed.get(name) is not None:
                typed[name] = {str(k): int(v) for k, v in typed[name].items()}
        if typed.get("problems") is None:
            typed.pop("problems", None)
        return cls(**typed, extra=extra)

    def as_dict(self) -> dict[str, Any]:
        """The item as stored (what `from_item` was given): for exports and views."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                out.update(value)
            elif f.name == "status" and value is not None:
                out["status"] = str(value)
            elif f.name in ("files", "counters", "problems"):
                if value:
                    out[f.name] = value
            elif value is not None:
                out[f.name] = value
        return out


# --- received messages -----------------------------------------------------------------------------
MESSAGE_KEY_PREFIX = "sha256:"  # a message record's sort key: "sha256:<hex>"
# stored attribute → field, where the attribute's name is no Python name
_MESSAGE_FIELDS = {"from": "from_address"}
_MESSAGE_ATTRIBUTES = {field_name: name for name, field_name in _MESSAGE_FIELDS.items()}


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A received message's record as the message store reads it back (`MessageStore.get`,
    `query`; `at_location` gives an `on_provider_record`): where it is, what the classifier
    found, and what the poller did with it (reconciliation, quarantine, saturation). Every
    attribute the code writes is a field (the stored `from` is `from_address`); an attribute this
    class does not know is kept in `extra`, never lost. Absent attributes are None, or empty for
    the lists (the stores never keep None, "" or an empty list or map)."""

    mailbox: str  # the table's key: the address in lower case
    sha256: str  # of the original bytes (the sort key is "sha256:<hex>"); "unfetched-..." for a
    # message too large to fetch
    kind: str | None = None  # pecflow.pec.kinds; None only on an item an update created
    size: int | None = None
    s3_key: str | None = None  # the archived original
    folder: str | None = None
    uid: int | None = None
    uidvalidity: int | None = None
    received_at: str | None = None
    received_key: str | None = None  # "received_at#sha256[:16]": the indexes' sort key
    recorded_at: str | None = None
    subject: str | None = None
    message_id: str | None = None
    from_address: str | None = None  # stored as `from`
    to: Sequence[str] = ()
    cc: Sequence[str] = ()
    date: str | None = None
    in_reply_to: str | None = None  # the conversation (for an envelope, its inner message's)
    references: Sequence[str] = ()  # the first (the thread's root) and the last nine
    ref_message_id: str | None = None
    original_message_id: str | None = None
    identificativo: str | None = None
    provider: str | None = None
    receipt_type: str | None = None
    sender: str | None = None
    recipients: Sequence[Mapping[str, Any]] = ()  # daticert: address and type
    original_subject: str | None = None
    timestamp: str | None = None
    delivered_to: str | None = None
    error: str | None = None
    error_detail: str | None = None
    attachments: Sequence[Mapping[str, Any]] = ()  # filename, content_type, size
    sdi: Mapping[str, Any] | None = None  # an SdI notification's fields
    rem: Mapping[str, Any] | None = None  # a REM message: message_type, event, reason, reason_text, ...
    problems: Sequence[str] = ()
    # the provider's signature (pecflow.pec.signature): valid | invalid | untrusted | missing | expired
    signature: str | None = None
    signature_detail: str | None = None  # why, in a sentence
    signer: Mapping[str, Any] | None = None  # subject, issuer, serial, not_before, not_after, email
    signed_at: str | None = None  # when it was signed (signingTime, else the daticert time)
    signed_at_from: str | None = None  # "signingTime" | "daticert" | "received"
    on_provider: str | None = None  # "yes", "expunged", "moved to <folder>"
    left_provider_at: str | None = None
    archive_problem: str | None = None  # why the archived copy did not verify
    quarantined: Mapping[str, Any] | None = None  # stage, reason, at
    quarantined_mailbox: str | None = None  # sparse index Quarantined
    reconciled: str | None = None  # a receipt: "matched" or "unmatched"
    outgoing_message_id: str | None = None  # the message of ours a matched receipt is about
    reconcile_problems: Sequence[str] = ()
    unmatched_mailbox: str | None = None  # sparse index Unmatched
    thread_of: str | None = None  # the message of ours a certified message answers
    extra: Mapping[str, Any] = field(default_factory=dict)  # any other attribute, as stored

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> MessageRecord:
        """From a message record as stored (plain values). KeyError without its keys; `sha256`
        from the sort key when the item lacks the attribute (an item an update created)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        typed: dict[str, Any] = {"mailbox": str(item["mailbox"])}
        key = str(item["message"])
        typed["sha256"] = str(item.get("sha256") or key.removeprefix(MESSAGE_KEY_PREFIX))
        extra: dict[str, Any] = {}
        for stored, value in item.items():
            if stored in ("mailbox", "message", "sha256"):
                continue
            if stored in _MESSAGE_FIELDS:
                typed[_MESSAGE_FIELDS[stored]] = value
            elif stored in known and stored not in _MESSAGE_ATTRIBUTES:
                typed[stored] = value
            else:
                extra[stored] = value
        for name in ("size", "uid", "uidvalidity"):
            if typed.get(name) is not None:
                typed[name] = int(typed[name])
        for name in ("to", "cc", "references", "recipients", "attachments", "problems", "reconcile_problems"):
            if typed.get(name) is None:
                typed.pop(name, None)
        return cls(**typed, extra=extra)

    @property
    def key(self) -> str:
        """The record's sort key in its mailbox."""
        return MESSAGE_KEY_PREFIX + self.sha256

    def as_dict(self) -> dict[str, Any]:
        """The record as stored, keys included (what `from_item` was given; an item an update
        created shows its `sha256`): for `inbox list --json` and views."""
        out: dict[str, Any] = {"mailbox": self.mailbox, "message": self.key}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                out.update(value)
            elif isinstance(value, (list, tuple)) and not value:
                continue
            elif value is not None:
                out[_MESSAGE_ATTRIBUTES.get(f.name, f.name)] = value
        return out


def on_provider_record(mailbox: str, folder: str, uidvalidity: int, uid: int, sha256: str) -> MessageRecord:
    """What the UID map says of a message still on the provider (`MessageStore.at_location`):
    where it is, what it is and its archived copy's key. No date: the saturation guard has the
    provider's INTERNALDATE (without one, a message counts as arrived now: it is the last to go)."""
    return MessageRecord(
        mailbox=mailbox.lower(),
        sha256=sha256,
        s3_key=archived_key(sha256),
        folder=folder,
        uid=uid,
        uidvalidity=uidvalidity,
    )


def on_provider_records(
    mailbox: str, folder: str, uidvalidity: int, packed: Iterable[bytes], wanted: Collection[int]
) -> dict[int, MessageRecord]:
    """The `wanted` UIDs the UID map's items (their packed entries) name, by UID."""
    from pecflow.domain.mailbox import uid_map_entries

    return {
        uid: on_provider_record(mailbox, folder, uidvalidity, uid, sha)
        for entries in packed
        for uid, sha in uid_map_entries(entries).items()
        if uid in wanted
    }


# --- a received message's record as stored ---------------------------------------------------------
# DynamoDB charges a write unit per started KB of an item: a record is stored under 1 KB (1 WRU,
# not 2) by leaving out what it can be told from (`stored_record`, read back whole by
# `whole_record`; the archived .eml keeps everything, the record nothing less than before):
#   - the provider's signer (its certificate's subject, issuer, serial, validity, e-mail: the same
#     on every message a provider signs) and, for a valid or untrusted signature, the verdict's
#     sentence are kept once in a signature item (`signature_item`), named by the SHA-256 of its
#     content: the record keeps `signer_ref`;
#   - a value equal to what another attribute of the record says (DERIVED) is left out, and one
#     that is empty where the derivation would give a value is stored as NULL; a record with
#     these absences says so by `shape` (RECORD_SHAPE), so a record without it (written before)
#     is read as it is;
#   - attachments and recipients are lists of their values (ATTACHMENT, RECIPIENT) instead of
#     maps repeating the names.
# The derivations' sources are never changed after the record is written (`set_fields` writes
# reconciliation, quarantine, rules, saturation: none of them); a value set later is stored whole.
RECORD_SHAPE = 2
# the outcomes whose sentence is the signer's (or the trust anchors'), not the message's
SIGNATURE_SHARED = frozenset({"valid", "untrusted"})
ATTACHMENT = ("filename", "content_type", "size", "format")  # format: when the mailbox has rules
RECIPIENT = ("address", "type")
_DELIVERY_KINDS = frozenset({"avvenuta-consegna", "errore-consegna", "preavviso-errore-consegna"})


ARCHIVE_PREFIX = "messages/"  # adapters.archive.Archive's default


def archived_key(sha256: str, prefix: str = ARCHIVE_PREFIX) -> str:
    """Where the archive keeps a message's original (adapters.archive.Archive's layout)."""
    return f"{prefix}{sha256[:2]}/{sha256}.eml"


def _after_prefix(subject: Any) -> str | None:
    """A provider's subject without its prefix ("ACCETTAZIONE: <original subject>")."""
    if not isinstance(subject, str):
        return None
    return subject.partition(": ")[2] or None


def _only_recipient(item: Mapping[str, Any]) -> str | None:
    recipients = item.get("recipients") or []
    if item.get("kind") not in _DELIVERY_KINDS or len(recipients) != 1:
        return None
    first = recipients[0]
    return first.get("address") if isinstance(first, Mapping) else first[0]


# attribute -> what the rest of the record says it is (None: nothing)
DERIVED: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "received_at": lambda i: str(i.get("received_key") or "").partition("#")[0] or None,
    "s3_key": lambda i: archived_key(i["sha256"]) if i.get("sha256") else None,
    "date": lambda i: i.get("timestamp"),
    "signed_at": lambda i: i.get("timestamp") if i.get("signed_at_from") == "daticert" else None,
    "original_subject": lambda i: _after_prefix(i.get("subject")),
    "delivered_to": _only_recipient,
    "outgoing_message_id": lambda i: i.get("ref_message_id"),
    "to": lambda i: [i["mailbox"]] if i.get("mailbox") else None,
    "on_provider": lambda i: "yes",
}


def signature_item(fields: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """What a record's signature fields share with every message the same signer signs: its
    reference (the first 128 bits of the SHA-256 of its content, hex) and content; None without
    a signer."""
    signer = fields.get("signer")
    if not isinstance(signer, Mapping):
        return None
    content: dict[str, Any] = {"signer": dict(signer)}
    if fields.get("signature") in SIGNATURE_SHARED and fields.get("signature_detail"):
        content["signature_detail"] = fields["signature_detail"]
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32], content


def _without_signature(fields: dict[str, Any], shared: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    found = signature_item(fields)
    if found is None:
        return fields
    shared.append(found)
    ref, content = found
    return {k: v for k, v in fields.items() if k not in content} | {"signer_ref": ref}


def _values(value: Any, names: tuple[str, ...]) -> Any:
    """An attachment or recipient as the list of its values, when it has exactly the first of
    `names` (else as it is)."""
    if isinstance(value, Mapping) and set(value) == set(names[: len(value)]):
        return [value[n] for n in names[: len(value)]]
    return value


def stored_record(item: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """A new record as stored (`item`: the record with its keys, None and empty values dropped)
    and the signature items it refers to (reference, content). None values in the result are
    stored as NULL: empty where the derivation says otherwise."""
    shared: list[tuple[str, dict[str, Any]]] = []
    whole = {**item, "sha256": item.get("sha256") or str(item["message"]).removeprefix(MESSAGE_KEY_PREFIX)}
    out: dict[str, Any] = {
        k: v for k, v in _without_signature(dict(item), shared).items() if k not in DERIVED
    }
    if out.get("sha256") == str(item["message"]).removeprefix(MESSAGE_KEY_PREFIX):
        del out["sha256"]
    if isinstance(out.get("rem"), Mapping):  # a REM evidence's own signature
        out["rem"] = _without_signature(dict(out["rem"]), shared)
    for name, derive in DERIVED.items():
        value, derived = item.get(name), derive(whole)
        if value != derived and (value or derived):
            out[name] = value or None
    for name, fields_of in (("attachments", ATTACHMENT), ("recipients", RECIPIENT)):
        out[name] = [_values(v, fields_of) for v in item.get(name, [])]
    out["shape"] = RECORD_SHAPE
    return {k: v for k, v in out.items() if v != []}, shared


def whole_record(item: Mapping[str, Any], signatures: Callable[[str], Mapping[str, Any]]) -> dict[str, Any]:
    """A record as `stored_record` was given it, from the item stored (plain values; an item
    written before RECORD_SHAPE is returned as it is). `signatures`: the content of a signature
    item by its reference."""
    out = dict(item)
    if isinstance(out.get("rem"), Mapping):
        out["rem"] = dict(out["rem"])
    for name, fields_of in (("attachments", ATTACHMENT), ("recipients", RECIPIENT)):
        if out.get(name):
            out[name] = [
                dict(zip(fields_of, v, strict=False)) if isinstance(v, list) else v for v in out[name]
            ]
    for where in (out, out.get("rem")):
        if isinstance(where, dict) and "signer_ref" in where:
            shared = signatures(where.pop("signer_ref"))
            # a copy: the content is cached, shared by every record naming it
            where.update({k: copy.deepcopy(v) for k, v in shared.items() if k not in where})
    if out.get("shape") != RECORD_SHAPE:
        return out
    del out["shape"]
    out.setdefault("sha256", str(out["message"]).removeprefix(MESSAGE_KEY_PREFIX))
    whole = out.copy()
    for name, derive in DERIVED.items():
        if name not in out:
            value = derive(whole)
            if value is not None:
                out[name] = value
        elif out[name] is None:
            del out[name]
    return out

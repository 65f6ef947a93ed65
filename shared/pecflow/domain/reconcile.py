"""The life of one outgoing PEC to one recipient, and how receipts move it (docs/architecture.md,
"The outgoing job state machine").

pending → sending → sent → accepted → delivered, with the terminal failures not-accepted,
delivery-failed and error, `warning` for a preavviso, and `sent?` for a message whose SMTP
answer was lost after DATA (only its receipts can tell). Every move is expressed as
"to this state, only from these states", so a storage adapter can apply it with one
conditional write: a duplicate, late or out-of-order event is a no-op, never a step back.
Pure domain code: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from pecflow.pec import kinds
from pecflow.pec.rem import ALL_LISTED, PER_RECIPIENT_EVENTS, RELAY_TO_NON_ERDS, attribution

if TYPE_CHECKING:
    from pecflow.pec.message import PecMessage


class State(StrEnum):
    PENDING = "pending"  # da spedire
    SENDING = "sending"  # claimed by a sender, SMTP under way
    UNCERTAIN = "sent?"  # SMTP answer lost after DATA: the receipts will tell
    SENT = "sent"  # solo inviata: the provider took it over SMTP
    ACCEPTED = "accepted"  # accettazione received
    WARNING = "warning"  # preavviso di mancata consegna
    DELIVERED = "delivered"  # avvenuta consegna
    NOT_ACCEPTED = "not-accepted"  # non accettazione
    DELIVERY_FAILED = "delivery-failed"  # errore consegna / mancata consegna
    ERROR = "error"  # SMTP permanent failure, invalid job
    CANCELLED = "cancelled"  # campaign cancelled before it was sent


TERMINAL = frozenset(
    {State.DELIVERED, State.NOT_ACCEPTED, State.DELIVERY_FAILED, State.ERROR, State.CANCELLED}
)
_BEFORE_RECEIPTS = frozenset({State.PENDING, State.SENDING, State.UNCERTAIN, State.SENT})


@dataclass(frozen=True, slots=True)
class Move:
    """Go to `to`, only from one of `only_from` (the condition of the write). `through`: states
    the move implies the job passed (their stamps written too, where absent)."""

    to: State
    only_from: frozenset[State]
    reason: str
    through: frozenset[State] = frozenset()

    def applies_to(self, current: State) -> bool:
        return current in self.only_from


# --- the sender's own steps ------------------------------------------------------------------
CLAIM = Move(State.SENDING, frozenset({State.PENDING}), "claimed for sending")
SMTP_ACCEPTED = Move(State.SENT, frozenset({State.SENDING}), "accepted over SMTP")
SMTP_LOST = Move(State.UNCERTAIN, frozenset({State.SENDING}), "SMTP answer lost after DATA")
SMTP_RETRY = Move(State.PENDING, frozenset({State.SENDING}), "temporary SMTP failure: to send again")
SMTP_FAILED = Move(State.ERROR, frozenset({State.PENDING, State.SENDING}), "permanent SMTP failure")
CANCEL = Move(State.CANCELLED, frozenset({State.PENDING}), "cancelled before sending")
# a job whose queue message reached the dead-letter queue: an error the statistics show, until
# a person re-drives it (only a job that never started its SMTP submission)
DEAD_LETTER = Move(State.ERROR, frozenset({State.PENDING, State.SENDING}), "stopped on the dead-letter queue")
# REM RelayToNonERDS: the provider handed the message to ordinary e-mail, as a PEC accettazione
# for an external recipient says: the job ends at accepted, not certified (counted as done).
# Also from accepted: the REM SubmissionAcceptance does not tell external recipients apart.
RELAYED_TO_EXTERNAL = Move(
    State.ACCEPTED,
    _BEFORE_RECEIPTS | {State.ACCEPTED},
    "relayed to an ordinary (non-REM) e-mail address: no delivery receipt will follow",
)
REDRIVE = Move(State.PENDING, frozenset({State.ERROR}), "re-driven from the dead-letter queue")
ACCEPTING = Move(State.ACCEPTED, _BEFORE_RECEIPTS, "accettazione")  # an accettazione's move
_NOT_PAST_ACCEPTED = _BEFORE_RECEIPTS | {State.ACCEPTED}


class CampaignStatus(StrEnum):
    """Where a campaign is: checked, queuing its jobs, sending, paused or cancelled."""

    VALIDATING = "validating"
    INVALID = "invalid"
    VALIDATED = "validated"  # dry run: checked, nothing queued
    QUEUING = "queuing"
    SENDING = "sending"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"  # derived for the statistics (every job has its outcome), never stored


_PERMANENT = re.compile(r"^\s*5\.\d{1,3}\.\d{1,3}")


def move_for_receipt(
    kind: str, *, error_detail: str | None = None, for_recipient: bool = True
) -> Move | None:
    """The move a receipt of `kind` makes on the job of the recipient it concerns.

    `for_recipient` is False when the receipt names a recipient other than the job's (it then
    concerns that other recipient's job) — only message-wide receipts (accettazione,
    non-accettazione) apply to every recipient. None: the receipt changes no state.
    """
    if kind == kinds.ACCETTAZIONE:
        return ACCEPTING
    if kind == kinds.NON_ACCETTAZIONE:
        return Move(State.NOT_ACCEPTED, _BEFORE_RECEIPTS, "non accettazione")
    if not for_recipient:
        return None
    # a consegna may arrive before the accettazione: it still ends the job
    open_states = _BEFORE_RECEIPTS | {State.ACCEPTED, State.WARNING}
    if kind == kinds.AVVENUTA_CONSEGNA:  # delivered: accepted too (counted so, and stamped)
        return Move(State.DELIVERED, open_states, "avvenuta consegna", frozenset({State.ACCEPTED}))
    if kind in (kinds.ERRORE_CONSEGNA, kinds.RILEVAZIONE_VIRUS):
        return Move(State.DELIVERY_FAILED, open_states, kind.replace("-", " "))
    if kind == kinds.PREAVVISO_ERRORE_CONSEGNA:
        # Aruba and Namirial send preavvisi whose error is already permanent (5.x.x): final
        if error_detail and _PERMANENT.match(error_detail):
            return Move(State.DELIVERY_FAILED, open_states, "preavviso with a permanent error")
        return Move(State.WARNING, _BEFORE_RECEIPTS | {State.ACCEPTED}, "preavviso di mancata consegna")
    return None  # presa-in-carico: provider to provider, no state


def next_state(current: State, move: Move | None) -> State:
    """Where `current` ends after `move` (unchanged when the move does not apply)."""
    if move is None or not move.applies_to(current):
        return current
    return move.to


# --- what the statistics panel counts -----------------------------------------------------------
def buckets(state: State, *, certified: bool = True) -> tuple[str, ...]:
    """The campaign counters a job in `state` belongs to (besides `total`).

    An external (non-PEC) recipient never gets a delivery receipt: its job ends at
    `accepted`, which is then counted as done, not as waiting.
    """
    if state in (State.PENDING, State.SENDING):
        return ("to_send",)
    if state in (State.SENT, State.UNCERTAIN):
        return ("sent", "only_sent", "waiting")
    if state == State.ACCEPTED:
        return ("sent", "accepted", "waiting") if certified else ("sent", "accepted")
    if state == State.WARNING:
        return ("sent", "accepted", "waiting", "warnings")
    if state == State.DELIVERED:
        return ("sent", "accepted", "delivered")
    if state == State.DELIVERY_FAILED:
        return ("sent", "delivery_failures")
    if state == State.NOT_ACCEPTED:
        return ("sent", "errors")
    if state == State.ERROR:
        return ("errors",)
    return ("cancelled",)


COUNTERS = (
    "total",
    "to_send",
    "waiting",
    "sent",
    "only_sent",
    "accepted",
    "delivered",
    "delivery_failures",
    "warnings",
    "errors",
    "cancelled",
)


def counter_deltas(
    old: State | None, new: State, *, certified: bool = True, old_certified: bool | None = None
) -> dict[str, int]:
    """Counter changes for a job moving old → new (old None: the job is created). The
    accettazione may also tell that the recipient is external: `old_certified` is then the
    flag the job was counted with before."""
    deltas: dict[str, int] = {}
    if old is None:
        deltas["total"] = 1
    else:
        for name in buckets(old, certified=certified if old_certified is None else old_certified):
            deltas[name] = deltas.get(name, 0) - 1
    for name in buckets(new, certified=certified):
        deltas[name] = deltas.get(name, 0) + 1
    return {name: delta for name, delta in deltas.items() if delta}


def weighted(deltas: dict[str, int], rows: int) -> dict[str, int]:
    """The same counter changes counted in CSV rows: a job counts for the rows its message covers."""
    return {name: delta * rows for name, delta in deltas.items()}


# --- matching receipts to what we sent ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Job:
    """One recipient of one message we sent."""

    address: str
    state: State
    certified: bool = True
    campaign_id: str | None = None
    rows: int = 1  # the CSV rows its message covers (a group's, with group_by): its weight in row_counters


class OutgoingPort(Protocol):
    """What reconciliation needs from the store of outgoing messages."""

    def message(self, message_id: str) -> dict[str, Any] | None: ...
    def jobs(self, message_id: str) -> list[Job]: ...
    def message_and_jobs(self, message_id: str) -> tuple[dict[str, Any] | None, list[Job]]: ...
    def by_identificativo(self, identificativo: str) -> str | None: ...
    def set_identificativo(self, message_id: str, identificativo: str) -> None: ...
    def apply(
        self,
        message_id: str,
        recipient: Job,
        move: Move | None,
        *,
        receipt_id: str | None = None,
        receipt: dict[str, str | None] | None = None,
        certified: bool | None = None,
        carried: dict[str, dict[str, str | None]] | None = None,
    ) -> State: ...


@dataclass(slots=True)
class Kept:
    """An accettazione reconciled with `keep`: matched, nothing written on its jobs yet. The write
    of its outcome (consegna, errore, ...) later in the same batch carries it to that job
    (`carried`); the settling (`reconcile_kept`) writes it, and moves, where none did."""

    message_id: str
    receipt_id: str
    msg: PecMessage
    jobs: tuple[Job, ...]  # its message's jobs as it read them: it concerns them all
    carried: set[str] = field(default_factory=set)  # addresses of the jobs a receipt's write took it to
    written: set[str] = field(default_factory=set)  # addresses of the jobs written since it read them

    @property
    def receipt(self) -> dict[str, str | None]:
        return receipt_info(self.msg)

    @property
    def left(self) -> list[str]:
        """The addresses of the jobs no receipt's write carried it to."""
        return [job.address for job in self.jobs if job.address not in self.carried]


@dataclass(slots=True)
class Reconciliation:
    status: str  # matched | unmatched
    message_id: str | None = None
    campaign_id: str | None = None  # of the message of ours the receipt is about
    moves: dict[str, tuple[str, str]] = field(default_factory=dict)  # recipient -> (before, after)
    problems: list[str] = field(default_factory=list)
    kept: Kept | None = None  # reconciled with `keep`: what is left to write


def find_original(port: OutgoingPort, msg: PecMessage) -> tuple[str | None, list[Job], bool]:
    """Our Message-ID of the message a receipt is about, with its jobs, and whether it knows its
    identificativo already: by the referenced Message-ID first, then by the provider's
    identificativo (docs/architecture.md, flow 5)."""
    if msg.ref_message_id:
        head, jobs = port.message_and_jobs(msg.ref_message_id)
        if head is not None:
            return msg.ref_message_id, jobs, bool(head.get("identificativo"))
    if msg.identificativo:
        found = port.by_identificativo(msg.identificativo)
        if found:
            return found, port.jobs(found), True
    return None, [], False


def receipt_info(msg: PecMessage) -> dict[str, str | None]:
    """What a receipt says, as the outgoing store keeps it on a job (`records.receipt_entry`)."""
    info = {
        "kind": msg.kind,
        "at": msg.timestamp.isoformat() if msg.timestamp else None,
        "delivered_to": msg.delivered_to,
        "error": msg.error,
        "error_detail": msg.error_detail,
        "receipt_type": msg.receipt_type,
    }
    if msg.rem is not None:
        info["rem_event"] = msg.rem.event
        info["rem_reason"] = msg.rem.reason
    return info


def _certified(msg: PecMessage) -> dict[str, bool]:
    """What an accettazione's daticert says of each recipient: certified (PEC) or external."""
    return {r.address.lower(): r.type != "esterno" for r in msg.recipients if r.type}


def reconcile_receipt(
    port: OutgoingPort,
    msg: PecMessage,
    receipt_id: str | None,
    *,
    keep: bool = False,
    carry: Sequence[Kept] = (),
    skip: Collection[str] = (),
) -> Reconciliation:
    """Move the jobs a receipt concerns. Idempotent: applying the same receipt again, or a
    late one, changes nothing. A receipt whose original is unknown is reported unmatched.

    `keep` (the poller, for a PEC accettazione whose outcome, consegna, errore, ..., is later in
    the same fetched batch): matched and its identificativo stored, but nothing written on its
    jobs; the result's `kept` says what is left. `carry`: such accettazioni of the batch; a
    receipt of the same message starts from the jobs they read (`_read_by`), and an outcome's
    write on a job takes them along (their receipt, their flag and stamp), one write where there
    were two, noting it in their `carried`. `skip`: jobs left alone (those an outcome carried the
    receipt to, when the accettazione is settled)."""
    read = _read_by(carry, msg)
    found = (read.message_id, list(read.jobs), True) if read is not None else find_original(port, msg)
    message_id, found_jobs, identificativo_known = found
    if message_id is None:
        return Reconciliation(
            "unmatched",
            problems=[
                f"no message of ours with Message-ID {msg.ref_message_id} or identificativo {msg.identificativo}"
            ],
        )
    campaigns = {job.campaign_id for job in found_jobs if job.campaign_id}
    result = Reconciliation("matched", message_id, next(iter(campaigns)) if len(campaigns) == 1 else None)
    if msg.kind == kinds.ACCETTAZIONE and msg.identificativo and not identificativo_known:
        port.set_identificativo(message_id, msg.identificativo)  # the first one stays
    if keep and receipt_id:
        result.kept = Kept(message_id, receipt_id, msg, tuple(found_jobs))
        return result
    jobs = {job.address: job for job in found_jobs if job.address not in skip}
    certified = _certified(msg)
    info = receipt_info(msg)
    rem = msg.rem
    relayed_to_external = rem is not None and rem.event == RELAY_TO_NON_ERDS
    if msg.kind in (kinds.ACCETTAZIONE, kinds.NON_ACCETTAZIONE) and not relayed_to_external:
        targets = list(jobs.values())
    else:
        # a PEC receipt names its recipient (consegna); a REM one may concern several
        named = [msg.delivered_to] if msg.delivered_to else (list(msg.covered) if rem is not None else [])
        targets = [jobs[a.lower()] for a in named if a.lower() in jobs]
        strangers = [a for a in named if a.lower() not in jobs]
        if strangers:  # a campaign's fixed copy (cc) has receipts of its own, and no job
            copies = set((port.message(message_id) or {}).get("cc") or ())
            strangers = [a for a in strangers if a.lower() not in copies]
            if not strangers and not targets:
                return result  # the copy's own receipt: nothing to move, nothing wrong
        if strangers or not named:
            result.problems.append(
                f"{msg.kind} for {', '.join(strangers[:5]) or 'no recipient'}, not a recipient of the original"
            )
        if not targets:
            return result
        if rem is not None and len(targets) > 1 and _attributed_to_all(msg):
            result.problems.append(
                f"REM {rem.event}: the evidence does not say which recipients it concerns (no "
                "EvidenceRefersToRecipient, no RelayEvidenceRefersTo): applied to every recipient it "
                f"lists that has no outcome yet (it lists {', '.join(j.address for j in targets[:5])}"
                f"{', …' if len(targets) > 5 else ''})"
            )
    for job in targets:
        if relayed_to_external:
            done = job.state == State.ACCEPTED and not job.certified
            move: Move | None = None if done else RELAYED_TO_EXTERNAL
            certify: bool | None = False
        else:
            move = move_for_receipt(msg.kind, error_detail=msg.error_detail)
            certify = certified.get(job.address) if msg.kind == kinds.ACCETTAZIONE else None
        along = _carried(carry, message_id, job, move) if carry else []
        if move is not None and along and ACCEPTING.applies_to(job.state):
            # where the accettazione's own move would have applied: its flag and its stamp
            certify = _certified(along[0].msg).get(job.address, certify)
            move = replace(move, through=move.through | {State.ACCEPTED})
        after = port.apply(
            message_id,
            job,
            move,
            receipt_id=receipt_id,
            receipt=info,
            certified=certify,
            **({"carried": {k.receipt_id: k.receipt for k in along}} if along else {}),
        )
        for kept in carry:
            if kept.message_id == message_id:  # its read of this job is stale now
                kept.written.add(job.address)
        for kept in along:  # written: nothing left of it on this job
            kept.carried.add(job.address)
        if after != job.state or (relayed_to_external and move is not None and after == move.to):
            result.moves[job.address] = (str(job.state), str(after))  # (external: the flag changed)
    return result


def _read_by(carry: Sequence[Kept], msg: PecMessage) -> Kept | None:
    """A kept accettazione of the message a receipt names one recipient of, which read that
    recipient's job and saw nothing write it since: the receipt starts from its read (the
    accettazione wrote nothing), not reading the jobs again."""
    named = (msg.delivered_to or "").lower()
    for kept in carry:
        if (
            named
            and kept.message_id == msg.ref_message_id
            and named not in kept.written
            and any(job.address == named for job in kept.jobs)
        ):
            return kept
    return None


def _carried(carry: Sequence[Kept], message_id: str, job: Job, move: Move | None) -> list[Kept]:
    """The kept accettazioni a receipt's write on `job` takes along: those of its message not yet
    carried to the job, when its move applies wherever the accettazione's would and takes the
    job past accepted (a receipt on the delivery: consegna, errore, preavviso, virus)."""
    if move is None or not move.only_from >= ACCEPTING.only_from or move.to in _NOT_PAST_ACCEPTED:
        return []
    return [kept for kept in carry if kept.message_id == message_id and job.address in kept.left]


def reconcile_kept(port: OutgoingPort, kept: Kept) -> None:
    """Write an accettazione reconciled with `keep` where no outcome's write carried it
    (another recipient's job, an outcome that came in no later message of the batch or could not
    be applied): its receipt and its move, as `reconcile_receipt` would have. Nothing to do, no
    read, when every job of its message had it carried."""
    if kept.left:
        reconcile_receipt(port, kept.msg, kept.receipt_id, skip=frozenset(kept.carried))


def _attributed_to_all(msg: PecMessage) -> bool:
    """A REM per-recipient event whose evidence names no recipient in particular."""
    rem = msg.rem
    if rem is None or rem.evidence is None or rem.event not in PER_RECIPIENT_EVENTS:
        return False
    return attribution(rem.evidence)[1] == ALL_LISTED


def find_thread(port: OutgoingPort, msg: PecMessage) -> str | None:
    """The message of ours an incoming one answers or concerns: a reply's In-Reply-To /
    References (the provider's identificativo, or our Message-ID), or an SdI notification's
    PecMessageId (the identificativo of the envelope that carried our invoice)."""
    original = msg.postacert if msg.postacert is not None else msg
    candidates = [original.in_reply_to, *reversed(original.references)]
    if msg.sdi is not None and msg.sdi.pec_message_id:
        candidates.insert(0, msg.sdi.pec_message_id)
    for ref in candidates:
        if not ref:
            continue
        bare = ref.strip().strip("<>")
        if port.message(f"<{bare}>") is not None:
            return f"<{bare}>"
        found = port.by_identificativo(bare)
        if found:
            return found
    return None

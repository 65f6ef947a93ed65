"""Sending one campaign job: take a quota slot, render it, claim it, archive, submit over SMTPS.

A recipient is sent at most once per job, whatever happens around it:
- the job leaves `pending` for `sending` with a conditional write: a duplicate or redelivered
  queue message finds it claimed and stops;
- a job found in `sending` long after its claim (a crash after the SMTP answer, before it was
  recorded) becomes `sent?`, never sent again: its receipts will tell;
- an SMTP answer lost after DATA is `sent?` too; only failures known to be before DATA
  (4xx, no connection) return the job to `pending`, to be tried again later.
A job that must wait (quota slot, scheduled start, temporary failure) goes back to the queue
with a visibility delay until the moment it can go: no busy retry. Waiting never wears a job
out: after RENEW_AFTER_RECEIVES deliveries, or when the wait would take its message past SQS's
12 hours, a waiting job's queue message is replaced by a fresh one (the dead-letter count starts
again), and a job of a paused campaign leaves the queue altogether (resume puts every pending
job back). A job that fails for a reason of its own notes
it (`last_failure`); if its message still ends on the dead-letter queue, `dead_lettered` makes
it an error with that reason, shown in the statistics, until `redrive` sends it again.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from pecflow.domain import campaign, clock, replies
from pecflow.domain.mailbox import MailboxConfig
from pecflow.domain.ports import (
    Archive,
    CampaignFiles,
    CampaignStore,
    Checkpoint,
    MailboxStore,
    MailboxUnavailable,
    OutgoingStore,
    PasswordOf,
    Queue,
    Submission,
    Submitter,
    no_checkpoint,
)
from pecflow.domain.quota import LATE_FOR_SLOT_SECONDS, Decision, QuotaPolicy, fits, sending_policy
from pecflow.domain.reconcile import (
    CANCEL,
    CLAIM,
    DEAD_LETTER,
    SMTP_ACCEPTED,
    SMTP_FAILED,
    SMTP_LOST,
    SMTP_RETRY,
    CampaignStatus,
    Job,
    Move,
    State,
)
from pecflow.domain.records import CampaignRecord, JobRecord
from pecflow.services.logins import open_with_fresh_password

STALE_CLAIM_SECONDS = 15 * 60  # a claim older than this never finished: its outcome is unknown
RENEW_AFTER_RECEIVES = 10  # a waiting job's queue message is renewed after this many
# deliveries (the send queue dead-letters at 50)
TEMPORARY_RETRY_SECONDS = 5 * 60
AUTH_RETRY_SECONDS = 15 * 60
VISIBILITY_LIMIT_SECONDS = 12 * 3600  # SQS: no message stays invisible longer, counted from its sending
MAX_DELAY_SECONDS = VISIBILITY_LIMIT_SECONDS - 300  # the longest wait asked, with room to spare
RESERVE_HORIZON_SECONDS = 6 * 3600  # a job reserves a quota slot at most this far ahead
HORIZON_SPREAD_SECONDS = 1800  # jobs beyond the horizon come back spread over this much time
LINE_SLACK = 1.05  # a line of waiting jobs moves a little slower than the quota allows
CAMPAIGN_CACHE_SECONDS = 5


def horizon_spread(message_id: str) -> int:
    """A job's own offset in [0, HORIZON_SPREAD_SECONDS): the same on every retry."""
    return int(hashlib.sha256(message_id.encode()).hexdigest()[:8], 16) % HORIZON_SPREAD_SECONDS


def beyond_horizon_wake(wait: float, ahead: int, spacing: float, message_id: str) -> float:
    """When a job refused beyond the horizon comes back (seconds from now). `wait`: to the next
    free slot (the end of the reservations, about a horizon away); `ahead`: its campaign's jobs
    still to send before it; `spacing`: the quota's window over its limit.

    The jobs ahead leave about one `spacing` apart, so its own slot is about `ahead * spacing`
    away: it sleeps until that slot can be reserved. Without that, every refused job came back
    within HORIZON_SPREAD_SECONDS of the horizon's end, and all but a few were refused again:
    a 20,000-job campaign woke some 15,000 jobs every half hour for a day. An estimate too short
    (another campaign shares the mailbox) costs one more refusal, and the next estimate is
    nearer; the spread keeps jobs near the front from waking together."""
    own = max(0.0, ahead * spacing * LINE_SLACK - RESERVE_HORIZON_SECONDS)
    return max(wait - RESERVE_HORIZON_SECONDS + horizon_spread(message_id), own)


def jobs_ahead(campaign: CampaignRecord | None, job: JobRecord) -> int:
    """About how many of the campaign's jobs are still to send before `job`: its place in row
    order (its CSV row scaled by the jobs per row queued) less those already done."""
    if campaign is None or not job.row:
        return 0
    counters = campaign.counters or {}
    total, to_send = int(counters.get("total") or 0), int(counters.get("to_send") or 0)
    jobs = int(campaign.fanout_queued or total)
    rows = int(campaign.fanout_queued_rows or jobs)
    place = (int(job.row) - 2) * jobs // max(rows, 1)  # the first row is 2 (the header is 1)
    return max(0, place - (total - to_send))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the queue message becomes: done (delete it) or back on the queue after `delay`."""

    action: str  # done | delay
    delay: int = 0
    state: State | None = None
    reason: str = ""

    @classmethod
    def later(cls, seconds: float, reason: str, state: State | None = None) -> Outcome:
        return cls("delay", max(1, min(MAX_DELAY_SECONDS, int(seconds + 0.999))), state, reason)


@dataclass(slots=True)
class Sender:
    """One sender, wired with its ports (the handler builds it; tests pass fakes or moto)."""

    outgoing: OutgoingStore
    campaigns: CampaignStore
    archive: Archive
    mailbox_of: Callable[[str], MailboxConfig | None]
    acquire: Callable[..., Decision]  # RateLimiter.acquire(mailbox, now, horizon=)
    release: Callable[[str, float], None]  # RateLimiter.release(mailbox, at)
    # (campaign, job, message_id, date) -> raw
    render: Callable[[CampaignRecord | None, JobRecord, str, datetime], bytes]
    submit: Callable[[MailboxConfig, bytes, list[str]], Submission]
    check_size: Callable[[MailboxConfig, bytes, int], str | None] = lambda config, raw, recipients: None
    checkpoint: Checkpoint = no_checkpoint  # tests crash here (bootstrap overrides)
    cache: dict[str, tuple[float, CampaignRecord | None]] = field(default_factory=dict)

    def send(self, message_id: str) -> Outcome:
        job = self.outgoing.job(message_id)
        if job is None:
            return Outcome("done", reason="unknown job (deleted?)")
        try:
            return self._send(job)
        except Exception as exc:
            # the queue tries again; should it give up, the dead-letter queue tells this reason
            self.outgoing.set_job_fields(
                message_id,
                job.recipient,
                {"last_failure": f"{clock.iso()} {type(exc).__name__}: {exc}"[:1000]},
            )
            raise

    def _send(self, job: JobRecord) -> Outcome:
        message_id = job.message_id
        state = job.state
        recipient = job.as_job()
        if state == State.SENDING:
            waiting = self._stale_claim(job, recipient)
            if waiting is not None:
                return waiting
            state = State.PENDING  # stopped before SMTP DATA: send it now
            recipient = replace(recipient, state=state)
        if state != State.PENDING:
            return Outcome("done", state=state, reason="already handled")

        campaign = self._campaign(job.campaign_id)
        status = campaign.status if campaign else None
        if status == CampaignStatus.PAUSED:  # seen through the cache: make sure before leaving the queue
            campaign = self._campaign(job.campaign_id, fresh=True)
            status = campaign.status if campaign else None
        reserved = float(job.slot_at or 0)  # a quota slot this job holds
        if status in (CampaignStatus.CANCELLED, CampaignStatus.PAUSED) and reserved:
            self.release(_mailbox(job), reserved)  # give it back to the others
            self.outgoing.set_job_fields(message_id, recipient.address, {"slot_at": 0})
            reserved = 0.0
        if status == CampaignStatus.CANCELLED:
            self._move(job, recipient, CANCEL)
            return Outcome("done", state=State.CANCELLED, reason="campaign cancelled")
        if status == CampaignStatus.PAUSED:
            # off the queue: waiting here would cost a delivery a minute; resume queues it again
            return Outcome("done", state=State.PENDING, reason="campaign paused: waits for resume")
        start_at = campaign.start_at if campaign else None
        now = clock.timestamp()
        if start_at:
            start = datetime.fromisoformat(start_at).timestamp()
            if start > now:
                return Outcome.later(start - now, "scheduled start")

        config = self.mailbox_of(_mailbox(job))
        if config is None:
            self._move(job, recipient, SMTP_FAILED, error=f"sending mailbox {job.mailbox} is not configured")
            return Outcome("done", state=State.ERROR, reason="no such mailbox")

        # the quota slot: the one this job reserved earlier, or the next one (reserved, when it
        # is in the future: the job then sleeps on the queue until its own slot, and wakes once)
        now = clock.timestamp()
        if reserved and now - reserved > LATE_FOR_SLOT_SECONDS:
            # woken long after its slot (a busy queue): sending now could crowd a later window
            self.release(config.address, reserved)
            self.outgoing.set_job_fields(message_id, recipient.address, {"slot_at": 0})
            reserved = 0.0
        if reserved:
            if reserved > now:
                return Outcome.later(reserved - now, "waiting for its reserved quota slot")
            slot = reserved
        else:
            # the next free slot, reserved when it is ahead: each waiting job holds its own and
            # wakes once for it (jobs refused and retried would all wake for every freed slot)
            decision = self.acquire(config.address, now, horizon=RESERVE_HORIZON_SECONDS)
            if not decision.allowed:
                if decision.at is None:  # contention on the limiter: try again in a moment
                    return Outcome.later(1, "quota limiter busy")
                # beyond the horizon: back when that slot can be reserved, each job at its own
                # moment (thousands waking together would keep the senders from the slots due then)
                policy = sending_policy(config.quota_preset)
                wake = beyond_horizon_wake(
                    decision.wait_seconds,
                    jobs_ahead(campaign, job),
                    policy.window_seconds / policy.limit,
                    message_id,
                )
                return Outcome.later(min(max(wake, 1), MAX_DELAY_SECONDS), "waiting for a quota slot")
            assert decision.at is not None  # an allowed decision always names its slot
            slot = decision.at
            if slot > now:
                if not self.outgoing.reserve_slot(message_id, recipient.address, slot):
                    self.release(config.address, slot)  # a duplicate of this job reserved first
                    return Outcome.later(1, "another copy of this job holds a slot")
                return Outcome.later(slot - now, "waiting for its reserved quota slot")
        # rendered only now its slot is due (a job that waits reads its files once, when it
        # goes); what cannot be sent gives its slot back to the others
        try:
            raw = self.render(campaign, job, message_id, clock.now())
            problem = None
        except Exception as exc:  # noqa: BLE001 - a row that cannot be rendered is this job's error
            raw, problem = b"", f"cannot render the message: {exc}"
        recipients = envelope(campaign, job)
        problem = problem or self.check_size(config, raw, len(recipients))
        if problem:
            self.release(config.address, slot)
            self._move(job, recipient, SMTP_FAILED, error=problem)  # (removes its slot_at: left_behind)
            reason = "render failed" if problem.startswith("cannot render") else "over the size budget"
            return Outcome("done", state=State.ERROR, reason=reason)
        self.checkpoint("after_slot")
        claim = clock.iso()  # written with the claim itself: a claim is never seen without its time
        if not self.outgoing.try_move(
            message_id, recipient, CLAIM, also_set={"claimed_at": claim, "slot_at": 0}
        ):
            if not reserved:
                self.release(config.address, slot)
            again = self.outgoing.job(message_id)
            if again is not None and again.state == State.SENDING:
                # a claim holds it: another sender's, or this one's own when the write happened but
                # its answer was lost (the retry found the job claimed): look again once it is stale
                return Outcome.later(STALE_CLAIM_SECONDS, "claimed: looked at again when the claim is stale")
            return Outcome("done", reason="claimed by another sender")
        decision_at = slot
        recipient = replace(recipient, state=State.SENDING)
        self.checkpoint("after_claim")

        archived = self.archive.store(raw)
        self.checkpoint("after_archive")
        # from here on the message may leave: a sender that stops now must not send it again
        self.outgoing.set_job_fields(
            message_id,
            recipient.address,
            {"sent_s3_key": archived.key, "size": len(raw), "submitting_claim": claim},
        )
        try:
            result = self.submit(config, raw, recipients)
        except MailboxUnavailable as exc:  # nothing was sent: credentials, network, TLS
            self.release(config.address, decision_at)
            self._move(job, recipient, SMTP_RETRY, error=str(exc))
            retry = AUTH_RETRY_SECONDS if exc.kind == "auth" else TEMPORARY_RETRY_SECONDS
            return Outcome.later(retry, f"mailbox unavailable ({exc.kind})", State.PENDING)
        self.checkpoint("after_submit")
        if result.before_data:  # nothing reached the provider: the slot is free again
            self.release(config.address, decision_at)
        return self._after_submission(job, recipient, result)

    def _campaign(self, campaign_id: str | None, *, fresh: bool = False) -> CampaignRecord | None:
        """The campaign, read at most every few seconds (its status is what changes: a pause or
        a cancellation is seen within CAMPAIGN_CACHE_SECONDS); `fresh` reads it now. None: no
        such campaign."""
        if not campaign_id:
            return None
        cached = self.cache.get(campaign_id)
        now = clock.timestamp()
        if fresh or cached is None or now - cached[0] > CAMPAIGN_CACHE_SECONDS:
            cached = (now, self.campaigns.get(campaign_id))
            self.cache[campaign_id] = cached
        return cached[1]

    def _after_submission(self, job: JobRecord, recipient: Job, result: Submission) -> Outcome:
        detail = f"{result.code or ''} {result.text}".strip()
        if result.status == "accepted":
            self._move(job, recipient, SMTP_ACCEPTED, smtp=detail)
            return Outcome("done", state=State.SENT)
        if result.status == "lost":
            self._move(job, recipient, SMTP_LOST, smtp=detail)
            return Outcome("done", state=State.UNCERTAIN, reason="SMTP answer lost after DATA")
        if result.status == "permanent":
            self._move(job, recipient, SMTP_FAILED, error=f"SMTP refused: {detail}")
            return Outcome("done", state=State.ERROR, reason="refused")
        self._move(job, recipient, SMTP_RETRY, error=f"SMTP temporary failure: {detail}")
        return Outcome.later(_retry_after(result), "temporary SMTP failure", State.PENDING)

    def _stale_claim(self, job: JobRecord, recipient: Job) -> Outcome | None:
        """A job found `sending`. Another invocation may be sending it: wait until the claim is
        stale. Then, if the sender had started the SMTP submission, the message may have gone:
        `sent?`, resolved by receipts, never resent. If it stopped before that: None (send it)."""
        claimed = job.claimed_at
        age = (clock.now() - _parse(claimed)).total_seconds() if claimed else STALE_CLAIM_SECONDS
        if age < STALE_CLAIM_SECONDS:
            return Outcome.later(STALE_CLAIM_SECONDS - age, "being sent by another invocation")
        # both moves only for this very claim: a sender that re-claimed meanwhile changed claimed_at
        this_claim = {"claimed_at": claimed}
        if claimed and job.submitting_claim == claimed:  # this claim had started submitting
            self.outgoing.apply(
                job.message_id,
                recipient,
                SMTP_LOST,
                only_if=this_claim,
                also_set={"smtp_answer": "sender stopped after starting the SMTP submission"},
            )
            return Outcome("done", state=State.UNCERTAIN, reason="outcome unknown: waiting for receipts")
        if not self.outgoing.try_move(job.message_id, recipient, SMTP_RETRY, only_if=this_claim):
            return Outcome.later(1, "moved on meanwhile: look again")
        return None

    def _move(
        self,
        job: JobRecord,
        recipient: Job,
        move: Move,
        *,
        error: str | None = None,
        smtp: str | None = None,
    ) -> State:
        fields: dict[str, str] = {}
        if error:
            fields["error"] = error[:1000]
        if smtp:
            fields["smtp_answer"] = smtp[:500]
        return self.outgoing.apply(job.message_id, recipient, move, also_set=fields)


class StillSending(RuntimeError):
    """A dead-lettered job another invocation is sending right now: decided once its claim is stale."""


def renew(receive_count: int, age: float = 0.0, delay: float = 0.0) -> bool:
    """Should a job that waits `delay` seconds replace its queue message (received
    `receive_count` times, sent `age` seconds ago) by a fresh one, instead of waiting on it?
    Yes when waiting on it would bring it near the dead-letter limit, or past SQS's 12 hours."""
    return receive_count >= RENEW_AFTER_RECEIVES or age + delay > VISIBILITY_LIMIT_SECONDS - 60


def dead_lettered(outgoing: OutgoingStore, message_id: str, *, deliveries: int | None = None) -> str:
    """A job's queue message reached the dead-letter queue. A job not yet sent becomes an
    `error` with the reason (counted in the statistics; `redrive` sends it again); one that had
    started its SMTP submission becomes `sent?` (its receipts will tell; never sent twice); one
    claimed by a sender less than STALE_CLAIM_SECONDS ago raises StillSending (another copy of
    its queue message may be on its way: decide later). Returns the job's state afterwards."""
    job = outgoing.job(message_id)
    if job is None:
        return "unknown"
    state = job.state
    recipient = job.as_job()
    tries = f"{deliveries} attempts" if deliveries else "repeated attempts"
    reason = job.last_failure or f"no outcome after {tries} (the sender stopped each time)"
    also = {"dead_letter": reason, "error": f"not sent, stopped after {tries}: {reason}"[:1000]}
    if state not in (State.PENDING, State.SENDING):
        return str(state)
    claimed = job.claimed_at
    if (
        state == State.SENDING
        and claimed
        and (clock.now() - _parse(claimed)).total_seconds() < STALE_CLAIM_SECONDS
    ):
        raise StillSending(f"{message_id} is being sent by another invocation: look again later")
    this_claim = {"claimed_at": claimed} if state == State.SENDING else None
    if state == State.SENDING and job.claimed_at and job.submitting_claim == job.claimed_at:
        outgoing.apply(
            message_id,
            recipient,
            SMTP_LOST,
            only_if=this_claim,
            also_set={"smtp_answer": "sender stopped after starting the SMTP submission"},
        )
        return State.UNCERTAIN
    if outgoing.try_move(message_id, recipient, DEAD_LETTER, only_if=this_claim, also_set=also):
        if recipient.campaign_id:
            outgoing.count_in_campaign(recipient.campaign_id, "dead_lettered", 1)
        return State.ERROR
    after = outgoing.job(message_id)
    return str(after.state) if after else "unknown"


def _retry_after(result: Submission) -> float:
    # providers say when the quota frees up sometimes ("riprovare tra 10 minuti"): honour it
    match = re.search(r"(\d+)\s*(?:min|minuti|minutes)", result.text or "", re.I)
    return int(match.group(1)) * 60 if match else TEMPORARY_RETRY_SECONDS


def _field[T](value: T | None, name: str) -> T:
    """A campaign job's attribute that every campaign job has (KeyError, as the item's own
    lookup raised, when a row lacks it)."""
    if value is None:
        raise KeyError(name)
    return value


def _mailbox(job: JobRecord) -> str:
    return _field(job.mailbox or (job.head or {}).get("mailbox"), "mailbox")  # a reply's: its head


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def message_id_for(campaign_id: str, row: int, attempt: int, mailbox: str) -> str:
    """The deterministic Message-ID of a job: the same job always sends the same Message-ID."""
    domain = mailbox.rpartition("@")[2].lower()
    return f"<pecflow.{campaign_id}.{row}.{attempt}@{domain}>"


QUEUE_BATCH = 10  # entries per SQS batch


def queue_entry(message_id: str, index: int = 0, *, again: str | None = None) -> dict:
    """A send-queue entry: each job its own group (sent in parallel), deduplicated by job. `again`
    names a deliberate re-queue (resume, redrive, a long wait renewed): a new deduplication id,
    since SQS drops an id it saw in the last five minutes."""
    dedupe = hashlib.sha256(message_id.encode()).hexdigest()
    group = dedupe[:64]
    if again:
        dedupe = hashlib.sha256(f"{message_id}|{again}".encode()).hexdigest()
    return {
        "Id": str(index),
        "MessageBody": json.dumps({"message_id": message_id}),
        "MessageGroupId": group,
        "MessageDeduplicationId": dedupe,
    }


# --- what the sender function runs around one job ---------------------------------------------------
class Deferred(Exception):
    """The job waits: its queue message is back on the queue after a visibility delay."""


@dataclass(slots=True)
class Delivery:
    outcome: Outcome
    renewed: bool = False  # a fresh queue message replaced this one (deleted on return)

    def raise_if_deferred(self) -> None:
        if self.outcome.action == "delay" and not self.renewed:
            raise Deferred(self.outcome.reason)


@dataclass(slots=True)
class JobDelivery:
    """One send-queue message: send its job; a job that waits goes back on the queue for its
    delay, or, when waiting on this message would wear it out, on a fresh one (`renew`)."""

    sender: Sender
    queue: Queue

    def deliver(
        self, message_id: str, *, queue_message_id: str, receipt_handle: str, receive_count: int, age: float
    ) -> Delivery:
        outcome = self.sender.send(message_id)
        if outcome.action != "delay":
            return Delivery(outcome)
        if renew(receive_count, age, outcome.delay):
            self.queue.send(queue_entry(message_id, again=f"renewed {queue_message_id}"))
            return Delivery(outcome, renewed=True)
        self.queue.change_visibility(receipt_handle, outcome.delay)
        return Delivery(outcome)


class MailboxDirectory:
    """Mailbox configurations as the senders read them: cached for `ttl` seconds in a warm
    function, with the deployed sending policy of each (`quota.sending_policy`)."""

    def __init__(self, mailboxes: MailboxStore, ttl: float = 60.0):
        self.mailboxes, self.ttl = mailboxes, ttl
        self._configs: dict[str, tuple[float, MailboxConfig | None]] = {}

    def config(self, address: str) -> MailboxConfig | None:
        cached = self._configs.get(address)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        config = self.mailboxes.get(address)
        self._configs[address] = (time.monotonic(), config)
        return config

    def policy(self, address: str) -> QuotaPolicy:
        config = self.config(address)
        return sending_policy(config.quota_preset if config else "aruba")

    def check_size(self, config: MailboxConfig, raw: bytes, recipients: int = 1) -> str | None:
        ok, reason = fits(self.policy(config.address), len(raw), recipients)
        return None if ok else reason


class CampaignMessages:
    """Renders a campaign job's message from the campaign's files: manifests compiled and fixed
    attachments read once per warm function (they repeat on every job)."""

    def __init__(self, files_of: Callable[[str], CampaignFiles]):
        self.files_of = files_of
        self._attachment = lru_cache(maxsize=64)(self._read_attachment)
        self._compiled = lru_cache(maxsize=32)(self._compile)

    def _read_attachment(self, campaign_id: str, name: str) -> bytes:
        return self.files_of(campaign_id).read(f"attachments/{name}")

    @staticmethod
    def _compile(manifest_json: str) -> tuple[campaign.Manifest, campaign.Templates]:
        manifest = campaign.Manifest.from_dict(json.loads(manifest_json))
        return manifest, campaign.compile_templates(manifest)

    def render(
        self, campaign_item: CampaignRecord | None, job: JobRecord, message_id: str, date: datetime
    ) -> bytes:
        manifest_item = _field(campaign_item.manifest if campaign_item else None, "manifest")
        manifest, templates = self._compiled(json.dumps(manifest_item, sort_keys=True))
        row = campaign.Row(_field(job.row, "row"), dict(job.values or {}))
        campaign_id = _field(job.campaign_id, "campaign_id")
        files = [(name, self._attachment(campaign_id, name)) for name in manifest.attachments]
        for own in own_attachments(manifest, row.values):  # one per recipient: read each time
            files.append((own, self.files_of(campaign_id).read(f"attachments/{own}")))
        return campaign.render_message(
            manifest,
            row,
            mailbox=_mailbox(job),
            message_id=message_id,
            attachments=files,
            date=date,
            templates=templates,
        )


def own_attachments(manifest: campaign.Manifest, values: Mapping[str, Any]) -> list[str]:
    """The files named by the attachment column: the row's, or each row's of a group (in its
    order, each file once)."""
    key = manifest.attachment_key
    if not key:
        return []
    rows = values.get(campaign.RIGHE) if manifest.group_by_key else None
    named = [str(r.get(key) or "").strip() for r in rows] if rows else [str(values.get(key) or "").strip()]
    return list(dict.fromkeys(name for name in named if name))


def envelope(campaign_item: CampaignRecord | None, job: JobRecord) -> list[str]:
    """Who a job's message goes to: its recipient, and the campaign's fixed copy (cc)."""
    cc = ((campaign_item.manifest or {}).get("cc") if campaign_item else None) if job.campaign_id else None
    return [job.recipient, cc.lower()] if cc and cc.lower() != job.recipient else [job.recipient]


class OutgoingMessages:
    """What the sender renders for a job: a campaign's row (`campaign`), or a reply or forward a
    person wrote in the inbox (`direct` on the job's head: pecflow.domain.replies), a forward
    with the original read back from the archive, or a campaign's test send (`test_send` on the
    head: the message rendered when it was asked for, read back from the archive)."""

    def __init__(
        self,
        campaign: Callable[[CampaignRecord | None, JobRecord, str, datetime], bytes],
        archived: Callable[[str], bytes],
    ):
        self.campaign, self.archived = campaign, archived

    def render(
        self, campaign_item: CampaignRecord | None, job: JobRecord, message_id: str, date: datetime
    ) -> bytes:
        head = job.head or {}
        test = head.get("test_send")
        if test:  # a campaign's test send (services.campaign_tests): rendered and archived already
            return self.archived(str(test["raw_key"]))
        direct = head.get("direct")
        if not direct:
            return self.campaign(campaign_item, job, message_id, date)
        message = replies.Direct.from_dict(direct)
        original = self.archived(message.original_key) if message.original_key else None
        return replies.render_direct(message, message_id, date, original)


def submitter(
    open_smtp: Callable[[MailboxConfig, str], Submitter], password_of: PasswordOf
) -> Callable[[MailboxConfig, bytes, list[str]], Submission]:
    """Submit one message over a new SMTP connection, the password read again once if refused."""

    def submit(config: MailboxConfig, raw: bytes, recipients: list[str]) -> Submission:
        smtp = open_with_fresh_password(config, open_smtp, password_of)
        try:
            return smtp.submit(raw, config.address, recipients)
        finally:
            smtp.close()

    return submit

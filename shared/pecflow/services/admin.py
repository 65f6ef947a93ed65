"""Administration of a pecflow installation: what `pecflow mailbox ...` and `pecflow campaign ...`
run, and what the API will call. Services over ports; `pecflow.bootstrap` builds them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pecflow.domain import clock
from pecflow.domain.audit import AuditAction
from pecflow.domain.mailbox import MailboxConfig, secret_name
from pecflow.domain.ports import (
    CampaignStore,
    MailboxStore,
    MailboxUnavailable,
    MailOpener,
    OutgoingStore,
    Queue,
    SecretStore,
)
from pecflow.domain.reconcile import COUNTERS, REDRIVE, CampaignStatus, State, buckets
from pecflow.domain.records import JobRecord, MessageRecord, NewJob
from pecflow.pec import kinds
from pecflow.services.audit import AuditLog
from pecflow.services.sending import QUEUE_BATCH, message_id_for, queue_entry

__all__ = [
    "RESENDABLE",
    "STAT_LABELS",
    "CampaignAdmin",
    "MailboxAdmin",
    "MailboxUnavailable",
    "inbox_kind",
    "rem_note",
]


@dataclass(slots=True)
class MailboxAdmin:
    mailboxes: MailboxStore
    secrets: SecretStore
    open_session: MailOpener
    stack_name: str

    def store_password(self, address: str, password: str) -> str:
        """Create or update the mailbox's secret; returns its name. The password goes nowhere else."""
        name = secret_name(self.stack_name, address)
        self.secrets.put(name, password, f"pecflow: password of the PEC mailbox {address}")
        return name

    def check_login(self, config: MailboxConfig, password: str) -> str:
        """Log in once over IMAP; returns a one-line summary, raises MailboxUnavailable."""
        session = self.open_session(config, password)
        try:
            status = session.select(config.folders[0])
            usage = session.usage(config.folders[0])
        finally:
            session.close()
        quota = f", {usage.percent:.0f}% of the quota used" if usage and usage.percent is not None else ""
        return f"{status.exists} message(s) in {config.folders[0]}{quota}"

    def add(self, config: MailboxConfig, password: str, *, check: bool = True) -> str:
        config.validate()
        summary = self.check_login(config, password) if check else "login not checked"
        name = self.store_password(config.address, password)
        self.mailboxes.put(replace(config, secret_id=name))
        return summary

    def list(self) -> list[tuple[MailboxConfig, dict[str, Any]]]:
        return [(config, self.mailboxes.status(config.address)) for config in self.mailboxes.list()]

    def set_enabled(self, address: str, enabled: bool) -> None:
        self.mailboxes.set_enabled(address, enabled)


# --- campaigns -----------------------------------------------------------------------------------
STAT_LABELS = (
    ("total", "Totale"),
    ("waiting", "In attesa di conferma"),
    ("to_send", "Da spedire"),
    ("sent", "Spedite"),
    ("only_sent", "Solo spedite (nessuna ricevuta)"),
    ("accepted", "Accettate"),
    ("delivered", "Accettate e consegnate"),
    ("delivery_failures", "Errori di consegna"),
    ("errors", "Errori (non accettate, rifiutate, non valide)"),
    ("warnings", "Con preavviso di mancata consegna"),
    ("cancelled", "Annullate"),
)
RESENDABLE = (State.DELIVERY_FAILED, State.ERROR, State.NOT_ACCEPTED)


def shown_status(status: str | None, counters: Mapping[str, int]) -> str | None:
    """A campaign's status as people see it: `completed` is derived, never stored (every job
    has its outcome; a resend makes it sending again)."""
    if (
        status == CampaignStatus.SENDING
        and counters.get("total")
        and not counters.get("to_send")
        and not counters.get("waiting")
    ):
        return CampaignStatus.COMPLETED
    return status


def _figures(counters: Mapping[str, int]) -> dict[str, int]:
    """Every counter (reconcile.COUNTERS) of a campaign item's map, 0 where absent."""
    return {name: int(counters.get(name, 0)) for name in COUNTERS}


@dataclass(slots=True)
class CampaignAdmin:
    campaigns: CampaignStore
    outgoing: OutgoingStore
    send_queue: Queue
    audit: AuditLog | None = None  # each action in the campaign's mailbox's audit log

    def _audit(self, campaign_id: str, change: str, by: str | None, **details: object) -> None:
        item = self.campaigns.get(campaign_id) if self.audit is not None else None
        if self.audit is not None and item is not None and item.mailbox:
            self.audit.record(
                item.mailbox, actor=by or "cli", action=AuditAction.CAMPAIGN, message=campaign_id,
                details={"change": change, **details},
            )  # fmt: skip

    def stats(self, campaign_id: str) -> dict:
        """The campaign's statistics, from its item alone (one read, whatever its size): its
        counters by message and, grouping rows, by CSV row."""
        item = self.campaigns.get(campaign_id)
        if item is None:
            raise KeyError(f"no campaign {campaign_id}")
        counters = _figures(item.counters)
        rows = None
        if (item.manifest or {}).get("group_by"):
            # kept with the counters; a campaign created before they were: counted from its jobs
            rows = (
                _figures(item.row_counters)
                if item.row_counters is not None
                else self.row_counters(campaign_id)
            )
        return {
            "campaign_id": campaign_id,
            "status": shown_status(item.status, counters),
            "mailbox": item.mailbox,
            "counters": counters,
            # a campaign grouping rows (group_by): the same figures counted in CSV rows
            "rows": rows,
            "validation": item.validation,
            "queued": item.fanout_queued or 0,
            "fanout_error": item.fanout_error,
            "problems": list(item.problems),
            "invalid_reason": item.invalid_reason,
            "dead_lettered": item.dead_lettered or 0,
        }

    def row_counters(self, campaign_id: str) -> dict[str, int]:
        """The statistics counted in CSV rows rather than messages, from the campaign's jobs
        (every one read: only for a campaign created before its item kept them): each job counts
        for the rows its message covers."""
        rows = dict.fromkeys(COUNTERS, 0)
        for job in self.jobs(campaign_id):
            covered = job.rows_covered
            rows["total"] += covered
            for name in buckets(job.state, certified=job.certified):
                rows[name] += covered
        return rows

    def jobs(self, campaign_id: str) -> Iterable[JobRecord]:
        return self.outgoing.campaign_jobs(campaign_id)

    def set_status(self, campaign_id: str, action: str, *, by: str | None = None) -> str:
        """pause | resume | cancel. Returns the new status."""
        campaigns = self.campaigns
        transitions = {
            "pause": (CampaignStatus.PAUSED, (CampaignStatus.SENDING, CampaignStatus.QUEUING)),
            "resume": (CampaignStatus.SENDING, (CampaignStatus.PAUSED,)),
            "cancel": (
                CampaignStatus.CANCELLED,
                (CampaignStatus.SENDING, CampaignStatus.QUEUING, CampaignStatus.PAUSED),
            ),
        }
        target, allowed = transitions[action]
        if campaigns.get(campaign_id) is None:
            raise KeyError(f"no campaign {campaign_id}")
        if not campaigns.update(campaign_id, {"status": target}, only_if_status=allowed):
            now = campaigns.get(campaign_id)
            current = (now.status if now else None) or "gone"
            raise ValueError(f"campaign {campaign_id} is {current}: cannot {action} it")
        if action in ("resume", "cancel"):
            # paused jobs left the queue: every job still to send goes back on it, to be sent (resume) or
            # marked cancelled (cancel). After the status changed: a sender that saw the pause before
            # this point parked a job this finds pending.
            self._requeue(
                [job for job in self.jobs(campaign_id) if job.state == State.PENDING],
                why=f"{action} {clock.iso()}",
            )
        self._audit(campaign_id, action, by)
        return target

    def _requeue(self, jobs: Sequence[JobRecord | NewJob], *, why: str | None) -> int:
        """Put jobs on the send queue; `why` names a deliberate re-queue (a new deduplication id: a
        job already there is safe, a sender handles a job once)."""
        for start in range(0, len(jobs), QUEUE_BATCH):
            entries = [
                queue_entry(job.message_id, i, again=why)
                for i, job in enumerate(jobs[start : start + QUEUE_BATCH])
            ]
            failed = self.send_queue.send_batch(entries).get("Failed")
            if failed:
                raise RuntimeError(f"jobs not queued again: {failed}")
        return len(jobs)

    def redrive(self, campaign_id: str, *, by: str | None = None) -> dict[str, int]:
        """Send again what stopped without being sent: the jobs the dead-letter queue turned into
        errors (back to `pending`), and every pending job, which may have no queue message left.
        Safe to repeat: a job is sent at most once whatever is queued."""
        campaigns, outgoing = self.campaigns, self.outgoing
        item = campaigns.get(campaign_id)
        if item is None:
            raise KeyError(f"no campaign {campaign_id}")
        if item.status in (
            CampaignStatus.CANCELLED,
            CampaignStatus.INVALID,
            CampaignStatus.VALIDATED,
            CampaignStatus.VALIDATING,
        ):
            raise ValueError(f"campaign {campaign_id} is {item.status}: nothing to redrive")
        redriven, pending = 0, []
        for job in outgoing.campaign_jobs(campaign_id):
            state = job.state
            if state == State.ERROR and job.dead_letter:
                if outgoing.try_move(
                    job.message_id,
                    job.as_job(),
                    REDRIVE,
                    only_if={"dead_letter": job.dead_letter},
                    also_set={"redriven_at": clock.iso()},
                    also_remove=("dead_letter", "error", "last_failure"),
                ):
                    redriven += 1
                    outgoing.count_in_campaign(campaign_id, "dead_lettered", -1)
                    pending.append(job)
            elif state == State.PENDING:
                pending.append(job)
        queued = 0
        if item.status != CampaignStatus.PAUSED:  # a paused campaign's jobs are queued on resume
            queued = self._requeue(pending, why=f"redrive {clock.iso()}")
        self._audit(campaign_id, "redrive", by, redriven=redriven, queued=queued)
        return {"redriven": redriven, "queued": queued}

    def resend_failed(self, campaign_id: str, *, by: str | None = None) -> int:
        """A new attempt for every recipient whose latest attempt failed (delivery failure, error,
        non accettazione): new jobs with new Message-IDs, counted and queued. Safe to repeat."""
        campaigns, outgoing = self.campaigns, self.outgoing
        item = campaigns.get(campaign_id)
        if item is None:
            raise KeyError(f"no campaign {campaign_id}")
        if item.status in (CampaignStatus.CANCELLED, CampaignStatus.INVALID, CampaignStatus.VALIDATED):
            raise ValueError(f"campaign {campaign_id} is {item.status}: nothing to resend")
        latest: dict[int, tuple[NewJob, State]] = {}  # by row: its latest attempt, and its state
        for record in outgoing.campaign_jobs(campaign_id):
            job = NewJob.from_dict(record.as_dict())  # a campaign job's fields (KeyError without them)
            if job.row not in latest or job.attempt > latest[job.row][0].attempt:
                latest[job.row] = (job, record.state)
        retry = [
            replace(
                job,
                message_id=message_id_for(campaign_id, job.row, job.attempt + 1, job.mailbox),
                campaign_id=campaign_id,
                attempt=job.attempt + 1,
            )
            for job, state in latest.values()
            if state in RESENDABLE
        ]
        created = 0
        for start in range(0, len(retry), QUEUE_BATCH):
            batch = retry[start : start + QUEUE_BATCH]
            made: list[str] = []
            new = outgoing.add_jobs([job.as_dict() for job in batch], created=made)
            if new:
                rows = sum(job.rows_covered for job in batch if job.message_id in made)
                campaigns.add_jobs(campaign_id, new, rows)
            self._requeue(batch, why=None)
            created += new
        if created and item.status != CampaignStatus.SENDING:
            campaigns.update(campaign_id, {"status": CampaignStatus.SENDING})
        self._audit(campaign_id, "resend failed", by, new_attempts=created)
        return created


# --- the inbox listing -------------------------------------------------------------------------------
_REM_AS = {  # how a REM message's kind reads in the inbox, Italian / English
    kinds.POSTA_CERTIFICATA: "posta certificata REM / certified REM mail",
    kinds.ANOMALIA: "anomalia REM / REM anomaly",
}


def inbox_kind(record: MessageRecord) -> str:
    """The kind as the inbox lists it: a REM message marked as such ("posta-certificata REM")."""
    kind = record.kind or ""
    return f"{kind} REM" if record.rem else kind


def rem_note(record: MessageRecord) -> str | None:
    """For a REM message, what it is and why, as an office worker reads it: "certified REM mail —
    SubmissionAcceptance: …"; an anomaly says why (e.g. received from ordinary e-mail). None for PEC."""
    rem = record.rem
    if not rem:
        return None
    what = _REM_AS.get(
        record.kind or "", "ricevuta REM / REM receipt" if rem.get("message_type") == "receipt" else "REM"
    )
    event = rem.get("event") or "evento sconosciuto / unknown event"
    why = rem.get("reason_text") or rem.get("reason")
    return f"{what} — {event}" + (f": {why}" if why else "")

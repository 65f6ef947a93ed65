"""Campaigns through the API, for the people allowed to send from a mailbox (its managers and
admins): the mailbox's campaigns, one campaign's statistics and validation report, upload links
for its files, the manifest submitted (which starts it: validation, then the jobs), pause,
resume, cancel, resend, redrive, the per-recipient outcome as a CSV to download and as pages
(the console's drill-down). A campaign of another mailbox is "not found". Every action is in the
mailbox's audit log, with who did it (reading the statistics and the recipients is not an action).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import tempfile
from collections.abc import Mapping
from typing import Any, BinaryIO, Protocol, cast

from pecflow.domain import campaign as campaign_domain
from pecflow.domain import clock
from pecflow.domain.access import Action, NotVisible, Person
from pecflow.domain.audit import AuditAction
from pecflow.domain.campaign.manifest import CAMPAIGN_ID
from pecflow.domain.inbox import MAX_REQUEST_ITEMS, CursorError, request_size
from pecflow.domain.reconcile import COUNTERS, State, buckets
from pecflow.domain.records import CampaignRecord, JobRecord
from pecflow.services.admin import RESENDABLE, CampaignAdmin, shown_status
from pecflow.services.audit import AuditLog

ACTIONS = ("pause", "resume", "cancel", "resend", "redrive")
RECIPIENTS_PAGE = 50
# job items one request for recipients reads at most: a filter that few rows match gives a
# shorter page (even none) and a cursor to go on with, never a request that reads the campaign
READ_BUDGET = 1000
# the filters of the recipients: a statistics counter (the row's latest attempt counted in it),
# or "failed", what "resend" would send again
OUTCOMES = ("failed", *(c for c in COUNTERS if c != "total"))
# a job's state as people read it, in the words of the statistics (pecflow.services.admin.STAT_LABELS)
SHOWN_STATE = {
    State.PENDING: "Da spedire",
    State.SENDING: "Da spedire (in spedizione)",
    State.UNCERTAIN: "Solo spedita (esito SMTP incerto, nessuna ricevuta)",
    State.SENT: "Solo spedita (nessuna ricevuta)",
    State.ACCEPTED: "Accettata, in attesa di conferma",
    State.WARNING: "Con preavviso di mancata consegna",
    State.DELIVERED: "Accettata e consegnata",
    State.NOT_ACCEPTED: "Errore: non accettata",
    State.DELIVERY_FAILED: "Errore di consegna",
    State.ERROR: "Errore (non spedita)",
    State.CANCELLED: "Annullata",
}
EXTERNAL_ACCEPTED = "Accettata (destinatario non PEC: nessuna consegna certificata)"
FILE_NAME = re.compile(r"^(recipients\.csv|attachments/[^/\\\x00-\x1f]{1,200})$")


class Uploads(Protocol):
    def upload_link(self, campaign_id: str, name: str, seconds: int = 900) -> str: ...
    def put_manifest(self, campaign_id: str, raw: bytes) -> None: ...
    def export_link(self, campaign_id: str, name: str, body: Any, seconds: int = 900) -> str: ...


class CampaignRefused(ValueError):
    """A request about a campaign that cannot be done as asked (400)."""


class CampaignConflict(ValueError):
    """The campaign is not in a state for this action (409)."""


class JobPages(Protocol):
    def campaign_job_page(
        self, campaign_id: str, *, after: Mapping[str, str] | None = None, limit: int = 100
    ) -> tuple[list[JobRecord], bool]: ...


class CampaignDesk:
    def __init__(
        self,
        admin: CampaignAdmin,
        uploads: Uploads,
        audit: AuditLog | None = None,
        *,
        cursor_secret: bytes | None = None,  # signs the recipients' cursors (the API's secret)
    ):
        self.admin, self.uploads, self.audit = admin, uploads, audit
        self.cursor_secret = cursor_secret or secrets.token_bytes(32)  # without: valid in this process

    # --- reading -------------------------------------------------------------------------------------
    def campaigns(
        self, person: Person, mailbox: str, cursor: str | None = None
    ) -> tuple[list[dict], str | None]:
        person.require(mailbox, Action.CAMPAIGN)
        start = _decode(cursor) if cursor else None
        of_mailbox = getattr(self.admin.campaigns, "of_mailbox", None)
        if of_mailbox is None:
            raise RuntimeError("the campaign store cannot list a mailbox's campaigns")
        items, following = of_mailbox(mailbox.lower(), limit=50, start_key=start)
        rows = [
            {
                "campaign_id": c.campaign_id,
                "name": (c.manifest or {}).get("name"),
                "purpose": (c.manifest or {}).get("purpose"),
                "status": str(shown_status(c.status, c.counters or {})),  # the item read once
                "created_at": c.created_at,
                "counters": dict(c.counters or {}),
            }
            for c in items
        ]
        return rows, _encode(following) if following else None

    def show(self, person: Person, mailbox: str, campaign_id: str) -> dict:
        self._mine(person, mailbox, campaign_id)
        stats = self.admin.stats(campaign_id)
        return {**stats, "status": str(stats["status"])}

    def recipients(
        self,
        person: Person,
        mailbox: str,
        campaign_id: str,
        cursor: str | None = None,
        outcome: str | None = None,
    ) -> dict:
        """A page of the campaign's recipients in CSV row order: each row's latest attempt (its
        state, Message-ID, error, receipts) and its earlier attempts; with `outcome`, only the
        rows whose latest attempt has it. Reads index ByCampaign from the cursor on, at most
        READ_BUDGET jobs: `read` says how many this page read. A filter stops as soon as the
        campaign's counters say no other row can have the outcome (none at all: nothing read)."""
        item = self._mine(person, mailbox, campaign_id)
        if outcome is not None and outcome not in OUTCOMES:
            raise CampaignRefused(f"unknown outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
        bound = {"m": mailbox.lower(), "c": campaign_id, "o": outcome or ""}
        position, found = self._position(cursor, bound) if cursor else (None, 0)
        # the counters count every attempt in the outcome: no more rows than that can have it
        most = _at_most(item.counters or {}, outcome) if outcome else None
        pages = cast(JobPages, self.admin.outgoing)
        rows: list[dict] = []
        attempts: list[JobRecord] = []  # the row being read, attempt by attempt
        done_at: Mapping[str, str] | None = None  # the last job of the last row taken whole
        read = asked = whole = 0
        stop = most is not None and found >= most  # none left to find: nothing to read
        more = full = False
        while not stop and read < READ_BUDGET:
            room = RECIPIENTS_PAGE - len(rows)
            if not outcome:  # a row is mostly one job: the rows missing, and the next row's start
                ask = room + (0 if attempts else 1)
            elif not rows:  # nothing matched yet: room and one more, then twice as many each time
                ask = request_size(room, asked)
            else:  # as many as the rows matched so far say a page needs, and a tenth more
                ask = -(-(room + 1) * whole * 11 // (len(rows) * 10)) + 1
            asked = min(READ_BUDGET - read, MAX_REQUEST_ITEMS, ask)
            jobs, more = pages.campaign_job_page(campaign_id, after=position, limit=asked)
            read += len(jobs)
            for job in jobs:
                if attempts and job.row != attempts[-1].row:  # the row before is whole
                    done_at, whole = _job_position(attempts[-1]), whole + 1
                    _take(rows, attempts, outcome)
                    attempts = []
                    full = len(rows) == RECIPIENTS_PAGE  # and this job begins a row after it
                    if full or (most is not None and found + len(rows) >= most):
                        stop = True
                        break
                attempts.append(job)
            if jobs:
                position = _job_position(jobs[-1])
            if not more:
                break
        if not stop and not more and attempts:  # the campaign's last row
            _take(rows, attempts, outcome)
        goes_on = (more or full) and not (most is not None and found + len(rows) >= most)
        if goes_on and done_at is None:  # not one row whole within the budget: go on past it
            done_at = position
        following = self._cursor(done_at, bound, found + len(rows)) if goes_on and done_at else None
        return {"recipients": rows, "cursor": following, "read": read}

    # --- starting ------------------------------------------------------------------------------------
    def upload_links(
        self, person: Person, mailbox: str, campaign_id: str, names: list[str]
    ) -> dict[str, str]:
        """Links to PUT the CSV and the attachments with, before the manifest (15 minutes)."""
        self._new_or_mine(person, mailbox, campaign_id)
        bad = [n for n in names if not FILE_NAME.match(n) or ".." in n]
        if bad:
            raise CampaignRefused(
                f"not a campaign file: {', '.join(bad[:5])} (recipients.csv, or attachments/<name>)"
            )
        return {name: self.uploads.upload_link(campaign_id, name) for name in dict.fromkeys(names)}

    def submit(self, person: Person, mailbox: str, campaign_id: str, manifest: Mapping[str, Any]) -> None:
        """The manifest, checked, written last: the campaign starts (validation, then the jobs).
        It must send from this mailbox: a manager of one mailbox never sends from another."""
        self._new_or_mine(person, mailbox, campaign_id)
        try:
            parsed = campaign_domain.Manifest.from_dict(dict(manifest))
        except campaign_domain.ManifestError as exc:
            raise CampaignRefused(f"the manifest is not valid: {exc}") from None
        if parsed.mailbox.lower() != mailbox.lower():
            raise CampaignRefused(f"a campaign of {mailbox} sends from {mailbox}, not from {parsed.mailbox}")
        self.uploads.put_manifest(campaign_id, json.dumps(dict(manifest), ensure_ascii=False).encode())
        self._audit(person, mailbox, campaign_id, "submitted", purpose=parsed.purpose, dry_run=parsed.dry_run)

    # --- running -------------------------------------------------------------------------------------
    def act(self, person: Person, mailbox: str, campaign_id: str, action: str) -> dict:
        self._mine(person, mailbox, campaign_id)
        if action not in ACTIONS:
            raise CampaignRefused(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
        try:
            if action == "resend":
                done: dict = {"new_attempts": self.admin.resend_failed(campaign_id, by=person.username)}
            elif action == "redrive":
                done = self.admin.redrive(campaign_id, by=person.username)
            else:
                done = {"status": str(self.admin.set_status(campaign_id, action, by=person.username))}
        except ValueError as exc:
            raise CampaignConflict(str(exc)) from None
        return done

    def export(self, person: Person, mailbox: str, campaign_id: str) -> str:
        """The per-recipient outcome as a CSV (Excel-safe), and a 15-minute link to it."""
        self._mine(person, mailbox, campaign_id)
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as body:
            jobs = (j.as_dict() for j in self.admin.jobs(campaign_id))
            count = campaign_domain.write_export(cast(BinaryIO, body), jobs)
            body.seek(0)
            name = f"esito-{campaign_id}-{clock.now():%Y%m%d-%H%M%S}.csv"
            link = self.uploads.export_link(campaign_id, name, body)
        self._audit(person, mailbox, campaign_id, "exported", recipients=count)
        return link

    # --- who may -------------------------------------------------------------------------------------
    def _mine(self, person: Person, mailbox: str, campaign_id: str) -> CampaignRecord:
        person.require(mailbox, Action.CAMPAIGN)
        item = self.admin.campaigns.get(campaign_id) if CAMPAIGN_ID.match(campaign_id) else None
        if item is None or (item.mailbox or "").lower() != mailbox.lower():
            raise NotVisible(f"campaign {campaign_id} not found in {mailbox}")
        return item

    def _new_or_mine(self, person: Person, mailbox: str, campaign_id: str) -> None:
        person.require(mailbox, Action.CAMPAIGN)
        if not CAMPAIGN_ID.match(campaign_id):
            raise CampaignRefused(f"{campaign_id!r} cannot name a campaign (letters, digits, '-', '_')")
        item = self.admin.campaigns.get(campaign_id)
        if item is not None:
            if (item.mailbox or "").lower() != mailbox.lower():
                raise NotVisible(f"campaign {campaign_id} not found in {mailbox}")
            raise CampaignConflict(
                f"campaign {campaign_id} exists already ({item.status}): a campaign runs once"
            )

    def _cursor(self, position: Mapping[str, str], bound: Mapping[str, str], found: int) -> str:
        """Opaque and signed, bound to this mailbox, campaign and filter: it cannot be edited to
        reach another campaign, nor reused with another filter. It carries the rows found so far."""
        body = json.dumps({"k": dict(position), "n": found, **bound}, sort_keys=True, separators=(",", ":"))
        tag = hmac.new(self.cursor_secret, body.encode(), hashlib.sha256).hexdigest()[:32]
        return base64.urlsafe_b64encode(f"{tag}.{body}".encode()).decode().rstrip("=")

    def _position(self, cursor: str, bound: Mapping[str, str]) -> tuple[dict[str, str], int]:
        damaged = "this page link is damaged: start the list again"
        try:
            tag, body = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(".", 1)
        except (ValueError, UnicodeDecodeError):
            raise CursorError(damaged) from None
        expected = hmac.new(self.cursor_secret, body.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(tag.encode(), expected.encode()):
            raise CursorError(damaged)
        data = json.loads(body)
        if any(data.get(name) != value for name, value in bound.items()):
            raise CursorError("this page link belongs to another list or filter: start the list again")
        key, found = data.get("k"), data.get("n")
        if not isinstance(key, dict) or set(key) != {"job_key", "message_id", "recipient"}:
            raise CursorError(damaged)
        return key, found if isinstance(found, int) else 0

    def _audit(self, person: Person, mailbox: str, campaign_id: str, change: str, **details: object) -> None:
        if self.audit is not None:
            self.audit.record(
                mailbox, actor=person.username, action=AuditAction.CAMPAIGN, message=campaign_id,
                details={"change": change, **details},
            )  # fmt: skip


def _job_position(job: JobRecord) -> dict[str, str]:
    """Where a job is in index ByCampaign (besides its campaign): a page goes on after it."""
    return {"job_key": job.job_key or "", "message_id": job.message_id, "recipient": job.recipient}


def shown_state(job: JobRecord) -> str:
    if job.state == State.ACCEPTED and not job.certified:
        return EXTERNAL_ACCEPTED
    return SHOWN_STATE.get(job.state, str(job.state))


def _at_most(counters: Mapping[str, int], outcome: str) -> int:
    """The jobs the campaign's counters have in `outcome` (every attempt, not only the latest)."""
    if outcome == "failed":  # delivery-failed, and not-accepted or error (RESENDABLE)
        return int(counters.get("delivery_failures", 0)) + int(counters.get("errors", 0))
    return int(counters.get(outcome, 0))


def has_outcome(job: JobRecord, outcome: str) -> bool:
    if outcome == "failed":
        return job.state in RESENDABLE
    return outcome in buckets(job.state, certified=job.certified)


def attempt_view(job: JobRecord) -> dict[str, Any]:
    """One attempt as the console shows it; each receipt with its sha256, to open it."""
    receipts = [
        {
            "sha256": sha256,
            "kind": info.get("kind"),
            "at": info.get("at") or info.get("recorded_at"),
            "error": info.get("error_detail") or info.get("error"),
        }
        for sha256, info in (job.receipts or {}).items()
    ]
    receipts.sort(key=lambda r: (str(r["at"] or ""), r["sha256"]))
    return {
        "attempt": job.attempt,
        "state": str(job.state),
        "shown": shown_state(job),
        "message_id": job.message_id,
        "sent_at": job.reached_at.get(State.SENT) or job.reached_at.get(State.UNCERTAIN),
        "error": job.error or job.extra.get("last_error"),
        "receipts": receipts,
    }


def _take(rows: list[dict], attempts: list[JobRecord], outcome: str | None) -> None:
    """A whole CSV row: its latest attempt decides the filter; earlier ones come along."""
    latest = max(attempts, key=lambda j: j.attempt or 0)
    if outcome is None or has_outcome(latest, outcome):
        earlier = [attempt_view(j) for j in attempts if j is not latest]
        rows.append(
            {"row": latest.row, "address": latest.recipient, **attempt_view(latest), "earlier": earlier}
        )


def _encode(key: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(dict(key), sort_keys=True).encode()).decode().rstrip("=")


def _decode(cursor: str) -> dict:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise CursorError("this page link is damaged: start the list again") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise CursorError("this page link is damaged: start the list again")
    return data

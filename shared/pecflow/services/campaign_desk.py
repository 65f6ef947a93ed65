"""Campaigns through the API, for the people allowed to send from a mailbox (its managers and
admins): the mailbox's campaigns, one campaign's statistics and validation report, upload links
for its files, the manifest submitted (which starts it: validation, then the jobs), pause,
resume, cancel, resend, redrive, the per-recipient outcome as a CSV to download and as pages
(the console's drill-down). A campaign of another mailbox is "not found". Every action is in the
mailbox's audit log, with who did it (reading the statistics and the recipients is not an action).

For the console's wizard: the provider's terms and quota of the sending mailbox, the validation
report's bad rows (row, column, reason), a preview of the first messages as they will be sent,
and `confirm`, which sends a campaign submitted as a dry run once its report was read. For its
panel: a small series of counter snapshots kept on the campaign item (taken when the statistics
are read, never by reading the jobs) and the expected end from the mailbox's quota.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import tempfile
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, Protocol, cast

from pecflow.domain import campaign as campaign_domain
from pecflow.domain import clock
from pecflow.domain.access import Action, NotVisible, Person
from pecflow.domain.audit import AuditAction
from pecflow.domain.campaign.manifest import CAMPAIGN_ID
from pecflow.domain.inbox import MAX_REQUEST_ITEMS, CursorError, request_size
from pecflow.domain.mailbox import MailboxConfig
from pecflow.domain.ports import CampaignFiles, PackageChanged, Queue
from pecflow.domain.quota import SEND_PACE_SECONDS, policy_from_spec, preset_of_domain, terms_of
from pecflow.domain.reconcile import COUNTERS, CampaignStatus, State, buckets
from pecflow.domain.records import CampaignRecord, JobRecord, receipt_order
from pecflow.services.admin import RESENDABLE, CampaignAdmin, shown_status
from pecflow.services.audit import AuditLog
from pecflow.services.sending import own_attachments

ACTIONS = ("pause", "resume", "cancel", "resend", "redrive", "confirm")
REPORT_ROWS = 200  # bad rows the report shows at most (validation-errors.csv has them all)
PREVIEW_MESSAGES = 10  # messages a preview renders at most
# the counter snapshots of the panel's chart: at most SERIES_POINTS, one per SERIES_STEP seconds
# (within a step the last point is replaced); over the cap, the older half is thinned
SERIES_POINTS = 120
SERIES_STEP = 10
SLOT_SPACING = SEND_PACE_SECONDS  # seconds between two slots of one mailbox
SERIES = ("sent", "accepted", "delivered", "delivery_failures", "errors", "to_send")
# the campaigns that sent (or began to): a mailbox with none is at its first campaign
STARTED = {
    CampaignStatus.QUEUING, CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.CANCELLED,
}  # fmt: skip
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


class PackageFiles(CampaignFiles, Protocol):
    """A campaign's uploaded files, as the report and the preview read them."""

    def exists(self, name: str) -> bool: ...


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
        files_of: Callable[[str], PackageFiles] | None = None,  # a campaign's package (report, preview)
        mailbox_of: Callable[[str], MailboxConfig | None] | None = None,  # the quota preset and terms
        fanout_queue: Queue | None = None,  # where a confirmed campaign's queuing is started
    ):
        self.admin, self.uploads, self.audit = admin, uploads, audit
        self.files_of, self.mailbox_of, self.fanout_queue = files_of, mailbox_of, fanout_queue
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
        """The statistics, with the chart's series (a snapshot of the counters added when they
        moved) and, while there is still something to send, the expected end from the quota."""
        item = self._mine(person, mailbox, campaign_id)
        stats = self.admin.stats(campaign_id)
        counters = stats["counters"]
        series = self._snapshot(item, counters)
        quota = self._quota(mailbox)
        return {
            **stats,
            "status": str(stats["status"]),
            "name": (item.manifest or {}).get("name"),
            "purpose": (item.manifest or {}).get("purpose"),
            "group_by": (item.manifest or {}).get("group_by"),
            "dry_run": bool(item.dry_run),
            "start_at": item.start_at,
            "created_at": item.created_at,
            "series": {"fields": ["at", *SERIES], "points": series},
            "quota": quota,
            "expected_end": expected_end(item, counters, quota),
        }

    def terms(self, person: Person, mailbox: str) -> dict:
        """What the sending mailbox's provider allows (its quota preset's terms and quota), and
        whether a campaign was ever sent from it: the wizard shows the terms before the first."""
        person.require(mailbox, Action.CAMPAIGN)
        quota = self._quota(mailbox)
        terms = terms_of(quota["preset"]) if quota else None
        of_mailbox = getattr(self.admin.campaigns, "of_mailbox", None)
        sent_before = False
        if of_mailbox is not None:
            start: Mapping[str, Any] | None = None
            for _ in range(20):  # 1,000 campaigns at most: enough to find one that was sent
                items, start = of_mailbox(mailbox.lower(), limit=50, start_key=start)
                if any(c.status in STARTED for c in items):
                    sent_before = True
                    break
                if not start:
                    break
        return {
            "mailbox": mailbox.lower(),
            "preset": quota["preset"] if quota else None,
            "provider": terms.provider if terms else None,
            "terms": list(terms.terms) if terms else [],
            "source": terms.source if terms else None,
            "needs_agreement": bool(terms and terms.needs_agreement),
            "quota": quota,
            "first_campaign": not sent_before,
        }

    def report(self, person: Person, mailbox: str, campaign_id: str, limit: int = REPORT_ROWS) -> dict:
        """The validation report: its summary and the first `limit` bad rows (row, column, code,
        reason), from the validation.json the fan-out wrote beside the campaign's files."""
        item = self._mine(person, mailbox, campaign_id)
        summary = dict(item.validation or {})
        written: dict[str, Any] = {}
        files = self.files_of(campaign_id) if self.files_of else None
        if files is not None and summary and files.exists("validation.json"):
            try:
                written = json.loads(files.read("validation.json"))
            except ValueError:  # damaged: the summary alone
                written = {}
        errors = [
            {k: e.get(k) for k in ("row", "column", "field", "code", "reason")}
            for e in (written.get("errors") or [])[: max(0, min(limit, REPORT_ROWS))]
        ]
        return {
            "campaign_id": campaign_id,
            "status": str(shown_status(item.status, item.counters or {})),
            "invalid_reason": item.invalid_reason,
            "summary": summary,
            "header": written.get("header") or [],
            "merge_fields": written.get("merge_fields") or [],
            "errors": errors,
            "error_count": int(summary.get("error_count") or len(errors)),
            "errors_truncated": bool(written.get("errors_truncated"))
            or int(summary.get("error_count") or 0) > len(errors),
        }

    def preview(self, person: Person, mailbox: str, campaign_id: str, count: int = 3) -> list[dict]:
        """The first `count` messages as the campaign renders them (subject, text, recipient, cc,
        attachments; with group_by, one per group, with the rows it covers). A row that does not
        render says why instead."""
        item = self._mine(person, mailbox, campaign_id)
        if self.files_of is None:
            raise CampaignRefused("this installation has no campaign bucket")
        files = self.files_of(campaign_id)
        pins = item.files or {}
        try:
            manifest = campaign_domain.Manifest.parse(files.read("manifest.json", pins.get("manifest.json")))
            templates = campaign_domain.compile_templates(manifest)
        except (campaign_domain.ManifestError, PackageChanged) as exc:
            raise CampaignConflict(f"the campaign's manifest cannot be read: {exc}") from None

        def rows() -> Iterator[campaign_domain.Row]:
            body, size = files.open_with_size("recipients.csv", pins.get("recipients.csv"))
            try:
                yield from campaign_domain.read_rows(body, size=size)
            finally:
                body.close()

        shown: list[dict] = []
        covered: set[int] = set()
        try:
            for row in rows():
                if len(shown) >= max(1, min(count, PREVIEW_MESSAGES)):
                    break
                if row.number in covered:
                    continue
                try:
                    values, numbers = campaign_domain.message_of_row(manifest, rows, row.number)
                except campaign_domain.NoSuchRow:
                    continue
                covered.update(numbers)
                shown.append(_preview_of(manifest, templates, values, numbers))
        except (campaign_domain.CsvError, PackageChanged) as exc:
            raise CampaignConflict(f"the campaign's list cannot be read: {exc}") from None
        return shown

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
            elif action == "confirm":
                done = {"status": self._confirm(person, campaign_id)}
            else:
                done = {"status": str(self.admin.set_status(campaign_id, action, by=person.username))}
        except ValueError as exc:
            raise CampaignConflict(str(exc)) from None
        return done

    def _confirm(self, person: Person, campaign_id: str) -> str:
        """A campaign submitted as a dry run and validated is sent as it was checked (the same
        pinned files): its queuing starts on the fan-out queue, its counters now."""
        item = self.admin.campaigns.get(campaign_id)
        if item is None or item.status != CampaignStatus.VALIDATED:
            raise ValueError(
                f"campaign {campaign_id} is {(item.status if item else None) or 'gone'}: only a campaign "
                "checked and waiting for confirmation (validated) can be confirmed"
            )
        if self.fanout_queue is None:
            raise ValueError("this installation cannot start a campaign from the API (no fan-out queue)")
        campaigns = self.admin.campaigns
        if not campaigns.update(
            campaign_id,
            {"status": CampaignStatus.QUEUING, "dry_run": False, "confirmed_by": person.username,
             "confirmed_at": clock.iso()},
            only_if_status=(CampaignStatus.VALIDATED,),
        ):  # fmt: skip
            raise ValueError(f"campaign {campaign_id} was confirmed or changed meanwhile")
        messages = int((item.validation or {}).get("messages", (item.validation or {}).get("valid_rows", 0)))
        campaigns.start_counting(campaign_id, messages)
        self.fanout_queue.send({"MessageBody": json.dumps({"campaign_id": campaign_id})})
        self._audit(person, item.mailbox or "", campaign_id, "confirmed", recipients=messages,
                    purpose=(item.manifest or {}).get("purpose"))  # fmt: skip
        return str(CampaignStatus.QUEUING)

    def _quota(self, mailbox: str) -> dict | None:
        """The sending mailbox's quota: its preset (or the one its domain tells) as N per window."""
        config = self.mailbox_of(mailbox.lower()) if self.mailbox_of else None
        preset = config.quota_preset if config else preset_of_domain(mailbox)
        if not preset:
            return None
        try:
            policy = policy_from_spec(preset)
        except ValueError:
            return None
        return {
            "preset": preset,
            "limit": policy.limit,
            "window_seconds": policy.window_seconds,
            "rolling": policy.rolling,
        }

    def _snapshot(self, item: CampaignRecord, counters: Mapping[str, int]) -> list[list[int]]:
        """The chart's series with the counters now: a point added when they moved (replacing the
        last one within its SERIES_STEP), written back on the campaign item; bounded by SERIES_POINTS.
        Points are taken when someone reads the statistics: a campaign no one watched has few,
        and the chart joins them."""
        raw = item.extra.get("series") or []
        series = [[int(v) for v in point] for point in raw if isinstance(point, (list, tuple))]
        if not item.counting_started:
            return series
        now = int(clock.now().timestamp())
        point = [now, *(int(counters.get(name, 0)) for name in SERIES)]
        if not series:
            start = _parse_time(item.created_at)
            begun = int(start.timestamp()) if start else now
            total = int(counters.get("total", 0))
            series = [[min(begun, now), *(total if name == "to_send" else 0 for name in SERIES)]]
        if series[-1][1:] == point[1:]:
            return series
        if len(series) > 1 and now // SERIES_STEP == series[-1][0] // SERIES_STEP:  # one point a step
            series[-1] = point
        else:
            series.append(point)
        if len(series) > SERIES_POINTS:  # thin the older half: every other point
            half = len(series) // 2
            series = series[:half:2] + series[half:]
        self.admin.campaigns.update(item.campaign_id, {"series": series})
        return series

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


def expected_end(
    item: CampaignRecord, counters: Mapping[str, int], quota: Mapping[str, Any] | None
) -> str | None:
    """When the last message still to send should leave, at the quota's pace (N per window, the
    first N at once): from now, or from the start time when that is later. None when nothing is
    left to send, the campaign is not sending, or the quota is unknown."""
    left = int(counters.get("to_send", 0))
    if not quota or left <= 0 or item.status not in (CampaignStatus.QUEUING, CampaignStatus.SENDING):
        return None
    now = clock.now()
    start = _parse_time(item.start_at)
    begin = max(now, start) if start else now
    windows = math.ceil(left / int(quota["limit"])) - 1
    last = left - windows * int(quota["limit"])  # the messages of the last window, 0.5 s apart
    seconds = windows * float(quota["window_seconds"]) + last * SLOT_SPACING
    return clock.iso(begin + timedelta(seconds=seconds))


def _parse_time(text: str | None) -> datetime | None:
    """An ISO time as stored (…Z) or written in a manifest (with its zone); None if unreadable."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _preview_of(
    manifest: campaign_domain.Manifest, templates: Any, values: Mapping[str, Any], numbers: tuple[int, ...]
) -> dict:
    out: dict[str, Any] = {
        "rows": list(numbers),
        "to": manifest.address_of(values),
        "cc": manifest.cc,
        "attachments": [*manifest.attachments, *own_attachments(manifest, values)],
    }
    try:
        rendered = templates.render(values)
    except campaign_domain.RenderError as exc:
        return {**out, "error": str(exc)}
    return {
        **out,
        "subject": rendered.subject,
        "text": rendered.text,
        "pdf": rendered.pdf_filename,
    }


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
    receipts.sort(key=lambda r: (*receipt_order(r), r["sha256"]))
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

"""Campaign fan-out: validate the whole package first, then one job per row, queued in batches.

Upload order: `campaigns/<id>/attachments/...`, `recipients.csv`, then `manifest.json` last;
the manifest's arrival starts this. The first event pins the manifest and the CSV (their S3
version ids, or ETags where the bucket keeps no versions): validation, queuing and every
continuation read exactly those bytes, so a file replaced meanwhile changes nothing (a pinned
version that can no longer be read stops the queuing with the reason on the campaign). A
manifest uploaded again under a campaign that exists starts nothing: it is noted on the
campaign (a campaign runs once; a new one needs a new id).

The CSV is streamed (constant memory, any size) twice: once to validate every row (an invalid
campaign queues nothing), once to create the jobs and queue them ten at a time. With the
manifest's `group_by`, one job per group of rows: the second reading spills the rows to a scratch
database on disk by group (pecflow.domain.campaign.grouping) and queues the groups in the order
of their first row, which is the job's `row` (its checkpoint and Message-ID). Every job is
created only where it does not exist, so no retry, duplicated S3 event or concurrent fan-out
ever rewrites a job that moved on. Progress is checkpointed after every batch (conditional on
the previous checkpoint: of two concurrent fan-outs, one goes on and the other stops), so a
fan-out stopped midway (timeout, crash) resumes from the checkpoint: no row lost, and the batch
whose checkpoint may be missing is re-queued under the same deduplication ids.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field

from pecflow.domain import campaign as campaign_mod
from pecflow.domain import clock
from pecflow.domain.audit import AuditAction
from pecflow.domain.ports import CampaignFiles, CampaignStore, OutgoingStore, PackageChanged, Queue
from pecflow.domain.reconcile import CampaignStatus
from pecflow.domain.records import CampaignRecord
from pecflow.services.audit import AuditLog
from pecflow.services.sending import QUEUE_BATCH, message_id_for, queue_entry

BATCH = QUEUE_BATCH


@dataclass(slots=True)
class Fanout:
    """The fan-out of any campaign, wired by the bootstrap."""

    files_of: Callable[[str], CampaignFiles]
    campaigns: CampaignStore
    outgoing: OutgoingStore
    send_queue: Queue
    fanout_queue: Queue | None = None  # where a fan-out stopped by its deadline continues
    margin: float = 30.0  # seconds left when it stops queuing and continues in another invocation
    audit: AuditLog | None = None  # the campaign's start (and its purpose) in its mailbox's log

    def run(
        self,
        campaign_id: str,
        *,
        manifest_version: str | None = None,
        time_left: Callable[[], float] = lambda: float("inf"),
        uploaded_by: str | None = None,
    ) -> FanoutResult:
        later = self.fanout_queue
        audit = self.audit

        def started(manifest: campaign_mod.Manifest, rows: int) -> None:
            if audit is not None:
                audit.record(
                    manifest.mailbox,
                    actor=uploaded_by or "upload",
                    action=AuditAction.CAMPAIGN,
                    message=campaign_id,
                    details={"change": "started", "purpose": manifest.purpose, "recipients": rows,
                             "name": manifest.name},
                )  # fmt: skip

        return fan_out(
            campaign_id,
            package=self.files_of(campaign_id),
            campaigns=self.campaigns,
            outgoing=self.outgoing,
            send_batch=self.send_queue.send_batch,
            time_left=time_left,
            margin=self.margin,
            continue_later=(
                (lambda cid: later.send({"MessageBody": json.dumps({"campaign_id": cid})})) if later else None
            ),
            manifest_version=manifest_version,
            on_start=started,
        )


@dataclass(slots=True)
class FanoutResult:
    campaign_id: str
    status: str
    rows: int = 0
    queued: int = 0
    errors: int = 0
    more: bool = False
    problems: list[str] = field(default_factory=list)


def fan_out(
    campaign_id: str,
    *,
    package: CampaignFiles,
    campaigns: CampaignStore,
    outgoing: OutgoingStore,
    send_batch: Callable[[list[dict]], dict],
    time_left: Callable[[], float] = lambda: float("inf"),
    margin: float = 30.0,
    continue_later: Callable[[str], None] | None = None,
    manifest_version: str | None = None,
    on_start: Callable[[campaign_mod.Manifest, int], None] | None = None,
) -> FanoutResult:
    """Validate, then queue, the campaign; or go on queuing it. `manifest_version`: the version
    the S3 event names (None for a continuation)."""
    existing = campaigns.get(campaign_id)
    if existing is None:
        existing = _create(campaign_id, package, campaigns, manifest_version)
    elif manifest_version and manifest_version != _pinned(existing, MANIFEST).get("version_id"):
        campaigns.note_problem(
            campaign_id,
            f"{clock.iso()}: manifest.json uploaded again (version "
            f"{manifest_version}): ignored, a campaign runs once; upload "
            "the new one under a new campaign id",
        )
    status = existing.status
    # paused (or paused and resumed) while its rows were being queued: the queuing goes on where it
    # stopped (the senders park what a paused campaign queues; resume queues it again)
    unfinished = (
        status in (CampaignStatus.PAUSED, CampaignStatus.SENDING)
        and bool(existing.counting_started)
        and not existing.fanout_finished_at
    )
    if status not in (CampaignStatus.VALIDATING, CampaignStatus.QUEUING) and not unfinished:
        return FanoutResult(
            campaign_id, str(status), problems=[existing.invalid_reason or "already fanned out"]
        )
    pins = existing.files
    try:
        manifest_bytes = package.read(MANIFEST, pins.get(MANIFEST))
        manifest = campaign_mod.Manifest.parse(manifest_bytes)
    except PackageChanged as exc:
        return _stop(campaign_id, campaigns, existing, str(exc))
    except campaign_mod.ManifestError as exc:
        # the full report (every manifest problem, the CSV checks too) is still published
        summary = _validate(package, manifest_bytes, pins)
        campaigns.update(
            campaign_id, {"status": CampaignStatus.INVALID, "validation": summary, "invalid_reason": str(exc)}
        )
        return FanoutResult(
            campaign_id, CampaignStatus.INVALID, errors=summary["error_count"], problems=[str(exc)]
        )
    state = existing
    if status == CampaignStatus.VALIDATING:
        try:
            summary = _validate(package, manifest_bytes, pins)
        except PackageChanged as exc:
            return _stop(campaign_id, campaigns, existing, str(exc))
        if not summary["valid"]:
            campaigns.update(campaign_id, {"status": CampaignStatus.INVALID, "validation": summary})
            return FanoutResult(
                campaign_id,
                CampaignStatus.INVALID,
                rows=summary.get("rows", 0),
                errors=summary["error_count"],
            )
        if manifest.dry_run:
            campaigns.update(campaign_id, {"status": CampaignStatus.VALIDATED, "validation": summary})
            return FanoutResult(campaign_id, CampaignStatus.VALIDATED, rows=summary.get("rows", 0))
        campaigns.update(
            campaign_id,
            {"status": CampaignStatus.QUEUING, "validation": summary},
            only_if_status=(CampaignStatus.VALIDATING,),
        )
        campaigns.start_counting(campaign_id, _messages(summary), _rows(summary))
        now = campaigns.get(campaign_id)
        if now is None or now.status != CampaignStatus.QUEUING:  # cancelled, or queued by another fan-out
            return FanoutResult(
                campaign_id, str(now.status if now else None), problems=["already fanned out"]
            )
        if on_start is not None:
            on_start(manifest, _messages(summary))
        state = now
    return _queue(
        campaign_id,
        manifest,
        state,
        package=package,
        campaigns=campaigns,
        outgoing=outgoing,
        send_batch=send_batch,
        time_left=time_left,
        margin=margin,
        continue_later=continue_later,
    )


MANIFEST, RECIPIENTS = "manifest.json", "recipients.csv"


def _messages(summary: Mapping) -> int:
    """The messages a validated campaign sends: one per row, or one per group (group_by)."""
    return int(summary.get("messages", summary.get("valid_rows", 0)))


def _rows(summary: Mapping) -> int:
    """The CSV rows those messages cover (every valid row: a campaign queues only when all are)."""
    return int(summary.get("valid_rows", _messages(summary)))


def _queued_rows(campaign: CampaignRecord) -> int:
    """The CSV rows the jobs queued so far cover (a checkpoint written before they were noted:
    one per job)."""
    if campaign.fanout_queued_rows is not None:
        return campaign.fanout_queued_rows
    return int(campaign.fanout_queued or 0)


def _pinned(campaign: CampaignRecord, name: str) -> dict:
    return campaign.files.get(name) or {}


def _create(
    campaign_id: str, package: CampaignFiles, campaigns: CampaignStore, manifest_version: str | None
) -> CampaignRecord:
    """The campaign item, created once with its files pinned (a concurrent duplicate event
    finds it created and uses the same pins)."""
    pins = {MANIFEST: package.pin(MANIFEST, manifest_version), RECIPIENTS: package.pin(RECIPIENTS)}
    fields: dict = {
        "status": CampaignStatus.VALIDATING,
        "attempts": 1,
        "files": {name: pin for name, pin in pins.items() if pin},
    }
    if pins[MANIFEST] is None:
        fields |= {"status": CampaignStatus.INVALID, "invalid_reason": "manifest.json is missing"}
    elif pins[RECIPIENTS] is None:
        fields |= {
            "status": CampaignStatus.INVALID,
            "invalid_reason": "recipients.csv is missing: upload the CSV and the attachments first, "
            "the manifest last",
        }
    else:
        try:
            manifest = campaign_mod.Manifest.parse(package.read(MANIFEST, pins[MANIFEST]))
            fields |= {
                "mailbox": manifest.mailbox.lower(),  # as the index ByMailbox is queried
                "manifest": manifest.to_dict(),
                "dry_run": manifest.dry_run,
                "start_at": manifest.start_at,
            }
        except (campaign_mod.ManifestError, PackageChanged):
            pass  # reported by the validation, which reads the same pinned bytes
    campaigns.create(campaign_id, fields)
    return campaigns.get(campaign_id) or CampaignRecord.from_item({**fields, "campaign_id": campaign_id})


def _stop(campaign_id: str, campaigns: CampaignStore, campaign: CampaignRecord, reason: str) -> FanoutResult:
    """A pinned file is gone: queue nothing more, say why, and count only what was queued."""
    queued = int(campaign.fanout_queued or 0)
    if campaign.status == CampaignStatus.VALIDATING:
        campaigns.update(campaign_id, {"status": CampaignStatus.INVALID, "invalid_reason": reason})
        return FanoutResult(campaign_id, CampaignStatus.INVALID, problems=[reason])
    message = f"queuing stopped after {queued} recipient(s): {reason}; the recipients queued are sent"
    if campaigns.update(
        campaign_id,
        {"status": CampaignStatus.SENDING, "fanout_error": message, "fanout_finished_at": clock.iso()},
        only_if_status=(CampaignStatus.QUEUING,),
    ):
        validation = campaign.validation or {"messages": queued, "valid_rows": _queued_rows(campaign)}
        never = _messages(validation) - queued
        if never > 0:
            campaigns.add_jobs(campaign_id, -never, -(_rows(validation) - _queued_rows(campaign)))
    return FanoutResult(campaign_id, CampaignStatus.SENDING, queued=queued, problems=[message])


def _validate(package: CampaignFiles, manifest_bytes: bytes, pins: Mapping[str, dict]) -> dict:
    """Validate every row (constant memory: scratch space on disk) and publish the report;
    returns the report's summary."""
    with (
        tempfile.TemporaryDirectory(prefix="pecflow-validate-") as scratch,
        campaign_mod.SqliteAttachmentIndex(package.attachments(), directory=scratch) as index,
    ):
        csv_body, size = package.open_with_size(RECIPIENTS, pins.get(RECIPIENTS))
        with campaign_mod.validate(manifest_bytes, csv_body, index, size=size, directory=scratch) as report:
            with tempfile.TemporaryFile(dir=scratch) as errors:
                report.write_errors_csv(errors)
                errors.seek(0)
                _write_report(package, report.to_json(), errors)
            return {
                **report.summary(),
                "valid": report.valid,
                "valid_rows": report.valid_rows,
                "messages": report.messages,
                "error_count": report.error_count,
            }


def _write_report(package: CampaignFiles, report: dict, errors_csv) -> None:
    package.put(
        "validation.json",
        io.BytesIO(json.dumps(report, ensure_ascii=False, indent=2).encode()),
        "application/json",
    )
    if errors_csv is not None:
        package.put("validation-errors.csv", errors_csv, "text/csv; charset=utf-8")


def _queue(
    campaign_id: str,
    manifest,
    state: CampaignRecord,
    *,
    package,
    campaigns,
    outgoing,
    send_batch,
    time_left,
    margin,
    continue_later,
) -> FanoutResult:
    next_row = int(state.fanout_next_row or 0)
    queued = int(state.fanout_queued or 0)
    # the campaign's rows queued, those before the checkpoint included (a resumed fan-out)
    result = FanoutResult(campaign_id, CampaignStatus.QUEUING, rows=_queued_rows(state), queued=queued)
    batch: list[dict] = []
    try:
        csv_body, size = package.open_with_size(RECIPIENTS, _pinned(state, RECIPIENTS))
    except PackageChanged as exc:
        return _stop(campaign_id, campaigns, state, str(exc))
    rows = campaign_mod.read_rows(csv_body, size=size)
    with (
        tempfile.TemporaryDirectory(prefix="pecflow-fanout-") as scratch,
        closing(_jobs(campaign_id, manifest, rows, next_row, scratch)) as jobs,
    ):
        for job in jobs:
            batch.append(job)
            if len(batch) < BATCH:
                continue
            moved = _flush(
                campaign_id, batch, next_row, (queued, result.rows), campaigns, outgoing, send_batch
            )
            if moved is None:
                return _yield_to_other(result)
            next_row, queued, result.rows = moved
            batch = []
            result.queued = queued
            if time_left() < margin:
                result.more = True
                if continue_later is not None:
                    continue_later(campaign_id)
                return result
    if batch:
        moved = _flush(campaign_id, batch, next_row, (queued, result.rows), campaigns, outgoing, send_batch)
        if moved is None:
            return _yield_to_other(result)
        next_row, queued, result.rows = moved
        result.queued = queued
    finished = clock.iso()
    if not campaigns.update(
        campaign_id,
        {"status": CampaignStatus.SENDING, "fanout_finished_at": finished},
        only_if_status=(CampaignStatus.QUEUING,),
    ):  # paused (or resumed, or cancelled) meanwhile: the status stays as the person set it
        campaigns.update(campaign_id, {"fanout_finished_at": finished})
        now = campaigns.get(campaign_id)
        result.status = str(now.status) if now and now.status else CampaignStatus.SENDING
        return result
    result.status = CampaignStatus.SENDING
    return result


def _jobs(campaign_id: str, manifest, rows, next_row: int, scratch: str):
    """The jobs of the rows from `next_row` on: one per row, or one per group of rows (each
    group's job carries its rows' values in `righe`, and their numbers)."""

    def job(row: int, recipient_values, values, **more) -> dict:
        return {
            "message_id": message_id_for(campaign_id, row, 1, manifest.mailbox),
            "recipient": manifest.address_of(recipient_values).lower(),
            "mailbox": manifest.mailbox,
            "campaign_id": campaign_id,
            "row": row,
            "attempt": 1,
            "values": values,
            **more,
            **({"cc": manifest.cc} if manifest.cc else {}),
        }

    if not manifest.group_by_key:
        for row in rows:
            if row.number >= next_row:
                yield job(row.number, row, campaign_mod.row_values(manifest, row))
        return
    for group in campaign_mod.grouped(rows, manifest.group_by_key, directory=scratch, after_row=next_row):
        values = campaign_mod.group_values(manifest, group.rows)
        yield job(group.first_row, values, values, rows=list(group.numbers))


def _yield_to_other(result: FanoutResult) -> FanoutResult:
    result.problems.append("another fan-out of this campaign is ahead: it goes on, this one stops")
    return result


def _flush(
    campaign_id, batch, next_row, so_far: tuple[int, int], campaigns, outgoing, send_batch
) -> tuple[int, int, int] | None:
    """Create the batch's jobs (where absent), queue them, checkpoint; `so_far`: the jobs queued
    and the rows they cover, before the batch. Returns the checkpoint's next row, jobs and rows.
    None when another fan-out moved the checkpoint meanwhile (its jobs are the same jobs:
    nothing is lost or doubled)."""
    queued, rows = so_far
    outgoing.add_jobs(batch)
    entries = [queue_entry(job["message_id"], i) for i, job in enumerate(batch)]
    response = send_batch(entries)
    if response.get("Failed"):
        raise RuntimeError(f"jobs not queued: {response['Failed']}")
    new_next = batch[-1]["row"] + 1
    queued, rows = queued + len(batch), rows + sum(len(job.get("rows") or (1,)) for job in batch)
    if not campaigns.checkpoint(campaign_id, new_next, queued, next_row, rows):
        return None
    return new_next, queued, rows

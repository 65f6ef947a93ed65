"""Campaign fan-out: validate the whole package first, then one job per row, queued in batches.

Upload order: `campaigns/<id>/attachments/...`, `recipients.csv`, then `manifest.json` last;
the manifest's arrival starts this. The CSV is streamed (constant memory, any size) twice:
once to validate every row (an invalid campaign queues nothing), once to create the jobs and
queue them ten at a time. Progress is checkpointed after every batch, so a fan-out stopped
midway (timeout, crash) resumes from the checkpoint: no row lost; the one batch whose
checkpoint may be missing is re-created only where absent and re-queued under the same
deduplication ids, so nothing is queued twice.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pecflow import campaign as campaign_mod
from pecflow import clock
from pecflow.sending import message_id_for
from pecflow.store import CampaignStatus, CampaignStore, OutgoingStore

CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MANIFEST_KEY = re.compile(r"^campaigns/(?P<id>[^/]+)/manifest\.json$")
BATCH = 10


def campaign_of(key: str) -> str | None:
    """The campaign id of a `campaigns/<id>/manifest.json` key (None for any other key)."""
    match = MANIFEST_KEY.match(key)
    return match.group("id") if match and CAMPAIGN_ID.match(match.group("id")) else None


class CampaignPackage:
    """The campaign's files in S3."""

    def __init__(self, s3, bucket: str, campaign_id: str):
        self.s3, self.bucket, self.campaign_id = s3, bucket, campaign_id
        self.prefix = f"campaigns/{campaign_id}/"

    def read(self, name: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()

    def open(self, name: str):
        """A streaming body: read in chunks, never whole."""
        return self.open_with_size(name)[0]

    def open_with_size(self, name: str):
        response = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + name)
        return response["Body"], response.get("ContentLength")

    def exists(self, name: str) -> bool:
        response = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + name, MaxKeys=1)
        return any(o["Key"] == self.prefix + name for o in response.get("Contents", []))

    def attachments(self) -> Iterable[tuple[str, int]]:
        paginator = self.s3.get_paginator("list_objects_v2")
        folder = self.prefix + "attachments/"
        for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
            for obj in page.get("Contents", []):
                yield obj["Key"][len(folder):], obj["Size"]

    def put(self, name: str, body, content_type: str) -> None:
        self.s3.upload_fileobj(body, self.bucket, self.prefix + name, ExtraArgs={"ContentType": content_type})


@dataclass(slots=True)
class FanoutResult:
    campaign_id: str
    status: str
    rows: int = 0
    queued: int = 0
    errors: int = 0
    more: bool = False
    problems: list[str] = field(default_factory=list)


def fan_out(campaign_id: str, *, package: CampaignPackage, campaigns: CampaignStore, outgoing: OutgoingStore,
            send_batch: Callable[[list[dict]], dict], time_left: Callable[[], float] = lambda: float("inf"),
            margin: float = 30.0, continue_later: Callable[[str], None] | None = None) -> FanoutResult:
    existing = campaigns.get(campaign_id)
    if existing and existing.get("status") not in (CampaignStatus.VALIDATING, CampaignStatus.QUEUING):
        return FanoutResult(campaign_id, existing["status"], problems=["already fanned out"])
    manifest_bytes = package.read("manifest.json")
    try:
        manifest = campaign_mod.Manifest.parse(manifest_bytes)
    except campaign_mod.ManifestError as exc:
        # the full report (every manifest problem, the CSV checks too) is still published
        summary = _validate(package, manifest_bytes)
        campaigns.create(campaign_id, {"status": CampaignStatus.INVALID})
        campaigns.update(campaign_id, {"status": CampaignStatus.INVALID, "validation": summary,
                                       "invalid_reason": str(exc)})
        return FanoutResult(campaign_id, CampaignStatus.INVALID, errors=summary["error_count"], problems=[str(exc)])
    campaigns.create(campaign_id, {"status": CampaignStatus.VALIDATING, "mailbox": manifest.mailbox,
                                   "manifest": manifest.to_dict(), "dry_run": manifest.dry_run,
                                   "start_at": manifest.start_at, "attempts": 1})
    state = campaigns.get(campaign_id)
    if state["status"] == CampaignStatus.VALIDATING:
        summary = _validate(package, manifest_bytes)
        if not summary["valid"]:
            campaigns.update(campaign_id, {"status": CampaignStatus.INVALID, "validation": summary})
            return FanoutResult(campaign_id, CampaignStatus.INVALID, rows=summary.get("rows", 0),
                                errors=summary["error_count"])
        if manifest.dry_run:
            campaigns.update(campaign_id, {"status": CampaignStatus.VALIDATED, "validation": summary})
            return FanoutResult(campaign_id, CampaignStatus.VALIDATED, rows=summary.get("rows", 0))
        campaigns.update(campaign_id, {"status": CampaignStatus.QUEUING, "validation": summary},
                         only_if_status=(CampaignStatus.VALIDATING,))
        campaigns.start_counting(campaign_id, summary["valid_rows"])
        state = campaigns.get(campaign_id)
    return _queue(campaign_id, manifest, state, package=package, campaigns=campaigns, outgoing=outgoing,
                  send_batch=send_batch, time_left=time_left, margin=margin, continue_later=continue_later)


def _validate(package: CampaignPackage, manifest_bytes: bytes) -> dict:
    """Validate every row (constant memory: scratch space on disk) and publish the report;
    returns the report's summary."""
    with tempfile.TemporaryDirectory(prefix="pecflow-validate-") as scratch, \
            campaign_mod.SqliteAttachmentIndex(package.attachments(), directory=scratch) as index:
        csv_body, size = package.open_with_size("recipients.csv")
        with campaign_mod.validate(manifest_bytes, csv_body, index, size=size, directory=scratch) as report:
            with tempfile.TemporaryFile(dir=scratch) as errors:
                report.write_errors_csv(errors)
                errors.seek(0)
                _write_report(package, report.to_json(), errors)
            return {**report.summary(), "valid": report.valid, "valid_rows": report.valid_rows,
                    "error_count": report.error_count}


def _write_report(package: CampaignPackage, report: dict, errors_csv) -> None:
    package.put("validation.json", io.BytesIO(json.dumps(report, ensure_ascii=False, indent=2).encode()),
                "application/json")
    if errors_csv is not None:
        package.put("validation-errors.csv", errors_csv, "text/csv; charset=utf-8")


def _queue(campaign_id: str, manifest, state: dict, *, package, campaigns, outgoing, send_batch, time_left,
           margin, continue_later) -> FanoutResult:
    next_row = int(state.get("fanout_next_row", 0))
    queued = int(state.get("fanout_queued", 0))
    resumed = next_row > 0 or queued > 0
    result = FanoutResult(campaign_id, CampaignStatus.QUEUING, queued=queued)
    batch: list[dict] = []
    csv_body, size = package.open_with_size("recipients.csv")
    for row in campaign_mod.read_rows(csv_body, size=size):
        result.rows += 1
        if row.number < next_row:
            continue
        batch.append({"message_id": message_id_for(campaign_id, row.number, 1, manifest.mailbox),
                      "recipient": manifest.address_of(row).lower(), "mailbox": manifest.mailbox,
                      "campaign_id": campaign_id, "row": row.number, "attempt": 1,
                      "values": campaign_mod.row_values(manifest, row)})
        if len(batch) == BATCH:
            next_row, queued = _flush(campaign_id, batch, next_row, queued, resumed, campaigns, outgoing, send_batch)
            resumed, batch = False, []
            result.queued = queued
            if time_left() < margin:
                result.more = True
                if continue_later is not None:
                    continue_later(campaign_id)
                return result
    if batch:
        next_row, queued = _flush(campaign_id, batch, next_row, queued, resumed, campaigns, outgoing, send_batch)
        result.queued = queued
    campaigns.update(campaign_id, {"status": CampaignStatus.SENDING, "fanout_finished_at": clock.iso()},
                     only_if_status=(CampaignStatus.QUEUING,))
    result.status = CampaignStatus.SENDING
    return result


def _flush(campaign_id, batch, next_row, queued, resumed, campaigns, outgoing, send_batch) -> tuple[int, int]:
    outgoing.add_jobs(batch, may_exist=resumed)
    entries = [queue_entry(job["message_id"], i) for i, job in enumerate(batch)]
    response = send_batch(entries)
    if response.get("Failed"):
        raise RuntimeError(f"jobs not queued: {response['Failed']}")
    new_next = batch[-1]["row"] + 1
    if not campaigns.checkpoint(campaign_id, new_next, queued + len(batch), next_row):
        raise RuntimeError(f"campaign {campaign_id}: another fan-out moved the checkpoint")
    return new_next, queued + len(batch)


def queue_entry(message_id: str, index: int = 0) -> dict:
    """A send-queue entry: each job its own group (sent in parallel), deduplicated by job."""
    import hashlib

    dedupe = hashlib.sha256(message_id.encode()).hexdigest()
    return {"Id": str(index), "MessageBody": json.dumps({"message_id": message_id}),
            "MessageGroupId": dedupe[:64], "MessageDeduplicationId": dedupe}

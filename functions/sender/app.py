"""Send queue → one campaign job: claim, quota slot, render, archive, SMTPS. A job that must
wait goes back to the queue with a visibility delay (reported as a batch item failure)."""

from __future__ import annotations

import json
import time
from functools import lru_cache

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pecflow.adapters.archive import Archive
from pecflow.adapters.dynamodb import CampaignStore, MailboxStore, OutgoingStore
from pecflow.adapters.mail import SmtpSubmitter
from pecflow.adapters.ratelimit import RateLimiter
from pecflow.adapters.secrets import mailbox_password
from pecflow.domain import campaign, clock, quota
from pecflow.services.fanout import queue_entry
from pecflow.services.polling import open_with_fresh_password
from pecflow.services.sending import Sender, renew
from pecflow.settings import Settings

settings = Settings.from_env(
    "outgoing_table", "campaigns_table", "campaign_bucket", "archive_bucket", "quota_table", "send_queue_url"
)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
s3 = boto3.client("s3")
sqs = boto3.client("sqs")
mailboxes = MailboxStore(settings.mailboxes_table)
_configs: dict[str, tuple[float, object]] = {}


def mailbox_of(address: str):
    cached = _configs.get(address)
    if cached and time.monotonic() - cached[0] < 60:
        return cached[1]
    config = mailboxes.get(address)
    _configs[address] = (time.monotonic(), config)
    return config


SEND_MARGIN_SECONDS = 15  # a reserved slot used up to 8 s late, plus up to 7 s of SMTP submission:
# the provider counts a message when it arrives
SEND_PACE_SECONDS = 0.5  # reserved slots at least this far apart: the senders keep up with them


def policy_for(address: str) -> quota.QuotaPolicy:
    config = mailbox_of(address)
    spec = config.quota_preset if config else "aruba"
    base = quota.policy_from_spec(spec)
    pace = min(SEND_PACE_SECONDS, base.window_seconds / base.limit / 2)
    return quota.policy_from_spec(
        spec, margin_seconds=min(SEND_MARGIN_SECONDS, base.window_seconds / 4), pace_seconds=pace
    )


@lru_cache(maxsize=64)
def campaign_file(campaign_id: str, name: str) -> bytes:
    """A campaign's attachment, read once per warm container (fixed attachments repeat)."""
    return s3.get_object(Bucket=settings.campaign_bucket, Key=f"campaigns/{campaign_id}/attachments/{name}")[
        "Body"
    ].read()


@lru_cache(maxsize=32)
def manifest_of(campaign_id: str, manifest_json: str) -> tuple[campaign.Manifest, campaign.Templates]:
    manifest = campaign.Manifest.from_dict(json.loads(manifest_json))
    return manifest, campaign.compile_templates(manifest)


def render(campaign_item: dict, job: dict, message_id: str, date) -> bytes:
    manifest, templates = manifest_of(
        job["campaign_id"], json.dumps(campaign_item["manifest"], sort_keys=True)
    )
    row = campaign.Row(job["row"], job.get("values") or {})
    files = [(name, campaign_file(job["campaign_id"], name)) for name in manifest.attachments]
    own = (row.values.get(manifest.attachment_key) or "").strip() if manifest.attachment_key else ""
    if own:
        files.append(
            (
                own,
                s3.get_object(
                    Bucket=settings.campaign_bucket, Key=f"campaigns/{job['campaign_id']}/attachments/{own}"
                )["Body"].read(),
            )
        )
    return campaign.render_message(
        manifest,
        row,
        mailbox=job["mailbox"],
        message_id=message_id,
        attachments=files,
        date=date,
        templates=templates,
    )


def submit(config, raw: bytes, recipients: list[str]):
    smtp = open_with_fresh_password(
        config,
        SmtpSubmitter.open,
        lambda c, refresh=False: mailbox_password(c, settings.stack_name, refresh=refresh),
    )
    try:
        return smtp.submit(raw, config.address, recipients)
    finally:
        smtp.close()


def check_size(config, raw: bytes) -> str | None:
    ok, reason = quota.fits(policy_for(config.address), len(raw), 1)
    return None if ok else reason


limiter = RateLimiter(settings.quota_table, policy_for)
sender = Sender(
    outgoing=OutgoingStore(settings.outgoing_table, campaigns_table=settings.campaigns_table),
    campaigns=CampaignStore(settings.campaigns_table),
    archive=Archive(settings.archive_bucket),
    mailbox_of=mailbox_of,
    acquire=limiter.acquire,
    release=limiter.release,
    render=render,
    submit=submit,
    check_size=check_size,
)


class Deferred(Exception):
    """The job waits: its message is back on the queue after a visibility delay."""


@tracer.capture_method
def send_record(record: SQSRecord) -> None:
    message_id = json.loads(record.body)["message_id"]
    logger.append_keys(message_id=message_id)
    outcome = sender.send(message_id)
    age = clock.timestamp() - int(record.attributes.sent_timestamp) / 1000
    if outcome.action == "delay" and renew(
        int(record.attributes.approximate_receive_count), age, outcome.delay
    ):
        # a fresh message in place of this one (deleted on return): waiting never dead-letters a job
        entry = queue_entry(message_id, again=f"renewed {record.message_id}")
        sqs.send_message(QueueUrl=settings.send_queue_url, **{k: v for k, v in entry.items() if k != "Id"})
        logger.info("job renewed on the queue", extra={"reason": outcome.reason})
        return
    if outcome.action == "delay":
        sqs.change_message_visibility(
            QueueUrl=settings.send_queue_url,
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=outcome.delay,
        )
        metrics.add_metric(name="JobsDeferred", unit=MetricUnit.Count, value=1)
        logger.info("job deferred", extra={"delay": outcome.delay, "reason": outcome.reason})
        raise Deferred(outcome.reason)
    if outcome.state in ("sent", "sent?"):
        metrics.add_metric(
            name="JobsSent" if outcome.state == "sent" else "JobsUncertain", unit=MetricUnit.Count, value=1
        )
    logger.info("job handled", extra={"state": outcome.state, "reason": outcome.reason})


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    # a processor per invocation: it holds the batch's state (and the local stack runs
    # concurrent invocations in one process)
    return process_partial_response(
        event=event,
        record_handler=send_record,
        processor=BatchProcessor(event_type=EventType.SQS),
        context=context,
    )

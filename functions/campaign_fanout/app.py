"""campaigns/<id>/manifest.json uploaded (S3) → validate the campaign, then queue one job per
row; a fan-out stopped by its deadline continues through the fan-out queue (SQS)."""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from pecflow.adapters.dynamodb import CampaignStore, OutgoingStore
from pecflow.services.fanout import CampaignPackage, campaign_of, fan_out
from pecflow.settings import Settings

settings = Settings.from_env(
    "outgoing_table", "campaigns_table", "campaign_bucket", "send_queue_url", "fanout_queue_url"
)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
s3 = boto3.client("s3")
sqs = boto3.client("sqs")
campaigns = CampaignStore(settings.campaigns_table)
outgoing = OutgoingStore(settings.outgoing_table, campaigns_table=settings.campaigns_table)


def _campaigns_in(event: dict) -> list[tuple[str, str | None]]:
    """(campaign id, the manifest version an S3 event names, or None for a continuation)."""
    found = []
    for record in event.get("Records", []):
        if record.get("eventSource") == "aws:s3":
            obj = record["s3"]["object"]
            campaign_id = campaign_of(unquote_plus(obj["key"]))
            if campaign_id:
                found.append((campaign_id, obj.get("versionId")))
        elif record.get("eventSource") == "aws:sqs":
            found.append((json.loads(record["body"])["campaign_id"], None))
    return found


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    results = []
    for campaign_id, manifest_version in _campaigns_in(event):
        logger.append_keys(campaign_id=campaign_id)
        result = fan_out(
            campaign_id,
            package=CampaignPackage(s3, settings.campaign_bucket, campaign_id),
            campaigns=campaigns,
            outgoing=outgoing,
            send_batch=lambda entries: sqs.send_message_batch(
                QueueUrl=settings.send_queue_url, Entries=entries
            ),
            time_left=lambda: context.get_remaining_time_in_millis() / 1000.0,
            continue_later=lambda cid: sqs.send_message(
                QueueUrl=settings.fanout_queue_url, MessageBody=json.dumps({"campaign_id": cid})
            ),
            manifest_version=manifest_version,
        )
        metrics.add_metric(name="JobsQueued", unit=MetricUnit.Count, value=result.queued)
        logger.info(
            "campaign fan-out",
            extra={
                "status": result.status,
                "rows": result.rows,
                "queued": result.queued,
                "errors": result.errors,
                "more": result.more,
                "problems": result.problems,
            },
        )
        results.append(
            {
                "campaign_id": campaign_id,
                "status": result.status,
                "queued": result.queued,
                "more": result.more,
            }
        )
    return {"campaigns": results}

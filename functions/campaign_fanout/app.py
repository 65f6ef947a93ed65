"""campaigns/<id>/manifest.json uploaded (S3) → validate the campaign, then queue one job per
row; a fan-out stopped by its deadline continues through the fan-out queue (SQS)."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics
from aws_lambda_powertools.utilities.data_classes import S3Event, SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from pecflow import bootstrap
from pecflow.adapters.campaign_files import manifests_in
from pecflow.config import Config
from pecflow.telemetry import record_keys, report_fanout

config = Config.for_function(
    "outgoing_table", "campaigns_table", "campaign_bucket", "send_queue_url", "fanout_queue_url"
)
logger = Logger()
metrics = EphemeralMetrics()  # this function's own metric set (Metrics shares one per process)
fanout = bootstrap.fanout(config)


def campaigns_in(event: dict) -> list[tuple[str, str | None]]:
    """(campaign id, manifest version) of a manifest uploaded; (campaign id, None) of a continuation."""
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        return [(message.json_body["campaign_id"], None) for message in SQSEvent(event).records]
    return manifests_in(S3Event(event).records)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    time_left = lambda: context.get_remaining_time_in_millis() / 1000.0  # noqa: E731
    first = (event.get("Records") or [{}])[0]
    principal = (first.get("userIdentity") or {}).get("principalId")  # who uploaded (S3 events)
    uploader = f"s3:{principal}" if principal else None
    results = []
    for campaign_id, version in campaigns_in(event):
        with record_keys(logger, campaign_id=campaign_id):
            result = fanout.run(
                campaign_id, manifest_version=version, time_left=time_left, uploaded_by=uploader
            )
            report_fanout(result, metrics, logger)
        summary = {"status": result.status, "queued": result.queued, "more": result.more}
        results.append({"campaign_id": campaign_id, **summary})
    return {"campaigns": results}

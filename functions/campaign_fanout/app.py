"""campaigns/<id>/manifest.json uploaded (S3) → validate the campaign, then queue one job per
row; a fan-out stopped by its deadline continues through the fan-out queue (SQS)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from pecflow import bootstrap
from pecflow.adapters.campaign_files import campaigns_in
from pecflow.config import Config
from pecflow.telemetry import report_fanout

config = Config.for_function(
    "outgoing_table", "campaigns_table", "campaign_bucket", "send_queue_url", "fanout_queue_url"
)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
fanout = bootstrap.fanout(config)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    results = []
    for campaign_id, version in campaigns_in(event):
        logger.append_keys(campaign_id=campaign_id)
        time_left = lambda: context.get_remaining_time_in_millis() / 1000.0  # noqa: E731
        result = fanout.run(campaign_id, manifest_version=version, time_left=time_left)
        report_fanout(result, metrics, logger)
        results.append(
            {
                "campaign_id": campaign_id,
                "status": result.status,
                "queued": result.queued,
                "more": result.more,
            }
        )
    return {"campaigns": results}

"""EventBridge schedule → one poll request per enabled mailbox on the FIFO poll queue."""

from __future__ import annotations

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from pecflow.adapters.dynamodb import MailboxStore
from pecflow.services.polling import schedule_polls, tick_of
from pecflow.settings import Settings

settings = Settings.from_env("poll_queue_url")
logger = Logger()
tracer = Tracer()
metrics = Metrics()
sqs = boto3.client("sqs")
mailboxes = MailboxStore(settings.mailboxes_table)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    tick = tick_of(event)
    queued = schedule_polls(
        mailboxes,
        lambda entries: sqs.send_message_batch(QueueUrl=settings.poll_queue_url, Entries=entries),
        tick,
    )
    metrics.add_metric(name="PollRequests", unit=MetricUnit.Count, value=len(queued))
    logger.info("poll requests queued", extra={"tick": tick, "mailboxes": queued})
    return {"tick": tick, "queued": len(queued)}

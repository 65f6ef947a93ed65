"""EventBridge schedule → one poll request per enabled mailbox on the FIFO poll queue."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from pecflow import bootstrap
from pecflow.config import Config
from pecflow.services.polling import tick_of

config = Config.for_function("poll_queue_url")
logger = Logger()
tracer = Tracer()
metrics = Metrics()
schedule_polls = bootstrap.poll_scheduler(config)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    tick = tick_of(event)
    queued = schedule_polls(tick)
    metrics.add_metric(name="PollRequests", unit=MetricUnit.Count, value=len(queued))
    logger.info("poll requests queued", extra={"tick": tick, "mailboxes": queued})
    return {"tick": tick, "queued": len(queued)}

"""EventBridge schedule → one poll request per enabled mailbox on the FIFO poll queue."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from pecflow import bootstrap
from pecflow.config import Config
from pecflow.services.polling import tick_of

config = Config.for_function("poll_queue_url")
logger = Logger()
metrics = EphemeralMetrics()  # this function's own metric set (Metrics shares one per process)
schedule_polls = bootstrap.poll_scheduler(config)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    tick = tick_of(event.get("time"))  # the scheduled time; an event without one: now
    queued = schedule_polls(tick)
    metrics.add_metric(name="PollRequests", unit=MetricUnit.Count, value=len(queued))
    logger.info("poll requests queued", extra={"tick": tick, "mailboxes": queued})
    return {"tick": tick, "queued": len(queued)}

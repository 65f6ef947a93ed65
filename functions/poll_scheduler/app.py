"""EventBridge schedule → one poll request per enabled mailbox on the FIFO poll queue."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from pecflow import bootstrap
from pecflow.config import Config
from pecflow.services.polling import tick_of
from pecflow.telemetry import alert_failures

config = Config.for_function("poll_queue_url")
logger = Logger()
metrics = EphemeralMetrics()  # this function's own metric set (Metrics shares one per process)
schedule_polls = bootstrap.poll_scheduler(config)
# once per alert period: receipts left unmatched, messages not taken in charge, summaries
checks = bootstrap.alert_checks(
    config, alerts=bootstrap.alerts(config, on_failure=alert_failures(logger, metrics))
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    tick = tick_of(event.get("time"))  # the scheduled time; an event without one: now
    queued = schedule_polls(tick)
    metrics.add_metric(name="PollRequests", unit=MetricUnit.Count, value=len(queued))
    logger.info("poll requests queued", extra={"tick": tick, "mailboxes": queued})
    alerted = checks.run(queued) if checks is not None else None
    if alerted is not None:
        metrics.add_metric(name="AlertsPublished", unit=MetricUnit.Count, value=alerted)
    return {"tick": tick, "queued": len(queued), "alerts": alerted}

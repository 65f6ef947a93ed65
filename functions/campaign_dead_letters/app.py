"""Send dead-letter queue → the job becomes an error the campaign statistics show, with its
reason, instead of a message nobody reads (`pecflow campaign redrive` sends it again)."""

from __future__ import annotations

import json

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pecflow import bootstrap
from pecflow.config import Config

config = Config.for_function("outgoing_table", "campaigns_table")
logger = Logger()
tracer = Tracer()
metrics = Metrics()
dead_lettered = bootstrap.dead_letters(config)


@tracer.capture_method
def record_dead_letter(record: SQSRecord) -> None:
    message_id = json.loads(record.body)["message_id"]
    state = dead_lettered(message_id)
    metrics.add_metric(name="JobsDeadLettered", unit=MetricUnit.Count, value=1)
    logger.error(
        "campaign job stopped on the dead-letter queue", extra={"message_id": message_id, "state": state}
    )


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return process_partial_response(
        event=event,
        record_handler=record_dead_letter,
        processor=BatchProcessor(event_type=EventType.SQS),
        context=context,
    )

"""Send dead-letter queue → the job becomes an error the campaign statistics show, with its
reason, instead of a message nobody reads (`pecflow campaign redrive` sends it again)."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pecflow import bootstrap
from pecflow.config import Config
from pecflow.telemetry import record_keys

config = Config.for_function("outgoing_table", "campaigns_table")
logger = Logger()
metrics = EphemeralMetrics()  # this function's own metric set (Metrics shares one per process)
dead_lettered = bootstrap.dead_letters(config)


def record_dead_letter(record: SQSRecord) -> None:
    message_id = record.json_body["message_id"]
    with record_keys(logger, message_id=message_id):
        state = dead_lettered(message_id)
        metrics.add_metric(name="JobsDeadLettered", unit=MetricUnit.Count, value=1)
        logger.error("campaign job stopped on the dead-letter queue", extra={"state": state})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    # the dead-letter queue is FIFO too, one group per job: a failure holds back that job only
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    return process_partial_response(
        event=event, record_handler=record_dead_letter, processor=processor, context=context
    )

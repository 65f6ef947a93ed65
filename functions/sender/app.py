"""Send queue → one campaign job: claim, quota slot, render, archive, SMTPS. A job that must
wait goes back to the queue with a visibility delay (reported as a batch item failure)."""

from __future__ import annotations

import json

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pecflow import bootstrap
from pecflow.config import Config
from pecflow.domain import clock
from pecflow.telemetry import report_delivery

config = Config.for_function(
    "outgoing_table", "campaigns_table", "campaign_bucket", "archive_bucket", "quota_table", "send_queue_url"
)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
delivery = bootstrap.job_delivery(config)


@tracer.capture_method
def send_record(record: SQSRecord) -> None:
    message_id = json.loads(record.body)["message_id"]
    logger.append_keys(message_id=message_id)
    done = delivery.deliver(
        message_id,
        queue_message_id=record.message_id,
        receipt_handle=record.receipt_handle,
        receive_count=int(record.attributes.approximate_receive_count),
        age=clock.timestamp() - int(record.attributes.sent_timestamp) / 1000,
    )
    report_delivery(done, metrics, logger)
    done.raise_if_deferred()  # a batch item failure: the message waits out its visibility delay


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    # a processor per invocation (the local stack runs concurrent invocations in one process)
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(
        event=event, record_handler=send_record, processor=processor, context=context
    )

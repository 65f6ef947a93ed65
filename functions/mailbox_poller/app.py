"""Poll queue (FIFO, one group per mailbox) → poll that mailbox: archive, classify, record,
reconcile, advance the cursor. Failed items are reported individually (partial batch)."""

from __future__ import annotations

import time

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pecflow import bootstrap
from pecflow.config import Config
from pecflow.services.polling import PollRequest
from pecflow.telemetry import message_logger, report_poll

config = Config.for_function("messages_table", "outgoing_table", "archive_bucket", "poll_queue_url")
logger = Logger()
tracer = Tracer()
metrics = Metrics()
poller = bootstrap.poller(config, ingestor=bootstrap.ingestor(config, on_message=message_logger(logger)))


@tracer.capture_method
def poll_record(record: SQSRecord, context) -> None:
    request = PollRequest.parse(record.body)
    logger.append_keys(mailbox=request.mailbox, tick=request.tick)
    started = time.monotonic()
    outcome = poller.poll(request, time_left=lambda: context.get_remaining_time_in_millis() / 1000.0)
    report_poll(outcome, (time.monotonic() - started) * 1000, metrics, logger)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    # a processor per invocation: it holds the batch's state (and the local stack runs
    # concurrent invocations in one process)
    processor = BatchProcessor(event_type=EventType.SQS)
    handle = lambda record: poll_record(record, context)  # noqa: E731
    return process_partial_response(event=event, record_handler=handle, processor=processor, context=context)

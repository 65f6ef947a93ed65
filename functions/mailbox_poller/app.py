"""Poll queue (FIFO, one group per mailbox) → poll that mailbox: archive, classify, record,
reconcile, advance the cursor. Failed items are reported individually (partial batch)."""

from __future__ import annotations

import time
import warnings

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pecflow import bootstrap
from pecflow.config import Config
from pecflow.services.polling import PollRequest
from pecflow.telemetry import alert_failures, message_logger, record_keys, report_poll

config = Config.for_function("messages_table", "outgoing_table", "archive_bucket", "poll_queue_url")
logger = Logger()
# a poll skipped: an invocation with no metric, as Powertools documents
warnings.filterwarnings("ignore", "No application metrics to publish")
metrics = EphemeralMetrics()  # this function's own metric set (Metrics shares one per process)
# alerts (grouped, to the alarms topic): failed deliveries, unreadable mailbox, quarantine, ...
alerts = bootstrap.alerts(config, on_failure=alert_failures(logger, metrics))
ingest = bootstrap.ingestor(config, on_message=message_logger(logger), alerts=alerts)
poller = bootstrap.poller(config, ingestor=ingest)


def poll_record(record: SQSRecord, context: LambdaContext) -> None:
    request = PollRequest.parse(record.body)
    with record_keys(logger, mailbox=request.mailbox, tick=request.tick):
        started = time.monotonic()
        outcome = poller.poll(request, time_left=lambda: context.get_remaining_time_in_millis() / 1000.0)
        report_poll(outcome, (time.monotonic() - started) * 1000, metrics, logger)
        if alerts is not None:
            alerts.after_poll(outcome)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    # one group per mailbox: a failed poll holds back the later polls of its mailbox only
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    handle = lambda record: poll_record(record, context)  # noqa: E731
    return process_partial_response(event=event, record_handler=handle, processor=processor, context=context)

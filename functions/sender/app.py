"""Send queue → one campaign job: claim, quota slot, render, archive, SMTPS. A job that must
wait goes back to the queue with a visibility delay (reported as a batch item failure)."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pecflow import bootstrap
from pecflow.config import Config
from pecflow.domain import clock
from pecflow.telemetry import record_keys, report_delivery

config = Config.for_function(
    "outgoing_table", "campaigns_table", "campaign_bucket", "archive_bucket", "quota_table", "send_queue_url"
)
logger = Logger()
# a renewal, a duplicate of a settled job: no metric to publish (suppressed as Powertools documents)
warnings.filterwarnings("ignore", "No application metrics to publish")
metrics = EphemeralMetrics()  # this function's own metric set (Metrics shares one per process)
delivery = bootstrap.job_delivery(config)


def send_record(record: SQSRecord) -> None:
    message_id = record.json_body["message_id"]
    with record_keys(logger, message_id=message_id):
        done = delivery.deliver(
            message_id,
            queue_message_id=record.message_id,
            receipt_handle=record.receipt_handle,
            receive_count=int(record.attributes.approximate_receive_count),
            age=clock.timestamp() - int(record.attributes.sent_timestamp) / 1000,
        )
        report_delivery(done, metrics, logger)
    done.raise_if_deferred()  # a batch item failure: the message waits out its visibility delay


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    # each job is its own FIFO group: a deferred job holds back no other job of the batch
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    return process_partial_response(
        event=event, record_handler=send_record, processor=processor, context=context
    )

"""Poll queue (FIFO, one group per mailbox) → poll that mailbox: archive, classify, record,
reconcile, advance the cursor. Failed items are reported individually (partial batch)."""

from __future__ import annotations

import time

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pecflow.adapters.archive import Archive
from pecflow.adapters.dynamodb import MailboxStore, MessageStore, OutgoingStore
from pecflow.adapters.secrets import mailbox_password
from pecflow.services.polling import PollRequest, handle_poll
from pecflow.services.receive import Ingestor
from pecflow.settings import Settings

settings = Settings.from_env("messages_table", "outgoing_table", "archive_bucket", "poll_queue_url")
logger = Logger()
tracer = Tracer()
metrics = Metrics()
sqs = boto3.client("sqs")
mailboxes = MailboxStore(settings.mailboxes_table)


def _log_message(address, msg) -> None:
    logger.info(
        "message ingested",
        extra={
            "message_id": msg.message_id,
            "kind": msg.kind,
            "ref_message_id": msg.ref_message_id,
            "identificativo": msg.identificativo,
            "problems": len(msg.problems),
        },
    )


ingestor = Ingestor(
    archive=Archive(settings.archive_bucket),
    messages=MessageStore(settings.messages_table),
    mailboxes=mailboxes,
    outgoing=OutgoingStore(settings.outgoing_table, campaigns_table=settings.campaigns_table or None),
    on_message=_log_message,
)


def _requeue(request: PollRequest) -> None:
    sqs.send_message(
        QueueUrl=settings.poll_queue_url, **{k: v for k, v in request.sqs_entry().items() if k != "Id"}
    )


@tracer.capture_method
def poll_record(record: SQSRecord, context) -> None:
    request = PollRequest.parse(record.body)
    logger.append_keys(mailbox=request.mailbox, tick=request.tick)
    started = time.monotonic()
    outcome = handle_poll(
        request,
        mailboxes=mailboxes,
        ingestor=ingestor,
        password_of=lambda config, refresh=False: mailbox_password(
            config, settings.stack_name, refresh=refresh
        ),
        requeue=_requeue,
        time_left=lambda: context.get_remaining_time_in_millis() / 1000.0,
    )
    elapsed_ms = (time.monotonic() - started) * 1000
    if outcome.skipped:
        logger.warning("poll skipped", extra={"reason": outcome.skipped})
        return
    if not outcome.ok:
        logger.error("mailbox poll failed", extra={"error_kind": outcome.error_kind, "error": outcome.error})
        with single_metric(
            name="MailboxPollErrors",
            unit=MetricUnit.Count,
            value=1,
            namespace=metrics.namespace,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="ErrorKind", value=outcome.error_kind or "error")
        metrics.add_metric(name="MailboxPollErrorsTotal", unit=MetricUnit.Count, value=1)
        return
    result = outcome.result
    for kind, count in result.by_kind.items():
        with single_metric(
            name="MessagesIngested",
            unit=MetricUnit.Count,
            value=count,
            namespace=metrics.namespace,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="Kind", value=kind)
    metrics.add_metric(name="ReceiptsReconciled", unit=MetricUnit.Count, value=result.receipts_matched)
    metrics.add_metric(name="ReceiptsUnmatched", unit=MetricUnit.Count, value=result.receipts_unmatched)
    metrics.add_metric(name="PollLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    if result.usage_percent is not None:
        metrics.add_metric(name="MailboxUsagePercent", unit=MetricUnit.Percent, value=result.usage_percent)
    if result.quarantined:
        metrics.add_metric(name="MessagesQuarantined", unit=MetricUnit.Count, value=len(result.quarantined))
        logger.error(
            "messages quarantined: archived, recorded as a summary", extra={"quarantined": result.quarantined}
        )
    if result.refused:
        metrics.add_metric(
            name="ArchiveVerificationFailures", unit=MetricUnit.Count, value=len(result.refused)
        )
        logger.error("messages kept on the provider: archive not verified", extra={"refused": result.refused})
    logger.info(
        "mailbox polled",
        extra={
            "fetched": result.fetched,
            "recorded": result.recorded,
            "already_recorded": result.already_recorded,
            "by_kind": result.by_kind,
            "matched": result.receipts_matched,
            "unmatched": result.receipts_unmatched,
            "more": result.more,
            "imap_commands": result.imap_commands,
            "moved": result.moved,
            "expunged": result.expunged,
            "elapsed_ms": round(elapsed_ms),
        },
    )


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    # a processor per invocation: it holds the batch's state (and the local stack runs
    # concurrent invocations in one process)
    return process_partial_response(
        event=event,
        record_handler=lambda record: poll_record(record, context),
        processor=BatchProcessor(event_type=EventType.SQS),
        context=context,
    )

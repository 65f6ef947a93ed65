"""What the functions tell CloudWatch: the metrics and the structured log lines of a poll, a
send and a fan-out (Powertools' Metrics and Logger, passed in by each handler)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from pecflow.domain.reconcile import State
from pecflow.pec.message import PecMessage
from pecflow.pec.signature import INVALID
from pecflow.services.fanout import FanoutResult
from pecflow.services.polling import PollOutcome
from pecflow.services.sending import Delivery


@contextmanager
def record_keys(logger: Any, **keys: Any) -> Iterator[None]:
    """Keys on every log line written while one record is handled, and on no other: kept in the
    calling thread's context (Powertools' thread-safe keys) and removed when the record is done,
    however it ends. The invocation's own keys are reset by `inject_lambda_context(clear_state=True)`."""
    logger.thread_safe_append_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(keys)


def _dimensioned(metrics: Any, name: str, value: float, dimension: str, of: str) -> None:
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=value,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension(name=dimension, value=of)


def message_logger(logger: Any) -> Callable[[str, PecMessage], None]:
    """A log line per message ingested (the poller's `on_message`): a warning for one the reader
    had problems with, a debug line otherwise. The poll's summary line counts the others by
    kind and each one's record holds the rest: a line per message (about 650 bytes with the
    invocation's keys) was most of the poller's CloudWatch Logs bill."""

    def log(address: str, msg: PecMessage) -> None:
        (logger.warning if msg.problems else logger.debug)(
            "message ingested",
            extra={
                "message_id": msg.message_id,
                "kind": msg.kind,
                "ref_message_id": msg.ref_message_id,
                "identificativo": msg.identificativo,
                "problems": len(msg.problems),
            },
        )

    return log


def report_poll(outcome: PollOutcome, elapsed_ms: float, metrics: Any, logger: Any) -> None:
    if outcome.skipped:
        logger.warning("poll skipped", extra={"reason": outcome.skipped})
        return
    if not outcome.ok or outcome.result is None:
        logger.error("mailbox poll failed", extra={"error_kind": outcome.error_kind, "error": outcome.error})
        _dimensioned(metrics, "MailboxPollErrors", 1, "ErrorKind", outcome.error_kind or "error")
        metrics.add_metric(name="MailboxPollErrorsTotal", unit=MetricUnit.Count, value=1)
        return
    result = outcome.result
    for kind, count in result.by_kind.items():
        _dimensioned(metrics, "MessagesIngested", count, "Kind", kind)
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
    for verdict, count in result.signatures.items():
        _dimensioned(metrics, "ProviderSignatures", count, "Outcome", verdict)
    if result.signatures.get(INVALID):
        # undimensioned, for the alarm: a provider's signature that does not match its bytes
        metrics.add_metric(
            name="ProviderSignaturesInvalid", unit=MetricUnit.Count, value=result.signatures[INVALID]
        )
        logger.error(
            "provider signature invalid: the message was changed after signing, or its signature is damaged",
            extra={"invalid_signatures": result.invalid_signatures},
        )
    if result.rules_applied:
        metrics.add_metric(name="RuleActions", unit=MetricUnit.Count, value=result.rules_applied)
    if result.rules_failed:
        metrics.add_metric(name="RuleFailures", unit=MetricUnit.Count, value=len(result.rules_failed))
        logger.error(
            "automatic rules failed: the messages are recorded, the reasons are on their records",
            extra={"rules_failed": result.rules_failed},
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
            "signatures": result.signatures,
            "matched": result.receipts_matched,
            "unmatched": result.receipts_unmatched,
            "more": result.more,
            "imap_commands": result.imap_commands,
            "moved": result.moved,
            "expunged": result.expunged,
            "elapsed_ms": round(elapsed_ms),
        },
    )


# a job done with one of these states is counted; others (a duplicate queue message of a job
# already settled, a cancelled campaign) publish no metric
_JOB_METRICS = {State.SENT: "JobsSent", State.UNCERTAIN: "JobsUncertain", State.ERROR: "JobsFailed"}


def report_delivery(delivery: Delivery, metrics: Any, logger: Any) -> None:
    """A job's metric, and its log line: a warning when it ended uncertain or failed, a debug
    line when it was sent or waits for the quota (the job's row and the metrics say so: a line
    each was most of the sender's CloudWatch Logs bill), info otherwise."""
    outcome = delivery.outcome
    if delivery.renewed:
        logger.info("job renewed on the queue", extra={"reason": outcome.reason})
    elif outcome.action == "delay":
        metrics.add_metric(name="JobsDeferred", unit=MetricUnit.Count, value=1)
        logger.debug("job deferred", extra={"delay": outcome.delay, "reason": outcome.reason})
    else:
        name = _JOB_METRICS.get(outcome.state) if outcome.state else None
        if name:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        level = {State.SENT: logger.debug, State.UNCERTAIN: logger.warning, State.ERROR: logger.warning}
        log = level.get(outcome.state, logger.info) if outcome.state else logger.info
        log("job handled", extra={"state": outcome.state, "reason": outcome.reason})


def report_fanout(result: FanoutResult, metrics: Any, logger: Any) -> None:
    metrics.add_metric(name="JobsQueued", unit=MetricUnit.Count, value=result.queued)
    logger.info(
        "campaign fan-out",
        extra={
            "status": result.status,
            "rows": result.rows,
            "queued": result.queued,
            "errors": result.errors,
            "more": result.more,
            "problems": result.problems,
        },
    )


def alert_failures(logger: Any, metrics: Any) -> Callable[[str], None]:
    """Where an alert that could not be written or published is told (Alerts' `on_failure`):
    the log says why, AlertsNotSent is counted (AlertsNotSentAlarm)."""

    def failed(reason: str) -> None:
        logger.error("alert not sent", extra={"reason": reason})
        metrics.add_metric(name="AlertsNotSent", unit=MetricUnit.Count, value=1)

    return failed

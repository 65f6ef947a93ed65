"""The handlers' Powertools wiring, with their services replaced: per-record log keys stay in
their record (never in the next record, invocation or thread), the FIFO processor fails a deferred
job's group only, and each function publishes its own metrics."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from pecflow import bootstrap
from pecflow.domain.reconcile import State
from pecflow.services.sending import Deferred, Delivery, Outcome

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
_names = itertools.count()


@dataclass
class Context:
    function_name: str = "pecflow-Sender"
    memory_limit_in_mb: str = "1024"
    invoked_function_arn: str = "arn:aws:lambda:eu-south-1:123456789012:function:pecflow-Sender"
    aws_request_id: str = "req"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def environment(monkeypatch):
    for name, value in {
        "STACK_NAME": "prova",
        "MAILBOXES_TABLE": "Mailboxes",
        "OUTGOING_TABLE": "Outgoing",
        "CAMPAIGNS_TABLE": "Campaigns",
        "CAMPAIGN_BUCKET": "campaigns",
        "ARCHIVE_BUCKET": "archive",
        "QUOTA_TABLE": "Quota",
        "SEND_QUEUE_URL": "https://sqs.local/send.fifo",
        "POLL_QUEUE_URL": "https://sqs.local/poll.fifo",
        "POWERTOOLS_SERVICE_NAME": "pecflow",
        "POWERTOOLS_METRICS_NAMESPACE": "pecflow",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def logs(environment):
    """Every JSON line the `pecflow` Powertools logger writes during the test."""
    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    handler = Logger(service="pecflow").registered_handler
    previous = handler.setStream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    handler.setStream(previous)


def load(folder: str, monkeypatch, **services):
    """One execution environment of a function: its app.py imported with its services given."""
    for factory, service in services.items():
        monkeypatch.setattr(bootstrap, factory, lambda *args, service=service, **kwargs: service)
    spec = importlib.util.spec_from_file_location(
        f"_handler_{folder}_{next(_names)}", FUNCTIONS / folder / "app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Jobs:
    """The job delivery: logs a line per job (inside the record's keys); `defer` jobs wait."""

    def __init__(self, logger_of, defer=(), barrier=None, stray=None):
        self.logger_of, self.defer, self.barrier, self.stray = logger_of, set(defer), barrier, stray

    def deliver(self, message_id, **queue):
        if self.barrier:
            self.barrier.wait(5)  # both invocations have set their keys before either logs
        logger = self.logger_of()
        if self.stray:
            logger.append_keys(**self.stray)  # a key some code left behind (global, not per record)
        logger.info("sending", extra={"job": message_id})
        outcome = (
            Outcome.later(60, "quota") if message_id in self.defer else Outcome("done", state=State.SENT)
        )
        return Reported(outcome, barrier=self.barrier)


class Reported(Delivery):
    """A delivery whose handler waits, once it has reported its metrics, for the other one's."""

    def __init__(self, outcome, barrier=None):
        super().__init__(outcome)
        self.barrier = barrier

    def raise_if_deferred(self):
        if self.barrier:
            self.barrier.wait(5)  # both invocations have added their metric before either flushes
        super().raise_if_deferred()


def sqs_event(*jobs: tuple[str, str]) -> dict:
    """(message id, FIFO group) per record, in order."""
    return {
        "Records": [
            {
                "messageId": f"q-{message_id}",
                "receiptHandle": f"r-{message_id}",
                "body": json.dumps({"message_id": message_id}),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1772438400000",
                    "MessageGroupId": group,
                    "MessageDeduplicationId": message_id,
                    "SequenceNumber": str(n),
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-south-1:123456789012:send.fifo",
                "awsRegion": "eu-south-1",
            }
            for n, (message_id, group) in enumerate(jobs)
        ]
    }


@pytest.fixture
def debug_lines(logs):
    """The `pecflow` logger writes its debug lines too (a deferred job's, a sent one's)."""
    from aws_lambda_powertools import Logger

    logger = Logger(service="pecflow")
    previous = logger.log_level
    logger.setLevel("DEBUG")
    yield logs
    logger.setLevel(previous)


def test_a_record_s_keys_stay_in_that_record_and_invocation(monkeypatch, debug_lines):
    logs = debug_lines
    jobs = Jobs(lambda: sender.logger, defer={"<m1>"})
    sender = load("sender", monkeypatch, job_delivery=jobs)
    scheduler = load("poll_scheduler", monkeypatch, poll_scheduler=lambda tick: ["a@pec.it"])

    response = sender.handler(sqs_event(("<m1>", "g1"), ("<m2>", "g2"), ("<m3>", "g1")), Context())
    scheduler.handler({"time": "2026-03-02T08:05:00Z"}, Context(aws_request_id="req-2"))

    # m1 deferred: its group's later job m3 is held back, the other group's m2 is sent
    assert response == {"batchItemFailures": [{"itemIdentifier": "q-<m1>"}, {"itemIdentifier": "q-<m3>"}]}
    lines = logs()
    sending = [line for line in lines if line["message"] == "sending"]
    assert [(line["job"], line["message_id"]) for line in sending] == [("<m1>", "<m1>"), ("<m2>", "<m2>")]
    deferred = next(line for line in lines if line["message"] == "job deferred")
    assert deferred["message_id"] == "<m1>"
    [queued] = [line for line in lines if line["message"] == "poll requests queued"]
    assert "message_id" not in queued, "a record's key in the next invocation (here another function's)"
    assert queued["function_request_id"] == "req-2"


def test_a_key_left_behind_is_gone_in_the_next_invocation(monkeypatch, logs):
    jobs = Jobs(lambda: sender.logger, stray={"stray": "left behind"})
    sender = load("sender", monkeypatch, job_delivery=jobs)
    sender.handler(sqs_event(("<m1>", "g1")), Context())
    jobs.stray = None
    sender.handler(sqs_event(("<m2>", "g2")), Context(aws_request_id="req-2"))

    first, second = [line for line in logs() if line["message"] == "sending"]
    assert first["stray"] == "left behind"
    assert "stray" not in second and second["function_request_id"] == "req-2"  # clear_state=True


def test_concurrent_invocations_keep_their_own_keys_and_metrics(monkeypatch, logs, capsys):
    """Two environments of the sender in one process, as the local stack runs them: each line
    carries its own job's key, each flush its own job's metric, and no warning is raised."""
    barrier = threading.Barrier(2)
    environments = [
        load("sender", monkeypatch, job_delivery=Jobs(lambda n=n: environments[n].logger, barrier=barrier))
        for n in range(2)
    ]
    errors = []

    def invoke(n):
        try:
            environments[n].handler(sqs_event((f"<m{n}>", f"g{n}")), Context(aws_request_id=f"req-{n}"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "No application metrics to publish" would fail an invocation
        threads = [threading.Thread(target=invoke, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert errors == []
    sending = [line for line in logs() if line["message"] == "sending"]
    assert sorted((line["job"], line["message_id"]) for line in sending) == [
        ("<m0>", "<m0>"),
        ("<m1>", "<m1>"),
    ]
    flushed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [blob["JobsSent"] for blob in flushed] == [[1.0], [1.0]], "each invocation flushed its own metric"


def test_a_deferred_job_is_a_batch_item_failure(monkeypatch, logs):
    sender = load("sender", monkeypatch, job_delivery=Jobs(lambda: sender.logger, defer={"<m1>"}))
    record = sender.SQSRecord(sqs_event(("<m1>", "g1"))["Records"][0])
    with pytest.raises(Deferred):
        sender.send_record(record)

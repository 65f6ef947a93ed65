"""The event runner drives the real handlers of a template, as Lambda's event sources would."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote_plus

import pytest

from local.aws import LocalAws
from local.clock import VirtualClock
from local.runner import EventRunner, ScheduleSource, _expression
from local.template import TemplateError

APP_DIR = Path(__file__).parent / "runner_app"
APP_TEMPLATE = APP_DIR / "template.yaml"
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture(scope="module")
def app_aws():
    aws = LocalAws.start(APP_TEMPLATE, stack_name="runner-test", set_environ=False)
    yield aws
    aws.stop()


@pytest.fixture
def start_runner(app_aws):
    """start_runner("Partial", ...) -> an EventRunner for those functions on a virtual clock,
    on fresh resources; stopped afterwards, with no runner thread left."""
    app_aws.reset()
    runners = []

    def start(*functions: str, clock: VirtualClock | None = None) -> EventRunner:
        runner = EventRunner(APP_TEMPLATE, app_aws, clock or VirtualClock(), functions=list(functions))
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("pecflow-runner")]


def queue_counts(aws: LocalAws, logical_id: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.url(logical_id),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def send(aws: LocalAws, logical_id: str, *bodies: dict, **extra) -> list[str]:
    sqs, ids = aws.client("sqs"), []
    for body in bodies:
        sent = sqs.send_message(QueueUrl=aws.url(logical_id), MessageBody=json.dumps(body), **extra)
        ids.append(sent["MessageId"])
    return ids


# --- SQS: partial batch responses -------------------------------------------------------------------


def test_batch_item_failures_come_back_and_the_others_do_not(app_aws, start_runner):
    runner = start_runner("Partial")
    ids = send(app_aws, "PartialQueue", *({"n": n, "fail": n in (1, 4)} for n in range(6)))
    failing = {ids[1], ids[4]}

    runner.run_until_idle()
    [first] = runner.invocations
    assert first.ok and len(first.event["Records"]) == 6
    assert set(first.retained) == failing and set(first.deleted) == set(ids) - failing
    assert queue_counts(app_aws, "PartialQueue") == (0, 2)
    seen = app_aws.client("dynamodb").scan(TableName=app_aws.physical("SeenTable"))["Items"]
    assert {item["sk"]["S"] for item in seen} == set(ids) - failing  # the handler reached moto

    runner.advance(29)
    assert len(runner.invocations) == 1  # still invisible
    runner.advance(1)  # VisibilityTimeout: 30
    second = runner.invocations[1]
    assert set(second.message_ids) == failing
    assert {r["attributes"]["ApproximateReceiveCount"] for r in second.event["Records"]} == {"2"}
    assert set(second.retained) == failing and queue_counts(app_aws, "PartialQueue") == (0, 2)


def test_sqs_event_has_lambdas_shape(app_aws, start_runner):
    runner = start_runner("Partial")
    [message_id] = send(
        app_aws,
        "PartialQueue",
        {"n": 1},
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "poll"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    runner.run_until_idle()
    [record] = runner.invocations[0].event["Records"]
    assert list(record) == [
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfMessageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    ]
    assert record["messageId"] == message_id
    assert record["body"] == '{"n": 1}' and record["md5OfBody"] == hashlib.md5(b'{"n": 1}').hexdigest()
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs",
        app_aws.arn("PartialQueue"),
        "eu-south-1",
    )
    assert list(record["attributes"]) == [
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    ]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["attributes"]["ApproximateFirstReceiveTimestamp"] == str(int(runner.clock.now() * 1000))
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "poll", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "blob": {"binaryValue": "AAE=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
    }


def test_a_partial_response_is_ignored_without_report_batch_item_failures(app_aws, start_runner):
    runner = start_runner("Ignored")
    ids = send(app_aws, "IgnoredQueue", {"fail": True}, {"fail": False})
    runner.run_until_idle()
    [invocation] = runner.invocations
    assert invocation.result["batchItemFailures"] == [{"itemIdentifier": ids[0]}]
    assert set(invocation.deleted) == set(ids) and invocation.retained == ()
    assert queue_counts(app_aws, "IgnoredQueue") == (0, 0)


@pytest.mark.parametrize(
    "response, problem",
    [
        ({"batchItemFailures": [{"itemIdentifier": "not-in-the-batch"}]}, "not a message of the batch"),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, "null or empty"),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, "null or empty"),
        ({"batchItemFailures": [{"id": "x"}]}, "has no itemIdentifier"),
        ({"batchItemFailures": "all"}, "not a list"),
        ("done", "not a batch response"),
    ],
)
def test_a_malformed_batch_response_fails_the_whole_batch(app_aws, start_runner, response, problem):
    runner = start_runner("Strict")
    ids = send(app_aws, "StrictQueue", {"respond": response}, {"other": 1})
    runner.run_until_idle()
    [invocation] = runner.invocations
    assert invocation.error is None and problem in invocation.batch_problem and not invocation.ok
    assert invocation.deleted == () and set(invocation.retained) == set(ids)
    assert queue_counts(app_aws, "StrictQueue") == (0, 2)


@pytest.mark.parametrize("response", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}])
def test_an_empty_batch_response_is_a_success(app_aws, start_runner, response):
    runner = start_runner("Strict")
    ids = send(app_aws, "StrictQueue", {"respond": response})
    runner.run_until_idle()
    assert runner.invocations[0].deleted == tuple(ids)
    assert queue_counts(app_aws, "StrictQueue") == (0, 0)


# --- SQS: a raising handler, redelivery and the dead-letter queue --------------------------------------


def test_a_raising_handler_gets_the_whole_batch_again_then_the_dlq_has_it(app_aws, start_runner):
    runner = start_runner("Crashing")
    ids = send(app_aws, "WorkQueue", *({"n": n} for n in range(5)))
    runner.run_until_idle()
    [first] = runner.invocations
    assert first.error == "RuntimeError: cannot process 5 records" and "Traceback" in first.traceback
    assert first.deleted == () and set(first.retained) == set(ids)
    assert queue_counts(app_aws, "WorkQueue") == (0, 5)

    runner.advance(29.9)
    assert len(runner.invocations) == 1
    runner.advance(0.1)
    assert len(runner.invocations) == 2 and set(runner.invocations[1].message_ids) == set(ids)
    runner.advance(30)  # third receive: maxReceiveCount is 3
    runner.advance(300)  # the fourth would-be receive moves them to the DLQ
    assert len(runner.invocations) == 3
    assert all(i.error for i in runner.invocations)
    assert queue_counts(app_aws, "WorkQueue") == (0, 0)
    assert queue_counts(app_aws, "WorkDeadLetters") == (5, 0)


# --- SQS: concurrency and FIFO order -------------------------------------------------------------------


def max_overlap(invocations) -> int:
    edges = sorted([(i.wall_started, 1) for i in invocations] + [(i.wall_ended, -1) for i in invocations])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_maximum_concurrency_is_never_exceeded(app_aws, start_runner):
    runner = start_runner("Load")  # BatchSize 1, MaximumConcurrency 2, 20 ms each
    sqs = app_aws.client("sqs")
    for start in range(0, 40, 10):
        sqs.send_message_batch(
            QueueUrl=app_aws.url("LoadQueue"),
            Entries=[{"Id": str(n), "MessageBody": json.dumps({"n": start + n})} for n in range(10)],
        )
    started = time.monotonic()
    runner.run_until_idle()
    invocations = runner.invocations
    assert len(invocations) == 40 and all(i.ok for i in invocations)
    assert max_overlap(invocations) == 2  # the limit, and reached
    assert time.monotonic() - started < 5
    assert queue_counts(app_aws, "LoadQueue") == (0, 0)


def test_fifo_order_holds_per_message_group(app_aws, start_runner):
    runner = start_runner("Ordered")  # BatchSize 3, MaximumConcurrency 5
    sqs = app_aws.client("sqs")
    groups = ["alpha", "beta", "gamma", "delta"]
    for n in range(8):
        for group in groups:
            body = {"group": group, "n": n, "fail_once": group == "beta" and n == 4}
            sqs.send_message(
                QueueUrl=app_aws.url("JobsQueue"), MessageBody=json.dumps(body), MessageGroupId=group
            )
    runner.run_until_idle()
    runner.advance(31)  # the failed batch comes back after 30 s
    done = sorted((i for i in runner.invocations if i.ok), key=lambda i: i.wall_started)
    for group in groups:
        sequence = [
            json.loads(r["body"])["n"]
            for i in done
            for r in i.event["Records"]
            if json.loads(r["body"])["group"] == group
        ]
        assert sequence == list(range(8)), group
        of_group = [
            i
            for i in runner.invocations
            if any(json.loads(r["body"])["group"] == group for r in i.event["Records"])
        ]
        assert max_overlap(of_group) == 1, group  # one batch of a group at a time
    failed = [i for i in runner.invocations if not i.ok]
    assert len(failed) == 1 and "transient failure" in failed[0].error
    record = done[0].event["Records"][0]
    assert {"MessageGroupId", "MessageDeduplicationId", "SequenceNumber"} <= set(record["attributes"])
    assert queue_counts(app_aws, "JobsQueue") == (0, 0)


def test_batching_window_waits_on_the_clock_for_a_full_batch(app_aws, start_runner):
    runner = start_runner("Windowed")  # BatchSize 50, MaximumBatchingWindowInSeconds 20
    sqs = app_aws.client("sqs")
    for start in range(0, 60, 10):
        sqs.send_message_batch(
            QueueUrl=app_aws.url("WindowQueue"),
            Entries=[{"Id": str(n), "MessageBody": json.dumps({"n": start + n})} for n in range(10)],
        )
    runner.run_until_idle()
    assert [len(i.event["Records"]) for i in runner.invocations] == [50]  # full: at once
    runner.advance(19)
    assert len(runner.invocations) == 1
    runner.advance(1)
    assert [len(i.event["Records"]) for i in runner.invocations] == [50, 10]


# --- the clock drives visibility -----------------------------------------------------------------------


def test_a_visibility_delay_set_by_the_handler_passes_on_the_virtual_clock(app_aws, start_runner):
    runner = start_runner("Throttled")  # puts every job back for 20 minutes, once
    ids = send(app_aws, "ThrottleQueue", {"job": 1}, {"job": 2}, {"job": 3})
    started = time.monotonic()
    runner.run_until_idle()
    assert set(runner.invocations[0].retained) == set(ids)
    runner.advance(1199)
    assert len(runner.invocations) == 1  # a 30 s timeout would have brought them back
    runner.advance(1)
    assert set(runner.invocations[1].deleted) == set(ids)
    assert queue_counts(app_aws, "ThrottleQueue") == (0, 0)
    assert time.monotonic() - started < 3  # 20 virtual minutes, no real waiting


# --- S3 -------------------------------------------------------------------------------------------------


def test_s3_put_invokes_the_handler_once_with_real_s3s_event(app_aws, start_runner):
    runner = start_runner("Uploads")  # prefix campaigns/, suffix .csv
    s3, bucket = app_aws.client("s3"), app_aws.physical("UploadBucket")
    key = "campaigns/acme 2026/list one.csv"
    put = s3.put_object(Bucket=bucket, Key=key, Body=b"address\na@pec.example\n")
    for other in ("campaigns/list.txt", "other/list.csv", "campaigns/doc.pdf"):
        s3.put_object(Bucket=bucket, Key=other, Body=b"x")
    runner.run_until_idle()

    [invocation] = runner.invocations
    assert invocation.kind == "s3" and invocation.ok
    [record] = invocation.event["Records"]
    assert record["s3"]["object"]["key"] == "campaigns/acme+2026/list+one.csv"  # '+' for space, '/' kept
    assert unquote_plus(record["s3"]["object"]["key"]) == key
    assert invocation.result == ["campaigns/acme+2026/list+one.csv"]
    assert (record["eventVersion"], record["eventSource"], record["awsRegion"], record["eventName"]) == (
        "2.1",
        "aws:s3",
        "eu-south-1",
        "ObjectCreated:Put",
    )
    assert record["s3"]["bucket"]["name"] == bucket
    assert record["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
    obj = record["s3"]["object"]
    assert (
        obj["size"] == 22 and obj["eTag"] == put["ETag"].strip('"') and obj["versionId"] == put["VersionId"]
    )
    assert obj["sequencer"]
    assert record["eventTime"].endswith("Z")
    # the template's own notification of the same bucket still works beside the runner's
    audit = app_aws.client("sqs").receive_message(QueueUrl=app_aws.url("AuditQueue"), MaxNumberOfMessages=10)
    assert any("doc.pdf" in m["Body"] for m in audit.get("Messages", []))


def test_a_failed_s3_invocation_is_retried_twice_as_async_invocations_are(app_aws, start_runner):
    runner = start_runner("Uploads")
    bucket = app_aws.physical("UploadBucket")
    app_aws.client("s3").put_object(Bucket=bucket, Key="campaigns/broken.csv", Body=b"")
    runner.run_until_idle()
    runner.advance(59)
    assert [i.attempt for i in runner.invocations] == [1]
    runner.advance(1)
    runner.advance(120)
    runner.advance(3600)
    assert [i.attempt for i in runner.invocations] == [1, 2, 3]
    assert all(i.error.startswith("ValueError") for i in runner.invocations)


# --- schedules --------------------------------------------------------------------------------------------


def test_schedules_over_a_virtual_day(start_runner):
    runner = start_runner("Ticker", clock=VirtualClock(MONDAY))
    started = time.monotonic()
    runner.advance(24 * 3600)
    assert time.monotonic() - started < 10
    ticks = runner.invocations_of("Ticker", "Every5Minutes")
    assert len(ticks) == 288
    assert [i.started for i in ticks] == [MONDAY.timestamp() + 300 * n for n in range(1, 289)]
    event = ticks[0].event
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert (event["detail-type"], event["source"], event["time"], event["detail"]) == (
        "Scheduled Event",
        "aws.events",
        "2026-11-23T00:05:00Z",
        {},
    )
    assert event["resources"] == [
        "arn:aws:events:eu-south-1:123456789012:rule/runner-test-TickerEvery5Minutes"
    ]
    [digest] = runner.invocations_of("Ticker", "WeekdayDigest")
    assert digest.event == {"job": "digest"}  # its Input
    assert digest.started == datetime(2026, 11, 23, 8, 0, tzinfo=UTC).timestamp()  # 09:00 in Rome
    assert runner.invocations_of("Ticker", "Paused") == []
    assert "Paused" in runner.functions["Ticker"].not_driven

    context = ticks[0].result  # what the fake Lambda context said
    assert context["remaining_ms"] == 30_000  # Timeout: 30, on a frozen clock
    assert context["function_name"] == "runner-test-Ticker"
    assert context["memory_limit_in_mb"] == "256"
    assert context["invoked_function_arn"] == app_arn("runner-test-Ticker")
    assert len({i.result["aws_request_id"] for i in ticks}) == 288


def test_a_disabled_schedule_fires_nothing_and_resumes_at_its_next_tick(start_runner):
    runner = start_runner("Ticker", clock=VirtualClock(MONDAY))
    runner.set_schedules_enabled("Ticker", False)
    runner.advance(7 * 86400)
    assert runner.invocations_of("Ticker") == []
    runner.set_schedules_enabled("Ticker", True)
    runner.advance(600)
    ticks = runner.invocations_of("Ticker", "Every5Minutes")
    assert [i.started for i in ticks] == [MONDAY.timestamp() + 7 * 86400 + 300 * n for n in (1, 2)]


def app_arn(name: str) -> str:
    return f"arn:aws:lambda:eu-south-1:123456789012:function:{name}"


def test_cron_expressions_follow_eventbridge():
    def fires(expression: str, days: int, timezone: str = "UTC") -> list[datetime]:
        source = ScheduleSource("F", "E", "ScheduleV2", expression, None, "arn", timezone)
        times, at, end = [], MONDAY.timestamp(), (MONDAY + timedelta(days=days)).timestamp()
        while (at := _expression(source).next_after(at, anchor=MONDAY.timestamp())) is not None and at <= end:
            times.append(datetime.fromtimestamp(at, UTC))
        return times

    assert len(fires("cron(0 9 ? * MON-FRI *)", 7, "Europe/Rome")) == 5
    assert len(fires("cron(*/15 * * * ? *)", 1)) == 96
    assert [t.day for t in fires("cron(0 0 L * ? *)", 70)] == [30, 31, 31]
    assert [t.date().isoformat() for t in fires("cron(30 6 ? * 2#1 *)", 70)] == ["2026-12-07", "2027-01-04"]
    assert fires("rate(1 day)", 3)[0] == MONDAY + timedelta(days=1)
    march = datetime(2027, 3, 27, tzinfo=UTC).timestamp()  # Rome moves to summer time
    source = ScheduleSource("F", "E", "ScheduleV2", "cron(0 9 * * ? *)", None, "arn", "Europe/Rome")
    first = _expression(source).next_after(march, anchor=march)
    second = _expression(source).next_after(first, anchor=march)
    assert (datetime.fromtimestamp(first, UTC).hour, datetime.fromtimestamp(second, UTC).hour) == (8, 7)


# --- environment, validation, leftovers ------------------------------------------------------------------


def test_the_functions_environment_is_installed_for_the_runners_life(app_aws, start_runner):
    before = dict(os.environ)
    runner = start_runner("Throttled", "Ticker")
    assert os.environ["SEEN_TABLE"] == "runner-test-SeenTable"
    assert os.environ["THROTTLE_QUEUE_URL"] == app_aws.url("ThrottleQueue")
    assert os.environ["SECRET_ARN"] == app_aws.arn("ApiSecret")
    assert os.environ["AWS_ENDPOINT_URL"] == app_aws.endpoint_url
    assert os.environ["PECFLOW_CLOCK"] == "local.clock:now"
    from pecflow.domain import clock as pecflow_clock

    assert pecflow_clock.timestamp() == runner.clock.now()  # pecflow reads the runner's clock
    runner.stop()
    assert dict(os.environ) == before


INVALID = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function: {{Runtime: python3.12, CodeUri: {code}, Handler: app.slow, Timeout: 60}}
Resources:
  Short: {{Type: AWS::SQS::Queue, Properties: {{VisibilityTimeout: 30}}}}
  Long: {{Type: AWS::SQS::Queue, Properties: {{VisibilityTimeout: 120}}}}
  One:
    Type: AWS::Serverless::Function
    Properties: {{Environment: {{Variables: {{MODE: one}}}}}}
  Two:
    Type: AWS::Serverless::Function
    Properties: {{Environment: {{Variables: {{MODE: two}}}}}}
  TooShort:
    Type: AWS::Serverless::Function
    Properties:
      Events: {{Q: {{Type: SQS, Properties: {{Queue: !GetAtt Short.Arn}}}}}}
  OnlyOne:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Q: {{Type: SQS, Properties: {{Queue: !GetAtt Long.Arn, ScalingConfig: {{MaximumConcurrency: 1}}}}}}
  Filtered:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Q:
          Type: SQS
          Properties: {{Queue: !GetAtt Long.Arn, FilterCriteria: {{Filters: [{{Pattern: "{{}}"}}]}}}}
"""


def test_what_aws_would_refuse_fails_at_start(tmp_path):
    template = tmp_path / "template.yaml"
    template.write_text(INVALID.format(code=APP_DIR / "functions"))
    environment_before = dict(os.environ)
    with LocalAws.start(template, stack_name="invalid", set_environ=False) as aws:
        clock = VirtualClock()
        with pytest.raises(TemplateError, match=r"MODE: One='one' but Two='two'"):
            EventRunner(template, aws, clock, functions=["One", "Two"])
        with pytest.raises(
            TemplateError, match="visibility timeout 30s is less than the function timeout 60s"
        ):
            EventRunner(template, aws, clock, functions=["TooShort"])
        with pytest.raises(TemplateError, match="MaximumConcurrency must be 2..1000"):
            EventRunner(template, aws, clock, functions=["OnlyOne"])
        with pytest.raises(NotImplementedError, match="FilterCriteria"):
            EventRunner(template, aws, clock, functions=["Filtered"])
        with pytest.raises(ValueError, match="LocalAws serves"):
            EventRunner(APP_TEMPLATE, aws, clock)
    assert dict(os.environ) == environment_before


def test_runner_and_stack_leave_nothing_behind():
    import moto.core.utils
    import moto.sqs.models

    from local import clock as clock_hook

    threads_before = set(threading.enumerate())
    environment_before, path_before = dict(os.environ), list(os.sys.path)
    aws = LocalAws.start(APP_TEMPLATE, stack_name="leftovers")
    runner = EventRunner(APP_TEMPLATE, aws, VirtualClock(), functions=["Partial", "Uploads", "Ticker"])
    send(aws, "PartialQueue", {"fail": True})
    aws.client("s3").put_object(Bucket=aws.physical("UploadBucket"), Key="campaigns/a.csv", Body=b"")
    runner.advance(600)
    assert {i.function for i in runner.invocations} == {"Partial", "Uploads", "Ticker"}
    assert moto.sqs.models.unix_time is not moto.core.utils.unix_time
    runner.stop()
    aws.stop()
    left = set(threading.enumerate()) - threads_before  # (threads of earlier tests may end meanwhile)
    assert not left, f"threads left behind: {left}"
    assert dict(os.environ) == environment_before and os.sys.path == path_before
    assert moto.sqs.models.unix_time is moto.core.utils.unix_time
    assert not [name for name in os.sys.modules if name.startswith("_pecflow_fn_")]
    assert not clock_hook.current().virtual

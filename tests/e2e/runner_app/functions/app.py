"""Test handlers for the event runner: each shows one behaviour, and records what it saw in the
SEEN_TABLE so tests can check the handlers really reached moto from inside the process."""

from __future__ import annotations

import json
import os
import time

import boto3

_table = boto3.resource("dynamodb").Table(os.environ["SEEN_TABLE"])  # at import: a cold start


def _seen(kind: str, record_id: str, body: str) -> None:
    _table.put_item(Item={"pk": kind, "sk": record_id, "kind": kind, "at": int(time.time()), "body": body})


def partial(event, context):
    """Fail the records whose body says so; the others are done."""
    failures = []
    for record in event["Records"]:
        if json.loads(record["body"]).get("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
        else:
            _seen("partial", record["messageId"], record["body"])
    return {"batchItemFailures": failures}


def respond(event, context):
    """Answer with whatever the first record asks for (to test malformed responses)."""
    return json.loads(event["Records"][0]["body"])["respond"]


def crash(event, context):
    raise RuntimeError(f"cannot process {len(event['Records'])} records")


def slow(event, context):
    time.sleep(0.02)


def ordered(event, context):
    for record in event["Records"]:
        body = json.loads(record["body"])
        if body.get("fail_once") and record["attributes"]["ApproximateReceiveCount"] == "1":
            raise RuntimeError(f"transient failure at {body}")


def throttle(event, context):
    """Like the sender when its quota is used up: put the job back for 20 minutes."""
    sqs = boto3.client("sqs")
    failures = []
    for record in event["Records"]:
        if record["attributes"]["ApproximateReceiveCount"] == "1":
            sqs.change_message_visibility(
                QueueUrl=os.environ["THROTTLE_QUEUE_URL"],
                ReceiptHandle=record["receiptHandle"],
                VisibilityTimeout=1200,
            )
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def upload(event, context):
    keys = [record["s3"]["object"]["key"] for record in event["Records"]]
    if any("broken" in key for key in keys):
        raise ValueError(f"cannot read {keys}")
    return keys


def tick(event, context):
    return {
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "aws_request_id": context.aws_request_id,
    }

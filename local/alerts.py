"""What the local stack's alarms topic published, as a person subscribed to it would read it:
a queue subscribed to the topic (moto delivers SNS to SQS), read back as (subject, text,
attributes). Works on moto in-process and on the local moto server alike."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Published:
    subject: str
    text: str
    attributes: dict[str, Any]


class TopicReader:
    """Subscribe once (`TopicReader(aws)`), then `read()` what was published since."""

    def __init__(self, aws: Any, topic: str = "AlarmsTopic", name: str = "alerts-reader"):
        self.sqs = aws.client("sqs")
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        aws.client("sns").subscribe(TopicArn=aws.arn(topic), Protocol="sqs", Endpoint=arn)

    def read(self) -> list[Published]:
        found: list[Published] = []
        while True:
            page = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = page.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                note = json.loads(message["Body"])
                attributes = {
                    name: json.loads(a["Value"]) if a["Type"] == "String.Array" else a["Value"]
                    for name, a in (note.get("MessageAttributes") or {}).items()
                }
                found.append(Published(note.get("Subject", ""), note["Message"], attributes))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

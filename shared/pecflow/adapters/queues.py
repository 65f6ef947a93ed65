"""SQS queues: the poll queue (FIFO, one group per mailbox), the send queue, the fan-out queue."""

from __future__ import annotations

from typing import Any


class SqsQueue:
    def __init__(self, url: str, sqs: Any = None):
        if sqs is None:
            import boto3

            sqs = boto3.client("sqs")
        self.url, self.sqs = url, sqs

    def send_batch(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries))

    def send(self, entry: dict[str, Any]) -> None:
        self.sqs.send_message(QueueUrl=self.url, **{k: v for k, v in entry.items() if k != "Id"})

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        self.sqs.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )

"""Invoice files in the archive bucket, under fatture/ (pecflow.domain.invoices.storage_prefix),
encrypted like the archive. A file written again (a message taken again after a crash) is
overwritten with the same bytes."""

from __future__ import annotations

from typing import Any


class InvoiceFiles:
    def __init__(self, bucket: str, s3: Any = None, *, kms_key_id: str | None = None):
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        self.s3, self.bucket, self.kms_key_id = s3, bucket, kms_key_id

    def put(self, key: str, data: bytes, content_type: str) -> None:
        if not key.startswith("fatture/"):
            raise ValueError(f"invoice files live under fatture/, not {key!r}")
        extra = {"ServerSideEncryption": "aws:kms"}
        if self.kms_key_id:
            extra["SSEKMSKeyId"] = self.kms_key_id
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type or "application/octet-stream",
            **extra,
        )

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

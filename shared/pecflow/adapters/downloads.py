"""What a person downloads through the API: the archived original, by a short-lived link to it as
it is, or one file taken out of it, copied to the downloads bucket (whose lifecycle rule forgets
it after a day) and linked from there. Files from senders are always served as downloads
(`application/octet-stream`, `attachment`): a browser never renders them from our domain.
"""

from __future__ import annotations

from pecflow.adapters.archive import Archive, disposition, download_link

__all__ = ["LINK_SECONDS", "Downloads", "disposition"]

LINK_SECONDS = 300


class Downloads:
    def __init__(self, archive: Archive, bucket: str, s3) -> None:
        self.archive, self.bucket, self.s3 = archive, bucket, s3

    def get(self, key: str) -> bytes:
        return self.archive.get(key)

    def download_url(self, key: str, filename: str) -> str:
        return self.archive.download_url(key, filename, LINK_SECONDS)

    def file_url(self, key: str, data: bytes, filename: str) -> str:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType="application/octet-stream",
            ContentDisposition=disposition(filename),
        )
        return download_link(self.s3, self.bucket, key, filename, "application/octet-stream", LINK_SECONDS)

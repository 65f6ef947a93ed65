"""Evidence packs on S3: the archived originals read in chunks, and a pack written as a stream
into the downloads bucket by a multipart upload (a part in memory at a time, whatever the pack's
size), then linked for five minutes like every download (pecflow.adapters.downloads). The
bucket's lifecycle rule forgets packs after a day; an upload that fails is aborted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pecflow.adapters.archive import download_link
from pecflow.adapters.downloads import LINK_SECONDS

CHUNK_BYTES = 256 * 1024
PART_BYTES = 5 * 1024 * 1024  # S3's least part (the last excepted): the pack's memory


class ArchiveChunks:
    def __init__(self, s3: Any, bucket: str):
        self.s3, self.bucket = s3, bucket

    def chunks(self, key: str) -> Iterator[bytes]:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        finally:
            body.close()


class MultipartWriter:
    """A write-only, unseekable stream into one S3 object (zipfile then writes data descriptors)."""

    def __init__(self, s3: Any, bucket: str, key: str, *, part_bytes: int = PART_BYTES):
        self.s3, self.bucket, self.key, self.part_bytes = s3, bucket, key, part_bytes
        self.buffer = bytearray()
        self.parts: list[dict[str, Any]] = []
        self.upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/zip")[
            "UploadId"
        ]  # encrypted by the bucket's default (KMS), as every download
        self.closed = False

    def write(self, data: bytes) -> int:
        self.buffer += data
        while len(self.buffer) >= self.part_bytes:
            part, self.buffer = self.buffer, self.buffer[self.part_bytes :]
            del part[self.part_bytes :]  # the part is the buffer itself: never two copies of it
            self._send(part)
            del part
        return len(data)

    def flush(self) -> None:
        pass

    def _send(self, body: bytes | bytearray) -> None:
        number = len(self.parts) + 1
        answer = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def complete(self) -> None:
        if self.buffer or not self.parts:
            self._send(self.buffer)
            self.buffer = bytearray()
        self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )
        self.closed = True

    def abort(self) -> None:
        self.buffer.clear()
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        self.closed = True


class EvidencePackStore:
    def __init__(self, s3: Any, bucket: str):
        self.s3, self.bucket = s3, bucket

    @contextmanager
    def writer(self, key: str) -> Iterator[MultipartWriter]:
        out = MultipartWriter(self.s3, self.bucket, key)
        try:
            yield out
        except BaseException:
            out.abort()
            raise
        out.complete()

    def link(self, key: str, filename: str) -> str:
        return download_link(self.s3, self.bucket, key, filename, "application/zip", LINK_SECONDS)

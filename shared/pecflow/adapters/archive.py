"""The S3 archive of originals: the raw bytes of every message, keyed by their sha256.

The whole message is what has legal value, so the archive stores exactly the bytes fetched,
with a SHA-256 checksum S3 verifies on upload, server-side encryption, and never overwrites
(IfNoneMatch). `verify` is what must pass before anything leaves the provider mailbox.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import quote

from botocore.exceptions import ClientError, FlexibleChecksumError

from pecflow.domain.ports import Archived, ArchiveError, Verification
from pecflow.domain.records import ARCHIVE_PREFIX, archived_key

__all__ = ["Archive", "ArchiveError", "Archived", "Verification", "sha256_hex"]


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _b64(sha_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha_hex)).decode("ascii")


class Archive:
    def __init__(self, bucket: str, s3=None, *, kms_key_id: str | None = None, prefix: str = ARCHIVE_PREFIX):
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        self.s3 = s3
        self.bucket = bucket
        self.kms_key_id = kms_key_id
        self.prefix = prefix

    def key_for(self, sha: str) -> str:
        return archived_key(sha, self.prefix)

    def store(self, raw: bytes, sha: str | None = None) -> Archived:
        sha = sha or sha256_hex(raw)
        key = self.key_for(sha)
        try:
            return self._put(key, raw, sha, IfNoneMatch="*")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
        # already archived (a retry, or the same message in another mailbox): same key, same bytes?
        check = self.verify(key, sha, deep=False)
        if not check.ok:
            raise ArchiveError(f"{key} exists but does not match: {check.reason}")
        return Archived(key, False)

    def store_again(self, raw: bytes, sha: str) -> Archived:
        """The copy under `sha`'s key failed its check: these bytes stored again as the key's
        newest version (the damaged one stays, versioned and locked). Refused unless they hash to
        `sha`: only the original can be put back."""
        actual = sha256_hex(raw)
        if actual != sha:
            raise ArchiveError(f"the bytes hash to {actual}, not {sha}: not archived again")
        return self._put(self.key_for(sha), raw, sha)

    def _put(self, key: str, raw: bytes, sha: str, **condition: str) -> Archived:
        extra = {"ServerSideEncryption": "aws:kms"}
        if self.kms_key_id:
            extra["SSEKMSKeyId"] = self.kms_key_id
        response = self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=raw,
            ContentType="message/rfc822",
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=_b64(sha),  # S3 refuses a body that does not match (BadDigest)
            Metadata={"sha256": sha},
            **condition,
            **extra,
        )
        return Archived(key, True, response.get("VersionId"))

    def verify(self, key: str, sha: str, *, deep: bool = True) -> Verification:
        """Is the archived object there and exactly these bytes? `deep` reads it back and hashes
        it (what expunging requires); otherwise the stored SHA-256 checksum is compared."""
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return Verification(False, f"object {key} is missing")
            raise
        stored = head.get("ChecksumSHA256")
        if stored != _b64(sha):
            return Verification(False, f"object {key} checksum {stored} differs from {_b64(sha)}")
        if deep:
            try:
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except FlexibleChecksumError as exc:  # botocore checks the bytes against the stored checksum
                return Verification(False, f"object {key} does not match its stored checksum: {exc}")
            actual = sha256_hex(body)
            if actual != sha:
                return Verification(False, f"object {key} content hashes to {actual}, not {sha}")
        return Verification(True, "verified")

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def download_url(self, key: str, filename: str, seconds: int = 300) -> str:
        """A short-lived link to the archived original, saved under `filename`."""
        return download_link(
            self.s3, self.bucket, key, filename or "messaggio.eml", "message/rfc822", seconds
        )


def disposition(filename: str) -> str:
    """A Content-Disposition for a download: a plain ASCII name, and the real one (RFC 6266)."""
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in filename)[:120]
    plain = plain.strip(".") or "file"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename[:200], safe='')}"


def download_link(s3, bucket: str, key: str, filename: str, content_type: str, seconds: int) -> str:
    """A short-lived link that downloads an object as `filename` (never rendered by a browser)."""
    return s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": bucket,
            "Key": key,
            "ResponseContentDisposition": disposition(filename),
            "ResponseContentType": content_type,
        },
        ExpiresIn=seconds,
    )

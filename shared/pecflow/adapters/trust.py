"""Where the trust anchors for providers' signatures live: a PEM bundle in a file, or an S3 object
(`s3://bucket/key`; the stack's is `s3://<archive bucket>/trust/anchors.pem`, written by
`pecflow trust import`; the archive's versioning keeps every earlier bundle). What a bundle
means is `pecflow.pec.signature.TrustAnchors`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pecflow.pec.signature import TrustAnchors

ANCHORS_KEY = "trust/anchors.pem"
MAX_BUNDLE_BYTES = 16 * 1024 * 1024


def split_s3(location: str) -> tuple[str, str]:
    bucket, _, key = location.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ValueError(f"not an S3 location: {location!r} (expected s3://bucket/key)")
    return bucket, key


def _missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("404", "NoSuchKey", "NotFound")


def read_bundle(location: str, s3: Any = None) -> bytes | None:
    """The bundle's bytes, or None when there is none yet."""
    if location.startswith("s3://"):
        bucket, key = split_s3(location)
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        return body.read(MAX_BUNDLE_BYTES + 1)[: MAX_BUNDLE_BYTES + 1]
    path = Path(location)
    return path.read_bytes() if path.exists() else None


def load_anchors(location: str, s3: Any = None) -> TrustAnchors:
    """The anchors at `location` ("" for none). Never raises: a bundle that cannot be read
    gives no anchors, and every verdict then says why (`TrustAnchors.problem`), so a broken
    bundle makes signatures `untrusted`, never stops the poller."""
    if not location:
        return TrustAnchors(source="", problem="no trust anchors configured (pecflow trust import)")
    try:
        data = read_bundle(location, s3)
        if data is None:
            return TrustAnchors(
                source=location, problem=f"no trust anchors at {location} yet (pecflow trust import)"
            )
        if len(data) > MAX_BUNDLE_BYTES:
            raise ValueError(f"over {MAX_BUNDLE_BYTES:,} bytes")
        return TrustAnchors.read(data, location)
    except Exception as exc:  # noqa: BLE001 - whatever it is, said in every verdict
        return TrustAnchors(
            source=location, problem=f"the trust anchors at {location} could not be read: {str(exc)[:200]}"
        )


def write_bundle(location: str, anchors: TrustAnchors, s3: Any = None) -> None:
    data = anchors.pem()
    if location.startswith("s3://"):
        bucket, key = split_s3(location)
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType="application/x-pem-file",
            ServerSideEncryption="aws:kms",
        )
        return
    Path(location).write_bytes(data)


def anchors_location(trust_anchors: str, archive_bucket: str) -> str:
    """The configured location (TRUST_ANCHORS), else the stack's object in the archive bucket."""
    if trust_anchors:
        return trust_anchors
    return f"s3://{archive_bucket}/{ANCHORS_KEY}" if archive_bucket else ""

"""The campaign files in S3, and their key layout: `campaigns/<id>/manifest.json`,
`campaigns/<id>/recipients.csv`, `campaigns/<id>/attachments/<name>`, the validation report
beside them. Read by the fan-out (pinned versions) and the sender (attachments), written by
`pecflow campaign upload`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from pecflow.domain.campaign.manifest import CAMPAIGN_ID
from pecflow.domain.ports import PackageChanged

__all__ = [
    "MANIFEST_KEY",
    "CampaignFolder",
    "CampaignPackage",
    "CampaignUploads",
    "PackageChanged",
    "campaign_of",
    "campaign_prefix",
    "manifests_in",
]

MANIFEST_KEY = re.compile(r"^campaigns/(?P<id>[^/]+)/manifest\.json$")


def campaign_prefix(campaign_id: str) -> str:
    return f"campaigns/{campaign_id}/"


def campaign_of(key: str) -> str | None:
    """The campaign id of a `campaigns/<id>/manifest.json` key (None for any other key)."""
    match = MANIFEST_KEY.match(key)
    return match.group("id") if match and CAMPAIGN_ID.match(match.group("id")) else None


def manifests_in(records: Iterable[Any]) -> list[tuple[str, str | None]]:
    """(campaign id, manifest version) of each S3 notification record (Powertools'
    `S3EventRecord`) naming a `campaigns/<id>/manifest.json`; other keys are ignored."""
    found = []
    for record in records:
        obj = record.s3.get_object
        campaign_id = campaign_of(unquote_plus(obj.key))  # S3 sends the key URL-encoded
        if campaign_id:
            found.append((campaign_id, obj.version_id))
    return found


class CampaignPackage:
    """The campaign's files in S3. `pin` notes the version of a file; reads given that pin
    return those bytes or raise PackageChanged."""

    def __init__(self, s3, bucket: str, campaign_id: str):
        self.s3, self.bucket, self.campaign_id = s3, bucket, campaign_id
        self.prefix = campaign_prefix(campaign_id)

    def pin(self, name: str, version_id: str | None = None) -> dict | None:
        """{"version_id", "etag"} of `name` now (or of `version_id`); None when it is absent."""
        kwargs = {"VersionId": version_id} if version_id else {}
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self.prefix + name, **kwargs)
        except ClientError as exc:
            if _status(exc) in (404, 400) or _code(exc) in _GONE:
                return None
            raise
        version = head.get("VersionId")
        return {"version_id": version if version and version != "null" else None, "etag": head.get("ETag")}

    def _get(self, name: str, pin: dict | None) -> dict:
        kwargs: dict = {}
        if pin and pin.get("version_id"):
            kwargs["VersionId"] = pin["version_id"]
        elif pin and pin.get("etag"):
            kwargs["IfMatch"] = pin["etag"]
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=self.prefix + name, **kwargs)
        except ClientError as exc:
            if pin and (_code(exc) in _GONE or _status(exc) in (404, 412)):
                raise PackageChanged(
                    f"{name} is no longer the file validated for this campaign "
                    f"({_code(exc) or _status(exc)}): it was replaced or deleted"
                ) from None
            if _code(exc) in ("NoSuchKey", "NotFound") or _status(exc) == 404:  # needs s3:ListBucket
                raise FileNotFoundError(
                    f"{name} is not among the campaign's files: was it deleted after the campaign was checked?"
                ) from None
            raise

    def read(self, name: str, pin: dict | None = None) -> bytes:
        return self._get(name, pin)["Body"].read()

    def open(self, name: str, pin: dict | None = None):
        """A streaming body: read in chunks, never whole."""
        return self.open_with_size(name, pin)[0]

    def open_with_size(self, name: str, pin: dict | None = None):
        response = self._get(name, pin)
        return response["Body"], response.get("ContentLength")

    def exists(self, name: str) -> bool:
        response = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + name, MaxKeys=1)
        return any(o["Key"] == self.prefix + name for o in response.get("Contents", []))

    def attachments(self) -> Iterable[tuple[str, int]]:
        paginator = self.s3.get_paginator("list_objects_v2")
        folder = self.prefix + "attachments/"
        for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
            for obj in page.get("Contents", []):
                yield obj["Key"][len(folder) :], obj["Size"]

    def upload_file(self, name: str, path: str | os.PathLike[str]) -> None:
        self.s3.upload_file(str(path), self.bucket, self.prefix + name)

    def put(self, name: str, body, content_type: str) -> None:
        self.s3.upload_fileobj(body, self.bucket, self.prefix + name, ExtraArgs={"ContentType": content_type})


_GONE = ("NoSuchKey", "NoSuchVersion", "PreconditionFailed", "NotFound", "InvalidArgument")


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code") or ""


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class CampaignUploads:
    """What the API needs of the campaign bucket: short-lived upload links for a campaign's files,
    the manifest written (the upload that starts the fan-out), an outcome export to download."""

    def __init__(self, s3, bucket: str):
        self.s3, self.bucket = s3, bucket

    def upload_link(self, campaign_id: str, name: str, seconds: int = 900) -> str:
        return self.s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": campaign_prefix(campaign_id) + name},
            ExpiresIn=seconds,
        )

    def put_manifest(self, campaign_id: str, raw: bytes) -> None:
        self.s3.put_object(
            Bucket=self.bucket, Key=campaign_prefix(campaign_id) + "manifest.json", Body=raw,
            ContentType="application/json",
        )  # fmt: skip

    def export_link(self, campaign_id: str, name: str, body: Any, seconds: int = 900) -> str:
        key = f"{campaign_prefix(campaign_id)}export/{name}"
        self.s3.upload_fileobj(body, self.bucket, key, ExtraArgs={"ContentType": "text/csv; charset=utf-8"})
        return self.s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentDisposition": f'attachment; filename="{name}"',
            },
            ExpiresIn=seconds,
        )


class CampaignFolder:
    """A campaign folder on this computer (manifest.json, recipients.csv, attachments/), read as
    the uploaded package is: what `pecflow campaign test-send` renders from. Symbolic links are
    never followed (as `campaign upload` refuses them)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = os.fspath(root)

    def _path(self, name: str) -> str:
        path = os.path.join(self.root, *name.split("/"))
        if os.path.islink(path):
            raise ValueError(f"{name} is a symbolic link: put the file itself in the campaign folder")
        return path

    def exists(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def read(self, name: str) -> bytes:
        with open(self._path(name), "rb") as body:
            return body.read()

    def open_with_size(self, name: str):
        path = self._path(name)
        return open(path, "rb"), os.path.getsize(path)  # noqa: SIM115 - the caller reads it as a stream

"""Downloads on moto's S3 with template.yaml's buckets: a file taken out of an archived message is
copied to the downloads bucket and linked for minutes, served as a download whatever it is; the
archived original is untouched."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlparse

import requests

from pecflow.adapters.archive import Archive, sha256_hex
from pecflow.adapters.downloads import LINK_SECONDS, Downloads, disposition


def test_a_file_is_copied_to_the_downloads_bucket_and_served_as_a_download(aws):
    s3 = aws.client("s3")
    archive = Archive(aws.physical("ArchiveBucket"), s3)
    raw = b"From: a@b\r\nSubject: x\r\n\r\nbody\r\n"
    stored = archive.store(raw)
    downloads = Downloads(archive, aws.physical("DownloadsBucket"), s3)
    html = b"<html><script>alert(1)</script></html>"

    url = downloads.file_url("files/abc/0", html, "pagina è.html")
    query = parse_qs(urlparse(url).query)
    assert query["X-Amz-Expires"] == [str(LINK_SECONDS)]
    assert unquote(query["response-content-type"][0]) == "application/octet-stream"
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200 and answer.content == html
    assert answer.headers["Content-Type"] == "application/octet-stream"  # never rendered
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="pagina__.html"')
    head = s3.head_object(Bucket=aws.physical("DownloadsBucket"), Key="files/abc/0")
    assert head["ContentType"] == "application/octet-stream"

    original = requests.get(downloads.download_url(stored.key, "m.eml"), timeout=10)
    assert original.content == raw and sha256_hex(original.content) == sha256_hex(raw)
    # the original's name made as a file's is (one helper: archive.disposition)
    assert original.headers["Content-Disposition"] == "attachment; filename=\"m.eml\"; filename*=UTF-8''m.eml"
    rules = s3.get_bucket_lifecycle_configuration(Bucket=aws.physical("DownloadsBucket"))["Rules"]
    assert [(r["Status"], r["Expiration"]["Days"]) for r in rules] == [("Enabled", 1)]


def test_a_file_name_is_kept_readable_and_harmless():
    assert disposition('fattura "marzo".pdf') == (
        "attachment; filename=\"fattura__marzo_.pdf\"; filename*=UTF-8''fattura%20%22marzo%22.pdf"
    )
    plain = disposition("../../etc/passwd").split('"')[1]
    assert "/" not in plain and plain.endswith("etc_passwd")  # a name, never a path
    assert disposition("\r\nX-Evil: 1").split(";")[1] == ' filename="__X-Evil__1"'
    assert "\r" not in disposition("a\r\nb") and "\n" not in disposition("a\r\nb")

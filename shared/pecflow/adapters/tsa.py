"""The time-stamping authority over HTTP (RFC 3161 §3.4): the request POSTed as
application/timestamp-query, the TimeStampResp read back and checked before it is kept
(pecflow.pec.evidence_timestamp). The TSA is whoever the installation names (TSA_URL): an
accredited one for real evidence, the local stack's `openssl ts` for tests."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pecflow.pec import evidence_timestamp as ts

if TYPE_CHECKING:
    from cryptography import x509

TIMEOUT_SECONDS = 20


class HttpTsa:
    def __init__(
        self, url: str, anchors: Sequence[x509.Certificate] = (), *, timeout: float = TIMEOUT_SECONDS
    ):
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"the time-stamping authority's address must be http(s)://…, not {url!r}")
        self.url, self.anchors, self.timeout = url, tuple(anchors), timeout

    def stamp(self, digest: bytes) -> tuple[bytes, ts.Stamp]:
        """The TSA's answer (a TimeStampResp, as a .tsr file keeps it) over a SHA-256 `digest`, checked (nonce, imprint, signature, and the chain
        when anchors are configured); TimestampError when it cannot be had."""
        query, nonce = ts.request(digest)
        req = urllib.request.Request(
            self.url,
            data=query,
            method="POST",
            headers={"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as answer:  # noqa: S310 - http(s) checked above
                body = answer.read(ts.MAX_TOKEN_BYTES + 1)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ts.TimestampError(
                f"the time-stamping authority at {self.url} did not answer: {exc}"
            ) from None
        stamp = ts.check_response(body, digest, self.anchors, nonce=nonce, require_anchor=False)
        return body, stamp

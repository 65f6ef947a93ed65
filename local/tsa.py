"""A test time-stamping authority for the local stack and the tests: `openssl ts -reply` behind
a tiny HTTP server on 127.0.0.1 (RFC 3161 over HTTP: POST application/timestamp-query, answer
application/timestamp-reply), with its own throw-away CA (local.certs). Not for real evidence:
its certificate lives two days and nobody but the tests trusts its CA.

    with LocalTsa(directory) as tsa:
        tsa.url, tsa.anchors_pem   # where to ask, what to trust
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from local.certs import LocalCA

MAX_QUERY_BYTES = 64 * 1024

_CONFIG = """\
[ tsa ]
default_tsa = local_tsa

[ local_tsa ]
dir = {dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/tsa.pem
signer_key = $dir/tsa.key.pem
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.3161.1
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 0
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class LocalTsa:
    def __init__(self, directory: Path | None = None) -> None:
        self.temporary = directory is None  # made here: removed by stop()
        self.directory = Path(directory or tempfile.mkdtemp(prefix="pecflow-tsa-"))
        self.ca = LocalCA(self.directory, name="pecflow test TSA CA")
        self.cert = self.ca.issue_timestamping("tsa")
        (self.directory / "tsaserial").write_text("01\n")
        self.config = self.directory / "openssl-tsa.cnf"
        self.config.write_text(_CONFIG.format(dir=self.directory))
        self.lock = threading.Lock()  # openssl keeps the serial in a file: one reply at a time
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.refuse = False  # answer every request with an HTTP error (a TSA down)

    @property
    def anchors_pem(self) -> bytes:
        """The TSA's CA: the one certificate a verifier needs to trust this TSA's stamps."""
        return self.ca.pem

    @property
    def url(self) -> str:
        assert self.server is not None, "start the TSA first"
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/tsa"

    def reply(self, query: bytes) -> bytes:
        """The DER TimeStampResp openssl makes for a DER TimeStampReq."""
        with self.lock, tempfile.TemporaryDirectory(dir=self.directory) as work:
            query_file, reply_file = Path(work) / "q.tsq", Path(work) / "r.tsr"
            query_file.write_bytes(query)
            subprocess.run(
                ["openssl", "ts", "-reply", "-config", str(self.config), "-queryfile", str(query_file),
                 "-out", str(reply_file)],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            return reply_file.read_bytes()

    def start(self) -> LocalTsa:
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                if tsa.refuse or not 0 < length <= MAX_QUERY_BYTES:
                    self.send_error(503 if tsa.refuse else 400)
                    return
                try:
                    body = tsa.reply(self.rfile.read(length))
                except subprocess.CalledProcessError:
                    self.send_error(400, "not a time-stamp query")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="local-tsa", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.temporary:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> LocalTsa:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

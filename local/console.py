"""The web console on the local stack: console/dist (built by `make console`) and its config.json
(the local API's URL and the sign-in settings) on a local port, with the local user pool's
sign-in endpoint (local.sign_in, Cognito's JSON protocol) at /cognito/ on the same origin.
In AWS the same files sit behind CloudFront and config.json names the API and the user pool."""

from __future__ import annotations

import json
import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from local.sign_in import LocalUserPool

DIST = Path(__file__).resolve().parents[1] / "console" / "dist"
SIGN_IN_PATH = "/cognito/"
MAX_BODY = 64 * 1024


class ConsoleServer:
    """`ConsoleServer(api_url, user_pool).start()`; `url`; `stop()`."""

    def __init__(
        self,
        api_url: str,
        user_pool: LocalUserPool,
        *,
        dist: Path = DIST,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        if not (dist / "index.html").is_file():
            raise FileNotFoundError(
                f"{dist / 'index.html'} is missing: build the console first (make console)"
            )
        self.dist, self.api_url, self.user_pool = dist.resolve(), api_url, user_pool
        console = self

        class Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _send(
                self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Content-Type-Options", "nosniff")
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                path = unquote(urlsplit(self.path).path)
                if path == "/config.json":
                    self._send(
                        200,
                        json.dumps(console.config()).encode(),
                        "application/json",
                        {"Cache-Control": "no-store"},
                    )
                    return
                found = console.file(path)
                if found is None:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")
                    return
                kind = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
                if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
                    kind += "; charset=utf-8"
                cache = "no-cache" if found.name == "index.html" else "public, max-age=31536000, immutable"
                self._send(200, found.read_bytes(), kind, {"Cache-Control": cache})

            do_HEAD = do_GET  # noqa: N815

            def do_POST(self) -> None:  # noqa: N802
                if urlsplit(self.path).path != SIGN_IN_PATH:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(min(length, MAX_BODY)) if length else b""
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                status, answer = console.user_pool.answer(self.headers.get("X-Amz-Target", ""), body)
                extra = {"x-amzn-ErrorType": answer["__type"]} if status != 200 else {}
                self._send(status, json.dumps(answer).encode(), "application/x-amz-json-1.1", extra)

        self.server = ThreadingHTTPServer((host, port), Request)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="local-console", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def config(self) -> dict[str, Any]:
        """What the console reads first: where the API is, how to sign in."""
        return {
            "api": self.api_url,
            "signIn": {
                "endpoint": self.url.rstrip("/") + SIGN_IN_PATH,
                "clientId": self.user_pool.issuer.client_id,
                "issuerName": "pecflow (locale)",
            },
        }

    def file(self, path: str) -> Path | None:
        """The file of console/dist at a URL path ('/' is index.html); nothing outside it."""
        relative = path.lstrip("/") or "index.html"
        candidate = (self.dist / relative).resolve()
        if not candidate.is_relative_to(self.dist) or not candidate.is_file():
            return None
        return candidate

    def start(self) -> ConsoleServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""The HTTP API on the local stack: a local port where the `api` function's handler answers as
behind API Gateway. Each request is checked as the JWT authorizer checks it (local.tokens: the
Authorization header's bearer token, its signature, issuer, audience, expiry; 401 with API
Gateway's body when it fails), then turned into an HTTP API (v2) event with the token's claims
in `requestContext.authorizer.jwt.claims` (strings, as API Gateway passes them) and given to the
handler; its answer is written back. Routes without the authorizer (the OpenAPI document) pass
unchecked, as the template declares them.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.tokens import TokenError, TokenIssuer

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit


def _claim_text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    return str(value)


class LocalContext:
    """What a handler reads of its Lambda context."""

    function_name = "ApiFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-south-1:123456789012:function:ApiFunction"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + 29

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def event_for(
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    claims: dict[str, Any] | None,
    source_ip: str,
) -> dict[str, Any]:
    """The HTTP API (payload 2.0) event API Gateway would send for this request."""
    parts = urlsplit(target)
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    lowered = {k.lower(): v for k, v in headers.items()}
    text_body: str | None = None
    encoded = False
    if body:
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            text_body, encoded = base64.b64encode(body).decode(), True
    now = time.time()
    context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": lowered.get("host", "localhost"),
        "domainPrefix": "local",
        "http": {
            "method": method,
            "path": parts.path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": lowered.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if claims is not None:
        context["authorizer"] = {
            "jwt": {"claims": {k: _claim_text(v) for k, v in claims.items()}, "scopes": None}
        }
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "queryStringParameters": query or None,
        "headers": lowered,
        "requestContext": context,
        "body": text_body,
        "isBase64Encoded": encoded,
    }


class LocalApi:
    """`LocalApi(handler, issuer).start()`; `url`; `stop()`."""

    def __init__(
        self,
        handler: Handler,
        issuer: TokenIssuer,
        *,
        public: Iterable[tuple[str, str]] = (("GET", "/openapi.json"),),
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.handler, self.issuer, self.public = handler, issuer, set(public)
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status): what was served
        api = self

        class Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _answer(self) -> None:
                status, headers, body = api.serve(
                    self.command, self.path, dict(self.headers.items()), self._body(), self.client_address[0]
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(min(length, MAX_BODY + 1)) if length else b""

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer  # noqa: N815

            def do_OPTIONS(self) -> None:  # noqa: N802 - CORS preflight, as the HttpApi's CorsConfiguration
                self.send_response(204)
                for name, value in api.cors_headers().items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer((host, port), Request)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="local-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def cors_headers() -> dict[str, str]:
        return {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Headers": "authorization,content-type",
            "Access-Control-Allow-Methods": "GET,POST,PUT,DELETE,OPTIONS",
        }

    def serve(
        self, method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        path = urlsplit(target).path
        status, out_headers, out = self._serve(method, target, path, headers, body, source_ip)
        self.requests.append((method, path, status))
        return status, {**self.cors_headers(), **out_headers}, out

    def _serve(self, method, target, path, headers, body, source_ip):
        if len(body) > MAX_BODY:
            return 413, {"Content-Type": "application/json"}, b'{"message":"Request Entity Too Large"}'
        claims: dict[str, Any] | None = None
        if (method, path) not in self.public:
            authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
            token = (
                authorization[7:].strip() if authorization[:7].lower() == "bearer " else authorization.strip()
            )
            try:
                claims = self.issuer.verify(token)
            except TokenError:
                return (
                    401,
                    {"Content-Type": "application/json", "www-authenticate": "Bearer"},
                    (b'{"message":"Unauthorized"}'),
                )
        event = event_for(method, target, headers, body, claims, source_ip)
        try:
            response = self.handler(event, LocalContext())
        except Exception:  # noqa: BLE001 - as API Gateway: the function failed
            return 500, {"Content-Type": "application/json"}, b'{"message":"Internal Server Error"}'
        data = response.get("body") or ""
        payload = base64.b64decode(data) if response.get("isBase64Encoded") else str(data).encode()
        out_headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        for cookie in response.get("cookies") or []:
            out_headers.setdefault("Set-Cookie", cookie)
        return int(response.get("statusCode", 200)), out_headers, payload


def json_request(
    url: str, method: str = "GET", *, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    """A request as the console makes it (tests, the demo's checks): the status and parsed body."""
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None

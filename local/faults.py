"""Faults at the boundaries of the local stack, for the fault matrix (tests/reliability).

Nothing here changes what the code under test does: faults happen where pecflow meets the
network and AWS, as they happen in production.

    proxy = TcpProxy(dovecot.host, dovecot.port).start()   # register the mailbox on proxy.port
    proxy.fail(CUT, after=40_000)                           # the next connection drops mid-FETCH
    proxy.fail(STALL)                                       # ...accepts, then never answers
    proxy.fail(RESET, times=2)                              # ...the next two are reset (RST)
    proxy.fail(PLAINTEXT)                                   # ...answers TLS with plain text

    aws = AwsFaults.install()          # botocore hooks on the session the handlers' clients use
    aws.add(AwsFault("dynamodb", "TransactWriteItems", error=("TransactionCanceledException", ...)))
    aws.clear()

`AwsFaults` registers one `before-send` handler on boto3's default session (the one
`pecflow.config` makes every handler's clients from; the local stack's own clients use other
sessions): a matching request is answered with an error response of the service's protocol, so
botocore's retries and error parsing run as against AWS; `after_success` forwards the request for
real and then answers an error (the write happened, the client never heard: its retry meets
the changed item); `duplicate` forwards it twice (at-least-once delivery).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

# --- TCP -----------------------------------------------------------------------------------------

CUT = "cut"  # forward, then drop both sides once `after` bytes came from the server
STALL = "stall"  # accept and hold the connection without a byte: the client's timeout fires
RESET = "reset"  # accept and reset at once (RST)
PLAINTEXT = "plaintext"  # answer the TLS handshake with plain text: the handshake fails


@dataclass
class _Plan:
    mode: str
    times: int | None  # connections left to fail; None: until cleared
    after: int = 0


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of one server; healthy until told to fail."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._plans: list[_Plan] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._stalled: set[socket.socket] = set()  # connections held silent (STALL)
        self._stopped = threading.Event()
        self.connections = 0
        self.failed: list[str] = []  # the mode of each connection failed, in order

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, name=f"fault-proxy-{self.port}", daemon=True).start()
        return self

    def fail(self, mode: str, *, times: int | None = 1, after: int = 0) -> None:
        with self._lock:
            self._plans.append(_Plan(mode, times, after))

    def heal(self) -> None:
        """Healthy again; connections held by STALL are closed."""
        with self._lock:
            self._plans.clear()
            held, self._stalled = list(self._stalled), set()
        for sock in held:
            _close(sock)

    def stop(self) -> None:
        self._stopped.set()
        _close(self._listener)
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)

    def _take(self) -> _Plan | None:
        with self._lock:
            self.connections += 1
            if not self._plans:
                return None
            plan = self._plans[0]
            if plan.times is not None:
                plan.times -= 1
                if plan.times <= 0:
                    self._plans.pop(0)
            self.failed.append(plan.mode)
            return plan

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        plan = self._take()
        if plan is not None and plan.mode == RESET:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return self._forget(client)
        if plan is not None and plan.mode == PLAINTEXT:
            try:
                client.recv(4096)
                client.sendall(b"220 servizio temporaneo senza TLS\r\n")
            except OSError:
                pass
            return self._forget(client)
        if plan is not None and plan.mode == STALL:
            with self._lock:
                self._stalled.add(client)
            return  # held open, silent, until heal() or stop()
        try:
            upstream = socket.create_connection(self.target, timeout=10)
            upstream.settimeout(None)
        except OSError:
            return self._forget(client)
        with self._lock:
            self._sockets.add(upstream)
        limit = plan.after if plan is not None and plan.mode == CUT else None
        threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
        self._pump(upstream, client, limit)

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                if limit is not None and sent + len(data) > limit:
                    sink.sendall(data[: max(0, limit - sent)])
                    break  # the line drops in the middle of what the server was sending
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        self._forget(source)
        self._forget(sink)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


# --- AWS (botocore hooks) --------------------------------------------------------------------------


@dataclass
class AwsFault:
    """Requests to `service` whose operation is `operation` (and, when given, whose request body
    holds `contains`) meet the fault; `times` of them (None: every one until cleared)."""

    service: str  # botocore's service id in the event name: s3, dynamodb, sqs, ...
    operation: str  # botocore's operation name, or "*"
    error: tuple[int, str, str] | None = None  # (HTTP status, error code, message) answered
    after_success: bool = False  # forward for real first (the write happens), then answer `error`
    duplicate: bool = False  # forward twice, answer the second (at-least-once delivery)
    corrupt: bool = False  # change one byte of the request body on the way (a damaged upload)
    contains: bytes | None = None
    times: int | None = 1
    extra: dict[str, Any] = field(default_factory=dict)  # more fields of the error body
    hits: int = 0

    def matches(self, service: str, operation: str, body: bytes) -> bool:
        if self.service != service or self.operation not in ("*", operation):
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        return self.contains is None or self.contains in body


class AwsFaults:
    """The faults in force for the handlers' AWS calls (one instance per process)."""

    _installed: AwsFaults | None = None

    def __init__(self) -> None:
        self.faults: list[AwsFault] = []
        self._lock = threading.Lock()

    @classmethod
    def install(cls) -> AwsFaults:
        """Register the hook on boto3's default session, once: clients made from it afterwards
        (the handlers' clients, one set per thread) carry it."""
        if cls._installed is None:
            import boto3

            cls._installed = cls()
            session = boto3._get_default_session()  # noqa: SLF001 - the session boto3.client() uses
            session.events.register_first("before-send", cls._installed._before_send)
        return cls._installed

    def add(self, fault: AwsFault) -> AwsFault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def _before_send(self, request: Any, event_name: str, **_: Any) -> Any:
        # event name: before-send.<service>.<Operation>
        _, service, operation = event_name.split(".", 2)
        body = _body_bytes(request.body)
        with self._lock:
            fault = next((f for f in self.faults if f.matches(service, operation, body)), None)
            if fault is None:
                return None
            fault.hits += 1
        if fault.corrupt:
            damaged = bytearray(body)
            damaged[len(damaged) // 2] ^= 0x01
            request.body = bytes(damaged)
            return None  # sent damaged: S3 checks the declared checksum
        if fault.duplicate:
            _forward(request, body)
            return None
        if fault.after_success:
            _forward(request, body)
        assert fault.error is not None, "a fault answers an error, forwards twice or corrupts"
        return _error_response(request, service, fault)


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    if hasattr(body, "read") and hasattr(body, "seek"):
        position = body.tell()
        data = body.read()
        body.seek(position)
        return data if isinstance(data, bytes) else str(data).encode()
    return b""


def _forward(request: Any, body: bytes) -> int:
    """Send the prepared (signed) request as it is; its status."""
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    forwarded = urllib.request.Request(request.url, data=body or None, method=request.method, headers=headers)
    try:
        with urllib.request.urlopen(forwarded, timeout=30) as answer:  # noqa: S310 - the local moto server
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


class _Raw:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_: Any):
        yield self.data


def _error_response(request: Any, service: str, fault: AwsFault) -> Any:
    from botocore.awsrequest import AWSResponse

    assert fault.error is not None
    status, code, message = fault.error
    if service in ("s3",):
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>fault</RequestId></Error>"
        ).encode()
        headers = {"Content-Type": "application/xml"}
    elif service == "sqs" and "x-amz-json" not in str(request.headers.get("Content-Type", "")):
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml"}
    else:  # the JSON protocols (DynamoDB, SQS's JSON protocol, Secrets Manager, ...)
        body = json.dumps({"__type": code, "message": message, **fault.extra}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code}
    return AWSResponse(request.url, status, headers, _Raw(body))

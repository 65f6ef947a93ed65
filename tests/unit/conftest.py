"""Unit tests run with the network off: any attempt to resolve a name or open a connection other
than a local (AF_UNIX) socket fails the test that made it, naming it. The attempt raises
NetworkDisabled (a RuntimeError, not an OSError, so code that handles network errors does not
quietly absorb it), and a test that passed all the same (it caught the error) fails at teardown."""

from __future__ import annotations

import socket

import pytest


class NetworkDisabled(RuntimeError):
    """A unit test tried to use the network."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.network_call_passed = report.passed
    return report


@pytest.fixture(autouse=True)
def no_network(request, monkeypatch):
    attempts: list[str] = []
    test = request.node.nodeid
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(what: str):
        attempts.append(what)
        return NetworkDisabled(f"{test} tried to use the network ({what}): unit tests run offline")

    def guarded_connect(sock, address):
        if sock.family == socket.AF_UNIX:
            return connect(sock, address)
        raise refuse(f"connect to {address!r}")

    def guarded_connect_ex(sock, address):
        if sock.family == socket.AF_UNIX:
            return connect_ex(sock, address)
        raise refuse(f"connect_ex to {address!r}")

    def guarded_create_connection(address, *args, **kwargs):
        raise refuse(f"create_connection to {address!r}")

    def guarded_getaddrinfo(host, port, *args, **kwargs):
        raise refuse(f"getaddrinfo for {host!r}:{port!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "create_connection", guarded_create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield
    if attempts and getattr(request.node, "network_call_passed", False):
        pytest.fail(f"{test} tried to use the network: {'; '.join(attempts)}", pytrace=False)

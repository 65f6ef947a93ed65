"""The fault matrix's stack and table (`make reliability`).

One local stack per test module (Dovecot and moto are the session's; the module resets moto once),
one fresh "world" per cell: its own providers, office mailbox, correspondents, and TCP proxies in
front of Dovecot and the office's SMTP access point. A cell injects its fault at a boundary
(local/faults.py), lets the stack recover, and applies the same five invariant checks
(tests/reliability/invariants.py). Each cell's row (boundary | fault | checks | result) travels in
the test report; tests/reliability/table.py prints the table at the end (its hooks are in
tests/conftest.py: under pytest-xdist only that one is loaded where the reports arrive).
"""

from __future__ import annotations

import json
import os

import pytest

from local.faults import AwsFaults
from tests.reliability.table import ROWS


def pytest_configure(config):
    config.addinivalue_line("markers", "reliability: the fault matrix (make reliability)")


def pytest_collection_modifyitems(config, items):
    here = f"{os.sep}tests{os.sep}reliability{os.sep}"
    for item in items:
        if here in str(item.fspath):
            item.add_marker(pytest.mark.reliability)


# --- the stack ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rstack(dovecot, local_aws_session):
    from local.stack import LocalStack

    aws_faults = AwsFaults.install()  # before the runner: its threads' clients carry the hook
    local_aws_session.reset()
    with local_aws_session.environ():
        stack = LocalStack.start(dovecot=dovecot, aws=local_aws_session, state_file=None)
        stack.trust_simulated_providers()
        stack.trust_local_tsa()
        stack.faults = aws_faults  # type: ignore[attr-defined]
        try:
            yield stack
        finally:
            aws_faults.clear()
            stack.stop()


@pytest.fixture
def world(rstack, request):
    from tests.reliability.invariants import World

    name = request.node.callspec.id if hasattr(request.node, "callspec") else request.node.name
    world = World.make(rstack, name)
    yield world
    rstack.faults.clear()
    world.close()
    request.node.user_properties.append((ROWS, json.dumps(world.row())))

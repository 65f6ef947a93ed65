"""The fault matrix's stack and table (`make reliability`).

One local stack per test module (Dovecot and moto are the session's; the module resets moto once),
one fresh "world" per cell: its own providers, office mailbox, correspondents, and TCP proxies in
front of Dovecot and the office's SMTP access point. A cell injects its fault at a boundary
(local/faults.py), lets the stack recover, and applies the same five invariant checks
(tests/reliability/invariants.py). Each cell's row (boundary | fault | checks | result) travels in
the test report, so the table printed at the end is complete under pytest-xdist too.
"""

from __future__ import annotations

import json
import os

import pytest

from local.faults import AwsFaults

ROWS = "fault-matrix"


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


# --- the table ------------------------------------------------------------------------------------

_ROWS: dict[str, dict] = {}
_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report):
    if not report.nodeid.startswith("tests/reliability/"):
        return
    if report.when == "teardown":
        for name, value in report.user_properties:
            if name == ROWS:
                _ROWS[report.nodeid] = json.loads(value)
        if report.failed:
            _OUTCOMES[report.nodeid] = "RED"
    elif report.when == "call" or not report.passed:
        if hasattr(report, "wasxfail"):
            _OUTCOMES[report.nodeid] = "xfail"
        else:
            _OUTCOMES[report.nodeid] = {"passed": "green", "skipped": "skipped"}.get(report.outcome, "RED")


def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    rows = sorted(({**r, "nodeid": n} for n, r in _ROWS.items()), key=lambda r: (r["order"], r["nodeid"]))
    table = [("boundary", "fault", "invariant checks", "result")]
    for row in rows:
        checks = "  ".join(f"{name} {mark}" for name, mark in row["checks"].items()) or "not reached"
        table.append((row["boundary"], row["fault"], checks, _OUTCOMES.get(row["nodeid"], "?")))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    write = terminalreporter.write_line
    terminalreporter.section("fault matrix")
    write("checks: lost = no message lost, twice = none sent twice, expunged = nothing expunged")
    write("unarchived, audit = no audit event lost, error = a clear error where the user looks")
    write("(✓ held, ✗ broken, – nothing of that kind in the cell)")
    for n, row in enumerate(table):
        write(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            write("-+-".join("-" * width for width in widths))
    tally = {o: sum(1 for r in rows if _OUTCOMES.get(r["nodeid"]) == o) for o in ("green", "xfail", "RED")}
    write(
        f"{len(rows)} cells: {tally['green']} green, {tally['xfail']} xfail (known, named), {tally['RED']} red"
    )

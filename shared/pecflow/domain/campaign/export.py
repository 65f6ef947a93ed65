"""CSV files for people to open in Excel or LibreOffice: UTF-8 with a BOM and `;` between cells
(what Italian Excel opens correctly with a double click), and no cell that a spreadsheet would
run as a formula (CSV injection): text starting with = + - @, a tab or a CR gets a leading '.
Streamed: one line at a time, whatever the number of rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, BinaryIO

BOM = "\ufeff".encode()
DELIMITER = ";"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# a key, or (header, key or keys tried in turn); "values.<column>" reads the job's CSV values
Column = str | tuple[str, str | tuple[str, ...]]

# the per-recipient outcome, from the job items of the outgoing table; a group's message
# (group_by) says how many CSV rows it covered, and which
EXPORT_COLUMNS: tuple[Column, ...] = (
    ("row", "row"),
    ("recipient", "recipient"),
    ("state", "state"),
    ("attempt", "attempt"),
    ("message_id", "message_id"),
    ("sent_at", ("at_sent", "at_sent_uncertain")),
    ("accepted_at", "at_accepted"),
    ("delivered_at", "at_delivered"),
    ("failed_at", ("at_delivery_failed", "at_not_accepted", "at_error")),
    ("error", ("error", "last_error")),
    ("rows_covered", "rows_covered"),
    ("rows", "rows"),
)


def safe_cell(value: Any) -> str:
    """The text of one cell, never a formula. Numbers we write stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple, set)):
        value = json.dumps(
            sorted(value) if isinstance(value, set) else value, ensure_ascii=False, default=str
        )
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _header(column: Column) -> str:
    return column if isinstance(column, str) else column[0]


def _get(row: Mapping[str, Any], column: Column) -> Any:
    keys = column if isinstance(column, str) else column[1]
    for key in (keys,) if isinstance(keys, str) else keys:
        if key.startswith("values."):  # the recipient's own CSV columns, kept on the job
            value = (row.get("values") or {}).get(key[7:])
        elif key == "rows_covered":  # a group's rows, or the job's one row
            value = len(row.get("rows") or ()) or (1 if row.get("row") is not None else None)
        elif key == "rows" and row.get("rows"):
            value = ", ".join(map(str, row["rows"]))
        else:
            value = row.get(key)
        if value not in (None, ""):
            return value
    return None


def export_rows(
    rows: Iterable[Mapping[str, Any] | Sequence[Any]], columns: Sequence[Column] | None = None
) -> Iterator[str]:
    """CSV lines (`;`, CRLF, formula-safe): the header when `columns` are given, then one line
    per row (a mapping read through `columns`, or a sequence of cells)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=DELIMITER, lineterminator="\r\n")

    def line(cells: Iterable[Any]) -> str:
        writer.writerow([safe_cell(c) for c in cells])
        out = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return out

    if columns:
        yield line(_header(c) for c in columns)
    for row in rows:
        if isinstance(row, Mapping):
            if not columns:
                raise ValueError("rows given as mappings need columns")
            yield line(_get(row, c) for c in columns)
        else:
            yield line(row)


def write_lines(sink: BinaryIO, lines: Iterable[str]) -> int:
    """Write CSV lines to a binary sink as UTF-8 with BOM; returns the lines written."""
    sink.write(BOM)
    count = 0
    for text in lines:
        sink.write(text.encode("utf-8"))
        count += 1
    return count


def write_export(
    sink: BinaryIO,
    jobs: Iterable[Mapping[str, Any]],
    *,
    columns: Sequence[Column] = EXPORT_COLUMNS,
    value_columns: Sequence[str] = (),
) -> int:
    """The per-recipient outcome CSV of a campaign; `value_columns` adds the recipient's own
    CSV columns (from the job's `values`) after the outcome. Returns the jobs written."""
    every = [*columns, *((name, f"values.{name}") for name in value_columns)]
    return max(0, write_lines(sink, export_rows(jobs, every)) - 1)

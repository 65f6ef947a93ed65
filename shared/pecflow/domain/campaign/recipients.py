"""recipients.csv as people really produce it, streamed in constant memory.

- Encoding: a BOM says UTF-8 or UTF-16; otherwise the first MiB decides: valid UTF-8 is
  UTF-8, anything else is Windows-1252 (Excel on Italian Windows). Bytes that do not decode
  later on stop the reading with the row they are in, never with a crash.
- Delimiter: `;`, `,` or tab, sniffed from the header and the first lines (Excel's `sep=;`
  first line is honoured). Quoted fields may hold delimiters, quotes and newlines.
- Header names are trimmed and matched case-insensitively: each column is known by its key,
  "  Ragione Sociale " → `ragione_sociale` (see `column_key`); values are trimmed.
- Blank lines (or rows of empty cells, as Excel exports them) are skipped; rows with too many
  or too few fields are yielded with their count of cells so the caller can report them
  (empty cells past the header and unnamed columns at its end do not count).
- Row numbers are the ones a spreadsheet shows: the header is row 1, blank lines count,
  a quoted field spanning lines stays one row.
- Limits (total bytes, field and row size, columns) are errors, so memory stays bounded
  whatever arrives: at most one sniff window, one chunk and one row are held at a time.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from pecflow.domain.campaign.issues import Code, CsvError
from pecflow.domain.campaign.manifest import column_key

DELIMITERS = (";", "\t", ",")  # order of preference when the sniffing cannot tell
ENCODING_NAMES = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "utf-16": "UTF-16",
    "cp1252": "Windows-1252",
}
_CHUNK = 64 * 1024
_TEXT = re.compile(rb"[^ \t\r\n]")
_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx or LibreOffice .ods workbook?)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls workbook"),
    (b"%PDF", "a PDF document"),
    (b"{\\rtf", "an RTF document"),
)
_SAVE_AS = "in Excel use File > Save as > 'CSV UTF-8' (or 'CSV (separatore: punto e virgola)')"
MAX_NAME_CHARS = 100  # a column name in reports and errors


def cut(name: str, limit: int = MAX_NAME_CHARS) -> str:
    """A column name as shown in reports: at most `limit` characters (then '…')."""
    return name if len(name) <= limit else name[:limit] + "…"


@dataclass(frozen=True, slots=True)
class CsvLimits:
    max_bytes: int = 100 * 1024 * 1024  # the whole file (~500,000 typical rows)
    max_field_chars: int = 64 * 1024  # one cell
    max_row_chars: int = 1024 * 1024  # one row, all its lines
    max_columns: int = 1000  # the header's cells, empty ones included
    sniff_bytes: int = 1024 * 1024  # what decides the encoding


@dataclass(frozen=True, slots=True)
class CsvFormat:
    encoding: str  # utf-8 | utf-8-sig | utf-16 | cp1252
    delimiter: str
    header: tuple[str, ...]  # as written, trimmed
    columns: tuple[str, ...]  # their keys ('' for an unnamed column)
    header_row: int = 1

    @property
    def width(self) -> int:
        return len(self.header)

    @property
    def named_width(self) -> int:
        """Cells a row needs: up to the last named column (unnamed ones at the end may be missing)."""
        return max((i + 1 for i, key in enumerate(self.columns) if key), default=0)

    def display(self, key: str) -> str:
        """The header as the user wrote it for a column key (the key itself when absent), cut
        after MAX_NAME_CHARS: it is repeated in every error about the column."""
        for name, column in zip(self.header, self.columns):
            if column == key:
                return name if len(name) <= MAX_NAME_CHARS else cut(name)
        return cut(key)

    def to_dict(self) -> dict[str, object]:
        return {
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "header": list(self.header),
            "columns": list(self.columns),
            "header_row": self.header_row,
        }


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # spreadsheet row number (header = 1)
    values: dict[str, str]  # column key → trimmed value (unnamed columns left out)
    cells: int | None = None  # cells found; differs from the header's width on a ragged row


class _Undecodable(Exception):
    def __init__(self, offset: int, byte: int):
        self.offset, self.byte = offset, byte


class _TooLong(Exception):
    pass


class _Lines:
    """Decoded lines, their endings kept, from a binary stream: the `head` already read, then
    chunks. Counts bytes against the limit and characters of the current row."""

    def __init__(
        self,
        binary: IO[bytes],
        head: bytearray,
        head_size: int,
        eof: bool,
        encoding: str,
        limits: CsvLimits,
        split_on: str,
    ):
        self.binary, self.head_size = binary, head_size
        self.head: bytearray | None = head
        self.eof, self.limits, self.split_on = eof, limits, split_on
        self.encoding = encoding
        self.decoder = codecs.getincrementaldecoder(encoding)("strict")
        self.bytes_read = head_size
        self.row_chars = 0  # reset by the reader after each record

    def _raw(self) -> Iterator[bytes]:
        head, self.head = self.head, None
        assert head is not None  # read once
        for start in range(0, self.head_size, _CHUNK):
            yield bytes(head[start : min(start + _CHUNK, self.head_size)])
        del head
        while not self.eof:
            chunk = self.binary.read(_CHUNK)
            if not chunk:
                break
            self.bytes_read += len(chunk)
            if self.bytes_read > self.limits.max_bytes:
                raise CsvError(Code.CSV_TOO_LARGE, _too_large(self.limits.max_bytes))
            yield chunk

    def _texts(self) -> Iterator[str]:
        fed = 0
        for chunk in self._raw():
            try:
                text = self.decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # the text before the bad byte still makes rows; the row holding it is reported
                held = len(exc.object) - len(chunk)  # bytes kept back from earlier chunks
                yield bytes(exc.object[: exc.start]).decode(self.encoding, "replace")
                raise _Undecodable(fed - held + exc.start, exc.object[exc.start]) from None
            fed += len(chunk)
            if text:
                yield text
        try:
            tail = self.decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise _Undecodable(fed - len(exc.object) + exc.start, exc.object[exc.start]) from None
        if tail:
            yield tail

    def __iter__(self) -> Iterator[str]:
        carry = ""  # the start of a line whose end is in the next text
        sep, limit = self.split_on, self.limits.max_row_chars
        for text in self._texts():
            start = 0
            end = text.find(sep)
            while end != -1:
                line = text[start : end + 1]
                if carry:
                    line, carry = carry + line, ""
                self.row_chars += len(line)
                if self.row_chars > limit:
                    raise _TooLong
                yield line
                start = end + 1
                end = text.find(sep, start)
            if start < len(text):
                carry += text[start:]
                if len(carry) + self.row_chars > limit:
                    raise _TooLong
        if carry:
            self.row_chars += len(carry)
            yield carry


def _too_large(limit: int) -> str:
    return f"the file is larger than {limit / 1024 / 1024:,.0f} MB: split it into smaller campaigns"


def _read_head(binary: IO[bytes], limit: int) -> tuple[bytearray, int, bool]:
    """The first `limit` bytes (a stream may return less than asked): (window, bytes in it,
    whether that was all). The window is reserved whole and kept until its rows are read, so
    the memory used is the same for a small file and a huge one."""
    window, size = bytearray(limit), 0
    while size < limit:
        chunk = binary.read(min(_CHUNK, limit - size))
        if not chunk:
            return window, size, True
        window[size : size + len(chunk)] = chunk
        size += len(chunk)
    return window, size, False


def _stream_size(binary: IO[bytes]) -> int | None:
    """The total size of a seekable stream (an open file), without moving it."""
    try:
        if not binary.seekable():
            return None
        here = binary.tell()
        end = binary.seek(0, 2)
        binary.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return None


def _encoding(head: bytearray, size: int, eof: bool) -> str:
    start = bytes(head[: min(size, 8)])
    if start.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for signature, what in _SIGNATURES:
        if start.startswith(signature):
            raise CsvError(Code.CSV_NOT_TEXT, f"this is {what}, not a CSV file: {_SAVE_AS}")
    if head.find(b"\x00", 0, size) != -1:
        raise CsvError(
            Code.CSV_NOT_TEXT,
            "the file contains NUL bytes: it is not a text CSV (UTF-16 without "
            f"a BOM, or a binary file?): {_SAVE_AS}",
        )
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        for at in range(0, size, _CHUNK):
            decoder.decode(head[at : min(at + _CHUNK, size)])
        decoder.decode(b"", final=eof)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _fields(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []


def _sniff(sample: str) -> tuple[str, bool]:
    """(delimiter, whether the first line is Excel's `sep=` hint) from the first lines of the file."""
    lines = sample.splitlines()
    first = lines[0].strip() if lines else ""
    if first.lower().startswith("sep=") and len(first) == 5 and first[4] in DELIMITERS:
        return first[4], True
    lines = [line for line in lines[:-1] if line.strip()] or [line for line in lines if line.strip()]
    if not lines:
        return DELIMITERS[0], False
    header, rest = lines[0], lines[1:50]

    def score(delimiter: str) -> tuple[bool, float, int, int]:
        width = len(_fields(header, delimiter))
        same = sum(len(_fields(line, delimiter)) == width for line in rest)
        consistency = same / len(rest) if rest else 1.0
        return (width >= 2, consistency, width, -DELIMITERS.index(delimiter))

    return max(DELIMITERS, key=score), False


class CsvRows:
    """The rows of a CSV stream, one at a time. `format` is known once constructed (the head of
    the stream has been read); iterating raises CsvError where the file cannot be read on."""

    def __init__(self, binary: IO[bytes], *, limits: CsvLimits = CsvLimits(), size: int | None = None):
        self.limits = limits
        size = size if size is not None else _stream_size(binary)
        if size is not None and size > limits.max_bytes:
            raise CsvError(Code.CSV_TOO_LARGE, _too_large(limits.max_bytes))
        head, head_size, eof = _read_head(binary, max(limits.sniff_bytes, 4))
        if head_size > limits.max_bytes:
            raise CsvError(Code.CSV_TOO_LARGE, _too_large(limits.max_bytes))
        if eof and not _TEXT.search(head, 3 if head.startswith(codecs.BOM_UTF8) else 0, head_size):
            raise CsvError(Code.CSV_EMPTY, "the file is empty")
        encoding = _encoding(head, head_size, eof)
        sample = head[: min(head_size, _CHUNK)].decode(encoding, "replace")
        delimiter, sep_hint = _sniff(sample.removeprefix("\ufeff"))
        split_on = "\r" if "\n" not in sample and "\r" in sample else "\n"
        self._lines = _Lines(binary, head, head_size, eof, encoding, limits, split_on)
        self._records = csv.reader(
            self._lines, delimiter=delimiter, quotechar='"', doublequote=True, strict=True
        )
        if csv.field_size_limit() < limits.max_field_chars + 1:
            csv.field_size_limit(limits.max_field_chars + 1)
        self._number = 0
        self._failed: CsvError | None = None
        if sep_hint:
            self._next_record()  # Excel's hint line: not a row anybody sees
            self._number = 0
        header: list[str] | None = None
        while header is None:
            cells = self._next_record()
            if cells is None:
                raise CsvError(Code.CSV_EMPTY, "the file has no header: it holds only blank lines")
            if any(c.strip() for c in cells):
                header = [c.strip() for c in cells]
        if header:
            header[0] = header[0].removeprefix("\ufeff")
        if len(header) > limits.max_columns:
            raise CsvError(
                Code.CSV_TOO_MANY_COLUMNS,
                f"the header has {len(header):,} columns: at most {limits.max_columns:,} (empty "
                "columns count too: delete the unused ones; or is the delimiter wrong?)",
                row=self._number,
            )
        self.format = CsvFormat(
            encoding, delimiter, tuple(header), tuple(column_key(h) for h in header), self._number
        )
        self._keys = [(i, key) for i, key in enumerate(self.format.columns) if key]

    @property
    def bytes_read(self) -> int:
        return self._lines.bytes_read

    def _next_record(self) -> list[str] | None:
        """The next record (blank ones included), numbered; None at the end."""
        if self._failed is not None:
            raise self._failed  # the file cannot be read past its first fatal error
        try:
            return self._read_record()
        except CsvError as exc:
            self._failed = exc
            raise

    def _read_record(self) -> list[str] | None:
        number = self._number + 1
        try:
            cells = next(self._records, None)
        except _Undecodable as exc:
            codec = ENCODING_NAMES[self._lines.encoding]
            reason = (
                f"byte 0x{exc.byte:02X} at offset {exc.offset:,} is not valid {codec}: the file mixes "
                f"encodings; {_SAVE_AS}"
            )
            raise CsvError(Code.CSV_ENCODING, reason, row=number) from None
        except _TooLong:
            raise CsvError(
                Code.ROW_TOO_LONG,
                f'the row is longer than {self.limits.max_row_chars:,} characters: is a quote (") left open?',
                row=number,
            ) from None
        except csv.Error as exc:
            text = str(exc)
            if "field larger than field limit" in text:
                raise CsvError(Code.FIELD_TOO_LARGE, self._field_reason(), row=number) from None
            if "unexpected end of data" in text:
                raise CsvError(
                    Code.CSV_UNCLOSED_QUOTE,
                    'a quoted field is never closed: a quote (") is missing',
                    row=number,
                ) from None
            if "NUL" in text:
                raise CsvError(Code.CSV_NOT_TEXT, "the row contains a NUL byte", row=number) from None
            if "expected after" in text:
                raise CsvError(
                    Code.CSV_MALFORMED,
                    'text follows a closing quote ("): quotes inside a quoted field must be doubled ("")',
                    row=number,
                ) from None
            raise CsvError(Code.CSV_MALFORMED, f"the row cannot be read as CSV: {text}", row=number) from None
        if cells is None:
            return None
        # a record spanning n lines is still one spreadsheet row
        self._number = number
        self._lines.row_chars = 0
        return cells

    def _field_reason(self) -> str:
        return (
            f'a field is longer than {self.limits.max_field_chars:,} characters: is a quote (") left '
            "open, swallowing the rows after it?"
        )

    def __iter__(self) -> Iterator[Row]:
        return self

    def __next__(self) -> Row:
        limit = self.limits.max_field_chars
        while True:
            cells = self._next_record()
            if cells is None:
                raise StopIteration
            if not any(c and not c.isspace() for c in cells):
                continue  # blank line, or a row of empty cells
            for i, cell in enumerate(cells):
                if len(cell) > limit:
                    column = self.format.header[i] if i < self.format.width else None
                    self._failed = CsvError(
                        Code.FIELD_TOO_LARGE, self._field_reason(), row=self._number, column=column
                    )
                    raise self._failed
            width = self.format.width
            while len(cells) > width and not cells[-1].strip():
                cells.pop()  # empty cells past the header: trailing delimiters
            values = {key: cells[i].strip() for i, key in self._keys if i < len(cells)}
            return Row(self._number, values, len(cells))


def read_rows(binary: IO[bytes], *, limits: CsvLimits = CsvLimits(), size: int | None = None) -> CsvRows:
    """Rows of a binary stream (an open file, an S3 StreamingBody). `size`, when known (S3
    ContentLength), rejects a file over the limit before reading it."""
    return CsvRows(binary, limits=limits, size=size)

"""Validation of a whole campaign before anything is sent: the manifest, its templates, the
fixed attachments, then every row of the CSV, streamed. Any error makes the campaign invalid.

Memory stays constant whatever the number of rows: the addresses seen (for duplicates) and
every error found live in a scratch sqlite database on disk; only counters and the first
`max_errors` errors are kept in memory for the report. With the manifest's `group_by`, the rows
are spilled to disk by group as they are read (grouping.GroupSpill), then each group is checked
as the one message it makes: its rows agreeing on what it shows once, its size, its templates.
Pure domain code: the attachments are known through `AttachmentIndex` (the Lambda fills one from
an S3 listing, the CLI from a folder, listed by `local_files` without ever following a symbolic
link).
"""

from __future__ import annotations

import difflib
import os
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol, cast

from pecflow.domain.campaign.export import export_rows, write_lines
from pecflow.domain.campaign.grouping import (
    MAX_GROUP_CHARS,
    RIGHE,
    Group,
    GroupSpill,
    group_key,
    group_values,
)
from pecflow.domain.campaign.issues import Code, CsvError, Issue, ManifestError, RenderError
from pecflow.domain.campaign.manifest import (
    Manifest,
    address_problem,
    attachment_name_problem,
    extension,
    show,
)
from pecflow.domain.campaign.pdf import text_pdf
from pecflow.domain.campaign.recipients import (
    ENCODING_NAMES,
    MAX_NAME_CHARS,
    CsvFormat,
    CsvLimits,
    Row,
    cut,
    read_rows,
)
from pecflow.domain.campaign.rendering import Templates, compile_templates, estimated_size

MAX_ERRORS = 1000
MAX_ROWS_OVER_LIMIT = 3  # rows whose templates went over their limits before the others are not rendered
MAX_COLUMN_ISSUES = 20  # issues of one kind about the header's columns; one more counts the others
ERROR_COLUMNS = ("row", "column", "code", "reason")


def _scratch_db(path: str) -> sqlite3.Connection:
    """A throwaway database: no journal, no fsync, a small page cache (bounded memory)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -2048")  # KiB
    db.execute("PRAGMA temp_store = FILE")
    return db


# --- what is in attachments/ ------------------------------------------------------------------------
class AttachmentIndex(Protocol):
    """The files under the campaign's attachments/ folder, by name relative to it.
    May also offer `suggest(name) -> str | None`: a file whose name differs only in case, and
    `problem(name) -> str | None`: why a name that is there cannot be sent (a symbolic link)."""

    def get(self, name: str) -> int | None:
        """The size in bytes of `name`, or None when there is no such file."""


class DictAttachmentIndex:
    """An index held in memory (tests, small folders)."""

    def __init__(self, sizes: Mapping[str, int] | Iterable[tuple[str, int]] = ()):
        self._sizes = dict(sizes)
        self._folded = {name.casefold(): name for name in self._sizes}

    def get(self, name: str) -> int | None:
        return self._sizes.get(name)

    def suggest(self, name: str) -> str | None:
        return self._folded.get(name.casefold())

    def __len__(self) -> int:
        return len(self._sizes)


_LINKED_FILE = "is a symbolic link: put the file itself in attachments/"
_LINKED_FOLDER = "is a symbolic link: put the folder itself in attachments/"
_SPECIAL = "is not a regular file (a device, a pipe?): put the file itself in attachments/"


def local_files(root: str | os.PathLike[str]) -> Iterator[tuple[str, int | None, str | None]]:
    """Everything under the folder `root`, named relative to it with '/' between folders:
    (name, size, None) for a regular file, (name, None, problem) for what cannot be sent as one:
    a symbolic link (to a file or a folder, dangling or looping alike: never followed), a special
    file, a folder that cannot be read."""
    root = Path(root)
    unreadable: list[OSError] = []
    for folder, folders, files in os.walk(root, onerror=unreadable.append):  # never enters a link
        for name in folders:
            path = Path(folder, name)
            if path.is_symlink():
                yield path.relative_to(root).as_posix(), None, _LINKED_FOLDER
        for name in files:  # links to files, dangling or looping ones are here
            path = Path(folder, name)
            relative = path.relative_to(root).as_posix()
            try:
                info = path.lstat()
            except OSError as exc:
                yield relative, None, f"cannot be read ({exc.strerror})"
                continue
            if stat.S_ISLNK(info.st_mode):
                yield relative, None, _LINKED_FILE
            elif not stat.S_ISREG(info.st_mode):
                yield relative, None, _SPECIAL
            else:
                yield relative, info.st_size, None
    for error in unreadable:
        where = Path(error.filename or root)
        if where != root:
            yield (
                where.relative_to(root).as_posix(),
                None,
                f"is a folder that cannot be read ({error.strerror})",
            )


class SqliteAttachmentIndex:
    """An index on disk, for listings of any length (an S3 listing streamed page by page).
    It lives in `path`, or in a new file in `directory` (default: the system's temp folder)
    removed by `close()`. Entries are (name, size), or (name, size, problem) for what is in the
    folder but cannot be sent (see `local_files`)."""

    def __init__(
        self,
        entries: Iterable[tuple[str, int | None] | tuple[str, int | None, str | None]],
        *,
        directory: str | os.PathLike[str] | None = None,
        path: str | os.PathLike[str] | None = None,
    ):
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pecflow-attachments-", dir=directory)
            path = os.path.join(self._tmp.name, "attachments.sqlite3")
        self._db = _scratch_db(str(path))
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS attachments "
            "(name TEXT PRIMARY KEY, folded TEXT, size INTEGER, problem TEXT)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS attachments_folded ON attachments (folded)")

        def rows() -> Iterator[tuple[str, str, int | None, str | None]]:
            for name, size, *rest in entries:
                problem = rest[0] if rest else None
                # a size is None only with a problem
                yield name, name.casefold(), None if problem else int(cast(int, size)), problem

        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR REPLACE INTO attachments VALUES (?, ?, ?, ?)", rows())
        self._db.execute("COMMIT")

    @classmethod
    def from_directory(
        cls, root: str | os.PathLike[str], **kwargs: str | os.PathLike[str] | None
    ) -> SqliteAttachmentIndex:
        """Everything under `root`, named relative to it with '/' between folders; symbolic
        links and special files are there with their problem, never followed."""
        return cls(local_files(root), **kwargs)

    def get(self, name: str) -> int | None:
        """The size of the file `name`; None when absent or unusable (see `problem`)."""
        found = self._db.execute("SELECT size FROM attachments WHERE name = ?", (name,)).fetchone()
        return found[0] if found else None

    def problem(self, name: str) -> str | None:
        """Why `name` cannot be sent although it is in the folder: it, or a folder above it, is a
        symbolic link, a special file...; None when nothing is known against it."""
        parts = name.split("/")
        paths = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        found = self._db.execute(
            "SELECT name, problem FROM attachments WHERE problem IS NOT NULL "
            f"AND name IN ({', '.join('?' * len(paths))}) ORDER BY length(name) LIMIT 1",
            paths,
        ).fetchone()
        if found is None:
            return None
        where, problem = found
        if where == name:
            return f"{show(name)} {problem}"
        return f"{show(name)} is in {show(where)}, which {problem}"

    def suggest(self, name: str) -> str | None:
        found = self._db.execute(
            "SELECT name FROM attachments WHERE folded = ? LIMIT 1", (name.casefold(),)
        ).fetchone()
        return found[0] if found else None

    def __len__(self) -> int:
        count: int = self._db.execute("SELECT count(*) FROM attachments").fetchone()[0]
        return count

    def close(self) -> None:
        self._db.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SqliteAttachmentIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the findings --------------------------------------------------------------------------------------
class _Findings:
    """Every issue goes to disk; counters and the first `keep` stay in memory. Campaign-level
    issues (no row) are few and always kept."""

    def __init__(self, directory: str | os.PathLike[str] | None, keep: int):
        self._tmp: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(
            prefix="pecflow-validation-", dir=directory
        )
        self.db = _scratch_db(os.path.join(self._tmp.name, "validation.sqlite3"))
        self.db.execute("CREATE TABLE issues (row INTEGER, col TEXT, field TEXT, code TEXT, reason TEXT)")
        self.db.execute("CREATE TABLE seen (address TEXT PRIMARY KEY, row INTEGER) WITHOUT ROWID")
        self.db.execute("BEGIN")
        self.keep = keep
        self.kept: list[Issue] = []
        self.kept_rows = 0
        self.count = 0
        self.by_code: dict[str, int] = {}
        self._pending: list[tuple[int | None, str | None, str | None, str, str]] = []

    def add(self, issue: Issue) -> None:
        self.count += 1
        self.by_code[issue.code] = self.by_code.get(issue.code, 0) + 1
        if issue.row is None:
            self.kept.append(issue)
        elif self.kept_rows < self.keep:
            self.kept_rows += 1
            self.kept.append(issue)
        self._pending.append((issue.row, issue.column, issue.field, str(issue.code), issue.reason))
        if len(self._pending) >= 500:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.db.executemany("INSERT INTO issues VALUES (?, ?, ?, ?, ?)", self._pending)
            self._pending.clear()

    def first_row_with(self, address: str, row: int) -> int | None:
        """Remember `address` at `row`; the row it was first seen on when already seen."""
        if self.db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (address, row)).rowcount:
            return None
        first: int = self.db.execute("SELECT row FROM seen WHERE address = ?", (address,)).fetchone()[0]
        return first

    def done(self) -> None:
        self.flush()
        self.db.execute("COMMIT")
        self.db.execute("DROP TABLE seen")

    def issues(self) -> Iterable[tuple[int | None, str | None, str, str]]:
        """(row, column, code, reason) of every issue, the manifest field (or template) in the reason."""
        for row, column, field_name, code, reason in self.db.execute("SELECT * FROM issues ORDER BY rowid"):
            yield row, column, code, f"{field_name}: {reason}" if field_name else reason

    def close(self) -> None:
        if self._tmp is not None:
            self.db.close()
            self._tmp.cleanup()
            self._tmp = None

    @property
    def closed(self) -> bool:
        return self._tmp is None


# --- the report --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What `validate` found. Close it (or use `with`) to delete its scratch database."""

    valid: bool
    rows: int  # data rows read (blank lines left out)
    valid_rows: int
    invalid_rows: int
    error_count: int  # every error, including those not kept in `errors`
    errors: tuple[Issue, ...]  # campaign-level ones, then the first `max_errors` of the rows
    errors_by_code: dict[str, int]
    csv_format: CsvFormat | None
    merge_fields: tuple[str, ...]  # the variables the templates use (columns of the CSV)
    bytes_read: int
    messages: int  # what would be sent: one per valid row, or one per group of rows (group_by)
    _findings: _Findings = field(repr=False, compare=False)

    @property
    def errors_truncated(self) -> bool:
        return self.error_count > len(self.errors)

    @property
    def campaign_errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.errors if i.row is None)

    @property
    def encoding(self) -> str | None:
        return self.csv_format.encoding if self.csv_format else None

    @property
    def delimiter(self) -> str | None:
        return self.csv_format.delimiter if self.csv_format else None

    @property
    def header(self) -> tuple[str, ...]:
        return self.csv_format.header if self.csv_format else ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.csv_format.columns if self.csv_format else ()

    def summary(self) -> dict[str, object]:
        """The few figures for the campaign item (DynamoDB-friendly: no floats)."""
        return {
            "valid": self.valid,
            "rows": self.rows,
            "valid_rows": self.valid_rows,
            "invalid_rows": self.invalid_rows,
            "messages": self.messages,
            "error_count": self.error_count,
            "errors_by_code": dict(self.errors_by_code),
            "encoding": self.encoding,
            "delimiter": self.delimiter,
        }

    def to_json(self) -> dict[str, object]:
        """The JSON-ready report written to campaigns/<id>/validation.json."""
        return {
            **self.summary(),
            "encoding_name": ENCODING_NAMES.get(self.encoding or "", None),
            "header": list(map(cut, self.header)),
            "columns": list(map(cut, self.columns)),
            "merge_fields": list(self.merge_fields),
            "bytes_read": self.bytes_read,
            "errors_truncated": self.errors_truncated,
            "errors": [issue.to_dict() for issue in self.errors],
        }

    def write_errors_csv(self, sink: BinaryIO) -> int:
        """Every error (not only those kept), as a CSV of row;column;code;reason for Excel
        (UTF-8 with BOM, formula-safe), streamed to a binary sink. Returns the errors written."""
        if self._findings.closed:
            raise ValueError("the report is closed")
        return max(0, write_lines(sink, export_rows(self._findings.issues(), ERROR_COLUMNS)) - 1)

    def close(self) -> None:
        self._findings.close()

    def __enter__(self) -> ValidationReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the validation -----------------------------------------------------------------------------------
def validate(
    manifest: Manifest | bytes | str | Mapping[str, Any],
    binary_csv: IO[bytes],
    attachments: AttachmentIndex,
    *,
    limits: CsvLimits = CsvLimits(),  # noqa: B008 (frozen, immutable)
    max_errors: int = MAX_ERRORS,
    size: int | None = None,
    directory: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], Any] | None = None,
    progress_every: int = 1000,
) -> ValidationReport:
    """Check a whole campaign; never raises on bad input, every problem is in the report.

    `manifest` is a Manifest or the raw manifest (bytes, str, decoded JSON) so that its own
    errors land in the report too. `size`: the CSV's size when known (S3 ContentLength).
    `directory`: where the scratch database goes (default: the system's temp folder).
    `progress(rows, bytes_read)` is called every `progress_every` rows.
    """
    findings = _Findings(directory, max_errors)
    run = _Run(findings, attachments, directory)
    try:
        run.manifest_checks(manifest)
        run.csv_checks(binary_csv, limits, size, progress, max(1, progress_every))
        run.group_checks()
        findings.done()
    except BaseException:
        findings.close()
        raise
    finally:
        run.close()
    return ValidationReport(
        valid=findings.count == 0,
        rows=run.rows,
        valid_rows=run.rows - run.invalid_rows,
        invalid_rows=run.invalid_rows,
        error_count=findings.count,
        errors=tuple(findings.kept),
        errors_by_code=dict(findings.by_code),
        csv_format=run.format,
        merge_fields=tuple(sorted(run.templates.variables)) if run.templates else (),
        bytes_read=run.bytes_read,
        messages=run.messages(),
        _findings=findings,
    )


class _Run:
    def __init__(
        self, findings: _Findings, attachments: AttachmentIndex, directory: str | os.PathLike[str] | None
    ):
        self.findings, self.index, self.directory = findings, attachments, directory
        self.spill: GroupSpill | None = None  # the rows by group, with group_by
        self.group_key: str | None = None
        self.common: tuple[str, ...] = ()  # what the rows of one group must agree on
        self.manifest: Manifest | None = None
        self.templates: Templates | None = None
        self.format: CsvFormat | None = None
        self.fixed_sizes: list[int] = []
        self.required: tuple[str, ...] = ()  # merge fields every row must fill, in column order
        self.render = False
        self.address_key: str | None = None
        self.attachment_key: str | None = None
        self.defaults: dict[str, str] = {}  # optional columns absent from a row render as ''

        self.rows = self.invalid_rows = self.bytes_read = 0
        self._count_before_row = 0
        self.over_limit = 0  # rows whose templates went over their limits

    def add(
        self,
        code: Code,
        reason: str,
        row: int | None = None,
        column: str | None = None,
        field: str | None = None,
    ) -> None:
        self.findings.add(Issue(code, reason, row, column, field))

    def messages(self) -> int:
        if self.spill is not None:
            return self.spill.groups_count
        return self.rows - self.invalid_rows

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()

    # --- before the rows ---------------------------------------------------------------------------
    def manifest_checks(self, manifest: Manifest | bytes | str | Mapping[str, Any]) -> None:
        try:
            if isinstance(manifest, (bytes, str)):
                manifest = Manifest.parse(manifest)
            elif not isinstance(manifest, Manifest):
                manifest = Manifest.from_dict(manifest)
        except ManifestError as exc:
            for issue in exc.issues:
                self.findings.add(issue)
            return
        self.manifest = manifest
        self.address_key, self.attachment_key = manifest.address_key, manifest.attachment_key
        self.group_key = manifest.group_by_key
        if self.group_key:
            self.spill = GroupSpill(self.directory)
        self.defaults = dict.fromkeys(manifest.optional_keys, "")
        try:
            self.templates = compile_templates(manifest)
        except ManifestError as exc:
            for issue in exc.issues:
                self.findings.add(issue)
        for i, name in enumerate(manifest.attachments):
            size = self._attachment_problem(name, None, None, f"attachments[{i}]")
            if size is not None:
                self.fixed_sizes.append(size)

    def _attachment_problem(
        self, name: str, row: int | None, column: str | None, field: str | None
    ) -> int | None:
        """The size of a usable attachment, or None after adding what is wrong with it."""
        manifest = self.manifest
        assert manifest is not None  # attachments are checked once the manifest is read
        problem = attachment_name_problem(name)
        if problem:
            self.add(Code.ATTACHMENT_NAME_INVALID, f"{show(name)}: {problem}", row, column, field)
            return None
        if not manifest.accepts(name):
            kind = f".{extension(name)} files are" if extension(name) else "a file without extension is"
            self.add(
                Code.ATTACHMENT_FORMAT,
                f"{show(name)}: {kind} not accepted (accepted: {', '.join(manifest.accepted_formats)})",
                row,
                column,
                field,
            )
            return None
        size = self.index.get(name)
        if size is None:
            problem = getattr(self.index, "problem", None)
            reason = problem(name) if problem else None
            if reason:
                self.add(Code.ATTACHMENT_NOT_A_FILE, reason, row, column, field)
                return None
            suggest = getattr(self.index, "suggest", None)
            close = suggest(name) if suggest else None
            hint = f" (there is {show(close)}: names must match exactly, capitals too)" if close else ""
            self.add(
                Code.ATTACHMENT_NOT_FOUND,
                f"{show(name)} is not in the attachments/ folder{hint}",
                row,
                column,
                field,
            )
            return None
        if size > manifest.max_attachment_bytes:
            limit = _mb(manifest.max_attachment_bytes)
            self.add(
                Code.ATTACHMENT_TOO_LARGE,
                f"{show(name)} is {_mb(size)}, over the {limit} limit for one attachment",
                row,
                column,
                field,
            )
            return None
        return size

    def header_checks(self, fmt: CsvFormat) -> None:
        """The header's own problems, then the columns the manifest and templates need. Each
        kind of problem gives at most MAX_COLUMN_ISSUES issues and one counting the others."""
        self.format = fmt
        seen: dict[str, str] = {}
        duplicates = 0
        for name, key in zip(fmt.header, fmt.columns):
            if key and key in seen:
                duplicates += 1
                if duplicates <= MAX_COLUMN_ISSUES:
                    self.add(
                        Code.COLUMN_DUPLICATE,
                        f"columns {show(seen[key])} and {show(name)} have the same name",
                        column=cut(name),
                    )
            seen.setdefault(key, name)
        if duplicates > MAX_COLUMN_ISSUES:
            self.add(
                Code.COLUMN_DUPLICATE,
                f"…and {duplicates - MAX_COLUMN_ISSUES:,} more columns with a "
                "name already used (each column needs its own name)",
            )
        manifest = self.manifest
        if manifest is None:
            return
        columns = set(fmt.columns) - {""}
        listing = _listing([h for h in fmt.header if h])
        if manifest.address_key not in columns:
            self.add(
                Code.ADDRESS_COLUMN_MISSING,
                f"no column {show(manifest.address_column)} for the "
                f"recipients' addresses (columns: {listing})",
                field="address_column",
            )
        if manifest.attachment_key and manifest.attachment_key not in columns:
            assert manifest.attachment_column is not None  # the key is made from it
            self.add(
                Code.ATTACHMENT_COLUMN_MISSING,
                f"no column {show(manifest.attachment_column)} naming "
                f"each recipient's attachment (columns: {listing})",
                field="attachment_column",
            )
        if manifest.group_by_key and manifest.group_by_key not in columns:
            assert manifest.group_by is not None  # the key is made from it
            self.add(
                Code.GROUP_COLUMN_MISSING,
                f"no column {show(manifest.group_by)} to group the rows by (columns: {listing})",
                field="group_by",
            )
        if manifest.group_by_key and RIGHE in columns:
            self.add(
                Code.COLUMN_RESERVED,
                f"with group_by the templates' {{{{ {RIGHE} }}}} is the list of a message's rows: "
                "rename this column",
                column=fmt.display(RIGHE),
            )
        if self.templates is None:
            return
        given = {RIGHE} if manifest.group_by_key else set()
        missing = sorted(self.templates.variables - columns - given)
        candidates = sorted(c for c in columns if len(c) <= MAX_NAME_CHARS)
        for name in missing[:MAX_COLUMN_ISSUES]:
            close = difflib.get_close_matches(name, candidates, n=1)
            hint = (
                f" (did you mean {{{{ {close[0]} }}}}?)"
                if close
                else f" (columns: {_listing(sorted(columns))})"
            )
            self.add(
                Code.MERGE_FIELD_MISSING,
                f"the template uses {{{{ {cut(name)} }}}} but the CSV has no such column{hint}",
                field=self.templates.used_by(name),
            )
        if len(missing) > MAX_COLUMN_ISSUES:
            self.add(
                Code.MERGE_FIELD_MISSING,
                f"…and {len(missing) - MAX_COLUMN_ISSUES:,} more variables of "
                "the templates with no column of that name",
            )
        needed = self.templates.variables - manifest.optional_keys - {manifest.address_key} - given
        self.required = tuple(dict.fromkeys(c for c in fmt.columns if c in needed))
        self.render = not missing
        if manifest.group_by_key:
            shown_once = (self.templates.variables | {manifest.address_key}) - given
            shown_once -= {manifest.group_by_key, manifest.attachment_key}
            self.common = tuple(dict.fromkeys(c for c in fmt.columns if c in shown_once))

    # --- the rows -----------------------------------------------------------------------------------
    def csv_checks(
        self,
        binary: IO[bytes],
        limits: CsvLimits,
        size: int | None,
        progress: Callable[[int, int], Any] | None,
        every: int,
    ) -> None:
        try:
            rows = read_rows(binary, limits=limits, size=size)
        except CsvError as exc:
            self.findings.add(exc.issue)
            return
        self.header_checks(rows.format)
        try:
            for row in rows:
                self.rows += 1
                if not self.row_checks(row):
                    self.invalid_rows += 1
                if progress is not None and self.rows % every == 0:
                    progress(self.rows, rows.bytes_read)
        except CsvError as exc:
            self.findings.add(exc.issue)
            self.bytes_read = rows.bytes_read
            return
        self.bytes_read = rows.bytes_read
        if progress is not None:
            progress(self.rows, rows.bytes_read)
        if self.rows == 0:
            self.add(Code.CSV_HEADER_ONLY, "the file has a header but no rows")

    def row_checks(self, row: Row) -> bool:
        """Every check on one row; True when it has no error."""
        before = self._count_before_row = self.findings.count
        fmt, manifest, number = self.format, self.manifest, row.number
        assert fmt is not None  # the header is read before the rows
        if row.cells is not None and not fmt.named_width <= row.cells <= fmt.width:
            counted = f"{row.cells} fields where the header has {fmt.width}"
            if row.cells > fmt.width:
                self.add(
                    Code.ROW_TOO_MANY_FIELDS,
                    f"{counted}: does a value hold a '{fmt.delimiter}' without quotes?",
                    number,
                )
            else:
                self.add(Code.ROW_TOO_FEW_FIELDS, counted, number)
            return False
        if manifest is None:
            return True
        values = row.values
        key = self.address_key
        assert key is not None  # set with the manifest
        if key in values:
            address = values[key]
            column = fmt.display(key)
            problem = address_problem(address)
            if not address:
                self.add(Code.ADDRESS_EMPTY, "the address is empty", number, column)
            elif problem:
                self.add(
                    Code.ADDRESS_INVALID, f"{show(address)} is not a valid address: {problem}", number, column
                )
            elif self.spill is None:  # grouped: one message per group, checked per group
                first = self.findings.first_row_with(address.lower(), number)
                if first is not None:
                    self.add(
                        Code.ADDRESS_DUPLICATE,
                        f"{show(address)} is already on row {first} (addresses "
                        "are compared ignoring capitals)",
                        number,
                        column,
                    )
        empty = False
        for name in self.required:
            if not values.get(name):
                empty = True
                self.add(
                    Code.VALUE_EMPTY,
                    f"empty, and the template uses {{{{ {name} }}}}",
                    number,
                    fmt.display(name),
                )
        attachment_sizes = list(self.fixed_sizes)
        akey = self.attachment_key
        own_size = None
        if akey and akey in values:
            name = values[akey]
            if not name:
                self.add(Code.VALUE_EMPTY, "no file named for this recipient", number, fmt.display(akey))
            else:
                own_size = self._attachment_problem(name, number, fmt.display(akey), None)
                if own_size is not None:
                    attachment_sizes.append(own_size)
        if self.spill is not None:
            self._group_row(row, own_size)
        elif self.render and not empty:
            self._render_checks(values, number, attachment_sizes)
        return self.findings.count == before

    def _group_row(self, row: Row, own_size: int | None) -> None:
        """Spill a row into its group; a field shown once that differs from the group's first
        row is a conflict, reported with both rows."""
        fmt, manifest, spill = self.format, self.manifest, self.spill
        assert fmt is not None and manifest is not None and spill is not None and self.group_key
        raw = row.values.get(self.group_key)
        if raw is None:
            return  # the column is missing: said once, about the header
        key = group_key(raw)
        if not key:
            self.add(
                Code.VALUE_EMPTY,
                f"empty: the rows are grouped by {show(manifest.group_by or '')}",
                row.number,
                fmt.display(self.group_key),
            )
            return
        spill.add(key, row, own_size, ok=self.findings.count == self._count_before_row)

    def group_checks(self) -> None:
        """With group_by, after every row: each group as one message (its size, its templates
        rendered with `righe`, its recipient not another group's)."""
        spill, manifest = self.spill, self.manifest
        if spill is None or manifest is None:
            return
        for _key, first_row, count, chars in spill.oversized():
            self.add(
                Code.GROUP_TOO_LARGE,
                f"this message would cover {count:,} rows ({chars:,} characters): at most "
                f"{spill.max_rows:,} rows and {MAX_GROUP_CHARS:,} characters in one message "
                "(split the campaign)",
                first_row,
            )
        for group in spill.groups():
            if not group.rows or self._conflicts(group) or not group.ok or not self.render:
                continue
            values = group_values(manifest, group.rows)
            if manifest.group_by_key != manifest.address_key:
                address = manifest.address_of(values).lower()
                other = self.findings.first_row_with(address, group.first_row)
                if other is not None:
                    self.add(
                        Code.ADDRESS_DUPLICATE,
                        f"{show(address)} is already the recipient of the message starting on row {other} "
                        f"(another {show(manifest.group_by or '')}): group the rows by the address",
                        group.first_row,
                    )
            sizes = [*self.fixed_sizes, *(size for size in group.sizes if size is not None)]
            self._render_checks(values, group.first_row, sizes, group.numbers)

    def _conflicts(self, group: Group) -> bool:
        """A field shown once that differs from the group's first row: a conflict, reported on
        the row with both row numbers. True when the group has one."""
        fmt, manifest = self.format, self.manifest
        assert fmt is not None and manifest is not None and self.group_key
        first, conflicts = group.rows[0], False
        for row in group.rows[1:]:
            for name in self.common:
                mine, theirs = row.values.get(name, ""), first.values.get(name, "")
                same = mine.casefold() == theirs.casefold() if name == self.address_key else mine == theirs
                if not same:
                    conflicts = True
                    self.add(
                        Code.GROUP_CONFLICT,
                        f"{show(mine)} here but {show(theirs)} on row {first.number}, in the same message "
                        f"({fmt.display(self.group_key)} {show(first.values.get(self.group_key, ''))}): the "
                        "rows of one message must agree on what it shows once",
                        row.number,
                        fmt.display(name),
                    )
        return conflicts

    def _render_checks(
        self,
        values: dict[str, Any],
        number: int,
        attachment_sizes: list[int],
        group: tuple[int, ...] = (),
    ) -> None:
        manifest = self.manifest
        assert manifest is not None and self.templates is not None  # rows render only then
        of = f"the message of rows {_rows(group)}: " if len(group) > 1 else ""
        try:
            rendered = self.templates.render({**self.defaults, **values} if self.defaults else values)
        except RenderError as exc:
            self.add(exc.code, of + exc.reason, number, field=exc.field)
            if exc.code == Code.TEMPLATE_LIMIT:
                self.over_limit += 1
                if self.over_limit == MAX_ROWS_OVER_LIMIT:
                    # each may have taken RENDER_SECONDS: what is wrong is the template, not the rows
                    self.render = False
                    self.add(
                        Code.TEMPLATE_LIMIT,
                        f"the rows after row {number:,} were not rendered: the templates went over "
                        f"their limits on {self.over_limit} rows (fix the templates and validate again)",
                    )
            return
        pdf_size = 0
        if rendered.pdf_text is not None:
            pdf_size = len(text_pdf(rendered.pdf_text))
            if pdf_size > manifest.max_attachment_bytes:
                self.add(
                    Code.ATTACHMENT_TOO_LARGE,
                    f"{of}the generated PDF is {_mb(pdf_size)}, over the "
                    f"{_mb(manifest.max_attachment_bytes)} limit",
                    number,
                    field="pdf.template",
                )
        total = estimated_size(rendered, attachment_sizes, pdf_size)
        if total > manifest.max_message_bytes:
            self.add(
                Code.MESSAGE_TOO_LARGE,
                f"{of}the message would be about {_mb(total)} with its attachments, "
                f"over the {_mb(manifest.max_message_bytes)} limit",
                number,
            )


def _rows(numbers: tuple[int, ...], limit: int = 10) -> str:
    shown = ", ".join(map(str, numbers[:limit]))
    return shown if len(numbers) <= limit else f"{shown}… ({len(numbers):,} rows)"


def _listing(names: list[str], limit: int = MAX_COLUMN_ISSUES) -> str:
    """Column names for a message: the first `limit`, each cut, and how many in all."""
    if not names:
        return "none"
    shown = ", ".join(cut(name, 40) for name in names[:limit])
    return shown if len(names) <= limit else f"{shown}… ({len(names):,} in all)"


def _mb(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB" if size >= 100_000 else f"{size:,} bytes"

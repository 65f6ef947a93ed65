"""What can be wrong with a campaign, said once: stable machine codes, a located reason, and
the exceptions the campaign modules raise. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Code(StrEnum):
    # the campaign as a whole: nothing can be sent until it is fixed
    MANIFEST_INVALID = "manifest-invalid"
    TEMPLATE_SYNTAX = "template-syntax"
    TEMPLATE_LIMIT = "template-limit"  # over a limit: its size, or time, loops... on a row
    MERGE_FIELD_MISSING = "merge-field-missing"  # a template variable that is no column
    ADDRESS_COLUMN_MISSING = "address-column-missing"
    ATTACHMENT_COLUMN_MISSING = "attachment-column-missing"
    COLUMN_DUPLICATE = "column-duplicate"  # two headers with the same name
    GROUP_COLUMN_MISSING = "group-column-missing"  # no column for the manifest's group_by
    COLUMN_RESERVED = "column-reserved"  # a column named like a variable pecflow gives (righe)
    CSV_EMPTY = "csv-empty"
    CSV_HEADER_ONLY = "csv-header-only"
    CSV_NOT_TEXT = "csv-not-text"  # a workbook, a PDF, UTF-16 without BOM...
    CSV_ENCODING = "csv-encoding"
    CSV_TOO_LARGE = "csv-too-large"
    CSV_MALFORMED = "csv-malformed"
    CSV_TOO_MANY_COLUMNS = "csv-too-many-columns"
    CSV_UNCLOSED_QUOTE = "csv-unclosed-quote"
    FIELD_TOO_LARGE = "field-too-large"
    ROW_TOO_LONG = "row-too-long"
    # one row
    ROW_TOO_MANY_FIELDS = "row-too-many-fields"
    ROW_TOO_FEW_FIELDS = "row-too-few-fields"
    ADDRESS_EMPTY = "address-empty"
    ADDRESS_INVALID = "address-invalid"
    ADDRESS_DUPLICATE = "address-duplicate"
    VALUE_EMPTY = "value-empty"  # a merge field the templates need is empty
    ATTACHMENT_NAME_INVALID = "attachment-name-invalid"
    ATTACHMENT_NOT_FOUND = "attachment-not-found"  # also for a missing fixed attachment
    ATTACHMENT_FORMAT = "attachment-format"
    ATTACHMENT_TOO_LARGE = "attachment-too-large"
    ATTACHMENT_NOT_A_FILE = "attachment-not-a-file"  # a symbolic link, a special file: never read
    RENDER_FAILED = "render-failed"
    MESSAGE_TOO_LARGE = "message-too-large"
    # one group of rows (group_by): one message
    GROUP_CONFLICT = "group-conflict"  # two rows of one message disagree on a field shown once
    GROUP_TOO_LARGE = "group-too-large"  # more rows than one message can carry


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem, located: a CSV row and column, and/or a manifest field (or template)."""

    code: Code
    reason: str
    row: int | None = None  # spreadsheet numbering: the header is row 1
    column: str | None = None  # the header as the user wrote it
    field: str | None = None  # manifest field: subject, attachments[2], pdf.template...

    @property
    def message(self) -> str:
        """e.g. "row 17, column pec: 'mario.rossi@' is not a valid address: nothing after @"."""
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        if self.field is not None:
            where.append(f"field {self.field}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def to_dict(self) -> dict[str, str | int | None]:
        return {
            "row": self.row,
            "column": self.column,
            "field": self.field,
            "code": str(self.code),
            "reason": self.reason,
            "message": self.message,
        }


class CampaignError(ValueError):
    """Base of the campaign errors; `issues` says what and where."""

    def __init__(self, issues: list[Issue] | tuple[Issue, ...]):
        self.issues = tuple(issues)
        super().__init__("; ".join(i.message for i in self.issues))


class ManifestError(CampaignError):
    """The manifest (or one of its templates) cannot be used."""


class CsvError(CampaignError):
    """The CSV cannot be read on from here: encoding, size, structure."""

    def __init__(self, code: Code, reason: str, row: int | None = None, column: str | None = None):
        super().__init__([Issue(code, reason, row, column)])

    @property
    def issue(self) -> Issue:
        return self.issues[0]


class RenderError(CampaignError):
    """One recipient's message cannot be rendered; `code` is TEMPLATE_LIMIT when a template went
    over its limits (time, size, loops, calls), RENDER_FAILED otherwise."""

    def __init__(self, field: str, reason: str, code: Code = Code.RENDER_FAILED):
        self.field, self.reason, self.code = field, reason, code
        super().__init__([Issue(code, reason, field=field)])

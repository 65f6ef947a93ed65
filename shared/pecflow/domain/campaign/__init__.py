"""Campaigns: one PEC per recipient, from a manifest, a CSV and attachments (docs/architecture.md,
flows 3 and 4, "Send"). This package is the one to import; the work is split by concern:

- `manifest`: the manifest and its JSON Schema, address and name rules;
- `recipients`: reading the CSV as people produce it, streamed;
- `validation`: every check before anything is sent, and the report;
- `grouping`: one message per group of rows (`group_by`), in constant memory;
- `rendering`: templates, Italian filters, the message of one recipient;
- `pdf`: the per-recipient PDF; `export`: formula-safe CSV for Excel;
- `issues`: the error codes and exceptions.

Pure domain code: no AWS, no sockets.
"""

from pecflow.domain.campaign.export import EXPORT_COLUMNS, export_rows, safe_cell, write_export, write_lines
from pecflow.domain.campaign.grouping import (
    MAX_GROUP_ROWS,
    RIGHE,
    Group,
    GroupSpill,
    NoSuchRow,
    group_key,
    group_values,
    grouped,
    message_of_row,
)
from pecflow.domain.campaign.issues import CampaignError, Code, CsvError, Issue, ManifestError, RenderError
from pecflow.domain.campaign.manifest import (
    DEFAULT_FORMATS,
    DEFAULT_MAX_ATTACHMENT_BYTES,
    DEFAULT_MAX_MESSAGE_BYTES,
    RECEIPT_TYPES,
    Manifest,
    PdfSpec,
    address_problem,
    attachment_name_problem,
    column_key,
    schema,
)
from pecflow.domain.campaign.pdf import text_pdf
from pecflow.domain.campaign.recipients import CsvFormat, CsvLimits, CsvRows, Row, read_rows
from pecflow.domain.campaign.rendering import (
    TEST_MARK,
    Rendered,
    TemplateLimitError,
    Templates,
    compile_templates,
    data,
    environment,
    estimated_size,
    importo,
    render_message,
    row_values,
)
from pecflow.domain.campaign.validation import (
    AttachmentIndex,
    DictAttachmentIndex,
    SqliteAttachmentIndex,
    ValidationReport,
    local_files,
    validate,
)

__all__ = [
    "AttachmentIndex",
    "CampaignError",
    "Code",
    "CsvError",
    "CsvFormat",
    "CsvLimits",
    "CsvRows",
    "DEFAULT_FORMATS",
    "DEFAULT_MAX_ATTACHMENT_BYTES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DictAttachmentIndex",
    "EXPORT_COLUMNS",
    "Group",
    "GroupSpill",
    "MAX_GROUP_ROWS",
    "RIGHE",
    "Issue",
    "Manifest",
    "ManifestError",
    "NoSuchRow",
    "PdfSpec",
    "RECEIPT_TYPES",
    "RenderError",
    "Rendered",
    "Row",
    "SqliteAttachmentIndex",
    "TEST_MARK",
    "TemplateLimitError",
    "Templates",
    "ValidationReport",
    "address_problem",
    "attachment_name_problem",
    "column_key",
    "compile_templates",
    "data",
    "environment",
    "estimated_size",
    "group_key",
    "group_values",
    "grouped",
    "export_rows",
    "importo",
    "local_files",
    "message_of_row",
    "read_rows",
    "render_message",
    "row_values",
    "safe_cell",
    "schema",
    "text_pdf",
    "validate",
    "write_export",
    "write_lines",
]

"""The campaign manifest (`campaigns/<id>/manifest.json`): parsed, checked against the published
JSON Schema (schemas/campaign-manifest.schema.json, Draft 2020-12), and the few rules a schema
cannot say. Also the small syntax rules shared by the campaign modules: addresses, column
names, attachment names. Pure: no I/O beyond reading the packaged schema."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pecflow.domain import schemas
from pecflow.domain.campaign.issues import Code, Issue, ManifestError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # also a safe S3 key segment
SCHEMA_NAME = "campaign-manifest.schema.json"
RECEIPT_TYPES = ("completa", "breve", "sintetica")
DEFAULT_FORMATS = (
    "pdf",
    "p7m",
    "p7s",
    "xml",
    "txt",
    "csv",
    "jpg",
    "jpeg",
    "png",
    "tif",
    "tiff",
    "zip",
    "odt",
    "ods",
    "docx",
    "xlsx",
)
DEFAULT_MAX_ATTACHMENT_BYTES = 20_000_000  # one file; base64 makes it ~27 MB in the message
DEFAULT_MAX_MESSAGE_BYTES = 30_000_000  # the usual PEC limit, counted on the encoded message


# --- small syntax rules ---------------------------------------------------------------------------
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TLD = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")
_VALID = re.compile(
    rf"(?=.{{3,254}}\Z)(?=[^@]{{1,64}}@){_ATEXT}+(?:\.{_ATEXT}+)*@"
    r"(?=.{1,253}\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})",
    re.S,
)
_NOT_KEY = re.compile(r"\W+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def address_problem(address: str) -> str | None:
    """Why `address` cannot be a PEC recipient (a pragmatic RFC 5321 check), or None."""
    if _VALID.fullmatch(address):
        return None  # the common case, in one match; the rest says what is wrong
    if not address:
        return "it is empty"
    if "@" in address and (address.count("@") > 1 and re.search(r"[,;\s]", address)):
        return "it holds more than one address: one recipient per row"
    if "<" in address or ">" in address or '"' in address:
        return "write the bare address, without a name, quotes or <>"
    if any(c.isspace() for c in address):
        return "it contains spaces"
    if not address.isascii():
        return "it contains non-ASCII characters"
    if "@" not in address:
        return "it has no @"
    if address.count("@") > 1:
        return "it has more than one @"
    local, domain = address.split("@")
    if not local:
        return "nothing before @"
    if not domain:
        return "nothing after @"
    if len(address) > 254:
        return "it is longer than 254 characters"
    if len(local) > 64:
        return "the part before @ is longer than 64 characters"
    if not _LOCAL.fullmatch(local):
        return "the part before @ has a character or a dot where none is allowed"
    if "." not in domain:
        return "the domain has no dot"
    labels = domain.split(".")
    if any(not label for label in labels):
        return "the domain has an empty part (a dot at the start, at the end or twice)"
    if len(domain) > 253:
        return "the domain is longer than 253 characters"
    if any(len(label) > 63 for label in labels):
        return "a part of the domain is longer than 63 characters"
    if not all(_LABEL.fullmatch(label) for label in labels):
        return "the domain has a character not allowed in domain names (or a part starting or ending with -)"
    if not _TLD.fullmatch(labels[-1]):
        return f"the domain ends in '.{labels[-1]}', which is no top-level domain"
    return None


def column_key(name: str) -> str:
    """The name a column goes by in templates and lookups: "  Ragione Sociale " → ragione_sociale.
    Empty for a header with no letters or digits (an unnamed column)."""
    return _NOT_KEY.sub("_", name.strip().casefold()).strip("_")


def attachment_name_problem(name: str) -> str | None:
    """Why `name` cannot name a file under the campaign's attachments/ folder, or None."""
    if not name:
        return "the file name is empty"
    if len(name) > 500:
        return "the file name is longer than 500 characters"
    if _CONTROL.search(name):
        return "the file name contains control characters"
    if "\\" in name:
        return "the file name contains '\\': separate folders with '/'"
    if name.startswith("/"):
        return "the file name must be relative to the attachments/ folder"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "the file name must not contain '.', '..' or empty folder names"
    return None


def extension(name: str) -> str:
    """The format of a file, by its name: fattura.xml.p7m → p7m ('' when there is none)."""
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base.strip(".") else ""


def show(value: str, limit: int = 60) -> str:
    """A value quoted for a message, control characters escaped, long ones cut."""
    if len(value) > limit:
        value = value[:limit] + "…"
    return repr(value)


NO_BCC = (
    "PEC has no blind copy (BCC, copia nascosta): every recipient of a PEC is named in the message and "
    'in its receipts. For a fixed copy of every message (e.g. the company\'s archive box) use "cc"'
)
_BCC_NAMES = frozenset(("bcc", "ccn", "copia_nascosta"))


# --- the schema -------------------------------------------------------------------------------------
def schema() -> dict[str, Any]:
    """The published manifest schema (packaged with pecflow, identical to schemas/ in the repo)."""
    return schemas.published(SCHEMA_NAME)


def _validator() -> Draft202012Validator:
    compiled: Draft202012Validator = schemas.validator(SCHEMA_NAME)
    return compiled


_TYPE_WORDS = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


_PYTHON_TYPES = (
    ("boolean", bool),
    ("integer", int),
    ("number", float),
    ("string", str),
    ("array", list),
    ("object", dict),
)  # bool before int: True is an int too


def _json_type(value: Any) -> str:
    """A value's JSON type, in the words of _TYPE_WORDS."""
    return _TYPE_WORDS[next((kind for kind, python in _PYTHON_TYPES if isinstance(value, python)), "null")]


def _path(parts: Iterable[str | int]) -> str | None:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _join(base: str | None, name: str) -> str:
    return f"{base}.{name}" if base else name


def _describe(error: Any) -> list[Issue]:
    """Plain words for one jsonschema error, located at its field."""
    # a jsonschema.ValidationError: its stubs type each attribute as possibly `Unset`, never the case here
    field = _path(error.absolute_path)
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        issues = []
        for name in sorted(set(value) - set(known)):
            if field is None and name.strip().casefold() in _BCC_NAMES:
                issues.append(Issue(Code.MANIFEST_INVALID, NO_BCC, field=name))
                continue
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known fields: {', '.join(known)})"
            issues.append(Issue(Code.MANIFEST_INVALID, "unknown field" + hint, field=_join(field, name)))
        return issues
    if kind == "required":
        return [
            Issue(Code.MANIFEST_INVALID, "is required", field=_join(field, name))
            for name in expected
            if name not in value
        ]
    if kind == "type":
        if field is None:
            return [
                Issue(Code.MANIFEST_INVALID, f"the manifest must be a JSON object, not {_json_type(value)}")
            ]
        reason = f"must be {_TYPE_WORDS.get(expected, expected)}, not {_json_type(value)}"
    elif kind == "enum":
        reason = f"must be one of {', '.join(map(str, expected))}, not {value!r}"
    elif kind == "minLength":
        reason = "must not be empty" if expected == 1 else f"must be at least {expected} characters long"
    elif kind == "maxLength":
        reason = f"is longer than {expected:,} characters"
    elif kind == "pattern":
        reason = f"{show(value)} is not valid here: expected {error.schema.get('description', expected)}"
    elif kind == "minimum":
        reason = f"must be at least {expected:,}, not {value}"
    elif kind == "uniqueItems":
        seen: list[Any] = []
        dups = []
        for v in value:
            if v in seen:
                dups.append(v)
            else:
                seen.append(v)
        reason = f"lists {dups[0]!r} more than once" if dups else "has repeated items"
    elif kind == "minItems":
        reason = "must not be empty"
    elif kind == "maxItems":
        reason = f"lists more than {expected} items"
    else:
        reason = error.message
    return [Issue(Code.MANIFEST_INVALID, reason, field=field)]


# --- the manifest ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PdfSpec:
    """One PDF per recipient: its file name and its text, both templates."""

    filename: str
    template: str


@dataclass(frozen=True, slots=True)
class Manifest:
    mailbox: str  # the sending PEC mailbox (envelope sender and From)
    subject: str  # templates (Jinja2, sandboxed, StrictUndefined)
    body_text: str
    body_html: str | None = None
    address_column: str = "pec"
    attachments: tuple[str, ...] = ()  # fixed: the same files to every recipient
    attachment_column: str | None = None  # per recipient: the column naming the file
    optional_columns: tuple[str, ...] = ()  # template variables allowed to be empty
    pdf: PdfSpec | None = None
    receipt_type: str = "completa"
    start_at: str | None = None  # ISO 8601 with its zone, as datetime.isoformat()
    dry_run: bool = False
    accepted_formats: tuple[str, ...] = DEFAULT_FORMATS
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    name: str | None = None
    description: str | None = None
    purpose: str | None = None  # finalità, recorded in the audit log when the campaign starts
    group_by: str | None = None  # a column: rows with the same value make one message (grouping)
    cc: str | None = None  # a fixed copy (CC) of every message, e.g. the company's archive box

    # --- reading ----------------------------------------------------------------------------------
    @classmethod
    def parse(cls, raw: bytes | str) -> Manifest:
        """From the manifest.json bytes; ManifestError says every problem, field by field."""
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ManifestError(
                    [Issue(Code.MANIFEST_INVALID, f"the manifest is not UTF-8 text (byte {exc.start:,})")]
                ) from None
        raw = raw.removeprefix("\ufeff")
        try:
            data = json.loads(raw, object_pairs_hook=_no_repeated_keys)
        except json.JSONDecodeError as exc:
            reason = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            raise ManifestError([Issue(Code.MANIFEST_INVALID, reason)]) from None
        except _RepeatedKey as exc:
            raise ManifestError([Issue(Code.MANIFEST_INVALID, "appears twice", field=str(exc))]) from None
        except RecursionError:
            raise ManifestError([Issue(Code.MANIFEST_INVALID, "not valid JSON: nested too deeply")]) from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """From the decoded JSON (or from `to_dict()` stored elsewhere)."""
        issues: list[Issue] = []
        for error in _validator().iter_errors(data):
            issues.extend(_describe(error))
        if issues:
            raise ManifestError(sorted(issues, key=lambda i: (i.field or "", i.reason)))
        values = dict(data)
        for name in ("attachments", "optional_columns", "accepted_formats"):
            if name in values:
                values[name] = tuple(values[name])
        if "pdf" in values:
            values["pdf"] = PdfSpec(**values["pdf"])
        if "start_at" in values:
            try:
                start = datetime.fromisoformat(values["start_at"].replace(" ", "T", 1))
                values["start_at"] = start.isoformat()
            except ValueError:
                issues.append(
                    Issue(
                        Code.MANIFEST_INVALID,
                        f"{show(data['start_at'])} is not a real date and time",
                        field="start_at",
                    )
                )
        manifest = cls(**values)
        issues.extend(manifest._rule_issues())
        if issues:
            raise ManifestError(issues)
        return manifest

    def _rule_issues(self) -> list[Issue]:
        """What the schema cannot say."""
        issues = []

        def add(field_name: str, reason: str) -> None:
            issues.append(Issue(Code.MANIFEST_INVALID, reason, field=field_name))

        problem = address_problem(self.mailbox)
        if problem:
            add("mailbox", f"{show(self.mailbox)} is not a valid address: {problem}")
        for i, name in enumerate(self.attachments):
            problem = attachment_name_problem(name)
            if problem:
                add(f"attachments[{i}]", f"{show(name)}: {problem}")
        named = [("address_column", self.address_column), ("attachment_column", self.attachment_column)]
        named += [(f"optional_columns[{i}]", c) for i, c in enumerate(self.optional_columns)]
        for field_name, column in named:
            if column is not None and not column_key(column):
                add(field_name, f"{show(column)} has no letter or digit to name a column")
        if self.attachment_column and column_key(self.attachment_column) == self.address_key:
            add("attachment_column", "the same column cannot hold the address and the attachment")
        if self.group_by is not None:
            if not column_key(self.group_by):
                add("group_by", f"{show(self.group_by)} has no letter or digit to name a column")
            elif self.group_by_key == self.attachment_key:
                add("group_by", "the rows cannot be grouped by the column naming each row's attachment")
        if self.cc is not None:
            problem = address_problem(self.cc)
            if problem:
                add("cc", f"{show(self.cc)} is not a valid address: {problem}")
            elif self.cc.casefold() == self.mailbox.casefold():
                add("cc", "the copy would go to the sending mailbox itself: it keeps what it sends already")
        return issues

    # --- writing ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, schema-valid, without empty optional fields: `from_dict` gives it back."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, PdfSpec):
                value = {"filename": value.filename, "template": value.template}
            elif isinstance(value, tuple):
                if not value and f.name != "accepted_formats":
                    continue
                value = list(value)
            out[f.name] = value
        return out

    # --- what the rows are read with ---------------------------------------------------------------
    @property
    def address_key(self) -> str:
        return column_key(self.address_column)

    @property
    def group_by_key(self) -> str | None:
        return column_key(self.group_by) if self.group_by else None

    @property
    def attachment_key(self) -> str | None:
        return column_key(self.attachment_column) if self.attachment_column else None

    @property
    def optional_keys(self) -> frozenset[str]:
        return frozenset(column_key(c) for c in self.optional_columns)

    @property
    def start_time(self) -> datetime | None:
        return datetime.fromisoformat(self.start_at) if self.start_at else None

    def address_of(self, row: _HasValues | Mapping[str, str]) -> str:
        """The recipient of a row (a Row or its values): its address column, trimmed."""
        values = row if isinstance(row, Mapping) else row.values
        return (values.get(self.address_key) or "").strip()

    def accepts(self, name: str) -> bool:
        return extension(name) in self.accepted_formats


class _HasValues(Protocol):
    """A recipients.Row, as far as `Manifest.address_of` reads it (recipients imports this module)."""

    @property
    def values(self) -> Mapping[str, str]: ...


class _RepeatedKey(ValueError):
    pass


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(key)
        out[key] = value
    return out

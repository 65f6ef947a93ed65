"""One recipient's PEC, rendered from the manifest's templates and the recipient's row.

Templates run in Jinja2's sandbox with StrictUndefined (a variable that is not a column is an
error, never an empty string); HTML bodies are autoescaped. Italian filters: `data` (dates)
and `importo` (amounts). The message is built with `email.message.EmailMessage` (policy SMTP,
CRLF): From is the mailbox, To is the row's address alone, and no value from the row can reach
a header other than the Subject, which is rendered on one line. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import cache, lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import concat

from pecflow.campaign_issues import Code, Issue, ManifestError, RenderError
from pecflow.campaign_manifest import Manifest, address_problem, extension
from pecflow.campaign_pdf import text_pdf

MESI = ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre",
        "ottobre", "novembre", "dicembre")
GIORNI = ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica")
DATE_PRESETS = {"breve": "%d/%m/%Y", "lungo": "%d %B %Y", "esteso": "%A %d %B %Y"}
MAX_SEQUENCE = 1_000_000          # the longest string or list a template may build with * (sandbox)

# by extension; anything else (a .eml too: base64 is not allowed on message/rfc822) is octet-stream
_CONTENT_TYPES = {
    "pdf": "application/pdf", "p7m": "application/pkcs7-mime", "p7s": "application/pkcs7-signature",
    "xml": "application/xml", "txt": "text/plain", "csv": "text/csv", "jpg": "image/jpeg",
    "jpeg": "image/jpeg", "png": "image/png", "tif": "image/tiff", "tiff": "image/tiff",
    "zip": "application/zip",
    "odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html", "json": "application/json",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_UNSAFE_NAME = re.compile(r'[<>:"/\\|?*]')
_MESSAGE_ID = re.compile(r"^<[!-;=?-~]+@[!-;=?-~]+>$")  # printable ASCII, no <, > or spaces


# --- Italian filters --------------------------------------------------------------------------------
_IT_DATE = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{2,4})(?:[ T](\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?)?$")
_STRFTIME = re.compile(r"%(-?)(.)")
_PLAIN_AMOUNT = re.compile(r"-?\d{1,15}(?:[.,]\d{1,2})?")
_AMOUNT_NOISE = re.compile(r"[\s\u00a0€]|EUR", re.I)


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        raise ValueError("data: the value is empty")
    match = _IT_DATE.match(text)
    try:
        if match:
            day, _, month, year, hour, minute, second = match.groups()
            if len(year) != 4:
                raise ValueError(f"data: {text!r} has a {len(year)}-digit year: write it with four "
                                 "(02/03/2026)")
            if hour is None:
                return date(int(year), int(month), int(day))
            return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError as exc:
        if str(exc).startswith("data:"):
            raise
        raise ValueError(f"data: {text!r} is not a date (write 02/03/2026 or 2026-03-02)") from None


def data(value: Any, formato: str = "%d/%m/%Y") -> str:
    """A date as Italians write it: 02/03/2026 by default; `formato` is a strftime pattern with
    Italian names (%B marzo, %b mar, %A lunedì, %a lun) or a preset: 'breve' 02/03/2026,
    'lungo' 2 marzo 2026, 'esteso' lunedì 2 marzo 2026. Beside a month or day name, %d has no
    leading zero, as in Italian prose ('%d %B %Y' → 2 marzo 2026); %-d never has one."""
    if isinstance(value, str):
        return _data_of_text(value, formato)   # a campaign's dates repeat: remembered
    return _format_date(_as_date(value), formato)


@lru_cache(maxsize=128)
def _data_of_text(value: str, formato: str) -> str:
    return _format_date(_as_date(value), formato)


def _format_date(when: date, formato: str) -> str:
    pattern = DATE_PRESETS.get(formato, formato)
    prose = "%B" in pattern or "%A" in pattern

    def one(match: re.Match) -> str:
        strip, code = match.groups()
        strip = strip or (prose and code == "d")
        if code == "%":
            return "%"
        if code == "B":
            out = MESI[when.month - 1]
        elif code == "b":
            out = MESI[when.month - 1][:3]
        elif code == "A":
            out = GIORNI[when.weekday()]
        elif code == "a":
            out = GIORNI[when.weekday()][:3]
        else:
            out = when.strftime("%" + code)
        return (out.lstrip("0") or "0") if strip else out

    return _STRFTIME.sub(one, pattern)


def _as_amount(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"importo: {value!r} is not an amount")
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    original = str(value)
    if _PLAIN_AMOUNT.fullmatch(original):
        return Decimal(original.replace(",", "."))          # 1500, 1500.5, 1500,50: the usual case
    text = _AMOUNT_NOISE.sub("", original.strip())
    if not text:
        raise ValueError("importo: the value is empty")
    if "," in text and "." in text:
        # the last separator is the decimal one: 1.500,00 (Italian) or 1,500.00 (English)
        if text.rfind(",") > text.rfind("."):
            text = text.replace(".", "").replace(",", ".")
        else:
            text = text.replace(",", "")
    elif text.count(",") == 1:
        text = text.replace(",", ".")                      # 1500,5
    elif "," in text:
        text = text.replace(",", "")                       # 1,500,000
    elif re.fullmatch(r"[+-]?\d{1,3}(?:\.\d{3})+", text):
        text = text.replace(".", "")                       # 1.500 and 12.345.678: Italian thousands
    if not re.fullmatch(r"[+-]?\d+(?:\.\d+)?", text):
        raise ValueError(f"importo: {original.strip()!r} is not an amount (write 1500,00 or 1.500,00)")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"importo: {original.strip()!r} is not an amount") from None


_CENT = Decimal("0.01")
_ITALIAN_NUMBER = str.maketrans(",.", ".,")


def importo(value: Any, simbolo: bool = True) -> str:
    """An amount in euro as Italians write it: 1500, "1500.5", "1.500,00" → 1.500,00 €
    (`simbolo=False`: 1.500,00). Rounded half up to the cent."""
    amount = _as_amount(value).quantize(_CENT, rounding=ROUND_HALF_UP)
    if amount.is_zero():
        amount = amount.copy_abs()                         # never "-0,00"
    text = f"{amount:,.2f}".translate(_ITALIAN_NUMBER)     # 1,500.00 → 1.500,00
    return f"{text} €" if simbolo else text


# --- the sandbox ------------------------------------------------------------------------------------
class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, also refusing to build huge strings or numbers with * and **."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 100:
            raise SecurityError("exponent too large")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int) \
                        and len(sequence) * times > MAX_SEQUENCE:
                    raise SecurityError("the result would be too large")
        return super().call_binop(context, operator, left, right)


@cache
def environment(html: bool = False) -> SandboxedEnvironment:
    """The template environment: sandboxed, StrictUndefined, autoescaped for HTML only."""
    env = _Sandbox(undefined=StrictUndefined, autoescape=html, keep_trailing_newline=True,
                   trim_blocks=True, lstrip_blocks=True)
    env.filters["data"] = data
    env.filters["importo"] = importo
    return env


_GLOBALS = dict(environment().globals)


# --- the manifest's templates --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str                    # one line
    text: str
    html: str | None = None
    pdf_filename: str | None = None
    pdf_text: str | None = None


@dataclass(frozen=True, slots=True)
class Templates:
    """The manifest's templates, compiled once; `variables` are the merge fields they use."""

    compiled: tuple[tuple[str, Any], ...]    # (manifest field, jinja2 Template)
    variables: frozenset[str]
    uses: tuple[tuple[str, frozenset[str]], ...] = ()    # (manifest field, the variables it uses)

    def used_by(self, variable: str) -> str | None:
        """The first template (manifest field) using `variable`."""
        return next((field for field, names in self.uses if variable in names), None)

    def render(self, values: Mapping[str, str]) -> Rendered:
        """Every template for one row; RenderError names the template that failed and why."""
        out: dict[str, str] = {}
        # one context for all the templates of the row, globals included (what render() does
        # for each template, at twice the cost)
        context = {**_GLOBALS, **values}
        for field, template in self.compiled:
            try:
                out[field] = concat(template.root_render_func(template.new_context(context, shared=True)))
            except Exception as exc:  # noqa: BLE001 - whatever a template raises is this row's error
                raise RenderError(field, _render_reason(exc)) from None
        subject = one_line(out["subject"])
        if not subject:
            raise RenderError("subject", "the subject is empty")
        pdf_filename = None
        if "pdf.filename" in out:
            pdf_filename = safe_filename(out["pdf.filename"], default="documento", path=False)
            if not pdf_filename.lower().endswith(".pdf"):
                pdf_filename += ".pdf"
        return Rendered(subject, out["body_text"], out.get("body_html"), pdf_filename,
                        out.get("pdf.template"))


def _render_reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, SecurityError):
        return f"not allowed in a template: {text}"
    return text


@lru_cache(maxsize=32)
def compile_templates(manifest: Manifest) -> Templates:
    """Compile every template of `manifest`; ManifestError lists each syntax error with its line."""
    sources = [("subject", manifest.subject, False), ("body_text", manifest.body_text, False),
               ("body_html", manifest.body_html, True)]
    if manifest.pdf is not None:
        sources += [("pdf.filename", manifest.pdf.filename, False),
                    ("pdf.template", manifest.pdf.template, False)]
    compiled, uses, issues = [], [], []
    known = set(environment().globals)
    for field, source, html in sources:
        if source is None:
            continue
        env = environment(html)
        try:
            tree = env.parse(source)
            uses.append((field, frozenset(meta.find_undeclared_variables(tree) - known)))
            compiled.append((field, env.from_string(tree)))
        except TemplateSyntaxError as exc:
            lines = source.splitlines()
            where = ""
            if 0 < (exc.lineno or 0) <= len(lines):
                where = f" (in: {lines[exc.lineno - 1].strip()[:80]!r})"
            issues.append(Issue(Code.TEMPLATE_SYNTAX, f"line {exc.lineno}: {exc.message}{where}",
                                field=field))
    if issues:
        raise ManifestError(issues)
    return Templates(tuple(compiled), frozenset().union(*(names for _, names in uses)), tuple(uses))


# --- the message ----------------------------------------------------------------------------------------
def one_line(text: str) -> str:
    """`text` on one line: control characters and line breaks become single spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())


def safe_filename(name: str, default: str = "allegato", *, path: bool = True) -> str:
    """A file name fit for a MIME header and any file system: on one line, without control
    characters or <>:"/\\|?*. `path`: `name` is a path, keep its last part."""
    if path:
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = one_line(_UNSAFE_NAME.sub("_", name)).strip(". ")
    return name[:200] or default


def content_type(name: str) -> tuple[str, str]:
    maintype, _, subtype = _CONTENT_TYPES.get(extension(name), "application/octet-stream").partition("/")
    return maintype, subtype


def row_values(manifest: Manifest, row) -> dict[str, str]:
    """The values a row renders with: a Row or its values (optional columns default to '',
    as stores may drop empty strings)."""
    values = row if isinstance(row, Mapping) else row.values
    return {**dict.fromkeys(manifest.optional_keys, ""), **values}


def render_message(manifest: Manifest, row, *, mailbox: str, message_id: str,
                   attachments: Iterable[tuple[str, bytes]] = (), date: datetime,
                   templates: Templates | None = None) -> bytes:
    """The PEC to submit for one row: RFC 5322 bytes with CRLF line ends.

    `attachments` are the fixed and per-recipient files, already read, as (file name, bytes);
    the generated PDF (manifest.pdf) is added after them. RenderError when this row cannot be
    rendered; ValueError for a wrong mailbox, Message-ID or date.
    """
    problem = address_problem(mailbox)
    if problem:
        raise ValueError(f"mailbox {mailbox!r} is not a valid address: {problem}")
    if not _MESSAGE_ID.match(message_id):
        raise ValueError(f"{message_id!r} is not a Message-ID like <id@domain>")
    if date.tzinfo is None:
        raise ValueError("the message date needs a time zone")
    values = row_values(manifest, row)
    recipient = manifest.address_of(values)
    problem = address_problem(recipient)
    if problem:
        raise RenderError("to", f"{recipient!r} is not a valid address: {problem}")
    rendered = (templates or compile_templates(manifest)).render(values)

    message = EmailMessage(policy=SMTP)
    message["From"] = mailbox
    message["To"] = recipient
    _set_subject(message, rendered.subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["X-TipoRicevuta"] = manifest.receipt_type
    message.set_content(rendered.text, cte="quoted-printable")
    if rendered.html is not None:
        message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    for name, content in attachments:
        maintype, subtype = content_type(name)
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=safe_filename(name))
    if rendered.pdf_text is not None:
        message.add_attachment(text_pdf(rendered.pdf_text), maintype="application", subtype="pdf",
                               filename=rendered.pdf_filename)
    return message.as_bytes()


def _set_subject(message: EmailMessage, subject: str) -> None:
    """The Subject, folded by us: the email package's own folding adds or loses spaces around
    encoded words and long words. Plain ASCII is folded at its spaces; anything else (or a
    word too long for a line) goes as RFC 2047 encoded words cut between characters."""
    plain = subject.isascii() and max(map(len, subject.split(" "))) <= 60
    encoded = Header(subject, "us-ascii" if plain else "utf-8", maxlinelen=76,
                     header_name="Subject").encode(linesep="\r\n")
    message.set_raw("Subject", encoded)      # already folded: stored and written as it is


# --- how big it will be --------------------------------------------------------------------------------
_HIGH = bytes(range(128, 256))
_HEADERS = 1500              # headers, MIME boundaries and part headers of the message itself
_PART = 300                  # headers of one attachment part


def base64_size(size: int) -> int:
    """Bytes of `size` bytes once base64-encoded in 76-character CRLF lines."""
    encoded = (size + 2) // 3 * 4
    return encoded + (encoded + 75) // 76 * 2


def _qp_size(text: str) -> int:
    raw = text.encode("utf-8")
    escaped = len(raw) - len(raw.translate(None, _HIGH)) + raw.count(b"=")
    return len(raw) + 2 * escaped + 3 * (len(raw) // 72) + text.count("\n")


def estimated_size(rendered: Rendered, attachment_sizes: Iterable[int] = (), pdf_size: int = 0) -> int:
    """An upper estimate of the submitted message's size, before the attachments are read."""
    size = _HEADERS + 3 * len(rendered.subject.encode("utf-8")) + _qp_size(rendered.text)
    if rendered.html is not None:
        size += _qp_size(rendered.html)
    for part in [*attachment_sizes, *([pdf_size] if rendered.pdf_text is not None else [])]:
        size += _PART + base64_size(part)
    return size

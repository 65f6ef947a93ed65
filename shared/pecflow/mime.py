"""A lazy MIME reader over the raw bytes of a message.

The standard library's parser walks every line of every part in Python. PEC messages
carry large base64 attachments we rarely need, so this reader finds header blocks and
multipart boundaries with `bytes.find` (in C) and keeps only offsets into the original
bytes: a part's headers are parsed when asked for, its body decoded only when asked for.
Lenient like a mail client (missing closing boundaries, LF or CRLF, stray text), but every
departure from the format is reported in `defects`. All work is bounded.
"""

from __future__ import annotations

import binascii
import re
from email.header import decode_header as _decode_header_words
from email.utils import decode_rfc2231
from urllib.parse import unquote_to_bytes

MAX_HEADER_FIELDS = 2000      # header fields kept per entity; the rest is reported, not parsed
MAX_PARTS = 1000              # sub-parts read from one multipart
MAX_DEPTH = 40                # multipart / message nesting followed


class Headers:
    """Header fields of one entity: case-insensitive, in order, values unfolded (str, latin-1)."""

    __slots__ = ("fields", "_index")

    def __init__(self, fields: list[tuple[str, str]]):
        self.fields = fields
        self._index: dict[str, list[str]] | None = None

    def _map(self) -> dict[str, list[str]]:
        if self._index is None:
            index: dict[str, list[str]] = {}
            for name, value in self.fields:
                index.setdefault(name.lower(), []).append(value)
            self._index = index
        return self._index

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._map().get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return self._map().get(name.lower(), [])

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._map()

    def __len__(self) -> int:
        return len(self.fields)


# the start of a field: name (printable ASCII but ':'), optional blanks, ':'
_FIELD_START = re.compile(r"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_LINE_BREAK = re.compile(r"\r*\n")


def _end_of_field(block: str, pos: int, size: int) -> int:
    """Where the field whose first line starts at `pos` ends (its continuation lines included)."""
    nl = block.find("\n", pos)
    while nl != -1 and nl + 1 < size and block[nl + 1] in " \t":
        nl = block.find("\n", nl + 1)
    return size if nl == -1 else nl + 1


def parse_header_block(block: str) -> tuple[list[tuple[str, str]], int, list[str]]:
    """Parse header lines (already decoded as latin-1, LF or CRLF).

    Returns (fields, consumed, defects) where `consumed` is how many characters of
    `block` belong to the header section: parsing stops at the first line that is
    neither a field nor a continuation (that line starts the body, as mail clients do).
    """
    fields: list[tuple[str, str]] = []
    defects: list[str] = []
    size = len(block)
    pos = 0
    if block[:1] in (" ", "\t") and size:
        defects.append("header block starts with a continuation line")
        pos = _end_of_field(block, 0, size)
    dropped = 0
    while pos < size:
        match = _FIELD_START.match(block, pos)
        if match is None:
            break
        end = _end_of_field(block, match.end(), size)
        if len(fields) < MAX_HEADER_FIELDS:
            value = block[match.end():end]
            nl = value.find("\n")
            if nl != -1 and nl < len(value) - 1:
                value = _LINE_BREAK.sub("", value)  # a folded field: unfold it
            fields.append((match.group(1), value.strip()))
        else:
            dropped += 1
        pos = end
    if dropped:
        defects.append(f"{dropped} header fields beyond the first {MAX_HEADER_FIELDS} ignored")
    return fields, pos, defects


_PARAM = re.compile(
    r"""\s*;\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)""", re.S)


def parse_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """('type/subtype' lower-cased, params with lower-cased names, RFC 2231 decoded)."""
    if not value:
        return "text/plain", {}
    head, _, rest = value.partition(";")
    ctype = head.strip().lower()
    if "/" not in ctype or " " in ctype:
        ctype = "text/plain" if not ctype else ctype
    return ctype, parse_params(";" + rest) if rest else {}


def parse_disposition(value: str | None) -> tuple[str, dict[str, str]]:
    if not value:
        return "", {}
    head, _, rest = value.partition(";")
    return head.strip().lower(), parse_params(";" + rest) if rest else {}


def parse_params(text: str) -> dict[str, str]:
    raw: list[tuple[str, str]] = []
    for match in _PARAM.finditer(text):
        name = match.group(1).lower()
        value = match.group(2).strip()
        if value.startswith('"'):
            value = value[1:-1] if value.endswith('"') and len(value) > 1 else value[1:]
            value = re.sub(r"\\(.)", r"\1", value) if "\\" in value else value
        raw.append((name, value))
    if not any("*" in name for name, _ in raw):
        params: dict[str, str] = {}
        for name, value in raw:
            params.setdefault(name, value)
        return params
    try:
        # RFC 2231: name*=charset'lang'pct-encoded, name*0=..., name*1*=...
        decoded = decode_rfc2231_params(raw)
    except Exception:  # noqa: BLE001 - malformed continuations: keep what is literal
        decoded = {name.rstrip("*"): value for name, value in raw}
    return decoded


def decode_rfc2231_params(raw: list[tuple[str, str]]) -> dict[str, str]:
    pieces: dict[str, list[tuple[int, str, bool]]] = {}
    params: dict[str, str] = {}
    for name, value in raw:
        encoded = name.endswith("*")
        base = name.rstrip("*")
        number = "0"
        if "*" in base:
            base, _, number = base.partition("*")
        if not encoded and number == "0" and "*" not in name:
            params.setdefault(base, value)
        elif number.isdigit():
            pieces.setdefault(base, []).append((int(number), value, encoded))
    for base, parts in pieces.items():
        parts.sort(key=lambda item: item[0])
        charset = None
        data = bytearray()
        for index, (_, value, encoded) in enumerate(parts):
            if encoded:
                if index == 0 and value.count("'") >= 2:
                    charset, _lang, value = decode_rfc2231(value)
                data += unquote_to_bytes(value)
            else:
                data += value.encode("latin-1", errors="replace")
        try:
            text = bytes(data).decode(charset or "us-ascii")
        except (LookupError, ValueError):  # ValueError: unknown or NUL-laden charset names
            text = bytes(data).decode("utf-8") if _is_utf8(bytes(data)) else bytes(data).decode("latin-1")
        params[base] = text  # the extended form wins over a plain duplicate
    return params


_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def decode_text(value: str | None) -> str | None:
    """A header value as text: RFC 2047 encoded words decoded, raw 8-bit read as UTF-8 or latin-1."""
    if value is None:
        return None
    if not value.isascii():
        raw = value.encode("latin-1", errors="replace")
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            value = raw.decode("cp1252", errors="replace")
    if "=?" not in value or not _ENCODED_WORD.search(value):
        return value
    try:
        words = _decode_header_words(value)
    except Exception:  # noqa: BLE001 - malformed encoded words stay as they are
        return value
    out = []
    for chunk, charset in words:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        try:
            out.append(chunk.decode(charset or "ascii"))
        except (LookupError, ValueError):  # ValueError: unknown or NUL-laden charset names
            out.append(chunk.decode("utf-8", errors="replace") if _is_utf8(chunk) else chunk.decode("cp1252", "replace"))
    return "".join(out)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _find_blank_line(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """(end of headers, start of body) for the entity at raw[start:end]."""
    if raw.startswith(b"\n", start):
        return start, start + 1
    if raw.startswith(b"\r\n", start):
        return start, start + 2
    lf = raw.find(b"\n\n", start, end)
    crlf = raw.find(b"\n\r\n", start, end)
    if lf == -1 and crlf == -1:
        return end, end
    if crlf != -1 and (lf == -1 or crlf < lf):
        return crlf + 1, crlf + 3
    return lf + 1, lf + 2


class Part:
    """One MIME entity: raw[start:end], header section then body."""

    __slots__ = ("raw", "start", "end", "depth", "body_start", "_headers", "_ctype", "_params",
                 "_children", "_message", "defects")

    def __init__(self, raw: bytes, start: int = 0, end: int | None = None, depth: int = 0):
        self.raw = raw
        self.start = start
        self.end = len(raw) if end is None else end
        self.depth = depth
        self.defects: list[str] = []
        self._headers: Headers | None = None
        self._ctype: str | None = None
        self._params: dict[str, str] | None = None
        self._children: list[Part] | None = None
        self._message: Part | None = None
        self.body_start = -1

    # -- headers ---------------------------------------------------------------------------
    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._parse_headers()
        return self._headers

    def _parse_headers(self) -> None:
        hend, bstart = _find_blank_line(self.raw, self.start, self.end)
        block = self.raw[self.start:hend].decode("latin-1")
        fields, consumed, defects = parse_header_block(block)
        self.defects.extend(defects)
        if consumed < len(block):
            # a line that is not a header field: the body starts there
            if fields or block[:consumed].strip():
                self.defects.append("header section not ended by a blank line")
            bstart = self.start + consumed
        self._headers = Headers(fields)
        self.body_start = bstart

    @property
    def body(self) -> bytes:
        if self._headers is None:
            self._parse_headers()
        return self.raw[self.body_start:self.end]

    @property
    def body_size(self) -> int:
        if self._headers is None:
            self._parse_headers()
        return self.end - self.body_start

    @property
    def content_type(self) -> str:
        if self._ctype is None:
            self._ctype, self._params = parse_content_type(self.headers.get("content-type"))
        return self._ctype

    @property
    def params(self) -> dict[str, str]:
        if self._params is None:
            self._ctype, self._params = parse_content_type(self.headers.get("content-type"))
        return self._params

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def disposition(self) -> tuple[str, dict[str, str]]:
        return parse_disposition(self.headers.get("content-disposition"))

    @property
    def filename(self) -> str | None:
        """The part's file name (Content-Disposition filename, else Content-Type name), decoded."""
        _, dparams = self.disposition
        name = dparams.get("filename") or self.params.get("name")
        if name is None:
            return None
        return decode_text(name).strip() or None

    @property
    def transfer_encoding(self) -> str:
        return (self.headers.get("content-transfer-encoding") or "7bit").strip().lower()

    # -- structure ------------------------------------------------------------------------
    @property
    def children(self) -> list[Part]:
        """Sub-parts of a multipart (empty for anything else)."""
        if self._children is None:
            self._children = self._split() if self.is_multipart else []
        return self._children

    @property
    def message(self) -> Part | None:
        """The entity inside a message/rfc822 part (None for anything else)."""
        if self._message is None and self.content_type == "message/rfc822":
            if self.depth >= MAX_DEPTH:
                self.defects.append(f"message nested deeper than {MAX_DEPTH} levels: not followed")
                return None
            body = self.body
            if self.transfer_encoding in ("base64", "quoted-printable"):
                self.defects.append(f"message/rfc822 part with {self.transfer_encoding} transfer encoding")
                inner = decode_body(body, self.transfer_encoding)[0]
                self._message = Part(inner, 0, len(inner), self.depth + 1)
            else:
                self._message = Part(self.raw, self.body_start, self.end, self.depth + 1)
        return self._message

    def _split(self) -> list[Part]:
        if self.depth >= MAX_DEPTH:
            self.defects.append(f"multipart nested deeper than {MAX_DEPTH} levels: not followed")
            return []
        boundary = self.params.get("boundary")
        if not boundary:
            self.defects.append(f"{self.content_type} without a boundary")
            return []
        raw, end = self.raw, self.end
        start = self.body_start
        delim = b"--" + boundary.encode("latin-1", errors="replace")
        dlen = len(delim)
        parts: list[Part] = []
        part_start = -1
        closed = False
        # a delimiter is "--boundary" at the start of a line, followed by "--", blanks or EOL
        pos = start
        if raw.startswith(delim, pos):
            hit = pos
        else:
            hit = raw.find(b"\n" + delim, pos, end)
            hit = hit + 1 if hit != -1 else -1
        while hit != -1:
            after = hit + dlen
            tail = raw[after:after + 2]
            is_close = tail == b"--"
            if not is_close and tail and tail[:1] not in b" \t\r\n":
                hit = raw.find(b"\n" + delim, after, end)
                hit = hit + 1 if hit != -1 else -1
                continue
            if part_start != -1:
                pend = hit - 1 if hit > start and raw[hit - 1] == 0x0A else hit
                if pend > part_start and raw[pend - 1] == 0x0D:
                    pend -= 1
                if len(parts) >= MAX_PARTS:
                    self.defects.append(f"more than {MAX_PARTS} parts in one multipart: the rest ignored")
                    closed = True
                    break
                parts.append(Part(raw, part_start, max(pend, part_start), self.depth + 1))
            if is_close:
                closed = True
                break
            nl = raw.find(b"\n", after, end)
            part_start = end if nl == -1 else nl + 1
            hit = raw.find(b"\n" + delim, part_start - 1, end)
            hit = hit + 1 if hit != -1 else -1
        if not closed:
            if part_start == -1:
                self.defects.append(f"{self.content_type}: boundary never found")
            else:
                parts.append(Part(raw, part_start, end, self.depth + 1))
                self.defects.append(f"{self.content_type}: closing boundary missing")
        return parts

    def walk(self, *, into_messages: bool = False):
        """This part and every part below it, depth first, in order."""
        stack = [self]
        while stack:
            part = stack.pop()
            yield part
            if part.is_multipart:
                stack.extend(reversed(part.children))
            elif into_messages and part.content_type == "message/rfc822":
                inner = part.message
                if inner is not None:
                    stack.append(inner)

    def all_defects(self) -> list[str]:
        """Defects found so far in this part and the parts already read below it."""
        out = list(self.defects)
        for child in self._children or ():
            out.extend(child.all_defects())
        if self._message is not None:
            out.extend(self._message.all_defects())
        return out

    # -- content --------------------------------------------------------------------------
    def decoded(self) -> bytes:
        """The body with its Content-Transfer-Encoding removed."""
        data, defect = decode_body(self.body, self.transfer_encoding)
        if defect:
            self.defects.append(defect)
        return data

    def text(self) -> str:
        """The body as text, lines ended by "\n": decoded with its charset (unknown or wrong
        charsets read as UTF-8, else windows-1252)."""
        data = self.decoded()
        charset = (self.params.get("charset") or "us-ascii").strip().strip('"').lower()
        try:
            text = data.decode(charset)
        except (LookupError, ValueError):  # ValueError: unknown or NUL-laden charset names
            text = data.decode("utf-8") if _is_utf8(data) else data.decode("cp1252", errors="replace")
        return text.replace("\r\n", "\n")


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def decode_body(body: bytes, encoding: str) -> tuple[bytes, str | None]:
    """(decoded bytes, defect or None) for a Content-Transfer-Encoding."""
    if encoding == "base64":
        try:
            return binascii.a2b_base64(body), None
        except binascii.Error:
            # bad padding or a stray character: decode what is there, as mail clients do
            clean = _B64_JUNK.sub(b"", body)
            clean = clean[: len(clean) - len(clean) % 4]
            try:
                return binascii.a2b_base64(clean), "base64 body damaged: decoded what could be read"
            except binascii.Error:
                return b"", "base64 body unreadable"
    if encoding == "quoted-printable":
        return binascii.a2b_qp(body), None
    if encoding in ("7bit", "8bit", "binary", ""):
        return body, None
    return body, f"unknown Content-Transfer-Encoding {encoding!r}: body left as is"

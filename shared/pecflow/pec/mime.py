"""A lazy MIME reader over the raw bytes of a message.

The standard library's parser walks every line of every part in Python. PEC messages
carry large base64 attachments we rarely need, so this reader finds header blocks and
multipart boundaries with `bytes.find` (in C) and keeps only offsets into the original
bytes: a part's headers are parsed when asked for, its body decoded only when asked for.
Lenient like a mail client (missing closing boundaries, LF or CRLF, stray text), but every
departure from the format is reported in `defects`.

A sender controls every byte, so all work is bounded and linear in the input: header
sections and field values are capped, one budget of parts (and of decoded nested
messages) is shared by a whole message tree, regular expressions cannot backtrack, and
text is decoded only with charsets whose codecs are linear C code; any other charset
(punycode, idna, bytes-to-bytes codecs, unknown names) is reported and the text read as
UTF-8, else Windows-1252. Decoded text never holds lone surrogates.
"""

from __future__ import annotations

import binascii
import encodings
import enum
import functools
import re
from collections import deque
from collections.abc import Iterator
from encodings.aliases import aliases as _CODEC_ALIASES
from typing import Final, Literal, overload
from urllib.parse import unquote_to_bytes

MAX_HEADER_FIELDS = 2000  # header fields kept per entity; the rest is reported, not parsed
MAX_FIELD_CHARS = 256 * 1024  # one field's value; longer values are cut
MAX_HEADER_CHARS = 8 * 1024 * 1024  # values kept from one header section; past it fields are skipped
MAX_PARTS = 1000  # sub-parts read from one multipart
MAX_TOTAL_PARTS = 2_000  # parts read from one message tree, nested messages included
MAX_TOTAL_FIELDS = 20_000  # header fields kept from one message tree
MAX_TOTAL_WORDS = 20_000  # RFC 2047 encoded words decoded for one message tree
MAX_TOTAL_PARAMS = 20_000  # Content-Type / Content-Disposition parameters read from one message tree
MAX_DEPTH = 40  # multipart / message nesting followed
MAX_PARAMS = 1000  # parameters read from one header field (RFC 2231 pieces included)


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


# -- charsets ------------------------------------------------------------------------------
# Codecs decoded with: C implementations, timed linear in their input. Others are refused:
# punycode and idna are quadratic Python code, and hex, zlib, base64, uu, rot13 ... are not
# charsets at all.
_LINEAR_CODECS = frozenset(
    (
        "ascii",
        "latin_1",
        "utf_8",
        "utf_8_sig",
        "utf_7",
        "utf_16",
        "utf_16_le",
        "utf_16_be",
        "utf_32",
        "utf_32_le",
        "utf_32_be",
        *(f"iso8859_{n}" for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)),
        *(f"cp{n}" for n in (437, 850, 852, 866, 874, 1250, 1251, 1252, 1253, 1254, 1255, 1256, 1257, 1258)),
        "koi8_r",
        "koi8_u",
        "koi8_t",
        "tis_620",
        "mac_roman",
        "mac_latin2",
        "shift_jis",
        "cp932",
        "euc_jp",
        "shift_jis_2004",
        "shift_jisx0213",
        "euc_jis_2004",
        "euc_jisx0213",
        "iso2022_jp",
        "iso2022_jp_1",
        "iso2022_jp_2",
        "iso2022_jp_3",
        "iso2022_jp_ext",
        "iso2022_jp_2004",
        "gb2312",
        "gbk",
        "gb18030",
        "hz",
        "big5",
        "big5hkscs",
        "cp950",
        "euc_kr",
        "cp949",
        "johab",
        "iso2022_kr",
    )
)
_SURROGATES = re.compile("[\ud800-\udfff]")
_CHARSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]*+")


@functools.lru_cache(maxsize=512)
def _codec_for(name: str) -> str | None:
    norm = encodings.normalize_encoding(name).lower()
    norm = _CODEC_ALIASES.get(norm, norm)
    return norm if norm in _LINEAR_CODECS else None


def safe_codec(charset: str | None) -> str | None:
    """The Python codec for a MIME charset name, or None unless it is a known linear one.

    Names are resolved with the codec registry's alias table only: nothing is imported or
    looked up for a name that is not on the list."""
    if not charset:
        return None
    name = charset.strip().strip('"').strip()
    if len(name) > 40 or not _CHARSET_NAME.fullmatch(name):
        return None
    return _codec_for(name)


def clean_text(text: str) -> str:
    """`text` with lone surrogates (from UTF-7, say) replaced by U+FFFD: always UTF-8-encodable."""
    if not text.isascii() and _SURROGATES.search(text):
        return _SURROGATES.sub("\ufffd", text)
    return text


def raw_text(value: str) -> str:
    """A header value kept as latin-1 (raw bytes) as text: 8-bit read as UTF-8 or Windows-1252."""
    return value if value.isascii() else _utf8_or_cp1252(value.encode("latin-1", errors="replace"))


def _utf8_or_cp1252(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def decode_bytes(data: bytes, charset: str | None, problems: list[str] | None = None) -> str:
    """`data` as text in `charset` (US-ASCII when None). Bytes the charset cannot read, and
    charsets that are not known linear codecs, are read as UTF-8, else Windows-1252; the
    latter is reported in `problems`."""
    codec = "ascii" if charset is None else safe_codec(charset)
    if codec is None:
        assert charset is not None  # None is read as US-ASCII
        if problems is not None:
            problems.append(f"charset {charset.strip()[:40]!r} not decoded: text read as UTF-8/Windows-1252")
        return _utf8_or_cp1252(data)
    try:
        return clean_text(data.decode(codec))
    except UnicodeDecodeError:  # bytes the declared charset cannot read: a wrong label
        return _utf8_or_cp1252(data)


# -- header fields -----------------------------------------------------------------------------
# Fields are found in the message's bytes in place (nothing but kept values is copied).
# the start of a field: name (printable ASCII but ':'), optional blanks, ':'
_FIELD_START = re.compile(rb"([\x21-\x39\x3b-\x7e]++)[ \t]*+:")
# the end of a field: a line break not followed by a continuation line
_FIELD_END = re.compile(rb"\n(?![ \t])")
# the first line that is neither a field nor a continuation
_NOT_A_FIELD = re.compile(rb"\n(?![ \t]|[\x21-\x39\x3b-\x7e]++[ \t]*+:)")
# a line break with the CRs before it (the lookbehind starts each match at a run's first CR)
_LINE_BREAK = re.compile(r"(?<!\r)\r*+\n")


def _read_fields(
    raw: bytes, pos: int, size: int, budget: _Budget | None = None
) -> tuple[list[tuple[str, str]], int, list[str]]:
    """The fields of the header lines in raw[pos:size]: see `parse_header_block`. Each
    field kept costs some Python work: `budget` (the message's) bounds their number."""
    fields: list[tuple[str, str]] = []
    defects: list[str] = []
    kept = 0
    limit = MAX_HEADER_FIELDS if budget is None else min(MAX_HEADER_FIELDS, budget.fields)
    if pos < size and raw[pos] in b" \t":
        defects.append("header block starts with a continuation line")
        found = _FIELD_END.search(raw, pos, size)
        pos = size if found is None else found.end()
    while pos < size:
        match = _FIELD_START.match(raw, pos, size)
        if match is None:
            break
        if len(fields) >= limit or kept > MAX_HEADER_CHARS:
            # the rest is skipped in C: find where the section ends, count its fields
            found = _NOT_A_FIELD.search(raw, pos, size)
            stop = size if found is None else found.end()
            lines = 1 + raw.count(b"\n", pos, stop - 1)
            skipped = lines - raw.count(b"\n ", pos, stop) - raw.count(b"\n\t", pos, stop)
            defects.append(
                f"{skipped} header fields beyond the first {len(fields)} ignored"
                + (
                    ""
                    if len(fields) < limit or limit == MAX_HEADER_FIELDS
                    else f" (at most {MAX_TOTAL_FIELDS} are read from one message)"
                )
            )
            if budget is not None:
                budget.fields -= len(fields)
            return fields, stop, defects
        start = match.end()
        found = _FIELD_END.search(raw, start, size)
        end = size if found is None else found.end()
        name = match.group(1).decode("latin-1")
        if end - start > MAX_FIELD_CHARS:
            defects.append(
                f"{name[:40]} header field of {end - start} characters: only the first {MAX_FIELD_CHARS} read"
            )
            value = raw[start : start + MAX_FIELD_CHARS].decode("latin-1")
        else:
            value = raw[start:end].decode("latin-1")
        nl = value.find("\n")
        if nl != -1 and nl < len(value) - 1:
            value = _LINE_BREAK.sub("", value)  # a folded field: unfold it
        value = value.strip()
        kept += len(value)
        fields.append((name, value))
        pos = end
    if budget is not None:
        budget.fields -= len(fields)
    return fields, pos, defects


def parse_header_block(block: str | bytes) -> tuple[list[tuple[str, str]], int, list[str]]:
    """Parse header lines (bytes, or str decoded as latin-1; LF or CRLF).

    Returns (fields, consumed, defects) where `consumed` is how many characters of
    `block` belong to the header section: parsing stops at the first line that is
    neither a field nor a continuation (that line starts the body, as mail clients do).
    At most `MAX_HEADER_FIELDS` fields (and `MAX_HEADER_CHARS` of values) are kept, each
    value cut at `MAX_FIELD_CHARS`; what is left out is reported in `defects`.
    """
    raw = block if isinstance(block, bytes) else block.encode("latin-1", errors="replace")
    return _read_fields(raw, 0, len(raw))


# -- parameters (Content-Type, Content-Disposition) -------------------------------------------------
# one parameter: starts at a ';' and cannot backtrack, so a failed attempt costs no more
# than the text up to the next ';'
_PARAM = re.compile(r""";\s*+([^\s=;"]++)\s*+=\s*+("(?:[^"\\]++|\\.)*+"?|[^;]*+)""", re.S)
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)


def parse_content_type(
    value: str | None, problems: list[str] | None = None, budget: _Budget | None = None
) -> tuple[str, dict[str, str]]:
    """('type/subtype' lower-cased, params with lower-cased names, RFC 2231 decoded)."""
    if not value:
        return "text/plain", {}
    head, _, rest = value.partition(";")
    ctype = head.strip().lower()
    if "/" not in ctype or " " in ctype:
        ctype = "text/plain" if not ctype else ctype
    return ctype, parse_params(";" + rest, problems, budget) if rest else {}


def parse_disposition(
    value: str | None, problems: list[str] | None = None, budget: _Budget | None = None
) -> tuple[str, dict[str, str]]:
    if not value:
        return "", {}
    head, _, rest = value.partition(";")
    return head.strip().lower(), parse_params(";" + rest, problems, budget) if rest else {}


def parse_params(
    text: str, problems: list[str] | None = None, budget: _Budget | None = None
) -> dict[str, str]:
    """Parameters after a header value's first ';' (names lower-cased, RFC 2231 decoded;
    a charset that is not decoded is reported in `problems`). At most `MAX_PARAMS` are
    read, and no more than what is left of the message's `budget`."""
    found = _PARAM.findall(text)  # in C; the Python work below is for the params kept
    allowed = MAX_PARAMS if budget is None else max(0, min(MAX_PARAMS, budget.params))
    if len(found) > allowed:
        if problems is not None:
            problems.append(
                f"{len(found)} parameters in a header field: only the first {allowed} read"
                + (
                    ""
                    if allowed == MAX_PARAMS
                    else f" (at most {MAX_TOTAL_PARAMS} are read from one message)"
                )
            )
        del found[allowed:]
    if budget is not None:
        budget.params -= len(found)
    raw = [(name.lower(), value.strip()) for name, value in found]
    if '"' in text:
        raw = [(name, _unquoted(value)) if value[:1] == '"' else (name, value) for name, value in raw]
    if "*" not in text or not any("*" in name for name, _ in raw):
        return dict(reversed(raw))  # the first of repeated names wins
    # RFC 2231: name*=charset'lang'pct-encoded, name*0=..., name*1*=...
    return decode_rfc2231_params(raw, problems)


def _unquoted(value: str) -> str:
    value = value[1:-1] if value.endswith('"') and len(value) > 1 else value[1:]
    return _QUOTED_PAIR.sub(r"\1", value) if "\\" in value else value


def decode_rfc2231_params(raw: list[tuple[str, str]], problems: list[str] | None = None) -> dict[str, str]:
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
        elif number.isascii() and number.isdigit() and len(number) <= 4:
            pieces.setdefault(base, []).append((int(number), value, encoded))
    for base, parts in pieces.items():
        parts.sort(key=lambda item: item[0])
        charset = None
        data = bytearray()
        for index, (_, value, encoded) in enumerate(parts):
            if encoded:
                if index == 0 and value.count("'") >= 2:
                    charset, _lang, value = value.split("'", 2)
                data += unquote_to_bytes(value)
            else:
                data += value.encode("latin-1", errors="replace")
        # the extended form wins over a plain duplicate
        params[base] = decode_bytes(bytes(data), charset or None, problems)
    return params


# -- RFC 2047 encoded words ---------------------------------------------------------------------------
_ENCODED_WORD = re.compile(r"=\?([^?\s]++)\?([bBqQ])\?([^?\s]*+)\?=")


def _word_bytes(encoding: str, text: str) -> bytes | None:
    """The bytes an encoded word's text stands for, or None when it is not valid B or Q."""
    data = text.encode("utf-8")
    try:
        if encoding in "bB":
            if len(data) % 4:
                data += b"==="[: 4 - len(data) % 4]
            return binascii.a2b_base64(data, strict_mode=True)
        stripped = data.rstrip(b"=")  # a2b_qp would take a final '=' for a soft line break
        return binascii.a2b_qp(stripped, header=True) + data[len(stripped) :]
    except binascii.Error:
        return None


@overload
def decode_text(value: str, problems: list[str] | None = None, budget: _Budget | None = None) -> str: ...
@overload
def decode_text(value: None, problems: list[str] | None = None, budget: _Budget | None = None) -> None: ...
@overload
def decode_text(
    value: str | None, problems: list[str] | None = None, budget: _Budget | None = None
) -> str | None: ...
def decode_text(
    value: str | None, problems: list[str] | None = None, budget: _Budget | None = None
) -> str | None:
    """A header value as text: RFC 2047 encoded words decoded, raw 8-bit read as UTF-8 or
    Windows-1252. Adjacent encoded words are joined (the blanks between them dropped, their
    bytes decoded together when the charset is the same); broken words stay as they are.
    A charset that is not decoded is reported in `problems`; with a message's `budget`,
    words past its share are left as they are."""
    if value is None:
        return None
    if not value.isascii():
        value = _utf8_or_cp1252(value.encode("latin-1", errors="replace"))
    if "=?" not in value:
        return value
    out: list[str] = []
    pending = bytearray()  # bytes of adjacent words in one charset, decoded together
    pending_charset = ""
    pos = 0
    after_word = False

    def flush() -> None:
        if pending:
            out.append(decode_bytes(bytes(pending), pending_charset, problems))
            pending.clear()

    for match in _ENCODED_WORD.finditer(value):
        if budget is not None:
            budget.words -= 1
            if budget.words < 0:
                if problems is not None and budget.words == -1:
                    problems.append(
                        f"encoded words beyond the {MAX_TOTAL_WORDS} decoded for one message left as they are"
                    )
                break
        gap = value[pos : match.start()]
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            flush()
            out.append(gap)
            out.append(match.group(0))
            after_word = False
        else:
            if not (after_word and (not gap or gap.isspace())):
                flush()
                out.append(gap)
            charset = match.group(1).partition("*")[0].lower()  # RFC 2231 language suffix
            if charset != pending_charset:
                flush()
                pending_charset = charset
            pending += data
            after_word = True
        pos = match.end()
    if pos == 0:
        return value
    flush()
    out.append(value[pos:])
    return "".join(out)


_BLANK_LINE = re.compile(rb"\n\r?\n")


def _find_blank_line(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """(end of headers, start of body) for the entity at raw[start:end]."""
    if raw.startswith(b"\n", start):
        return start, start + 1
    if raw.startswith(b"\r\n", start):
        return start, start + 2
    found = _BLANK_LINE.search(raw, start, end)  # one scan, stopping at the first LF or CRLF one
    if found is None:
        return end, end
    return found.start() + 1, found.end()


class _Delimiters:
    """The boundary delimiter lines of one multipart, in order: "--boundary" at the start of
    a line, then "--", a blank or the line end. Found with one `bytes.find`, lines that only
    look like a delimiter ("--boundaryX") skipped one by one while they are rare; once they
    are dense, each possible tail is looked for on its own, only before the nearest
    delimiter already found, and what a search learnt is kept until passed: look-alikes
    then cost no Python work, and no byte is searched twice for the same tail."""

    __slots__ = ("raw", "end", "needle", "needles", "found", "checked", "lookalikes", "first", "by_tail")
    TAILS = (b"\r", b"\n", b"--", b" ", b"\t")  # the likeliest first

    def __init__(self, raw: bytes, delim: bytes, end: int):
        self.raw = raw
        self.end = end
        self.needle = b"\n" + delim
        self.needles = [self.needle + tail for tail in self.TAILS]
        self.found = [-1] * len(self.TAILS)  # per tail: the first occurrence found, or -1
        self.checked = [0] * len(self.TAILS)  # ... and no other starts before this position
        self.lookalikes = 0
        self.first = -1  # where the first look-alike was
        self.by_tail = False

    def next(self, pos: int) -> int:
        """Where the first delimiter whose line break is at or after `pos` starts, or -1."""
        raw, end, needle = self.raw, self.end, self.needle
        while not self.by_tail:
            at = raw.find(needle, pos, end)
            if at == -1:
                return -1
            tail = raw[at + len(needle) : at + len(needle) + 2]
            if not tail or tail == b"--" or tail[:1] in b" \t\r\n":
                return at + 1
            self.lookalikes += 1
            if self.first == -1:
                self.first = at
            # dense: more than one look-alike per KB since the first one
            self.by_tail = self.lookalikes >= 32 and at - self.first < 1024 * self.lookalikes
            pos = at + 1
        best = -1
        for i, variant in enumerate(self.needles):
            stop = best if best != -1 else end - len(variant) + 1  # only starts before this matter
            at = self.found[i]
            if at == -1 or at < pos:
                begin = max(pos, self.checked[i]) if at == -1 else pos
                if begin < stop:
                    at = raw.find(variant, begin, stop + len(variant) - 1)
                    self.checked[i] = at + 1 if at != -1 else stop
                else:
                    at = -1
                self.found[i] = at
            if at != -1 and at < stop:
                best = at
        # a delimiter ending the range, its tail past it (whole, or the second '-' of "--")
        last = end - len(needle)
        for at, tail in ((last - 1, raw[end - 1 : end + 1]), (last, raw[end : end + 2])):
            if (
                pos <= at
                and (best == -1 or at < best)
                and raw.startswith(needle, at)
                and (not tail or tail == b"--" or (at == last and tail[:1] in b" \t\r\n"))
            ):
                best = at
                break
        return best + 1 if best != -1 else -1


class _Budget:
    """What one message tree may still read: parts, header fields, encoded words, parameters
    and bytes of decoded nested messages (each costs Python work, or memory, that its bytes
    alone do not pay for)."""

    __slots__ = ("parts", "fields", "words", "params", "decoded", "spent")

    def __init__(self, size: int):
        self.parts = MAX_TOTAL_PARTS
        self.fields = MAX_TOTAL_FIELDS
        self.words = MAX_TOTAL_WORDS
        self.params = MAX_TOTAL_PARAMS
        self.decoded = 2 * size + (1 << 20)
        self.spent = False


class _Unset(enum.Enum):
    """The type of `_UNSET`: a value not worked out yet (None is a result)."""

    UNSET = enum.auto()


_UNSET: Final = _Unset.UNSET


class Part:
    """One MIME entity: raw[start:end], header section then body."""

    __slots__ = (
        "raw",
        "start",
        "end",
        "depth",
        "body_start",
        "budget",
        "_headers",
        "_ctype",
        "_params",
        "_disposition",
        "_filename",
        "_children",
        "_message",
        "defects",
    )

    def __init__(
        self,
        raw: bytes,
        start: int = 0,
        end: int | None = None,
        depth: int = 0,
        budget: _Budget | None = None,
    ):
        self.raw = raw
        self.start = start
        self.end = len(raw) if end is None else end
        self.depth = depth
        self.budget = budget if budget is not None else _Budget(self.end - start)
        self.defects: list[str] = []
        self._headers: Headers | None = None
        self._ctype: str | None = None
        self._params: dict[str, str] | None = None
        self._disposition: tuple[str, dict[str, str]] | None = None
        self._filename: str | None | Literal[_Unset.UNSET] = _UNSET
        self._children: list[Part] | None = None
        self._message: Part | None | Literal[_Unset.UNSET] = _UNSET
        self.body_start = -1

    # -- headers ---------------------------------------------------------------------------
    @property
    def headers(self) -> Headers:
        if self._headers is None:
            return self._parse_headers()
        return self._headers

    def _parse_headers(self) -> Headers:
        raw, start = self.raw, self.start
        hend, bstart = _find_blank_line(raw, start, self.end)
        fields, consumed, defects = _read_fields(raw, start, hend, self.budget)
        self.defects.extend(defects)
        if consumed < hend:
            # a line that is not a header field: the body starts there
            if fields or raw[start:consumed].strip():
                self.defects.append("header section not ended by a blank line")
            bstart = consumed
        self._headers = headers = Headers(fields)
        self.body_start = bstart
        return headers

    @property
    def body(self) -> bytes:
        if self._headers is None:
            self._parse_headers()
        return self.raw[self.body_start : self.end]

    @property
    def body_size(self) -> int:
        if self._headers is None:
            self._parse_headers()
        return self.end - self.body_start

    @property
    def content_type(self) -> str:
        if self._ctype is None:
            self._ctype, self._params = parse_content_type(
                self.headers.get("content-type"), self.defects, self.budget
            )
        return self._ctype

    @property
    def params(self) -> dict[str, str]:
        if self._params is None:
            self._ctype, self._params = parse_content_type(
                self.headers.get("content-type"), self.defects, self.budget
            )
        return self._params

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def disposition(self) -> tuple[str, dict[str, str]]:
        if self._disposition is None:
            self._disposition = parse_disposition(
                self.headers.get("content-disposition"), self.defects, self.budget
            )
        return self._disposition

    @property
    def filename(self) -> str | None:
        """The part's file name (Content-Disposition filename, else Content-Type name), decoded."""
        if self._filename is _UNSET:
            _, dparams = self.disposition
            name = dparams.get("filename") or self.params.get("name")
            self._filename = (
                None if name is None else (decode_text(name, self.defects, self.budget).strip() or None)
            )
        return self._filename

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
        if self._message is _UNSET:
            self._message = self._inner() if self.content_type == "message/rfc822" else None
        return self._message

    def _inner(self) -> Part | None:
        if self.depth >= MAX_DEPTH:
            self.defects.append(f"message nested deeper than {MAX_DEPTH} levels: not followed")
            return None
        encoding = self.transfer_encoding
        if encoding not in ("base64", "quoted-printable"):
            return Part(self.raw, self.body_start, self.end, self.depth + 1, self.budget)
        self.defects.append(f"message/rfc822 part with {encoding} transfer encoding")
        if self.body_size > self.budget.decoded:
            self.defects.append(
                "message/rfc822 part not followed: too many bytes of nested messages to decode"
            )
            return None
        inner = decode_body(self.body, encoding)[0]
        self.budget.decoded -= len(inner)
        return Part(inner, 0, len(inner), self.depth + 1, self.budget)

    def _take_part(self) -> bool:
        """Count one part against the message's budget; False (reported once) when spent."""
        budget = self.budget
        if budget.parts <= 0:
            if not budget.spent:
                budget.spent = True
                self.defects.append(
                    f"more than {MAX_TOTAL_PARTS} MIME parts in the message: the rest not read"
                )
            return False
        budget.parts -= 1
        return True

    def _split(self) -> list[Part]:
        if self.depth >= MAX_DEPTH:
            self.defects.append(f"multipart nested deeper than {MAX_DEPTH} levels: not followed")
            return []
        boundary = self.params.get("boundary")
        if not boundary:
            self.defects.append(f"{self.content_type} without a boundary")
            return []
        if self.budget.parts <= 0:
            self._take_part()
            return []
        raw, end = self.raw, self.end
        start = self.body_start
        delim = b"--" + boundary.encode("latin-1", errors="replace")
        dlen = len(delim)
        delimiters = _Delimiters(raw, delim, end)
        parts: list[Part] = []
        part_start = -1
        closed = False
        # a delimiter is "--boundary" at the start of a line, followed by "--", blanks or EOL
        tail = raw[start + dlen : start + dlen + 2]
        if raw.startswith(delim, start) and (not tail or tail == b"--" or tail[:1] in b" \t\r\n"):
            hit = start
        else:
            hit = delimiters.next(start)
        while hit != -1:
            after = hit + dlen
            is_close = raw[after : after + 2] == b"--"
            if part_start != -1:
                pend = hit - 1 if hit > start and raw[hit - 1] == 0x0A else hit
                if pend > part_start and raw[pend - 1] == 0x0D:
                    pend -= 1
                if len(parts) >= MAX_PARTS:
                    self.defects.append(f"more than {MAX_PARTS} parts in one multipart: the rest ignored")
                    closed = True
                    break
                if not self._take_part():
                    closed = True
                    break
                parts.append(Part(raw, part_start, max(pend, part_start), self.depth + 1, self.budget))
            if is_close:
                closed = True
                break
            nl = raw.find(b"\n", after, end)
            part_start = end if nl == -1 else nl + 1
            hit = delimiters.next(part_start - 1)
        if not closed:
            if part_start == -1:
                self.defects.append(f"{self.content_type}: boundary never found")
            elif self._take_part():
                parts.append(Part(raw, part_start, end, self.depth + 1, self.budget))
                self.defects.append(f"{self.content_type}: closing boundary missing")
        return parts

    def walk(self, *, into_messages: bool = False) -> Iterator[Part]:
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
        """Defects found so far in this part and the parts already read below it, in order."""
        out: list[str] = []
        stack = [self]
        while stack:
            part = stack.pop()
            out.extend(part.defects)
            if part._message is not _UNSET and part._message is not None:
                stack.append(part._message)
            if part._children:
                stack.extend(reversed(part._children))
        return out

    # -- content --------------------------------------------------------------------------
    def decoded(self) -> bytes:
        """The body with its Content-Transfer-Encoding removed."""
        data, defect = decode_body(self.body, self.transfer_encoding)
        if defect and defect not in self.defects:
            self.defects.append(defect)
        return data

    def text(self) -> str:
        """The body as text, lines ended by "\n": decoded with its charset (a wrong charset,
        or one that is not a known linear codec, read as UTF-8, else windows-1252)."""
        charset = self.params.get("charset")
        text = decode_bytes(self.decoded(), charset or None, self.defects)
        return text.replace("\r\n", "\n") if "\r" in text else text


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]+")


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
    return body, f"unknown Content-Transfer-Encoding {encoding[:40]!r}: body left as is"


# --- the signed layout of a provider's message (PEC, REM) ---------------------------------------

SIGNATURE_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature")
_LAYOUT_DEPTH = 4  # multiparts nested deeper are not searched


class SignedLayout:
    """A provider's message, walked breadth-first: the first multipart/signed met, its
    signature part, whether it is wrapped inside another multipart. multipart/alternative
    (a body's text and HTML) is not walked into. Each family (PEC, REM) takes its own parts in
    `claim`."""

    __slots__ = ("signed", "signature", "wrapped")

    def __init__(self, root: Part) -> None:
        self.signed: Part | None = None
        self.signature: Part | None = None
        self.wrapped = False
        queue = deque([(root, 0)])
        while queue:
            part, level = queue.popleft()
            ctype = part.content_type
            leaf = not ctype.startswith("multipart/") and ctype not in SIGNATURE_TYPES
            if self.claim(part, leaf) or leaf:
                continue
            if ctype in SIGNATURE_TYPES:
                self.signature = self.signature or part
            elif ctype != "multipart/alternative" and level <= _LAYOUT_DEPTH:
                if ctype == "multipart/signed" and self.signed is None:
                    self.signed = part
                    self.wrapped = level > 0
                queue.extend((child, level + 1) for child in part.children)

    def claim(self, part: Part, leaf: bool) -> bool:
        """Whether `part` is one of the family's own, then not walked into. Every part reached
        is offered, in breadth-first order; `leaf`: neither a multipart nor a signature."""
        return False

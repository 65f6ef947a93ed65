"""daticert.xml: the provider's certified data about a PEC message (DM 2/11/2005, RFC 6109).

`parse` is strict about safety (no entities, no DTDs, bounded size) and lenient about
content: real files carry stray text and unknown elements, and those are reported in
`problems`, never fatal; whatever the bytes, it raises nothing but `DaticertError`.
`render` writes the same record back as XML (used by the message builder and the
provider simulator).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import partial
from itertools import islice
from xml.sax.saxutils import escape, quoteattr

from pecflow.pec import mime, safexml

MAX_DATICERT_BYTES = 256 * 1024

TIPI = (
    "accettazione",
    "non-accettazione",
    "presa-in-carico",
    "avvenuta-consegna",
    "posta-certificata",
    "errore-consegna",
    "preavviso-errore-consegna",
    "rilevazione-virus",
)
ERRORI = ("nessuno", "no-dest", "no-dominio", "virus", "altro")
TIPI_RICEVUTA = ("completa", "breve", "sintetica")
TIPI_DESTINATARIO = ("certificato", "esterno")
# encodings providers write daticert.xml in; any other is reported
_USUAL_ENCODINGS = ("utf_8", "ascii", "latin_1", "iso8859_15", "cp1252", "utf_16")


class DaticertError(ValueError):
    """daticert.xml could not be read at all (not XML, too big, forbidden construct)."""


@dataclass(frozen=True, slots=True)
class Destinatario:
    address: str
    tipo: str = "certificato"


@dataclass(frozen=True, slots=True)
class Daticert:
    tipo: str | None
    errore: str = "nessuno"
    mittente: str | None = None
    destinatari: tuple[Destinatario, ...] = ()
    risposte: str | None = None
    oggetto: str | None = None
    gestore_emittente: str | None = None
    giorno: str | None = None
    ora: str | None = None
    zona: str | None = None
    identificativo: str | None = None
    msgid: str | None = None
    ricevuta: str | None = None
    consegna: str | None = None
    ricezione: tuple[str, ...] = ()
    errore_esteso: str | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def timestamp(self) -> datetime | None:
        """`giorno` + `ora` + `zona` as an aware datetime (None when absent or unreadable)."""
        return _timestamp(self.giorno, self.ora, self.zona)


_ZONA = re.compile(r"^([+-])(\d\d):?(\d\d)$")
_GIORNO = re.compile(r"(\d\d)/(\d\d)/(\d{4})")
_ORA = re.compile(r"(\d\d):(\d\d):(\d\d)")


def _timestamp(giorno: str | None, ora: str | None, zona: str | None) -> datetime | None:
    if not giorno or not ora:
        return None
    day, time = _GIORNO.fullmatch(giorno.strip()), _ORA.fullmatch(ora.strip())
    if not day or not time:
        return None
    try:
        naive = datetime(int(day[3]), int(day[2]), int(day[1]), int(time[1]), int(time[2]), int(time[3]))
    except ValueError:
        return None
    match = _ZONA.match((zona or "").strip())
    if not match:
        return None
    sign, hh, mm = match.groups()
    if int(hh) > 23 or int(mm) > 59:  # no zone is a day away ("+4833"): unreadable, not a crash
        return None
    delta = timedelta(hours=int(hh), minutes=int(mm))
    return naive.replace(tzinfo=timezone(delta if sign == "+" else -delta))


def normalise_msgid(value: str | None) -> str | None:
    """`<id@host>` form of a Message-ID, whatever brackets or whitespace it came with."""
    if value is None:
        return None
    value = value.strip().strip("<>").strip()
    return f"<{value}>" if value else None


_KNOWN_DATI = {
    "gestore-emittente",
    "data",
    "identificativo",
    "msgid",
    "ricevuta",
    "consegna",
    "ricezione",
    "errore-esteso",
}
_KNOWN_INTESTAZIONE = {"mittente", "destinatari", "risposte", "oggetto"}


def parse(data: bytes) -> Daticert:
    """Read a daticert.xml document. Raises `DaticertError` only when it is unreadable."""
    problems: list[str] = []
    try:
        root = _read(data)
    except safexml.XmlError as exc:
        root, repaired = _read_tolerant(data, exc)
        problems.append(
            f"daticert.xml: the provider wrote characters that XML does not allow; they were read as spaces: {repaired}"
        )
    declared = safexml.declared_encoding(data)
    if declared is not None and mime.safe_codec(declared) not in _USUAL_ENCODINGS:
        problems.append(f"daticert.xml: declares the unusual encoding {declared[:40]!r}")
    if root.tag != "postacert":
        problems.append(f"daticert.xml: root element is <{_clip(root.tag)}>, expected <postacert>")
    tipo = root.attrs.get("tipo", "").strip() or None
    if tipo is None:
        problems.append("daticert.xml: postacert has no tipo")
    elif tipo not in TIPI:
        problems.append(f"daticert.xml: unknown postacert tipo {_clip(tipo)!r}")
    errore = root.attrs.get("errore", "nessuno").strip() or "nessuno"
    if errore not in ERRORI:
        problems.append(f"daticert.xml: unknown errore {_clip(errore)!r}")

    head = root.find("intestazione")
    dati = root.find("dati")
    if head is None:
        problems.append("daticert.xml: <intestazione> missing")
    if dati is None:
        problems.append("daticert.xml: <dati> missing")
    for node, known in ((head, _KNOWN_INTESTAZIONE), (dati, _KNOWN_DATI)):
        if node is None:
            continue
        if "".join(node.parts).strip():
            problems.append(f"daticert.xml: stray text inside <{node.tag}>")
        unknown = sorted({c.tag for c in node.children} - known)
        if unknown:
            problems.append(
                f"daticert.xml: unexpected element(s) in <{node.tag}>: "
                f"{', '.join(_clip(tag) for tag in unknown[:10])}"
            )

    destinatari = []
    if head is not None:
        for node in head.findall("destinatari"):
            kind = node.attrs.get("tipo", "certificato").strip() or "certificato"
            if kind not in TIPI_DESTINATARIO:
                problems.append(f"daticert.xml: unknown destinatari tipo {_clip(kind)!r}")
            if node.text:
                destinatari.append(Destinatario(node.text, kind))

    data_node = dati.find("data") if dati is not None else None
    ricevuta_node = dati.find("ricevuta") if dati is not None else None
    ricevuta = (ricevuta_node.attrs.get("tipo", "").strip() or None) if ricevuta_node is not None else None
    if ricevuta is not None and ricevuta not in TIPI_RICEVUTA:
        problems.append(f"daticert.xml: unknown ricevuta tipo {_clip(ricevuta)!r}")

    def text(node: safexml.Node | None, path: str) -> str | None:
        value = node.findtext(path) if node is not None else None
        return value or None

    record = Daticert(
        tipo=tipo,
        errore=errore,
        mittente=text(head, "mittente"),
        destinatari=tuple(destinatari),
        risposte=text(head, "risposte"),
        oggetto=text(head, "oggetto"),
        gestore_emittente=text(dati, "gestore-emittente"),
        giorno=text(data_node, "giorno"),
        ora=text(data_node, "ora"),
        zona=(data_node.attrs.get("zona", "").strip() or None) if data_node is not None else None,
        identificativo=text(dati, "identificativo"),
        msgid=normalise_msgid(text(dati, "msgid")),
        ricevuta=ricevuta,
        consegna=text(dati, "consegna"),
        ricezione=tuple(n.text for n in dati.findall("ricezione") if n.text) if dati is not None else (),
        errore_esteso=text(dati, "errore-esteso"),
        problems=(),
    )
    if data_node is not None and record.timestamp is None:
        problems.append("daticert.xml: unreadable <data> (giorno/ora/zona)")
    if record.identificativo is None and tipo is not None:
        problems.append("daticert.xml: <identificativo> missing")
    return replace(record, problems=tuple(problems)) if problems else record


_MAX_DEPTH, _MAX_ELEMENTS = 16, 5000


def _read(data: bytes) -> safexml.Node:
    return safexml.parse(data, max_bytes=MAX_DATICERT_BYTES, max_depth=_MAX_DEPTH, max_nodes=_MAX_ELEMENTS)


# The tolerant second pass. Providers have been seen writing C0 control characters (raw, or
# as references such as `&#1;`) into daticert.xml, which no XML parser accepts. Where they
# stand in character data, a comment or an attribute value they are read as spaces (a space
# never joins or splits markup, and values are stripped); the document is parsed again with
# the same limits and the repair is reported. Anywhere else (in an element's name, between
# attributes, in a declaration) they are left alone, and the document stays unreadable.

_ILLEGAL = "\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"  # not XML 1.0 characters
_ILLEGAL_CHAR = re.compile(f"[{_ILLEGAL}]")
# references to C0 controls, replaced without a call per reference; then the only others
# that can be illegal (surrogates, U+FFFE, U+FFFF, past U+10FFFF), each one checked
_C0_REFERENCE = re.compile("&#(?:x0*(?:[0-8bcefBCEF]|1[0-9a-fA-F])|0*(?:[0-8]|1[124-9]|2[0-9]|3[01]));")
_LONG_REFERENCE = re.compile("&#(?:x0*+([0-9a-fA-F]{4,}+)|0*+([0-9]{5,}+));")
_SPECIAL = (  # markup other than tags, where it ends, and whether it is character data
    ("<!--", "-->", "in a comment", True),
    ("<![CDATA[", "]]>", "", True),
    ("<!", ">", "in a declaration", False),
    ("<?", "?>", "in a processing instruction", False),
)
_TAG_NAME = re.compile(r"</?+([^ \t\r\n/>\"'=<]*+)")  # XML's white space only: not \x0b, \x1c…
_TAG_STOP = re.compile(r"[>\"'<]")
_REPORTED = 5  # illegal characters named one by one in a message; the others are counted


@dataclass(frozen=True, slots=True)
class _Illegal:
    offset: int
    written: str  # the character, or the reference as written
    where: str


class _Found:
    """Illegal characters found: how many, and the first few in the order of the document
    (the others only counted, so that a document full of them costs no more than a few)."""

    __slots__ = ("count", "first")

    def __init__(self) -> None:
        self.count = 0
        self.first: list[_Illegal] = []

    def room(self) -> int:
        return _REPORTED - len(self.first)

    def add(self, count: int, first: list[_Illegal]) -> None:
        """`count` more, of which `first` are the first few (at least `room()` of them, or all)."""
        self.count += count
        self.first += sorted(first, key=lambda item: item.offset)[: self.room()]


def _read_tolerant(data: bytes, error: safexml.XmlError) -> tuple[safexml.Node, str]:
    """The document parsed again with its illegal characters read as spaces, and where they
    were; `DaticertError` when it has none, has them where no repair is safe, or cannot be
    read for another reason."""
    unreadable = DaticertError(f"daticert.xml: {error}")
    if not isinstance(data, (bytes, bytearray)) or len(data) > MAX_DATICERT_BYTES:
        raise unreadable from None
    text = _decoded(bytes(data))
    if text is None:
        raise unreadable from None
    scan = _Repair(text)
    if scan.too_many:
        raise DaticertError(f"daticert.xml: more than {_MAX_ELEMENTS} elements") from None
    if scan.stuck.count:
        raise DaticertError(
            "daticert.xml: not well-formed XML: characters that XML does not allow stand inside its "
            f"markup, where they cannot be read as spaces: {_describe(scan.stuck, text)}"
        ) from None
    if not scan.fixed.count:
        raise unreadable from None
    repaired = scan.text
    if repaired.lstrip().startswith("<?xml") and "?>" in repaired:  # now UTF-8, whatever it declares
        repaired = repaired[repaired.find("?>") + 2 :]
    try:
        # the size limit held for the bytes as sent; as UTF-8 they may take up to 3 times more
        root = safexml.parse(
            repaired.encode("utf-8"),
            max_bytes=3 * MAX_DATICERT_BYTES,
            max_depth=_MAX_DEPTH,
            max_nodes=_MAX_ELEMENTS,
        )
    except safexml.XmlError as exc:
        raise DaticertError(
            f"daticert.xml: {exc}, after reading as spaces the characters that XML does not allow: "
            f"{_describe(scan.fixed, text)}"
        ) from None
    return root, _describe(scan.fixed, text)


def _decoded(data: bytes) -> str | None:
    """`data` as text in its own encoding (byte-order mark, declaration, else UTF-8), or None."""
    if data.startswith(b"\xef\xbb\xbf"):
        codec: str | None = "utf_8_sig"
    elif data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        codec = "utf_32"
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf_16"
    else:
        declared = safexml.declared_encoding(data)
        codec = "utf_8" if declared is None else mime.safe_codec(declared)
    if codec is None or codec == "utf_7":
        return None
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def _legal_reference(match: re.Match[str]) -> bool:
    digits = (match[1] or match[2]).lstrip("0")
    if len(digits) > 7:
        return False
    code = int(digits or "0", 16 if match[1] else 10)
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


class _Repair:
    """One pass over the document: character data and attribute values copied with their
    illegal characters (and references to them) as spaces (`fixed`); illegal characters in
    markup left alone (`stuck`). It stops after `_MAX_ELEMENTS` tags (`too_many`): the
    second parse would refuse the document anyway. Places are named only for the first few
    characters found (`where` is a function), which keeps the pass cheap per tag."""

    def __init__(self, text: str):
        self.source = text
        self.fixed = _Found()
        self.stuck = _Found()
        self.too_many = False
        self._out: list[str] = []
        self._open: list[str] = []
        pos, size, tags = 0, len(text), 0
        while pos < size:
            lt = text.find("<", pos)
            lt = size if lt == -1 else lt
            if lt > pos:
                self._content(pos, lt, self._inside())
            if lt == size:
                break
            tags += 1
            if tags > 2 * _MAX_ELEMENTS:  # a start and an end tag for each
                self.too_many = True
                break
            pos = self._markup(lt)
        self.text = "".join(self._out)

    def _inside(self) -> Callable[[], str]:
        if not self._open:
            return lambda: "outside the root element"
        name = self._open[-1]
        return lambda: f"in the text of <{_shown(name)}>"

    def _content(self, start: int, end: int, where: Callable[[], str], references: bool = True) -> None:
        segment = self.source[start:end]
        room = self.fixed.room()
        first: list[_Illegal] = []
        count = 0
        if _ILLEGAL_CHAR.search(segment):
            place = where()
            first += (
                _Illegal(start + m.start(), m.group(), place)
                for m in islice(_ILLEGAL_CHAR.finditer(segment), room)
            )
            segment, count = _ILLEGAL_CHAR.subn(" ", segment)  # one for one: the offsets hold
        if references and "&#" in segment:
            c0 = _C0_REFERENCE.finditer(segment)
            first += (_Illegal(start + m.start(), m.group(), where()) for m in islice(c0, room))
            long_first: list[_Illegal] = []

            def space(match: re.Match[str]) -> str:
                nonlocal count
                if _legal_reference(match):
                    return match.group()
                count += 1
                if len(long_first) < room:
                    long_first.append(_Illegal(start + match.start(), match.group(), where()))
                return " "

            segment = _LONG_REFERENCE.sub(space, segment)  # never makes nor breaks a C0 reference
            segment, c0_count = _C0_REFERENCE.subn(" ", segment)
            count += c0_count
            first += long_first
        self.fixed.add(count, first)
        self._out.append(segment)

    def _kept(self, start: int, end: int, where: Callable[[], str]) -> None:
        if _ILLEGAL_CHAR.search(self.source, start, end):
            matches = islice(_ILLEGAL_CHAR.finditer(self.source, start, end), self.stuck.room())
            self.stuck.add(
                len(_ILLEGAL_CHAR.findall(self.source, start, end)),
                [_Illegal(m.start(), m.group(), where()) for m in matches],
            )
        self._out.append(self.source[start:end])

    def _markup(self, start: int) -> int:
        """Copies the markup at `start`; returns where it ends."""
        text = self.source
        for opener, closer, label, is_data in _SPECIAL:
            if text.startswith(opener, start):
                end = text.find(closer, start + len(opener))
                end = len(text) if end == -1 else end + len(closer)
                if is_data:  # where `&#1;` is just text
                    self._content(
                        start, end, partial(str, label) if label else self._inside(), references=False
                    )
                else:
                    self._kept(start, end, partial(str, label))
                return end
        name_match = _TAG_NAME.match(text, start)
        assert name_match is not None  # it matches any text that starts with "<"
        name, closing = name_match[1], text.startswith("</", start)
        slash = "/" if closing else ""
        self._kept(start, name_match.end(), lambda: f"in the name of the element <{slash}{_shown(name)}>")
        in_tag = lambda: f"in the tag <{slash}{_shown(name)}>"  # noqa: E731
        pos = name_match.end()
        while True:
            stop = _TAG_STOP.search(text, pos)
            if stop is None or stop.group() == "<":  # not closed: the parser will say so
                end = len(text) if stop is None else stop.start()
                self._kept(pos, end, in_tag)
                return end
            if stop.group() == ">":
                self._kept(pos, stop.end(), in_tag)
                break
            close = text.find(stop.group(), stop.end())
            if close == -1:
                self._kept(pos, len(text), in_tag)
                return len(text)
            self._kept(pos, stop.end(), in_tag)
            self._content(stop.end(), close, partial(_in_attribute, text, pos, stop.start(), name))
            self._out.append(stop.group())
            pos = close + 1
        if closing:
            if self._open:
                self._open.pop()
        elif text[stop.start() - 1] != "/":
            self._open.append(name)
        return stop.end()


def _in_attribute(text: str, start: int, quote: int, element: str) -> str:
    """Where a value is, named by the attribute written before `quote` (`start`: the tag so far)."""
    before = text[max(start, quote - 200) : quote].rstrip()
    name = (before[:-1].split() or ["?"])[-1] if before.endswith("=") else "?"
    return f"in the attribute {_shown(name)} of <{_shown(element)}>"


def _shown(name: str) -> str:
    """A name from the document, fit for a message."""
    return _clip(_ILLEGAL_CHAR.sub("\ufffd", name), 40)


def _describe(found: _Found, text: str) -> str:
    """'U+0001 in the text of <oggetto> (line 5, column 31); …': the first few found, then a count."""
    line, counted = 1, 0
    parts = []
    for item in found.first:
        line += text.count("\n", counted, item.offset)
        counted = item.offset
        column = item.offset - text.rfind("\n", 0, item.offset)
        shown = item.written if item.written.startswith("&") else f"U+{ord(item.written):04X}"
        parts.append(f"{_clip(shown, 20)} {item.where} (line {line}, column {column})")
    if found.count > len(found.first):
        parts.append(f"and {found.count - len(found.first)} more")
    return "; ".join(parts)


def _clip(value: str, size: int = 100) -> str:
    return value if len(value) <= size else value[:size] + "…"


def render(record: Daticert) -> bytes:
    """The record as a daticert.xml document, laid out as providers write it."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<postacert tipo={quoteattr(record.tipo or '')} errore={quoteattr(record.errore)}>",
        "    <intestazione>",
    ]
    if record.mittente is not None:
        out.append(f"        <mittente>{escape(record.mittente)}</mittente>")
    for dest in record.destinatari:
        out.append(f"        <destinatari tipo={quoteattr(dest.tipo)}>{escape(dest.address)}</destinatari>")
    if record.risposte is not None:
        out.append(f"        <risposte>{escape(record.risposte)}</risposte>")
    if record.oggetto is not None:
        out.append(f"        <oggetto>{escape(record.oggetto)}</oggetto>")
    out += ["    </intestazione>", "    <dati>"]
    if record.gestore_emittente is not None:
        out.append(f"        <gestore-emittente>{escape(record.gestore_emittente)}</gestore-emittente>")
    if record.giorno is not None:
        out += [
            f"        <data zona={quoteattr(record.zona or '+0000')}>",
            f"            <giorno>{escape(record.giorno)}</giorno>",
            f"            <ora>{escape(record.ora or '00:00:00')}</ora>",
            "        </data>",
        ]
    if record.identificativo is not None:
        out.append(f"        <identificativo>{escape(record.identificativo)}</identificativo>")
    if record.msgid is not None:
        out.append(f"        <msgid>{escape(record.msgid)}</msgid>")
    if record.ricevuta is not None:
        out.append(f"        <ricevuta tipo={quoteattr(record.ricevuta)} />")
    if record.consegna is not None:
        out.append(f"        <consegna>{escape(record.consegna)}</consegna>")
    for address in record.ricezione:
        out.append(f"        <ricezione>{escape(address)}</ricezione>")
    if record.errore_esteso is not None:
        out.append(f"        <errore-esteso>{escape(record.errore_esteso)}</errore-esteso>")
    out += ["    </dati>", "</postacert>", ""]
    return "\n".join(out).encode("utf-8")


def data_fields(when: datetime) -> tuple[str, str, str]:
    """(giorno, ora, zona) for an aware datetime, as daticert writes them."""
    offset = when.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return (
        when.strftime("%d/%m/%Y"),
        when.strftime("%H:%M:%S"),
        f"{sign}{minutes // 60:02d}{minutes % 60:02d}",
    )

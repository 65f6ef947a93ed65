"""daticert.xml: the provider's certified data about a PEC message (DM 2/11/2005, RFC 6109).

`parse` is strict about safety (no entities, no DTDs, bounded size) and lenient about
content: real files carry stray text and unknown elements, and those are reported in
`problems`, never fatal; whatever the bytes, it raises nothing but `DaticertError`.
`render` writes the same record back as XML (used by the message builder and the
provider simulator).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
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
    try:
        root = safexml.parse(data, max_bytes=MAX_DATICERT_BYTES, max_depth=16, max_nodes=5000)
    except safexml.XmlError as exc:
        raise DaticertError(f"daticert.xml: {exc}") from None
    problems: list[str] = []
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
        zona=(data_node.attrs.get("zona") if data_node is not None else None),
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

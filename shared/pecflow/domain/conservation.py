"""The conservation export (pacchetto di versamento) of a mailbox's period: what is in it, the
UNI SInCRO index (UNI 11386, IdC) and the AgID metadata of each document (Linee guida sulla
formazione, gestione e conservazione dei documenti informatici, Allegato 5), and the rules of the
exported periods (none twice, gaps said). Pure: the service (pecflow.services.conservation)
streams the archived bytes into the zip; this module names the files and writes the XML.

A package is a zip holding, in this order:

    documenti/NNNNN-<sha16>.eml        each document, byte for byte as archived
    metadati/NNNNN-<sha16>.xml         its metadata (Allegato 5, documento informatico)
    IdC.xml                            the index: every file above with its SHA-256 (UNI SInCRO)

The documents of a period are every message recorded in the mailbox that was received in it
(messages, envelopes, receipts: flusso E) and every message pecflow sent whose first receipt
arrived in it (flusso U): a sent message belongs to exactly one period. Days are Italian days
(Europe/Rome). Both XML files are checked against our own schemas (pecflow/schemas/*.xsd),
written from the published structure of UNI SInCRO 2.0 and of Allegato 5.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from pecflow import __version__
from pecflow.pec import kinds

PACKAGE_FORMAT = 1
DOCUMENTS = "documenti/"
METADATA = "metadati/"
INDEX = "IdC.xml"
SINCRO_NS = "http://www.uni.com/U3011/sincro-v2/"
METADATA_NS = "urn:pecflow:conservazione:metadati:1"
INDEX_SCHEMA = "sincro-idc.xsd"
METADATA_SCHEMA = "agid-metadati-documento.xsd"
HASH_FUNCTION = "SHA-256"
ROME = "Europe/Rome"
RETENTION_YEARS = 10  # the time PEC is kept (art. 2220 c.c.): the metadata's TempoDiConservazione
LAWS = (
    "D.Lgs. 82/2005 (CAD) artt. 43-44; DPR 68/2005 e DM 2/11/2005 (PEC); Linee guida AgID sulla formazione, "
    "gestione e conservazione dei documenti informatici (2021), Allegato 5; UNI 11386:2020 (SInCRO)"
)

# the document's place in the flow (DatiDiRegistrazione/TipologiaDiFlusso): E entrata, U uscita
IN, OUT = "E", "U"
RECEIVED, SENT, RECEIPT = "ricevuto", "inviato", "ricevuta"
RECEIPT_KINDS = frozenset(
    {
        kinds.ACCETTAZIONE,
        kinds.NON_ACCETTAZIONE,
        kinds.PRESA_IN_CARICO,
        kinds.AVVENUTA_CONSEGNA,
        kinds.ERRORE_CONSEGNA,
        kinds.PREAVVISO_ERRORE_CONSEGNA,
        kinds.RILEVAZIONE_VIRUS,
    }
)
DOCUMENT_TYPES = {
    kinds.POSTA_CERTIFICATA: "Messaggio PEC ricevuto (busta di trasporto)",
    kinds.ANOMALIA: "Messaggio PEC ricevuto (busta di anomalia)",
    kinds.POSTA_ORDINARIA: "Messaggio di posta ordinaria ricevuto nella casella PEC",
    kinds.MALFORMED: "Messaggio ricevuto non leggibile",
    kinds.ACCETTAZIONE: "Ricevuta PEC di accettazione",
    kinds.NON_ACCETTAZIONE: "Avviso PEC di non accettazione",
    kinds.PRESA_IN_CARICO: "Ricevuta PEC di presa in carico",
    kinds.AVVENUTA_CONSEGNA: "Ricevuta PEC di avvenuta consegna",
    kinds.ERRORE_CONSEGNA: "Avviso PEC di mancata consegna",
    kinds.PREAVVISO_ERRORE_CONSEGNA: "Preavviso PEC di mancata consegna",
    kinds.RILEVAZIONE_VIRUS: "Avviso PEC di rilevazione virus",
}
SENT_TYPE = "Messaggio PEC inviato"
SEALED = frozenset({"valid", "invalid", "untrusted", "expired"})  # the provider's signature is there
SEAL_WORDS = {
    "valid": "sigillo del gestore PEC verificato: valido",
    "invalid": "sigillo del gestore PEC NON VALIDO (documento o firma alterati)",
    "untrusted": "sigillo del gestore PEC integro, certificato non riconosciuto dalle ancore di fiducia",
    "expired": "sigillo del gestore PEC integro, certificato scaduto alla firma",
    "missing": "nessun sigillo del gestore (messaggio non firmato)",
}


class PeriodError(ValueError):
    """A period that cannot be exported as asked (the words say why, in Italian and English)."""


# --- periods ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, order=True)
class Period:
    """Whole Italian days, `first` to `last` included."""

    first: date
    last: date

    @classmethod
    def parse(cls, first: str, last: str) -> Period:
        try:
            period = cls(date.fromisoformat(first), date.fromisoformat(last))
        except ValueError:
            raise PeriodError(
                f"date non valide ({first}, {last}): scrivere AAAA-MM-GG / dates must be YYYY-MM-DD"
            ) from None
        if period.last < period.first:
            raise PeriodError(
                f"il periodo finisce ({last}) prima di cominciare ({first}) / the period ends before it starts"
            )
        return period

    def __str__(self) -> str:
        return f"{self.first.isoformat()} – {self.last.isoformat()}"

    @property
    def key(self) -> str:
        return f"{self.first.isoformat()}_{self.last.isoformat()}"

    def bounds(self) -> tuple[datetime, datetime]:
        """The UTC instants it covers: from its first local midnight, to its end's (excluded)."""
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(ROME)
        start = datetime.combine(self.first, time(), zone)
        end = datetime.combine(self.last + timedelta(days=1), time(), zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def overlaps(self, other: Period) -> bool:
        return self.first <= other.last and other.first <= self.last


def check_new_period(period: Period, exported: Sequence[Period], today: date) -> list[str]:
    """Refuse a period that is not over yet or that overlaps an exported one (PeriodError naming
    it); the notes to give with an accepted one (a gap before it, or before the last export)."""
    if period.last >= today:
        raise PeriodError(
            f"il periodo {period} non è concluso: si esportano solo giorni passati (fino a ieri) / "
            f"the period {period} is not over: only past days are exported"
        )
    for done in sorted(exported):
        if period.overlaps(done):
            raise PeriodError(
                f"il periodo {period} si sovrappone al periodo già esportato {done}: nulla si versa due "
                f"volte; usare --continue per proseguire dal giorno dopo l'ultimo periodo esportato / "
                f"the period {period} overlaps the period already exported {done}; use --continue "
                "to go on from the day after the last export"
            )
    return gaps([*exported, period])


def gaps(periods: Iterable[Period]) -> list[str]:
    """The days no export covers between the first and the last exported period, in words."""
    ordered = sorted(periods)
    notes = []
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.first > before.last + timedelta(days=1):
            hole = Period(before.last + timedelta(days=1), after.first - timedelta(days=1))
            notes.append(
                f"ATTENZIONE: i giorni {hole} non sono in alcun pacchetto esportato / "
                f"the days {hole} are in no exported package"
            )
    return notes


def continued(exported: Sequence[Period], last: date) -> Period:
    """--continue: from the day after the last exported period to `last`."""
    if not exported:
        raise PeriodError(
            "nessun periodo è ancora stato esportato: indicare --from / no period exported yet: give --from"
        )
    first = max(p.last for p in exported) + timedelta(days=1)
    if last < first:
        raise PeriodError(
            f"tutto è già esportato fino al {first - timedelta(days=1)} / everything is exported up to "
            f"{first - timedelta(days=1)}"
        )
    return Period(first, last)


# --- the documents -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Party:
    role: str  # Allegato 5 TipoRuolo: Mittente, Destinatario, ...
    address: str
    kind: str = "PG"  # TipoSoggetto: PG (organizzazione), SW (a provider's system), ...


@dataclass(frozen=True, slots=True)
class Document:
    """One document of the package, as its metadata describe it."""

    number: int
    sha256: str
    size: int
    path: str  # in the package
    flow: str  # IN | OUT
    category: str  # RECEIVED | SENT | RECEIPT
    kind: str  # pecflow.pec.kinds, or "inviato"
    registered_at: str  # ISO, UTC: received (E) or sent (U)
    registration: str  # the provider's identificativo, the Message-ID, or the hash
    subject: str
    parties: tuple[Party, ...]
    attachments: tuple[str, ...]  # file names
    signature: str | None = None  # the provider's seal, as checked at ingestion
    primary: str | None = None  # the document (sha256) a receipt is about, when in a package
    notes: tuple[str, ...] = ()

    @property
    def metadata_path(self) -> str:
        return METADATA + self.path.removeprefix(DOCUMENTS).removesuffix(".eml") + ".xml"

    @property
    def identifier(self) -> str:
        return document_id(self.sha256)


def document_id(sha256: str) -> str:
    return f"sha256-{sha256}"


def document_path(n: int, sha256: str) -> str:
    return f"{DOCUMENTS}{n:05d}-{sha256[:16]}.eml"


def sent_path(n: int, sha256: str | None) -> str:
    """A sent message's place: its hash is known from its archive key (else it is unnamed by it)."""
    return f"{DOCUMENTS}{n:05d}-{sha256[:16]}.eml" if sha256 else f"{DOCUMENTS}{n:05d}-inviato.eml"


def sha_of_key(key: str) -> str | None:
    """The SHA-256 an archive key is named after (messages/ab/<sha256>.eml), if it is."""
    name = key.rsplit("/", 1)[-1].removesuffix(".eml")
    return name if re.fullmatch(r"[0-9a-f]{64}", name) else None


def clock_key(at: datetime) -> str:
    """An instant as the records' `received_key` begins (pecflow.domain.clock.iso)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def category_of(kind: str | None) -> str:
    return RECEIPT if kind in RECEIPT_KINDS else RECEIVED


def received_document(number: int, record: Mapping[str, Any], size: int, primary: str | None) -> Document:
    """A message of the mailbox (a record as the message store keeps it: `from` or `from_address`)."""
    kind = str(record.get("kind") or kinds.MALFORMED)
    category = category_of(kind)
    sender = str(record.get("from") or record.get("from_address") or record.get("sender") or "")
    parties = [Party("Mittente", sender, "SW" if category == RECEIPT else "PG")] if sender else []
    parties += [Party("Destinatario", str(a)) for a in [*record.get("to", ()), *record.get("cc", ())] if a]
    notes = [f"tipo pecflow: {kind}"]
    if category == RECEIPT and record.get("recipients"):
        addresses = ", ".join(str(r.get("address")) for r in record["recipients"] if r.get("address"))
        notes.append(f"destinatari del messaggio a cui si riferisce: {addresses}")
    if record.get("provider"):
        notes.append(f"gestore: {record['provider']}")
    if record.get("error"):
        notes.append(f"errore: {record['error']}")
    return Document(
        number=number,
        sha256=str(record["sha256"]),
        size=size,
        path=document_path(number, str(record["sha256"])),
        flow=IN,
        category=category,
        kind=kind,
        registered_at=str(record.get("received_at") or ""),
        registration=str(
            record.get("identificativo") or record.get("message_id") or document_id(record["sha256"])
        ),
        subject=str(record.get("subject") or record.get("original_subject") or ""),
        parties=tuple(parties),
        attachments=tuple(str(a.get("filename") or "senza nome") for a in record.get("attachments", ())),
        signature=record.get("signature"),
        primary=primary,
        notes=tuple(notes),
    )


def sent_document(
    number: int,
    sha256: str,
    size: int,
    path: str,
    *,
    mailbox: str,
    message_id: str,
    subject: str | None,
    recipients: Sequence[str],
    sent_at: str,
    attachments: Sequence[str],
) -> Document:
    parties = (Party("Mittente", mailbox), *(Party("Destinatario", r) for r in recipients))
    return Document(
        number=number,
        sha256=sha256,
        size=size,
        path=path,
        flow=OUT,
        category=SENT,
        kind=SENT,
        registered_at=sent_at,
        registration=message_id,
        subject=subject or "",
        parties=parties,
        attachments=tuple(attachments),
        notes=("il messaggio come pecflow lo ha consegnato al gestore (prima della busta di trasporto)",),
    )


class AttachmentScan:
    """The file names of a message's attachments, read from its bytes as they stream by (part
    headers whose Content-Disposition is `attachment`): memory holds a line, never the message."""

    _FILENAME = re.compile(rb'filename\*?=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)

    def __init__(self) -> None:
        self.names: list[str] = []
        self._rest = b""
        self._header = b""  # the Content-Disposition header being read (with its folded lines)

    def feed(self, chunk: bytes) -> None:
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()[-4096:]
        for line in lines:
            self._line(line.rstrip(b"\r"))

    def close(self) -> list[str]:
        self._line(self._rest)
        self._line(b"")
        return self.names

    def _line(self, line: bytes) -> None:
        if self._header and line[:1] in (b" ", b"\t"):
            self._header += line[:1000]
            return
        if self._header:
            self._done(self._header)
            self._header = b""
        if line[:20].lower().startswith(b"content-disposition:"):
            self._header = line[:1000]

    def _done(self, header: bytes) -> None:
        value = header.split(b":", 1)[1].strip()
        if not value.lower().startswith(b"attachment"):
            return
        found = self._FILENAME.search(header)
        raw = (found.group(1) or found.group(2)) if found else b""
        self.names.append(raw.decode("utf-8", "replace") or "senza nome")


# --- the XML ------------------------------------------------------------------------------------
def _text(value: object) -> str:
    # what XML 1.0 cannot hold: control characters, lone surrogates (undecodable header bytes)
    cleaned = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]", "", str(value))
    return escape(cleaned)


def _el(name: str, value: object, indent: str) -> str:
    return f"{indent}<{name}>{_text(value)}</{name}>\n"


def iso_utc(at: str) -> str:
    """A stored time (ISO 8601, Z or offset) as xs:dateTime in UTC, seconds precision."""
    parsed = datetime.fromisoformat(at.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metadata_xml(doc: Document, *, mailbox: str, series: str) -> bytes:
    """The document's metadata, Allegato 5 (documento informatico), in our namespace."""
    i1, i2, i3, i4 = "  ", "    ", "      ", "        "
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<DocumentoInformatico xmlns="{METADATA_NS}" versione="{PACKAGE_FORMAT}">\n',
        f"{i1}<IdDoc>\n{i2}<ImprontaCrittograficaDelDocumento>\n",
        _el("Impronta", doc.sha256, i3),
        _el("Algoritmo", HASH_FUNCTION, i3),
        f"{i2}</ImprontaCrittograficaDelDocumento>\n",
        _el("Identificativo", doc.identifier, i2),
        f"{i1}</IdDoc>\n",
        # a: created with software (what we sent); b: acquired by telematic means (what arrived)
        _el("ModalitaDiFormazione", "a" if doc.flow == OUT else "b", i1),
        _el(
            "TipologiaDocumentale",
            SENT_TYPE if doc.category == SENT else DOCUMENT_TYPES.get(doc.kind, doc.kind),
            i1,
        ),
        f"{i1}<DatiDiRegistrazione>\n",
        _el("TipologiaDiFlusso", doc.flow, i2),
        _el("TipoRegistro", "Nessuno", i2),
        _el("DataRegistrazione", iso_utc(doc.registered_at), i2),
        _el("NumeroRegistrazione", doc.registration, i2),
        f"{i1}</DatiDiRegistrazione>\n",
        f"{i1}<Soggetti>\n",
    ]
    for party in doc.parties:
        out += [
            f"{i2}<Ruolo>\n",
            _el("TipoRuolo", party.role, i3),
            f"{i3}<Soggetto>\n",
            _el("TipoSoggetto", party.kind, i4),
            _el("IndirizzoDigitaleDiRiferimento", party.address, i4),
            f"{i3}</Soggetto>\n{i2}</Ruolo>\n",
        ]
    out += [
        f"{i2}<Ruolo>\n",
        _el("TipoRuolo", "Produttore", i3),
        f"{i3}<Soggetto>\n",
        _el("TipoSoggetto", "PG", i4),
        _el("IndirizzoDigitaleDiRiferimento", mailbox, i4),
        f"{i3}</Soggetto>\n{i2}</Ruolo>\n",
        f"{i1}</Soggetti>\n",
        f"{i1}<ChiaveDescrittiva>\n",
        _el("Oggetto", doc.subject or "(senza oggetto)", i2),
        f"{i1}</ChiaveDescrittiva>\n",
        f"{i1}<Allegati>\n",
        _el("NumeroAllegati", len(doc.attachments), i2),
    ]
    for n, name in enumerate(doc.attachments, start=1):
        out += [
            f"{i2}<IndiceAllegati>\n",
            _el("Identificativo", f"{doc.identifier}-allegato-{n}", i3),
            _el("Descrizione", f"allegato contenuto nel messaggio: {name}", i3),
            f"{i2}</IndiceAllegati>\n",
        ]
    sealed = doc.signature in SEALED
    out += [
        f"{i1}</Allegati>\n",
        _el("Riservato", "false", i1),
        f"{i1}<IdentificativoDelFormato>\n",
        _el("Formato", "eml (message/rfc822)", i2),
        f"{i2}<ProdottoSoftware>\n",
        _el("NomeProdotto", "pecflow", i3),
        _el("VersioneProdotto", __version__, i3),
        _el("Produttore", "pecflow", i3),
        f"{i2}</ProdottoSoftware>\n",
        f"{i1}</IdentificativoDelFormato>\n",
        f"{i1}<Verifica>\n",
        _el("FirmatoDigitalmente", "false", i2),
        _el("SigillatoElettronicamente", "true" if sealed else "false", i2),
        _el("MarcaturaTemporale", "false", i2),
        _el("ConformitaCopieImmagineSuSupportoInformatico", "false", i2),
        f"{i1}</Verifica>\n",
        f"{i1}<IdAgg>\n",
        _el("TipoAggregazione", "Serie Documentale", i2),
        _el("IdAggregazione", series, i2),
        f"{i1}</IdAgg>\n",
    ]
    if doc.primary:
        out.append(_el("IdIdentificativoDocumentoPrimario", document_id(doc.primary), i1))
    out += [
        _el("NomeDelDocumento", doc.path.rsplit("/", 1)[-1], i1),
        _el("VersioneDelDocumento", "1", i1),
        _el("TempoDiConservazione", RETENTION_YEARS, i1),
    ]
    notes = [*doc.notes]
    if doc.signature:
        notes.append(SEAL_WORDS.get(doc.signature, f"sigillo: {doc.signature}"))
    out += [_el("Note", "; ".join(notes), i1), "</DocumentoInformatico>\n"]
    return "".join(out).encode("utf-8")


@dataclass(frozen=True, slots=True)
class IndexedFile:
    """A document and its metadata file, as the index lists them."""

    doc: Document
    metadata_sha256: str
    metadata_size: int


@dataclass(frozen=True, slots=True)
class PackageInfo:
    mailbox: str
    period: Period
    created_at: datetime
    created_by: str
    previous: Sequence[Period] = ()
    notes: Sequence[str] = field(default_factory=tuple)

    @property
    def identifier(self) -> str:
        return f"pdv-{self.mailbox}-{self.period.key}"

    @property
    def series(self) -> str:
        return f"PEC {self.mailbox}"


def _sincro(name: str, value: object, indent: str, **attrs: str) -> str:
    written = "".join(f" sincro:{k}={quoteattr(v)}" for k, v in attrs.items())
    return f"{indent}<sincro:{name}{written}>{_text(value)}</sincro:{name}>\n"


def index_xml(info: PackageInfo, files: Sequence[IndexedFile]) -> bytes:
    """The UNI SInCRO index (IdC) of the package: one FileGroup per document, its .eml and its
    metadata file (as the .eml's external metadata), each with its SHA-256 (hex)."""
    i1, i2, i3, i4, i5 = "  ", "    ", "      ", "        ", "          "
    local = {"scheme": "local"}
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<sincro:IdC xmlns:sincro="{SINCRO_NS}" xmlns:pf="{METADATA_NS}" sincro:language="it" '
        'sincro:sincroVersion="2.0">\n',
        f"{i1}<sincro:SelfDescription>\n",
        _sincro("ID", info.identifier, i2, **local),
        f"{i2}<sincro:CreatingApplication>\n",
        _sincro("Name", "pecflow", i3),
        _sincro("Version", __version__, i3),
        _sincro("Producer", "pecflow", i3),
        f"{i2}</sincro:CreatingApplication>\n",
        f'{i2}<sincro:MoreInfo sincro:XMLScheme="{METADATA_NS}">\n{i3}<sincro:EmbeddedMetadata>\n',
        f"{i4}<pf:Versamento>\n",
        f"{i5}<pf:Casella>{_text(info.mailbox)}</pf:Casella>\n",
        f"{i5}<pf:Dal>{info.period.first.isoformat()}</pf:Dal>\n",
        f"{i5}<pf:Al>{info.period.last.isoformat()}</pf:Al>\n",
        f"{i5}<pf:FusoOrario>{ROME}</pf:FusoOrario>\n",
        f"{i5}<pf:Documenti>{len(files)}</pf:Documenti>\n",
        *(
            f'{i5}<pf:PeriodoPrecedente dal="{p.first.isoformat()}" al="{p.last.isoformat()}"/>\n'
            for p in sorted(info.previous)
        ),
        *(f"{i5}<pf:Nota>{_text(n)}</pf:Nota>\n" for n in info.notes),
        f"{i4}</pf:Versamento>\n",
        f"{i3}</sincro:EmbeddedMetadata>\n{i2}</sincro:MoreInfo>\n",
        f"{i1}</sincro:SelfDescription>\n",
        f"{i1}<sincro:VdC>\n",
        _sincro("ID", info.identifier, i2, **local),
        _sincro("Label", f"Pacchetto di versamento della casella PEC {info.mailbox}, {info.period}", i2),
        f"{i1}</sincro:VdC>\n",
    ]
    for item in files:
        doc = item.doc
        label = SENT_TYPE if doc.category == SENT else DOCUMENT_TYPES.get(doc.kind, doc.kind)
        out += [
            f"{i1}<sincro:FileGroup>\n",
            _sincro("ID", doc.identifier, i2, **local),
            _sincro("Label", label, i2),
            f'{i2}<sincro:File sincro:format="message/rfc822" sincro:encoding="binary" sincro:extension="eml">\n',
            _sincro("ID", doc.identifier, i3, **local),
            _sincro("Path", doc.path, i3),
            _sincro("Hash", doc.sha256, i3, function=HASH_FUNCTION),
        ]
        if doc.primary:
            out += [
                f"{i3}<sincro:Relation>\n",
                _sincro("Type", "ricevuta del documento", i4),
                _sincro("Value", document_id(doc.primary), i4),
                f"{i3}</sincro:Relation>\n",
            ]
        out += [
            f'{i3}<sincro:MoreInfo sincro:XMLScheme="{METADATA_NS}">\n',
            f'{i4}<sincro:ExternalMetadata sincro:format="application/xml" sincro:encoding="8bit" '
            'sincro:extension="xml">\n',
            _sincro("ID", f"metadati-{doc.identifier}", i5, **local),
            _sincro("Path", doc.metadata_path, i5),
            _sincro("Hash", item.metadata_sha256, i5, function=HASH_FUNCTION),
            f"{i4}</sincro:ExternalMetadata>\n{i3}</sincro:MoreInfo>\n",
            f"{i2}</sincro:File>\n{i1}</sincro:FileGroup>\n",
        ]
    if not files:  # an empty period still says so: one group, no file but the index's own words
        out += [
            f"{i1}<sincro:FileGroup>\n",
            _sincro("ID", "nessun-documento", i2, **local),
            _sincro("Label", "nessun documento ricevuto o inviato nel periodo", i2),
            f"{i1}</sincro:FileGroup>\n",
        ]
    agent = [
        f"{i3}<sincro:AgentName>\n",
        _sincro("FormalName", f"Titolare della casella PEC {info.mailbox}", i4),
        f"{i3}</sincro:AgentName>\n",
        _sincro("RelevantDocument", f"casella PEC {info.mailbox}", i3),
    ]
    out += [
        f"{i1}<sincro:Process>\n",
        f'{i2}<sincro:Submitter sincro:type="legal person">\n',
        *agent,
        f"{i2}</sincro:Submitter>\n",
        f'{i2}<sincro:Holder sincro:type="legal person" sincro:role="soggetto produttore">\n',
        *agent,
        f"{i2}</sincro:Holder>\n",
        f'{i2}<sincro:AuthorizedSigner sincro:type="natural person" sincro:role="esportazione">\n',
        f"{i3}<sincro:AgentName>\n",
        _sincro("FormalName", info.created_by, i4),
        f"{i3}</sincro:AgentName>\n",
        _sincro("RelevantDocument", "registro delle attività di pecflow (audit)", i3),
        f"{i2}</sincro:AuthorizedSigner>\n",
        f"{i2}<sincro:TimeReference>\n",
        _sincro(
            "TimeInfo",
            info.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            i3,
            attachedTimeStamp="false",
        ),  # fmt: skip
        f"{i2}</sincro:TimeReference>\n",
        _sincro("LawsAndRegulations", LAWS, i2),
        f"{i1}</sincro:Process>\n",
        "</sincro:IdC>\n",
    ]
    return "".join(out).encode("utf-8")


# --- the schemas ----------------------------------------------------------------------------------
@cache
def schema(name: str) -> Any:
    """Our XSD (pecflow/schemas/), compiled once per process."""
    from importlib import resources

    import xmlschema

    source = resources.files("pecflow").joinpath("schemas", name).read_text("utf-8")
    return xmlschema.XMLSchema(source)


def schema_errors(xml: bytes, name: str) -> list[str]:
    """Why `xml` does not validate against our schema `name` ([]: it does). Read first by
    pecflow.pec.safexml, which refuses entities and DTD subsets, then by xmlschema with no
    resource allowed (no network, no file): about 10 ms per document's metadata."""
    import xmlschema

    from pecflow.pec import safexml

    try:
        safexml.parse(xml, max_bytes=len(xml) + 1, max_nodes=len(xml))
        resource = xmlschema.XMLResource(xml, allow="none")
    except (safexml.XmlError, xmlschema.XMLResourceError, SyntaxError) as exc:
        return [f"not well-formed XML: {exc}"]
    return [str(e.reason or e) for e in schema(name).iter_errors(resource)][:20]


# --- the offline check of a package ------------------------------------------------------------------
MAX_INDEX_BYTES = 256 * 1024 * 1024


@dataclass
class PackageCheck:
    """`pecflow conservazione verify`: what was checked, and every problem found, in words."""

    documents: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.files > 0 and not self.problems


def verify_package(zf: Any) -> PackageCheck:
    """Check a package (an open zipfile.ZipFile) with nothing else: the index validates; every file
    it lists is there with the SHA-256 it gives; no file is there that it does not list; every
    document's metadata validate and give the document's own fingerprint."""
    import hashlib

    from pecflow.pec import safexml

    check = PackageCheck()
    infos = {info.filename: info for info in zf.infolist()}
    if INDEX not in infos:
        check.problems.append(f"manca l'indice {INDEX}: non è un pacchetto di versamento di pecflow")
        return check
    if infos[INDEX].file_size > MAX_INDEX_BYTES:
        check.problems.append(f"{INDEX} è troppo grande per essere letto ({infos[INDEX].file_size} byte)")
        return check
    index = zf.read(INDEX)
    check.problems += [f"{INDEX} non è conforme allo schema: {e}" for e in schema_errors(index, INDEX_SCHEMA)]
    try:
        root = safexml.parse(index, max_bytes=len(index) + 1, max_nodes=len(index))
    except safexml.XmlError as exc:
        check.problems.append(f"{INDEX} non è leggibile: {exc}")
        return check

    def digest(name: str) -> str:
        hashed = hashlib.sha256()
        with zf.open(infos[name]) as f:
            while chunk := f.read(1024 * 1024):
                hashed.update(chunk)
        return hashed.hexdigest()

    listed = {INDEX}
    for group in (g for g in root.children if g.tag == "FileGroup"):
        for file in (f for f in group.children if f.tag == "File"):
            check.documents += 1
            entries = [(file.find("Path"), file.find("Hash"))]
            external = file.find("MoreInfo/ExternalMetadata")
            if external is not None:
                entries.append((external.find("Path"), external.find("Hash")))
            for path_node, hash_node in entries:
                if path_node is None or hash_node is None:
                    continue  # the schema said so already
                path, expected = path_node.text.strip(), hash_node.text.strip()
                listed.add(path)
                check.files += 1
                if path not in infos:
                    check.problems.append(f"{path}: MANCANTE (elencato nell'indice, assente nel pacchetto)")
                elif digest(path) != expected:
                    check.problems.append(f"{path}: ALTERATO (l'impronta SHA-256 non è quella dell'indice)")
            document_hash = file.find("Hash")
            if external is None or external.find("Path") is None or document_hash is None:
                continue
            meta_path = external.find("Path").text.strip()  # type: ignore[union-attr]
            if meta_path not in infos:
                continue
            meta = zf.read(infos[meta_path])
            check.problems += [
                f"{meta_path} non è conforme allo schema: {e}" for e in schema_errors(meta, METADATA_SCHEMA)
            ]
            try:
                fingerprint = safexml.parse(meta).find("IdDoc/ImprontaCrittograficaDelDocumento/Impronta")
            except safexml.XmlError:
                continue  # said by the schema check
            if fingerprint is None or fingerprint.text.strip() != document_hash.text.strip():
                check.problems.append(f"{meta_path}: i metadati non danno l'impronta del loro documento")
    for name in sorted(set(infos) - listed):
        check.problems.append(f"{name}: AGGIUNTO (nel pacchetto, ma non elencato nell'indice)")
    return check

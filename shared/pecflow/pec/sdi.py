"""SdI (Sistema di Interscambio) files carried by a PEC: invoices and their notifications.

Recognition is cheap first (the file name), then by content (the root element's local
name: the SdI publishes the same documents under a PA and a B2B namespace, with different
prefixes, so namespaces are ignored). Content wins over the name; a disagreement is a
problem. Untrusted bytes never raise out of `read_file` or `recognise`: whatever is wrong
is reported in `problems`. Signatures (XAdES in notifications, CAdES in `.p7m` invoices)
are not verified here.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pecflow.pec import p7m, safexml

MAX_FILE_BYTES = 8 * 1024 * 1024  # an attachment, p7m and base64 included
MAX_XML_BYTES = 5 * 1024 * 1024  # the SdI's own limit for a file
MAX_PROBE_BYTES = 1024 * 1024  # attachments read only to see whether they are SdI files
MAX_FIELD_CHARS = 1024
MAX_ERRORS = 200  # ListaErrori holds at most 200 Errore
MAX_BODIES = 1000
MAX_PAYMENTS = 50  # DettaglioPagamento kept per body
MAX_ATTACHMENTS = 500

NOTIFICATION_TYPES = {
    "RC": "Ricevuta di consegna",
    "NS": "Notifica di scarto",
    "MC": "Notifica di mancata consegna",
    "NE": "Notifica esito",
    "DT": "Notifica di decorrenza termini",
    "AT": "Attestazione di avvenuta trasmissione con impossibilità di recapito",
    "EC": "Notifica di esito committente",
    "SE": "Scarto esito committente",
    "MT": "File dei metadati",
}

# root local name -> type code; both dialects (PA fatturapa.gov.it, B2B ivaservizi)
ROOTS = {
    "RicevutaConsegna": "RC",
    "NotificaScarto": "NS",
    "RicevutaScarto": "NS",  # B2B
    "NotificaMancataConsegna": "MC",
    "RicevutaImpossibilitaRecapito": "MC",  # B2B
    "NotificaEsito": "NE",
    "NotificaDecorrenzaTermini": "DT",
    "AttestazioneTrasmissioneFattura": "AT",
    "MetadatiInvioFile": "MT",
    "FileMetadati": "MT",  # B2B
    "NotificaEsitoCommittente": "EC",
    "ScartoEsitoCommittente": "SE",
    "FatturaElettronica": "invoice",
    "FatturaElettronicaSemplificata": "invoice",
}
INVOICE_VERSIONS = ("FPA12", "FPR12", "FSM10")

# types whose schema requires NomeFile
_NOME_FILE_REQUIRED = {"RC", "NS", "MC", "NE", "DT", "AT", "MT"}

# notification values kept in SdiFile.fields, by path below the root (the path is the key)
_FIELDS = (
    "DataOraRicezione",
    "DataOraConsegna",
    "Destinatario/Codice",
    "Destinatario/Descrizione",
    "RiferimentoArchivio/IdentificativoSdI",
    "RiferimentoArchivio/NomeFile",
    "Descrizione",
    "Note",
    "CodiceDestinatario",
    "Formato",
    "TentativiInvio",
    "HashFileOriginale",
    "Hash",
    "DataMessaADisposizione",
    "Scarto",
    "MessageIdCommittente",
)
# the committente's outcome: at the root of EC, inside EsitoCommittente in NE
_ESITO_FIELDS = (
    "Esito",
    "Descrizione",
    "RiferimentoFattura/NumeroFattura",
    "RiferimentoFattura/AnnoFattura",
    "RiferimentoFattura/PosizioneFattura",
    "MessageIdCommittente",
)
_ATTRIBUTES = ("versione", "IntermediarioConDupliceRuolo")


@dataclass(frozen=True, slots=True)
class InvoiceSummary:
    """One FatturaElettronicaBody: DatiGenerali/DatiGeneraliDocumento."""

    tipo_documento: str | None = None
    divisa: str | None = None
    data: str | None = None
    numero: str | None = None
    importo_totale_documento: str | None = None
    # DatiPagamento/DettaglioPagamento: (DataScadenzaPagamento, ImportoPagamento), in order
    scadenze: tuple[tuple[str | None, str | None], ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "tipo_documento": self.tipo_documento,
            "divisa": self.divisa,
            "data": self.data,
            "numero": self.numero,
            "importo_totale_documento": self.importo_totale_documento,
            "scadenze": [{"data": data, "importo": importo} for data, importo in self.scadenze],
        }


@dataclass(frozen=True, slots=True)
class SdiFile:
    """One SdI file. `type` is the notification code (RC, NS, ...) or "invoice".

    `fields` holds the other key values by element name ("Group/Child" below a grouping
    element); an invoice's are `versione`, `CedentePrestatore/IdFiscaleIVA` (IdPaese +
    IdCodice), `.../CodiceFiscale`, `.../Denominazione` (or Nome + Cognome), and the same
    for `CessionarioCommittente`.
    """

    filename: str
    role: str  # "invoice" | "notification"
    type: str
    identificativo_sdi: str | None = None
    nome_file: str | None = None
    message_id: str | None = None
    pec_message_id: str | None = None
    fields: dict[str, str] = field(default_factory=dict, hash=False)
    errors: tuple[tuple[str, str], ...] = ()  # NS: (Codice, Descrizione)
    invoices: tuple[InvoiceSummary, ...] = ()
    problems: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "filename": self.filename,
            "role": self.role,
            "type": self.type,
            "identificativo_sdi": self.identificativo_sdi,
            "nome_file": self.nome_file,
            "message_id": self.message_id,
            "pec_message_id": self.pec_message_id,
            "fields": dict(self.fields),
            "errors": [{"codice": codice, "descrizione": descrizione} for codice, descrizione in self.errors],
            "invoices": [summary.to_dict() for summary in self.invoices],
            "problems": list(self.problems),
        }


@dataclass(frozen=True, slots=True)
class SdiInfo:
    """The SdI content of one PEC. `problems` gathers the files' problems and the envelope's."""

    type: str  # the notification code, "MT" for an invoice with its metadata, or "invoice"
    identificativo_sdi: str | None = None
    nome_file: str | None = None
    pec_message_id: str | None = None
    files: tuple[SdiFile, ...] = ()
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def invoices(self) -> tuple[InvoiceSummary, ...]:
        return tuple(summary for f in self.files for summary in f.invoices)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "identificativo_sdi": self.identificativo_sdi,
            "nome_file": self.nome_file,
            "pec_message_id": self.pec_message_id,
            "files": [f.to_dict() for f in self.files],
            "problems": list(self.problems),
        }


# --- file names ---------------------------------------------------------------------------

_INVOICE_NAME = re.compile(r"[A-Z]{2}[A-Z0-9]{2,28}_[A-Z0-9]{1,5}\.(?:XML|XML\.P7M|ZIP)", re.I)
_NOTIFICATION_NAME = re.compile(
    r"(?P<invoice>[A-Z]{2}[A-Z0-9]{2,28}_[A-Z0-9]{1,5})"
    r"_(?P<code>[A-Z]{2})_[A-Z0-9]{1,3}\.XML(?:\.P7M)?",
    re.I,
)


def _basename(filename: str) -> str:
    return re.split(r"[/\\]", filename.strip())[-1]


def classify_filename(filename: str) -> tuple[str, str | None] | None:
    """("invoice", None), ("notification", "RC"|...) or None, from the SdI naming rules."""
    if not isinstance(filename, str):
        return None
    name = _basename(filename)
    if _INVOICE_NAME.fullmatch(name):
        return "invoice", None
    match = _NOTIFICATION_NAME.fullmatch(name)
    if match:
        return "notification", match.group("code").upper()
    return None


def normalise_nome_file(name: str) -> str:
    """A file name as compared with a notification's NomeFile: no `.p7m`, lower-case extension."""
    name = _basename(name or "")
    while name.lower().endswith(".p7m"):
        name = name[:-4]
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.{ext.lower()}" if dot and stem else name


def _stem(name: str) -> str:
    """The invoice file name without extension, for comparing with a notification's prefix."""
    normal = normalise_nome_file(name)
    for ext in (".xml", ".zip"):
        if normal.endswith(ext):
            return normal[: -len(ext)]
    return normal


# --- content ------------------------------------------------------------------------------

_ROOT_TAG = re.compile(rb"<(?![?!/])(?:[A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)")
_COMMENT = re.compile(rb"<!--.*?(?:-->|\Z)", re.S)


def _sniff_root(content: bytes) -> str | None:
    """The root element's local name from the first bytes, without parsing the document."""
    head = content[:4096]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        head = head.decode("utf-16", errors="ignore").encode("utf-8", errors="ignore")
    match = _ROOT_TAG.search(_COMMENT.sub(b"", head) if b"<!--" in head else head)
    return match.group(1).decode("ascii", errors="replace") if match else None


def _looks_xml(content: bytes) -> bool:
    head = content[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] == b"<" or head[:2] in (b"\xff\xfe", b"\xfe\xff")


_BASE64 = re.compile(rb"[A-Za-z0-9+/=\s]+")


def _from_base64(content: bytes) -> bytes | None:
    text = content.strip()
    if not text or not _BASE64.fullmatch(text):
        return None
    try:
        return base64.b64decode(text.translate(None, b" \t\r\n\v\f"), validate=True)
    except (binascii.Error, ValueError):
        return None


def _looks_p7m(content: bytes) -> bool:
    head = content[:64].lstrip()
    return (content[:1] == b"\x30" and len(content) > 1 and content[1] >= 0x80) or head.startswith(
        (b"MI", b"-----BEGIN")
    )


def _unwrap(name: str, content: bytes, problems: list[str]) -> bytes | None:
    """The XML document in `content`: through the p7m envelope and base64 where present."""
    if _looks_xml(content):
        if name.lower().endswith(".p7m"):
            problems.append(f"{name}: named .p7m but holds plain XML (not signed)")
        return content
    if name.lower().endswith(".p7m") or _looks_p7m(content):
        try:
            content = p7m.extract_signed_content(content)
        except p7m.P7mError as exc:
            problems.append(f"{name}: unreadable p7m: {exc}")
            return None
    if not _looks_xml(content):
        decoded = _from_base64(content)
        if decoded is not None and _looks_xml(decoded):
            problems.append(f"{name}: content is base64 text of the XML")
            content = decoded
    return content


def _clip(name: str, key: str, value: str | None, problems: list[str]) -> str | None:
    if not value:
        return None
    return _cut(name, key, value, problems)


def _cut(name: str, key: str, value: str, problems: list[str]) -> str:
    """`value` (not empty) cut to MAX_FIELD_CHARS, reported in `problems`."""
    if len(value) > MAX_FIELD_CHARS:
        problems.append(f"{name}: {key} longer than {MAX_FIELD_CHARS} characters, cut")
        return value[:MAX_FIELD_CHARS]
    return value


def _collect(
    name: str, node: safexml.Node | None, paths: Iterable[str], into: dict[str, str], problems: list[str]
) -> None:
    """Non-empty values at `paths` below `node`; a key already set is kept."""
    if node is None:
        return
    for path in paths:
        value = _clip(name, path, node.findtext(path), problems)
        if value is not None and path not in into:
            into[path] = value


def _party(
    name: str, node: safexml.Node | None, prefix: str, into: dict[str, str], problems: list[str]
) -> None:
    """CedentePrestatore / CessionarioCommittente: tax ids and name (first found below the node)."""
    if node is None:
        return
    id_iva = next(node.iter("IdFiscaleIVA"), None)
    if id_iva is not None:
        value = (id_iva.findtext("IdPaese") or "") + (id_iva.findtext("IdCodice") or "")
        if value:
            into[f"{prefix}/IdFiscaleIVA"] = _cut(name, prefix, value, problems)
    codice_fiscale = next(node.iter("CodiceFiscale"), None)
    if codice_fiscale is not None and codice_fiscale.text:
        into[f"{prefix}/CodiceFiscale"] = _cut(name, prefix, codice_fiscale.text, problems)
    denominazione = next((n.text for n in node.iter("Denominazione") if n.text), None)
    if denominazione is None:
        nome = next((n.text for n in node.iter("Nome") if n.text), "")
        cognome = next((n.text for n in node.iter("Cognome") if n.text), "")
        denominazione = f"{nome} {cognome}".strip() or None
    if denominazione:
        into[f"{prefix}/Denominazione"] = _cut(name, prefix, denominazione, problems)


def _invoice(
    name: str, root: safexml.Node, problems: list[str]
) -> tuple[dict[str, str], tuple[InvoiceSummary, ...]]:
    fields: dict[str, str] = {}
    versione = _clip(name, "versione", root.attrs.get("versione", "").strip(), problems)
    if versione:
        fields["versione"] = versione
        if versione.upper() not in INVOICE_VERSIONS:
            problems.append(f"{name}: unknown invoice versione {versione!r}")
    else:
        problems.append(f"{name}: invoice has no versione")
    header = root.find("FatturaElettronicaHeader")
    if header is None:
        problems.append(f"{name}: <FatturaElettronicaHeader> missing")
    else:
        _party(name, header.find("CedentePrestatore"), "CedentePrestatore", fields, problems)
        _party(name, header.find("CessionarioCommittente"), "CessionarioCommittente", fields, problems)
    bodies = root.findall("FatturaElettronicaBody")
    if not bodies:
        problems.append(f"{name}: no <FatturaElettronicaBody>")
    if len(bodies) > MAX_BODIES:
        problems.append(f"{name}: {len(bodies)} invoice bodies, only the first {MAX_BODIES} summarised")
    summaries = []
    for body in bodies[:MAX_BODIES]:
        doc = body.find("DatiGenerali/DatiGeneraliDocumento")
        if doc is None:
            problems.append(f"{name}: a body without <DatiGenerali>/<DatiGeneraliDocumento>")
            summaries.append(InvoiceSummary())
            continue
        values = {
            tag: _clip(name, tag, doc.findtext(tag), problems)
            for tag in ("TipoDocumento", "Divisa", "Data", "Numero", "ImportoTotaleDocumento")
        }
        payments = [d for p in body.findall("DatiPagamento") for d in p.findall("DettaglioPagamento")]
        scadenze = tuple(
            (
                _clip(name, "DataScadenzaPagamento", d.findtext("DataScadenzaPagamento"), problems),
                _clip(name, "ImportoPagamento", d.findtext("ImportoPagamento"), problems),
            )
            for d in payments[:MAX_PAYMENTS]
        )
        summaries.append(
            InvoiceSummary(
                values["TipoDocumento"],
                values["Divisa"],
                values["Data"],
                values["Numero"],
                values["ImportoTotaleDocumento"],
                scadenze,
            )
        )
    return fields, tuple(summaries)


def _notification(
    name: str, code: str, root: safexml.Node, problems: list[str]
) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    fields: dict[str, str] = {}
    for attr in _ATTRIBUTES:
        value = _clip(name, attr, root.attrs.get(attr, "").strip(), problems)
        if value:
            fields[attr] = value
    if code == "NE":
        esito = root.find("EsitoCommittente")
        if esito is None:
            problems.append(f"{name}: NotificaEsito without <EsitoCommittente>")
        _collect(name, esito, _ESITO_FIELDS, fields, problems)
    elif code == "EC":
        _collect(name, root, _ESITO_FIELDS, fields, problems)
    _collect(name, root, _FIELDS, fields, problems)
    if code in ("NE", "EC") and fields.get("Esito") not in ("EC01", "EC02"):
        problems.append(f"{name}: Esito {fields.get('Esito')!r} is neither EC01 nor EC02")
    if code == "SE" and fields.get("Scarto") not in ("EN00", "EN01"):
        problems.append(f"{name}: Scarto {fields.get('Scarto')!r} is neither EN00 nor EN01")
    errors: list[tuple[str, str]] = []
    if code == "NS":
        found = [e for lista in root.findall("ListaErrori") for e in lista.findall("Errore")]
        if not found:
            problems.append(f"{name}: notifica di scarto without <ListaErrori>/<Errore>")
        if len(found) > MAX_ERRORS:
            problems.append(f"{name}: {len(found)} errors, only the first {MAX_ERRORS} kept")
        for errore in found[:MAX_ERRORS]:
            errors.append(
                (
                    _clip(name, "Codice", errore.findtext("Codice"), problems) or "",
                    _clip(name, "Descrizione", errore.findtext("Descrizione"), problems) or "",
                )
            )
    return fields, tuple(errors)


def _read(name: str, content: bytes) -> SdiFile | None:
    by_name = classify_filename(name)
    name_type = (by_name[1] or "invoice") if by_name else None
    problems: list[str] = []
    if by_name and by_name[0] == "notification" and by_name[1] not in NOTIFICATION_TYPES:
        problems.append(f"{name}: unknown notification type code {by_name[1]!r} in the file name")
    if name_type == "invoice" and name.lower().endswith(".zip"):
        return SdiFile(
            name, "invoice", "invoice", problems=(f"{name}: zip archive of invoices, not inspected",)
        )
    if len(content) > MAX_FILE_BYTES:
        if by_name is None:
            return None
        problems.append(f"{name}: {len(content)} bytes exceed the {MAX_FILE_BYTES}-byte limit, not read")
        document = None
    else:
        document = _unwrap(name, content, problems)
    sniffed = ROOTS.get(_sniff_root(document) or "") if document else None
    if by_name is None and sniffed is None:
        return None  # neither the name nor the content is SdI's

    root = None
    if document is not None:
        if not document.strip():
            problems.append(f"{name}: empty file")
        else:
            try:
                root = safexml.parse(document, max_bytes=MAX_XML_BYTES)
            except safexml.XmlError as exc:
                problems.append(f"{name}: {exc}")
    if root is not None:
        kind = ROOTS.get(root.tag)
        if kind is None:
            # readable XML that is not an SdI document: the content wins over an SdI-like name
            # (an "ordine_0088.xml" attached to an ordinary PEC is just an order)
            return None
    else:
        kind = sniffed or name_type
        assert kind is not None  # the name or the content is SdI's (checked above)
    if name_type and kind != name_type:
        problems.append(f"{name}: the file name says {name_type}, the content is {kind}")

    role = "invoice" if kind == "invoice" else "notification"
    if root is None:
        return SdiFile(name, role, kind, problems=tuple(problems))
    if kind == "invoice":
        fields, summaries = _invoice(name, root, problems)
        return SdiFile(name, role, kind, fields=fields, invoices=summaries, problems=tuple(problems))

    def own(tag: str) -> str | None:
        return _clip(name, tag, root.findtext(tag), problems)

    identificativo, nome_file = own("IdentificativoSdI"), own("NomeFile")
    message_id, pec_message_id = own("MessageId"), own("PecMessageId")
    fields, errors = _notification(name, kind, root, problems)
    if identificativo is None:
        problems.append(f"{name}: <IdentificativoSdI> missing")
    if nome_file is None and kind in _NOME_FILE_REQUIRED:
        problems.append(f"{name}: <NomeFile> missing")
    match = _NOTIFICATION_NAME.fullmatch(name)
    if match and nome_file and match.group("invoice").lower() != _stem(nome_file).lower():
        problems.append(
            f"{name}: file name prefix {match.group('invoice')!r} does not match NomeFile {nome_file!r}"
        )
    return SdiFile(
        name,
        role,
        kind,
        identificativo_sdi=identificativo,
        nome_file=nome_file,
        message_id=message_id,
        pec_message_id=pec_message_id,
        fields=fields,
        errors=errors,
        problems=tuple(problems),
    )


class InvoiceUnreadable(ValueError):
    """An invoice file whose document cannot be had: a broken or unsigned .p7m, XML that does
    not parse, or XML that is not a FatturaPA (the reason, for the person who reads it)."""


def invoice_document(filename: str, content: bytes) -> bytes:
    """The FatturaPA XML of an invoice file: the file itself, or the signed content of a `.p7m`
    (which must name a signer). Raises InvoiceUnreadable saying why there is none."""
    name = _basename(filename) if isinstance(filename, str) else ""
    data = _as_bytes(content)
    signed = name.lower().endswith(".p7m")
    if signed or (not _looks_xml(data) and _looks_p7m(data)):
        if signed and _looks_xml(data):
            raise InvoiceUnreadable(f"{name}: file .p7m non firmato (contiene XML in chiaro)")
        try:
            data = p7m.extract_signed_content(data, require_signer=True)
        except p7m.P7mError as exc:
            raise InvoiceUnreadable(f"{name}: busta .p7m illeggibile ({exc})") from None
    if not _looks_xml(data):
        decoded = _from_base64(data)
        data = decoded if decoded is not None and _looks_xml(decoded) else data
    try:
        root = safexml.parse(data, max_bytes=MAX_XML_BYTES)
    except safexml.XmlError as exc:
        raise InvoiceUnreadable(f"{name}: XML della fattura non leggibile ({exc})") from None
    except (RecursionError, MemoryError, ValueError, LookupError) as exc:
        raise InvoiceUnreadable(f"{name}: XML della fattura non leggibile ({type(exc).__name__})") from None
    if ROOTS.get(root.tag) != "invoice":
        raise InvoiceUnreadable(f"{name}: il documento <{root.tag}> non è una FatturaPA")
    return data


def _as_bytes(content: object) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, (bytearray, memoryview)):
        return bytes(content)
    if isinstance(content, str):
        return content.encode("utf-8", errors="replace")
    return b""


def read_file(filename: str, content: bytes) -> SdiFile | None:
    """One attachment as an SdI file, or None when neither its name nor its content is SdI's."""
    name = _basename(filename) if isinstance(filename, str) else ""
    try:
        return _read(name, _as_bytes(content))
    except (RecursionError, MemoryError, ValueError, LookupError) as exc:
        # safety net for the ingest path: one poison attachment must not stop the mailbox
        return _unreadable(name, f"unexpected error reading the file ({type(exc).__name__}: {exc})")


def _unreadable(name: str, why: str) -> SdiFile | None:
    """A file known only by its SdI name, or None when the name is not SdI's either."""
    by_name = classify_filename(name)
    if by_name is None:
        return None
    return SdiFile(name, by_name[0], by_name[1] or "invoice", problems=(f"{name}: {why}",))


def recognise(attachments: Iterable[tuple[str, Callable[[], bytes]]]) -> SdiInfo | None:
    """The SdI files among a PEC's attachments, given as (filename, get_content) pairs.

    `get_content` is called only for names that look like SdI files or end in .xml/.p7m,
    and the latter are inspected only when small. None when no SdI file is present.
    """
    files: list[SdiFile] = []
    problems: list[str] = []
    for count, item in enumerate(attachments):
        if count >= MAX_ATTACHMENTS:
            problems.append(f"more than {MAX_ATTACHMENTS} attachments, the rest not inspected")
            break
        try:
            filename, get_content = item
        except (TypeError, ValueError):
            continue
        name = _basename(filename) if isinstance(filename, str) else ""
        sdi_name = classify_filename(name) is not None
        if not sdi_name and not name.lower().endswith((".xml", ".p7m")):
            continue
        try:
            content = _as_bytes(get_content())
        except Exception as exc:  # the caller's MIME decoding; one broken part must not stop the rest
            found = _unreadable(name, f"content could not be read ({type(exc).__name__}: {exc})")
            if found is not None:
                files.append(found)
            continue
        if not sdi_name and len(content) > MAX_PROBE_BYTES:
            continue
        found = read_file(name, content)
        if found is not None:
            files.append(found)
    return _envelope(files, problems) if files else None


def _envelope(files: list[SdiFile], problems: list[str]) -> SdiInfo:
    notifications = [f for f in files if f.role == "notification"]
    invoices = [f for f in files if f.role == "invoice"]
    for f in files:
        problems.extend(f.problems)
    if not notifications:
        return SdiInfo("invoice", files=tuple(files), problems=tuple(problems))

    types = sorted({f.type for f in notifications})
    if len(types) > 1:
        problems.append(f"several SdI notification types in one message: {', '.join(types)}")
    main = notifications[0]
    if invoices:
        main = next((f for f in notifications if f.type == "MT"), main)
        if main.type != "MT":
            problems.append(f"invoice file(s) delivered with a {main.type} notification, not with metadata")
    if main.type == "MT":
        sent = {normalise_nome_file(f.filename).lower() for f in invoices}
        if not invoices:
            problems.append("metadata file (MT) without its invoice")
        elif main.nome_file and normalise_nome_file(main.nome_file).lower() not in sent:
            problems.append(
                f"MT NomeFile {main.nome_file!r} matches none of the invoice files "
                f"({', '.join(f.filename for f in invoices)})"
            )
    return SdiInfo(
        main.type,
        identificativo_sdi=main.identificativo_sdi,
        nome_file=main.nome_file,
        pec_message_id=main.pec_message_id,
        files=tuple(files),
        problems=tuple(problems),
    )

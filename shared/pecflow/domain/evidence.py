"""The evidence pack of one message (fascicolo probatorio): what is in it, where, and the
documents written from the records (timeline, summary, manifest). Pure: the service
(pecflow.services.evidence) streams the archived bytes into the zip; this module names the files
and writes the small ones.

A pack is a zip holding, in this order:

    messaggio.eml                      the message, byte for byte as archived
    ricevute/NN-<kind>-<sha16>.eml     every receipt of the messages it is linked to, as archived
    inviati/NN-<sha16>.eml             what we submitted (the message a receipt is about, a reply)
    dati-certificazione/<file>.xml     daticert.xml (REM: the evidence XML) taken out of each .eml
    cronologia.json                    the timeline: when each thing happened, with its outcome
    registro-accessi.json              the audit trail of the message (who saw, downloaded, acted)
    ancore/gestori.pem                 the providers' trust anchors the installation used
    ancore/tsa.pem                     the time-stamping authority's certificates (when configured)
    riepilogo.pdf                      the summary, in Italian, for a person
    manifest.json                      the SHA-256 and size of every file above
    manifest.tsr                       the TSA's RFC 3161 answer (TimeStampResp) over the manifest's SHA-256

The manifest is written last but one, once every hash is known; the time-stamp over it is the
last file. Changing any byte of any file changes its hash (caught against the manifest), and
changing the manifest changes its hash (caught against the time-stamp).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pecflow.domain.campaign.pdf import text_pdf
from pecflow.pec import kinds, mime, rem

PACK_FORMAT = 1
MESSAGE = "messaggio.eml"
RECEIPTS = "ricevute/"
SENT = "inviati/"
XML = "dati-certificazione/"
TIMELINE = "cronologia.json"
AUDIT = "registro-accessi.json"
PROVIDER_ANCHORS = "ancore/gestori.pem"
TSA_ANCHORS = "ancore/tsa.pem"
SUMMARY = "riepilogo.pdf"
MANIFEST = "manifest.json"
TOKEN = "manifest.tsr"

# what each file is (the manifest's `role`)
ROLE_MESSAGE, ROLE_RECEIPT, ROLE_SENT = "messaggio", "ricevuta", "inviato"
ROLE_DATICERT, ROLE_REM = "daticert", "evidenza-rem"
ROLE_TIMELINE, ROLE_AUDIT, ROLE_SUMMARY = "cronologia", "registro-accessi", "riepilogo"
ROLE_PROVIDER_ANCHORS, ROLE_TSA_ANCHORS = "ancore-gestori", "ancore-tsa"
SIGNED_ROLES = (ROLE_MESSAGE, ROLE_RECEIPT)  # signed by a provider: their signature is checked

PARSE_BYTES = 256 * 1024  # the head and the tail of a message read to take its XML out: a
# provider's text and daticert come first, in a few KB; a REM evidence may follow the original
_DATICERT_NAMES = ("daticert.xml", "certdata.xml")

KIND_WORDS = {
    kinds.POSTA_CERTIFICATA: "busta di trasporto (messaggio di posta certificata)",
    kinds.ANOMALIA: "busta di anomalia",
    kinds.ACCETTAZIONE: "ricevuta di accettazione",
    kinds.NON_ACCETTAZIONE: "avviso di non accettazione",
    kinds.PRESA_IN_CARICO: "ricevuta di presa in carico",
    kinds.AVVENUTA_CONSEGNA: "ricevuta di avvenuta consegna",
    kinds.ERRORE_CONSEGNA: "avviso di mancata consegna",
    kinds.PREAVVISO_ERRORE_CONSEGNA: "preavviso di mancata consegna",
    kinds.RILEVAZIONE_VIRUS: "avviso di rilevazione virus",
    kinds.POSTA_ORDINARIA: "posta ordinaria (non certificata)",
    kinds.MALFORMED: "messaggio non leggibile",
}
SIGNATURE_WORDS = {
    "valid": "valida",
    "invalid": "NON VALIDA (il messaggio o la firma sono stati alterati)",
    "untrusted": "corrispondente ai byte, ma il certificato non è riconosciuto da un'ancora di fiducia",
    "missing": "assente",
    "expired": "corrispondente ai byte, ma il certificato era scaduto alla firma",
}
STATE_WORDS = {
    "pending": "in attesa di invio",
    "sending": "in invio",
    "sent": "inviato",
    "sent?": "inviato (esito incerto)",
    "accepted": "accettato dal gestore",
    "delivered": "consegnato",
    "failed": "non consegnato",
    "not-accepted": "non accettato",
}


def kind_words(kind: str | None) -> str:
    return KIND_WORDS.get(str(kind), str(kind or "sconosciuto"))


def signature_words(outcome: str | None) -> str:
    return SIGNATURE_WORDS.get(str(outcome), "non verificata") if outcome else "non verificata"


def _slug(text: str, size: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:size] or "x"


def receipt_path(n: int, kind: str | None, sha256: str) -> str:
    return f"{RECEIPTS}{n:03d}-{_slug(str(kind or 'ricevuta'))}-{sha256[:16]}.eml"


def sent_path(n: int, key: str) -> str:
    return f"{SENT}{n:02d}-{_slug(key.rsplit('/', 1)[-1].removesuffix('.eml'), 32)}.eml"


def xml_path(eml_path: str, what: str) -> str:
    """Where the XML taken out of the .eml at `eml_path` goes (what: "daticert" | "evidenza-rem")."""
    stem = eml_path.removesuffix(".eml").replace("/", "-")
    return f"{XML}{stem}-{what}.xml"


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of a pack, as the manifest lists it."""

    path: str
    sha256: str
    size: int
    role: str
    of: str | None = None  # the .eml an extracted XML comes from

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "role": self.role,
        }
        if self.of:
            out["of"] = self.of
        return out


# --- the XML a provider certifies, taken out of a message --------------------------------------
def certified_xml(head: bytes, tail: bytes = b"", *, complete: bool) -> list[tuple[str, bytes]]:
    """The daticert.xml (ROLE_DATICERT) and REM evidence (ROLE_REM) of the message whose first
    bytes are `head` and last bytes `tail` (`complete`: `head` is the whole message). A large
    message is read as its head and tail joined, its middle (the original it carries) left out:
    only parts wholly inside the head or wholly inside the tail are taken. Never raises: a
    message without them gives []."""
    found = _certified(head, len(head), complete)
    if found or complete or not tail:
        return found
    return _certified(head + tail, len(head), False)


def _certified(data: bytes, head: int, complete: bool) -> list[tuple[str, bytes]]:
    def whole(part: mime.Part) -> bool:  # not cut where the head ends (or where the tail begins)
        return complete or part.end < head or part.start > head

    try:
        root = mime.Part(data, 0, len(data))
        if "rem-messagetype" in root.headers or "rem-eventidentifier" in root.headers:
            evidence = rem.survey(root).evidence
            return [(ROLE_REM, evidence.decoded())] if evidence is not None and whole(evidence) else []
        for part in root.walk():  # not into the messages it carries: their daticert is theirs
            if (part.filename or "").lower() in _DATICERT_NAMES and whole(part):
                return [(ROLE_DATICERT, part.decoded())]
        return []
    except Exception:  # noqa: BLE001 - a hostile message gives no XML, never a failed pack
        return []


# --- the documents -----------------------------------------------------------------------------
# what the pack says of a receipt (a 500-recipient message's receipts each list 500 recipients:
# the pack keeps only these, so its memory does not grow with recipients x receipts)
RECEIPT_FIELDS = ("kind", "sha256", "delivered_to", "error", "error_detail", "signature", "signer",
                  "signed_at", "timestamp", "received_at", "identificativo")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Receipt:
    """A receipt of a sent message, as recorded, and where its bytes are in the pack."""

    sha256: str
    kind: str | None
    at: str | None
    path: str | None  # None: the receipt's original is not archived
    fields: Mapping[str, Any]  # its message record's RECEIPT_FIELDS


@dataclass(frozen=True, slots=True)
class Sent:
    """A message we sent that the pack's message is linked to (it is about it, or it was sent
    from it), with its receipts in the order they arrived."""

    message_id: str
    relation: str  # "riguarda" (the pack's message is about it) | "risposta" | "inoltro"
    subject: str | None
    recipient: str | None
    state: str | None
    error: str | None
    reached_at: Mapping[str, str]
    receipts: Sequence[Receipt]
    path: str | None = None  # what we submitted, when archived


def _message_event(fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    if fields.get("timestamp"):
        out.append(
            {"at": fields["timestamp"], "event": "certificato dal gestore (daticert)", "file": MESSAGE}
        )
    out.append(
        {
            "at": fields.get("received_at"),
            "event": f"ricevuto nella casella: {kind_words(fields.get('kind'))}",
            "file": MESSAGE,
            "sha256": fields.get("sha256"),
            "signature": fields.get("signature"),
            "signer": (fields.get("signer") or {}).get("subject"),
        }
    )
    return out


def timeline(fields: Mapping[str, Any], sent: Sequence[Sent]) -> list[dict[str, Any]]:
    """Every dated event of the message and of the messages it is linked to, oldest first."""
    events = _message_event(fields)
    for s in sent:
        for state, at in s.reached_at.items():
            events.append(
                {"at": at, "event": f"messaggio {s.message_id}: {STATE_WORDS.get(state, state)}",
                 "message_id": s.message_id, "state": state}
            )  # fmt: skip
        for r in s.receipts:
            events.append(
                {
                    "at": r.at or r.fields.get("timestamp") or r.fields.get("received_at"),
                    "event": kind_words(r.kind),
                    "message_id": s.message_id,
                    "file": r.path,
                    "sha256": r.sha256,
                    "delivered_to": r.fields.get("delivered_to"),
                    "error": r.fields.get("error") or None,
                    "error_detail": r.fields.get("error_detail") or None,
                    "signature": r.fields.get("signature"),
                    "signer": (r.fields.get("signer") or {}).get("subject"),
                }
            )
    cleaned = [{k: v for k, v in e.items() if v not in (None, "", [])} for e in events]
    return sorted(cleaned, key=lambda e: str(e.get("at") or ""))


def json_bytes(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n").encode()


def _when(value: Any) -> str:
    """A time as an Italian reader reads it: Rome's time, said (UTC where no tz database is)."""
    if not value:
        return "non indicata"
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if at.tzinfo is None:
        return at.strftime("%d/%m/%Y %H:%M:%S")
    try:
        from zoneinfo import ZoneInfo

        return at.astimezone(ZoneInfo("Europe/Rome")).strftime("%d/%m/%Y %H:%M:%S (ora italiana)")
    except Exception:  # noqa: BLE001 - no tz database: the time in UTC, said so
        return at.astimezone(UTC).strftime("%d/%m/%Y %H:%M:%S (UTC)")


# how a message of ours stands to the one described (Sent.relation), in words
RELATION = {
    "riguarda": "a cui questo messaggio si riferisce",
    "risposta": "risposta inviata da qui",
    "inoltro": "inoltro inviato da qui",
    "risposta automatica": "risposta automatica inviata da qui",
}


def sent_lines(s: Sent, *, with_files: bool) -> list[str]:
    """A message we sent and its receipts, for a reader (the pack's summary, a rule's printout):
    `with_files` adds where each is in the pack and its SHA-256."""
    lines = [
        "",
        f"Messaggio inviato {s.message_id} ({RELATION.get(s.relation, s.relation)})",
        f"  Oggetto: {s.subject or '(nessuno)'}",
        f"  Destinatario: {s.recipient or 'non indicato'}",
        f"  Stato: {STATE_WORDS.get(str(s.state), str(s.state))}" + (f"; {s.error}" if s.error else ""),
    ]
    if with_files and s.path:
        lines.append(f"  Copia di quanto inviato: {s.path}")
    if not s.receipts:
        lines.append("  Nessuna ricevuta registrata.")
    for r in s.receipts:
        f = r.fields
        what = kind_words(r.kind)
        if f.get("delivered_to"):
            what += f" per {f['delivered_to']}"
        lines.append(f"  - {_when(r.at or f.get('timestamp'))}: {what}")
        if f.get("error"):
            lines.append(f"    Esito: errore {f['error']} {f.get('error_detail') or ''}".rstrip())
        if with_files:
            lines.append(f"    File: {r.path or 'originale non archiviato'}")
        lines.append(f"    {_signature_line(f)}")
        if with_files:
            lines.append(f"    SHA-256: {r.sha256}")
    return lines


def _signature_line(fields: Mapping[str, Any]) -> str:
    signer = fields.get("signer") or {}
    line = f"Firma del gestore: {signature_words(fields.get('signature'))}"
    if signer.get("subject"):
        line += (
            f"; firmato da {signer['subject']} (certificato n. {signer.get('serial', '?')}, "
            f"emesso da {signer.get('issuer', '?')})"
        )
    if fields.get("signed_at"):
        line += f"; firmato il {_when(fields['signed_at'])}"
    return line


def summary_text(
    *,
    mailbox: str,
    fields: Mapping[str, Any],
    sent: Sequence[Sent],
    entries: Iterable[Entry],
    created_at: datetime,
    created_by: str,
    tsa_url: str | None,
) -> str:
    """The summary for a person (a judge, a lawyer), in Italian: who sent what to whom, when each
    receipt arrived and with what outcome, the signatures, the hashes, and how to check them."""
    recipients = (
        ", ".join(
            f"{r.get('address')}" + (f" ({r.get('type')})" if r.get("type") else "")
            for r in fields.get("recipients") or ()
        )
        or ", ".join(fields.get("to") or ())
        or "non indicati"
    )
    lines = [
        "FASCICOLO PROBATORIO DI UN MESSAGGIO PEC",
        "",
        f"Casella: {mailbox}",
        f"Fascicolo creato il {_when(created_at.isoformat())} da {created_by} con pecflow.",
        "",
        "1. IL MESSAGGIO (file messaggio.eml, copia esatta dell'originale archiviato)",
        f"Tipo: {kind_words(fields.get('kind'))}",
        f"Mittente: {fields.get('sender') or fields.get('from') or 'non indicato'}",
        f"Destinatari: {recipients}",
        f"Oggetto: {fields.get('original_subject') or fields.get('subject') or '(nessuno)'}",
        f"Identificativo PEC: {fields.get('identificativo') or 'non indicato'}",
        f"Data certificata dal gestore: {_when(fields.get('timestamp'))}",
        f"Gestore: {fields.get('provider') or 'non indicato'}",
        f"Arrivato nella casella il: {_when(fields.get('received_at'))}",
        _signature_line(fields),
        f"SHA-256: {fields.get('sha256')}",
    ]
    if fields.get("error"):
        lines.append(
            f"Errore indicato dal gestore: {fields['error']} {fields.get('error_detail') or ''}".strip()
        )
    lines += ["", "2. MESSAGGI INVIATI COLLEGATI E LORO RICEVUTE"]
    if not sent:
        lines.append("Nessun messaggio inviato da questa casella è collegato a questo messaggio.")
    for s in sent:
        lines += sent_lines(s, with_files=True)
    lines += ["", "3. IMPRONTE SHA-256 DEI FILE DEL FASCICOLO"]
    for e in entries:
        lines.append(f"{e.path}")
        lines.append(f"  {e.sha256} ({e.size:,} byte)".replace(",", "."))
    lines += [
        "",
        "4. COME VERIFICARE",
        "Il file manifest.json elenca l'impronta SHA-256 di ogni file; manifest.tsr è una marca",
        "temporale RFC 3161 sull'impronta di manifest.json"
        + (f", rilasciata da {tsa_url}." if tsa_url else "."),
        "Il comando `pecflow evidence verify fascicolo.zip --anchors <certificati dei gestori>`",
        "ricalcola ogni impronta, verifica le firme dei gestori sui file .eml e la marca temporale,",
        "senza accesso a pecflow né a Internet. Questo riepilogo è solo per la lettura: hanno",
        "valore i file .eml originali e la loro firma.",
    ]
    return "\n".join(lines) + "\n"


def summary_pdf(text: str) -> bytes:
    return text_pdf(text, font_size=9.5)


def manifest(
    *,
    mailbox: str,
    message: str,
    entries: Sequence[Entry],
    created_at: datetime,
    created_by: str,
    tsa_url: str | None,
) -> bytes:
    return json_bytes(
        {
            "pecflow_evidence": PACK_FORMAT,
            "mailbox": mailbox,
            "message": message,
            "created_at": created_at.isoformat(),
            "created_by": created_by,
            "hash": "sha256",
            "files": [e.to_dict() for e in entries],
            "timestamp": {"file": TOKEN, "tsa": tsa_url} if tsa_url else None,
        }
    )

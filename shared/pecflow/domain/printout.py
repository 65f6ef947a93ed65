"""A printable PDF of one message with its receipts (the rules' `pdf` action), in Italian: what
the message is and says, its attachments, and the messages of ours it is linked to (the one a
receipt is about, a reply sent from it) with each receipt and its outcome. Written with the
campaigns' PDF writer (pecflow.domain.campaign.pdf), in the evidence pack's words
(pecflow.domain.evidence). For reading only: the archived .eml and its signature are what count.
Pure domain code: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pecflow.domain.campaign.pdf import text_pdf
from pecflow.domain.evidence import Sent, kind_words, sent_lines
from pecflow.domain.evidence import _signature_line as signature_line
from pecflow.domain.evidence import _when as when

MAX_BODY_CHARS = 200_000  # longer texts are cut (the original is whole in the archive)


def printout_text(mailbox: str, fields: Mapping[str, Any], body: str | None, sent: Sequence[Sent]) -> str:
    recipients = ", ".join(
        f"{r.get('address')}" + (f" ({r.get('type')})" if r.get("type") else "")
        for r in fields.get("recipients") or ()
    ) or ", ".join(fields.get("to") or ())
    lines = [
        "MESSAGGIO DI POSTA CERTIFICATA - COPIA STAMPABILE",
        "",
        f"Casella: {mailbox}",
        f"Tipo: {kind_words(fields.get('kind'))}",
        f"Mittente: {fields.get('sender') or fields.get('from') or 'non indicato'}",
        f"Destinatari: {recipients or 'non indicati'}",
        f"Oggetto: {fields.get('original_subject') or fields.get('subject') or '(nessuno)'}",
        f"Identificativo PEC: {fields.get('identificativo') or 'non indicato'}",
        f"Data certificata dal gestore: {when(fields.get('timestamp'))}",
        f"Gestore: {fields.get('provider') or 'non indicato'}",
        f"Arrivato nella casella il: {when(fields.get('received_at'))}",
        signature_line(fields),
        f"SHA-256 dell'originale: {fields.get('sha256')}",
    ]
    if fields.get("error"):
        lines.append(
            f"Errore indicato dal gestore: {fields['error']} {fields.get('error_detail') or ''}".rstrip()
        )
    attachments = fields.get("attachments") or []
    lines += ["", "ALLEGATI"]
    if not attachments:
        lines.append("Nessun allegato.")
    for a in attachments:
        size = f"{int(a.get('size') or 0):,}".replace(",", ".")
        lines.append(
            f"- {a.get('filename') or '(senza nome)'} ({a.get('format') or a.get('content_type')}, {size} byte)"
        )
    lines += ["", "TESTO"]
    text = (body or "").replace("\r\n", "\n").strip("\n")
    if len(text) > MAX_BODY_CHARS:
        text = text[:MAX_BODY_CHARS] + "\n[... testo tagliato: è intero nell'originale archiviato]"
    lines.append(text or "(nessun testo)")
    lines += ["", "MESSAGGI INVIATI COLLEGATI E LORO RICEVUTE"]
    if not sent:
        lines.append("Nessun messaggio inviato da questa casella è collegato a questo messaggio.")
    for s in sent:
        lines += sent_lines(s, with_files=False)
    lines += [
        "",
        "Copia per la lettura: hanno valore il file .eml originale archiviato e la firma del gestore.",
    ]
    return "\n".join(lines) + "\n"


def printout_pdf(mailbox: str, fields: Mapping[str, Any], body: str | None, sent: Sequence[Sent]) -> bytes:
    return text_pdf(printout_text(mailbox, fields, body, sent), font_size=9.5)

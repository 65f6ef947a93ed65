"""The SdI e-invoicing lifecycle: an invoice's state and the notifications that move it.

Active invoices (sent by the mailbox to the SdI) start `inviata`; the SdI answers with RC
(consegnata), NS (scartata), MC (non recapitata), then for an invoice to a public administration
NE (accettata / rifiutata by the PA's esito), DT (decorrenza termini: no esito in 15 days) or AT
(attestazione: the PA could not be reached). Passive invoices (received) start `ricevuta`; for
those to a PA the office owes its esito committente (EC) within 15 days, else DT; SE says the
SdI refused our esito.

`advance` never raises: a notification that cannot move the invoice from its state leaves it
where it is with a note saying why; a notification seen already changes nothing. Each step says
the deadline that follows, if any. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pecflow.domain.campaign.export import export_rows

ACTIVE, PASSIVE = "active", "passive"

# states (the words the office reads)
INVIATA = "inviata"
CONSEGNATA = "consegnata"
SCARTATA = "scartata"
NON_RECAPITATA = "non recapitata"
ACCETTATA = "accettata"
RIFIUTATA = "rifiutata"
DECORRENZA_TERMINI = "decorrenza termini"
ATTESTAZIONE = "attestazione"  # AT: transmitted, the PA could not be reached
RICEVUTA = "ricevuta"
ESITO_SCARTATO = "esito scartato"  # SE: the SdI refused the esito committente

ACTIVE_STATES = (INVIATA, CONSEGNATA, SCARTATA, NON_RECAPITATA, ACCETTATA, RIFIUTATA,
                 DECORRENZA_TERMINI, ATTESTAZIONE)  # fmt: skip
PASSIVE_STATES = (RICEVUTA, ACCETTATA, RIFIUTATA, DECORRENZA_TERMINI, ESITO_SCARTATO)
STATES = tuple(dict.fromkeys((*ACTIVE_STATES, *PASSIVE_STATES)))

# events: a notification's type, NE and EC with their esito
RC, NS, MC, DT, AT, SE, MT = "RC", "NS", "MC", "DT", "AT", "SE", "MT"
NE_EC01, NE_EC02, EC_EC01, EC_EC02 = "NE-EC01", "NE-EC02", "EC-EC01", "EC-EC02"

ESITO_DAYS = 15  # the PA's esito committente: 15 days from delivery, then DT
RESEND_DAYS = 5  # an invoice refused (NS) is sent again, corrected, within 5 days
PA_DELIVERY_DAYS = 10  # after MC to a PA the SdI keeps trying 10 days, then AT

# (direction, state, event) -> new state
_MOVES: Mapping[tuple[str, str, str], str] = {
    (ACTIVE, INVIATA, RC): CONSEGNATA,
    (ACTIVE, INVIATA, NS): SCARTATA,
    (ACTIVE, INVIATA, MC): NON_RECAPITATA,
    (ACTIVE, INVIATA, AT): ATTESTAZIONE,
    (ACTIVE, NON_RECAPITATA, RC): CONSEGNATA,  # to a PA the SdI retries, and may deliver
    (ACTIVE, NON_RECAPITATA, AT): ATTESTAZIONE,
    (ACTIVE, CONSEGNATA, NE_EC01): ACCETTATA,
    (ACTIVE, CONSEGNATA, NE_EC02): RIFIUTATA,
    (ACTIVE, CONSEGNATA, DT): DECORRENZA_TERMINI,
    # an esito may arrive before its RC (separate PEC messages): the RC is implied
    (ACTIVE, INVIATA, NE_EC01): ACCETTATA,
    (ACTIVE, INVIATA, NE_EC02): RIFIUTATA,
    (ACTIVE, INVIATA, DT): DECORRENZA_TERMINI,
    (PASSIVE, RICEVUTA, DT): DECORRENZA_TERMINI,
    (PASSIVE, RICEVUTA, EC_EC01): ACCETTATA,
    (PASSIVE, RICEVUTA, EC_EC02): RIFIUTATA,
    (PASSIVE, ACCETTATA, SE): ESITO_SCARTATO,
    (PASSIVE, RIFIUTATA, SE): ESITO_SCARTATO,
    (PASSIVE, RICEVUTA, SE): ESITO_SCARTATO,
}
# events that change nothing but are worth keeping on the invoice: (direction, event) -> the
# states where they are expected, and the note
_INFORMATIVE: Mapping[tuple[str, str], tuple[frozenset[str], str]] = {
    (PASSIVE, MT): (frozenset(PASSIVE_STATES), "file dei metadati ricevuto"),
    (ACTIVE, RC): (
        frozenset({CONSEGNATA, ACCETTATA, RIFIUTATA, DECORRENZA_TERMINI}),
        "ricevuta di consegna arrivata dopo l'esito: stato invariato",
    ),
}

_LABELS = {
    RC: "ricevuta di consegna (RC)",
    NS: "notifica di scarto (NS)",
    MC: "notifica di mancata consegna (MC)",
    NE_EC01: "esito del committente: accettata (NE EC01)",
    NE_EC02: "esito del committente: rifiutata (NE EC02)",
    DT: "decorrenza termini (DT)",
    AT: "attestazione di trasmissione con impossibilità di recapito (AT)",
    EC_EC01: "esito committente: accettazione (EC EC01)",
    EC_EC02: "esito committente: rifiuto (EC EC02)",
    SE: "scarto esito committente (SE)",
    MT: "file dei metadati (MT)",
}


@dataclass(frozen=True, slots=True)
class Deadline:
    """What the office (or the other party) must do, and by when (a date, Italian time ignored)."""

    what: str
    by: str | None  # YYYY-MM-DD; None: no date, only something to do

    def as_dict(self) -> dict[str, str | None]:
        return {"what": self.what, "by": self.by}


@dataclass(frozen=True, slots=True)
class Notice:
    """An SdI notification as the lifecycle reads it."""

    type: str  # RC, NS, MC, NE, DT, AT, EC, SE, MT
    at: datetime  # when it was received
    key: str  # what makes it unique: the message's sha256 and the file name
    esito: str | None = None  # NE, EC: EC01 / EC02
    identificativo_sdi: str | None = None
    nome_file: str | None = None
    detail: str | None = None  # NS: the errors; MC, DT: the description

    @property
    def event(self) -> str:
        if self.type in ("NE", "EC"):
            return f"{self.type}-{self.esito or '?'}"
        return self.type


@dataclass(frozen=True, slots=True)
class Step:
    """What a notice does to an invoice: its state after, the note kept, the deadline that now
    applies (None: the one before stays), whether anything changed."""

    state: str
    note: str
    moved: bool
    seen: bool = False  # this very notice was applied before: nothing to write
    deadline: Deadline | None = None
    clear_deadline: bool = False


def label(event: str) -> str:
    return _LABELS.get(event, event)


def advance(direction: str, state: str, notice: Notice, *, to_pa: bool, seen: Iterable[str] = ()) -> Step:
    """The invoice after `notice`. Never raises: an impossible move is a note, the state kept."""
    if notice.key in set(seen):
        return Step(state, f"{label(notice.event)}: già registrata", moved=False, seen=True)
    event = notice.event
    if notice.type in ("NE", "EC") and notice.esito not in ("EC01", "EC02"):
        return Step(
            state, f"{notice.type} con esito {notice.esito!r} non riconosciuto: stato invariato", False
        )
    target = _MOVES.get((direction, state, event))
    if target is None:
        states, info = _INFORMATIVE.get((direction, notice.type), (frozenset(), ""))
        if state in states:
            return Step(state, info, moved=False)
        return Step(
            state,
            f"{label(event)} non prevista per una fattura {_direction_word(direction)} "
            f"nello stato «{state}»: stato invariato",
            moved=False,
        )
    note = label(event) + (f": {notice.detail}" if notice.detail else "")
    return Step(target, note, moved=True, **_deadline_after(direction, target, notice, to_pa))


def _deadline_after(direction: str, target: str, notice: Notice, to_pa: bool) -> dict[str, Any]:
    day = notice.at.date()
    if direction == ACTIVE:
        if target == CONSEGNATA and to_pa:
            by = _plus(day, ESITO_DAYS)
            return {"deadline": Deadline("esito dell'amministrazione atteso (poi decorrenza termini)", by)}
        if target == NON_RECAPITATA:
            if to_pa:
                by = _plus(day, PA_DELIVERY_DAYS)
                return {"deadline": Deadline("lo SdI ritenta la consegna all'amministrazione (poi AT)", by)}
            return {"deadline": Deadline(
                "fattura disponibile nell'area riservata del destinatario: avvisare il cliente", None
            )}  # fmt: skip
        if target == SCARTATA:
            by = _plus(day, RESEND_DAYS)
            return {
                "deadline": Deadline("correggere e inviare di nuovo la fattura con un nuovo nome file", by)
            }
        if target == ATTESTAZIONE:
            return {"deadline": Deadline(
                "fattura trasmessa ma non recapitata: inviarla all'amministrazione con altro mezzo", None
            )}  # fmt: skip
        return {"clear_deadline": True}
    if target == ESITO_SCARTATO:
        return {"deadline": Deadline("esito committente scartato dallo SdI: inviarlo di nuovo", None)}
    return {"clear_deadline": True}


def _plus(day: date, days: int) -> str:
    return (day + timedelta(days=days)).isoformat()


def _direction_word(direction: str) -> str:
    return "inviata" if direction == ACTIVE else "ricevuta"


def initial_deadline(direction: str, received: datetime, *, to_pa: bool) -> Deadline | None:
    """A passive invoice to a PA: the esito committente is due within 15 days of receipt."""
    if direction == PASSIVE and to_pa:
        return Deadline("esito committente (EC) da inviare, altrimenti decorrenza termini",
                        _plus(received.date(), ESITO_DAYS))  # fmt: skip
    return None


def to_pa(versione: str | None) -> bool:
    """FPA12 is the format for invoices to a public administration (esito committente applies)."""
    return (versione or "").upper() == "FPA12"


# --- the invoice as recorded ---------------------------------------------------------------------
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9._-]")


def key_of(direction: str, nome_file: str) -> str:
    """The item's key: the direction and the file name as notifications name it (no .p7m, any case)."""
    return f"{direction}#{nome_file.lower()}"


def storage_prefix(direction: str, year: str, party_vat: str | None, filename: str) -> str:
    """fatture/passive/{year}/{supplier VAT}/{file}: names made safe for an S3 key."""
    vat = _UNSAFE_KEY.sub("_", party_vat or "senza-partita-iva")[:40]
    name = _UNSAFE_KEY.sub("_", filename)[:120]
    year = year if re.fullmatch(r"\d{4}", year or "") else "senza-anno"
    return f"fatture/{direction}/{year}/{vat}/{name}"


def year_of(invoice_date: str | None, fallback: datetime) -> str:
    if invoice_date and re.fullmatch(r"\d{4}-\d{2}-\d{2}", invoice_date[:10]):
        return invoice_date[:4]
    return str(fallback.year)


def summary_fields(fields: Mapping[str, str], bodies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the office lists of an invoice, from pecflow.pec.sdi's reading of it."""
    first = bodies[0] if bodies else {}
    due = [d for body in bodies for d in body.get("scadenze") or []]
    return {
        "supplier_vat": fields.get("CedentePrestatore/IdFiscaleIVA")
        or fields.get("CedentePrestatore/CodiceFiscale"),
        "supplier_name": fields.get("CedentePrestatore/Denominazione"),
        "customer_vat": fields.get("CessionarioCommittente/IdFiscaleIVA")
        or fields.get("CessionarioCommittente/CodiceFiscale"),
        "customer_name": fields.get("CessionarioCommittente/Denominazione"),
        "versione": fields.get("versione"),
        "numero": first.get("numero"),
        "data": first.get("data"),
        "tipo_documento": first.get("tipo_documento"),
        "totale": first.get("importo_totale_documento"),
        "divisa": first.get("divisa"),
        "documenti": [dict(b) for b in bodies[:50]],
        "scadenze": due[:50],
    }


# --- listing and export --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InvoiceFilter:
    direction: str | None = None  # active | passive | None: both
    since: str | None = None  # invoice date from, YYYY-MM-DD
    until: str | None = None  # invoice date to, inclusive
    state: str | None = None
    supplier: str | None = None  # VAT number or part of the name

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise ValueError(f"{name}: scrivere la data come AAAA-MM-GG, non {value!r}")
        if self.state is not None and self.state not in STATES:
            raise ValueError(f"stato {self.state!r} sconosciuto: uno di {', '.join(STATES)}")
        if self.direction not in (None, ACTIVE, PASSIVE):
            raise ValueError(f"direzione {self.direction!r}: active (inviate) o passive (ricevute)")

    def keeps(self, item: Mapping[str, Any]) -> bool:
        when = str(item.get("data") or "")[:10]
        if self.direction and item.get("direction") != self.direction:
            return False
        if self.since and (not when or when < self.since):
            return False
        if self.until and (not when or when > self.until):
            return False
        if self.state and item.get("state") != self.state:
            return False
        if self.supplier:
            wanted = self.supplier.casefold()
            vat = str(item.get("supplier_vat") or "").casefold()
            name = str(item.get("supplier_name") or "").casefold()
            if wanted not in vat and wanted not in name:
                return False
        return True


CSV_COLUMNS = (
    ("direzione", "direction"), ("stato", "state"), ("nome_file", "nome_file"),
    ("identificativo_sdi", "identificativo_sdi"), ("fornitore_partita_iva", "supplier_vat"),
    ("fornitore", "supplier_name"), ("cliente_partita_iva", "customer_vat"), ("cliente", "customer_name"),
    ("tipo_documento", "tipo_documento"), ("numero", "numero"), ("data", "data"), ("totale", "totale"),
    ("divisa", "divisa"), ("scadenze", "scadenze"), ("termine", "deadline"), ("ricevuta_il", "received_at"),
    ("messaggio", "message_sha256"),
)  # fmt: skip


def _cell(name: str, value: Any) -> str:
    if name == "scadenze":
        value = "; ".join(
            f"{d.get('data') or '?'} {d.get('importo') or ''}".strip()
            for d in value or []
            if isinstance(d, dict)
        )
    elif name == "deadline":
        value = (
            f"{value.get('by') or ''} {value.get('what') or ''}".strip() if isinstance(value, dict) else ""
        )
    elif name == "direction":
        value = "inviata" if value == ACTIVE else "ricevuta"
    return "" if value is None else str(value)  # text: a total "-5.00" is defused like any text


def to_csv(items: Iterable[Mapping[str, Any]]) -> str:
    """The invoices as CSV for a spreadsheet (';'-separated as Italian Excel reads it), through
    the one formula-safe writer (a cell starting with = + - @ gets a ')."""
    rows = ([_cell(name, item.get(name)) for _, name in CSV_COLUMNS] for item in items)
    return "".join(export_rows(rows, [title for title, _ in CSV_COLUMNS]))

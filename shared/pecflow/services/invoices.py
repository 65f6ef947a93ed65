"""Invoices through the SdI: passive ones recorded from the messages that bring them, active
ones sent to the SdI through the sender, and the SdI's notifications moving both
(pecflow.domain.invoices says how).

`InvoiceLedger.take` runs at ingestion once a message is archived, recorded and listed. It is
safe to run again on the same message (a poll that died after it): an invoice item is written
only if its key (direction and file name) is free, a notification already applied is seen on the
invoice's history. An invoice file that cannot be read (a broken or unsigned `.p7m`, XML that
does not parse) quarantines its message with the reason; a notification for an invoice pecflow
does not know is kept as unmatched (listed, tried again when the invoice appears, or by
`retry`), never lost. Nothing here raises into the poll but a failure of AWS itself.

`InvoiceDesk` is what the CLI and the API call: list, export, send, unmatched, retry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any, Protocol

from pecflow.domain import clock
from pecflow.domain import invoices as inv
from pecflow.domain.access import Action, Person
from pecflow.domain.mailbox import MailboxConfig, is_address
from pecflow.domain.ports import Archive, Outbox, Queue
from pecflow.domain.reconcile import State
from pecflow.pec import sdi
from pecflow.pec.message import PecMessage
from pecflow.services.sending import queue_entry

DEFAULT_SDI_ADDRESS = "sdi01@pec.fatturapa.it"
MOVE_ATTEMPTS = 10
MAX_HISTORY = 100
MAX_INVOICE_BYTES = 5 * 1024 * 1024  # the SdI's own limit for one file


# --- ports -----------------------------------------------------------------------------------------
class InvoiceItems(Protocol):
    """Where invoices, the SdI identifiers that lead to them, unmatched notifications and each
    mailbox's SdI settings are kept (pecflow.adapters.dynamodb.invoices.InvoiceStore)."""

    def add(self, mailbox: str, item: Mapping[str, Any]) -> bool:
        """Write an invoice unless its key is taken: False, nothing written."""
        ...

    def get(self, mailbox: str, key: str) -> dict[str, Any] | None: ...

    def move(
        self, mailbox: str, key: str, *, version: int, fields: Mapping[str, Any], remove: Iterable[str] = ()
    ) -> bool:
        """Set `fields` (and version + 1) if the item is still at `version`: False otherwise."""
        ...

    def invoices(self, mailbox: str, direction: str | None = None) -> Iterator[dict[str, Any]]: ...
    def by_identificativo(self, mailbox: str, identificativo: str) -> str | None: ...
    def link_identificativo(self, mailbox: str, identificativo: str, key: str) -> None: ...
    def keep_unmatched(self, mailbox: str, entry: Mapping[str, Any]) -> None: ...
    def unmatched(self, mailbox: str) -> list[dict[str, Any]]: ...
    def drop_unmatched(self, mailbox: str, entry_key: str) -> None: ...
    def settings(self, mailbox: str) -> dict[str, Any]: ...
    def set_settings(self, mailbox: str, values: Mapping[str, Any]) -> None: ...


class InvoiceFiles(Protocol):
    """Where invoice files are kept, under fatture/ in the archive bucket."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes: ...


class InvoiceError(ValueError):
    """A request about invoices that cannot be done as asked (a sentence for the person)."""


# --- ingestion -------------------------------------------------------------------------------------
@dataclass(slots=True)
class Taken:
    """What one message did to the invoices."""

    recorded: list[str]  # invoice keys written
    moved: list[str]  # "key: note"
    unmatched: list[str]  # notification files kept for later
    quarantined: str | None = None


class InvoiceLedger:
    def __init__(
        self,
        items: InvoiceItems,
        files: InvoiceFiles,
        *,
        is_service_failure: Callable[[BaseException], bool] = lambda exc: False,
        now: Callable[[], datetime] = clock.now,
        on_rejected: Callable[[str, str, str], None] | None = None,
    ):
        self.items, self.files, self.now = items, files, now
        self.is_service_failure = is_service_failure
        # (mailbox, invoice key, note) once an invoice is scartata or rifiutata: the alert
        self.on_rejected = on_rejected

    def take(
        self, mailbox: str, record: Mapping[str, Any], msg: PecMessage, quarantine: Callable[[str], None]
    ) -> Taken:
        """The SdI files of a message just recorded: invoices stored, notifications applied.
        Raises only when AWS itself fails (the poll stops and the message is taken again); any
        other failure quarantines the message with the reason."""
        taken = Taken([], [], [])
        try:
            self._take(mailbox, record, msg, quarantine, taken)
        except Exception as exc:  # noqa: BLE001 - this message's problem, unless AWS failed
            if self.is_service_failure(exc):
                raise
            taken.quarantined = f"fatture non registrate: {type(exc).__name__}: {exc}"[:900]
            quarantine(taken.quarantined)
        return taken

    def _take(
        self,
        mailbox: str,
        record: Mapping[str, Any],
        msg: PecMessage,
        quarantine: Callable[[str], None],
        taken: Taken,
    ) -> None:
        info = msg.sdi
        if info is None:
            return
        sha = str(record["sha256"])
        received = _when(record.get("received_at")) or self.now()
        contents = {a.filename: a for a in msg.attachments if a.filename}
        mt = next((f for f in info.files if f.type == "MT"), None)
        problems: list[str] = []
        for found in info.files:
            if found.role == "invoice":
                self._invoice(mailbox, sha, record, found, contents, received, mt, taken, problems)
            elif found.type != "MT":
                self._notice(mailbox, sha, found, received, taken)
        if mt is not None and not any(f.role == "invoice" for f in info.files):
            self._notice(mailbox, sha, mt, received, taken)  # metadata alone: linked or kept
        if problems:
            taken.quarantined = "; ".join(problems)[:900]
            quarantine(taken.quarantined)

    def _invoice(
        self,
        mailbox: str,
        sha: str,
        record: Mapping[str, Any],
        found: sdi.SdiFile,
        contents: Mapping[str, Any],
        received: datetime,
        mt: sdi.SdiFile | None,
        taken: Taken,
        problems: list[str],
    ) -> None:
        """One invoice file of the message: stored and recorded, or its problem noted."""
        name = found.filename
        if name.lower().endswith(".zip"):
            taken.moved.append(f"{name}: archivio zip di fatture, non registrato")
            return
        attachment = contents.get(name)
        try:
            if attachment is None:
                raise sdi.InvoiceUnreadable(f"{name}: allegato non trovato nel messaggio")
            original = attachment.content()
            if len(original) > MAX_INVOICE_BYTES * 2:
                raise sdi.InvoiceUnreadable(f"{name}: {len(original):,} byte, oltre il limite SdI")
            document = sdi.invoice_document(name, original)
        except sdi.InvoiceUnreadable as exc:
            problems.append(f"fattura illeggibile: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a part that cannot be decoded: the message is kept
            problems.append(f"fattura illeggibile: {name}: {type(exc).__name__}: {exc}")
            return
        nome_file = sdi.normalise_nome_file(name)
        key = inv.key_of(inv.PASSIVE, nome_file)
        bodies = [s.to_dict() for s in found.invoices]
        summary = inv.summary_fields(found.fields, bodies)
        identificativo = None
        if mt is not None and (
            not mt.nome_file or sdi.normalise_nome_file(mt.nome_file).lower() == nome_file.lower()
        ):
            identificativo = mt.identificativo_sdi
        prefix = inv.storage_prefix(
            inv.PASSIVE, inv.year_of(summary["data"], received), summary["supplier_vat"], name
        )
        self.files.put(
            prefix, original, "application/pkcs7-mime" if name.lower().endswith(".p7m") else "text/xml"
        )
        xml_key = prefix
        if document is not original:
            xml_key = prefix[: -len(".p7m")] if prefix.lower().endswith(".p7m") else prefix + ".xml"
            self.files.put(xml_key, document, "text/xml")
        pa = inv.to_pa(summary["versione"])
        deadline = inv.initial_deadline(inv.PASSIVE, received, to_pa=pa)
        item = {
            "invoice": key,
            "direction": inv.PASSIVE,
            "state": inv.RICEVUTA,
            "version": 1,
            "nome_file": name,
            "identificativo_sdi": identificativo,
            "to_pa": pa,
            **summary,
            "message_sha256": sha,
            "message_from": record.get("from"),
            "received_at": clock.iso(received),
            "s3_key": prefix,
            "xml_key": xml_key,
            "deadline": deadline.as_dict() if deadline else None,
            "history": [
                _entry(received, "ricevuta", None, inv.RICEVUTA, f"ricevuta con il messaggio {sha[:12]}", sha)
            ],
            "problems": list(found.problems)[:20],
        }
        if self.items.add(mailbox, item):
            taken.recorded.append(key)
        if identificativo:
            self.items.link_identificativo(mailbox, identificativo, key)
        self.retry_for(mailbox, nome_file, identificativo, taken)

    def _notice(self, mailbox: str, sha: str, found: sdi.SdiFile, received: datetime, taken: Taken) -> None:
        notice = notice_of(found, sha, received)
        key = self._find(mailbox, notice)
        if key is None:
            self.items.keep_unmatched(mailbox, _unmatched(notice, found, sha))
            taken.unmatched.append(found.filename)
            return
        note = self.apply(mailbox, key, notice)
        if note is not None:
            taken.moved.append(f"{key}: {note}")

    def _find(self, mailbox: str, notice: inv.Notice) -> str | None:
        if notice.nome_file:
            nome = sdi.normalise_nome_file(notice.nome_file)
            for direction in (inv.ACTIVE, inv.PASSIVE):
                key = inv.key_of(direction, nome)
                if self.items.get(mailbox, key) is not None:
                    return key
        if notice.identificativo_sdi:
            return self.items.by_identificativo(mailbox, notice.identificativo_sdi)
        return None

    def apply(self, mailbox: str, key: str, notice: inv.Notice) -> str | None:
        """Move the invoice by `notice` (conditional on its version, read again on a race).
        The note kept, or None when the notice was applied before."""
        for _ in range(MOVE_ATTEMPTS):
            item = self.items.get(mailbox, key)
            if item is None:
                return None
            history = list(item.get("history") or [])
            seen = [str(h.get("key")) for h in history if h.get("key")]
            step = inv.advance(
                str(item["direction"]), str(item["state"]), notice, to_pa=bool(item.get("to_pa")), seen=seen
            )
            if step.seen:
                return None
            entry = _entry(notice.at, notice.event, item["state"], step.state, step.note, notice.key)
            fields: dict[str, Any] = {"state": step.state, "history": (history + [entry])[-MAX_HISTORY:]}
            remove: list[str] = []
            if not step.moved:
                fields["notes"] = (list(item.get("notes") or []) + [step.note])[-20:]
            if step.deadline is not None:
                fields["deadline"] = step.deadline.as_dict()
            elif step.clear_deadline:
                remove.append("deadline")
            if notice.identificativo_sdi and not item.get("identificativo_sdi"):
                fields["identificativo_sdi"] = notice.identificativo_sdi
            if self.items.move(
                mailbox, key, version=int(item.get("version") or 0), fields=fields, remove=remove
            ):
                if notice.identificativo_sdi:
                    self.items.link_identificativo(mailbox, notice.identificativo_sdi, key)
                if step.moved and step.state in (inv.SCARTATA, inv.RIFIUTATA) and self.on_rejected:
                    self.on_rejected(mailbox, key, step.note)
                return step.note
        raise RuntimeError(f"fattura {key}: aggiornata da altri troppe volte di seguito, riprovare")

    def retry_for(
        self, mailbox: str, nome_file: str | None, identificativo: str | None, taken: Taken
    ) -> None:
        """Unmatched notifications for an invoice just written, applied now."""
        for entry in self.items.unmatched(mailbox):
            same_name = (
                nome_file
                and sdi.normalise_nome_file(str(entry.get("nome_file") or "")).lower() == nome_file.lower()
            )
            same_id = identificativo and entry.get("identificativo_sdi") == identificativo
            if same_name or same_id:
                if self.retry_one(mailbox, entry):
                    taken.moved.append(f"{entry.get('filename')}: collegata dopo l'arrivo della fattura")

    def retry_one(self, mailbox: str, entry: Mapping[str, Any]) -> bool:
        notice = inv.Notice(
            type=str(entry["type"]),
            at=_when(entry.get("received_at")) or self.now(),
            key=str(entry["notice_key"]),
            esito=entry.get("esito"),
            identificativo_sdi=entry.get("identificativo_sdi"),
            nome_file=entry.get("nome_file"),
            detail=entry.get("detail"),
        )
        key = self._find(mailbox, notice)
        if key is None:
            return False
        self.apply(mailbox, key, notice)
        self.items.drop_unmatched(mailbox, str(entry["entry"]))
        return True


def notice_of(found: sdi.SdiFile, sha: str, received: datetime) -> inv.Notice:
    detail = None
    if found.errors:
        detail = "; ".join(f"{c} {d}".strip() for c, d in found.errors[:5])
    elif found.fields.get("Descrizione"):
        detail = found.fields["Descrizione"]
    return inv.Notice(
        type=found.type,
        at=received,
        key=f"{sha}:{found.filename}",
        esito=found.fields.get("Esito"),
        identificativo_sdi=found.identificativo_sdi,
        nome_file=found.nome_file,
        detail=detail[:500] if detail else None,
    )


def _unmatched(notice: inv.Notice, found: sdi.SdiFile, sha: str) -> dict[str, Any]:
    return {
        "entry": f"unmatched#{sha}#{found.filename}",
        "notice_key": notice.key,
        "type": notice.type,
        "esito": notice.esito,
        "identificativo_sdi": notice.identificativo_sdi,
        "nome_file": notice.nome_file,
        "detail": notice.detail,
        "filename": found.filename,
        "message_sha256": sha,
        "received_at": clock.iso(notice.at),
    }


def _entry(at: datetime, event: str, before: Any, after: str, note: str, key: str | None) -> dict[str, Any]:
    return {"at": clock.iso(at), "event": event, "from": before, "to": after, "note": note[:500], "key": key}


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


# --- sending -------------------------------------------------------------------------------------
def invoice_message(
    mailbox: str, to: str, filename: str, content: bytes, message_id: str, date: datetime
) -> bytes:
    """The PEC that carries an invoice to the SdI: the file as its only attachment, named as the
    SdI expects it; the subject is the file name (so receipts name the invoice)."""
    message = EmailMessage(policy=SMTP)
    message["From"] = mailbox
    message["To"] = to
    message["Subject"] = filename
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message.set_content(
        f"Fattura elettronica {filename} trasmessa al Sistema di Interscambio.\n", charset="utf-8"
    )
    message.add_attachment(content, maintype="application", subtype="octet-stream", filename=filename)
    return message.as_bytes()


def prerendered(
    render: Callable[[Any, Any, str, datetime], bytes], archived: Callable[[str], bytes]
) -> Callable[[Any, Any, str, datetime], bytes]:
    """The sender's renderer, that sends an invoice's PEC as it was archived when it was asked
    for (`invoice` on the job's head), and anything else as before."""

    def render_job(campaign_item: Any, job: Any, message_id: str, date: datetime) -> bytes:
        mark = (job.head or {}).get("invoice")
        if mark and mark.get("raw_key"):
            return archived(str(mark["raw_key"]))
        return render(campaign_item, job, message_id, date)

    return render_job


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: str
    nome_file: str
    to: str
    state: str
    new: bool  # False: the same file was sent before (nothing goes out twice)

    def as_dict(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "nome_file": self.nome_file, "to": self.to,
                "state": self.state, "new": self.new}  # fmt: skip


class InvoiceDesk:
    """The invoices as the office works them (CLI, API)."""

    def __init__(
        self,
        ledger: InvoiceLedger,
        *,
        outbox: Outbox | None = None,
        send_queue: Queue | None = None,
        archive: Archive | None = None,
        mailbox_of: Callable[[str], MailboxConfig | None] | None = None,
        now: Callable[[], datetime] = clock.now,
    ):
        self.ledger, self.items, self.files = ledger, ledger.items, ledger.files
        self.outbox, self.send_queue, self.archive, self.mailbox_of = outbox, send_queue, archive, mailbox_of
        self.now = now

    def find(
        self, mailbox: str, filters: inv.InvoiceFilter, person: Person | None = None
    ) -> list[dict[str, Any]]:
        if person is not None:
            person.require(mailbox, Action.LIST)
        found = [i for i in self.items.invoices(mailbox, filters.direction) if filters.keeps(i)]
        return sorted(found, key=lambda i: (str(i.get("data") or ""), str(i.get("nome_file"))), reverse=True)

    def export(self, mailbox: str, filters: inv.InvoiceFilter, person: Person | None = None) -> str:
        return inv.to_csv(self.find(mailbox, filters, person))

    def show(self, mailbox: str, nome_file: str, person: Person | None = None) -> dict[str, Any]:
        if person is not None:
            person.require(mailbox, Action.READ)
        nome = sdi.normalise_nome_file(nome_file)
        for direction in (inv.ACTIVE, inv.PASSIVE):
            item = self.items.get(mailbox, inv.key_of(direction, nome))
            if item is not None:
                return item
        raise InvoiceError(f"nessuna fattura {nome_file} nella casella {mailbox}")

    def unmatched(self, mailbox: str, person: Person | None = None) -> list[dict[str, Any]]:
        if person is not None:
            person.require(mailbox, Action.LIST)
        return self.items.unmatched(mailbox)

    def retry(self, mailbox: str) -> tuple[int, int]:
        """Unmatched notifications tried again: (linked now, still unmatched)."""
        linked = left = 0
        for entry in self.items.unmatched(mailbox):
            if self.ledger.retry_one(mailbox, entry):
                linked += 1
            else:
                left += 1
        return linked, left

    def sdi_address(self, mailbox: str) -> str:
        return str(self.items.settings(mailbox).get("sdi_address") or DEFAULT_SDI_ADDRESS)

    def set_sdi_address(self, mailbox: str, address: str) -> str:
        address = address.strip().lower()
        if not is_address(address):
            raise InvoiceError(f"{address!r} non è un indirizzo PEC valido")
        self.items.set_settings(mailbox, {"sdi_address": address})
        return address

    def send(
        self, mailbox: str, filename: str, content: bytes, *, by: str, person: Person | None = None
    ) -> Sent:
        """Send an invoice file (FatturaPA .xml, or signed .xml.p7m) to the SdI from `mailbox`,
        through the sender (quota, once only, receipts reconciled). The same file sent again
        sends nothing; another file under a name already used is refused (the SdI would too)."""
        if person is not None:
            person.require(mailbox, Action.REPLY)
        if self.outbox is None or self.send_queue is None or self.archive is None:
            raise RuntimeError("questa installazione non può inviare: manca la coda di invio")
        mailbox = mailbox.lower()
        name = (
            sdi.normalise_nome_file(filename)
            if not filename.lower().endswith(".p7m")
            else filename.rsplit("/", 1)[-1]
        )
        if sdi.classify_filename(name) != ("invoice", None) or name.lower().endswith(".zip"):
            raise InvoiceError(
                f"{name!r}: il nome del file non è quello di una fattura SdI "
                "(IT + partita IVA + _ + progressivo, .xml o .xml.p7m, es. IT01234567890_00001.xml)"
            )
        if len(content) > MAX_INVOICE_BYTES:
            raise InvoiceError(f"{name}: {len(content):,} byte, oltre i 5 MB accettati dallo SdI")
        try:
            sdi.invoice_document(name, content)
        except sdi.InvoiceUnreadable as exc:
            raise InvoiceError(str(exc)) from None
        found = sdi.read_file(name, content)
        if found is None or found.role != "invoice":
            raise InvoiceError(f"{name}: non è una FatturaPA")
        if self.mailbox_of is not None and self.mailbox_of(mailbox) is None:
            raise InvoiceError(f"la casella {mailbox} non è configurata in pecflow")
        to = self.sdi_address(mailbox)
        nome_file = sdi.normalise_nome_file(name)
        key = inv.key_of(inv.ACTIVE, nome_file)
        digest = hashlib.sha256(content).hexdigest()
        existing = self.items.get(mailbox, key)
        if existing is not None and existing.get("content_sha256") != digest:
            raise InvoiceError(
                f"il nome file {nome_file} è già stato usato per un'altra fattura: lo SdI scarta i "
                "nomi ripetuti, usare un nuovo progressivo"
            )
        domain = mailbox.rpartition("@")[2]
        message_id = f"<pecflow.fattura.{hashlib.sha256(f'{mailbox}|{nome_file}|{digest}'.encode()).hexdigest()[:24]}@{domain}>"
        now = self.now()
        summary = inv.summary_fields(found.fields, [s.to_dict() for s in found.invoices])
        if existing is None:
            raw = invoice_message(mailbox, to, name, content, message_id, now)
            archived = self.archive.store(raw)
            prefix = inv.storage_prefix(
                inv.ACTIVE, inv.year_of(summary["data"], now), summary["customer_vat"], name
            )
            self.files.put(
                prefix, content, "application/pkcs7-mime" if name.lower().endswith(".p7m") else "text/xml"
            )
            item = {
                "invoice": key, "direction": inv.ACTIVE, "state": inv.INVIATA, "version": 1,
                "nome_file": name, "to_pa": inv.to_pa(summary["versione"]), **summary,
                "content_sha256": digest, "message_id": message_id, "sdi_address": to,
                "raw_key": archived.key, "s3_key": prefix, "sent_by": by, "sent_at": clock.iso(now),
                "history": [_entry(now, "inviata", None, inv.INVIATA, f"inviata allo SdI ({to}) da {by}", None)],
            }  # fmt: skip
            new = self.items.add(mailbox, item)
            existing = self.items.get(mailbox, key) or item
        else:
            new = False
        self.outbox.register(
            message_id,
            mailbox=mailbox,
            recipients=[str(existing.get("sdi_address") or to)],
            subject=name,
            state=State.PENDING,
            extra={"invoice": {"raw_key": existing["raw_key"], "nome_file": name, "by": by}},
        )  # False: registered already by the same request
        self.send_queue.send(queue_entry(message_id))  # the sender sends a job once, whatever
        self.ledger.retry_for(mailbox, nome_file, None, Taken([], [], []))
        return Sent(message_id, name, str(existing.get("sdi_address") or to), str(existing.get("state")), new)

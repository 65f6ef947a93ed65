"""The conservation export (pacchetto di versamento), on fakes with messages the PEC builder signs:
the periods (Italian days, never twice, gaps said, --continue), the metadata of each kind of
document (a PEC received, one we sent, its receipts) validating against our Allegato 5 schema
and saying what they should, the UNI SInCRO index validating and listing every file with its
hash, the .eml byte for byte, who may export (administrators), the audit event, and the refusals:
an overlapping period, a period not over, an export recorded meanwhile, a damaged archive."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import zipfile
from datetime import UTC, date, datetime, timedelta

import pytest

from local.pecbuild.builder import (
    ARUBA,
    Destinatario,
    Firma,
    busta_trasporto,
    messaggio_originale,
    nuovo_identificativo,
    ricevuta,
)
from pecflow.adapters.archive import sha256_hex
from pecflow.domain import conservation as pdv
from pecflow.domain.access import Forbidden, NotVisible, Person, Role
from pecflow.domain.conservation import Period, PeriodError
from pecflow.domain.records import JobRecord
from pecflow.pec import message as pec_message
from pecflow.pec import safexml
from pecflow.pec.signature import TrustAnchors, check_message
from pecflow.services.audit import AuditLog
from pecflow.services.conservation import ConservationError, ConservationExports
from pecflow.services.evidence import EvidenceError
from pecflow.services.receive import build_record
from tests import fakes

BOX = "ufficio@pec.alfa.test"
CLIENTE = "cliente@pec.beta.test"
FORNITORE = "fornitore@pec.gamma.test"
OURS = "<diffida-7.20261110@pec.alfa.test>"
T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
TODAY = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
PROVIDERS = TrustAnchors([Firma.per(ARUBA).autorita.certificato])

admin = Person("ada", "ada@alfa.test", roles={BOX: Role.ADMIN})
viewer = Person("vera", "vera@alfa.test", roles={BOX: Role.VIEWER})
stranger = Person("ugo", "ugo@alfa.test", roles={"altro@pec.alfa.test": Role.ADMIN})


class Records:
    """MessagesTable's records of a period as the adapter gives them (the mailbox's keys, the records
    read whole), oldest first."""

    def __init__(self):
        self.items: list[dict] = []

    def received_between(self, mailbox, start, end):
        found = [r for r in self.items if r["mailbox"] == mailbox and start <= r["received_key"] < end]
        return iter(sorted(found, key=lambda r: r["received_key"]))

    def counts_between(self, mailbox, periods):
        return [sum(1 for _ in self.received_between(mailbox, start, end)) for start, end in periods]


class Periods:
    """The exported periods with the head's count: a write is refused when the count moved."""

    def __init__(self):
        self.items: dict[str, list[dict]] = {}
        self.refuse_next = False

    def recorded(self, mailbox):
        done = self.items.get(mailbox, [])
        return len(done), sorted(done, key=lambda p: p["first"])

    def record(self, mailbox, period, *, seen):
        if self.refuse_next or seen != len(self.items.get(mailbox, [])):
            self.refuse_next = False
            return False
        self.items.setdefault(mailbox, []).append(dict(period))
        return True


class Chunks:
    def __init__(self, archive, size=1000):
        self.archive, self.size = archive, size

    def chunks(self, key):
        data = self.archive.get(key)
        for i in range(0, len(data), self.size):
            yield data[i : i + self.size]


class Jobs:
    def __init__(self):
        self.jobs: dict[str, JobRecord] = {}

    def job(self, message_id):
        return self.jobs.get(message_id)


class Packages:
    def __init__(self):
        self.packages: dict[str, bytes] = {}

    def writer(self, key):
        import contextlib

        @contextlib.contextmanager
        def opened():
            out = io.BytesIO()
            yield out
            self.packages[key] = out.getvalue()

        return opened()

    def link(self, key, filename):
        return f"https://downloads.test/{key}?as={filename}"


@pytest.fixture
def world():
    archive, records, periods, audit, jobs = (
        fakes.FakeArchive(),
        Records(),
        Periods(),
        fakes.FakeAuditStore(),
        Jobs(),
    )

    def receive(at: datetime, raw: bytes, uid: int, **extra) -> str:
        sha = sha256_hex(raw)
        msg = pec_message.parse(raw)
        record = build_record(
            BOX, "INBOX", 1, uid, at, raw, sha, archive.store(raw).key, msg,
            signature=check_message(msg, PROVIDERS, received=at),
        )  # fmt: skip
        records.items.append(record | extra | {"mailbox": BOX})
        return sha

    sent = messaggio_originale(
        mittente=BOX, destinatari=[CLIENTE], oggetto="Diffida – pratica 7", testo="Vi diffidiamo.\n",
        message_id=OURS, data=T0, allegati=[("diffida.pdf", "application/pdf", b"%PDF-1.4 " * 400)],
    )  # fmt: skip
    ident = nuovo_identificativo(ARUBA, T0, 7)
    acc = ricevuta("accettazione", sent, gestore=ARUBA, identificativo=ident, data=T0)
    con = ricevuta(
        "avvenuta-consegna", sent, gestore=ARUBA, identificativo=ident, data=T0 + timedelta(minutes=2)
    )
    incoming = busta_trasporto(
        messaggio_originale(
            mittente=FORNITORE, destinatari=[BOX], oggetto="Fattura 12/2026", testo="In allegato.\n",
            data=T0, allegati=[("fattura.pdf", "application/pdf", b"%PDF-1.4 fattura")],
        ),
        gestore=ARUBA, identificativo=nuovo_identificativo(ARUBA, T0, 8), data=T0 + timedelta(hours=1),
        destinatari=[Destinatario(BOX, "certificato")],
    )  # fmt: skip
    sha = {
        "acc": receive(T0 + timedelta(minutes=1), acc, 1, outgoing_message_id=OURS, reconciled="matched"),
        "con": receive(T0 + timedelta(minutes=3), con, 2, outgoing_message_id=OURS, reconciled="matched"),
        "in": receive(T0 + timedelta(hours=1), incoming, 3),
        "sent": sha256_hex(sent),
    }
    sent_key = archive.store(sent).key
    jobs.jobs[OURS] = JobRecord.from_item(
        {
            "message_id": OURS, "recipient": CLIENTE, "state": "delivered", "mailbox": BOX,
            "sent_s3_key": sent_key, "at_sent": T0.isoformat(),
            "receipts": {sha["acc"]: {"kind": "accettazione", "at": (T0 + timedelta(minutes=1)).isoformat()},
                         sha["con"]: {"kind": "avvenuta-consegna", "at": (T0 + timedelta(minutes=3)).isoformat()}},
            "head": {"subject": "Diffida – pratica 7", "recipient": "#message", "recipients": [CLIENTE]},
        }
    )  # fmt: skip
    service = ConservationExports(
        records, periods, Chunks(archive), AuditLog(audit, now=fakes.Ticking()), outbox=jobs,
        packages=Packages(), now=lambda: TODAY,
    )  # fmt: skip
    return (
        service,
        archive,
        records,
        periods,
        audit,
        sha,
        {"sent": sent, "acc": acc, "con": con, "in": incoming},
    )


def export(service, first="2026-11-01", last="2026-11-15", **kw) -> tuple[bytes, object]:
    out = io.BytesIO()
    built = service.write(BOX, out, first=first, last=last, actor="cli:test", **kw)
    return out.getvalue(), built


def xml_of(zf: zipfile.ZipFile, name: str) -> safexml.Node:
    return safexml.parse(zf.read(name))


def text(node: safexml.Node, path: str) -> str:
    found = node.find(path)
    assert found is not None, path
    return found.text


# --- periods -------------------------------------------------------------------------------------
def test_a_period_is_whole_italian_days():
    start, end = Period.parse("2026-11-01", "2026-11-30").bounds()
    assert start == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # CET: UTC+1
    assert end == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    start, _ = Period.parse("2026-07-01", "2026-07-31").bounds()
    assert start == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)  # CEST: UTC+2


@pytest.mark.parametrize(
    ("first", "last", "words"),
    [("2026-11-31", "2026-12-01", "AAAA-MM-GG"), ("2026-11-10", "2026-11-01", "prima di cominciare")],
)
def test_a_period_badly_written_is_refused_in_words(first, last, words):
    with pytest.raises(PeriodError, match=words):
        Period.parse(first, last)


def test_an_overlap_is_refused_naming_the_exported_period_and_a_gap_is_said():
    done = [Period(date(2026, 10, 1), date(2026, 10, 31))]
    with pytest.raises(PeriodError, match=r"già esportato 2026-10-01 – 2026-10-31.*--continue"):
        pdv.check_new_period(Period(date(2026, 10, 31), date(2026, 11, 5)), done, date(2026, 11, 26))
    with pytest.raises(PeriodError, match="non è concluso"):
        pdv.check_new_period(Period(date(2026, 11, 1), date(2026, 11, 26)), done, date(2026, 11, 26))
    assert pdv.check_new_period(Period(date(2026, 11, 1), date(2026, 11, 10)), done, date(2026, 11, 26)) == []
    [gap] = pdv.check_new_period(Period(date(2026, 11, 3), date(2026, 11, 10)), done, date(2026, 11, 26))
    assert "2026-11-01 – 2026-11-02" in gap and "in no exported package" in gap
    assert pdv.continued(done, date(2026, 11, 20)) == Period(date(2026, 11, 1), date(2026, 11, 20))
    with pytest.raises(PeriodError, match="nessun periodo"):
        pdv.continued([], date(2026, 11, 20))


# --- the attachments of what we sent, read as the bytes stream by --------------------------------
def test_the_attachment_scan_finds_the_names_across_chunks_and_folded_headers():
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nciao\r\n"
        b'--b\r\nContent-Disposition: attachment;\r\n filename="diffida firmata.pdf"\r\n\r\nJVBERi0=\r\n'
        b'--b\r\nContent-Disposition: inline; filename="logo.png"\r\n\r\niVBOR\r\n'
        b"--b\r\nContent-Disposition: attachment; filename=allegato.xml\r\n\r\nPD94\r\n--b--\r\n"
    )
    for size in (1, 7, len(raw)):
        scan = pdv.AttachmentScan()
        for i in range(0, len(raw), size):
            scan.feed(raw[i : i + size])
        assert scan.close() == ["diffida firmata.pdf", "allegato.xml"]


# --- the package ---------------------------------------------------------------------------------
def test_the_package_holds_every_document_byte_for_byte_with_its_metadata_and_a_valid_index(world):
    service, archive, _, periods, audit, sha, raws = world
    data, built = export(service)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        docs = [n for n in names if n.startswith(pdv.DOCUMENTS)]
        # the sent message comes with its first receipt, before it; then the other receipt, the envelope
        assert [zf.read(n) for n in docs] == [raws["sent"], raws["acc"], raws["con"], raws["in"]]
        assert names[-1] == pdv.INDEX and len(names) == 2 * len(docs) + 1
        index = zf.read(pdv.INDEX)
        assert pdv.schema_errors(index, pdv.INDEX_SCHEMA) == []
        root = safexml.parse(index)
        files = [f for g in root.children if g.tag == "FileGroup" for f in g.children if f.tag == "File"]
        assert len(files) == 4
        for file in files:
            path = text(file, "Path")
            assert hashlib.sha256(zf.read(path)).hexdigest() == text(file, "Hash")
            assert file.find("Hash").attrs["function"] == "SHA-256"
            external = file.find("MoreInfo/ExternalMetadata")
            meta = text(external, "Path")
            assert hashlib.sha256(zf.read(meta)).hexdigest() == text(external, "Hash")
            assert pdv.schema_errors(zf.read(meta), pdv.METADATA_SCHEMA) == []
        assert text(root, "SelfDescription/ID") == f"pdv-{BOX}-2026-11-01_2026-11-15"
    assert (built.documents, built.sent, built.receipts) == (4, 1, 2)
    assert built.sha256 == hashlib.sha256(data).hexdigest() and built.size == len(data)
    [recorded] = periods.items[BOX]
    assert (recorded["first"], recorded["last"], recorded["package_sha256"]) == (
        "2026-11-01", "2026-11-15", built.sha256,
    )  # fmt: skip
    [event] = audit.events(BOX)
    assert (event.action, event.actor, dict(event.details)) == (
        "conservation-export", "cli:test", {"dal": "2026-11-01", "al": "2026-11-15"},
    )  # fmt: skip


def test_the_metadata_of_each_kind_of_document_say_what_allegato_5_asks(world):
    service, _, _, _, _, sha, _ = world
    data, _ = export(service)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        metas = [xml_of(zf, n) for n in zf.namelist() if n.startswith(pdv.METADATA)]
    sent, acc, con, received = metas

    def roles(meta):
        return [(text(r, "TipoRuolo"), text(r, "Soggetto/IndirizzoDigitaleDiRiferimento"))
                for r in meta.find("Soggetti").children]  # fmt: skip

    # what we sent: formed by software, flusso U, its attachments named, no seal of a provider
    assert text(sent, "IdDoc/ImprontaCrittograficaDelDocumento/Impronta") == sha["sent"]
    assert text(sent, "IdDoc/Identificativo") == f"sha256-{sha['sent']}"
    assert (text(sent, "ModalitaDiFormazione"), text(sent, "DatiDiRegistrazione/TipologiaDiFlusso")) == (
        "a",
        "U",
    )
    assert text(sent, "TipologiaDocumentale") == "Messaggio PEC inviato"
    assert text(sent, "DatiDiRegistrazione/NumeroRegistrazione") == OURS
    assert text(sent, "DatiDiRegistrazione/DataRegistrazione") == "2026-11-10T09:00:00Z"
    assert roles(sent)[:2] == [("Mittente", BOX), ("Destinatario", CLIENTE)]
    assert text(sent, "ChiaveDescrittiva/Oggetto") == "Diffida – pratica 7"
    assert text(sent, "Allegati/NumeroAllegati") == "1" and "diffida.pdf" in text(
        sent, "Allegati/IndiceAllegati/Descrizione"
    )
    assert text(sent, "Verifica/SigillatoElettronicamente") == "false"
    # its receipts: acquired (b), flusso E, sealed by the provider, pointing at the sent message
    for receipt, kind in ((acc, "Ricevuta PEC di accettazione"), (con, "Ricevuta PEC di avvenuta consegna")):
        assert (
            text(receipt, "ModalitaDiFormazione"),
            text(receipt, "DatiDiRegistrazione/TipologiaDiFlusso"),
        ) == ("b", "E")
        assert text(receipt, "TipologiaDocumentale") == kind
        assert text(receipt, "IdIdentificativoDocumentoPrimario") == f"sha256-{sha['sent']}"
        assert text(receipt, "Verifica/SigillatoElettronicamente") == "true"
        assert "sigillo del gestore PEC verificato: valido" in text(receipt, "Note")
        assert (
            roles(receipt)[0][0] == "Mittente"
            and receipt.find("Soggetti/Ruolo/Soggetto/TipoSoggetto").text == "SW"
        )
    assert text(acc, "DatiDiRegistrazione/NumeroRegistrazione") == text(
        con, "DatiDiRegistrazione/NumeroRegistrazione"
    )
    # a PEC received: acquired, flusso E, the envelope's parties and attachment
    assert text(received, "TipologiaDocumentale") == "Messaggio PEC ricevuto (busta di trasporto)"
    assert text(received, "DatiDiRegistrazione/TipologiaDiFlusso") == "E"
    assert ("Destinatario", BOX) in roles(received) and ("Produttore", BOX) in roles(received)
    assert "Fattura 12/2026" in text(received, "ChiaveDescrittiva/Oggetto")
    assert received.find("IdIdentificativoDocumentoPrimario") is None
    assert all(text(m, "IdAgg/IdAggregazione") == f"PEC {BOX}" for m in metas)
    assert all(text(m, "TempoDiConservazione") == "10" and text(m, "Riservato") == "false" for m in metas)


def test_the_schemas_refuse_what_does_not_follow_them():
    doc = pdv.received_document(
        1, {"sha256": "a" * 64, "kind": "posta-certificata", "received_at": "2026-11-10T09:00:00.000000Z",
            "from": FORNITORE, "to": [BOX], "subject": "x"}, 10, None,
    )  # fmt: skip
    good = pdv.metadata_xml(doc, mailbox=BOX, series="PEC x")
    assert pdv.schema_errors(good, pdv.METADATA_SCHEMA) == []
    assert pdv.schema_errors(
        good.replace(b"<Impronta>" + b"a" * 64, b"<Impronta>" + b"A" * 64), pdv.METADATA_SCHEMA
    )
    assert pdv.schema_errors(
        good.replace(b">b</ModalitaDiFormazione>", b">z</ModalitaDiFormazione>"), pdv.METADATA_SCHEMA
    )
    assert pdv.schema_errors(re.sub(rb"<Riservato>.*?</Riservato>\n", b"", good), pdv.METADATA_SCHEMA)
    assert pdv.schema_errors(b'<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>', pdv.METADATA_SCHEMA)
    info = pdv.PackageInfo(BOX, Period(date(2026, 11, 1), date(2026, 11, 2)), TODAY, "ada")
    item = pdv.IndexedFile(doc, "b" * 64, 5)
    index = pdv.index_xml(info, [item])
    assert pdv.schema_errors(index, pdv.INDEX_SCHEMA) == []
    twice = pdv.index_xml(info, [item, item])  # one document listed twice
    assert pdv.schema_errors(twice, pdv.INDEX_SCHEMA)
    assert pdv.schema_errors(
        index.replace(b'sincro:function="SHA-256"', b'sincro:function="MD5"', 1), pdv.INDEX_SCHEMA
    )
    assert pdv.schema_errors(pdv.index_xml(info, []), pdv.INDEX_SCHEMA) == []  # an empty period, said


def test_a_subject_xml_cannot_hold_is_written_without_what_it_cannot_hold():
    record = {"sha256": "a" * 64, "kind": "posta-certificata", "received_at": "2026-11-10T09:00:00Z",
              "from": FORNITORE, "subject": "Fattura\udce9 n.\x01 12 <&>"}  # fmt: skip
    xml = pdv.metadata_xml(pdv.received_document(1, record, 1, None), mailbox=BOX, series="PEC x")
    assert pdv.schema_errors(xml, pdv.METADATA_SCHEMA) == []
    assert text(safexml.parse(xml), "ChiaveDescrittiva/Oggetto") == "Fattura n. 12 <&>"


def test_an_overlapping_export_is_refused_and_continue_goes_on_from_the_day_after(world):
    service, _, records, periods, audit, _, _ = world
    export(service, "2026-11-01", "2026-11-09")  # before the messages: an empty package, recorded
    with pytest.raises(ConservationError, match=r"già esportato 2026-11-01 – 2026-11-09"):
        export(service, "2026-11-05", "2026-11-20")
    data, built = export(service, None, "2026-11-20", continue_=True)
    assert (built.period.first, built.period.last, built.documents) == (
        date(2026, 11, 10),
        date(2026, 11, 20),
        4,
    )
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        root = xml_of(zf, pdv.INDEX)
        previous = root.find("SelfDescription/MoreInfo/EmbeddedMetadata/Versamento/PeriodoPrecedente")
        assert previous.attrs == {"dal": "2026-11-01", "al": "2026-11-09"}
    _, built = export(service, "2026-11-23", "2026-11-24")
    assert built.notes and "2026-11-21 – 2026-11-22" in built.notes[0]
    assert service.exported(admin, BOX)["gaps"] == list(built.notes)
    assert [p["first"] for p in service.exported(admin, BOX)["periods"]] == [
        "2026-11-01",
        "2026-11-10",
        "2026-11-23",
    ]
    assert len(audit.events(BOX)) == 3  # the refused export left no event


def test_nothing_is_left_out_in_silence_late_arrivals_and_unarchived_messages_are_said(world):
    service, _, records, _, _, _, _ = world
    export(service)
    late = {"mailbox": BOX, "sha256": "e" * 64, "kind": "posta-certificata", "s3_key": "messages/ee/x.eml",
            "received_at": "2026-11-12T10:00:00.000000Z", "received_key": f"2026-11-12T10:00:00.000000Z#{'e' * 16}"}  # fmt: skip
    records.items.append(late)  # recorded after its period was exported
    too_large = {"mailbox": BOX, "sha256": "unfetched-" + "f" * 54, "kind": "posta-certificata",
                 "received_key": "2026-11-17T10:00:00.000000Z#unfetched-ffff"}  # fmt: skip
    records.items.append(too_large)
    data, built = export(service, None, "2026-11-20", continue_=True)
    late_note, unarchived_note = built.notes
    assert "nel periodo già esportato 2026-11-01 – 2026-11-15 sono stati registrati 1 messaggi" in late_note
    assert "1 messaggi registrati nel periodo non hanno un originale archiviato" in unarchived_note
    assert "unfetched-ffffffffffffff" in unarchived_note and built.documents == 0
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        said = [
            n.text
            for n in xml_of(zf, pdv.INDEX)
            .find("SelfDescription/MoreInfo/EmbeddedMetadata/Versamento")
            .children
            if n.tag == "Nota"
        ]
    assert said == [late_note, unarchived_note]


def test_an_export_recorded_meanwhile_makes_this_one_fail(world):
    service, _, _, periods, _, _, _ = world
    periods.refuse_next = True
    with pytest.raises(ConservationError, match="registrata nel frattempo"):
        export(service)
    assert not periods.items


def test_a_damaged_archive_gives_no_package_and_records_nothing(world):
    service, archive, _, periods, _, sha, _ = world
    key = archive.key_for(sha["in"])
    damaged = archive.objects[key].body.replace(b"Fattura", b"Fattora")
    archive.objects[key] = dataclasses.replace(archive.objects[key], body=damaged)
    with pytest.raises(EvidenceError, match="does not match its hash"):
        export(service)
    assert not periods.items


def test_only_the_mailbox_administrators_export_and_the_api_links_the_package(world):
    service, _, _, periods, _, _, _ = world
    with pytest.raises(Forbidden):
        service.link(viewer, BOX, first="2026-11-01", last="2026-11-15")
    with pytest.raises(NotVisible):
        service.link(stranger, BOX, first="2026-11-01", last="2026-11-15")
    with pytest.raises(Forbidden):
        service.exported(viewer, BOX)
    answer = service.link(admin, BOX, first="2026-11-01", last="2026-11-15")
    assert answer["filename"] == "pdv-ufficio-pec-alfa-test-2026-11-01_2026-11-15.zip"
    assert answer["url"].startswith(f"https://downloads.test/conservation/{BOX}/2026-11-01_2026-11-15-")
    [stored] = service.packages.packages.values()
    assert hashlib.sha256(stored).hexdigest() == answer["sha256"] == periods.items[BOX][0]["package_sha256"]
    assert periods.items[BOX][0]["created_by"] == "ada"


def test_the_api_refuses_a_period_too_large_for_one_request(world):
    service, _, _, periods, _, _, _ = world
    service.api_documents = 2
    with pytest.raises(ConservationError, match="ha 3 messaggi.*riga di comando"):
        service.link(admin, BOX, first="2026-11-01", last="2026-11-15")
    assert not periods.items


# --- the offline check -----------------------------------------------------------------------------
def rewritten(data: bytes, change) -> bytes:
    """The package with `change(name, body)` applied to each file (None: the file removed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = change(info.filename, src.read(info))
            if body is not None:
                dst.writestr(info.filename, body)
    return out.getvalue()


def test_verify_passes_a_package_as_built_and_names_each_change(world):
    service = world[0]
    data, built = export(service)
    check = pdv.verify_package(zipfile.ZipFile(io.BytesIO(data)))
    assert check.ok and (check.documents, check.files) == (4, 8), check.problems
    doc, meta = "documenti/00004-", "metadati/00004-"

    def problems(change):
        return pdv.verify_package(zipfile.ZipFile(io.BytesIO(rewritten(data, change)))).problems

    [said] = problems(lambda n, b: b.replace(b"Fattura", b"Fattora") if n.startswith(doc) else b)
    assert said.startswith(doc) and "ALTERATO" in said
    [said] = problems(lambda n, b: None if n.startswith(meta) else b)
    assert said.startswith(meta) and "MANCANTE" in said
    said = problems(
        lambda n, b: b.replace(b"<Riservato>false", b"<Riservato>forse") if n.startswith(meta) else b
    )
    assert any("ALTERATO" in p for p in said) and any("non è conforme allo schema" in p for p in said)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        first, second = sorted(n for n in zf.namelist() if n.startswith(pdv.DOCUMENTS))[:2]
        swapped = {first: zf.read(second), second: zf.read(first)}
    said = problems(lambda n, b: swapped.get(n, b))
    assert [p.split(":")[0] for p in said] == [first, second]
    extra = io.BytesIO(data)
    with zipfile.ZipFile(extra, "a") as zf:
        zf.writestr("documenti/99999-intruso.eml", b"From: x")
    [said] = pdv.verify_package(zipfile.ZipFile(extra)).problems
    assert said.startswith("documenti/99999-intruso.eml: AGGIUNTO")
    [said] = problems(lambda n, b: None if n == pdv.INDEX else b)
    assert "manca l'indice" in said


# --- what the API function may do for it (template.yaml) ------------------------------------------
def test_the_api_function_may_export_and_record_periods_and_nothing_more():
    from tests.policy import Request, allows
    from tests.unit.test_template_console import ROLE, api_policy, lookup

    policy, role = api_policy(), {"AWS": ROLE}
    messages, mailboxes = lookup("MessagesTable", "Arn"), lookup("MailboxesTable", "Arn")
    downloads = lookup("DownloadsBucket", "Arn")
    assert allows(policy, Request(role, "dynamodb:Query", messages)), "the mailbox's keys"
    assert allows(policy, Request(role, "dynamodb:BatchGetItem", messages)), "the period's records"
    for other in (f"{messages}/index/Unmatched", f"{messages}/index/ByLocation"):
        assert not allows(policy, Request(role, "dynamodb:Query", other)), other
    for action in ("dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:GetItem"):
        assert allows(policy, Request(role, action, mailboxes)), action
    for action in ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan"):
        assert not allows(policy, Request(role, action, mailboxes)), action
    package = f"{downloads}/conservation/{BOX}/2026-11-01_2026-11-15-x.zip"
    for action in ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"):
        assert allows(policy, Request(role, action, package)), action
    assert not allows(policy, Request(role, "s3:DeleteObject", package))

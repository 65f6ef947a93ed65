"""SdI invoices at ingestion and through the sender, on fakes: passive invoices stored and
recorded (plain XML and signed .p7m), active ones sent through the same sender and moved by the
SdI's notifications (builder-made, each kind, both dialects, and the real fixtures), unmatched
notifications kept and linked later, unreadable .p7m files quarantined, nothing recorded twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from local.pecbuild import builder, sdi_builder
from pecflow.domain import invoices as inv
from pecflow.pec import p7m as p7m_module
from pecflow.pec import sdi
from pecflow.services.invoices import InvoiceDesk, InvoiceError, InvoiceLedger, prerendered
from pecflow.services.receive import Ingestor
from pecflow.services.sending import CampaignMessages, OutgoingMessages, Sender
from tests import fakes

WHEN = datetime(2026, 3, 2, 9, tzinfo=UTC)
BOX = "amministrazione@pec.azienda.test"
PASSWORD = "segreta"
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
NOI = sdi_builder.Parte("IT", "01234567890", "Azienda Nostra S.p.A.")
FORNITORE = sdi_builder.Parte("IT", "09876543210", "Fornitore Uno S.r.l.")
COMUNE = sdi_builder.Parte("IT", "80012345678", "Comune di Esempio")


class World:
    def __init__(self):
        self.server = fakes.FakeImapServer()
        self.account = self.server.add_account(BOX, PASSWORD)
        self.messages = fakes.FakeMessageStore()
        self.mailboxes = fakes.FakeMailboxStore()
        self.items = fakes.FakeInvoiceStore()
        self.files = fakes.FakeInvoiceFiles()
        self.archive = fakes.FakeArchive()
        self.outgoing = fakes.FakeOutgoingStore()
        self.queue = fakes.FakeQueue()
        self.rejected: list[tuple[str, str, str]] = []  # the alerts raised (mailbox, invoice, note)
        self.ledger = InvoiceLedger(
            self.items, self.files, on_rejected=lambda *alert: self.rejected.append(alert)
        )
        self.config = fakes.config(BOX)
        self.mailboxes.put(self.config)
        self.desk = InvoiceDesk(
            self.ledger, outbox=self.outgoing, send_queue=self.queue, archive=self.archive,
            mailbox_of={BOX: self.config}.get,
        )  # fmt: skip
        self.ingestor = Ingestor(
            archive=self.archive, messages=self.messages, mailboxes=self.mailboxes,
            outgoing=self.outgoing, invoices=self.ledger,
        )  # fmt: skip
        self.smtp = fakes.FakeSmtp()
        self.limiter = fakes.FakeRateLimiter(policy="aruba")
        self.sender = Sender(
            outgoing=self.outgoing, campaigns=fakes.FakeCampaignStore(), archive=self.archive,
            mailbox_of={BOX: self.config}.get, acquire=self.limiter.acquire, release=self.limiter.release,
            render=prerendered(OutgoingMessages(CampaignMessages(lambda cid: None).render,  # type: ignore[arg-type]
                                                self.archive.get).render, self.archive.get),
            submit=self.smtp.submit,
        )  # fmt: skip
        self.seq = 0
        self.raws: list[bytes] = []

    def deliver(self, raw: bytes):
        self.raws.append(raw)
        self.account.append(raw, when=WHEN)
        session = self.server.open(self.config, PASSWORD)
        try:
            return self.ingestor.poll(self.config, session)
        finally:
            session.close()

    def from_sdi(self, files, codice: str, identificativo: str = "4242"):
        self.seq += 1
        return self.deliver(
            sdi_builder.busta_sdi(
                files, identificativo_sdi=identificativo, codice=codice, destinatario=BOX,
                data=WHEN + timedelta(minutes=self.seq), seq=self.seq,
            )
        )  # fmt: skip

    def notify(
        self, codice: str, nome: str, *, esito: str = "EC01", dialetto: str = "pa", identificativo="4242"
    ):
        document = sdi_builder.notifica(
            codice, identificativo_sdi=identificativo, nome_file=nome, message_id=str(100 + self.seq),
            quando=WHEN, esito=esito, dialetto=dialetto, riferimento_fattura=("7", "2026"),
        )  # fmt: skip
        return self.from_sdi(
            [(sdi_builder.nome_notifica(nome, codice, self.seq + 1), document)], codice, identificativo
        )

    def invoice(self, nome: str) -> dict:
        item = self.items.get(
            BOX,
            inv.key_of(
                inv.PASSIVE if nome.startswith(FORNITORE.id_paese + FORNITORE.id_codice) else inv.ACTIVE,
                sdi.normalise_nome_file(nome),
            ),
        )
        assert item is not None, f"no invoice {nome}"
        return item

    def record(self, result) -> dict:
        return self.messages.records(BOX)[-1]


def fattura(cedente=FORNITORE, cessionario=NOI, *, versione="FPR12", progressivo="00001", numero="7"):
    doc = sdi_builder.Documento(numero, "2026-02-27", "1220.00",
                                scadenze=(("2026-03-31", "610.00"), ("2026-04-30", "610.00")))  # fmt: skip
    return sdi_builder.fattura(cedente, cessionario, [doc], versione=versione, progressivo=progressivo)


def signed(content: bytes) -> bytes:
    return sdi_builder.firma_p7m(content, builder.Firma.per(builder.SIMULATO))


def passive(world: World, name: str, content: bytes, identificativo: str = "5151"):
    meta = sdi_builder.notifica(
        "MT", identificativo_sdi=identificativo, nome_file=name, message_id="9", quando=WHEN
    )
    return world.from_sdi(
        [(sdi_builder.nome_notifica(name, "MT"), meta), (name, content)], "MT", identificativo
    )


@pytest.fixture
def clock(monkeypatch) -> fakes.FakeClock:
    return fakes.FakeClock(WHEN).install(monkeypatch)


# --- passive ---------------------------------------------------------------------------------------
def test_a_passive_invoice_is_stored_under_its_prefix_and_recorded_with_its_fields(clock):
    world = World()
    name = sdi_builder.nome_fattura(FORNITORE, "00001")
    content = fattura()
    result = passive(world, name, content)
    assert result.quarantined == []
    item = world.invoice(name)
    assert item["state"] == inv.RICEVUTA and item["direction"] == inv.PASSIVE
    assert (item["supplier_vat"], item["supplier_name"]) == ("IT09876543210", "Fornitore Uno S.r.l.")
    assert (item["numero"], item["data"], item["tipo_documento"], item["totale"], item["divisa"]) == (
        "7", "2026-02-27", "TD01", "1220.00", "EUR",
    )  # fmt: skip
    assert item["scadenze"] == [
        {"data": "2026-03-31", "importo": "610.00"},
        {"data": "2026-04-30", "importo": "610.00"},
    ]
    assert item["identificativo_sdi"] == "5151", "from the MT metadata file"
    assert item["message_sha256"] == world.record(result)["sha256"]
    assert "deadline" not in item, "no esito committente between businesses"
    key = f"fatture/passive/2026/IT09876543210/{name}"
    assert world.files.objects[key] == content and item["s3_key"] == item["xml_key"] == key


def test_a_passive_invoice_to_a_pa_owes_its_esito_within_15_days_and_dt_ends_it(clock):
    world = World()
    name = sdi_builder.nome_fattura(FORNITORE, "00002")
    passive(world, name, fattura(cessionario=COMUNE, versione="FPA12", progressivo="00002"), "6000")
    assert world.invoice(name)["deadline"] == {
        "what": "esito committente (EC) da inviare, altrimenti decorrenza termini", "by": "2026-03-17",
    }  # fmt: skip
    world.notify("DT", name, identificativo="6000")
    item = world.invoice(name)
    assert item["state"] == inv.DECORRENZA_TERMINI and "deadline" not in item
    world.notify("SE", name, identificativo="6000")  # found by its IdentificativoSdI; no esito was sent
    item = world.invoice(name)
    assert item["state"] == inv.DECORRENZA_TERMINI and "stato invariato" in item["notes"][-1]


def test_a_signed_invoice_is_kept_whole_with_its_extracted_xml_beside(clock):
    world = World()
    name = sdi_builder.nome_fattura(FORNITORE, "00003", p7m=True)
    xml = fattura(progressivo="00003")
    p7m = signed(xml)
    assert passive(world, name, p7m).quarantined == []
    item = world.invoice(name)
    assert world.files.objects[item["s3_key"]] == p7m and item["s3_key"].endswith(".xml.p7m")
    assert world.files.objects[item["xml_key"]] == p7m_module.extract_signed_content(p7m)
    assert item["xml_key"] == item["s3_key"][: -len(".p7m")] and b"FatturaElettronica" in xml
    assert item["nome_file"] == name and item["numero"] == "7"


def _der(tag: int, body: bytes) -> bytes:
    length = len(body)
    head = bytes([length]) if length < 128 else bytes([0x82, length >> 8, length & 0xFF])
    return bytes([tag]) + head + body


def unsigned_signed_data(content: bytes) -> bytes:
    """A SignedData that carries the document but names no signer (SignerInfos empty)."""
    oid_signed = _der(0x06, bytes.fromhex("2a864886f70d010702"))
    oid_data = _der(0x06, bytes.fromhex("2a864886f70d010701"))
    encap = _der(0x30, oid_data + _der(0xA0, _der(0x04, content)))
    signed_data = _der(0x30, _der(0x02, b"\x01") + _der(0x31, b"") + encap + _der(0x31, b""))
    return _der(0x30, oid_signed + _der(0xA0, signed_data))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (lambda xml: b"\x30\x82\x10\x00" + b"\x00" * 40, "busta .p7m illeggibile"),  # bad DER
        (lambda xml: xml, "non firmato"),  # plain XML named .p7m
        (lambda xml: unsigned_signed_data(xml), "no signature"),  # SignedData without a signer
        (lambda xml: signed(xml[:-40]), "XML della fattura non leggibile"),  # broken XML inside
    ],
    ids=["bad-der", "plain-xml", "no-signer", "broken-xml"],
)
def test_an_unreadable_p7m_quarantines_its_message_with_the_reason(clock, content, reason):
    world = World()
    name = sdi_builder.nome_fattura(FORNITORE, "00004", p7m=True)
    result = passive(world, name, content(fattura(progressivo="00004")))
    [quarantined] = result.quarantined
    assert reason in quarantined and name in quarantined
    record = world.record(result)
    assert record["quarantined"]["stage"] == "fatture" and reason in record["quarantined"]["reason"]
    assert list(world.items.invoices(BOX)) == [], "nothing recorded from an unreadable invoice"
    assert result.recorded == 1, "the message itself is recorded and listed"


def test_taking_a_message_again_after_a_crash_records_nothing_twice(clock):
    world = World()
    name = sdi_builder.nome_fattura(FORNITORE, "00005")
    result = passive(world, name, fattura(progressivo="00005"))
    world.notify("DT", name, identificativo="5151")
    writes = world.items.writes
    # the poller died before the cursor moved: both messages are fetched and taken again
    for raw in world.raws:
        msg = world.ingestor.classify(raw)
        record = next(r for r in world.messages.records(BOX) if r["sha256"] == fakes.sha256_hex(raw))
        world.ledger.take(BOX, record, msg, lambda why: pytest.fail(why))
    assert world.items.writes == writes, "no second invoice item, no notification applied twice"
    [item] = list(world.items.invoices(BOX))
    assert [h["event"] for h in item["history"]] == ["ricevuta", "DT"]
    assert result.recorded == 1


# --- active ----------------------------------------------------------------------------------------
def send(world: World, *, cessionario=COMUNE, versione="FPA12", progressivo="00010", p7m=False):
    name = sdi_builder.nome_fattura(NOI, progressivo, p7m=p7m)
    content = fattura(NOI, cessionario, versione=versione, progressivo=progressivo)
    sent = world.desk.send(BOX, name, signed(content) if p7m else content, by="marco")
    return name, sent


def test_an_active_invoice_goes_through_the_sender_to_the_sdi_once(clock):
    world = World()
    name, sent = send(world)
    assert sent.new and sent.to == "sdi01@pec.fatturapa.it" and sent.state == inv.INVIATA
    assert world.queue.bodies() == [{"message_id": sent.message_id}]
    assert world.sender.send(sent.message_id).state == "sent"  # quota, archive, reconciliation
    [received] = world.smtp.received
    assert received.recipients == ("sdi01@pec.fatturapa.it",) and len(world.limiter.acquired) == 1
    message = message_from_bytes(received.raw, policy=policy.default)
    assert message["Subject"] == name and message["From"] == BOX
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == name and attachment.get_content() == fattura(
        NOI, COMUNE, versione="FPA12", progressivo="00010"
    )
    again = world.desk.send(
        BOX, name, fattura(NOI, COMUNE, versione="FPA12", progressivo="00010"), by="marco"
    )
    assert not again.new and again.message_id == sent.message_id
    assert world.sender.send(sent.message_id).state == "sent" and len(world.smtp.received) == 1, "never twice"
    with pytest.raises(InvoiceError, match="già stato usato"):
        world.desk.send(
            BOX, name, fattura(NOI, COMUNE, versione="FPA12", progressivo="00010", numero="8"), by="x"
        )


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("fattura.xml", b"<x/>", "non è quello di una fattura"),
        ("IT01234567890_00011.xml", b"<Ordine/>", "non è una FatturaPA"),
        ("IT01234567890_00011.xml.p7m", b"<p:FatturaElettronica/>", "non firmato"),
    ],
)
def test_a_file_that_is_no_invoice_is_refused_before_anything_is_sent(clock, name, content, why):
    world = World()
    with pytest.raises(InvoiceError, match=why):
        world.desk.send(BOX, name, content, by="marco")
    assert world.queue.sent == [] and list(world.items.invoices(BOX)) == []


def test_the_sdi_address_is_set_per_mailbox(clock):
    world = World()
    world.desk.set_sdi_address(BOX, "SDI07@pec.fatturapa.it")
    name, sent = send(world, progressivo="00012")
    assert sent.to == "sdi07@pec.fatturapa.it"
    with pytest.raises(InvoiceError):
        world.desk.set_sdi_address(BOX, "non un indirizzo")


@pytest.mark.parametrize(
    ("answers", "dialetto", "to_pa", "state", "deadline"),
    [
        ([("RC", None), ("NE", "EC01")], "pa", True, inv.ACCETTATA, None),
        ([("RC", None), ("NE", "EC02")], "pa", True, inv.RIFIUTATA, None),
        ([("RC", None)], "pa", True, inv.CONSEGNATA, "2026-03-17"),
        ([("RC", None), ("DT", None)], "pa", True, inv.DECORRENZA_TERMINI, None),
        ([("NS", None)], "pa", True, inv.SCARTATA, "2026-03-07"),
        ([("MC", None)], "pa", True, inv.NON_RECAPITATA, "2026-03-12"),
        ([("MC", None), ("AT", None)], "pa", True, inv.ATTESTAZIONE, None),
        ([("RC", None)], "b2b", False, inv.CONSEGNATA, None),
        ([("NS", None)], "b2b", False, inv.SCARTATA, "2026-03-07"),
        ([("MC", None)], "b2b", False, inv.NON_RECAPITATA, None),
    ],
)
def test_each_sdi_answer_moves_the_sent_invoice(clock, answers, dialetto, to_pa, state, deadline):
    world = World()
    name, sent = send(
        world, cessionario=COMUNE if to_pa else FORNITORE, versione="FPA12" if to_pa else "FPR12"
    )
    for codice, esito in answers:
        world.notify(codice, name, esito=esito or "EC01", dialetto=dialetto)
    item = world.invoice(name)
    assert item["state"] == state
    assert (item.get("deadline") or {}).get("by") == deadline
    assert [h["event"] for h in item["history"]] == ["inviata"] + [
        f"{c}-{e}" if c == "NE" else c for c, e in answers
    ]
    assert item["identificativo_sdi"] == "4242"
    # a refused or rejected invoice raises its alert once; no other state does
    assert [mailbox for mailbox, _, _ in world.rejected] == (
        [BOX] if state in (inv.SCARTATA, inv.RIFIUTATA) else []
    )


def test_an_impossible_notification_is_kept_as_a_note_and_the_state_stays(clock):
    world = World()
    name, _ = send(world, progressivo="00013")
    world.notify("NS", name)
    world.notify("RC", name)  # a refused invoice cannot be delivered
    item = world.invoice(name)
    assert item["state"] == inv.SCARTATA and "stato invariato" in item["notes"][-1]


def test_a_notification_for_an_unknown_invoice_is_kept_and_linked_when_the_invoice_appears(clock):
    world = World()
    name = sdi_builder.nome_fattura(NOI, "00014")
    result = world.notify("RC", name)
    assert result.quarantined == [] and list(world.items.invoices(BOX)) == []
    [entry] = world.desk.unmatched(BOX)
    assert entry["type"] == "RC" and entry["nome_file"] == name
    assert world.desk.retry(BOX) == (0, 1), "still nothing to link it to"
    world.desk.send(BOX, name, fattura(NOI, COMUNE, versione="FPA12", progressivo="00014"), by="marco")
    assert world.invoice(name)["state"] == inv.CONSEGNATA and world.desk.unmatched(BOX) == []


def test_listing_and_export(clock):
    world = World()
    passive(world, sdi_builder.nome_fattura(FORNITORE, "00020"), fattura(progressivo="00020"), "1")
    send(world, progressivo="00021")
    # newest invoice date first, then by file name (both dated 2026-02-27 here)
    assert [i["nome_file"] for i in world.desk.find(BOX, inv.InvoiceFilter())] == [
        "IT09876543210_00020.xml", "IT01234567890_00021.xml",
    ]  # fmt: skip
    assert [i["nome_file"] for i in world.desk.find(BOX, inv.InvoiceFilter(supplier="Fornitore"))] == [
        "IT09876543210_00020.xml"
    ]
    text = world.desk.export(BOX, inv.InvoiceFilter(direction="passive"))
    assert text.splitlines()[1].startswith("ricevuta;ricevuta;IT09876543210_00020.xml;1;IT09876543210;")


# --- the real fixtures -------------------------------------------------------------------------------
SDI_FIXTURES = FIXTURES / "sdi"
needs_fixtures = pytest.mark.skipif(not SDI_FIXTURES.is_dir(), reason="../shared/fixtures/sdi not present")


def fixture_file(
    code: str, source: str = "testsdi", invoice: str = "IT01234567890_11111"
) -> tuple[str, bytes]:
    [path] = sorted(SDI_FIXTURES.glob(f"{source}__{invoice}_{code}_*.xml"))
    return path.name.split("__", 1)[1], path.read_bytes()


@needs_fixtures
@pytest.mark.parametrize(
    ("codes", "state"),
    [
        (["RC", "NE"], inv.ACCETTATA),  # the fixture's esito is EC01
        (["NS"], inv.SCARTATA),
        (["MC", "AT"], inv.ATTESTAZIONE),
        (["RC", "DT"], inv.DECORRENZA_TERMINI),
    ],
)
def test_the_official_notifications_move_a_sent_invoice(clock, codes, state):
    world = World()
    name = "IT01234567890_11111.xml.p7m"  # as the official examples name it
    world.desk.send(
        BOX, name, signed(fattura(NOI, COMUNE, versione="FPA12", progressivo="11111")), by="marco"
    )
    for code in codes:
        world.from_sdi([fixture_file(code)], code, "111")
    item = world.invoice(name)
    assert item["state"] == state and item["identificativo_sdi"] == "111"


@needs_fixtures
def test_the_official_metadata_ec_and_se_on_a_received_invoice(clock):
    world = World()
    name = "IT01234567890_11111.xml.p7m"
    content = signed(fattura(FORNITORE, COMUNE, versione="FPA12", progressivo="11111"))
    world.from_sdi([fixture_file("MT"), (name, content)], "MT", "111")
    item = world.items.get(BOX, inv.key_of(inv.PASSIVE, "IT01234567890_11111.xml"))
    assert item is not None and item["identificativo_sdi"] == "111" and item["state"] == inv.RICEVUTA
    world.from_sdi([fixture_file("EC")], "EC", "111")  # names the IdentificativoSdI only
    world.from_sdi([fixture_file("SE")], "SE", "111")
    item = world.items.get(BOX, inv.key_of(inv.PASSIVE, "IT01234567890_11111.xml"))
    assert [h["event"] for h in item["history"]] == ["ricevuta", "EC-EC01", "SE"]
    assert item["state"] == inv.ESITO_SCARTATO


@needs_fixtures
def test_a_real_rc_waits_unmatched_until_its_invoice_is_sent(clock):
    world = World()
    world.from_sdi([fixture_file("RC", "oca", "IT03339130126_00009")], "RC", "6782414")
    assert [e["nome_file"] for e in world.desk.unmatched(BOX)] == ["IT03339130126_00009.xml"]
    seller = sdi_builder.Parte("IT", "03339130126", "Venditore")
    world.desk.send(
        BOX, "IT03339130126_00009.xml", fattura(seller, FORNITORE, progressivo="00009"), by="marco"
    )
    item = world.items.get(BOX, inv.key_of(inv.ACTIVE, "IT03339130126_00009.xml"))
    assert item["state"] == inv.CONSEGNATA and item["identificativo_sdi"] == "6782414"


PEC_FIXTURES = FIXTURES / "pec"


@pytest.mark.skipif(not PEC_FIXTURES.is_dir(), reason="../shared/fixtures/pec not present")
def test_real_sdi_envelopes_record_an_invoice_or_quarantine_a_broken_one(clock):
    world = World()
    good = world.deliver((PEC_FIXTURES / "oca__sdi_busta_MT_invio-file_7339338.eml").read_bytes())
    assert good.quarantined == []
    item = world.items.get(BOX, inv.key_of(inv.PASSIVE, "IT02652600210_00007.xml"))
    assert item["supplier_vat"] == "IT02652600210" and item["numero"] == "FATT/2018/0003"
    assert item["identificativo_sdi"] == "7339338" and item["scadenze"] == [
        {"data": "2018-12-21", "importo": "997.96"}
    ]
    armoured = world.deliver(
        (PEC_FIXTURES / "oca__sdi_busta_MT_invio-file_7339338_base64-p7m.eml").read_bytes()
    )
    assert armoured.quarantined == [], "a .p7m sent as base64 text is read all the same"
    signed_item = world.items.get(BOX, inv.key_of(inv.PASSIVE, "IT01234567890_FPR04.xml"))
    assert signed_item["nome_file"] == "IT01234567890_FPR04.xml.p7m"
    assert world.files.objects[signed_item["xml_key"]].lstrip().startswith(b"<")
    broken = world.deliver(
        (PEC_FIXTURES / "oca__sdi_busta_MT_invio-file_7339338_broken-xml.eml").read_bytes()
    )
    [why] = broken.quarantined
    assert "XML della fattura non leggibile" in why

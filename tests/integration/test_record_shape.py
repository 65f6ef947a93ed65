"""A message record as MessagesTable stores it (domain.records.stored_record) on moto: under
1 KB (one write unit) for a received message with an attachment and for the receipts of a sent
one, built by local/pecbuild and checked as the poller checks them; read back whole, exactly the
record built; the provider's signer kept once in a signature item the records share; a record
written before (the fields inline) read as it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from local.aws import item_size
from local.pecbuild.builder import (
    ARUBA,
    NAMIRIAL,
    Firma,
    busta_trasporto,
    messaggio_originale,
    nuovo_identificativo,
    ricevuta,
)
from pecflow.adapters.archive import sha256_hex
from pecflow.adapters.dynamodb import MessageStore
from pecflow.adapters.dynamodb._common import _clean
from pecflow.adapters.dynamodb.conservation import PeriodMessages
from pecflow.adapters.dynamodb.messages import SIGNATURES, SignatureItems
from pecflow.adapters.rules import RecordedMessages
from pecflow.domain.records import MessageRecord, archived_key
from pecflow.pec import message as pec_message
from pecflow.pec.daticert import Destinatario
from pecflow.pec.signature import TrustAnchors, check_message
from pecflow.services.receive import build_record

BOX = "ufficio@pec.alfa.test"
CLIENTE = "mario.rossi@pec.beta.test"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TRUSTED = TrustAnchors([Firma.per(ARUBA).autorita.certificato, Firma.per(NAMIRIAL).autorita.certificato])
NO_ANCHORS = TrustAnchors([])  # untrusted, with the long sentence saying why (the local stack's case)
WRITE_UNIT = 1024


def sent_and_received(gestore=ARUBA) -> dict[str, bytes]:
    """A message with an attachment received, and the accettazione and avvenuta consegna
    (completa: it carries the original) of one we sent, as a provider makes them."""
    sent = messaggio_originale(
        mittente=BOX, destinatari=[CLIENTE], oggetto="Sollecito di pagamento fattura n. 2026/0412 – Società S.r.l.",
        testo="Gentile cliente,\nsi sollecita il pagamento.\n", data=T0,
        allegati=[("fattura-2026-0412.pdf", "application/pdf", b"%PDF-1.4 " * 3000)],
    )  # fmt: skip
    theirs = messaggio_originale(
        mittente=CLIENTE, destinatari=[BOX], oggetto="Richiesta di documentazione per la pratica 4512",
        testo="Buongiorno,\nin allegato il documento.\n", data=T0,
        allegati=[("documento-identita.pdf", "application/pdf", b"%PDF-1.4 " * 3000)],
    )  # fmt: skip
    ident = nuovo_identificativo(gestore, T0, 7)
    return {
        "posta-certificata": busta_trasporto(
            theirs,
            gestore=gestore,
            identificativo=nuovo_identificativo(gestore, T0, 8),
            data=T0,
            destinatari=[Destinatario(BOX)],
        ),  # fmt: skip
        "accettazione": ricevuta("accettazione", sent, gestore=gestore, identificativo=ident, data=T0),
        "avvenuta-consegna": ricevuta(
            "avvenuta-consegna", sent, gestore=gestore, identificativo=ident, data=T0 + timedelta(minutes=1)
        ),
    }


def built(raw: bytes, uid: int, anchors: TrustAnchors = TRUSTED) -> dict:
    """The record the poller writes (build_record, then reconciliation's outcome for a receipt)."""
    msg = pec_message.parse(raw)
    sha = sha256_hex(raw)
    record = build_record(
        BOX, "INBOX", 1795751933, uid, T0, raw, sha, archived_key(sha), msg,
        signature=check_message(msg, anchors, received=T0),
    )  # fmt: skip
    if msg.ref_message_id:
        record |= {"reconciled": "matched", "outgoing_message_id": msg.ref_message_id}
    return record


@pytest.fixture
def table(aws):
    SignatureItems._known.clear()  # as a new process: nothing known yet
    return aws.physical("MessagesTable"), aws.resource("dynamodb"), aws.client("dynamodb")


def _stored(client, name: str, sha: str) -> dict:
    key = {"mailbox": {"S": BOX}, "message": {"S": f"sha256:{sha}"}}
    return client.get_item(TableName=name, Key=key)["Item"]


@pytest.mark.parametrize("anchors", [TRUSTED, NO_ANCHORS], ids=["valid", "untrusted"])
def test_each_kind_of_record_is_stored_in_one_write_unit_and_read_back_whole(table, anchors):
    name, ddb, client = table
    messages = MessageStore(name, ddb)
    for uid, (kind, raw) in enumerate(sent_and_received().items(), start=1):
        record = built(raw, uid, anchors)
        assert record["kind"] == kind and record["signer"] and record["signature_detail"]
        assert messages.record(BOX, record)
        size = item_size(_stored(client, name, record["sha256"]))
        assert size < WRITE_UNIT, f"{kind}: {size} bytes"
        whole = MessageRecord.from_item(
            _clean({**record, "mailbox": BOX, "message": f"sha256:{record['sha256']}"})
        )
        SignatureItems._known.clear()  # read by another process: the signature item from the table
        assert messages.get(BOX, record["sha256"]) == whole


def test_the_signer_is_kept_once_and_shared_by_every_record_it_signed(table):
    name, ddb, client = table
    first, second = MessageStore(name, ddb), MessageStore(name, ddb)
    raws = [*sent_and_received().values(), *sent_and_received(NAMIRIAL).values()]
    records = [built(raw, uid) for uid, raw in enumerate(raws, start=1)]
    puts = []
    original = first.table.put_item
    first.table.put_item = lambda **kw: puts.append(kw["Item"]["mailbox"]) or original(**kw)
    for record in records[:3]:
        first.record(BOX, record)
    assert puts.count(SIGNATURES) == 1  # once per process, not once per record
    SignatureItems._known.clear()
    for record in records[3:]:
        second.record(BOX, record)
    SignatureItems._known.clear()
    for record in records[:2]:  # written again by a process that did not know it: still one item
        second.record("altra@pec.alfa.test", record)
    signatures = ddb.Table(name).query(
        KeyConditionExpression="mailbox = :s", ExpressionAttributeValues={":s": SIGNATURES}
    )
    assert len(signatures["Items"]) == 2  # Aruba's and Namirial's
    refs = {_stored(client, name, r["sha256"])["signer_ref"]["S"] for r in records}
    assert refs == {i["message"] for i in signatures["Items"]}
    assert {i["signer"]["subject"] for i in signatures["Items"]} == {r["signer"]["subject"] for r in records}
    SignatureItems._known.clear()
    reads = []
    get = second.table.get_item
    second.table.get_item = lambda **kw: reads.append(kw["Key"]["mailbox"]) or get(**kw)
    for record in records:
        assert second.get(BOX, record["sha256"]).signer == record["signer"]
    assert reads.count(SIGNATURES) == 2  # one read per signer, then known
    # the other readers of whole records: the conservation export, the rules' dry run
    period = list(PeriodMessages(name, ddb).received_between(BOX, "2026", "2027"))
    dry = list(RecordedMessages(name, ddb).since(BOX, "2026"))
    for read in (period, dry):
        assert sorted((r["sha256"], r["signer"]["serial"], r["signature_detail"]) for r in read) == sorted(
            (r["sha256"], r["signer"]["serial"], r["signature_detail"]) for r in records
        )


def test_a_record_written_before_with_its_fields_inline_is_read_as_it_is(table):
    name, ddb, _ = table
    record = built(sent_and_received()["avvenuta-consegna"], 4)
    item = _clean({**record, "mailbox": BOX, "message": f"sha256:{record['sha256']}"})
    ddb.Table(name).put_item(Item=item)  # as the store wrote it before the record's shape 2
    messages = MessageStore(name, ddb)
    assert messages.get(BOX, record["sha256"]) == MessageRecord.from_item(item)
    [period] = PeriodMessages(name, ddb).received_between(BOX, "2026", "2027")
    assert period == item


def test_a_derived_value_updated_or_removed_later_is_read_as_written(table):
    name, ddb, _ = table
    messages = MessageStore(name, ddb)
    record = built(sent_and_received()["accettazione"], 2)
    messages.record(BOX, record)
    messages.set_fields(BOX, record["sha256"], {"on_provider": "expunged"}, remove=["outgoing_message_id"])
    stored = messages.get(BOX, record["sha256"])
    assert (stored.on_provider, stored.outgoing_message_id) == ("expunged", None)
    assert stored.ref_message_id == record["ref_message_id"] and stored.s3_key == record["s3_key"]

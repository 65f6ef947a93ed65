"""Invoices on moto with template.yaml's InvoicesTable and archive bucket: the store and its fake
behave alike; a poll through the real adapters stores a received invoice under fatture/passive/
and records it; the CLI lists, exports (formulas defused) and sends an invoice to the SdI."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import pytest

from local.pecbuild import sdi_builder
from pecflow import bootstrap
from pecflow.adapters.dynamodb import MailboxStore
from pecflow.adapters.dynamodb.invoices import InvoiceStore
from pecflow.config import Config
from pecflow.domain import invoices as inv
from tests import fakes

BOX = "amministrazione@pec.azienda.test"
WHEN = datetime(2026, 3, 2, 9, tzinfo=UTC)
FORNITORE = sdi_builder.Parte("IT", "09876543210", "=Fornitore Uno S.r.l.")
NOI = sdi_builder.Parte("IT", "01234567890", "Azienda Nostra S.p.A.")


def config_of(aws) -> Config:
    return Config(
        stack_name="prova",
        mailboxes_table=aws.physical("MailboxesTable"),
        messages_table=aws.physical("MessagesTable"),
        outgoing_table=aws.physical("OutgoingTable"),
        campaigns_table=aws.physical("CampaignsTable"),
        invoices_table=aws.physical("InvoicesTable"),
        archive_bucket=aws.physical("ArchiveBucket"),
        send_queue_url=aws.url("SendQueue"),
    )


def scenario(store) -> list:
    """What a caller sees of the store, step by step."""
    seen: list = []
    item = {"invoice": "active#it1_1.xml", "direction": "active", "state": "inviata", "version": 1,
            "nome_file": "IT1_1.xml", "history": [{"event": "inviata", "key": None}], "empty": ""}  # fmt: skip
    seen.append(store.add(BOX, item))
    seen.append(store.add(BOX.upper(), {**item, "state": "altro"}))
    seen.append(store.get(BOX, "active#it1_1.xml"))
    seen.append(store.move(BOX, "active#it1_1.xml", version=2, fields={"state": "x"}))
    seen.append(store.move(BOX, "active#it1_1.xml", version=1, fields={"state": "consegnata",
                "deadline": {"what": "esito", "by": "2026-03-17"}}))  # fmt: skip
    seen.append(
        store.move(BOX, "active#it1_1.xml", version=2, fields={"state": "accettata"}, remove=["deadline"])
    )
    seen.append(store.get(BOX, "active#it1_1.xml"))
    store.add(BOX, {**item, "invoice": "passive#it2_2.xml", "direction": "passive", "state": "ricevuta"})
    seen.append([i["item"] for i in store.invoices(BOX)])
    seen.append([i["item"] for i in store.invoices(BOX, "passive")])
    store.link_identificativo(BOX, "4242", "passive#it2_2.xml")
    seen.append((store.by_identificativo(BOX, "4242"), store.by_identificativo(BOX, "1")))
    entry = {"entry": "unmatched#abc#IT3_3_RC_001.xml", "type": "RC", "nome_file": "IT3_3.xml", "esito": None}
    store.keep_unmatched(BOX, entry)
    store.keep_unmatched(BOX, {**entry, "type": "NS"})  # kept once
    seen.append(store.unmatched(BOX))
    store.drop_unmatched(BOX, entry["entry"])
    seen.append(store.unmatched(BOX))
    seen.append(store.settings(BOX))
    store.set_settings(BOX, {"sdi_address": "sdi07@pec.fatturapa.it"})
    seen.append(store.settings(BOX))
    return seen


def test_the_store_and_its_fake_agree(aws):
    real = scenario(InvoiceStore(aws.physical("InvoicesTable"), aws.resource("dynamodb")))
    fake = scenario(fakes.FakeInvoiceStore())
    assert real == fake
    assert real[0] is True and real[1] is False and real[3] is False and real[4] is True
    assert real[6]["state"] == "accettata" and real[6]["version"] == 3 and "deadline" not in real[6]
    assert real[7] == ["active#it1_1.xml", "passive#it2_2.xml"]


def test_a_poll_stores_a_received_invoice_and_the_cli_lists_exports_and_sends(
    aws, monkeypatch, capsys, tmp_path
):
    from pecflow import cli

    config = config_of(aws)
    ddb = aws.resource("dynamodb")
    mailbox = fakes.config(BOX)
    MailboxStore(config.mailboxes_table, ddb).put(mailbox)
    server = fakes.FakeImapServer()
    account = server.add_account(BOX, "segreta")
    name = sdi_builder.nome_fattura(FORNITORE, "00001")
    doc = sdi_builder.Documento("7", "2026-02-27", "1220.00", scadenze=(("2026-03-31", "1220.00"),))
    content = sdi_builder.fattura(FORNITORE, NOI, [doc])
    meta = sdi_builder.notifica("MT", identificativo_sdi="5151", nome_file=name, message_id="9", quando=WHEN)
    account.append(
        sdi_builder.busta_sdi([(sdi_builder.nome_notifica(name, "MT"), meta), (name, content)],
                              identificativo_sdi="5151", codice="MT", destinatario=BOX, data=WHEN, seq=1),
        when=WHEN,
    )  # fmt: skip
    ingestor = bootstrap.ingestor(config, inbox=None, check_signature=None, rules=None)
    session = server.open(mailbox, "segreta")
    try:
        result = ingestor.poll(mailbox, session)
    finally:
        session.close()
    assert result.recorded == 1 and result.quarantined == []
    key = f"fatture/passive/2026/IT09876543210/{name}"
    stored = aws.client("s3").get_object(Bucket=config.archive_bucket, Key=key)["Body"].read()
    assert stored == content

    for env, value in (("STACK_NAME", "prova"), ("MAILBOXES_TABLE", config.mailboxes_table),
                       ("MESSAGES_TABLE", config.messages_table), ("OUTGOING_TABLE", config.outgoing_table),
                       ("INVOICES_TABLE", config.invoices_table), ("ARCHIVE_BUCKET", config.archive_bucket),
                       ("SEND_QUEUE_URL", config.send_queue_url)):  # fmt: skip
        monkeypatch.setenv(env, value)
    assert cli.main(["invoices", "list", BOX, "--supplier", "09876"]) == 0
    out = capsys.readouterr().out
    assert name in out and "ricevuta" in out and "1220.00" in out and "1 fatture." in out
    target = tmp_path / "fatture.csv"
    assert cli.main(["invoices", "export", BOX, "-o", str(target)]) == 0
    rows = list(csv.reader(target.read_text(encoding="utf-8-sig").splitlines(), delimiter=";"))
    assert rows[1][rows[0].index("fornitore")] == "'=Fornitore Uno S.r.l.", "formula defused"
    assert rows[1][rows[0].index("scadenze")] == "2026-03-31 1220.00"

    ours = tmp_path / "IT01234567890_00042.xml"
    ours.write_bytes(sdi_builder.fattura(NOI, FORNITORE, [doc], progressivo="00042"))
    capsys.readouterr()
    assert cli.main(["invoices", "send", BOX, str(ours)]) == 0
    assert "in invio allo SdI (sdi01@pec.fatturapa.it)" in capsys.readouterr().out
    assert cli.main(["invoices", "send", BOX, str(ours)]) == 0
    assert "non parte una seconda volta" in capsys.readouterr().out
    queued = aws.client("sqs").receive_message(QueueUrl=config.send_queue_url, MaxNumberOfMessages=10)
    assert len({json.loads(m["Body"])["message_id"] for m in queued["Messages"]}) == 1
    assert cli.main(["invoices", "list", BOX, "--direction", "active", "--json"]) == 0
    [sent] = json.loads(capsys.readouterr().out)
    assert sent["state"] == inv.INVIATA and sent["nome_file"] == ours.name
    bad = tmp_path / "fattura.xml"
    bad.write_bytes(b"<x/>")
    assert cli.main(["invoices", "send", BOX, str(bad)]) == 1
    assert "non è quello di una fattura SdI" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--from", "01/02/2026"], ["--state", "pagata"]])
def test_the_cli_refuses_filters_it_cannot_read(aws, monkeypatch, args):
    from pecflow import cli

    config = config_of(aws)
    for env, value in (("STACK_NAME", "prova"), ("MAILBOXES_TABLE", config.mailboxes_table),
                       ("INVOICES_TABLE", config.invoices_table)):  # fmt: skip
        monkeypatch.setenv(env, value)
    with pytest.raises(SystemExit):
        cli.main(["invoices", "list", BOX, *args])

"""SdI invoices on the local stack (Dovecot, the simulated PEC providers over TLS, the moto server,
the functions with template.yaml's environment): an active invoice sent by `pecflow invoices send`
goes through the sender to the simulated SdI's mailbox; the SdI answers RC, then NE (EC01), and
the poller moves the invoice to consegnata, then accettata. A passive invoice whose .p7m is
malformed is quarantined with the reason, the message kept and listed."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime

import pytest

from local.pecbuild import builder, sdi_builder
from pecflow import bootstrap
from pecflow.adapters.dynamodb.inbox import InboxStore
from pecflow.domain import invoices as inv

POLL = 5 * 60
NOI = sdi_builder.Parte("IT", "01234567890", "Alfa S.p.A.")
COMUNE = sdi_builder.Parte("IT", "80012345678", "Comune di Esempio")
FORNITORE = sdi_builder.Parte("IT", "09876543210", "Fornitore Verdi S.p.A.")


def from_sdi(sogei, sdi, to: str, files, codice: str, identificativo: str) -> None:
    """The simulated SdI submits its file(s) to its provider, as the real one does."""
    raw = builder.messaggio_originale(
        mittente=sdi.address,
        destinatari=[to],
        oggetto=f"{sdi_builder.TESTI_OGGETTO[codice]} {identificativo}",
        testo=f"Il file {files[0][0]} e' stato trasmesso dal Sistema di Interscambio.\n",
        allegati=[(name, "application/octet-stream", content) for name, content in files],
        tipo_ricevuta="breve",
    )
    with smtplib.SMTP_SSL(sogei.host, sogei.port, context=sogei.ssl_context(), timeout=20) as smtp:
        smtp.login(sdi.address, sdi.password)
        smtp.sendmail(sdi.address, [to], raw)


def settle(stack) -> None:
    stack.network.wait_idle(60)
    stack.runner.advance(POLL)
    stack.network.wait_idle(60)


@pytest.mark.timeout(600)
def test_an_active_invoice_is_accepted_and_a_malformed_p7m_is_quarantined(stack, dovecot):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"))
    sogei = net.add_provider(builder.Gestore("Sogei - SdI (simulato)", "pec.fatturapa.test"))
    office = stack.add_company_mailbox(alfa, "fatture@pec.alfa.test")
    sdi = sogei.add_mailbox("sdi01@pec.fatturapa.test")
    config = stack.deployment()
    desk = bootstrap.invoice_desk(config)
    desk.set_sdi_address(office.address, sdi.address)

    # the office sends an invoice to a PA: the sender submits it to the SdI's mailbox, once
    name = sdi_builder.nome_fattura(NOI, "00031")
    doc = sdi_builder.Documento("31/2026", "2026-02-27", "1220.00", scadenze=(("2026-03-31", "1220.00"),))
    content = sdi_builder.fattura(NOI, COMUNE, [doc], versione="FPA12", progressivo="00031")
    sent = desk.send(office.address, name, content, by="e2e")
    assert sent.new and sent.to == sdi.address
    assert desk.send(office.address, name, content, by="e2e").new is False
    settle(stack)
    arrived = [d for d in net.deliveries if d.mailbox == sdi.address and d.kind == "posta-certificata"]
    assert len(arrived) == 1 and arrived[0].error is None, "the SdI received the invoice exactly once"
    pec_id = arrived[0].identificativo
    key = inv.key_of(inv.ACTIVE, name)
    assert desk.items.get(office.address, key)["state"] == inv.INVIATA

    # the SdI delivers it to the PA (RC), then passes on the PA's acceptance (NE EC01)
    when = datetime.now(UTC)
    rc = sdi_builder.notifica("RC", identificativo_sdi="7001", nome_file=name, message_id="1", quando=when,
                              pec_message_id=pec_id)  # fmt: skip
    from_sdi(sogei, sdi, office.address, [(sdi_builder.nome_notifica(name, "RC"), rc)], "RC", "7001")
    settle(stack)
    item = desk.items.get(office.address, key)
    assert item["state"] == inv.CONSEGNATA and item["identificativo_sdi"] == "7001"
    assert item["deadline"]["what"].startswith("esito dell'amministrazione")
    ne = sdi_builder.notifica("NE", identificativo_sdi="7001", nome_file=name, message_id="2", quando=when,
                              esito="EC01", riferimento_fattura=("31/2026", "2026"))  # fmt: skip
    from_sdi(sogei, sdi, office.address, [(sdi_builder.nome_notifica(name, "NE", 2), ne)], "NE", "7001")
    settle(stack)
    item = desk.items.get(office.address, key)
    assert item["state"] == inv.ACCETTATA and "deadline" not in item
    assert [h["event"] for h in item["history"]] == ["inviata", "RC", "NE-EC01"]
    # the PEC that carried it is reconciled like any other: the provider's receipts matched
    [job] = bootstrap.outgoing_store(config).view(sent.message_id)["jobs"]
    assert (job["recipient"], job["state"]) == (sdi.address, "delivered")

    # a supplier's invoice arrives as a .p7m that is not a signed envelope: quarantined, kept, listed
    bad_name = sdi_builder.nome_fattura(FORNITORE, "00077", p7m=True)
    bad = b"\x30\x82\x20\x00" + b"\x00" * 64
    meta = sdi_builder.notifica(
        "MT", identificativo_sdi="7002", nome_file=bad_name, message_id="3", quando=when
    )
    from_sdi(sogei, sdi, office.address, [(sdi_builder.nome_notifica(bad_name, "MT"), meta), (bad_name, bad)],
             "MT", "7002")  # fmt: skip
    settle(stack)
    messages = bootstrap.message_store(config)
    [held] = [r for r in messages.query(office.address, index="Quarantined")]
    assert held.quarantined["stage"] == "fatture"
    assert "busta .p7m illeggibile" in held.quarantined["reason"] and bad_name in held.quarantined["reason"]
    rows = InboxStore(config.inbox_table, config.resource("dynamodb"), audit_table=config.audit_table)
    assert rows.row(office.address, held.sha256) is not None, "kept and listed"
    assert list(desk.items.invoices(office.address, inv.PASSIVE)) == []
    failures = [i for i in stack.runner.invocations if not i.ok and "Deferred" not in (i.error or "")]
    assert failures == []

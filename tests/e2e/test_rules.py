"""A mailbox's rules on the local stack: a supplier's certified message arrives through the
simulated providers and is polled by the poller function (with template.yaml's environment); a
rule saves its attachments to the archive bucket's rules/ and assigns it, audited as "regole
automatiche"; a message whose "PDF" is really a program is quarantined, kept and listed. Every
other condition (sender address and pattern, subject, an SdI file, the provider's signature) and
the tag and notify actions on one flow; two mailboxes answering each other stop after one reply."""

from __future__ import annotations

import smtplib

import pytest

from local.alerts import TopicReader
from local.pecbuild import builder, sdi_builder
from pecflow import bootstrap
from pecflow.adapters.dynamodb.inbox import InboxStore
from pecflow.domain.reconcile import State
from pecflow.domain.rules import ACTOR
from tests.e2e.test_campaigns import received_by

POLL = 5 * 60
INVOICE = b'<?xml version="1.0" encoding="UTF-8"?>\n<p:FatturaElettronica xmlns:p="urn:x"/>\n'
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 16 + b"%%EOF\n"
PROGRAM = b"MZ\x90\x00" + b"\0" * 500
RULES = {
    "version": 1,
    "accepted_formats": {"allow": ["pdf", "xml", "p7m", "text"]},
    "rules": [
        {
            "name": "Fornitore",
            "when": {
                "kind": ["posta-certificata"],
                "sender_domain": ["pec.beta.test"],
                "attachment_types": ["xml"],
            },
            "then": {"save": {"prefix": "fornitori/beta", "layout": "by-sender"}, "assign": "anna"},
        }
    ],
}


def submit(provider, account, to, *, subject, allegati):
    raw = builder.messaggio_originale(
        mittente=account.address,
        destinatari=list(to),
        oggetto=subject,
        testo="In allegato.\n",
        allegati=allegati,
    )
    with smtplib.SMTP_SSL(provider.host, provider.port, context=provider.ssl_context(), timeout=20) as smtp:
        smtp.login(account.address, account.password)
        smtp.sendmail(account.address, list(to), raw)


@pytest.mark.timeout(600)
def test_a_rule_saves_and_assigns_and_a_disguised_program_is_quarantined(stack, dovecot):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"))
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    office = stack.add_company_mailbox(alfa, "fatture@pec.alfa.test")
    supplier = beta.add_mailbox("amministrazione@pec.beta.test")
    stack.add_person("anna", "anna@alfa.test", "Anna", {office.address: "operator"})
    config = stack.deployment()
    bootstrap.rules_desk(config).set(None, office.address, RULES, actor="e2e")

    submit(beta, supplier, [office.address], subject="Fattura 7",
           allegati=[("IT01234567890_00007.xml", "application/octet-stream", INVOICE),
                     ("copia.pdf", "application/pdf", PDF)])  # fmt: skip
    submit(beta, supplier, [office.address], subject="Documento",
           allegati=[("documento.pdf", "application/pdf", PROGRAM)])  # fmt: skip
    stack.runner.advance(POLL)
    stack.network.wait_idle(60)

    messages = bootstrap.message_store(config)
    records = {r.original_subject: r for r in messages.query(office.address) if r.kind == "posta-certificata"}
    invoice, disguised = records["Fattura 7"], records["Documento"]

    applied = invoice.extra["rules"]["applied"]
    assert not invoice.extra["rules"].get("failed") and applied[1] == "Fornitore: assegnato a anna"
    folder = applied[0].split(" in ", 1)[1].rstrip("/")
    assert folder.startswith("fornitori/beta/amministrazione@pec.beta.test/")
    s3 = config.client("s3")
    saved = s3.get_object(Bucket=config.archive_bucket, Key=f"rules/{folder}/IT01234567890_00007.xml")
    assert saved["Body"].read() == INVOICE
    rows = InboxStore(config.inbox_table, config.resource("dynamodb"), audit_table=config.audit_table)
    assert rows.row(office.address, invoice.sha256)["holder"] == "anna"
    trail = bootstrap.audit_log(config).store.of_message(office.address, invoice.sha256)
    assert [(e.actor, e.action) for e in trail] == [(ACTOR, "rule"), (ACTOR, "assign")]

    assert disguised.quarantined["stage"] == "rules"
    assert (
        "allegato «documento.pdf»: formato non accettato (programma eseguibile)"
        in disguised.quarantined["reason"]
    )
    assert disguised.sha256 in {r.sha256 for r in messages.query(office.address, index="Quarantined")}
    assert rows.row(office.address, disguised.sha256) is not None  # kept and listed
    assert bootstrap.audit_log(config).verify(office.address).ok
    failures = [i for i in stack.runner.invocations if not i.ok and "Deferred" not in (i.error or "")]
    assert failures == []


AUTO_REPLY = {
    "version": 1,
    "rules": [
        {
            "name": "Risposta automatica",
            "then": {
                "reply": {
                    "template": "Gentile {{ mittente }},\nabbiamo ricevuto il suo messaggio «{{ oggetto }}».\n",
                    "subject": "Ricevuto: {{ oggetto }}",
                    "once_per": "7d",
                },
                "pdf": {"prefix": "stampe", "layout": "flat"},
            },
        }
    ],
}


def polled(stack, rounds: int = 3) -> None:
    """Poll, send what was queued, and deliver, until the exchange settles."""
    for _ in range(rounds):
        stack.runner.advance(POLL)
        stack.network.wait_idle(60)
        stack.runner.run_until_idle(120)
        stack.network.wait_idle(60)


@pytest.mark.timeout(900)
def test_two_mailboxes_answering_each_other_in_automatic_stop_after_one_reply_each(stack, dovecot):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"))
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    uno = stack.add_company_mailbox(alfa, "uno@pec.alfa.test")
    due = stack.add_company_mailbox(beta, "due@pec.beta.test")
    config = stack.deployment()
    for box in (uno, due):
        bootstrap.rules_desk(config).set(None, box.address, AUTO_REPLY, actor="e2e")

    # a person writes from each mailbox to the other (their mail client, not pecflow)
    submit(alfa, uno, [due.address], subject="Da uno", allegati=[])
    submit(beta, due, [uno.address], subject="Da due", allegati=[])
    polled(stack, rounds=4)

    messages = bootstrap.message_store(config)
    outgoing = bootstrap.outgoing_store(config)
    certified = {
        box.address: {
            r.original_subject: r for r in messages.query(box.address) if r.kind == "posta-certificata"
        }
        for box in (uno, due)
    }
    # each answered the person's message once, and no more: the exchange has stopped
    assert sorted(certified[due.address]) == ["Da uno", "Ricevuto: Da due"]
    assert sorted(certified[uno.address]) == ["Da due", "Ricevuto: Da uno"]
    for box, other in ((uno, due), (due, uno)):
        person = certified[box.address][f"Da {'due' if box is uno else 'uno'}"]
        automatic = certified[box.address][f"Ricevuto: Da {'uno' if box is uno else 'due'}"]
        applied = person.extra["rules"]["applied"]
        assert applied[0].startswith(f"Risposta automatica: risposta automatica a {other.address} in coda")
        message_id = applied[0].rsplit("(", 1)[1].rstrip(")")
        job = outgoing.job(message_id)
        # through the sender, reconciled with its receipts (they came back to this mailbox)
        assert job is not None and job.state == State.DELIVERED, job
        assert sorted(r["kind"] for r in job.receipts.values()) == ["accettazione", "avvenuta-consegna"]
        # the automatic answer that arrived here is not answered: the header inside postacert.eml
        assert automatic.extra["rules"]["skipped"] == [
            "Risposta automatica: nessuna risposta automatica: il messaggio è stato scritto da un sistema "
            "automatico (Auto-Submitted: auto-replied)"
        ]
        # the receipts of its own reply are not answered either
        for receipt in messages.query(box.address):
            if receipt.kind in ("accettazione", "avvenuta-consegna") and "rules" in receipt.extra:
                assert "è una ricevuta" in receipt.extra["rules"]["skipped"][0]
        trail = bootstrap.audit_log(config).store.of_message(box.address, person.sha256)
        assert ("regole automatiche", "reply") in [(e.actor, e.action) for e in trail]
        assert bootstrap.audit_log(config).verify(box.address).ok
    assert received_by(net, uno.address) == 2 and received_by(net, due.address) == 2  # a person's, an answer

    # the second guard: the same person again within the period gets no second answer
    submit(alfa, uno, [due.address], subject="Ancora da uno", allegati=[])
    polled(stack, rounds=2)
    again = next(r for r in messages.query(due.address) if r.original_subject == "Ancora da uno")
    [skip] = again.extra["rules"]["skipped"]
    assert skip.startswith(
        f"Risposta automatica: nessuna risposta automatica: a {uno.address} si è già risposto il"
    )
    assert received_by(net, due.address) == 3 and received_by(net, uno.address) == 2

    # the printable PDF of each message, beside it under rules/stampe/
    s3 = config.client("s3")
    key = f"rules/stampe/{again.received_at[:10]}_{again.sha256[:16]}/messaggio.pdf"
    assert s3.get_object(Bucket=config.archive_bucket, Key=key)["Body"].read().startswith(b"%PDF-1.4")
    failures = [i for i in stack.runner.invocations if not i.ok and "Deferred" not in (i.error or "")]
    assert failures == []


CONDITIONS = {
    "version": 1,
    "rules": [
        {"name": "Solleciti", "when": {"subject": "*sollecit*"}, "then": {"tag": ["solleciti"]}},
        {"name": "Amministrazione Beta", "when": {"sender": ["amministrazione@pec.beta.test"]},
         "then": {"tag": ["beta"]}},
        {"name": "Firma da controllare", "when": {"sender_pattern": "*@pec.beta.test", "signature": ["untrusted"]},
         "then": {"notify": ["anna"]}},
        {"name": "Fatture", "when": {"has_sdi": True}, "then": {"tag": ["fattura"]}},
    ],
}  # fmt: skip


@pytest.mark.timeout(600)
def test_every_other_condition_and_the_tag_and_notify_actions(stack, local_aws, dovecot):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"))
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    office = stack.add_company_mailbox(alfa, "protocollo@pec.alfa.test")
    amministrazione = beta.add_mailbox("amministrazione@pec.beta.test")
    commerciale = beta.add_mailbox("commerciale@pec.beta.test")
    stack.add_person("anna", "anna@alfa.test", "Anna", {office.address: "operator"})
    config = stack.deployment()
    bootstrap.rules_desk(config).set(None, office.address, CONDITIONS, actor="e2e")
    alerts = TopicReader(local_aws, name="rules-notify-reader")
    seller = sdi_builder.Parte("IT", "09876543210", "Beta Forniture S.p.A.")
    buyer = sdi_builder.Parte("IT", "01234567890", "Alfa S.p.A.")
    invoice = sdi_builder.fattura(seller, buyer, [sdi_builder.Documento("12/2026", "2026-02-27", "122.00")])

    submit(beta, amministrazione, [office.address], subject="Secondo sollecito di pagamento", allegati=[])
    submit(beta, commerciale, [office.address], subject="Fattura di febbraio",
           allegati=[(sdi_builder.nome_fattura(seller, "00012"), "application/xml", invoice)])  # fmt: skip
    stack.runner.advance(POLL)
    stack.network.wait_idle(60)

    messages = bootstrap.message_store(config)
    records = {r.original_subject: r for r in messages.query(office.address) if r.kind == "posta-certificata"}
    reminder, bill = records["Secondo sollecito di pagamento"], records["Fattura di febbraio"]
    # the simulated providers sign with a CA this stack does not trust: "untrusted", as configured
    assert reminder.signature == bill.signature == "untrusted"
    assert reminder.extra["rules"]["applied"] == [
        "Solleciti: etichetta solleciti", "Amministrazione Beta: etichetta beta", "Firma da controllare: avvisati anna",
    ]  # fmt: skip
    assert bill.extra["rules"]["applied"] == [
        "Firma da controllare: avvisati anna",
        "Fatture: etichetta fattura",
    ]
    rows = InboxStore(config.inbox_table, config.resource("dynamodb"), audit_table=config.audit_table)
    assert rows.row(office.address, reminder.sha256)["tags"] == ["solleciti", "beta"]
    assert rows.row(office.address, bill.sha256)["tags"] == ["fattura"]
    # notify: one grouped alert on the alarms topic naming anna, for both messages
    notices = [a for a in alerts.read() if a.attributes.get("causa") == "avviso-da-regola"]
    assert len(notices) == 1 and notices[0].attributes["persone"] == ["anna"], notices
    assert "Firma da controllare" in notices[0].text
    assert bootstrap.audit_log(config).verify(office.address).ok
    failures = [i for i in stack.runner.invocations if not i.ok and "Deferred" not in (i.error or "")]
    assert failures == []

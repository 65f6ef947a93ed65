"""A mailbox's rules on the local stack: a supplier's certified message arrives through the
simulated providers and is polled by the poller function (with template.yaml's environment); a
rule saves its attachments to the archive bucket's rules/ and assigns it, audited as "regole
automatiche"; a message whose "PDF" is really a program is quarantined, kept and listed."""

from __future__ import annotations

import smtplib

import pytest

from local.pecbuild import builder
from pecflow import bootstrap
from pecflow.adapters.dynamodb.inbox import InboxStore
from pecflow.domain.rules import ACTOR

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
    assert "allegato «documento.pdf»: formato executable non accettato" in disguised.quarantined["reason"]
    assert disguised.sha256 in {r.sha256 for r in messages.query(office.address, index="Quarantined")}
    assert rows.row(office.address, disguised.sha256) is not None  # kept and listed
    assert bootstrap.audit_log(config).verify(office.address).ok
    failures = [i for i in stack.runner.invocations if not i.ok and "Deferred" not in (i.error or "")]
    assert failures == []

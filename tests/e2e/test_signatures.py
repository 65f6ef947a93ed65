"""Providers' signatures on the local stack: the poller function (its template environment, the
trust bundle in the archive bucket) records each message's verdict, counted in its metrics."""

from __future__ import annotations

import smtplib

from local.pecbuild import builder
from pecflow.adapters.dynamodb import MessageStore

POLL = 5 * 60


def _send(provider, account, to: str, n: int) -> None:
    raw = builder.messaggio_originale(
        mittente=account.address,
        destinatari=[to],
        oggetto=f"Richiesta {n}",
        testo="Buongiorno,\nin allegato la richiesta.\n",
        message_id=f"<firma-{n}@pec.beta.test>",
    )
    with smtplib.SMTP_SSL(provider.host, provider.port, context=provider.ssl_context(), timeout=20) as smtp:
        smtp.login(account.address, account.password)
        smtp.sendmail(account.address, [to], raw)


def _records(stack, office):
    deployment = stack.deployment()
    store = MessageStore(deployment.messages_table, deployment.resource("dynamodb"))
    return store.query(office.address, limit=100)


def test_certified_mail_recorded_valid_with_the_providers_ca_as_anchor(stack):
    stack.trust_simulated_providers()
    net = stack.network
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    office = stack.add_company_mailbox(net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test")))
    client = beta.add_mailbox("cliente@pec.beta.test")
    for n in range(3):
        _send(beta, client, office.address, n)
    net.wait_idle(60)
    stack.runner.advance(POLL, timeout=120)

    failures = [i for i in stack.runner.invocations if not i.ok]
    assert failures == [], failures[0].error if failures else None
    records = _records(stack, office)
    assert len(records) == 3
    for record in records:
        assert record.kind == "posta-certificata"
        assert record.signature == "valid", record.signature_detail
        assert record.signer["subject"] == "CN=Posta Certificata Beta PEC S.p.A.,O=Beta PEC S.p.A.,C=IT"
        assert record.signed_at_from == "daticert"


def test_without_a_bundle_the_same_mail_is_untrusted_and_says_why(stack):
    net = stack.network
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    office = stack.add_company_mailbox(net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test")))
    _send(beta, beta.add_mailbox("cliente@pec.beta.test"), office.address, 9)
    net.wait_idle(60)
    stack.runner.advance(POLL, timeout=120)

    (record,) = _records(stack, office)
    assert record.signature == "untrusted"
    assert "no trust anchors at s3://" in record.signature_detail

"""The SMTP submission adapter against the simulated providers: every answer mapped right,
and a lost answer after DATA told apart from a refusal before it."""

from __future__ import annotations

import secrets

import pytest

from local.pec_provider import DROP_AFTER_DATA, SMTP_REJECT, Quota
from local.pecbuild import builder
from pecflow.adapters.mail import MailboxUnavailable, SmtpSubmitter
from pecflow.domain.mailbox import MailboxConfig


@pytest.fixture
def provider(pec_network):
    return pec_network.add_provider(
        builder.Gestore("Epsilon PEC S.p.A.", f"pec-{secrets.token_hex(3)}.eps.test"), quota=Quota(2, 3600)
    )


def config(provider, account, dovecot):
    return MailboxConfig(
        account.address,
        "127.0.0.1",
        smtp_host=provider.host,
        smtp_port=provider.port,
        ca_bundle=dovecot.ca.pem.decode(),
    )


def message(sender, to):
    return builder.messaggio_originale(mittente=sender, destinatari=[to], oggetto="prova", testo="x")


def test_accepted_refused_quota_and_lost(pec_network, provider, dovecot):
    sender, to = provider.fresh_mailbox("mittente"), provider.fresh_mailbox("dest")
    smtp = SmtpSubmitter.open(config(provider, sender, dovecot), sender.password)
    try:
        assert (
            smtp.submit(message(sender.address, to.address), sender.address, [to.address]).status
            == "accepted"
        )
        pec_network.script(to.address, SMTP_REJECT, times=1)
        refused = smtp.submit(message(sender.address, to.address), sender.address, [to.address])
        assert (refused.status, refused.code) == ("permanent", 550)
        pec_network.script(to.address, DROP_AFTER_DATA, times=1)
        lost = smtp.submit(message(sender.address, to.address), sender.address, [to.address])
        assert lost.status == "lost"
    finally:
        smtp.close()
    pec_network.wait_idle()
    delivered = [
        d for d in pec_network.deliveries if d.mailbox == to.address and d.kind == "posta-certificata"
    ]
    assert len(delivered) == 2, "the lost one went out once"
    smtp = SmtpSubmitter.open(config(provider, sender, dovecot), sender.password)
    try:  # 2 per hour (the refused one never reached DATA): the quota is used up
        over = smtp.submit(message(sender.address, to.address), sender.address, [to.address])
        assert (over.status, over.code) == ("temporary", 451)
    finally:
        smtp.close()


def test_credentials_and_tls_errors(provider, dovecot):
    sender = provider.fresh_mailbox("mittente")
    with pytest.raises(MailboxUnavailable) as error:
        SmtpSubmitter.open(config(provider, sender, dovecot), "sbagliata")
    assert error.value.kind == "auth"
    untrusted = MailboxConfig(sender.address, "127.0.0.1", smtp_host=provider.host, smtp_port=provider.port)
    with pytest.raises(MailboxUnavailable) as error:
        SmtpSubmitter.open(untrusted, sender.password)
    assert error.value.kind == "tls"

"""The PEC provider simulator end to end: SMTPS submission with AUTH, receipts and buste read back
from Dovecot with imapclient and with the stdlib imaplib, classified by pecflow, for every outcome."""

from __future__ import annotations

import imaplib
import os
import secrets
import shutil
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from local.pec_provider import (
    DELAY,
    DROP_AFTER_DATA,
    FAIL,
    MAILBOX_FULL,
    NO_DOMAIN,
    REJECT,
    REJECT_VIRUS,
    SMTP_REJECT,
    TIMEOUT,
    VIRUS,
    PecNetwork,
    Quota,
    SimulatedProvider,
)
from local.pecbuild.builder import Gestore, messaggio_originale
from pecflow.pec import kinds
from pecflow.pec.message import PecMessage, parse

ESTERNO = "mario.rossi@posta-ordinaria.example"


# --- helpers -------------------------------------------------------------------------------------


def gestore(nome: str) -> Gestore:
    """A provider with a domain of its own (Dovecot is shared by the whole session)."""
    return Gestore(f"{nome} PEC S.p.A.", f"pec-{secrets.token_hex(3)}.{nome.lower()}.test")


def originale(mittente, to, *, cc=(), oggetto="Trasmissione contratto", **kw) -> bytes:
    kw.setdefault("data", datetime(2024, 3, 5, 9, 0, tzinfo=UTC))
    return messaggio_originale(
        mittente=mittente,
        destinatari=list(to),
        cc=list(cc),
        oggetto=oggetto,
        testo="Buongiorno,\nin allegato il contratto.\n",
        **kw,
    )


def invia(provider: SimulatedProvider, account, raw: bytes, rcpts, *, mail_from: str | None = None) -> dict:
    """Submit over implicit TLS, the certificate checked against the local CA, with AUTH."""
    with smtplib.SMTP_SSL(provider.host, provider.port, context=provider.ssl_context(), timeout=10) as smtp:
        smtp.login(account.address, account.password)
        return smtp.sendmail(mail_from or account.address, list(rcpts), raw)


def leggi(dovecot, account) -> list[PecMessage]:
    """Every message in the INBOX, read with imapclient and with imaplib (same bytes), classified."""
    with dovecot.connect(account.address) as client:
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search(["ALL"]))
        fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
        raws = [fetched[uid][b"BODY[]"] for uid in uids]
    stdlib = imaplib.IMAP4_SSL(dovecot.host, dovecot.port, ssl_context=dovecot.ssl_context())
    try:
        stdlib.login(account.address, account.password)
        stdlib.select("INBOX", readonly=True)
        typ, data = stdlib.uid("SEARCH", "ALL")
        assert typ == "OK"
        stdlib_raws = []
        for uid in sorted(int(u) for u in data[0].split()):
            typ, data = stdlib.uid("FETCH", str(uid), "(BODY.PEEK[])")
            assert typ == "OK"
            stdlib_raws.append(data[0][1])
    finally:
        stdlib.logout()
    assert stdlib_raws == raws
    messages = [parse(raw) for raw in raws]
    for message in messages:
        assert message.signature == "present", message.problems
        assert not message.problems, message.problems
    return messages


def by_kind(messages: list[PecMessage]) -> list[str]:
    return [m.kind for m in messages]


@pytest.fixture
def coppia(pec_network):
    """Two providers; a sender at the first, mailboxes at both."""
    alfa = pec_network.add_provider(gestore("Alfa"))
    beta = pec_network.add_provider(gestore("Beta"))
    return alfa, beta, alfa.fresh_mailbox("mittente")


# --- DELIVER: accettazione, buste, consegne; Cc gets sintetica; external recipients nothing --------


def test_deliver_completa_with_cc_and_an_external_recipient(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    primo, collega = beta.fresh_mailbox("primo"), alfa.fresh_mailbox("collega")
    raw = originale(
        mittente.address,
        [primo.address, ESTERNO],
        cc=[collega.address],
        message_id="<contratto-1@cliente.example>",
    )
    assert invia(alfa, mittente, raw, [primo.address, ESTERNO, collega.address]) == {}
    pec_network.wait_idle()

    [submission] = pec_network.submissions
    ident = submission.identificativo
    assert (
        submission.receipt == kinds.ACCETTAZIONE and submission.message_id == "<contratto-1@cliente.example>"
    )
    assert ident.endswith("@" + alfa.gestore.domain) and ".20240305100000." in ident  # Italian time
    assert [(r.address, r.tipo) for r in submission.recipients] == [
        (primo.address, "certificato"),
        (ESTERNO, "esterno"),
        (collega.address, "certificato"),
    ]
    assert submission.recipient(ESTERNO).result is None

    sent = leggi(dovecot, mittente)
    assert by_kind(sent) == [kinds.ACCETTAZIONE, kinds.AVVENUTA_CONSEGNA, kinds.AVVENUTA_CONSEGNA]
    accettazione = sent[0]
    assert accettazione.provider == alfa.gestore.name and accettazione.to == [mittente.address]
    assert {(r.address, r.type) for r in accettazione.recipients} == {
        (primo.address, "certificato"),
        (ESTERNO, "esterno"),
        (collega.address, "certificato"),
    }
    consegne = {m.delivered_to: m for m in sent[1:]}
    assert set(consegne) == {primo.address, collega.address}  # none for the external recipient
    assert consegne[primo.address].receipt_type == "completa" and consegne[primo.address].postacert
    assert consegne[primo.address].provider == beta.gestore.name  # the recipient's provider
    assert consegne[collega.address].receipt_type == "sintetica"  # Cc: sintetica
    assert consegne[collega.address].provider == alfa.gestore.name
    for m in sent:
        assert m.ref_message_id == "<contratto-1@cliente.example>" and m.identificativo == ident
        assert m.timestamp == datetime(2024, 3, 5, 10, 0, tzinfo=m.timestamp.tzinfo)
        assert m.timestamp.utcoffset() == timedelta(hours=1)

    for account in (primo, collega):
        [busta] = leggi(dovecot, account)
        assert busta.kind == kinds.POSTA_CERTIFICATA and busta.identificativo == ident
        assert (
            busta.message_id == f"<{ident}>" and busta.original_message_id == "<contratto-1@cliente.example>"
        )
        assert busta.provider == alfa.gestore.name and busta.receipt_type == "completa"
        inner = busta.postacert
        assert inner.message_id == f"<{ident}>"  # rewritten to the identificativo
        assert inner.root.headers.get("x-riferimento-message-id") == "<contratto-1@cliente.example>"
        assert inner.subject == "Trasmissione contratto" and inner.from_address == mittente.address

    kinds_delivered = sorted((d.mailbox, d.kind) for d in pec_network.deliveries)
    assert kinds_delivered == sorted(
        [
            (mittente.address, kinds.ACCETTAZIONE),
            (mittente.address, kinds.AVVENUTA_CONSEGNA),
            (mittente.address, kinds.AVVENUTA_CONSEGNA),
            (primo.address, kinds.POSTA_CERTIFICATA),
            (collega.address, kinds.POSTA_CERTIFICATA),
        ]
    )
    assert all(d.uid and d.error is None and d.identificativo == ident for d in pec_network.deliveries)
    assert submission.recipient(primo.address).result == kinds.AVVENUTA_CONSEGNA


@pytest.mark.parametrize("tipo", ["breve", "sintetica"])
def test_receipt_type_follows_x_tiporicevuta(dovecot, pec_network, coppia, tipo):
    alfa, beta, mittente = coppia
    dest = beta.fresh_mailbox()
    raw = originale(
        mittente.address,
        [dest.address],
        tipo_ricevuta=tipo,
        allegati=[("contratto.pdf", "application/pdf", b"%PDF-1.4 " + b"x" * 3000)],
    )
    invia(alfa, mittente, raw, [dest.address])
    pec_network.wait_idle()
    accettazione, consegna = leggi(dovecot, mittente)
    assert consegna.kind == kinds.AVVENUTA_CONSEGNA and consegna.receipt_type == tipo
    if tipo == "breve":
        assert [a.filename for a in consegna.attachments] == ["contratto.pdf.hash"]
    else:
        assert consegna.postacert is None
    [busta] = leggi(dovecot, dest)
    assert busta.receipt_type == tipo and [a.filename for a in busta.attachments] == ["contratto.pdf"]


def test_uids_follow_the_order_of_submissions(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    dest = beta.fresh_mailbox()
    with smtplib.SMTP_SSL(alfa.host, alfa.port, context=alfa.ssl_context(), timeout=10) as smtp:
        smtp.login(mittente.address, mittente.password)
        for n in range(5):
            smtp.sendmail(
                mittente.address,
                [dest.address],
                originale(mittente.address, [dest.address], oggetto=f"Messaggio {n}"),
            )
    pec_network.wait_idle()
    buste = leggi(dovecot, dest)
    assert [b.original_subject for b in buste] == [f"Messaggio {n}" for n in range(5)]
    assert [b.identificativo for b in buste] == [s.identificativo for s in pec_network.submissions]


# --- failures at delivery -------------------------------------------------------------------------


def test_fail_and_unknown_mailbox_give_errore_consegna_no_dest(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    rifiuta = beta.fresh_mailbox("rifiuta")
    pec_network.script(rifiuta.address, FAIL)
    inesistente = f"nessuno@{beta.domains[0]}"
    raw = originale(mittente.address, [rifiuta.address, inesistente])
    invia(alfa, mittente, raw, [rifiuta.address, inesistente])
    pec_network.wait_idle()

    sent = leggi(dovecot, mittente)
    assert by_kind(sent) == [kinds.ACCETTAZIONE, kinds.ERRORE_CONSEGNA, kinds.ERRORE_CONSEGNA]
    ident = sent[0].identificativo
    for errore in sent[1:]:
        assert errore.error == "no-dest" and errore.error_detail.startswith("5.1.1")
        assert errore.permanent_error and errore.provider == beta.gestore.name
        assert errore.identificativo == ident and errore.ref_message_id == sent[0].ref_message_id
    assert {m.delivered_to for m in sent[1:]} == {rifiuta.address, inesistente}
    assert leggi(dovecot, rifiuta) == []


def test_no_domain_is_found_by_the_senders_provider(dovecot, pec_network, coppia):
    alfa, _, mittente = coppia
    ignoto = f"ufficio@pec-{secrets.token_hex(3)}.inesistente.test"
    pec_network.script(ignoto, NO_DOMAIN)
    invia(alfa, mittente, originale(mittente.address, [ignoto]), [ignoto])
    pec_network.wait_idle()
    accettazione, errore = leggi(dovecot, mittente)
    assert [(r.address, r.type) for r in accettazione.recipients] == [(ignoto, "certificato")]
    assert errore.kind == kinds.ERRORE_CONSEGNA and errore.error == "no-dominio"
    assert errore.provider == alfa.gestore.name and errore.delivered_to == ignoto


def test_virus_errore_consegna_and_a_rilevazione_between_providers(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    dest = beta.fresh_mailbox()
    pec_network.script(dest.address, VIRUS)
    invia(alfa, mittente, originale(mittente.address, [dest.address]), [dest.address])
    pec_network.wait_idle()
    accettazione, errore = leggi(dovecot, mittente)
    assert errore.kind == kinds.ERRORE_CONSEGNA and errore.error == "virus" and errore.virus
    assert errore.root.headers.get("x-verificasicurezza") == "errore"
    assert errore.subject.startswith("AVVISO DI MANCATA CONSEGNA PER VIRUS: ")
    assert errore.delivered_to == dest.address and errore.identificativo == accettazione.identificativo
    assert leggi(dovecot, dest) == []
    [notice] = pec_network.provider_notices
    rilevazione = parse(notice.raw)
    assert rilevazione.kind == kinds.RILEVAZIONE_VIRUS and rilevazione.provider == beta.gestore.name
    assert rilevazione.to == [alfa.gestore.indirizzo] and rilevazione.delivered_to == dest.address


def test_mailbox_full_is_a_real_overquota(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    piena, vera = beta.fresh_mailbox("piena"), beta.fresh_mailbox("vera", quota="2K")
    pec_network.script(piena.address, MAILBOX_FULL, times=1)
    invia(
        alfa,
        mittente,
        originale(mittente.address, [piena.address, vera.address]),
        [piena.address, vera.address],
    )
    pec_network.wait_idle()
    sent = leggi(dovecot, mittente)
    assert by_kind(sent) == [kinds.ACCETTAZIONE, kinds.ERRORE_CONSEGNA, kinds.ERRORE_CONSEGNA]
    for errore in sent[1:]:
        assert errore.error == "altro" and errore.provider == beta.gestore.name
        assert errore.error_detail == f"5.2.2 - {beta.gestore.name} - casella piena"
    failed = [d for d in pec_network.deliveries if d.error]
    assert {d.mailbox for d in failed} == {piena.address, vera.address}
    assert all("OVERQUOTA" in d.error and d.kind == kinds.POSTA_CERTIFICATA for d in failed)
    assert leggi(dovecot, piena) == [] and leggi(dovecot, vera) == []
    # the scripted box gets its own quota back: the next message is delivered
    invia(alfa, mittente, originale(mittente.address, [piena.address], oggetto="Di nuovo"), [piena.address])
    pec_network.wait_idle()
    assert by_kind(leggi(dovecot, piena)) == [kinds.POSTA_CERTIFICATA]


# --- timing on the virtual clock ----------------------------------------------------------------------


def test_delay_delivers_when_the_clock_gets_there(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    dest = beta.fresh_mailbox()
    pec_network.script(dest.address, DELAY(600))
    invia(alfa, mittente, originale(mittente.address, [dest.address]), [dest.address])
    pec_network.wait_idle()
    assert by_kind(leggi(dovecot, mittente)) == [kinds.ACCETTAZIONE] and leggi(dovecot, dest) == []
    assert pec_network.pending() == [datetime(2024, 3, 5, 9, 10, tzinfo=UTC)]
    pec_network.clock.advance(599)
    pec_network.run_due()
    assert leggi(dovecot, dest) == []
    pec_network.clock.advance(1)
    pec_network.run_due()
    [busta] = leggi(dovecot, dest)
    assert busta.timestamp == datetime(2024, 3, 5, 9, 0, tzinfo=UTC)  # the busta dates the acceptance
    accettazione, consegna = leggi(dovecot, mittente)
    assert consegna.kind == kinds.AVVENUTA_CONSEGNA
    assert consegna.timestamp == datetime(2024, 3, 5, 9, 10, tzinfo=UTC)
    assert pec_network.pending() == []


def test_timeout_preavviso_at_12_hours_and_final_notice_at_24(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    dest = beta.fresh_mailbox()
    pec_network.script(dest.address, TIMEOUT)
    invia(alfa, mittente, originale(mittente.address, [dest.address]), [dest.address])
    pec_network.wait_idle()
    pec_network.clock.advance(12 * 3600 - 1)
    pec_network.run_due()
    assert by_kind(leggi(dovecot, mittente)) == [kinds.ACCETTAZIONE]
    pec_network.clock.advance(1)
    pec_network.run_due()
    accettazione, preavviso = leggi(dovecot, mittente)
    assert preavviso.kind == kinds.PREAVVISO_ERRORE_CONSEGNA and not preavviso.permanent_error
    assert preavviso.error_detail.startswith("4.4.7") and preavviso.delivered_to == dest.address
    assert preavviso.timestamp == datetime(2024, 3, 5, 21, 0, tzinfo=UTC)
    pec_network.clock.advance(12 * 3600)
    pec_network.run_due()
    *_, finale = leggi(dovecot, mittente)
    assert finale.kind == kinds.PREAVVISO_ERRORE_CONSEGNA and finale.permanent_error
    assert finale.error_detail == f"5.4.1 - {alfa.gestore.name} - consegna non avvenuta entro 24 ore"
    assert finale.provider == alfa.gestore.name and finale.identificativo == accettazione.identificativo
    assert finale.subject.startswith("AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: ")
    assert leggi(dovecot, dest) == [] and pec_network.pending() == []
    assert pec_network.submissions[0].recipient(dest.address).result == kinds.PREAVVISO_ERRORE_CONSEGNA


def test_delay_past_12_hours_gets_the_preavviso_then_the_consegna(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    dest = beta.fresh_mailbox()
    pec_network.script(dest.address, DELAY(13 * 3600))
    invia(alfa, mittente, originale(mittente.address, [dest.address]), [dest.address])
    pec_network.clock.advance(24 * 3600)  # one jump: the events still come in their order
    pec_network.run_due()
    assert by_kind(leggi(dovecot, mittente)) == [
        kinds.ACCETTAZIONE,
        kinds.PREAVVISO_ERRORE_CONSEGNA,
        kinds.AVVENUTA_CONSEGNA,
    ]
    assert by_kind(leggi(dovecot, dest)) == [kinds.POSTA_CERTIFICATA]


# --- the access point: non-accettazione, SMTP refusals ------------------------------------------------


def test_reject_gives_only_a_non_accettazione(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    dest, altro = beta.fresh_mailbox(), beta.fresh_mailbox()
    pec_network.script(dest.address, REJECT)
    invia(
        alfa,
        mittente,
        originale(mittente.address, [dest.address, altro.address]),
        [dest.address, altro.address],
    )
    pec_network.wait_idle()
    [avviso] = leggi(dovecot, mittente)
    assert avviso.kind == kinds.NON_ACCETTAZIONE and avviso.error == "altro" and not avviso.virus
    assert avviso.error_detail.startswith("5.7.0 - ") and avviso.postacert is None
    assert avviso.identificativo == pec_network.submissions[0].identificativo
    assert leggi(dovecot, dest) == [] and leggi(dovecot, altro) == []
    assert [d.kind for d in pec_network.deliveries] == [kinds.NON_ACCETTAZIONE]


def test_reject_virus_gives_a_non_accettazione_per_virus(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    dest = beta.fresh_mailbox()
    pec_network.script(dest.address, REJECT_VIRUS)
    invia(alfa, mittente, originale(mittente.address, [dest.address]), [dest.address])
    pec_network.wait_idle()
    [avviso] = leggi(dovecot, mittente)
    assert avviso.kind == kinds.NON_ACCETTAZIONE and avviso.error == "virus" and avviso.virus
    assert avviso.subject.startswith("AVVISO DI NON ACCETTAZIONE PER VIRUS: ")


def _senza_header(raw: bytes, name: bytes) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    return (
        b"\r\n".join(line for line in head.split(b"\r\n") if not line.lower().startswith(name.lower() + b":"))
        + b"\r\n\r\n"
        + body
    )


FORMALI = {
    # name: (how the message/envelope differs, the errore-esteso's start)
    "from-not-mail-from": (
        "5.7.1",
        lambda m, d, raw: (
            raw.replace(f"From: {m}".encode(), b"From: qualcun.altro@pec.altrove.test", 1),
            [d],
        ),
    ),
    "bcc": ("5.7.0", lambda m, d, raw: (raw.replace(b"Subject:", f"Bcc: {d}\r\nSubject:".encode(), 1), [d])),
    "rcpt-not-in-to-cc": ("5.7.0", lambda m, d, raw: (raw, [d, f"nascosto@{d.split('@')[1]}"])),
    "to-in-header-not-rcpt": (
        "5.7.0",
        lambda m, d, raw: (
            raw.replace(f"To: {d}".encode(), f"To: {d}, secondo@{d.split('@')[1]}".encode(), 1),
            [d],
        ),
    ),
    "no-to": ("5.6.0", lambda m, d, raw: (_senza_header(raw, b"To"), [d])),
    "no-from": ("5.6.0", lambda m, d, raw: (_senza_header(raw, b"From"), [d])),
}


@pytest.mark.parametrize("caso", list(FORMALI))
def test_formal_checks_give_a_non_accettazione(dovecot, pec_network, coppia, caso):
    alfa, beta, mittente = coppia
    dest = beta.fresh_mailbox()
    codice, guasta = FORMALI[caso]
    raw, rcpts = guasta(mittente.address, dest.address, originale(mittente.address, [dest.address]))
    assert invia(alfa, mittente, raw, rcpts) == {}  # SMTP accepts; the notice says no
    pec_network.wait_idle()
    [avviso] = leggi(dovecot, mittente)
    assert avviso.kind == kinds.NON_ACCETTAZIONE and avviso.error == "altro"
    assert avviso.error_detail.startswith(f"{codice} - {alfa.gestore.name} - ")
    assert avviso.to == [mittente.address] and avviso.sender == mittente.address  # to the reverse-path
    assert pec_network.submissions[0].receipt == kinds.NON_ACCETTAZIONE
    assert leggi(dovecot, dest) == []


def test_size_counts_once_per_recipient(dovecot, pec_network):
    alfa = pec_network.add_provider(gestore("Alfa"), max_message_bytes=12_000)
    mittente, uno, due = alfa.fresh_mailbox(), alfa.fresh_mailbox(), alfa.fresh_mailbox()
    allegato = [("dati.bin", "application/octet-stream", os.urandom(5000))]  # ~7 KB as sent
    invia(alfa, mittente, originale(mittente.address, [uno.address], allegati=allegato), [uno.address])
    pec_network.wait_idle()
    invia(
        alfa,
        mittente,
        originale(mittente.address, [uno.address, due.address], allegati=allegato),
        [uno.address, due.address],
    )
    pec_network.wait_idle()
    kinds_sent = by_kind(leggi(dovecot, mittente))
    assert kinds_sent[:2] == [kinds.ACCETTAZIONE, kinds.AVVENUTA_CONSEGNA]
    assert kinds_sent[2:] == [kinds.NON_ACCETTAZIONE]
    assert pec_network.submissions[1].errore_esteso.startswith("5.3.4 - ")
    # one copy over the limit: SMTP's business (RFC 6109 §3.1.2), at MAIL FROM SIZE= or at DATA
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as too_big:
        invia(
            alfa,
            mittente,
            originale(
                mittente.address,
                [uno.address],
                allegati=[("grande.bin", "application/octet-stream", os.urandom(12_000))],
            ),
            [uno.address],
        )
    assert too_big.value.smtp_code == 552


def test_authentication_and_envelope_sender(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    dest, altro = beta.fresh_mailbox(), alfa.fresh_mailbox()
    raw = originale(mittente.address, [dest.address])
    with smtplib.SMTP_SSL(alfa.host, alfa.port, context=alfa.ssl_context(), timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as denied:
            smtp.login(mittente.address, "sbagliata")
        assert denied.value.smtp_code == 535
        with pytest.raises(smtplib.SMTPSenderRefused) as anonymous:
            smtp.sendmail(mittente.address, [dest.address], raw)
        assert anonymous.value.smtp_code == 530
    with pytest.raises(smtplib.SMTPAuthenticationError):  # another provider's account
        invia(beta, mittente, raw, [dest.address])
    with pytest.raises(smtplib.SMTPSenderRefused) as spoofed:
        invia(alfa, altro, raw, [dest.address], mail_from=mittente.address)
    assert spoofed.value.smtp_code == 553
    pec_network.wait_idle()
    assert pec_network.submissions == [] and pec_network.deliveries == []
    assert [r.reply[:3] for r in pec_network.refusals] == ["530", "553"]
    with pytest.raises(ssl.SSLCertVerificationError):  # a default context does not trust the local CA
        smtplib.SMTP_SSL(alfa.host, alfa.port, context=ssl.create_default_context(), timeout=5)


def test_smtp_reject_refuses_one_recipient_at_rcpt(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    buono, cattivo = beta.fresh_mailbox(), beta.fresh_mailbox()
    pec_network.script(cattivo.address, SMTP_REJECT)
    refused = invia(
        alfa,
        mittente,
        originale(mittente.address, [buono.address, cattivo.address]),
        [buono.address, cattivo.address],
    )
    assert refused[cattivo.address][0] == 550 and b"5.1.1" in refused[cattivo.address][1]
    pec_network.wait_idle()
    accettazione, consegna = leggi(dovecot, mittente)
    assert [r.address for r in accettazione.recipients] == [buono.address]
    assert consegna.delivered_to == buono.address and leggi(dovecot, cattivo) == []
    assert pec_network.submissions[0].recipient(cattivo.address).result == "smtp-rejected"
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        invia(alfa, mittente, originale(mittente.address, [cattivo.address]), [cattivo.address])


def test_drop_after_data_the_client_errs_but_the_message_went_once(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    dest = beta.fresh_mailbox()
    pec_network.script(dest.address, DROP_AFTER_DATA, times=1)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        invia(alfa, mittente, originale(mittente.address, [dest.address]), [dest.address])
    pec_network.wait_idle()
    assert by_kind(leggi(dovecot, dest)) == [kinds.POSTA_CERTIFICATA]
    assert by_kind(leggi(dovecot, mittente)) == [kinds.ACCETTAZIONE, kinds.AVVENUTA_CONSEGNA]
    [submission] = pec_network.submissions
    assert submission.dropped and submission.receipt == kinds.ACCETTAZIONE


def test_script_next_applies_to_the_next_transactions(dovecot, pec_network, coppia):
    alfa, beta, mittente = coppia
    dest = beta.fresh_mailbox()
    alfa.script_next(1, REJECT)
    for _ in range(2):
        invia(alfa, mittente, originale(mittente.address, [dest.address]), [dest.address])
    pec_network.wait_idle()
    assert [s.receipt for s in pec_network.submissions] == [kinds.NON_ACCETTAZIONE, kinds.ACCETTAZIONE]


# --- the MX: ordinary mail becomes a busta di anomalia ----------------------------------------------


def test_ordinary_mail_through_the_mx_becomes_anomalia(dovecot, pec_network, coppia):
    alfa, _, mittente = coppia
    raw = (
        b"From: Mario Rossi <mario.rossi@posta-ordinaria.example>\r\nTo: "
        + mittente.address.encode()
        + b"\r\nSubject: Richiesta informazioni\r\nMessage-ID: <ordinaria-1@posta-ordinaria.example>\r\n"
        b"Date: Tue, 05 Mar 2024 10:00:00 +0100\r\n\r\nBuongiorno.\r\n"
    )
    with smtplib.SMTP(pec_network.mx_host, pec_network.mx_port, timeout=10) as smtp:
        assert smtp.sendmail("mario.rossi@posta-ordinaria.example", [mittente.address], raw) == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("mario.rossi@posta-ordinaria.example", [f"nessuno@{alfa.domains[0]}"], raw)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("mario.rossi@posta-ordinaria.example", ["chiunque@altrove.example"], raw)
    pec_network.wait_idle()
    [anomalia] = leggi(dovecot, mittente)
    assert anomalia.kind == kinds.ANOMALIA and anomalia.message_id == "<ordinaria-1@posta-ordinaria.example>"
    assert anomalia.subject == "ANOMALIA MESSAGGIO: Richiesta informazioni"
    assert anomalia.sender == "mario.rossi@posta-ordinaria.example" and anomalia.daticert is None
    assert anomalia.postacert.subject == "Richiesta informazioni"
    assert anomalia.root.headers.get("return-path") == "<mario.rossi@posta-ordinaria.example>"
    assert [(d.mailbox, d.kind) for d in pec_network.deliveries] == [(mittente.address, kinds.ANOMALIA)]
    assert [r.reply[:7] for r in pec_network.refusals] == ["550 5.1", "550 5.7"]


# --- quotas ---------------------------------------------------------------------------------------------


def test_quota_451_then_the_window_opens(dovecot, pec_network):
    alfa = pec_network.add_provider(gestore("Alfa"), quota=Quota(2, 60))
    mittente, collega, dest = alfa.fresh_mailbox(), alfa.fresh_mailbox(), alfa.fresh_mailbox()
    raw = originale(mittente.address, [dest.address])
    for _ in range(2):
        invia(alfa, mittente, raw, [dest.address])
    with pytest.raises(smtplib.SMTPSenderRefused) as over:
        invia(alfa, mittente, raw, [dest.address])
    assert over.value.smtp_code == 451 and over.value.smtp_error.startswith(b"4.7.1")
    invia(alfa, collega, originale(collega.address, [dest.address]), [dest.address])  # per account
    pec_network.wait_idle()
    assert len(leggi(dovecot, dest)) == 3 and len(pec_network.submissions) == 3
    pec_network.clock.advance(60)
    invia(alfa, mittente, raw, [dest.address])
    pec_network.wait_idle()
    assert len(leggi(dovecot, dest)) == 4
    assert alfa.quota.violations(alfa.sent_times(mittente.address)) == []
    assert [r.reply[:9] for r in pec_network.refusals] == ["451 4.7.1"]


def test_two_providers_with_their_own_domains_and_quotas(dovecot, pec_network):
    alfa = pec_network.add_provider(gestore("Alfa"), quota=Quota(1, 3600))
    beta = pec_network.add_provider(
        gestore("Beta"),
        domains=(f"pec-{secrets.token_hex(3)}.beta.test", f"pec-{secrets.token_hex(3)}.beta-due.test"),
        quota=Quota(3, 3600, rolling=False),
    )
    a, b1, b2 = (
        alfa.fresh_mailbox(),
        beta.add_mailbox(f"uno@{beta.domains[0]}"),
        beta.add_mailbox(f"due@{beta.domains[1]}"),
    )
    invia(alfa, a, originale(a.address, [b1.address, b2.address]), [b1.address, b2.address])
    with pytest.raises(smtplib.SMTPSenderRefused):
        invia(alfa, a, originale(a.address, [b1.address]), [b1.address])
    for _ in range(3):
        invia(beta, b1, originale(b1.address, [a.address]), [a.address])
    with pytest.raises(smtplib.SMTPSenderRefused):
        invia(beta, b1, originale(b1.address, [a.address]), [a.address])
    pec_network.wait_idle()
    in_a = leggi(dovecot, a)  # a's own receipts and the three buste from beta, interleaved
    assert sorted(by_kind(in_a)) == sorted(
        [kinds.ACCETTAZIONE] + [kinds.AVVENUTA_CONSEGNA] * 2 + [kinds.POSTA_CERTIFICATA] * 3
    )
    assert {m.provider for m in in_a if m.kind == kinds.POSTA_CERTIFICATA} == {beta.gestore.name}
    consegne = {m.delivered_to: m.provider for m in in_a if m.kind == kinds.AVVENUTA_CONSEGNA}
    assert consegne == {b1.address: beta.gestore.name, b2.address: beta.gestore.name}
    assert [s.provider for s in pec_network.submissions] == [alfa.gestore.domain] + [beta.gestore.domain] * 3
    assert len(alfa.submissions) == 1 and len(beta.submissions) == 3
    assert len(leggi(dovecot, b1)) == 1 + 3 * 2  # one busta, then accettazione + consegna per message


def test_quota_violations_are_counted_per_window():
    quota, start = Quota(2, 60), datetime(2024, 3, 5, tzinfo=UTC)
    at = [start + timedelta(seconds=s) for s in (0, 30, 61, 90, 95)]
    assert quota.violations(at[:4]) == []
    assert quota.violations(at) == [(at[4], 3)]
    daily = Quota(2, 86400, rolling=False)
    assert daily.violations([start, start + timedelta(hours=23), start + timedelta(hours=25)]) == []


# --- signatures -------------------------------------------------------------------------------------------


def test_signatures_verify_with_openssl_against_the_network_ca(dovecot, pec_network, coppia, tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl binary not available")
    alfa, beta, mittente = coppia
    dest = beta.fresh_mailbox()
    invia(alfa, mittente, originale(mittente.address, [dest.address]), [dest.address])
    pec_network.wait_idle()
    [busta] = leggi(dovecot, dest)
    accettazione, consegna = leggi(dovecot, mittente)
    for name, message in (("busta", busta), ("accettazione", accettazione), ("consegna", consegna)):
        path = tmp_path / f"{name}.eml"
        path.write_bytes(message.root.raw)  # the message exactly as fetched over IMAP
        result = subprocess.run(
            [
                openssl,
                "smime",
                "-verify",
                "-in",
                str(path),
                "-CAfile",
                str(pec_network.ca_file),
                "-purpose",
                "any",
                "-out",
                os.devnull,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (name, result.stderr)
    tampered = tmp_path / "tampered.eml"
    tampered.write_bytes(
        (tmp_path / "busta.eml").read_bytes().replace(b"postacert.eml;", b"postacert.emX;", 1)
    )
    result = subprocess.run(
        [
            openssl,
            "smime",
            "-verify",
            "-in",
            str(tampered),
            "-CAfile",
            str(pec_network.ca_file),
            "-purpose",
            "any",
            "-out",
            os.devnull,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0


# --- lifecycle ---------------------------------------------------------------------------------------------


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # the listing's own descriptor, already closed
            pass
    return count


def test_stop_leaves_no_thread_or_socket(dovecot):
    import gc

    gc.collect()
    threads, sockets = set(threading.enumerate()), _sockets()
    with PecNetwork(dovecot) as network:
        alfa = network.add_provider(gestore("Alfa"))
        mittente, dest = alfa.fresh_mailbox(), alfa.fresh_mailbox()
        invia(alfa, mittente, originale(mittente.address, [dest.address]), [dest.address])
        network.wait_idle()
        ports = [alfa.port, network.mx_port]
        assert len(network.deliveries) == 3
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - threads and time.monotonic() < deadline:
        time.sleep(0.02)
    assert set(threading.enumerate()) - threads == set()
    gc.collect()
    assert _sockets() <= sockets
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not network.ca_file.exists()

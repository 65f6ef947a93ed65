"""The simulator's REM providers end to end: submission over SMTPS with AUTH, REM receipts and
dispatches read back from Dovecot, their REM headers and sections checked with the stdlib and
their S/MIME signatures with openssl against the network's CA; mixed PEC/REM flows; ordinary mail
into a REM mailbox (ReceivedFromNonERDS)."""

from __future__ import annotations

import email
import os
import secrets
import shutil
import smtplib
import subprocess
from datetime import UTC, datetime
from email import policy
from email.message import Message

import pytest

from local.pec_provider import FAIL, MAILBOX_FULL, REJECT_VIRUS, TIMEOUT, VIRUS, SimulatedProvider
from local.pecbuild.builder import Gestore, messaggio_originale
from pecflow.pec import kinds

ESTERNO = "mario.rossi@posta-ordinaria.example"


def gestore(nome: str, rem: bool) -> Gestore:
    sigla = "rem" if rem else "pec"
    return Gestore(f"{nome} {sigla.upper()} S.p.A.", f"{sigla}-{secrets.token_hex(3)}.{nome.lower()}.test")


def originale(mittente: str, to: list[str], message_id: str) -> bytes:
    return messaggio_originale(
        mittente=mittente,
        destinatari=to,
        oggetto="Convocazione assemblea",
        testo="Buongiorno,\nsi trasmette la convocazione.\n",
        message_id=message_id,
        data=datetime(2024, 3, 5, 9, 0, tzinfo=UTC),
    )


def invia(provider: SimulatedProvider, account, raw: bytes, rcpts) -> dict:
    with smtplib.SMTP_SSL(provider.host, provider.port, context=provider.ssl_context(), timeout=10) as smtp:
        smtp.login(account.address, account.password)
        return smtp.sendmail(account.address, list(rcpts), raw)


def leggi(dovecot, account) -> list[bytes]:
    with dovecot.connect(account.address) as client:
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search(["ALL"]))
        fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
        return [fetched[uid][b"BODY[]"] for uid in uids]


def rem(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=policy.compat32)


def ultimo(value: str | None) -> str:
    return str(value).rsplit("/", 1)[-1]


def eventi(raws: list[bytes]) -> list[tuple[str, str, str]]:
    """(REM-MessageType, event, reason) of each message, last URI segments."""
    return [
        (ultimo(m["REM-MessageType"]), ultimo(m["REM-EventIdentifier"]), ultimo(m["REM-ReasonIdentifier"]))
        for m in map(rem, raws)
    ]


def sezioni(raw: bytes) -> list[str]:
    return [str(p["REM-Section-Type"]) for p in rem(raw).walk() if p["REM-Section-Type"]]


@pytest.fixture
def reti(pec_network):
    """Two REM providers and a PEC one; a sender at the first REM provider."""
    uno = pec_network.add_provider(gestore("Uno", True), rem=True)
    due = pec_network.add_provider(gestore("Due", True), rem=True)
    pec = pec_network.add_provider(gestore("Tre", False))
    return uno, due, pec, uno.fresh_mailbox("mittente")


def test_intra_rem_flow_with_an_external_recipient(dovecot, pec_network, reti, tmp_path):
    uno, due, _, mittente = reti
    collega, destinatario = uno.fresh_mailbox("collega"), due.fresh_mailbox("dest")
    to = [destinatario.address, collega.address, ESTERNO]
    raw = originale(mittente.address, to, "<assemblea-1@ente.example>")
    assert invia(uno, mittente, raw, to) == {}
    pec_network.wait_idle()

    [submission] = pec_network.submissions
    assert submission.receipt == kinds.ACCETTAZIONE
    assert submission.identificativo.endswith(".rem-service@" + uno.gestore.domain)
    ricevute = leggi(dovecot, mittente)
    assert sorted(eventi(ricevute)) == sorted(
        [
            ("receipt", "SubmissionAcceptance", "MessageAccepted"),
            ("receipt", "ContentConsignment", "MessageConsignedToRecipient"),
            ("receipt", "ContentConsignment", "MessageConsignedToRecipient"),
            ("receipt", "RelayToNonERDS", "MessageRelayedToNonERDS"),
        ]
    )
    assert eventi(ricevute)[0][1] == "SubmissionAcceptance"  # the first thing the sender gets
    for m in map(rem, ricevute):
        assert m["REM-UAMessageIdentifier"] == "<assemblea-1@ente.example>"  # the reconciliation key
        assert m["To"] == mittente.address
    consegne = {
        rem(r)["From"]: r for r in ricevute if ultimo(rem(r)["REM-EventIdentifier"]) == "ContentConsignment"
    }
    # each ContentConsignment is issued by the recipient's provider
    assert set(consegne) == {f"<rem-service@{uno.gestore.domain}>", f"<rem-service@{due.gestore.domain}>"}
    assert all(sezioni(r) == ["rem_message/introduction", "rem_message/xml_evidence"] for r in ricevute)

    for box in (destinatario, collega):
        [dispatch] = leggi(dovecot, box)
        assert eventi([dispatch]) == [("dispatch", "SubmissionAcceptance", "MessageAccepted")]
        assert sezioni(dispatch) == [
            "rem_message/introduction",
            "rem_message/original",
            "rem_message/xml_evidence",
        ]
        assert rem(dispatch)["Message-ID"] == f"<{submission.identificativo}>"
        assert rem(dispatch)["Subject"] == "REM Dispatch: Convocazione assemblea"
    # between REM providers the recipient's provider reports RelayAcceptance to the sender's
    [notice] = pec_network.provider_notices
    assert (notice.kind, notice.sender, notice.recipient) == (
        kinds.PRESA_IN_CARICO,
        due.gestore.domain,
        uno.gestore.domain,
    )
    assert eventi([notice.raw]) == [("receipt", "RelayAcceptance", "S_ERDS_MessageSuccessfullyRelayed")]
    assert {(r.address, r.result) for r in submission.recipients} == {
        (destinatario.address, kinds.AVVENUTA_CONSEGNA),
        (collega.address, kinds.AVVENUTA_CONSEGNA),
        (ESTERNO, kinds.ACCETTAZIONE),
    }
    assert {d.rem_event for d in pec_network.deliveries} == {
        "SubmissionAcceptance",
        "ContentConsignment",
        "RelayToNonERDS",
    }

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl binary not available")
    for i, raw_message in enumerate([*ricevute, *leggi(dovecot, destinatario)]):
        path = tmp_path / f"{i}.eml"
        path.write_bytes(raw_message)  # exactly as fetched over IMAP
        result = subprocess.run(
            [openssl, "smime", "-verify", "-in", str(path), "-CAfile", str(pec_network.ca_file),
             "-purpose", "any", "-out", os.devnull],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (i, result.stderr)


def test_rem_failures_with_their_reasons(dovecot, pec_network, reti):
    uno, due, _, mittente = reti
    assente, piena, infetta, lenta = (due.fresh_mailbox(n) for n in ("assente", "piena", "infetta", "lenta"))
    pec_network.script(assente.address, FAIL)
    pec_network.script(piena.address, MAILBOX_FULL)
    pec_network.script(infetta.address, VIRUS)
    pec_network.script(lenta.address, TIMEOUT)
    to = [assente.address, piena.address, infetta.address, lenta.address]
    assert invia(uno, mittente, originale(mittente.address, to, "<guasti-1@ente.example>"), to) == {}
    pec_network.wait_idle()
    pec_network.clock.advance(12 * 3600)
    pec_network.run_due()
    assert len(leggi(dovecot, mittente)) == 4  # no 12-hour notice in REM
    pec_network.clock.advance(12 * 3600)
    pec_network.run_due()

    ricevute = eventi(leggi(dovecot, mittente))
    assert ricevute[0] == ("receipt", "SubmissionAcceptance", "MessageAccepted")
    assert sorted(ricevute[1:]) == sorted(
        [
            ("receipt", "RelayFailure", "MessageNotAcceptedForUnregisteredRecipient"),
            ("receipt", "ContentConsignmentFailure", "MessageNotConsignedForQuota"),
            ("receipt", "RelayFailure", "R_ERDS_MessageRejectedForMalware"),
            # no 12-hour notice in REM: only the final outcome after 24 hours
            ("receipt", "ContentConsignmentFailure", "S_ERDSP_ReceivedNoDeliveryInfoFromR_ERDSP"),
        ]
    )
    [submission] = pec_network.submissions
    assert all(r.result == kinds.ERRORE_CONSEGNA for r in submission.recipients)
    # between the providers: the virus refused (RelayRejection); the full mailbox's message relayed
    # (RelayAcceptance), then not consigned
    notices = {n.consegna: eventi([n.raw])[0] for n in pec_network.provider_notices}
    assert notices == {
        infetta.address: ("receipt", "RelayRejection", "R_ERDS_MessageRejectedForMalware"),
        piena.address: ("receipt", "RelayAcceptance", "S_ERDS_MessageSuccessfullyRelayed"),
    }
    assert leggi(dovecot, assente) == leggi(dovecot, infetta) == leggi(dovecot, lenta) == []


def test_submission_rejection_for_malware(dovecot, pec_network, reti):
    uno, due, _, mittente = reti
    dest = due.fresh_mailbox()
    pec_network.script(dest.address, REJECT_VIRUS)
    invia(
        uno, mittente, originale(mittente.address, [dest.address], "<virus-1@ente.example>"), [dest.address]
    )
    pec_network.wait_idle()
    [rifiuto] = leggi(dovecot, mittente)
    assert eventi([rifiuto]) == [("receipt", "SubmissionRejection", "MalwareFound")]
    assert rem(rifiuto)["REM-UAMessageIdentifier"] == "<virus-1@ente.example>"
    assert leggi(dovecot, dest) == []


def test_mixed_flows_between_pec_and_rem(dovecot, pec_network, reti):
    uno, _, pec, mittente_rem = reti
    mittente_pec = pec.fresh_mailbox("mittente")
    dest_pec, dest_rem = pec.fresh_mailbox("dest"), uno.fresh_mailbox("dest")

    # REM -> PEC: the REM sender gets REM receipts, the PEC recipient a busta di trasporto
    invia(uno, mittente_rem, originale(mittente_rem.address, [dest_pec.address], "<r2p@ente.example>"),
          [dest_pec.address])  # fmt: skip
    # PEC -> REM: the PEC sender gets PEC receipts, the REM recipient a REM dispatch
    invia(pec, mittente_pec, originale(mittente_pec.address, [dest_rem.address], "<p2r@ente.example>"),
          [dest_rem.address])  # fmt: skip
    pec_network.wait_idle()

    assert eventi(leggi(dovecot, mittente_rem)) == [
        ("receipt", "SubmissionAcceptance", "MessageAccepted"),
        ("receipt", "ContentConsignment", "MessageConsignedToRecipient"),
    ]
    [busta] = map(rem, leggi(dovecot, dest_pec))
    assert busta["X-Trasporto"] == "posta-certificata" and busta["REM-MessageType"] is None
    assert busta["X-Riferimento-Message-ID"] == "<r2p@ente.example>"

    pec_ricevute = [rem(r) for r in leggi(dovecot, mittente_pec)]
    assert [m["X-Ricevuta"] for m in pec_ricevute] == ["accettazione", "avvenuta-consegna"]
    assert all(m["REM-MessageType"] is None for m in pec_ricevute)
    [dispatch] = leggi(dovecot, dest_rem)
    assert eventi([dispatch]) == [("dispatch", "SubmissionAcceptance", "MessageAccepted")]
    assert rem(dispatch)["REM-UAMessageIdentifier"] == "<p2r@ente.example>"
    assert rem(dispatch)["From"].endswith(f"<rem-service@{uno.gestore.domain}>")  # the REM gateway


def test_ordinary_mail_into_a_rem_mailbox_is_received_from_non_erds(dovecot, pec_network, reti):
    uno, _, _, mittente = reti
    raw = (
        b"From: Mario Rossi <" + ESTERNO.encode() + b">\r\nTo: " + mittente.address.encode()
        + b"\r\nSubject: Richiesta informazioni\r\nMessage-ID: <ordinaria-1@posta-ordinaria.example>\r\n"
        b"Date: Tue, 05 Mar 2024 10:00:00 +0100\r\n\r\nBuongiorno.\r\n"
    )  # fmt: skip
    with smtplib.SMTP(pec_network.mx_host, pec_network.mx_port, timeout=10) as smtp:
        assert smtp.sendmail(ESTERNO, [mittente.address], raw) == {}
    pec_network.wait_idle()
    [dispatch] = leggi(dovecot, mittente)
    assert eventi([dispatch]) == [("dispatch", "ReceivedFromNonERDS", "MessageReceivedFromNonERDS")]
    m = rem(dispatch)
    assert m["Subject"] == "EXTERNAL: Richiesta informazioni"
    assert m["REM-UAMessageIdentifier"] == "<ordinaria-1@posta-ordinaria.example>"
    assert sezioni(dispatch) == [
        "rem_message/introduction",
        "rem_message/original",
        "rem_message/xml_evidence",
    ]
    [delivery] = pec_network.deliveries
    assert (delivery.kind, delivery.rem_event) == (kinds.ANOMALIA, "ReceivedFromNonERDS")


def test_what_rem_providers_deliver_is_classified_as_the_simulator_recorded_it(dovecot, pec_network, reti):
    """Every message the simulator appended, classified by pecflow: the kind it recorded (what the
    statistics are checked against), the REM event, and the reconciliation key."""
    from pecflow.pec.message import parse

    uno, due, pec, mittente = reti
    dest_rem, dest_pec, piena = due.fresh_mailbox(), pec.fresh_mailbox(), due.fresh_mailbox("piena")
    pec_network.script(piena.address, MAILBOX_FULL)
    to = [dest_rem.address, dest_pec.address, piena.address, ESTERNO]
    invia(uno, mittente, originale(mittente.address, to, "<campagna-1@ente.example>"), to)
    pec_network.wait_idle()
    boxes = {a.address: leggi(dovecot, a) for a in (mittente, dest_rem, dest_pec, piena)}
    delivered = [d for d in pec_network.deliveries if d.uid is not None]
    assert len(delivered) == sum(map(len, boxes.values())) == 7
    for d in delivered:
        with dovecot.connect(d.mailbox) as client:
            client.select_folder("INBOX", readonly=True)
            raw = client.fetch([d.uid], ["BODY.PEEK[]"])[d.uid][b"BODY[]"]
        result = parse(raw)
        assert result.kind == d.kind, (d, result.problems)
        assert result.problems == [], result.problems
        if d.mailbox == mittente.address:
            assert result.ref_message_id == "<campagna-1@ente.example>"
            assert result.rem is not None and result.rem.event == d.rem_event

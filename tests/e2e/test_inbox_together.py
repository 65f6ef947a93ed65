"""Working the inbox together on the local stack, through the HTTP API on a local port (tokens
checked as API Gateway's authorizer does): a certified message arrives and is polled, two people
see it, one takes it in charge and replies (the other is refused, and cannot reply either), the
reply goes out through the sender and its receipts are reconciled, and the other sees who handled
it and what was done, in the audit trail; the message's evidence pack (the message, the reply and
its receipts, time-stamped by the local TSA) passes `pecflow evidence verify`, and fails it once a
receipt's byte is changed."""

from __future__ import annotations

import hashlib
import io
import smtplib
import urllib.request
import zipfile
from urllib.parse import quote

import pytest

from local.api_server import json_request
from local.pecbuild import builder
from pecflow import bootstrap, cli
from pecflow.domain import evidence as pack
from pecflow.domain.reconcile import State
from pecflow.pec.signature import TrustAnchors
from tests.e2e.test_campaigns import received_by

POLL = 5 * 60
CAPITOLATO = b"%PDF-1.7\n" + bytes(range(256)) * 64 + b"%%EOF\n"


def submit(
    provider, account, to, *, subject, msgid, text="Buongiorno,\nin allegato il capitolato.\n", **more
):
    """A message as the correspondent's mail client sends it, over SMTPS to their provider."""
    raw = builder.messaggio_originale(
        mittente=account.address, destinatari=list(to), oggetto=subject, testo=text, message_id=msgid, **more
    )
    with smtplib.SMTP_SSL(provider.host, provider.port, context=provider.ssl_context(), timeout=20) as smtp:
        smtp.login(account.address, account.password)
        smtp.sendmail(account.address, list(to), raw)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.read()


@pytest.mark.timeout(600)
def test_two_people_one_message_one_reply(stack, dovecot, tmp_path, capsys):
    net = stack.network
    stack.trust_simulated_providers()
    stack.trust_local_tsa()  # read by the API function at its cold start: before it serves
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"))
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    office = stack.add_company_mailbox(alfa, "ufficio@pec.alfa.test")
    mario = beta.add_mailbox("mario.rossi@pec.beta.test")
    api = stack.serve_api()
    anna = stack.add_person("anna", "anna@alfa.test", "Anna", {office.address: "operator"})
    bruno = stack.add_person("bruno", "bruno@alfa.test", "Bruno", {office.address: "operator"})
    box = f"{api.url}/mailboxes/{quote(office.address)}"

    submit(
        beta, mario, [office.address], subject="Richiesta di preventivo", msgid="<richiesta-7@pec.beta.test>",
        allegati=[("capitolato.pdf", "application/pdf", CAPITOLATO)],
    )  # fmt: skip
    stack.runner.advance(POLL)
    stack.network.wait_idle(60)

    # both see it, da gestire; opening it takes nothing in charge
    for token in (anna, bruno):
        status, page = json_request(f"{box}/messages?handling=da-gestire", token=token)
        assert status == 200, page
        (row,) = [m for m in page["messages"] if m["kind"] == "posta-certificata"]
    sha = row["sha256"]
    status, shown = json_request(f"{box}/messages/{sha}", token=bruno)
    assert status == 200 and shown["row"]["handling"] == "da-gestire"
    assert shown["message"]["sender"] == "mario.rossi@pec.beta.test"
    # what Mario wrote, from the archived original: his message inside the provider's envelope
    content = shown["content"]
    assert content["envelope"] and content["text"] == "Buongiorno,\nin allegato il capitolato.\n"
    assert [(f["index"], f["filename"]) for f in content["files"]] == [(0, "capitolato.pdf")]
    status, link = json_request(f"{box}/messages/{sha}/files/0", token=bruno)
    assert status == 200 and link["filename"] == "capitolato.pdf" and fetch(link["url"]) == CAPITOLATO

    # one takes it in charge; the other is told who holds it, and cannot reply
    status, held = json_request(
        f"{box}/messages/{sha}/handling", "POST", token=anna, body={"act": "take-in-charge"}
    )
    assert status == 200 and held["holder"] == "anna"
    status, refused = json_request(
        f"{box}/messages/{sha}/handling", "POST", token=bruno, body={"act": "take-in-charge"}
    )
    assert status == 409 and refused["holder"] == "anna" and "anna" in refused["message"]
    status, refused = json_request(
        f"{box}/messages/{sha}/reply", "POST", token=bruno, body={"text": "Anche io"}
    )
    assert status == 409 and refused["code"] == "held-by-other"
    text = {"text": "Gentile sig. Rossi,\nin allegato il nostro preventivo.\n"}
    status, sent = json_request(f"{box}/messages/{sha}/reply", "POST", token=anna, body=text)
    assert status == 200, sent
    status, again = json_request(
        f"{box}/messages/{sha}/reply", "POST", token=anna, body=text
    )  # a double click
    assert again == sent

    # the reply goes out through the sender; its receipts come back and are reconciled
    stack.runner.run_until_idle(120)
    stack.network.wait_idle(60)
    stack.runner.advance(POLL)
    stack.network.wait_idle(60)
    stack.runner.advance(POLL)
    outgoing = bootstrap.outgoing_store(stack.deployment())
    job = outgoing.job(sent["message_id"])
    assert job is not None and job.state == State.DELIVERED, job
    assert sorted(r["kind"] for r in job.receipts.values()) == ["accettazione", "avvenuta-consegna"]
    assert received_by(net, mario.address) == 1, "the simulator received exactly one reply"

    status, done = json_request(f"{box}/messages/{sha}/handling", "POST", token=anna,
                                body={"act": "mark-handled", "note": "preventivo inviato"})  # fmt: skip
    assert status == 200 and done["handling"] == "gestito"

    # the other sees who handled it, and the trail
    status, shown = json_request(f"{box}/messages/{sha}", token=bruno)
    assert (shown["row"]["handling"], shown["row"]["holder"], shown["row"]["note"]) == (
        "gestito",
        "anna",
        "preventivo inviato",
    )
    assert shown["row"]["last_reply"] == sent["message_id"]
    (reply,) = shown["sent_from_here"]  # the reply beside the message, with its receipts
    assert (reply["message_id"], reply["to"], reply["state"]) == (
        sent["message_id"],
        mario.address,
        "delivered",
    )
    assert [r["kind"] for r in reply["receipts"]] == ["accettazione", "avvenuta-consegna"]

    # the original, byte for byte, through a short-lived link

    status, link = json_request(f"{box}/messages/{sha}/download", token=bruno)
    assert status == 200 and hashlib.sha256(fetch(link["url"])).hexdigest() == sha
    status, trail = json_request(f"{box}/messages/{sha}/audit", token=bruno)
    assert [(e["actor"], e["action"]) for e in trail] == [
        ("bruno", "view"),
        ("bruno", "download"),  # the capitolato
        ("anna", "take-in-charge"),
        ("anna", "reply"),
        ("anna", "mark-handled"),
        ("bruno", "view"),
        ("bruno", "download"),
    ]
    assert all(e["source_ip"] == "127.0.0.1" for e in trail)

    # the evidence pack: the message, the reply and its receipts, the stamp of the local TSA
    status, evidence = json_request(f"{box}/messages/{sha}/evidence", token=bruno)
    assert status == 200 and evidence["timestamped"], evidence
    data = fetch(evidence["url"])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert hashlib.sha256(zf.read(pack.MESSAGE)).hexdigest() == sha
        receipts = [n for n in names if n.startswith(pack.RECEIPTS)]
        assert [n.split("-", 1)[1].rsplit("-", 1)[0] for n in receipts] == [
            "accettazione",
            "avvenuta-consegna",
        ]
        assert len([n for n in names if n.startswith(pack.SENT)]) == 1  # the reply as submitted
    packed, providers, tsa = tmp_path / "fascicolo.zip", tmp_path / "gestori.pem", tmp_path / "tsa.pem"
    packed.write_bytes(data)
    providers.write_bytes(TrustAnchors([net.autorita.certificato]).pem())
    tsa.write_bytes(stack.tsa.anchors_pem)
    verify = ["evidence", "verify", str(packed), "--anchors", str(providers), "--tsa-anchors", str(tsa)]
    assert cli.main(verify) == 0, capsys.readouterr().out
    changed = tmp_path / "cambiato.zip"
    with zipfile.ZipFile(packed) as src, zipfile.ZipFile(changed, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(
                info.filename, body[:-3] + b"X" + body[-2:] if info.filename == receipts[1] else body
            )
    capsys.readouterr()
    assert cli.main([*verify[:2], str(changed), *verify[3:]]) == 1
    assert f"ERRORE  {receipts[1]}: ALTERATO" in capsys.readouterr().out
    status, trail = json_request(f"{box}/messages/{sha}/audit", token=bruno)
    assert trail[-1]["actor"] == "bruno" and trail[-1]["action"] == "evidence"

    # Mario answers the reply: his answer is of the same conversation as his request
    submit(
        beta, mario, [office.address], subject="Re: Richiesta di preventivo", msgid="<risposta-8@pec.beta.test>",
        text="Grazie, confermiamo.\n", in_reply_to=sent["message_id"],
        references=["<richiesta-7@pec.beta.test>", sent["message_id"]],
    )  # fmt: skip
    stack.runner.advance(POLL)
    stack.network.wait_idle(60)
    status, page = json_request(f"{box}/messages?handling=da-gestire", token=bruno)
    (answer,) = [m for m in page["messages"] if m["kind"] == "posta-certificata"]
    status, shown = json_request(f"{box}/messages/{answer['sha256']}", token=bruno)
    assert [m["sha256"] for m in shown["thread"]] == [sha, answer["sha256"]]
    assert bootstrap.audit_log(stack.deployment()).verify(office.address).ok
    failures = [i for i in stack.runner.invocations if not i.ok and "Deferred" not in (i.error or "")]
    assert failures == [], failures[0].error if failures else None

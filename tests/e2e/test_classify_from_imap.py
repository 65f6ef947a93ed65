"""What the simulated providers put in real mailboxes, read by a third-party client and
recognised by the `pecflow classify` command itself."""

from __future__ import annotations

import json
import secrets
import shutil
import smtplib
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from local.pec_provider import FAIL, REJECT
from local.pecbuild.builder import Gestore, messaggio_originale


def test_pecflow_classify_recognises_what_the_providers_deliver(dovecot, pec_network, tmp_path):
    alfa = pec_network.add_provider(Gestore("Alfa PEC S.p.A.", f"pec-{secrets.token_hex(3)}.alfa.test"))
    beta = pec_network.add_provider(Gestore("Beta PEC S.p.A.", f"pec-{secrets.token_hex(3)}.beta.test"))
    sender, ok, wrong = (
        alfa.fresh_mailbox("ufficio"),
        beta.fresh_mailbox("cliente"),
        beta.fresh_mailbox("errato"),
    )
    pec_network.script(wrong.address, FAIL)

    def submit(to, subject, **kw):
        raw = messaggio_originale(
            mittente=sender.address,
            destinatari=to,
            oggetto=subject,
            testo="Buongiorno.\n",
            data=datetime(2024, 3, 5, 9, tzinfo=UTC),
            **kw,
        )
        with smtplib.SMTP_SSL(alfa.host, alfa.port, context=alfa.ssl_context(), timeout=10) as smtp:
            smtp.login(sender.address, sender.password)
            smtp.sendmail(sender.address, to, raw)

    submit([ok.address, wrong.address], "Contratto", tipo_ricevuta="breve")
    pec_network.script(ok.address, REJECT, times=1)
    submit([ok.address], "Respinto")
    with smtplib.SMTP(pec_network.mx_host, pec_network.mx_port, timeout=10) as mx:
        mx.sendmail(
            "mario@posta.example",
            [ok.address],
            b"From: mario@posta.example\r\nTo: "
            + ok.address.encode()
            + b"\r\nSubject: ordinaria\r\n\r\nciao\r\n",
        )
    pec_network.wait_idle()

    for account in (sender, ok):
        with dovecot.connect(account.address) as client:
            client.select_folder("INBOX", readonly=True)
            uids = client.search(["ALL"])
            for uid, data in client.fetch(uids, ["BODY.PEEK[]"]).items():
                (tmp_path / f"{account.address}-{uid:03d}.eml").write_bytes(data[b"BODY[]"])

    command = shutil.which("pecflow", path=str(Path(sys.executable).parent)) or "pecflow"
    out = subprocess.run(
        [command, "classify", "--json", str(tmp_path)], capture_output=True, text=True, check=True
    )
    records = [json.loads(line) for line in out.stdout.splitlines()]
    kinds_by_box = {}
    for record in records:
        box = Path(record["file"]).name.rsplit("-", 1)[0]
        kinds_by_box.setdefault(box, []).append(record["kind"])
        assert record["problems"] == [], record
    assert sorted(kinds_by_box[sender.address]) == sorted(
        ["accettazione", "avvenuta-consegna", "errore-consegna", "non-accettazione"]
    )
    assert sorted(kinds_by_box[ok.address]) == ["anomalia", "posta-certificata"]
    consegna = next(r for r in records if r["kind"] == "avvenuta-consegna")
    assert consegna["receipt_type"] == "breve" and consegna["delivered_to"] == ok.address
    assert consegna["provider"] == "Beta PEC S.p.A."

"""`make demo`: a realistic day of two companies' PEC mailboxes, on this machine, no AWS account.

Everything real except the cloud: Dovecot serves the mailboxes over IMAPS, simulated PEC
providers accept submissions over SMTPS and answer with real receipts and signed envelopes,
moto plays S3/DynamoDB/SQS/Secrets Manager with the resources of template.yaml, and the event
runner drives pecflow's own Lambda handlers on a fast-forwarded clock.

The day: Rossi S.r.l. sends a 200-recipient payment reminder from its Aruba-like mailbox (a CSV
written by Excel: Windows-1252, semicolons; a fixed PDF and one PDF per recipient), paced by the
provider's quota; receipts come back and are reconciled; a few recipients fail as scripted.
Meanwhile Bianchi S.p.A.'s mailbox, on another provider, receives certified mail, ordinary mail
(anomalie) and an e-invoice from the SdI. At the end: the campaign statistics, each inbox by
kind, where the archive is, and a check that every number matches what the simulator recorded.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import smtplib
import sys
import threading
import time
import warnings
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN = "solleciti-marzo"
STEP = 60  # virtual seconds between two looks at the campaign
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # Monday, 9:00 in Rome
QUOTA = (50, 600)  # the sending provider's contract: 50 messages per 10 minutes


OUT = sys.stdout  # the demo's own output; the Lambdas' JSON logs go to LAMBDA_LOG
LAMBDA_LOG = REPO / ".local-run" / "demo-lambdas.log"


def log(text: str = "") -> None:
    print(text, file=OUT, flush=True)


class Progress:
    """One line per update on a pipe; a bar redrawn in place on a terminal."""

    def __init__(self, total: int):
        self.total, self.tty, self.last = total, OUT.isatty(), None

    def show(self, clock: datetime, counters: dict) -> None:
        done = min(self.total, counters.get("total", 0) - counters.get("to_send", 0))
        width = 30
        filled = round(width * done / max(self.total, 1))
        line = (
            f"  {clock.astimezone(ROME):%H:%M} [{'#' * filled}{'.' * (width - filled)}] {done:3d}/{self.total} "
            f"sent or settled | accettate {counters.get('accepted', 0):3d} | consegnate "
            f"{counters.get('delivered', 0):3d} | errori {counters.get('errors', 0) + counters.get('delivery_failures', 0):2d}"
        )
        if line == self.last:
            return
        self.last = line
        if self.tty:
            print("\r" + line, end="", file=OUT, flush=True)
        else:
            print(line, file=OUT, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=OUT, flush=True)


try:
    from zoneinfo import ZoneInfo

    ROME = ZoneInfo("Europe/Rome")
except Exception:  # no tz database: show UTC
    ROME = UTC


def excel_csv(rows: list[dict]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), delimiter=";", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode("cp1252")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=200, help="campaign size (default 200)")
    args = parser.parse_args(argv)
    LAMBDA_LOG.parent.mkdir(exist_ok=True)
    with open(LAMBDA_LOG, "w") as lambda_log:
        sys.stdout = lambda_log  # the handlers' loggers and metrics print here
        shown = warnings.showwarning
        warnings.showwarning = _lambdas_warnings_to(lambda_log, shown)
        try:
            return run(args)
        finally:
            sys.stdout, warnings.showwarning = OUT, shown


def _lambdas_warnings_to(lambda_log, show):
    """A Python warning raised inside a handler goes to the Lambdas' log, as on Lambda (its stderr
    is the function's log), not to the demo's screen."""
    from local.runner import THREAD_PREFIX

    def showwarning(message, category, filename, lineno, file=None, line=None):
        in_handler = threading.current_thread().name.startswith(THREAD_PREFIX)
        show(message, category, filename, lineno, lambda_log if in_handler else file, line)

    return showwarning


def run(args) -> int:
    started = time.perf_counter()

    from local.pec_provider import FAIL, REJECT, SMTP_REJECT, Quota
    from local.pecbuild import builder, sdi_builder
    from local.stack import LocalStack
    from pecflow import bootstrap
    from pecflow.adapters.dynamodb import MessageStore
    from pecflow.domain.campaign.pdf import text_pdf
    from pecflow.pec import kinds
    from pecflow.services.admin import STAT_LABELS

    log("pecflow demo — starting the local stack (Dovecot, simulated PEC providers, moto, event runner) ...")
    # the handlers run here: their boto3 calls skip the socket (the CLI still reaches moto over HTTP)
    with LocalStack.start(start_time=START, direct_calls=True) as stack:
        net = stack.network
        aruba = net.add_provider(
            builder.Gestore("Aruba PEC S.p.A. (simulato)", "pec.rossi-srl.test"), quota=Quota(*QUOTA)
        )
        namirial = net.add_provider(
            builder.Gestore("Namirial S.p.A. (simulato)", "pec.clienti.test"),
            domains=("pec.clienti.test", "pec.bianchi-spa.test"),
        )
        sogei = net.add_provider(builder.Gestore("Sogei - SdI (simulato)", "pec.fatturapa.test"))
        rossi = stack.add_company_mailbox(
            aruba, "ufficio@pec.rossi-srl.test", quota_preset=f"custom:{QUOTA[0]}/{QUOTA[1]}s"
        )
        bianchi = stack.add_company_mailbox(namirial, "amministrazione@pec.bianchi-spa.test")
        log("  mailboxes registered in pecflow (configuration in DynamoDB, password in Secrets Manager):")
        log(
            f"    {rossi.address:40s} on {aruba.gestore.name}, quota {QUOTA[0]} messages per {QUOTA[1] // 60} minutes"
        )
        log(f"    {bianchi.address:40s} on {namirial.gestore.name}")

        # -- the campaign: recipients, scripted outcomes, the package as a user uploads it
        rows, script = [], Counter()
        for i in range(1, args.recipients + 1):
            address = f"cliente{i:03d}@pec.clienti.test"
            if i % 50 == 7:
                net.script(address, FAIL)  # errore-consegna: the box does not exist
                script["delivery_failures"] += 1
            elif i % 100 == 33:
                net.script(address, REJECT)  # non-accettazione from the sender's provider
                script["not_accepted"] += 1
            elif i == 150 and args.recipients >= 150:
                net.script(address, SMTP_REJECT)  # refused at RCPT TO
                script["smtp_rejected"] += 1
            else:
                namirial.add_mailbox(address)
                script["delivered"] += 1
            rows.append(
                {
                    "PEC": address,
                    "Ragione Sociale": f"Cliente {i} S.r.l. – Società Benefit",
                    "Importo": f"{900 + i * 7},50",
                    "Scadenza": "31/03/2026",
                    "Allegato": f"avviso-{i:03d}.pdf",
                }
            )
        manifest = {
            "mailbox": rossi.address,
            "subject": "Sollecito di pagamento – {{ ragione_sociale }}",
            "body_text": "Gentile {{ ragione_sociale }},\nle ricordiamo l'importo di {{ importo|importo }} "
            "in scadenza il {{ scadenza|data }}.\nIn allegato l'avviso e le condizioni generali.\n"
            "Cordiali saluti\nRossi S.r.l.\n",
            "attachments": ["condizioni-generali.pdf"],
            "attachment_column": "allegato",
            "receipt_type": "completa",
        }
        s3 = stack.aws.client("s3")
        bucket = stack.aws.physical("CampaignBucket")
        prefix = f"campaigns/{CAMPAIGN}/"
        s3.put_object(
            Bucket=bucket,
            Key=prefix + "attachments/condizioni-generali.pdf",
            Body=text_pdf("Rossi S.r.l. - Condizioni generali di fornitura.\n" * 20),
        )
        for row in rows:
            s3.put_object(
                Bucket=bucket,
                Key=prefix + "attachments/" + row["Allegato"],
                Body=text_pdf(
                    f"Avviso di pagamento per {row['Ragione Sociale']}\n"
                    f"Importo: {row['Importo']} EUR, scadenza {row['Scadenza']}"
                ),
            )
        s3.put_object(Bucket=bucket, Key=prefix + "recipients.csv", Body=excel_csv(rows))
        log(
            f"\nCampaign {CAMPAIGN}: {len(rows)} recipients, recipients.csv in Windows-1252 with ';' as Excel writes it,"
        )
        log(f"  a fixed PDF and one PDF per recipient, uploaded to s3://{bucket}/{prefix}")
        log(
            f"  scripted: {script['delivery_failures']} errore-consegna, {script['not_accepted']} non-accettazione, "
            f"{script['smtp_rejected']} refused over SMTP; the others delivered"
        )

        # -- what reaches Bianchi S.p.A. during the day
        clients = [namirial.add_mailbox(f"fornitore{i}@pec.clienti.test") for i in range(1, 7)]
        incoming = 0
        for n, client in enumerate(clients * 2):
            raw = builder.messaggio_originale(
                mittente=client.address,
                destinatari=[bianchi.address],
                oggetto=f"Richiesta di preventivo n. {n + 1}",
                testo="Buongiorno,\nvi inviamo la richiesta in oggetto.\n",
                message_id=f"<richiesta-{n + 1}@pec.clienti.test>",
            )
            with smtplib.SMTP_SSL(
                namirial.host, namirial.port, context=namirial.ssl_context(), timeout=20
            ) as smtp:
                smtp.login(client.address, client.password)
                smtp.sendmail(client.address, [bianchi.address], raw)
            incoming += 1
        for n in range(3):
            with smtplib.SMTP(net.mx_host, net.mx_port, timeout=20) as mx:
                mx.sendmail(
                    "offerte@posta-ordinaria.test",
                    [bianchi.address],
                    f"From: offerte@posta-ordinaria.test\r\nTo: {bianchi.address}\r\n"
                    f"Subject: Offerta speciale {n + 1}\r\nMessage-ID: <offerta-{n}@posta-ordinaria.test>\r\n"
                    f"\r\nNon e' posta certificata.\r\n".encode(),
                )
        sdi = sogei.add_mailbox("sdi01@pec.fatturapa.test")
        fornitore = sdi_builder.Parte("IT", "09876543210", "Fornitore Verdi S.p.A.")
        noi = sdi_builder.Parte("IT", "01234567890", "Bianchi S.p.A.")
        nome = sdi_builder.nome_fattura(fornitore, "00042")
        fattura = sdi_builder.fattura(
            fornitore, noi, [sdi_builder.Documento("42/2026", "2026-02-27", "1220.00")]
        )
        metadati = sdi_builder.notifica(
            "MT", identificativo_sdi="123456789", nome_file=nome, message_id="1", quando=START
        )
        raw = builder.messaggio_originale(
            mittente=sdi.address,
            destinatari=[bianchi.address],
            oggetto="Invio File 123456789",
            testo=f"Il file {nome} e' stato trasmesso dal Sistema di Interscambio.\n",
            allegati=[
                (sdi_builder.nome_notifica(nome, "MT"), "application/xml", metadati),
                (nome, "application/xml", fattura),
            ],
            message_id="<123456789@sdi.fatturapa.test>",
            tipo_ricevuta="breve",
        )
        with smtplib.SMTP_SSL(sogei.host, sogei.port, context=sogei.ssl_context(), timeout=20) as smtp:
            smtp.login(sdi.address, sdi.password)
            smtp.sendmail(sdi.address, [bianchi.address], raw)
        log(
            f"\nIncoming for {bianchi.address}: {incoming} certified messages, 3 ordinary e-mails (they become "
            f"anomalie), 1 e-invoice from the SdI"
        )

        # -- the day runs: the manifest's upload starts the campaign; the clock is fast-forwarded
        s3.put_object(Bucket=bucket, Key=prefix + "manifest.json", Body=json.dumps(manifest).encode())
        log(
            f"\nmanifest.json uploaded: validation, fan-out, then sending paced by the quota "
            f"({QUOTA[0]} per {QUOTA[1] // 60} minutes), clock fast-forwarded ..."
        )
        deployment = stack.deployment()
        progress = Progress(len(rows))
        stack.runner.run_until_idle(300)
        counters: dict = {}
        for _ in range(24 * 60 * 60 // STEP):
            stack.runner.advance(STEP, timeout=600)
            net.wait_idle(120)
            counters = bootstrap.campaign_admin(deployment).stats(CAMPAIGN)["counters"]
            progress.show(datetime.fromtimestamp(stack.clock.now(), UTC), counters)
            if counters.get("total") and counters["to_send"] == 0 and counters["waiting"] == 0:
                break
        stack.runner.advance(10 * 60, timeout=600)  # two more polls: the last receipts
        net.wait_idle(120)
        progress.close()
        stats = bootstrap.campaign_admin(deployment).stats(CAMPAIGN)
        counters = stats["counters"]

        # -- what pecflow shows
        log(f"\nCampaign {CAMPAIGN} — {stats['status']} — from {stats['mailbox']}")
        for key, label in STAT_LABELS:
            log(f"  {label:48s} {counters.get(key, 0):>6d}")
        messages = MessageStore(deployment.messages_table, deployment.resource("dynamodb"))
        recorded = {box.address: messages.query(box.address, limit=10_000) for box in (rossi, bianchi)}
        for address, records in recorded.items():
            by_kind = Counter(r.kind for r in records)
            log(f"\nInbox {address}: {len(records)} messages")
            for kind, count in sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0])):
                log(f"  {kind:32s} {count:>6d}")
            invoices = [r.sdi for r in records if r.sdi]
            for sdi in invoices:
                log(
                    f"  SdI: {sdi.get('type')} {sdi.get('nome_file') or ''} "
                    f"(IdentificativoSdI {sdi.get('identificativo_sdi') or '-'})"
                )
        archive = stack.aws.physical("ArchiveBucket")
        objects = sum(
            page.get("KeyCount", 0)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=archive, Prefix="messages/")
        )
        received = sum(len(r) for r in recorded.values())
        log(
            f"\nArchive: {objects} messages, untouched, in s3://{archive}/messages/ (key = sha256 of the bytes):"
        )
        log(
            f"  the {received} received above and the {objects - received} the campaign sent (archived before submission)"
        )
        log(
            f"  (moto at {stack.aws.endpoint_url} while the demo runs; the Lambdas' logs: {LAMBDA_LOG.relative_to(REPO)})"
        )

        # -- the HTTP API, as the office's people use it
        api_problems = show_api(stack, (rossi, bianchi), recorded, kinds)
        console = show_console(stack)

        # -- the check: every number above against what the simulator recorded
        problems = check(net, counters, script, rows, rossi, bianchi, recorded, objects, kinds) + api_problems
        elapsed = time.perf_counter() - started
        if problems:
            log("\nCHECK FAILED:")
            for p in problems:
                log(f"  - {p}")
            return 1
        log(
            f"\nCheck: every figure above matches what the simulated providers recorded "
            f"({len(net.submissions)} submissions, {len(net.deliveries)} deliveries). "
            f"Demo finished in {elapsed:.0f} s."
        )
        if console is not None and sys.stdin.isatty() and OUT.isatty():
            keep_up(console)
    return 0


def keep_up(console) -> None:
    """In a terminal (stdin and stdout) the stack and the console stay up with the day's data until
    Ctrl-C; from a script, CI or a test, the demo exits as soon as it is checked."""
    log(f"\nThe console stays up at {console.url} with the day's data: press Ctrl-C to stop the stack.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        log("\nStopping the local stack ...")


DEMO_PEOPLE = {  # username: (name, role on the company's mailbox)
    "anna": ("Anna Verdi", "operator"),
    "marco": ("Marco Neri", "manager"),
    "carla": ("Carla Bianchi", "admin"),
}
# the console's sign-in on this machine only (the local user pool; MFA optional, not enrolled)
DEMO_PASSWORDS = {user: f"{user.capitalize()}-demo-2026" for user in DEMO_PEOPLE}
TOKENS = REPO / ".local-run" / "demo-tokens.json"


def show_api(stack, boxes, recorded, kinds) -> list[str]:
    """The API on its local port, three people with a role on each mailbox, each mailbox read
    through it as Anna reads it (the messages, then the receipts apart): the API must list what
    the inbox holds."""
    import json
    from urllib.parse import quote

    from local.api_server import json_request

    api = stack.serve_api()
    tokens = {
        user: stack.add_person(
            user,
            f"{user}@rossi-srl.test",
            name,
            {box.address: role for box in boxes},
            password=DEMO_PASSWORDS[user],
        )
        for user, (name, role) in DEMO_PEOPLE.items()
    }
    TOKENS.write_text(json.dumps(tokens, indent=2))
    problems, lines = [], []
    for box in boxes:
        url = f"{api.url}/mailboxes/{quote(box.address)}/messages"
        counts = []
        for receipts in (False, True):
            listed, cursor = 0, None
            while True:
                query = (
                    "?size=200"
                    + ("&receipts=true" if receipts else "")
                    + (f"&cursor={quote(cursor)}" if cursor else "")
                )
                status, page = json_request(url + query, token=tokens["anna"])
                if status != 200:
                    return [f"the API answered {status} to Anna's list of {box.address}: {page}"]
                listed += len(page["messages"])
                cursor = page["cursor"]
                if not cursor:
                    break
            expected = sum(1 for r in recorded[box.address] if (r.kind in kinds.RICEVUTE) == receipts)
            if listed != expected:
                what = "receipts" if receipts else "messages"
                problems.append(f"the API lists {listed} {what} in {box.address}, the inbox has {expected}")
            counts.append(listed)
        lines.append(f"  {box.address}: {counts[0]} messages to handle, {counts[1]} receipts (listed apart)")
        status, _ = json_request(f"{url}?bin=true", token=tokens["anna"])
        if status != 403:
            problems.append(f"Anna (operator) opened the bin of {box.address}: {status}")
    log(f"\nHTTP API: {api.url} (OpenAPI: {api.url}/openapi.json), while the demo runs; the people:")
    for user, (name, role) in DEMO_PEOPLE.items():
        log(f"  {user:6s} {role:9s} {name}")
    log(f"  their sign-in tokens (valid 1 hour): {TOKENS.relative_to(REPO)}")
    log("  what Anna sees through the API:")
    for line in lines:
        log(line)
    return problems


def show_console(stack):
    """The web console on its local port, when it has been built (`make demo` builds it)."""
    from local.console import DIST

    if not (DIST / "index.html").is_file():
        log(
            f"\nWeb console: not built ({DIST.relative_to(REPO)} is missing): `make console`, then run the demo again."
        )
        return None
    console = stack.serve_console()
    log(
        f"\nWeb console: {console.url} (in Italian; English from its header), the people and their passwords:"
    )
    for user, (name, role) in DEMO_PEOPLE.items():
        log(f"  {user:6s} {DEMO_PASSWORDS[user]:18s} {role:9s} {name}")
    return console


def check(net, counters, script, rows, rossi, bianchi, recorded, objects, kinds) -> list[str]:
    problems = []
    submitted = [s for s in net.submissions if s.account == rossi.address]
    expected = {
        "total": len(rows),
        "to_send": 0,
        "waiting": 0,
        "sent": len(submitted),
        # accepted: accepted by the provider and not (yet) failed; delivered ones included
        "accepted": sum(1 for s in submitted if s.receipt == "accettazione")
        - sum(
            1
            for d in net.deliveries
            if d.mailbox == rossi.address and d.kind == kinds.ERRORE_CONSEGNA and d.error is None
        ),
        "delivered": sum(
            1
            for r in rows
            if any(
                d.mailbox == r["PEC"] and d.kind == kinds.POSTA_CERTIFICATA and d.error is None
                for d in net.deliveries
            )
        ),
        "delivery_failures": sum(
            1
            for d in net.deliveries
            if d.mailbox == rossi.address and d.kind == kinds.ERRORE_CONSEGNA and d.error is None
        ),
        "errors": sum(1 for s in submitted if s.receipt == "non-accettazione")
        + sum(1 for r in net.refusals if r.account == rossi.address),
    }
    for key, value in expected.items():
        if counters.get(key) != value:
            problems.append(f"campaign {key}: pecflow says {counters.get(key)}, the simulator {value}")
    if expected["sent"] != len(rows) - script["smtp_rejected"]:
        problems.append(
            f"{expected['sent']} submissions, {len(rows) - script['smtp_rejected']} expected (one each)"
        )
    if counters.get("delivered") != script["delivered"]:
        problems.append(f"delivered {counters.get('delivered')}, scripted {script['delivered']}")
    distinct = 0
    for box in (rossi, bianchi):
        delivered = Counter(d.kind for d in net.deliveries if d.mailbox == box.address and d.error is None)
        mine = Counter(r.kind for r in recorded[box.address])
        distinct += sum(delivered.values())
        if mine != delivered:
            problems.append(f"inbox {box.address}: pecflow {dict(mine)}, delivered {dict(delivered)}")
    if objects != distinct + len(rows):
        problems.append(
            f"archive holds {objects} objects: {distinct} messages were delivered, {len(rows)} sent"
        )
    return problems


if __name__ == "__main__":
    sys.exit(main())

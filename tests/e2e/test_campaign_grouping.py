"""Campaigns as offices write them (issue 18), on the local stack through the event runner: 300
invoice rows for 120 customers become 120 PEC, each listing its own invoices; the statistics by
message and by row match what the simulated providers delivered; and a test send before the run
reaches the chosen address only, reconciled like any message and counted nowhere."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter
from email import message_from_bytes, policy

import pytest

from local.pec_provider import FAIL, Quota
from local.pecbuild import builder
from pecflow import bootstrap
from pecflow.adapters.campaign_files import CampaignFolder
from pecflow.domain import quota

STEP = 60
ARUBA = Quota(250, 20 * 60)  # the aruba preset the company mailbox has: 120 PEC fit one window
CAMPAIGN = "fatture-scadute"
MAILBOX = "amministrazione@pec.alfa.test"
MANIFEST = {
    "mailbox": MAILBOX,
    "subject": "Fatture scadute – {{ ragione_sociale }}",
    "body_text": "Gentile {{ ragione_sociale }},\nrisultano scadute le fatture:\n"
    "{% for r in righe %}- {{ r.numero }} del {{ r.data|data }}: {{ r.importo|importo }}\n{% endfor %}"
    "Totale: {{ righe|sum(attribute='importo')|importo }}\n",
    "group_by": "PEC",
    "attachment_column": "fattura",
    "receipt_type": "breve",
}


def invoices() -> tuple[list[dict], dict[str, list[dict]]]:
    """300 rows, one per invoice: customers 0-59 owe three, 60-119 two; shuffled (not sorted)."""
    rows = []
    for c in range(120):
        for k in range(3 if c < 60 else 2):
            rows.append(
                {
                    "PEC": f"cliente{c:03d}@pec.beta.test",
                    "Ragione Sociale": f"Società {c} S.r.l. – àèìòù",
                    "Numero": f"FT-{c:03d}-{k}",
                    "Data": f"{10 + k}/01/2026",
                    "Importo": f"{c + 1}.{k}00,50",  # 1.000,50 … Italian thousands and decimals
                    "Fattura": f"FT-{c:03d}-{k}.pdf",
                }
            )
    random.Random(18).shuffle(rows)
    by_customer: dict[str, list[dict]] = {}
    for row in rows:
        by_customer.setdefault(row["PEC"], []).append(row)
    return rows, by_customer


def csv_bytes(rows: list[dict]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), delimiter=";", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode("cp1252")  # Excel on Italian Windows


def settle(stack, done, *, max_minutes: int = 120) -> None:
    """Advance the virtual clock a minute at a time until `done()`, then one more poll."""
    for _ in range(max_minutes * 60 // STEP):
        stack.runner.advance(STEP, timeout=600)
        stack.network.wait_idle(120)
        if done():
            stack.runner.advance(5 * 60, timeout=600)  # late receipts
            return
    raise AssertionError("the stack did not settle")


def delivered_to(net, address: str) -> int:
    return sum(
        1
        for d in net.deliveries
        if d.mailbox == address and d.kind == "posta-certificata" and d.error is None
    )


def texts(dovecot, address: str) -> list[str]:
    """The text parts of every message in a mailbox's INBOX (the busta's and the original's)."""
    with dovecot.connect(address) as client:
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search(["ALL"]))
        raws = [data[b"BODY[]"] for data in client.fetch(uids, ["BODY.PEEK[]"]).values()] if uids else []
    out = []
    for raw in raws:
        message = message_from_bytes(raw, policy=policy.default)
        out.append(
            "\n".join(
                part.get_content() for part in message.walk() if part.get_content_type() == "text/plain"
            ).replace("\r\n", "\n")
        )
    return out


@pytest.mark.timeout(900)
def test_300_invoice_rows_for_120_customers_make_120_pec_and_a_test_reaches_only_its_address(
    stack, dovecot, tmp_path
):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"), quota=ARUBA)
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    stack.add_company_mailbox(alfa, MAILBOX)
    prova = alfa.add_mailbox("prova@pec.alfa.test")  # the office's own box for tests
    rows, by_customer = invoices()
    failing = {a for i, a in enumerate(sorted(by_customer)) if i % 10 == 3}  # 12 customers
    for address in by_customer:
        if address in failing:
            net.script(address, FAIL)  # errore-consegna
        else:
            beta.add_mailbox(address)
    files = {row["Fattura"]: f"%PDF-1.4 {row['Numero']}\n%%EOF\n".encode() for row in rows}

    # the campaign folder on the office's computer
    folder = tmp_path / CAMPAIGN
    (folder / "attachments").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(MANIFEST))
    (folder / "recipients.csv").write_bytes(csv_bytes(rows))
    for name, body in files.items():
        (folder / "attachments" / name).write_bytes(body)

    # 1. the test send: row 2's customer, whose invoices are scattered through the file
    deployment = stack.deployment()
    customer = rows[0]["PEC"]
    test = bootstrap.campaign_tests(deployment).send(
        CampaignFolder(folder), campaign_id=CAMPAIGN, row=2, to=prova.address, by="e2e"
    )
    own = by_customer[customer]
    assert len(test.rows) == len(own) and test.rows[0] == 2
    outgoing = bootstrap.outgoing_store(deployment)

    def test_delivered() -> bool:
        job = outgoing.job(test.message_id)
        return job is not None and job.state == "delivered"

    settle(stack, test_delivered)
    assert delivered_to(net, prova.address) == 1
    assert delivered_to(net, customer) == 0, "a test never reaches the row's recipient"
    assert [s.rcpt_tos for s in net.submissions if s.account == MAILBOX] == [(prova.address,)]
    [received] = texts(dovecot, prova.address)
    assert all(row["Numero"] in received for row in own), received
    assert bootstrap.campaign_store(deployment).get(CAMPAIGN) is None, "no campaign, no statistics"

    # 2. the campaign: attachments, the CSV, the manifest last
    s3 = stack.aws.client("s3")
    bucket = stack.aws.physical("CampaignBucket")
    for name, body in files.items():
        s3.put_object(Bucket=bucket, Key=f"campaigns/{CAMPAIGN}/attachments/{name}", Body=body)
    s3.put_object(Bucket=bucket, Key=f"campaigns/{CAMPAIGN}/recipients.csv", Body=csv_bytes(rows))
    s3.put_object(
        Bucket=bucket, Key=f"campaigns/{CAMPAIGN}/manifest.json", Body=json.dumps(MANIFEST).encode()
    )
    stack.runner.run_until_idle(300)
    admin = bootstrap.campaign_admin(deployment)

    def finished() -> bool:
        counters = admin.stats(CAMPAIGN)["counters"]
        return bool(counters["total"]) and counters["to_send"] == 0 and counters["waiting"] == 0

    settle(stack, finished)
    stats = admin.stats(CAMPAIGN)
    assert stats["validation"]["messages"] == 120 and stats["validation"]["rows"] == 300
    delivered_rows = sum(len(r) for a, r in by_customer.items() if a not in failing)
    failed_rows = 300 - delivered_rows
    expected = Counter(total=120, sent=120, accepted=108, delivered=108, delivery_failures=12)
    assert stats["counters"] == {name: expected[name] for name in stats["counters"]}
    by_row = Counter(
        total=300, sent=300, accepted=delivered_rows, delivered=delivered_rows, delivery_failures=failed_rows
    )
    assert stats["rows"] == {name: by_row[name] for name in stats["rows"]}

    # what the simulator saw: one PEC per customer, listing exactly its invoices, within the quota
    for address in by_customer:
        assert delivered_to(net, address) == (0 if address in failing else 1), address
    for address in sorted(set(by_customer) - failing):
        [text] = texts(dovecot, address)
        listed = [line for line in text.splitlines() if line.startswith("- FT-")]
        assert sorted(line.split()[1] for line in listed) == sorted(r["Numero"] for r in by_customer[address])
        assert "Totale:" in text
    assert delivered_to(net, prova.address) == 1, "the test, and nothing of the campaign"
    submissions = [s for s in net.submissions if s.account == MAILBOX]
    assert len(submissions) == 121  # the test and one per customer
    assert quota.violations(quota.policy_from("aruba"), [s.time.timestamp() for s in submissions]) == []

    # the export: one line per message, the rows it covered
    jobs = {j.recipient: j for j in admin.jobs(CAMPAIGN)}
    assert sum(j.rows_covered for j in jobs.values()) == 300
    first = jobs[customer]
    assert first.row == 2 and list(first.rows) == list(test.rows)
    failures = [i for i in stack.runner.invocations if not i.ok and "Deferred" not in (i.error or "")]
    assert failures == [], failures[0].error if failures else None

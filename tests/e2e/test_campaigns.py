"""Campaigns on the local stack, driven only through the event runner: upload → validation →
fan-out → quota-paced sending over SMTPS → receipts polled and reconciled → statistics."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections import Counter

import pytest

from local.pec_provider import DROP_AFTER_DATA, FAIL, REJECT, SMTP_REJECT, Quota
from local.pecbuild import builder
from pecflow import bootstrap
from pecflow.adapters.dynamodb import OutgoingStore
from pecflow.domain import quota
from pecflow.domain.reconcile import CampaignStatus, State

STEP = 60
ARUBA = Quota(250, 20 * 60)


def upload(
    stack,
    campaign_id: str,
    *,
    manifest: dict,
    rows: list[dict],
    files: dict[str, bytes],
    encoding: str = "cp1252",
    delimiter: str = ";",
) -> None:
    """As a user would: attachments, then the CSV (Excel on Italian Windows), the manifest last."""
    s3 = stack.aws.client("s3")
    bucket = stack.aws.physical("CampaignBucket")
    for name, content in files.items():
        s3.put_object(Bucket=bucket, Key=f"campaigns/{campaign_id}/attachments/{name}", Body=content)
    text = io.StringIO()
    writer = csv.DictWriter(
        text, fieldnames=list(rows[0]) if rows else ["pec"], delimiter=delimiter, lineterminator="\r\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    s3.put_object(
        Bucket=bucket, Key=f"campaigns/{campaign_id}/recipients.csv", Body=text.getvalue().encode(encoding)
    )
    s3.put_object(
        Bucket=bucket, Key=f"campaigns/{campaign_id}/manifest.json", Body=json.dumps(manifest).encode()
    )


def settle(stack, campaign_id: str, *, max_minutes: int = 240) -> dict:
    """Advance the clock until every job has its outcome (nothing to send, nothing waiting)."""
    deployment = stack.deployment()
    for _ in range(max_minutes * 60 // STEP):
        stack.runner.advance(STEP, timeout=600)
        stack.network.wait_idle(120)
        counters = bootstrap.campaign_admin(deployment).stats(campaign_id)["counters"]
        if counters["total"] and counters["to_send"] == 0 and counters["waiting"] == 0:
            stack.runner.advance(5 * 60, timeout=600)  # one more poll: late receipts
            return bootstrap.campaign_admin(deployment).stats(campaign_id)["counters"]
    raise AssertionError(f"campaign {campaign_id} did not settle: {counters}")


def received_by(network, address: str) -> int:
    return sum(
        1
        for d in network.deliveries
        if d.mailbox == address and d.kind == "posta-certificata" and d.error is None
    )


MANIFEST = {
    "mailbox": "ufficio@pec.alfa.test",
    "subject": "Sollecito di pagamento – {{ ragione_sociale }}",
    "body_text": "Gentile {{ ragione_sociale }},\nle ricordiamo l'importo di {{ importo|importo }} "
    "scaduto il {{ scadenza|data }}.\n",
    "attachments": ["condizioni-generali.pdf"],
    "attachment_column": "allegato",
    "receipt_type": "breve",
}


@pytest.mark.timeout(1200)  # the suite's longest test (tests/conftest.py starts it first)
def test_a_500_row_campaign_ends_with_statistics_matching_the_script(stack, dovecot):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"), quota=ARUBA)
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    stack.add_company_mailbox(alfa, "ufficio@pec.alfa.test")
    rows, script = [], Counter()
    for i in range(500):
        address = f"cliente{i:03d}@pec.beta.test"
        if i % 10 == 3:
            net.script(address, FAIL)  # errore-consegna
            script["delivery_failures"] += 1
        elif i % 25 == 7:
            net.script(address, REJECT)  # non-accettazione
            script["not_accepted"] += 1
        elif i % 50 == 11:
            net.script(address, SMTP_REJECT)  # 550 at RCPT: refused over SMTP
            script["smtp_rejected"] += 1
        else:
            beta.add_mailbox(address)
            script["delivered"] += 1
        rows.append(
            {
                "PEC": address,
                "Ragione Sociale": f"Società {i} S.r.l. – àèìòù",
                "Importo": f"{1000 + i},50",
                "Scadenza": "31/01/2026",
                "Allegato": f"fattura-{i:03d}.pdf",
            }
        )
    files = {
        "condizioni-generali.pdf": b"%PDF-1.4 condizioni generali di contratto\n%%EOF\n",
        **{f"fattura-{i:03d}.pdf": f"%PDF-1.4 fattura {i}\n%%EOF\n".encode() for i in range(500)},
    }
    upload(stack, "solleciti-500", manifest=MANIFEST, rows=rows, files=files)
    stack.runner.run_until_idle(900)  # real seconds: a bound for a stuck stack, not a speed target
    counters = settle(stack, "solleciti-500")

    errors = script["not_accepted"] + script["smtp_rejected"]
    assert counters == {
        "total": 500,
        "to_send": 0,
        "waiting": 0,
        "only_sent": 0,
        "warnings": 0,
        "cancelled": 0,
        "sent": 500 - script["smtp_rejected"],
        "accepted": script["delivered"],
        "delivered": script["delivered"],
        "delivery_failures": script["delivery_failures"],
        "errors": errors,
    }
    failures = [i for i in stack.runner.invocations if not i.ok and "Deferred" not in (i.error or "")]
    assert failures == [], failures[0].error if failures else None

    # what the simulator recorded: one busta per delivered recipient, nothing else, never over quota
    for row in rows:
        expected = 1 if beta.has_mailbox(row["PEC"]) else 0
        assert received_by(net, row["PEC"]) == expected, row["PEC"]
    submissions = [s for s in net.submissions if s.account == "ufficio@pec.alfa.test"]
    assert len(submissions) == 500 - script["smtp_rejected"], "each message submitted once"
    assert [r for r in net.refusals if r.reply.startswith("451")] == [], "the provider's quota was never hit"
    aruba = quota.policy_from("aruba")
    assert quota.violations(aruba, [s.time.timestamp() for s in submissions]) == []

    # per recipient: state, timestamps, receipts, error text; the export is formula-safe
    jobs = {j.recipient: j for j in bootstrap.campaign_admin(stack.deployment()).jobs("solleciti-500")}
    failed = jobs["cliente003@pec.beta.test"]
    assert failed.state == "delivery-failed" and "5.1.1" in failed.error
    delivered = jobs["cliente000@pec.beta.test"]
    assert delivered.state == "delivered" and (
        delivered.reached_at[State.DELIVERED] >= delivered.reached_at[State.SENT]
    )
    assert sorted(r["kind"] for r in delivered.receipts.values()) == ["accettazione", "avvenuta-consegna"]
    assert jobs["cliente011@pec.beta.test"].state == "error"


def test_no_recipient_gets_two_messages_whatever_happens_to_the_senders(stack, dovecot):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"))
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    stack.add_company_mailbox(alfa, "ufficio@pec.alfa.test")
    addresses = [beta.add_mailbox(f"cliente{i:02d}@pec.beta.test").address for i in range(24)]
    for lost in addresses[20:22]:
        net.script(lost, DROP_AFTER_DATA, times=1)  # the SMTP answer after DATA never arrives
    manifest = {**MANIFEST, "attachment_column": None, "body_text": "Gentile {{ ragione_sociale }}.\n"}
    manifest.pop("attachment_column")
    upload(
        stack,
        "robusta",
        manifest=manifest,
        rows=[{"pec": a, "ragione_sociale": f"Ditta {i}"} for i, a in enumerate(addresses)],
        files={"condizioni-generali.pdf": b"%PDF-1.4 x\n%%EOF\n"},
    )

    handler = stack.runner.module("SenderFunction")
    crashes = {
        addresses[2]: "after_slot",
        addresses[5]: "after_claim",
        addresses[8]: "after_archive",
        addresses[11]: "after_submit",
    }
    hit = set()
    current = threading.local()  # the job each concurrent invocation is sending

    def crash(step, **where):
        recipient = getattr(current, "recipient", None)
        if crashes.get(recipient) == step and recipient not in hit:
            hit.add(recipient)
            raise RuntimeError(f"sender killed {step}")

    class Tracking:
        """The handler's sender, noting which recipient each invocation is on."""

        def send(self, message_id):
            job = real.outgoing.job(message_id)
            current.recipient = job.recipient if job else None
            return real.send(message_id)

    # the handler's sender, built again through the composition root with the crash points
    real = bootstrap.sender(handler.config, checkpoint=crash)
    handler.delivery = bootstrap.job_delivery(handler.config, sender=Tracking())

    stack.runner.run_until_idle(120)
    # duplicates of every job on the queue (as at-least-once delivery may produce)
    sqs = stack.aws.client("sqs")
    outgoing = OutgoingStore(stack.deployment().outgoing_table, stack.aws.resource("dynamodb"))
    for job in outgoing.campaign_jobs("robusta"):
        sqs.send_message(
            QueueUrl=stack.aws.url("SendQueue"),
            MessageBody=json.dumps({"message_id": job.message_id}),
            MessageGroupId="dup-" + str(job.row),
            MessageDeduplicationId="dup-" + str(job.row),
        )
    counters = settle(stack, "robusta")

    assert hit == set(crashes), "every crash point was hit"
    for address in addresses:
        assert received_by(net, address) == 1, address
    assert counters["delivered"] == 24 and counters["total"] == 24
    jobs = {j.recipient: j for j in bootstrap.campaign_admin(stack.deployment()).jobs("robusta")}
    for lost in addresses[20:22]:
        assert State.UNCERTAIN in jobs[lost].reached_at, "recorded as sent? and resolved by its receipts"
    # killed after the SMTP answer, before recording it: its receipts resolved it (never resent)
    assert State.SENT not in jobs[addresses[11]].reached_at and jobs[addresses[11]].state == "delivered"


@pytest.mark.parametrize(
    "case,rows,files,code",
    [
        (
            "duplicates",
            [
                {"pec": "a@pec.beta.test", "ragione_sociale": "A"},
                {"pec": "A@pec.beta.test", "ragione_sociale": "B"},
            ],
            {},
            "address-duplicate",
        ),
        (
            "missing-attachment",
            [{"pec": "a@pec.beta.test", "ragione_sociale": "A", "allegato": "manca.pdf"}],
            {},
            "attachment-not-found",
        ),
        ("bad-address", [{"pec": "mario.rossi@", "ragione_sociale": "A"}], {}, "address-invalid"),
    ],
)
def test_an_invalid_campaign_queues_nothing_and_says_why(stack, case, rows, files, code):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"))
    stack.add_company_mailbox(alfa, "ufficio@pec.alfa.test")
    manifest = {**MANIFEST, "body_text": "Gentile {{ ragione_sociale }}.\n", "attachments": []}
    if "allegato" not in rows[0]:
        manifest.pop("attachment_column")
    upload(stack, f"errata-{case}", manifest=manifest, rows=rows, files=files)
    stack.runner.run_until_idle(60)
    stats = bootstrap.campaign_admin(stack.deployment()).stats(f"errata-{case}")
    assert stats["status"] == CampaignStatus.INVALID and stats["counters"]["total"] == 0
    s3 = stack.aws.client("s3")
    bucket = stack.aws.physical("CampaignBucket")
    report = json.loads(
        s3.get_object(Bucket=bucket, Key=f"campaigns/errata-{case}/validation.json")["Body"].read()
    )
    assert code in json.dumps(report)
    bad_rows = s3.get_object(Bucket=bucket, Key=f"campaigns/errata-{case}/validation-errors.csv")[
        "Body"
    ].read()
    assert code.encode() in bad_rows
    assert stack.runner.invocations_of("SenderFunction") == []
    assert [s for s in net.submissions] == []


def test_pause_resume_cancel_and_resend(stack):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"))
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    stack.add_company_mailbox(alfa, "ufficio@pec.alfa.test")
    addresses = [beta.add_mailbox(f"c{i}@pec.beta.test").address for i in range(6)]
    net.script(addresses[0], FAIL, times=1)
    manifest = {
        **MANIFEST,
        "body_text": "Gentile {{ ragione_sociale }}.\n",
        "attachments": [],
        "start_at": "2026-03-02T08:30:00+00:00",
    }  # 30 minutes after the stack's clock starts
    manifest.pop("attachment_column")
    upload(
        stack,
        "gestita",
        manifest=manifest,
        rows=[{"pec": a, "ragione_sociale": f"D{i}"} for i, a in enumerate(addresses)],
        files={},
    )
    stack.runner.run_until_idle(60)
    deployment = stack.deployment()
    assert bootstrap.campaign_admin(deployment).set_status("gestita", "pause") == CampaignStatus.PAUSED
    stack.runner.advance(40 * 60, timeout=120)
    assert net.submissions == [], "nothing leaves while paused (and before the scheduled start)"
    bootstrap.campaign_admin(deployment).set_status("gestita", "resume")
    counters = settle(stack, "gestita")
    assert counters["delivered"] == 5 and counters["delivery_failures"] == 1
    assert bootstrap.campaign_admin(deployment).resend_failed("gestita") == 1
    assert bootstrap.campaign_admin(deployment).resend_failed("gestita") == 0, "a second resend adds nothing"
    counters = settle(stack, "gestita")
    assert counters["delivered"] == 6 and counters["total"] == 7 and counters["delivery_failures"] == 1
    assert received_by(net, addresses[0]) == 1

    with pytest.raises(ValueError):
        bootstrap.campaign_admin(deployment).set_status("gestita", "resume")
    assert bootstrap.campaign_admin(deployment).set_status("gestita", "cancel") == CampaignStatus.CANCELLED

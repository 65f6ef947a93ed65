"""Campaigns through the API's service on moto: a mailbox's campaigns newest first by the index
ByMailbox (pages), the manifest written where the fan-out starts, the outcome exported to S3."""

from __future__ import annotations

import csv
import io
import json

import pytest

from pecflow.adapters.campaign_files import CampaignUploads
from pecflow.adapters.dynamodb import CampaignStore, OutgoingStore
from pecflow.adapters.dynamodb.audit import AuditStore
from pecflow.adapters.queues import SqsQueue
from pecflow.domain.access import Person, Role
from pecflow.domain.reconcile import CampaignStatus
from pecflow.services.admin import CampaignAdmin
from pecflow.services.audit import AuditLog
from pecflow.services.campaign_desk import CampaignDesk

BOX = "ufficio@pec.alfa.test"
marco = Person("marco", "marco@alfa.test", roles={BOX: Role.MANAGER})


def test_campaigns_listed_submitted_and_exported(aws):
    ddb = aws.resource("dynamodb")
    campaigns = CampaignStore(aws.physical("CampaignsTable"), ddb)
    outgoing = OutgoingStore(
        aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")
    )
    audit = AuditLog(AuditStore(aws.physical("AuditTable"), ddb))
    admin = CampaignAdmin(campaigns, outgoing, SqsQueue(aws.url("SendQueue"), aws.client("sqs")), audit)
    bucket = aws.physical("CampaignBucket")
    desk = CampaignDesk(admin, CampaignUploads(aws.client("s3"), bucket), audit)
    for i in range(53):
        campaigns.create(f"c{i:02d}", {"status": CampaignStatus.SENDING, "mailbox": BOX})
    campaigns.create("altrui", {"status": CampaignStatus.SENDING, "mailbox": "altro@pec.alfa.test"})
    outgoing.add_jobs([{"message_id": "<m@pec.alfa.test>", "recipient": "=cmd@pec.beta.test", "mailbox": BOX,
                        "campaign_id": "c07", "row": 2, "attempt": 1}])  # fmt: skip

    first, cursor = desk.campaigns(marco, BOX)
    second, end = desk.campaigns(marco, BOX, cursor)
    listed = [c["campaign_id"] for c in first + second]
    assert len(first) == 50 and end is None and sorted(listed) == [f"c{i:02d}" for i in range(53)]
    assert "altrui" not in listed

    desk.submit(marco, BOX, "nuova", {"mailbox": BOX, "subject": "Avviso", "body_text": "Gentile cliente",
                                      "purpose": "avvisi di scadenza"})  # fmt: skip
    written = aws.client("s3").get_object(Bucket=bucket, Key="campaigns/nuova/manifest.json")["Body"].read()
    assert json.loads(written)["purpose"] == "avvisi di scadenza"
    link = desk.upload_links(marco, BOX, "altra", ["recipients.csv"])["recipients.csv"]
    assert f"{bucket}" in link and "campaigns/altra/recipients.csv" in link and "Signature" in link

    url = desk.export(marco, BOX, "c07")
    assert "campaigns/c07/export/esito-c07-" in url
    (key,) = [
        o["Key"]
        for o in aws.client("s3").list_objects_v2(Bucket=bucket, Prefix="campaigns/c07/export/")["Contents"]
    ]
    text = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[1][1] == "'=cmd@pec.beta.test"  # formula-safe
    changes = [e.details["change"] for e in audit.store.events(BOX)]
    assert changes == ["submitted", "exported"] and audit.verify(BOX).ok


def test_the_recipients_read_page_by_page_from_index_by_campaign(aws):
    from pecflow.domain.inbox import CursorError
    from pecflow.domain.reconcile import CLAIM, SMTP_ACCEPTED, SMTP_FAILED, move_for_receipt
    from pecflow.pec import kinds

    ddb = aws.resource("dynamodb")
    campaigns = CampaignStore(aws.physical("CampaignsTable"), ddb)
    outgoing = OutgoingStore(
        aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")
    )
    admin = CampaignAdmin(campaigns, outgoing, SqsQueue(aws.url("SendQueue"), aws.client("sqs")))
    desk = CampaignDesk(admin, CampaignUploads(aws.client("s3"), aws.physical("CampaignBucket")),
                        cursor_secret=b"k" * 32)  # fmt: skip
    campaigns.create("solleciti", {"status": CampaignStatus.SENDING, "mailbox": BOX})

    def job(row, attempt=1):
        return {"message_id": f"<s.{row}.{attempt}@pec.alfa.test>", "recipient": f"c{row}@pec.beta.test",
                "mailbox": BOX, "campaign_id": "solleciti", "row": row, "attempt": attempt}  # fmt: skip

    for start in range(1, 131, 25):
        campaigns.add_jobs(
            "solleciti", outgoing.add_jobs([job(row) for row in range(start, min(start + 25, 131))])
        )
    campaigns.add_jobs("solleciti", outgoing.add_jobs([job(7, 2)]))  # row 7 resent

    def step(row, move, attempt=1, **kw):
        record = outgoing.job(f"<s.{row}.{attempt}@pec.alfa.test>")
        assert outgoing.try_move(record.message_id, record.as_job(), move, **kw)

    for attempt in (1, 2):
        step(7, CLAIM, attempt)
        step(7, SMTP_ACCEPTED, attempt)
    failure = {
        "kind": "errore-consegna",
        "at": "2026-11-20T09:00:09+01:00",
        "error_detail": "5.1.1 casella piena",
    }
    step(7, move_for_receipt(kinds.ERRORE_CONSEGNA), receipt_id="e" * 64, receipt=failure)
    step(7, move_for_receipt(kinds.AVVENUTA_CONSEGNA), 2, receipt_id="d" * 64,
         receipt={"kind": "avvenuta-consegna", "at": "2026-11-21T10:00:00+01:00"})  # fmt: skip
    step(90, SMTP_FAILED, also_set={"error": "550 5.1.1 utente sconosciuto"})

    pages, cursor = [], None
    while True:
        page = desk.recipients(marco, BOX, "solleciti", cursor)
        pages.append(page)
        cursor = page["cursor"]
        if cursor is None:
            break
    rows = [r for page in pages for r in page["recipients"]]
    assert [r["row"] for r in rows] == list(range(1, 131)) and [len(p["recipients"]) for p in pages] == [
        50,
        50,
        30,
    ]
    assert [p["read"] for p in pages] == [52, 51, 30]  # 131 jobs: each read once, and one more a page
    seventh = rows[6]
    assert (seventh["attempt"], seventh["state"], seventh["receipts"][0]["sha256"]) == (
        2,
        "delivered",
        "d" * 64,
    )
    assert seventh["earlier"][0]["error"] == "5.1.1 casella piena"

    failed = desk.recipients(marco, BOX, "solleciti", outcome="failed")
    assert [(r["row"], r["error"]) for r in failed["recipients"]] == [(90, "550 5.1.1 utente sconosciuto")]
    assert failed["cursor"] is None and failed["read"] == 131
    with pytest.raises(CursorError):
        desk.recipients(marco, BOX, "solleciti", pages[0]["cursor"], outcome="failed")

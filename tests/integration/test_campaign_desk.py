"""Campaigns through the API's service on moto: a mailbox's campaigns newest first by the index
ByMailbox (pages), the manifest written where the fan-out starts, the outcome exported to S3."""

from __future__ import annotations

import csv
import io
import json

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

"""`pecflow inbox reindex` on moto: the messages recorded before the inbox existed get their rows
(receipts under their campaign), once; a row already there keeps its presa in carico; every
message, row new or not, gets the postings of its words."""

from __future__ import annotations

import pytest

from pecflow import cli
from pecflow.adapters.dynamodb import MessageStore, OutgoingStore
from pecflow.adapters.dynamodb.inbox import InboxStore
from pecflow.domain.inbox import Filters, handling_of, plan

BOX = "ufficio@pec.alfa.test"


@pytest.fixture
def env(aws, monkeypatch):
    for name, logical in (
        ("MAILBOXES_TABLE", "MailboxesTable"),
        ("MESSAGES_TABLE", "MessagesTable"),
        ("OUTGOING_TABLE", "OutgoingTable"),
        ("CAMPAIGNS_TABLE", "CampaignsTable"),
        ("INBOX_TABLE", "InboxTable"),
        ("AUDIT_TABLE", "AuditTable"),
    ):
        monkeypatch.setenv(name, aws.physical(logical))
    monkeypatch.setenv("STACK_NAME", "pecflow-test")
    return aws


def test_reindex_adds_each_missing_row_once(env, capsys):
    ddb = env.resource("dynamodb")
    messages = MessageStore(env.physical("MessagesTable"), ddb)
    outgoing = OutgoingStore(
        env.physical("OutgoingTable"), ddb, campaigns_table=env.physical("CampaignsTable")
    )
    rows = InboxStore(env.physical("InboxTable"), ddb, audit_table=env.physical("AuditTable"))
    outgoing.add_jobs([{"message_id": "<m1@pec.alfa.test>", "recipient": "c@pec.beta.test", "mailbox": BOX,
                        "campaign_id": "solleciti", "row": 2, "attempt": 1}])  # fmt: skip
    for i in range(7):
        record = {
            "sha256": f"{i:064x}",
            "kind": "avvenuta-consegna" if i == 0 else "posta-certificata",
            "subject": f"Pratica {i}",
            "received_at": f"2026-01-0{i + 1}T09:00:00.000000Z",
            "received_key": f"2026-01-0{i + 1}T09:00:00.000000Z#{i:016x}",
        }
        if i == 0:
            record["outgoing_message_id"] = "<m1@pec.alfa.test>"
        messages.record(BOX, record)
    rows.add(BOX, {"sha256": f"{6:064x}", "kind": "posta-certificata", "subject": "Pratica 6",
                   "received_key": f"2026-01-07T09:00:00.000000Z#{6:016x}"})  # fmt: skip
    table = ddb.Table(env.physical("InboxTable"))
    table.update_item(
        Key={"pk": f"{BOX}#m#{6:064x}", "sk": "row"},
        UpdateExpression="SET handling = :h, holder = :who",
        ExpressionAttributeValues={":h": "in-carico", ":who": "anna"},
    )

    assert cli.main(["inbox", "reindex", BOX]) == 0
    assert f"{BOX}: 7 message(s), 6 added to the inbox, 1 were there already" in capsys.readouterr().out
    receipt = rows.row(BOX, f"{0:064x}")
    assert receipt["list_pk"] == f"{BOX}#receipts" and receipt["campaign_pk"] == f"{BOX}#solleciti"
    assert rows.row(BOX, f"{3:064x}")["list_pk"] == f"{BOX}#messages#da-gestire"
    assert handling_of(rows.row(BOX, f"{6:064x}")).holder == "anna"  # left as it was

    def found(text, **filters):
        return [r["sha256"] for r in rows.page(plan(BOX, Filters(text=text, **filters)), limit=50).rows]

    assert found("pratica") == [f"{i:064x}" for i in range(6, 0, -1)]  # the row there before too
    assert found("pratica", receipts=True) == [f"{0:064x}"]

    assert cli.main(["inbox", "reindex", BOX]) == 0
    assert "7 message(s), 0 added" in capsys.readouterr().out
    assert found("pratica") == [f"{i:064x}" for i in range(6, 0, -1)]  # once each

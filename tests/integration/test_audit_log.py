"""The audit log on its DynamoDB table (moto, template.yaml's AuditTable) and on its fake: the
chain numbered without gaps under concurrent acts, each kind of tampering in the table caught by
`pecflow audit verify` at the right event, the export."""

from __future__ import annotations

import csv
import io
import json
import threading

import pytest

from pecflow import cli
from pecflow.adapters.dynamodb.audit import AuditStore
from pecflow.domain.audit import AuditAction
from pecflow.services.audit import AuditLog
from tests import fakes

MAILBOX = "ufficio@pec.alfa.test"


@pytest.fixture(params=["fake", "dynamodb"])
def store(request):
    if request.param == "fake":
        return fakes.FakeAuditStore()
    aws = request.getfixturevalue("aws")
    return AuditStore(aws.physical("AuditTable"), aws.resource("dynamodb"))


def acts(log: AuditLog, n: int, mailbox: str = MAILBOX) -> None:
    for i in range(n):
        log.record(
            mailbox,
            actor=["anna", "bruno"][i % 2],
            action=[AuditAction.VIEW, AuditAction.TAKE_IN_CHARGE, AuditAction.REPLY][i % 3],
            message=f"sha256:{i % 4:064x}",
            source_ip="192.0.2.10",
            client="Mozilla/5.0 (X11; Linux x86_64)",
            details={"note": f"atto {i}"} if i % 2 else None,
        )


def test_acts_are_chained_in_order_and_verify(store):
    log = AuditLog(store, now=fakes.Ticking())
    acts(log, 7)
    events = list(store.events(MAILBOX))
    assert [e.seq for e in events] == list(range(1, 8))
    assert events[1].details == {"note": "atto 1"} and events[0].details == {}
    assert log.verify(MAILBOX).ok and log.verify(MAILBOX).checked == 7
    trail = log.trail(MAILBOX, f"sha256:{1:064x}")
    assert [e.seq for e in trail] == [2, 6]
    assert log.verify("altra@pec.alfa.test").ok  # an empty log


def test_concurrent_acts_each_get_their_own_number(store):
    log = AuditLog(store, now=fakes.Ticking())
    threads = [threading.Thread(target=acts, args=(log, 5)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.seq for e in store.events(MAILBOX)] == list(range(1, 21))
    assert log.verify(MAILBOX).ok


# --- tampering in the table, caught by `pecflow audit verify` -----------------------------------
@pytest.fixture
def env(aws, monkeypatch):
    for name, logical in (("MAILBOXES_TABLE", "MailboxesTable"), ("AUDIT_TABLE", "AuditTable")):
        monkeypatch.setenv(name, aws.physical(logical))
    monkeypatch.setenv("STACK_NAME", "pecflow-test")
    table = aws.resource("dynamodb").Table(aws.physical("AuditTable"))
    acts(AuditLog(AuditStore(table.name, aws.resource("dynamodb")), now=fakes.Ticking()), 6)
    return table


def verify(capsys) -> tuple[int, str]:
    code = cli.main(["audit", "verify", MAILBOX])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_whole_log_verifies(env, capsys):
    assert verify(capsys) == (0, f"{MAILBOX}: the audit log is whole (6 event(s) checked)\n")


def test_an_altered_event_is_named(env, capsys):
    env.update_item(
        Key={"mailbox": MAILBOX, "seq": 4},
        UpdateExpression="SET actor = :a",
        ExpressionAttributeValues={":a": "qualcun-altro"},
    )
    code, text = verify(capsys)
    assert code == 1 and "BROKEN at event 4: event 4 was changed after it was written" in text
    assert "the 3 event(s) before it are whole" in text


def test_a_deleted_event_is_named(env, capsys):
    env.delete_item(Key={"mailbox": MAILBOX, "seq": 3})
    code, text = verify(capsys)
    assert code == 1 and "BROKEN at event 3: event 3 removed" in text


def test_reordered_events_are_caught(env, capsys):
    two = env.get_item(Key={"mailbox": MAILBOX, "seq": 2})["Item"]
    five = env.get_item(Key={"mailbox": MAILBOX, "seq": 5})["Item"]
    env.put_item(Item={**five, "seq": 2})
    env.put_item(Item={**two, "seq": 5})
    code, text = verify(capsys)
    assert code == 1 and "BROKEN at event 2" in text


def test_the_last_event_removed_is_caught_by_the_head(env, capsys):
    env.delete_item(Key={"mailbox": MAILBOX, "seq": 6})
    code, text = verify(capsys)
    assert code == 1 and "the log ends at event 5 but 6 were written" in text


def test_export_csv_and_json(env, capsys, tmp_path):
    out = tmp_path / "audit.csv"
    assert (
        cli.main(["audit", "export", MAILBOX, "--from", "2026-11-26", "--to", "2026-11-26", "-o", str(out)])
        == 0
    )
    assert "6 audit event(s) written" in capsys.readouterr().err
    rows = list(csv.DictReader(io.StringIO(out.read_text("utf-8-sig")), delimiter=";"))
    assert [r["seq"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[1]["actor"] == "bruno" and json.loads(rows[1]["details"]) == {"note": "atto 1"}
    assert cli.main(["audit", "export", MAILBOX, "--from", "2026-11-27", "-o", str(out)]) == 0
    assert out.read_text("utf-8-sig").count("\n") == 1  # the header only
    assert cli.main(["audit", "export", MAILBOX, "--format", "json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert cli.main(["audit", "export", MAILBOX, "--to", "ieri"]) == 2
    assert "'ieri' is not a date" in capsys.readouterr().err

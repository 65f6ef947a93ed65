"""REM messages in the records the poller writes (the `rem` map) and in the inbox listing
(`pecflow inbox list`): certified REM mail, REM receipts and REM anomalies shown as such, with
the event and the reason an office worker reads."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from local.pecbuild.corpus import rem_corpus
from pecflow import cli
from pecflow.domain.records import MessageRecord
from pecflow.pec import kinds, message
from pecflow.services.admin import inbox_kind, rem_note
from pecflow.services.receive import _Texts, build_record, rem_map, summary_record
from tests.unit.test_receive_service import BOX, World, world  # noqa: F401 - the fixture

SAMPLES = {c.name: c.raw for c in rem_corpus()}
DISPATCH = SAMPLES["rem_dispatch_SubmissionAcceptance.eml"]
FROM_NON_ERDS = SAMPLES["rem_dispatch_ReceivedFromNonERDS.eml"]
CONSIGNMENT = next(raw for name, raw in SAMPLES.items() if name.startswith("rem_receipt_ContentConsignment."))


def record_of(raw: bytes) -> dict:
    sha = hashlib.sha256(raw).hexdigest()
    return build_record(BOX, "INBOX", 1, 1, None, raw, sha, f"messages/{sha}.eml", message.parse(raw))


def test_a_rem_dispatch_is_recorded_with_its_rem_map():
    record = record_of(DISPATCH)
    assert record["kind"] == kinds.POSTA_CERTIFICATA
    rem = record["rem"]
    assert {k: rem[k] for k in ("message_type", "event", "reason")} == {
        "message_type": "dispatch",
        "event": "SubmissionAcceptance",
        "reason": "MessageAccepted",
    }
    assert rem["reason_text"] == "messaggio accettato / message accepted (MessageAccepted)"
    assert rem["ua_message_id"] == "<rem-prova-0001@rem.simulato.test>"
    assert rem["evidence_id"] and rem["policies"] and all(p.startswith("http") for p in rem["policies"])
    assert None not in rem.values(), "absent values are left out, as the stores keep no None"


def test_ordinary_mail_at_a_rem_mailbox_is_an_anomaly_that_says_why():
    record = record_of(FROM_NON_ERDS)
    assert record["kind"] == kinds.ANOMALIA
    assert record["rem"]["event"] == "ReceivedFromNonERDS"
    assert record["rem"]["reason_text"].startswith("messaggio ricevuto da un sistema di posta ordinaria")


def test_pec_messages_have_no_rem_map():
    from local.pecbuild import builder

    raw = builder.messaggio_originale(
        mittente="a@pec.x.test", destinatari=[BOX], oggetto="x", testo="x", message_id="<p@x>"
    )
    assert "rem" not in record_of(raw)


def test_the_rem_map_is_cut_like_every_field():
    info = message.parse(DISPATCH).rem
    assert info is not None
    long = replace(info, evidence_id="e" * 5000, policies=tuple(f"http://p/{i}" for i in range(40)))
    cut: list[str] = []
    rem = rem_map(_Texts(cut), long)
    assert len(rem["evidence_id"]) == 1000 and len(rem["policies"]) == 10 and cut == ["rem", "rem"]


def test_a_quarantined_rem_message_keeps_its_event_in_the_summary():
    sha = hashlib.sha256(FROM_NON_ERDS).hexdigest()
    summary = summary_record(
        BOX, "INBOX", 1, 1, None, FROM_NON_ERDS, sha, "k", message.parse(FROM_NON_ERDS), "boom"
    )
    assert summary["rem"] == {"event": "ReceivedFromNonERDS"} and summary["kind"] == kinds.ANOMALIA


def test_polled_rem_messages_are_recorded_with_the_map(world: World):  # noqa: F811
    world.fill([DISPATCH, FROM_NON_ERDS, CONSIGNMENT])
    result = world.poll()
    assert result.recorded == 3
    events = {r.kind: (r.rem or {}).get("event") for r in world.messages.query(BOX)}
    assert events == {
        kinds.POSTA_CERTIFICATA: "SubmissionAcceptance",
        kinds.ANOMALIA: "ReceivedFromNonERDS",
        kinds.AVVENUTA_CONSEGNA: "ContentConsignment",
    }


def item(record: dict) -> MessageRecord:
    return MessageRecord.from_item({**record, "mailbox": BOX, "message": "sha256:" + record["sha256"]})


def test_the_inbox_shows_rem_messages_as_such():
    dispatch, anomaly, receipt = (item(record_of(r)) for r in (DISPATCH, FROM_NON_ERDS, CONSIGNMENT))
    assert inbox_kind(dispatch) == "posta-certificata REM" and inbox_kind(anomaly) == "anomalia REM"
    assert rem_note(dispatch) == (
        "posta certificata REM / certified REM mail — SubmissionAcceptance: "
        "messaggio accettato / message accepted (MessageAccepted)"
    )
    assert rem_note(anomaly) == (
        "anomalia REM / REM anomaly — ReceivedFromNonERDS: messaggio ricevuto da un sistema di posta "
        "ordinaria (non REM) / message received from an ordinary (non-REM) e-mail system "
        "(MessageReceivedFromNonERDS)"
    )
    assert rem_note(receipt).startswith(
        "ricevuta REM / REM receipt — ContentConsignment: messaggio consegnato"
    )
    pec = replace(dispatch, rem=None)
    assert inbox_kind(pec) == "posta-certificata" and rem_note(pec) is None


def test_inbox_list_prints_the_rem_note_under_the_message(monkeypatch, capsys):
    records = [item(record_of(r)) for r in (DISPATCH, FROM_NON_ERDS)]

    class Store:
        def query(self, mailbox, index, limit):
            return records

    monkeypatch.setattr("pecflow.bootstrap.message_store", lambda deployment: Store())
    monkeypatch.setattr(cli, "_deployment", lambda args: None)
    assert cli.main(["inbox", "list", BOX]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "posta-certificata REM" in lines[0] and lines[1].strip().startswith("posta certificata REM /")
    assert "anomalia REM" in lines[2] and "ReceivedFromNonERDS: messaggio ricevuto" in lines[3]
    assert lines[4] == "2 message(s)"

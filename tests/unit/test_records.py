"""The stored shapes (pecflow/domain/records.py), which the DynamoDB adapters and the in-memory fakes
both use: the items of a new job, a job's row read back (JobRecord), a campaign item
(CampaignRecord) and a received message's record (MessageRecord)."""

from __future__ import annotations

import pytest

from pecflow.domain.reconcile import CampaignStatus, Job, State
from pecflow.domain.records import (
    KEPT_EMPTY,
    MESSAGE_ROW,
    RECEIPT_ENTRY,
    SENDING_ONLY,
    CampaignRecord,
    JobRecord,
    MessageRecord,
    NewJob,
    job_items,
    job_key,
    left_behind,
    receipt_entry,
    receipts_written,
    registered_items,
    state_stamp,
)

JOB = {
    "message_id": "<pecflow.c1.2.1@pec.test>",
    "recipient": "Dest@PEC.Beta.test",
    "mailbox": "ufficio@pec.test",
    "campaign_id": "c1",
    "row": 2,
    "attempt": 1,
    "values": {"nome": "Ditta", "vuoto": ""},
}


def test_job_key_orders_rows_then_attempts():
    assert job_key(2, 1) == "000000002#001"
    keys = [job_key(row, attempt) for row, attempt in [(10, 1), (2, 3), (2, 10), (999_999_999, 1)]]
    assert sorted(keys) == [keys[1], keys[2], keys[0], keys[3]]


def test_state_stamps():
    assert state_stamp(State.PENDING) == "at_pending"
    assert state_stamp(State.UNCERTAIN) == "at_sent_uncertain"
    assert state_stamp(State.DELIVERY_FAILED) == "at_delivery_failed"


def test_a_new_job_from_the_services_dict():
    job = NewJob.from_dict(JOB)
    assert job == NewJob(
        "<pecflow.c1.2.1@pec.test>", "Dest@PEC.Beta.test", "ufficio@pec.test", "c1", 2, 1, JOB["values"]
    )
    assert job.values is not JOB["values"], "a copy of the merge fields"
    assert job.key == "000000002#001"
    assert NewJob.from_dict({**JOB, "values": None}).values is None
    assert NewJob.from_dict({k: v for k, v in JOB.items() if k != "values"}).values is None
    with pytest.raises(KeyError, match="campaign_id"):
        NewJob.from_dict({k: v for k, v in JOB.items() if k != "campaign_id"})


def test_job_items_are_its_head_and_its_pending_row():
    now = "2026-03-02T09:00:00Z"
    head, row = job_items(NewJob.from_dict(JOB), now)
    assert head == {
        "message_id": JOB["message_id"],
        "recipient": MESSAGE_ROW,
        "mailbox": "ufficio@pec.test",
        "campaign_id": "c1",
        "created_at": now,
        "recipients": ["Dest@PEC.Beta.test"],
    }
    assert row == {
        "message_id": JOB["message_id"],
        "recipient": "dest@pec.beta.test",
        "state": "pending",
        "certified": True,
        "campaign_id": "c1",
        "job_key": "000000002#001",
        "row": 2,
        "attempt": 1,
        "values": {"nome": "Ditta", "vuoto": ""},
        "updated_at": now,
        "mailbox": "ufficio@pec.test",
        "at_pending": now,  # when it was created: the head's created_at, not repeated on the row
        "receipts": {},
    }
    assert set(KEPT_EMPTY) <= set(row)
    row["values"]["nome"] = "changed"
    assert JOB["values"]["nome"] == "Ditta", "the items share nothing with the job"


def test_a_registered_message_is_its_head_and_a_row_per_recipient_in_its_state():
    now = "2026-03-02T09:00:00Z"
    head, rows = registered_items(
        "<r@x>", "Ufficio@PEC.test", ["A@X.test", "b@x.test"], "Re: fattura", State.PENDING, None,
        {"direct": {"kind": "reply"}}, now=now,
    )  # fmt: skip
    assert head == {
        "message_id": "<r@x>", "recipient": MESSAGE_ROW, "mailbox": "ufficio@pec.test", "subject": "Re: fattura",
        "campaign_id": None, "created_at": now, "recipients": ["a@x.test", "b@x.test"], "direct": {"kind": "reply"},
    }  # fmt: skip
    assert [r["recipient"] for r in rows] == ["a@x.test", "b@x.test"]
    assert rows[0] == {
        "message_id": "<r@x>", "recipient": "a@x.test", "state": "pending", "certified": True,
        "campaign_id": None, "updated_at": now, "at_pending": now, "receipts": {},
    }  # fmt: skip


def test_a_move_past_sending_leaves_behind_what_only_sending_needed():
    assert left_behind(State.PENDING) == left_behind(State.SENDING) == ()
    for state in set(State) - {State.PENDING, State.SENDING}:
        assert left_behind(state) == SENDING_ONLY, state
    assert SENDING_ONLY == ("claimed_at", "submitting_claim", "slot_at", "last_failure")
    assert left_behind(State.ERROR, kept={"slot_at", "x"}) == (
        "claimed_at",
        "submitting_claim",
        "last_failure",
    )


def test_a_receipt_as_the_job_keeps_it():
    consegna = {
        "kind": "avvenuta-consegna", "at": "2026-03-02T09:00:00+01:00", "delivered_to": "dest@pec.beta.test",
        "error": None, "error_detail": None, "receipt_type": "completa",
    }  # fmt: skip
    assert receipt_entry(consegna, "dest@pec.beta.test", "t9") == {
        "kind": "avvenuta-consegna",
        "at": "2026-03-02T09:00:00+01:00",
    }, "its recipient, type and recording time are the receipt's record's"
    assert receipt_entry(consegna, "other@pec.beta.test", "t9")["delivered_to"] == "dest@pec.beta.test"
    assert (
        receipt_entry({**consegna, "delivered_to": "Dest@PEC.beta.test"}, "dest@pec.beta.test", "t9")[
            "delivered_to"
        ]
        == "Dest@PEC.beta.test"
    ), "written otherwise: kept as written"
    undated = receipt_entry({"kind": "accettazione", "at": None}, "dest@pec.beta.test", "t9")
    assert undated == {"kind": "accettazione", "recorded_at": "t9"}, (
        "no time of its own: when it was recorded"
    )
    failed = {"kind": "errore-consegna", "at": "t1", "error": "no-dest", "error_detail": "5.1.1 unknown",
              "rem_event": "DeliveryNonDelivery", "rem_reason": "R1", "receipt_type": "breve"}  # fmt: skip
    assert receipt_entry(failed, "x@y.test", "t9") == {k: failed[k] for k in RECEIPT_ENTRY}


# --- a job as the outgoing store reads it back -------------------------------------------------------
STORED = {
    "message_id": "<pecflow.c1.2.1@pec.test>",
    "recipient": "dest@pec.beta.test",
    "state": "sent?",
    "certified": False,
    "campaign_id": "c1",
    "job_key": "000000002#001",
    "row": 2,
    "attempt": 1,
    "values": {"nome": "Ditta"},
    "created_at": "t0",
    "updated_at": "t3",
    "mailbox": "ufficio@pec.test",
    "at_pending": "t0",
    "at_sending": "t1",
    "at_sent_uncertain": "t3",
    "receipts": {"ab" * 32: {"kind": "accettazione", "recorded_at": "t4"}},
    "last_reason": "SMTP answer lost after DATA",
    "smtp_answer": "no answer after DATA",
    "claimed_at": "t1",
    "slot_at": 0,
    "submitting_claim": "t1",
    "sent_s3_key": "messages/ab/ab.eml",
    "size": 1234,
    "last_failure": "t2 OSError: reset",
    "redriven_at": "t5",
    "head": {"message_id": "<pecflow.c1.2.1@pec.test>", "recipient": MESSAGE_ROW},
    "a_future_attribute": [1, 2],
}


def test_a_write_keeps_the_receipts_it_carries_before_its_own():
    """In the order they came (an accettazione its consegna takes along came first): views sort
    receipts by time, and two of the same second stay in that order."""
    written = receipts_written("c1", {"kind": "avvenuta-consegna"}, {"a1": {"kind": "accettazione"}})
    assert list(written) == ["a1", "c1"] and written["c1"] == {"kind": "avvenuta-consegna"}
    assert receipts_written(None, None, {"a1": {}}) == {"a1": {}} and receipts_written("c1", None, None) == {
        "c1": {}
    }
    assert receipts_written(None, None, None) == {}


def test_a_job_record_types_every_attribute_and_keeps_the_unknown_ones():
    job = JobRecord.from_item(STORED)
    assert job.state is State.UNCERTAIN and job.certified is False
    assert (job.row, job.attempt, job.size, job.slot_at) == (2, 1, 1234, 0)
    assert job.reached_at == {State.PENDING: "t0", State.SENDING: "t1", State.UNCERTAIN: "t3"}
    assert job.claimed_at == job.submitting_claim == "t1" and job.error is None and job.dead_letter is None
    assert job.head == STORED["head"] and list(job.receipts) == ["ab" * 32]
    assert job.extra == {"a_future_attribute": [1, 2]}, "an attribute it does not know is kept"
    assert job.as_dict() == STORED, "and given back as stored"
    assert job.as_job() == Job("dest@pec.beta.test", State.UNCERTAIN, False, "c1")


def test_a_job_record_of_a_minimal_row():
    job = JobRecord.from_item({"message_id": "<m@x>", "recipient": "a@x.test", "state": "pending"})
    assert job.certified is True and job.campaign_id is None and job.row is None and job.receipts == {}
    assert job.as_job() == Job("a@x.test", State.PENDING, True, None)
    with pytest.raises(ValueError):
        JobRecord.from_item({"message_id": "<m@x>", "recipient": "a@x.test", "state": "lost"})
    with pytest.raises(KeyError, match="state"):
        JobRecord.from_item({"message_id": "<m@x>", "recipient": "a@x.test"})


def test_the_row_of_a_new_job_reads_back_as_that_job():
    _, row = job_items(NewJob.from_dict(JOB), "t0")
    job = JobRecord.from_item(row)
    assert job.extra == {} and job.as_dict() == row
    again = NewJob.from_dict(job.as_dict())
    assert (again.row, again.attempt, again.values) == (2, 1, JOB["values"])
    assert NewJob.from_dict(NewJob.from_dict(JOB).as_dict()) == NewJob.from_dict(JOB)


def test_a_groups_job_weighs_the_rows_it_covers():
    group = NewJob.from_dict({**JOB, "rows": [2, 5, 9]})
    _, row = job_items(group, "t0")
    job = JobRecord.from_item(row)
    assert group.rows_covered == job.rows_covered == 3 and job.as_job().rows == 3
    assert JobRecord.from_item(job_items(NewJob.from_dict(JOB), "t0")[1]).as_job().rows == 1


# --- a campaign as the campaign store reads it back ------------------------------------------------------
CAMPAIGN = {
    "campaign_id": "solleciti",
    "status": "queuing",
    "mailbox": "ufficio@pec.test",
    "manifest": {"mailbox": "ufficio@pec.test", "subject": "Sollecito"},
    "dry_run": False,
    "start_at": "2026-03-02T09:00:00+00:00",
    "attempts": 1,
    "files": {"manifest.json": {"version_id": "v1"}, "recipients.csv": {"etag": '"e1"'}},
    "validation": {"valid": True, "valid_rows": 20, "error_count": 0},
    "problems": ["manifest.json uploaded again"],
    "counters": {"total": 20, "to_send": 20},
    "row_counters": {"total": 45, "to_send": 45},
    "counting_started": True,
    "dead_lettered": 0,
    "fanout_next_row": 12,
    "fanout_queued": 10,
    "fanout_queued_rows": 23,
    "created_at": "t0",
    "updated_at": "t1",
    "a_future_attribute": {"x": 1},
}


def test_a_campaign_record_types_every_attribute_and_keeps_the_unknown_ones():
    campaign = CampaignRecord.from_item(CAMPAIGN)
    assert campaign.status is CampaignStatus.QUEUING and campaign.dry_run is False
    assert campaign.files["recipients.csv"] == {"etag": '"e1"'} and campaign.counters["total"] == 20
    assert (campaign.fanout_next_row, campaign.fanout_queued, campaign.dead_lettered) == (12, 10, 0)
    assert campaign.row_counters == {"total": 45, "to_send": 45} and campaign.fanout_queued_rows == 23
    assert campaign.fanout_error is None and campaign.invalid_reason is None
    assert campaign.extra == {"a_future_attribute": {"x": 1}}, "an attribute it does not know is kept"
    assert campaign.as_dict() == CAMPAIGN, "and given back as stored"


def test_a_campaign_record_of_a_bare_item():
    """An update on a missing campaign creates an item with a figure alone (DynamoDB's upsert)."""
    campaign = CampaignRecord.from_item({"campaign_id": "c", "dead_lettered": 1})
    assert campaign.status is None and campaign.files == {} and campaign.counters == {}
    assert campaign.problems == () and campaign.dead_lettered == 1
    assert campaign.row_counters is None, "a campaign created before they were kept has none"
    assert campaign.as_dict() == {"campaign_id": "c", "dead_lettered": 1}
    with pytest.raises(ValueError):
        CampaignRecord.from_item({"campaign_id": "c", "status": "lost"})
    with pytest.raises(KeyError, match="campaign_id"):
        CampaignRecord.from_item({"status": "sending"})


# --- a received message's record as the message store reads it back ---------------------------------------
MESSAGE = {
    "mailbox": "ufficio@pec.test",
    "message": "sha256:" + "ab" * 32,
    "sha256": "ab" * 32,
    "size": 2048,
    "s3_key": "messages/ab/" + "ab" * 32 + ".eml",
    "folder": "INBOX",
    "uid": 7,
    "uidvalidity": 5,
    "received_at": "2026-03-02T09:00:00Z",
    "received_key": "2026-03-02T09:00:00Z#abababababababab",
    "recorded_at": "2026-03-02T09:00:01Z",
    "kind": "avvenuta-consegna",
    "subject": "CONSEGNA: Sollecito",
    "message_id": "<r1@pec.beta.test>",
    "from": "posta-certificata@pec.beta.test",
    "to": ["ufficio@pec.test"],
    "ref_message_id": "<m1@pec.test>",
    "identificativo": "opec.1",
    "recipients": [{"address": "c@pec.beta.test", "type": "certificato"}],
    "attachments": [{"filename": "daticert.xml", "content_type": "application/xml", "size": 900}],
    "problems": ["no signature"],
    "on_provider": "yes",
    "reconciled": "matched",
    "outgoing_message_id": "<m1@pec.test>",
    "thread_of": None,
    "a_future_attribute": 1,
}


def test_a_message_record_types_every_attribute_and_keeps_the_unknown_ones():
    stored = {k: v for k, v in MESSAGE.items() if v is not None}
    record = MessageRecord.from_item(MESSAGE)
    assert record.from_address == "posta-certificata@pec.beta.test", "the stored `from`"
    assert (record.uid, record.uidvalidity, record.size) == (7, 5, 2048)
    assert record.key == MESSAGE["message"] and record.reconciled == "matched"
    assert record.cc == () and record.sdi is None and record.quarantined is None
    assert record.extra == {"a_future_attribute": 1}, "an attribute it does not know is kept"
    assert record.as_dict() == stored, "and given back as stored"


def test_a_message_record_an_update_created():
    """`relocate` or `set_fields` on a message not recorded creates an item with its keys alone."""
    record = MessageRecord.from_item({"mailbox": "u@pec.test", "message": "sha256:cd", "uid": 7})
    assert record.sha256 == "cd" and record.kind is None and record.problems == ()
    assert record.as_dict() == {"mailbox": "u@pec.test", "message": "sha256:cd", "sha256": "cd", "uid": 7}
    assert MessageRecord.from_item({"mailbox": "u", "message": "k", "from_address": "x"}).extra == {
        "from_address": "x"
    }, "only the stored `from` is from_address"
    with pytest.raises(KeyError, match="message"):
        MessageRecord.from_item({"mailbox": "u@pec.test", "sha256": "cd"})


def test_receipts_of_the_same_second_come_in_the_pec_flows_order():
    """A job's receipts map promises no order (DynamoDB keeps none): where times tie, the
    accettazione comes before the presa in carico and the consegna, whatever the map's order."""
    from pecflow.domain.records import receipt_order

    at = "2026-11-27T09:00:00Z"
    receipts = {
        "c": {"kind": "avvenuta-consegna", "at": at},
        "p": {"kind": "presa-in-carico", "at": at},
        "a": {"kind": "accettazione", "at": at},
        "e": {"kind": "errore-consegna", "at": "2026-11-27T08:59:59Z"},
    }
    assert [r["kind"] for r in sorted(receipts.values(), key=receipt_order)] == [
        "errore-consegna",
        "accettazione",
        "presa-in-carico",
        "avvenuta-consegna",
    ]

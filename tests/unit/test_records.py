"""The stored shape of a new campaign job (pecflow/domain/records.py), which the DynamoDB adapter and
the in-memory fake both use."""

from __future__ import annotations

import pytest

from pecflow.domain.reconcile import State
from pecflow.domain.records import KEPT_EMPTY, MESSAGE_ROW, NewJob, job_items, job_key, state_stamp

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
        "created_at": now,
        "updated_at": now,
        "mailbox": "ufficio@pec.test",
        "at_pending": now,
        "receipts": {},
    }
    assert set(KEPT_EMPTY) <= set(row)
    row["values"]["nome"] = "changed"
    assert JOB["values"]["nome"] == "Ditta", "the items share nothing with the job"

"""domain.records.stored_record / whole_record: what a record leaves out is read back exactly,
including a value that differs from its derivation or is empty where the derivation has one."""

from __future__ import annotations

import json

import pytest

from pecflow.domain.records import DERIVED, RECORD_SHAPE, archived_key, stored_record, whole_record

SHA = "ab" * 32
DETAIL = "signed by the provider over these exact bytes; certificate trusted"
SIGNER = {"subject": "CN=Posta Certificata", "issuer": "CN=CA", "serial": "1f", "not_before": "2020-01-01"}


def consegna(**changes) -> dict:
    record = {
        "mailbox": "ufficio@pec.alfa.test",
        "message": f"sha256:{SHA}",
        "sha256": SHA,
        "s3_key": archived_key(SHA),
        "received_at": "2026-11-20T09:00:00.000000Z",
        "received_key": f"2026-11-20T09:00:00.000000Z#{SHA[:16]}",
        "kind": "avvenuta-consegna",
        "subject": "CONSEGNA: Diffida",
        "original_subject": "Diffida",
        "to": ["ufficio@pec.alfa.test"],
        "date": "2026-11-20T10:00:00+01:00",
        "timestamp": "2026-11-20T10:00:00+01:00",
        "ref_message_id": "<a@pec.alfa.test>",
        "outgoing_message_id": "<a@pec.alfa.test>",
        "recipients": [{"address": "c@pec.beta.test", "type": "certificato"}],
        "delivered_to": "c@pec.beta.test",
        "attachments": [{"filename": "a.pdf", "content_type": "application/pdf", "size": 3}],
        "on_provider": "yes",
        "signature": "valid",
        "signature_detail": DETAIL,
        "signed_at": "2026-11-20T10:00:00+01:00",
        "signed_at_from": "daticert",
        "signer": SIGNER,
        "rem": {"event": "Delivery", "signature": "valid", "signer": SIGNER, "signature_detail": DETAIL},
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not None}


def round_trip(record: dict) -> tuple[dict, dict]:
    stored, shared = stored_record(record)
    as_stored = json.loads(json.dumps(stored))  # what DynamoDB keeps: None is NULL
    return as_stored, whole_record(as_stored, dict(shared).__getitem__)


def test_what_can_be_told_from_the_rest_is_left_out_and_read_back():
    stored, whole = round_trip(consegna())
    assert whole == consegna()
    assert stored["shape"] == RECORD_SHAPE and "sha256" not in stored and "signer" not in stored
    assert not set(DERIVED) & set(stored)
    assert stored["attachments"] == [["a.pdf", "application/pdf", 3]]
    assert stored["rem"]["signer_ref"] == stored["signer_ref"]  # the same signer: one item


@pytest.mark.parametrize(
    "changes",
    [
        {"date": None},  # no Date header: stored as NULL, not derived from the timestamp
        {"date": "Thu, 20 Nov 2026"},
        {"original_subject": None},
        {"original_subject": "Altro"},
        {"delivered_to": None},
        {"delivered_to": "d@pec.beta.test"},
        {"outgoing_message_id": None},
        {"to": None},
        {"to": ["a@x.test", "b@x.test"]},
        {"s3_key": "other/prefix.eml"},
        {"signed_at_from": "signingTime", "signed_at": "2026-11-20T09:59:58+00:00"},
        {"signature": "expired", "signature_detail": "not valid on 2026-11-20"},
        {
            "attachments": [
                {"filename": "a.pdf", "content_type": "application/pdf", "size": 3, "format": "pdf"}
            ]
        },
        {"attachments": [{"filename": "a.pdf", "size": 3}]},
        {"recipients": [{"address": "c@pec.beta.test", "type": "certificato"}, {"address": "e@x.test"}]},
        {"signer": None, "rem": None},
        {"on_provider": None},
    ],
)
def test_a_value_other_than_its_derivation_is_kept(changes):
    assert round_trip(consegna(**changes))[1] == consegna(**changes)


def test_a_record_without_the_shape_is_read_as_stored():
    old = consegna()
    assert whole_record(old, {}.__getitem__) == old
    partial = {k: v for k, v in consegna().items() if k not in ("date", "s3_key")}
    assert whole_record(partial, {}.__getitem__) == partial  # absent stays absent

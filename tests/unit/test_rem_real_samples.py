"""AgID's REM example messages (../shared/fixtures/rem, 70 files) are classified as labels.json
says. The examples are third-party data: read in place, skipped when absent."""

from __future__ import annotations

import json

import pytest

from pecflow.pec import kinds, message
from pecflow.pec.daticert import normalise_msgid
from tests.conftest import FIXTURES, real_fixtures


def _labels():
    path = FIXTURES / "rem" / "labels.json"
    if not path.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason="real REM samples not available"))]
    return [pytest.param(label, id=label["file"]) for label in json.loads(path.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("label", _labels())
def test_classified_as_labelled(label):
    result = message.parse((real_fixtures("rem") / label["file"]).read_bytes())
    if "kind" in label:
        assert result.kind == label["kind"]
    if "rem_event" not in label:  # the users' own originals: ordinary mail, no REM record
        assert result.rem is None
        assert result.to_dict()["rem"] is None
        return
    rem = result.to_dict()["rem"]
    assert rem["event"] == label["rem_event"]
    assert rem["message_type"] == label["rem_message_type"]
    assert rem["reason"] == label["rem_reason"]
    assert rem["evidence_id"] and rem["policies"]
    if "ref_message_id" in label:
        assert result.ref_message_id == normalise_msgid(label["ref_message_id"])
        assert rem["ua_message_id"] == result.ref_message_id
    assert result.signature == "present"
    assert result.rem.evidence is not None and result.rem.evidence.signed
    assert result.rem.introduction and "REM" in result.rem.introduction


@pytest.mark.parametrize("label", _labels())
def test_structure(label):
    result = message.parse((real_fixtures("rem") / label["file"]).read_bytes())
    if result.rem is None:
        return
    evidence = result.rem.evidence
    assert evidence.event == label["rem_event"] and evidence.time is not None
    assert evidence.sender is not None and evidence.sender.address
    assert evidence.recipients and all(r.address for r in evidence.recipients)
    assert evidence.digest_value and evidence.digest_algorithm.endswith("sha256")
    assert result.provider == evidence.issuer and result.provider
    if result.kind == kinds.POSTA_CERTIFICATA or label["rem_event"] == "ReceivedFromNonERDS":
        # the dispatch carries the original, read recursively as postacert.eml is
        assert result.postacert is not None and result.postacert.kind == kinds.POSTA_ORDINARIA
        assert result.original_message_id == result.rem.ua_message_id
    if label["rem_event"] in ("ContentConsignment", "ContentConsignmentFailure"):
        assert result.delivered_to == evidence.recipients[evidence.refers_to_recipient - 1].address
    if label["rem_event"] == "RelayToNonERDS":
        assert [r.type for r in result.recipients if r.address == result.delivered_to] == ["esterno"]
    if result.kind == kinds.ERRORE_CONSEGNA:
        assert (
            result.error_detail
            and " / " in result.error_detail
            and label["rem_reason"] in result.error_detail
        )

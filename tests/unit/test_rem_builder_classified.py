"""Builder-made REM messages classified by pecflow: every event with every reason AgID's examples
use, both dispatches, and the REM robustness corpus (recognised as REM, a problem reported,
never ordinary mail)."""

from __future__ import annotations

import pytest

from local.pecbuild.corpus import Campione, _rem_originale, rem_corpus, rem_robustness
from pecflow.pec import kinds, message

_, UA_ID = _rem_originale()


@pytest.mark.parametrize("sample", rem_corpus(), ids=lambda c: c.name)
def test_builder_made_rem_messages_are_classified_right(sample: Campione):
    result = message.parse(sample.raw).to_dict()
    exp = sample.expected
    rem = result["rem"]
    assert isinstance(rem, dict), result["problems"]
    assert (result["kind"], rem["message_type"], rem["event"], rem["reason"]) == (
        exp["kind"],
        exp["rem_message_type"],
        exp["rem_event"],
        exp["rem_reason"],
    )
    assert rem["ua_message_id"] == UA_ID
    if exp["rem_message_type"] == "receipt":
        assert result["ref_message_id"] == exp["ref_message_id"] == UA_ID
    assert result["problems"] == []
    assert result["signature"] == "present"


@pytest.mark.parametrize("sample", rem_robustness(), ids=lambda c: c.name)
def test_rem_robustness_corpus_is_recognised_as_rem_with_a_problem(sample: Campione):
    result = message.parse(sample.raw).to_dict()
    exp = sample.expected
    assert result["kind"] != kinds.POSTA_ORDINARIA
    rem = result["rem"]
    assert isinstance(rem, dict), result["problems"]
    assert rem["message_type"] == exp["rem_message_type"]
    if exp["kind"] is not None:
        assert result["kind"] == exp["kind"]
    if exp["problem"] is not None:
        assert any(exp["problem"] in p.lower() for p in result["problems"]), result["problems"]

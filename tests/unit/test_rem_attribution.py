"""Which recipients a REM relay event concerns (pec.rem.attribution) and how reconciliation uses
it: EvidenceRefersToRecipient, the RelayEvidenceInfo extension AgID's relay evidences carry,
ForwardedToExternalSystem, and the reported fallback to every recipient listed."""

from __future__ import annotations

import pytest

from pecflow.domain.reconcile import State, reconcile_receipt
from pecflow.pec import message, rem
from tests.conftest import real_fixtures
from tests.unit.test_rem import UA, Outgoing, evidence_xml, rem_message

# a relay concerns the recipients at one provider; the evidence lists every recipient of the message
ALL = ("a@rem.uno.test", "b@rem.uno.test", "c@rem.due.test", "d@rem.due.test")


def with_relay_extension(xml: str, *indexes: str) -> str:
    refs = "".join(f"<ext:RelayEvidenceRefersTo>{i}</ext:RelayEvidenceRefersTo>" for i in indexes)
    extension = f'<tns:Extension isCritical="false"><ext:RelayEvidenceInfo>{refs}</ext:RelayEvidenceInfo></tns:Extension>'
    return xml.replace("</tns:Extensions>", extension + "</tns:Extensions>")


def relay(
    event: str, *indexes: str, recipients=ALL, reason: str | None = None, **options
) -> message.PecMessage:
    reason = reason or "R_ERDS_Unreachable"
    xml = evidence_xml(event, reason, recipients=recipients, **options)
    return message.parse(rem_message(event, reason=reason, evidence=with_relay_extension(xml, *indexes)))


def evidence_of(msg: message.PecMessage) -> rem.Evidence:
    assert msg.rem is not None and msg.rem.evidence is not None
    return msg.rem.evidence


def test_the_relay_extension_names_the_recipients_of_the_relay():
    msg = relay("RelayFailure", "3", "4")
    assert rem.attribution(evidence_of(msg)) == (ALL[2:], rem.RELAY_REFERS_TO)
    assert msg.covered == list(ALL[2:]) and msg.problems == []


def test_one_recipient_named_by_the_relay_extension_is_the_delivered_to():
    msg = relay("RelayRejection", "2")
    assert rem.concerned(evidence_of(msg)) == (ALL[1],) and msg.delivered_to == ALL[1]


def test_evidence_refers_to_recipient_wins_over_the_extension():
    msg = relay("RelayFailure", "3", "4", refers=1)
    assert rem.attribution(evidence_of(msg)) == ((ALL[0],), rem.REFERS_TO)


def test_an_index_naming_no_recipient_is_reported_and_left_out():
    msg = relay("RelayFailure", "9", "x", "4")
    assert rem.attribution(evidence_of(msg)) == ((ALL[3],), rem.RELAY_REFERS_TO)
    assert [p for p in msg.problems if "RelayEvidenceRefersTo" in p] == [
        "REM evidence: RelayEvidenceRefersTo '9' names no recipient",
        "REM evidence: RelayEvidenceRefersTo 'x' names no recipient",
    ]


def test_without_the_extension_a_relay_to_non_erds_goes_by_the_external_host():
    msg = relay("RelayToNonERDSFailure", forwarded="mx.rem.due.test", reason="ExternalSystemUnreachable")
    assert rem.attribution(evidence_of(msg)) == (ALL[2:], rem.FORWARDED_TO)


def test_nothing_to_go_by_is_every_recipient_listed_and_says_so():
    assert rem.attribution(evidence_of(relay("RelayFailure"))) == (ALL, rem.ALL_LISTED)
    alone = relay("RelayFailure", recipients=ALL[:1])
    assert rem.attribution(evidence_of(alone)) == (ALL[:1], rem.ONLY_LISTED)


def test_a_relay_failure_fails_only_the_recipients_of_that_relay():
    port = Outgoing(UA, ALL)
    reconcile_receipt(port, message.parse(rem_message("SubmissionAcceptance", recipients=ALL)), "r1")
    outcome = reconcile_receipt(port, relay("RelayFailure", "3", "4"), "r2")
    assert outcome.moves == {ALL[2]: ("accepted", "delivery-failed"), ALL[3]: ("accepted", "delivery-failed")}
    assert outcome.problems == []
    assert [port.jobs_by_address[a].state for a in ALL[:2]] == [State.ACCEPTED, State.ACCEPTED]
    assert port.counters["waiting"] == 2 and port.counters["delivery_failures"] == 2


def test_a_relay_rejection_for_one_recipient_fails_that_one():
    port = Outgoing(UA, ALL)
    outcome = reconcile_receipt(
        port, relay("RelayRejection", "2", reason="MessageNotAcceptedForUnregisteredRecipient"), "r1"
    )
    assert outcome.moves == {ALL[1]: ("sent", "delivery-failed")} and outcome.problems == []
    info = port.receipts[ALL[1]][-1]
    assert info["rem_event"] == "RelayRejection"
    assert info["error_detail"].startswith("rifiutato: destinatario non registrato presso il suo gestore")


def test_the_fallback_fails_every_open_recipient_listed_and_says_so_on_the_receipt():
    port = Outgoing(UA, ALL)
    reconcile_receipt(port, message.parse(rem_message("ContentConsignment", recipients=ALL, refers=1)), "r1")
    outcome = reconcile_receipt(port, relay("RelayFailure"), "r2")
    assert outcome.moves == {a: ("sent", "delivery-failed") for a in ALL[1:]}
    assert port.jobs_by_address[ALL[0]].state == State.DELIVERED, "a settled job is not touched"
    [problem] = outcome.problems
    assert problem.startswith("REM RelayFailure: the evidence does not say which recipients it concerns")
    assert all(a in problem for a in ALL)
    again = reconcile_receipt(port, relay("RelayFailure"), "r2")
    assert again.moves == {} and again.problems == outcome.problems, "a replay says the same"


def test_no_fallback_problem_when_the_evidence_lists_one_recipient():
    port = Outgoing(UA, ALL[:1])
    outcome = reconcile_receipt(port, relay("RelayFailure", recipients=ALL[:1]), "r1")
    assert outcome.moves == {ALL[0]: ("sent", "delivery-failed")} and outcome.problems == []


MIXED = "Mixed-flow__Between-REM-Service-providers__"


@pytest.mark.parametrize(
    "name,concerned",
    [
        (MIXED + "4rj.Rejected_and_issued_by_R2-REMS__REM_RelayRejection2.RB21.eml", "recE"),
        (MIXED + "5rj.Rejected_and_issued_by_R2-REMS__REM_RelayRejection4.RB21.eml", "recF"),
        (MIXED + "6fi.Issued_by_S1-REMS__REM_RelayFailure2.RB21.eml", "recE"),
        (MIXED + "7fi.issued_by_S1-REMS__REM_RelayFailure4.RB21.eml", "recF"),
    ],
    ids=["4rj", "5rj", "6fi", "7fi"],
)
def test_agid_relay_failures_concern_the_recipient_their_relay_served(name, concerned):
    """AgID's mixed flow: four recipients at R2, each relayed on its own; each rejection or
    failure lists all four and names its relay's in RelayEvidenceRefersTo."""
    msg = message.parse((real_fixtures("rem") / name).read_bytes())
    addresses = [f"{r}@r2-rems-only-for-test.it" for r in ("recc", "rece", "recd", "recf")]  # as stored
    assert msg.rem is not None and msg.rem.concerns == (f"{concerned}@r2-rems-only-for-test.it",)
    port = Outgoing(msg.ref_message_id, tuple(addresses))
    outcome = reconcile_receipt(port, msg, "r1")
    assert outcome.moves == {f"{concerned.lower()}@r2-rems-only-for-test.it": ("sent", "delivery-failed")}
    assert outcome.problems == []

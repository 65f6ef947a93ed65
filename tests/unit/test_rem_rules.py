"""The simulator's translation of PEC receipts into the REM receipts a REM provider sends."""

from __future__ import annotations

import pytest

from local.pec_rules import EventoRem, casella_piena, evento_rem, rifiuto_simulato, scadenza_24_ore
from local.pecbuild import rem_builder
from pecflow.pec import kinds


@pytest.mark.parametrize(
    ("tipo", "kw", "event", "reason"),
    [
        (kinds.ACCETTAZIONE, {}, "SubmissionAcceptance", "MessageAccepted"),
        (kinds.NON_ACCETTAZIONE, {"virus": True}, "SubmissionRejection", "MalwareFound"),
        (
            kinds.NON_ACCETTAZIONE,
            {"errore_esteso": "5.3.4 - G - dimensione del messaggio oltre il limite"},
            "SubmissionRejection",
            "S_ERDS_PolicyViolation",
        ),
        (
            kinds.NON_ACCETTAZIONE,
            {"errore_esteso": rifiuto_simulato(False).errore_esteso("G")},
            "SubmissionRejection",
            "InvalidMessageFormat",
        ),
        (kinds.PRESA_IN_CARICO, {}, "RelayAcceptance", "S_ERDS_MessageSuccessfullyRelayed"),
        (kinds.AVVENUTA_CONSEGNA, {}, "ContentConsignment", "MessageConsignedToRecipient"),
        (kinds.RILEVAZIONE_VIRUS, {}, "RelayRejection", "R_ERDS_MessageRejectedForMalware"),
        (kinds.ERRORE_CONSEGNA, {"virus": True}, "RelayFailure", "R_ERDS_MessageRejectedForMalware"),
        (
            kinds.ERRORE_CONSEGNA,
            {"errore": "no-dest"},
            "RelayFailure",
            "MessageNotAcceptedForUnregisteredRecipient",
        ),
        (kinds.ERRORE_CONSEGNA, {"errore": "no-dominio"}, "RelayFailure", "R_ERDS_NotIdentified"),
        (
            kinds.ERRORE_CONSEGNA,
            {"errore": "altro", "errore_esteso": casella_piena("G")},
            "ContentConsignmentFailure",
            "MessageNotConsignedForQuota",
        ),
        (
            kinds.ERRORE_CONSEGNA,
            {"errore": "altro", "errore_esteso": "4.3.0 - G - errore"},
            "ContentConsignmentFailure",
            "MessageNotConsignedForMalfunction",
        ),
        (
            kinds.PREAVVISO_ERRORE_CONSEGNA,
            {"errore_esteso": scadenza_24_ore("G")},
            "ContentConsignmentFailure",
            "S_ERDSP_ReceivedNoDeliveryInfoFromR_ERDSP",
        ),
    ],
)
def test_each_pec_receipt_has_its_rem_event_and_reason(tipo, kw, event, reason):
    assert evento_rem(tipo, **kw) == EventoRem(event, reason)
    assert reason in rem_builder.EVENTS[event].reasons  # a combination the builder accepts


def test_the_12_hour_notice_has_no_rem_counterpart_and_unknown_kinds_are_refused():
    assert evento_rem(kinds.PREAVVISO_ERRORE_CONSEGNA) is None
    with pytest.raises(ValueError, match="no REM counterpart"):
        evento_rem(kinds.POSTA_CERTIFICATA)

"""REM messages (ETSI EN 319 532-4, PEC_FORMAT §10), written here by hand as AgID's examples are
laid out: classification of every event, the evidence record, disagreements, robustness, and
how the receipts move the jobs."""

from __future__ import annotations

import base64
import dataclasses
import time
from datetime import UTC, datetime

import pytest

from pecflow.domain.reconcile import Job, State, counter_deltas, reconcile_receipt
from pecflow.pec import kinds, message, rem

UA = "<c1.campagna@pec.azienda.test>"
SENDER = "ufficio@pec.azienda.test"
RECIPIENTS = ("cliente@rem.cliente.test", "fornitore@rem.fornitore.test")
POLICIES = ("http://uri.etsi.org/19532/v1#/REMbaseline", "https://eidas.agid.gov.it/REM/rem-policy-it")

# PEC_FORMAT §10, "Mapping to pecflow's kinds": written out here, not read from the code under test
RECEIPT_EVENTS = {
    "SubmissionAcceptance": ("MessageAccepted", kinds.ACCETTAZIONE),
    "SubmissionRejection": ("MalwareFound", kinds.NON_ACCETTAZIONE),
    "RelayAcceptance": ("S_ERDS_MessageSuccessfullyRelayed", kinds.PRESA_IN_CARICO),
    "ContentConsignment": ("MessageConsignedToRecipient", kinds.AVVENUTA_CONSEGNA),
    "ContentConsignmentFailure": ("MessageNotConsignedForQuota", kinds.ERRORE_CONSEGNA),
    "RelayRejection": ("UnknownRecipient", kinds.ERRORE_CONSEGNA),
    "RelayFailure": ("S_ERDSP_ReceivedNoRelayAcceptanceInfoFromR_ERDSP", kinds.ERRORE_CONSEGNA),
    "RelayToNonERDSFailure": ("ExternalSystemUnreachable", kinds.ERRORE_CONSEGNA),
    "RelayToNonERDS": ("MessageRelayedToNonERDS", kinds.ACCETTAZIONE),
}
DISPATCH_EVENTS = {
    "SubmissionAcceptance": ("MessageAccepted", kinds.POSTA_CERTIFICATA),
    "ReceivedFromNonERDS": ("MessageReceivedFromNonERDS", kinds.ANOMALIA),
}


def evidence_xml(
    event: str,
    reason: str,
    *,
    recipients=RECIPIENTS,
    refers: int | None = None,
    forwarded: str | None = None,
    evidence_id: str = "ev1.rem@rem.provider.test",
    ua: str = UA,
    digest: str = "ZGlnZXN0",
) -> str:
    recips = "".join(
        f'<tns:RecipientDetails><Identifier IdentifierSchemeName="mailto">{r}</Identifier></tns:RecipientDetails>'
        for r in recipients
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<tns:Evidence xmlns:tns="http://uri.etsi.org/19522/v1#" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"
  xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:ext="http://uri.etsi.org/19532/v1#" version="EN319522v1.1.1">
<tns:EvidenceIdentifier>{evidence_id}</tns:EvidenceIdentifier>
<tns:ERDSEventId>http://uri.etsi.org/19522/Event/{event}</tns:ERDSEventId>
<tns:EventReasons><tns:EventReason><Code>http://uri.etsi.org/19522/EventReason/{reason}</Code>
<Details>RX01</Details><Details>as the test says</Details></tns:EventReason></tns:EventReasons>
<EventTime>2026-03-02T09:30:00Z</EventTime>
<tns:EvidenceIssuerPolicyID><PolicyID>{POLICIES[0]}</PolicyID></tns:EvidenceIssuerPolicyID>
<tns:EvidenceIssuerDetails><tns:Identity><saml:Attribute FriendlyName="LegalName" Name="http://eidas.europa.eu/attributes/legalperson/LegalName">
<saml:AttributeValue>Gestore REM di prova</saml:AttributeValue></saml:Attribute></tns:Identity></tns:EvidenceIssuerDetails>
<tns:SenderDetails><tns:Identity><saml:Attribute FriendlyName="PersonIdentifier" Name="http://eidas.europa.eu/attributes/naturalperson/PersonIdentifier">
<saml:AttributeValue>IT/IT/ABC123</saml:AttributeValue></saml:Attribute></tns:Identity>
<Identifier IdentifierSchemeName="mailto">{SENDER}</Identifier></tns:SenderDetails>
{recips}
<tns:SubmissionTime>2026-03-02T09:29:58Z</tns:SubmissionTime>
{f"<EvidenceRefersToRecipient>{refers}</EvidenceRefersToRecipient>" if refers else ""}
<tns:MessageIdentifier>msg1.rem@rem.provider.test</tns:MessageIdentifier>
<tns:UserContentInfo><AppLayerIdentifier>{ua.replace("<", "&lt;").replace(">", "&gt;")}</AppLayerIdentifier>
<tns:PartsInfo><tns:PartInfo><ContentType>message/rfc822</ContentType>
<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>{digest}</ds:DigestValue>
</tns:PartInfo></tns:PartsInfo></tns:UserContentInfo>
{f"<ForwardedToExternalSystem>{forwarded}</ForwardedToExternalSystem>" if forwarded else ""}
<tns:Extensions><tns:Extension isCritical="false"><ext:GeneralEvidenceInfo><ext:Subject>Fattura marzo</ext:Subject>
</ext:GeneralEvidenceInfo></tns:Extension></tns:Extensions>
<ds:Signature><ds:SignedInfo/></ds:Signature>
</tns:Evidence>"""


ORIGINAL = f"""From: <{SENDER}>
To: <{RECIPIENTS[0]}>
Subject: Fattura marzo
Message-ID: <msg1.rem@rem.provider.test>
Date: Mon, 02 Mar 2026 10:29:58 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="orig"

--orig
Content-Type: text/plain; charset=utf-8

Buongiorno, in allegato la fattura.
--orig
Content-Type: application/pdf; name="fattura.pdf"
Content-Disposition: attachment; filename="fattura.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--orig--
"""


def rem_message(
    event: str,
    *,
    message_type: str = "receipt",
    reason: str | None = None,
    headers: dict[str, str] | None = None,
    evidence: str | bytes | None = "",
    original: bool | None = None,
    signed: bool = True,
    version: str = "EN31953203V010201",
    **evidence_options,
) -> bytes:
    """A REM message as AgID's examples are laid out (headers, introduction, original, evidence)."""
    table = RECEIPT_EVENTS if message_type == "receipt" else DISPATCH_EVENTS
    reason = reason or table.get(event, ("MessageAccepted", None))[0]
    fields = {
        "From": "<rem-service@rem.provider.test>",
        "To": f"<{SENDER}>",
        "Subject": f"REM {event}: Fattura marzo",
        "Date": "Mon, 02 Mar 2026 10:30:00 +0100",
        "Message-ID": "<r1.rem@rem.provider.test>",
        "REM-MetadataVersion": version,
        "REM-MessageType": f"http://uri.etsi.org/19522/v1#/ERDMessageType/{message_type}",
        "REM-DigestAlgorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
        "REM-DigestValue": "ZGlnZXN0",
        "REM-UAMessageIdentifier": UA,
        "REM-EventIdentifier": f"http://uri.etsi.org/19522/Event/{event}",
        "REM-Evidence-ID": "<ev1.rem@rem.provider.test>",
        "REM-ReasonIdentifier": f"http://uri.etsi.org/19522/EventReason/{reason}",
        **(headers or {}),
    }
    head = "".join(f"{k}: {v}\n" for k, v in fields.items() if v is not None)
    head += "".join(f"REM-ApplicablePolicy: {p}\n" for p in POLICIES)
    if evidence == "":
        evidence = evidence_xml(event, reason, **evidence_options)
    inner = [
        "REM-Section-Type: rem_message/introduction\nContent-Type: multipart/alternative; boundary=alt\n\n"
        "--alt\nContent-Type: text/plain; charset=utf-8\n\n"
        f'Ricevuta di {event}\nIdentificativo messaggio: "msg1.rem@rem.provider.test"\n'
        f"Receipt of {event}\n--alt--\n"
    ]
    if original if original is not None else message_type == "dispatch":
        inner.append(
            'Content-Type: message/rfc822; name="AttachedMimeMessage"\n'
            "Content-Disposition: attachment; filename=AttachedMimeMessage\n"
            f"REM-Section-Type: rem_message/original\n\n{ORIGINAL}"
        )
    if evidence is not None:
        data = evidence if isinstance(evidence, bytes) else evidence.encode("utf-8")
        inner.append(
            f'Content-Type: application/xml; charset=UTF-8; name="{event}.xml"\n'
            "Content-Transfer-Encoding: base64\n"
            f'Content-Disposition: attachment; filename="{event}.xml"\n'
            "REM-Section-Type: rem_message/xml_evidence\n\n" + base64.encodebytes(data).decode("ascii")
        )
    mixed = (
        "Content-Type: multipart/mixed; boundary=mix\n\n"
        + "".join(f"--mix\n{p}\n" for p in inner)
        + "--mix--\n"
    )
    if not signed:
        return (head + "MIME-Version: 1.0\n" + mixed).encode("utf-8")
    body = (
        'MIME-Version: 1.0\nContent-Type: multipart/signed; protocol="application/pkcs7-signature"; '
        "micalg=sha-256; boundary=sig\n\n"
        f"--sig\n{mixed}\n--sig\n"
        'Content-Type: application/pkcs7-signature; name="smime.p7s"\nContent-Transfer-Encoding: base64\n\n'
        "MIAGCSqGSIb3DQEHAqCAMIACAQEx\n--sig--\n"
    )
    return (head + body).encode("utf-8")


# --- classification ----------------------------------------------------------------------------
@pytest.mark.parametrize(("event", "expected"), [(e, k) for e, (_, k) in RECEIPT_EVENTS.items()])
def test_every_receipt_event_maps_to_its_pec_kind(event, expected):
    refers = 1 if event.startswith("ContentConsignment") else None
    result = message.parse(rem_message(event, refers=refers))
    assert result.kind == expected, result.problems
    assert result.is_pec
    assert result.ref_message_id == UA and result.original_message_id is None
    out = result.to_dict()["rem"]
    assert out["event"] == event and out["message_type"] == "receipt"
    assert out["reason"] == RECEIPT_EVENTS[event][0]
    assert out["evidence_id"] == "<ev1.rem@rem.provider.test>"
    assert out["ua_message_id"] == UA and out["policies"] == list(POLICIES)
    assert result.problems == []


@pytest.mark.parametrize(("event", "expected"), [(e, k) for e, (_, k) in DISPATCH_EVENTS.items()])
def test_every_dispatch_event_maps_to_its_pec_kind(event, expected):
    result = message.parse(rem_message(event, message_type="dispatch"))
    assert result.kind == expected, result.problems
    assert result.original_message_id == UA and result.ref_message_id is None
    assert result.rem.message_type == "dispatch"
    # the original is read recursively, as postacert.eml is
    assert result.postacert is not None and result.postacert.subject == "Fattura marzo"
    assert [a.filename for a in result.attachments] == ["fattura.pdf"]
    assert result.body_text().startswith("Buongiorno")
    assert result.problems == []


def test_pec_messages_have_no_rem_record():
    plain = b"From: <a@b.test>\nTo: <c@d.test>\nSubject: x\nMessage-ID: <1@b.test>\n\nhello\n"
    result = message.parse(plain)
    assert result.rem is None and result.to_dict()["rem"] is None


def test_the_fields_come_from_the_evidence():
    result = message.parse(rem_message("ContentConsignment", refers=2))
    assert result.provider == "Gestore REM di prova"
    assert result.provider_domain == "rem.provider.test"
    assert result.identificativo == "msg1.rem@rem.provider.test"
    assert result.sender == SENDER
    assert [r.address for r in result.recipients] == list(RECIPIENTS)
    assert result.delivered_to == RECIPIENTS[1]
    assert result.original_subject == "Fattura marzo"
    assert result.timestamp == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert result.rem.code == "RX01"
    assert result.rem.introduction.startswith("Ricevuta di ContentConsignment")


def test_the_evidence_record_is_typed_and_frozen():
    ev = rem.parse_evidence(evidence_xml("SubmissionAcceptance", "MessageAccepted").encode())
    assert ev.event == "SubmissionAcceptance" and ev.reason == "MessageAccepted"
    assert ev.reasons[0].details == ("RX01", "as the test says")
    assert ev.evidence_id == "ev1.rem@rem.provider.test"
    assert ev.time == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert ev.submission_time == datetime(2026, 3, 2, 9, 29, 58, tzinfo=UTC)
    assert ev.sender == rem.Party(SENDER, (("PersonIdentifier", "IT/IT/ABC123"),))
    assert [p.address for p in ev.recipients] == list(RECIPIENTS)
    assert ev.ua_message_id == UA and ev.digest_value == "ZGlnZXN0"
    assert ev.digest_algorithm == "http://www.w3.org/2001/04/xmlenc#sha256"
    assert ev.policies == (POLICIES[0],) and ev.issuer == "Gestore REM di prova"
    assert ev.signed and ev.problems == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.event = "x"  # type: ignore[misc]


def test_relay_to_non_erds_marks_its_recipient_external():
    raw = rem_message("RelayToNonERDS", forwarded="mx.rem.fornitore.test")
    result = message.parse(raw)
    assert result.kind == kinds.ACCETTAZIONE
    assert result.delivered_to == RECIPIENTS[1]
    assert [(r.address, r.type) for r in result.recipients] == [
        (RECIPIENTS[0], None),
        (RECIPIENTS[1], "esterno"),
    ]


def test_failures_carry_their_reason_in_italian_and_english():
    result = message.parse(rem_message("ContentConsignmentFailure", refers=1))
    assert result.error == "altro"
    assert result.error_detail == (
        "non consegnato: casella del destinatario piena / not delivered: the recipient's mailbox is full "
        "(MessageNotConsignedForQuota)"
    )
    virus = message.parse(rem_message("SubmissionRejection", reason="MalwareFound"))
    assert virus.kind == kinds.NON_ACCETTAZIONE and virus.virus and virus.error == "virus"
    late = message.parse(
        rem_message("ContentConsignmentFailure", reason="S_ERDSP_ReceivedNoDeliveryInfoFromR_ERDSP")
    )
    assert "superamento dei tempi massimi" in late.error_detail and "maximum time" in late.error_detail
    unknown = message.parse(rem_message("RelayRejection", reason="UnknownRecipient"))
    assert unknown.error == "no-dest" and unknown.error_detail.startswith(
        "destinatario sconosciuto / unknown recipient"
    )
    novel = rem.reason_text("SomethingNew")
    assert novel == "motivo non descritto / reason not described (SomethingNew)"


# --- disagreements, unknown events, future versions ------------------------------------------------
def test_header_and_evidence_disagreeing_is_reported_and_the_evidence_wins():
    raw = rem_message(
        "ContentConsignment",
        headers={"REM-EventIdentifier": "http://uri.etsi.org/19522/Event/ContentConsignmentFailure"},
        refers=1,
        ua="<other@pec.azienda.test>",
    )
    result = message.parse(raw)
    assert result.kind == kinds.AVVENUTA_CONSEGNA
    assert result.ref_message_id == "<other@pec.azienda.test>"
    assert any("REM-EventIdentifier header" in p and "the evidence wins" in p for p in result.problems)
    assert any("REM-UAMessageIdentifier header" in p for p in result.problems)


def test_an_unknown_event_is_rem_with_a_clear_problem_never_ordinary_mail():
    result = message.parse(rem_message("SomeFutureEvent"))
    assert result.kind == kinds.ANOMALIA and result.rem.event == "SomeFutureEvent"
    assert any("unknown event 'SomeFutureEvent'" in p and "no job moved" in p for p in result.problems)


def test_a_future_version_is_read_and_reported():
    known = message.parse(rem_message("SubmissionAcceptance", version="EN31953203V010301"))
    assert known.kind == kinds.ACCETTAZIONE
    assert any("newer than the versions pecflow knows" in p for p in known.problems)
    novel = message.parse(rem_message("Teleportation", version="EN31953203V020101"))
    assert novel.kind == kinds.ANOMALIA and novel.rem is not None
    assert any("newer than pecflow knows" in p for p in novel.problems)


def test_missing_message_type_is_inferred_and_reported():
    result = message.parse(
        rem_message("ReceivedFromNonERDS", message_type="dispatch", headers={"REM-MessageType": None})
    )
    assert result.kind == kinds.ANOMALIA and result.rem.message_type == "dispatch"
    assert any("REM-MessageType missing" in p for p in result.problems)


# --- robustness -------------------------------------------------------------------------------------
def test_broken_evidence_xml_is_a_problem_and_the_headers_still_classify():
    result = message.parse(rem_message("ContentConsignment", evidence="<tns:Evidence><unclosed>"))
    assert result.kind == kinds.AVVENUTA_CONSEGNA and result.ref_message_id == UA
    assert result.rem.evidence is None
    assert any(p.startswith("REM evidence: not well-formed XML") for p in result.problems)
    assert any("the recipient it concerns is not known" in p for p in result.problems)


def test_evidence_with_entities_is_refused_by_the_safe_reader():
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Evidence>&a;</Evidence>'
    result = message.parse(rem_message("SubmissionAcceptance", evidence=bomb))
    assert result.kind == kinds.ACCETTAZIONE
    assert any("REM evidence" in p and "not allowed" in p for p in result.problems)


def test_missing_parts_are_problems():
    no_evidence = message.parse(rem_message("SubmissionAcceptance", evidence=None))
    assert no_evidence.kind == kinds.ACCETTAZIONE
    assert "REM evidence XML missing: fields taken from the headers" in no_evidence.problems
    assert no_evidence.identificativo == "msg1.rem@rem.provider.test"  # from the introduction
    no_original = message.parse(rem_message("SubmissionAcceptance", message_type="dispatch", original=False))
    assert no_original.kind == kinds.POSTA_CERTIFICATA
    assert "REM dispatch without the original message (AttachedMimeMessage)" in no_original.problems
    unsigned = message.parse(rem_message("SubmissionAcceptance", signed=False))
    assert "not signed: no multipart/signed structure" in unsigned.problems


def test_huge_evidence_is_not_read():
    padding = "<Details>" + "x" * 1000 + "</Details>"
    huge = evidence_xml("SubmissionAcceptance", "MessageAccepted").replace(
        "<Details>RX01</Details>", padding * 3000
    )
    start = time.perf_counter()
    result = message.parse(rem_message("SubmissionAcceptance", evidence=huge))
    assert time.perf_counter() - start < 2
    assert result.kind == kinds.ACCETTAZIONE and result.rem.evidence is None
    assert any("larger than the" in p and "not read" in p for p in result.problems)


def test_any_cut_of_a_rem_message_parses_without_raising():
    raw = rem_message("SubmissionAcceptance", message_type="dispatch")
    for end in range(0, len(raw), 97):
        result = message.parse(raw[:end])
        assert result.kind in kinds.ALL


def test_oversized_rem_headers_are_cut():
    result = message.parse(
        rem_message("SubmissionAcceptance", headers={"REM-ReasonIdentifier": "x" * 100_000})
    )
    assert result.kind == kinds.ACCETTAZIONE
    assert all(len(p) < 1000 for p in result.problems)


# --- reconciliation ------------------------------------------------------------------------------------
class Outgoing:
    """In-memory store of what we sent (the reconcile port), counting like the real one."""

    def __init__(self, message_id: str, recipients: tuple[str, ...]):
        self.message_id = message_id
        self.jobs_by_address = {r: Job(r, State.SENT) for r in recipients}
        self.identificativo: str | None = None
        self.receipts: dict[str, list[dict]] = {r: [] for r in recipients}
        self.counters: dict[str, int] = {}
        for job in self.jobs_by_address.values():
            self._count(counter_deltas(None, job.state))

    def _count(self, deltas):
        for name, delta in deltas.items():
            self.counters[name] = self.counters.get(name, 0) + delta

    def message(self, message_id):
        return {"message_id": message_id} if message_id == self.message_id else None

    def jobs(self, message_id):
        return list(self.jobs_by_address.values()) if message_id == self.message_id else []

    def message_and_jobs(self, message_id):
        return self.message(message_id), self.jobs(message_id)

    def by_identificativo(self, identificativo):
        return self.message_id if identificativo == self.identificativo else None

    def set_identificativo(self, message_id, identificativo):
        self.identificativo = identificativo

    def apply(self, message_id, recipient, move, *, receipt_id=None, receipt=None, certified=None):
        job = self.jobs_by_address[recipient.address]
        self.receipts[job.address].append(receipt)
        if move is None or not move.applies_to(job.state):
            return job.state
        new = Job(job.address, move.to, job.certified if certified is None else certified)
        self._count(
            counter_deltas(job.state, new.state, certified=new.certified, old_certified=job.certified)
        )
        self.jobs_by_address[job.address] = new
        return new.state


def test_rem_receipts_move_the_jobs_as_their_pec_counterparts():
    port = Outgoing(UA, RECIPIENTS)
    accettazione = message.parse(rem_message("SubmissionAcceptance"))
    assert reconcile_receipt(port, accettazione, "r1").moves == {r: ("sent", "accepted") for r in RECIPIENTS}
    assert port.identificativo == "msg1.rem@rem.provider.test"
    relay = message.parse(rem_message("RelayAcceptance"))
    assert reconcile_receipt(port, relay, "r2").moves == {}  # presa in carico: no state
    delivered = message.parse(rem_message("ContentConsignment", refers=1))
    assert reconcile_receipt(port, delivered, "r3").moves == {RECIPIENTS[0]: ("accepted", "delivered")}
    failed = message.parse(rem_message("ContentConsignmentFailure", refers=2))
    assert reconcile_receipt(port, failed, "r4").moves == {RECIPIENTS[1]: ("accepted", "delivery-failed")}
    info = port.receipts[RECIPIENTS[1]][-1]
    assert info["rem_reason"] == "MessageNotConsignedForQuota"
    assert info["error_detail"].startswith("non consegnato: casella del destinatario piena / not delivered")
    # duplicates and late receipts change nothing
    for raw_id, msg in (("r1", accettazione), ("r3", delivered), ("r4", failed)):
        assert reconcile_receipt(port, msg, raw_id).moves == {}
    assert port.counters["delivered"] == 1 and port.counters["delivery_failures"] == 1
    assert port.counters["waiting"] == 0


def test_relay_to_non_erds_ends_the_job_at_accepted_external():
    port = Outgoing(UA, RECIPIENTS)
    reconcile_receipt(port, message.parse(rem_message("SubmissionAcceptance")), "r1")
    assert port.counters["waiting"] == 2
    relay = message.parse(rem_message("RelayToNonERDS", forwarded="mx.rem.fornitore.test"))
    outcome = reconcile_receipt(port, relay, "r2")
    assert outcome.moves == {RECIPIENTS[1]: ("accepted", "accepted")}
    assert port.jobs_by_address[RECIPIENTS[1]] == Job(RECIPIENTS[1], State.ACCEPTED, certified=False)
    assert port.jobs_by_address[RECIPIENTS[0]] == Job(RECIPIENTS[0], State.ACCEPTED, certified=True)
    assert port.counters["waiting"] == 1 and port.counters["accepted"] == 2
    assert reconcile_receipt(port, relay, "r2").moves == {}  # a duplicate: nothing
    assert port.counters["waiting"] == 1


def test_relay_to_non_erds_before_the_acceptance_still_ends_external():
    port = Outgoing(UA, RECIPIENTS[:1])
    relay = message.parse(rem_message("RelayToNonERDS", recipients=RECIPIENTS[:1]))
    assert reconcile_receipt(port, relay, "r2").moves == {RECIPIENTS[0]: ("sent", "accepted")}
    late = message.parse(rem_message("SubmissionAcceptance", recipients=RECIPIENTS[:1]))
    assert reconcile_receipt(port, late, "r1").moves == {}
    assert port.jobs_by_address[RECIPIENTS[0]].certified is False
    assert port.counters.get("waiting", 0) == 0


def test_a_relay_failure_fails_every_recipient_it_lists_not_the_delivered_ones():
    port = Outgoing(UA, RECIPIENTS)
    reconcile_receipt(port, message.parse(rem_message("ContentConsignment", refers=1)), "r1")
    outcome = reconcile_receipt(port, message.parse(rem_message("RelayFailure")), "r2")
    assert outcome.moves == {RECIPIENTS[1]: ("sent", "delivery-failed")}
    assert port.jobs_by_address[RECIPIENTS[0]].state == State.DELIVERED


def test_a_rem_receipt_for_a_stranger_is_reported():
    port = Outgoing(UA, RECIPIENTS[:1])
    outcome = reconcile_receipt(port, message.parse(rem_message("ContentConsignment", refers=2)), "r1")
    assert outcome.moves == {} and "not a recipient of the original" in outcome.problems[0]

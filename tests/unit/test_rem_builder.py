"""The REM builder: every event's receipt and both dispatches, read back with the stdlib (headers,
REM sections, evidence XML), the S/MIME signature checked by openssl against the test CA."""

from __future__ import annotations

import base64
import email
import hashlib
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from email import policy
from email.message import Message

import pytest

from local.pecbuild import rem_builder
from local.pecbuild.builder import Firma
from local.pecbuild.corpus import Campione, _rem_originale, rem_corpus, rem_robustness
from pecflow.pec import message

NS = {
    "tns": "http://uri.etsi.org/19522/v1#",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "xades": "http://uri.etsi.org/01903/v1.3.2#",
}
CORPUS = rem_corpus()
ORIGINAL, UA_ID = _rem_originale()


def _msg(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=policy.compat32)


def _sections(msg: Message) -> dict[str, Message]:
    return {str(p["REM-Section-Type"]): p for p in msg.walk() if p["REM-Section-Type"]}


def _evidence(msg: Message) -> ET.Element:
    payload = _sections(msg)["rem_message/xml_evidence"].get_payload(decode=True)
    assert isinstance(payload, bytes)
    return ET.fromstring(payload)


def _last(uri: str | None) -> str:
    return str(uri).rsplit("/", 1)[-1]


def test_every_event_and_every_reason_of_the_examples_is_built():
    events = {(c.expected["rem_message_type"], c.expected["rem_event"]) for c in CORPUS}
    assert {e for mt, e in events if mt == "receipt"} == set(rem_builder.RECEIPT_KINDS)
    assert {e for mt, e in events if mt == "dispatch"} == {"SubmissionAcceptance", "ReceivedFromNonERDS"}
    # the reason codes AgID's example messages use (their file names: RA01 ... RF51)
    codes = {rem_builder.REASONS[c.expected["rem_reason"]].code for c in CORPUS}
    assert codes == {
        *("RA01", "RA02", "RA03", "RA05", "RA51"),
        *(f"RB{n:02d}" for n in range(1, 11)),
        *("RB21", "RB22", "RD01", "RD03", "RD04", "RD05", "RD06", "RD21"),
        *("RF01", "RF02", "RF03", "RF04", "RF51"),
    }


@pytest.mark.parametrize("sample", CORPUS, ids=lambda c: c.name)
def test_headers_are_those_of_agids_examples(sample: Campione):
    msg = _msg(sample.raw)
    exp = sample.expected
    assert msg.get_content_type() == "multipart/signed"
    assert msg.get_param("protocol") == "application/pkcs7-signature"
    assert msg["REM-MessageType"] == rem_builder.MESSAGE_TYPE_URI + exp["rem_message_type"]
    assert msg["REM-EventIdentifier"] == rem_builder.EVENT_URI + exp["rem_event"]
    assert msg["REM-ReasonIdentifier"] == rem_builder.REASON_URI + exp["rem_reason"]
    assert msg["REM-UAMessageIdentifier"] == UA_ID  # the reconciliation key: the client's Message-ID
    assert msg["REM-MetadataVersion"] == "EN31953203V010201"
    assert msg.get_all("REM-ApplicablePolicy") == list(rem_builder.POLICIES)
    assert msg["REM-DigestAlgorithm"] == "http://www.w3.org/2001/04/xmlenc#sha256"
    assert msg["REM-DigestValue"] == base64.b64encode(hashlib.sha256(ORIGINAL).digest()).decode()
    assert re.fullmatch(r"<([0-9A-F]{8}\.){4}rem-service@[a-z.]+>", msg["REM-Evidence-ID"])
    assert msg["REM-MD08"] == "Ufficio Protocollo <protocollo@rem.simulato.test>"
    assert "rem-service@" in msg["From"]
    if exp["rem_message_type"] == "receipt":
        assert msg["Subject"].startswith(f"REM {exp['rem_event']}: ")
        assert msg["To"] == "protocollo@rem.simulato.test"
        assert (msg["REM-RelayDate"] is None) == exp["rem_event"].startswith("Submission")
    else:
        prefix = "EXTERNAL: " if exp["rem_event"] == "ReceivedFromNonERDS" else "REM Dispatch: "
        assert msg["Subject"].startswith(prefix)
        assert msg["From"].startswith('"On behalf of: protocollo@rem.simulato.test"')
        assert msg["To"] == "mario.rossi@rem.altro.test, ufficio@pec.aruba.it"


@pytest.mark.parametrize("sample", CORPUS, ids=lambda c: c.name)
def test_parts_introduction_original_and_evidence(sample: Campione):
    msg = _msg(sample.raw)
    signed, p7s = msg.get_payload()
    assert signed.get_content_type() == "multipart/mixed"
    assert p7s.get_content_type() == "application/pkcs7-signature" and p7s.get_filename() == "smime.p7s"
    sections = _sections(msg)
    dispatch = sample.expected["rem_message_type"] == "dispatch"
    expected = {"rem_message/introduction", "rem_message/xml_evidence"}
    assert set(sections) == (expected | {"rem_message/original"} if dispatch else expected)
    assert [str(p["REM-Section-Type"]) for p in signed.get_payload()] == [
        "rem_message/introduction",
        *(["rem_message/original"] if dispatch else []),
        "rem_message/xml_evidence",
    ]
    intro = sections["rem_message/introduction"]
    assert intro.get_content_type() == "multipart/alternative"
    plain, html = intro.get_payload()
    text = plain.get_payload(decode=True).decode("utf-8")
    assert "il messaggio:" in text and "the message:" in text  # Italian and English
    code = rem_builder.REASONS[sample.expected["rem_reason"]].code
    assert f"(Codice {code}:" in text and f"(Code {code}:" in text
    assert html.get_content_type() == "text/html"
    evidence = sections["rem_message/xml_evidence"]
    assert evidence.get_filename() == f"{sample.expected['rem_event']}.xml"
    if dispatch:
        original = sections["rem_message/original"]
        assert original.get_content_type() == "message/rfc822"
        assert original.get_filename() == "AttachedMimeMessage"
        inner = original.get_payload()[0]
        assert inner["REM-UAMessageIdentifier"] == UA_ID
        assert inner["Message-ID"] == f"<{_msg(sample.raw)['Message-ID'][1:-1]}>"
        assert inner["Subject"] == _msg(ORIGINAL)["Subject"]
        to_non_erds = "evidence-required" if "to_non_ERDS" in sample.name else None
        assert msg["REM-RelayToNonERDS"] == inner["REM-RelayToNonERDS"] == to_non_erds


@pytest.mark.parametrize("sample", CORPUS, ids=lambda c: c.name)
def test_evidence_xml_parses_and_agrees_with_the_headers(sample: Campione):
    msg = _msg(sample.raw)
    root = _evidence(msg)
    assert root.tag == "{http://uri.etsi.org/19522/v1#}Evidence"
    assert root.findtext("tns:ERDSEventId", namespaces=NS) == msg["REM-EventIdentifier"]
    assert root.findtext("tns:EvidenceIdentifier", namespaces=NS) == msg["REM-Evidence-ID"][1:-1]
    reason = root.find("tns:EventReasons/tns:EventReason", NS)
    assert reason is not None
    assert reason.findtext("Code") == msg["REM-ReasonIdentifier"]
    assert [d.text for d in reason.findall("Details")][0] == rem_builder.REASONS[
        _last(msg["REM-ReasonIdentifier"])
    ].code
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", root.findtext("EventTime") or "")
    assert root.findtext("tns:SenderDetails/Identifier", namespaces=NS) == "protocollo@rem.simulato.test"
    sender_id = root.find("tns:SenderDetails/tns:Identity/saml:Attribute", NS)
    assert sender_id is not None and sender_id.get("FriendlyName") == "PersonIdentifier"
    recipients = [e.text for e in root.findall("tns:RecipientDetails/Identifier", NS)]
    assert recipients == ["mario.rossi@rem.altro.test", "ufficio@pec.aruba.it"]  # every recipient
    refers = root.findtext("EvidenceRefersToRecipient")
    per_recipient = msg["REM-RelayDate"] is not None and sample.expected["rem_message_type"] == "receipt"
    assert refers == ("1" if per_recipient else None)  # the one the event concerns: mario.rossi
    assert root.findtext("tns:UserContentInfo/AppLayerIdentifier", namespaces=NS) == UA_ID
    part = root.find("tns:UserContentInfo/tns:PartsInfo/tns:PartInfo", NS)
    assert part is not None and part.findtext("ds:DigestValue", namespaces=NS) == msg["REM-DigestValue"]
    issuer = root.find("tns:EvidenceIssuerDetails/tns:Identity/saml:Attribute/saml:AttributeValue", NS)
    assert issuer is not None and issuer.text and "REM" in issuer.text


def test_evidence_carries_a_xades_signature_a_validator_accepts():
    """The evidence is signed in place (enveloped XAdES-B, by signxml) with the provider's key: the
    check of pecflow.pec.xades finds it valid under the test CA, its SigningCertificateV2 names
    the signer's certificate, and a changed byte of the evidence breaks it."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from pecflow.pec import signature
    from pecflow.pec.signature import VALID, TrustAnchors

    msg = _msg(CORPUS[0].raw)
    xml = _sections(msg)["rem_message/xml_evidence"].get_payload(decode=True)
    firma = Firma.per(rem_builder.REM_SIMULATO)
    anchors = TrustAnchors([firma.autorita.certificato])
    check = signature.verify_evidence(xml, anchors)
    assert check.outcome == VALID, check.reason
    assert check.signer is not None and check.signer.serial == format(firma.certificato.serial_number, "x")
    assert check.signed_at_from == "signingTime"
    cert_der = firma.certificato.public_bytes(Encoding.DER)
    digest = base64.b64encode(hashlib.sha256(cert_der).digest()).decode()
    assert f"<ds:DigestValue>{digest}</ds:DigestValue>" in xml.decode()
    root = ET.fromstring(xml)
    assert (
        root.find("ds:Signature/ds:Object/xades:QualifyingProperties/xades:SignedProperties", NS) is not None
    )
    changed = xml.replace(b"<EventTime>", b"<EventTime> ", 1)
    assert changed != xml
    assert signature.verify_evidence(changed, anchors).outcome == "invalid"


def test_builder_is_deterministic_and_refuses_wrong_combinations():
    assert rem_corpus()[5].raw == CORPUS[5].raw
    kw = dict(gestore=rem_builder.REM_SIMULATO, message_id="X@rem.simulato.test", data=_msg_date())
    with pytest.raises(ValueError, match="unknown REM event"):
        rem_builder.rem_receipt("ContentHandover", ORIGINAL, **kw)
    with pytest.raises(ValueError, match="not a reason of"):
        rem_builder.rem_receipt("ContentConsignment", ORIGINAL, reason="MalwareFound", **kw)
    with pytest.raises(ValueError, match="dispatch is"):
        rem_builder.rem_dispatch(ORIGINAL, event="ContentConsignment", **kw)
    with pytest.raises(ValueError, match="unknown sections"):
        rem_builder.Deviations(omit=frozenset({"introduction", "body"}))
    with pytest.raises(ValueError, match="time zone"):
        rem_builder.rem_receipt(
            "SubmissionAcceptance", ORIGINAL, **{**kw, "data": _msg_date().replace(tzinfo=None)}
        )


def _msg_date():
    from datetime import UTC, datetime

    return datetime(2025, 11, 3, 10, 0, tzinfo=UTC)


# --- S/MIME: openssl against the test CA ---------------------------------------------------------


@pytest.fixture(scope="module")
def openssl():
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl binary not available")
    return path


def _signed(raw: bytes) -> tuple[bytes, bytes]:
    """(the exact signed bytes, the DER signature) of a multipart/signed message."""
    boundary = _msg(raw).get_boundary().encode()
    body = raw.split(b"\r\n\r\n", 1)[1]
    parts = body.split(b"--" + boundary)
    content = parts[1][2:-2]  # between the delimiter's CRLF and the CRLF before the next one
    p7s = _msg(raw).get_payload()[1].get_payload(decode=True)
    return content, p7s


def _verify(openssl, tmp_path, raw: bytes) -> subprocess.CompletedProcess:
    content, signature = _signed(raw)
    (tmp_path / "content.bin").write_bytes(content)
    (tmp_path / "smime.p7s").write_bytes(signature)
    ca = Firma.per(rem_builder.REM_SIMULATO).autorita.cert_pem
    (tmp_path / "ca.pem").write_bytes(ca)
    return subprocess.run(
        [openssl, "smime", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "smime.p7s"),
         "-content", str(tmp_path / "content.bin"), "-CAfile", str(tmp_path / "ca.pem"),
         "-purpose", "any", "-out", str(tmp_path / "out.bin")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("sample", CORPUS, ids=lambda c: c.name)
def test_smime_signature_verifies_against_the_test_ca(openssl, tmp_path, sample: Campione):
    result = _verify(openssl, tmp_path, sample.raw)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.bin").read_bytes() == _signed(sample.raw)[0]


def test_tampering_breaks_the_smime_signature(openssl, tmp_path):
    raw = CORPUS[0].raw
    tampered = raw.replace(b"REM service provider", b"REM service pr0vider", 1)
    assert tampered != raw
    assert _verify(openssl, tmp_path, tampered).returncode != 0


# --- the robustness corpus -----------------------------------------------------------------------

ROBUSTNESS = rem_robustness()


def test_robustness_cases_are_the_broken_shapes_they_claim():
    by_name = {c.name.removeprefix("rem_robustness_").removesuffix(".eml"): c for c in ROBUSTNESS}
    assert "rem_message/xml_evidence" not in _sections(_msg(by_name["no_evidence"].raw))
    assert "rem_message/introduction" not in _sections(_msg(by_name["no_introduction"].raw))
    assert "rem_message/original" not in _sections(_msg(by_name["dispatch_no_original"].raw))
    with pytest.raises(ET.ParseError):
        _evidence(_msg(by_name["broken_evidence_xml"].raw))
    assert len(by_name["huge_evidence"].raw) > 4 * 1024 * 1024
    assert _msg(by_name["future_metadata_version"].raw)["REM-MetadataVersion"] == "EN31953203V020101"
    assert _last(_msg(by_name["unknown_event"].raw)["REM-EventIdentifier"]) == "ContentHandover"
    disagree = _msg(by_name["header_evidence_event_disagree"].raw)
    assert _last(disagree["REM-EventIdentifier"]) == "ContentConsignment"
    assert (
        _last(_evidence(disagree).findtext("tns:ERDSEventId", namespaces=NS)) == "ContentConsignmentFailure"
    )


@pytest.mark.parametrize("sample", ROBUSTNESS, ids=lambda c: c.name)
def test_robustness_cases_never_crash_the_classifier(sample: Campione):
    result = message.parse(sample.raw)
    assert result.kind  # every result has a kind; what it is (with the REM classifier) is tested below

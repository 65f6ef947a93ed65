"""The XAdES signature of REM evidence verified over the exact signed bytes (pecflow.pec.xades,
signature.verify_evidence):
AgID's example messages (../shared/fixtures/rem, skipped without them), the simulator's REM
receipts under its test CA, changed, unsigned, expired, from an unknown CA, and malformed
signatures that must never crash the check."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from local.pecbuild import rem_builder
from local.pecbuild.builder import Autorita, Firma, messaggio_originale
from pecflow.pec import rem, signature
from pecflow.pec.message import parse
from pecflow.pec.signature import TrustAnchors
from tests.conftest import FIXTURES

DS = "http://www.w3.org/2000/09/xmldsig#"
WHEN = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
GESTORE = rem_builder.REM_SIMULATO
ORIGINAL = messaggio_originale(
    mittente="ufficio@rem.simulato.test",
    destinatari=["protocollo@rem.altro.test"],
    oggetto="Contratto firmato",
    testo="Buongiorno,\nin allegato il contratto.\n",
    message_id="<client-7@rem.simulato.test>",
    data=WHEN,
)


def _receipt(firma: Firma | None = None, **options) -> bytes:
    return rem_builder.rem_receipt(
        "SubmissionAcceptance",
        ORIGINAL,
        gestore=GESTORE,
        message_id="REM-1@rem.simulato.test",
        data=WHEN,
        firma=firma,
        **options,
    )


def _evidence(raw: bytes) -> bytes:
    msg = parse(raw)
    part = rem.survey(msg.root).evidence
    assert part is not None
    return part.decoded()


def _ca() -> TrustAnchors:
    return TrustAnchors([Firma.per(GESTORE).autorita.certificato])


def _firma_valid_until(end: datetime) -> Firma:
    """The simulated provider's signer under the test CA, with a certificate that ended on `end`."""
    autorita = Firma.per(GESTORE).autorita
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=Gestore REM scaduto,O=pecflow,C=IT"))
        .issuer_name(autorita.certificato.subject)
        .public_key(key.public_key())
        .serial_number(4343)
        .not_valid_before(end - timedelta(days=365))
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(autorita.chiave, hashes.SHA256())
    )
    return Firma(GESTORE, autorita, cert, key)


# --- the simulator's evidence, signed by signxml under the test CA --------------------------------


def test_valid_with_the_test_ca_as_anchor_and_on_the_message_check():
    raw = _receipt()
    firma = Firma.per(GESTORE)
    check = signature.verify_evidence(_evidence(raw), _ca())
    assert check.outcome == signature.VALID, check.reason
    assert check.signer is not None
    assert check.signer.subject == firma.certificato.subject.rfc4514_string()
    assert check.signer.issuer == firma.autorita.certificato.subject.rfc4514_string()
    assert check.signer.serial == format(firma.certificato.serial_number, "x")
    assert check.signed_at == WHEN and check.signed_at_from == "signingTime"
    # the message's check: its S/MIME verdict, with the evidence's own beside it
    both = signature.check_message(parse(raw), _ca())
    assert both.outcome == signature.VALID, both.reason
    assert both.evidence is not None and both.evidence.outcome == signature.VALID
    assert [name for name, _ in both.checks()] == ["", "REM evidence"]
    assert both.to_dict()["evidence"]["outcome"] == "valid"


def test_a_pec_message_has_no_evidence_check():
    assert signature.check_message(parse(ORIGINAL), _ca()).evidence is None


def test_one_byte_changed_in_the_signed_evidence_is_invalid():
    xml = _evidence(_receipt())
    at = xml.index(b"<EventTime>") + len(b"<EventTime>") + 3  # a digit of the year
    forged = xml[:at] + (b"7" if xml[at : at + 1] != b"7" else b"8") + xml[at + 1 :]
    check = signature.verify_evidence(forged, _ca())
    assert check.outcome == signature.INVALID
    assert "changed after signing" in check.reason
    assert check.signer is not None  # who signed is still said
    # the signing time is signed too (SignedProperties)
    at = xml.index(b"SigningTime>") + len(b"SigningTime>") + 3
    later = xml[:at] + (b"7" if xml[at : at + 1] != b"7" else b"8") + xml[at + 1 :]
    assert signature.verify_evidence(later, _ca()).outcome == signature.INVALID


def test_a_forged_evidence_in_a_message_is_reported_on_both_signatures():
    raw = _receipt()
    xml = _evidence(raw)
    forged = xml.replace(b"Contratto firmato", b"Contratto firmatO", 1)
    assert forged != xml
    check = signature.check_message(
        parse(_receipt(deviations=rem_builder.Deviations(evidence=forged))), _ca()
    )
    # the builder signs the message around the forged evidence: the S/MIME signature holds, the
    # evidence's own does not
    assert check.outcome == signature.VALID
    assert check.evidence is not None and check.evidence.outcome == signature.INVALID


def test_untrusted_without_anchors_and_under_an_unknown_ca():
    xml = _evidence(_receipt())
    alone = signature.verify_evidence(xml, TrustAnchors())
    assert alone.outcome == signature.UNTRUSTED
    assert "no trust anchors" in alone.reason
    stranger = Firma.per(GESTORE, Autorita.nuova("CA REM sconosciuta"))
    unknown = signature.verify_evidence(_evidence(_receipt(stranger)), _ca())
    assert unknown.outcome == signature.UNTRUSTED
    assert "does not chain to a trust anchor" in unknown.reason
    # the provider's own certificate as anchor (AgID's list names the providers' certificates)
    own = TrustAnchors([Firma.per(GESTORE).certificato])
    assert signature.verify_evidence(xml, own).outcome == signature.VALID


def test_expired_when_the_certificate_ended_before_signing():
    firma = _firma_valid_until(WHEN - timedelta(days=30))
    check = signature.verify_evidence(_evidence(_receipt(firma)), _ca())
    assert check.outcome == signature.EXPIRED
    assert "was not valid on 2026-03-02" in check.reason
    assert check.signer is not None and check.signer.serial == format(4343, "x")


def _without_signature(xml: bytes) -> bytes:
    root = etree.fromstring(xml)
    root.remove(root.find(f"{{{DS}}}Signature"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_missing_without_a_signature_and_without_an_evidence():
    unsigned = _without_signature(_evidence(_receipt()))
    check = signature.verify_evidence(unsigned, _ca())
    assert check.outcome == signature.MISSING
    assert "no signature" in check.reason
    in_message = signature.check_message(
        parse(_receipt(deviations=rem_builder.Deviations(evidence=unsigned))), _ca()
    )
    assert in_message.outcome == signature.VALID and in_message.evidence.outcome == signature.MISSING
    no_evidence = _receipt(deviations=rem_builder.Deviations(omit=frozenset({"evidence"})))
    check = signature.check_message(parse(no_evidence), _ca())
    assert check.evidence is not None and check.evidence.outcome == signature.MISSING
    assert "no evidence" in check.evidence.reason


def _replace_signature(xml: bytes, new: bytes) -> bytes:
    return re.sub(rb"<ds:Signature[ >].*</ds:Signature>", new.replace(b"\\", b"\\\\"), xml, flags=re.S)


def _malformed_variants(xml: bytes) -> dict[str, bytes]:
    signed = _evidence(_receipt())
    value = re.search(rb"<ds:SignatureValue[^>]*>([^<]+)<", signed).group(1)
    cert = re.search(rb"<ds:X509Certificate>([^<]+)<", signed).group(1)
    return {
        "empty SignedInfo": _replace_signature(xml, b"<ds:Signature><ds:SignedInfo/></ds:Signature>"),
        "no KeyInfo": _replace_signature(
            xml, b"<ds:Signature><ds:SignedInfo/><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>"
        ),
        "certificate not base64": xml.replace(cert, b"!!! not a certificate !!!", 1),
        "certificate not DER": xml.replace(cert, base64.b64encode(b"\x30\x82\x27\x10"), 1),
        "signature value garbage": xml.replace(value, b"not*base64", 1),
        "signature value of another key": xml.replace(value, base64.b64encode(b"\x01" * 256), 1),
        "unknown algorithm": xml.replace(
            b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", b"urn:example:rot13", 1
        ),
        "two signatures": xml.replace(
            b"</tns:Evidence>",
            re.search(rb"<ds:Signature[ >].*</ds:Signature>", xml, re.S).group(0) + b"</tns:Evidence>",
        ),
        "signature in another namespace": xml.replace(
            b"<ds:Signature ", b'<ds:Signature xmlns:ds="urn:x" ', 1
        ),
        "not XML": xml[: len(xml) // 2],
        "entity declaration": b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "aaaaaaaa">]><e>&a;</e>',
    }


def test_malformed_signatures_are_invalid_or_missing_never_a_crash():
    xml = _evidence(_receipt())
    for name, variant in _malformed_variants(xml).items():
        assert variant != xml, name
        check = signature.verify_evidence(variant, _ca())
        assert check.outcome in (signature.INVALID, signature.MISSING), (name, check)
        assert check.outcome != signature.MISSING or name == "signature in another namespace", (name, check)
        assert check.reason, name


def test_a_signature_that_does_not_cover_the_whole_evidence_is_invalid():
    """Signed by the provider's key, but only one element of it (no reference to the document)."""
    from signxml import DigestAlgorithm, SignatureMethod
    from signxml.xades import XAdESSigner

    firma = Firma.per(GESTORE)
    root = etree.fromstring(
        b'<tns:Evidence xmlns:tns="http://uri.etsi.org/19522/v1#"><tns:EvidenceIdentifier Id="part">x'
        b"</tns:EvidenceIdentifier><tns:EventTime>2026-03-02T09:15:00Z</tns:EventTime></tns:Evidence>"
    )
    signer = XAdESSigner(
        signature_algorithm=SignatureMethod.RSA_SHA256, digest_algorithm=DigestAlgorithm.SHA256
    )
    signed = signer.sign(root, key=firma.chiave, cert=[firma.certificato], reference_uri="#part")
    xml = etree.tostring(signed)
    check = signature.verify_evidence(xml, _ca())
    assert check.outcome == signature.INVALID
    assert "does not cover the whole evidence" in check.reason


def test_an_xpath_filter_other_than_the_signatures_removal_is_refused():
    """AgID's evidences take their signature out with an XPath Filter 2.0 `subtract`; any other
    filter would leave parts of the document unsigned: refused, not ignored."""
    folder = FIXTURES / "rem"
    name = "Intra-REM-flow__REM_SubmissionAcceptance.RA01.eml"
    if not (folder / name).exists():
        pytest.skip("real REM samples not available")
    xml = _evidence((folder / name).read_bytes())
    assert b'Filter="subtract">/descendant::ds:Signature<' in xml
    changed = xml.replace(
        b'Filter="subtract">/descendant::ds:Signature<', b'Filter="subtract">/descendant::tns:Extensions<'
    )
    check = signature.verify_evidence(changed, TrustAnchors())
    assert check.outcome == signature.INVALID


# --- AgID's example messages ------------------------------------------------------------------------


def _real_rem() -> list:
    folder = FIXTURES / "rem"
    if not folder.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason="real REM samples not available"))]
    return [pytest.param(p, id=p.name) for p in sorted(folder.glob("*.eml"))]


def _evidence_certificates(xml: bytes) -> list[x509.Certificate]:
    root = etree.fromstring(xml)
    return [
        x509.load_der_x509_certificate(base64.b64decode(node.text))
        for node in root.iter(f"{{{DS}}}X509Certificate")
    ]


@pytest.mark.parametrize("path", _real_rem())
def test_real_rem_samples(path):
    """Every evidence of AgID's examples is signed (ITERDS test PKI: the S1-REMS and R2-REMS
    providers under "ITERDS Intermediate CA", which the evidence carries; its root does not):
    cryptographically valid, so untrusted without an anchor and valid with the intermediate."""
    msg = parse(path.read_bytes())
    check = signature.check_message(msg, TrustAnchors())
    if msg.rem is None:  # the users' own originals: no REM, no evidence
        assert check.evidence is None
        return
    evidence = check.evidence
    assert evidence is not None
    assert evidence.outcome == signature.UNTRUSTED, evidence.reason
    assert "no trust anchors" in evidence.reason
    assert evidence.signer is not None
    assert re.fullmatch(
        r"CN=(S1|R2)-REMS provider,OU=ITERDS test services,O=ITERDS,C=IT", evidence.signer.subject
    )
    assert evidence.signer.issuer == "CN=ITERDS Intermediate CA,OU=ITERDS test services,O=ITERDS,C=IT"
    assert evidence.signed_at_from == "signingTime" and evidence.signed_at.year == 2022
    xml = _evidence(path.read_bytes())
    intermediate = [c for c in _evidence_certificates(xml) if "Intermediate" in c.subject.rfc4514_string()]
    trusted = signature.verify_evidence(xml, TrustAnchors(intermediate))
    assert trusted.outcome == signature.VALID, trusted.reason
    assert trusted.signer == evidence.signer
    # an unrelated CA vouches for nothing
    other = signature.verify_evidence(xml, TrustAnchors([Firma.per(GESTORE).autorita.certificato]))
    assert other.outcome == signature.UNTRUSTED

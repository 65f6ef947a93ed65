"""`pecflow evidence verify` on the pack of a REM message: the evidence's own XAdES signature is
checked, in the message and as extracted, as the S/MIME one is (pecflow.domain.evidence_verify)."""

from __future__ import annotations

import io
import zipfile

from local.pecbuild import rem_builder
from local.pecbuild.builder import ARUBA, Autorita, Firma, messaggio_originale
from pecflow.domain import evidence as pack
from pecflow.pec import rem
from pecflow.pec.message import parse
from pecflow.pec.signature import TrustAnchors
from tests.unit import test_evidence as base
from tests.unit.test_evidence import BOX, CLIENTE, T0, build, verdict

tsa, world = base.tsa, base.world  # the evidence tests' fixtures: a local TSA, a service with records

SENT = messaggio_originale(mittente=CLIENTE, destinatari=[BOX], oggetto="REM", testo="Via REM.\n", data=T0)


def _dispatch(**options) -> bytes:
    return rem_builder.rem_dispatch(
        SENT, gestore=ARUBA, message_id="<rem-11@pec.aruba.it>", data=T0, **options
    )


def _words(report) -> dict[str, tuple[bool, str]]:
    return {v.path: (v.ok, v.words) for v in report.verdicts}


def _evidence_path(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        [name] = [
            n for n in zf.namelist() if n.endswith(".xml") and "19522" in zf.read(n).decode(errors="replace")
        ]
    return name


def test_a_rem_pack_holds_with_both_signatures_valid(world, tsa):
    service, receive, _, _, _ = world
    data = build(service, receive(11, _dispatch()))
    report = verdict(data, tsa)
    assert report.ok, report.failures()
    words = _words(report)
    assert "firma XAdES dell'evidenza REM valida" in words[pack.MESSAGE][1]
    assert "firma XAdES del gestore valida" in words[_evidence_path(data)][1]


def test_a_forged_evidence_under_a_valid_smime_signature_is_caught(world, tsa):
    """The provider's S/MIME signature wraps an evidence changed after its XAdES signature (a
    forger who holds an S/MIME key, or a provider's bug): the pack does not hold."""
    service, receive, _, _, _ = world
    xml = rem.survey(parse(_dispatch()).root).evidence.decoded()
    forged = xml.replace(CLIENTE.encode(), b"altro." + CLIENTE.encode(), 1)  # the sender changed
    assert forged != xml
    raw = _dispatch(deviations=rem_builder.Deviations(evidence=forged))
    data = build(service, receive(12, raw))
    report = verdict(data, tsa)
    assert not report.ok
    words = _words(report)
    ok, said = words[pack.MESSAGE]
    assert not ok and "firma del gestore valida" in said and "evidenza REM NON VALIDA" in said, said
    ok, said = words[_evidence_path(data)]
    assert not ok and "firma XAdES del gestore NON VALIDA" in said and "changed after signing" in said, said


def test_an_evidence_signed_under_an_unknown_ca_is_caught(world, tsa):
    service, receive, _, _, _ = world
    stranger = Firma.per(ARUBA, Autorita.nuova("CA REM sconosciuta"))
    xml = rem_builder.evidence_xml(
        event="SubmissionAcceptance",
        reason=rem_builder.REASONS["MessageAccepted"],
        evidence_id="EV-13",
        message_id="<rem-13@pec.aruba.it>",
        when=T0,
        gestore=ARUBA,
        firma=stranger,
        sender=CLIENTE,
        recipients=[BOX],
        ua_message_id="<ua-13@test>",
        digest="AAAA",
        subject="REM",
    )
    data = build(service, receive(13, _dispatch(deviations=rem_builder.Deviations(evidence=xml))))
    report = verdict(data, tsa)
    words = _words(report)
    ok, said = words[_evidence_path(data)]
    assert not ok and "does not chain to a trust anchor" in said, said
    assert not words[pack.MESSAGE][0]
    # with no anchor at all given, nothing is trusted either
    assert not verdict(data, tsa, anchors=TrustAnchors()).ok

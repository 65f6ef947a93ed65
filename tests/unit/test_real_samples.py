"""Every real PEC sample is classified as labels.json says, and its fields match the
daticert.xml beside it (read here with ElementTree, an oracle independent of our parser)."""

from __future__ import annotations

import email
import xml.etree.ElementTree as ET
from datetime import datetime

import pytest

from pecflow.pec import kinds, message
from tests.conftest import FIXTURES, real_fixtures, real_pec_labels


def _labels():
    if not (FIXTURES / "pec" / "labels.json").exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason="real PEC samples not available"))]
    return [pytest.param(label, id=label["file"]) for label in real_pec_labels()]


def _daticert_oracle(eml_name: str) -> ET.Element | None:
    path = real_fixtures("daticert") / eml_name.replace(".eml", "__daticert.xml")
    return ET.parse(path).getroot() if path.exists() else None


@pytest.mark.parametrize("label", _labels())
def test_kind_and_reference_as_labelled(label):
    raw = (real_fixtures("pec") / label["file"]).read_bytes()
    result = message.parse(raw)
    assert result.kind == label["kind"]
    assert result.ref_message_id == label["ref_message_id"]
    assert (result.sdi.type if result.sdi else None) == label["sdi_type"]
    if "provider" in label:
        assert result.provider == label["provider"]
    if "receipt_type" in label:
        assert result.receipt_type == label["receipt_type"]
    if "disagrees" in label.get("note", ""):
        assert any("disagrees with daticert msgid" in p for p in result.problems), result.problems


@pytest.mark.parametrize("label", _labels())
def test_fields_match_the_daticert_beside_the_sample(label):
    raw = (real_fixtures("pec") / label["file"]).read_bytes()
    result = message.parse(raw)
    oracle = _daticert_oracle(label["file"])
    if oracle is None:
        if result.kind in kinds.PEC_KINDS:
            assert result.daticert is None
            assert any("daticert.xml missing" in p for p in result.problems)
        return
    dati, head = oracle.find("dati"), oracle.find("intestazione")
    assert result.kind == oracle.get("tipo")
    assert result.provider == dati.findtext("gestore-emittente")
    assert result.identificativo == dati.findtext("identificativo")
    assert result.sender == head.findtext("mittente")
    assert [(r.address, r.type) for r in result.recipients] == [
        (d.text.strip(), d.get("tipo", "certificato")) for d in head.findall("destinatari")
    ]
    assert result.original_subject == head.findtext("oggetto")
    zona = dati.find("data").get("zona")
    expected_time = datetime.strptime(
        f"{dati.findtext('data/giorno')} {dati.findtext('data/ora')} {zona}", "%d/%m/%Y %H:%M:%S %z"
    )
    assert result.timestamp == expected_time
    assert result.timestamp.utcoffset() == expected_time.utcoffset()
    assert result.delivered_to == dati.findtext("consegna")
    assert result.error_detail == dati.findtext("errore-esteso")
    errore = oracle.get("errore", "nessuno")
    assert result.error == (None if errore == "nessuno" else errore)
    ricevuta = dati.find("ricevuta")
    assert result.receipt_type == (ricevuta.get("tipo") if ricevuta is not None else None)
    msgid = dati.findtext("msgid")
    reference = result.ref_message_id or result.original_message_id
    assert reference == msgid


@pytest.mark.parametrize("label", _labels())
def test_postacert_is_parsed_recursively(label):
    raw = (real_fixtures("pec") / label["file"]).read_bytes()
    result = message.parse(raw)
    stdlib = email.message_from_bytes(raw)
    inner = [
        p
        for p in stdlib.walk()
        if p.get_content_type() == "message/rfc822" and (p.get_filename() or "").lower() == "postacert.eml"
    ]
    if not inner or result.kind == kinds.POSTA_ORDINARIA:
        assert result.postacert is None
        return
    original = inner[0].get_payload(0)
    assert result.postacert is not None
    assert result.postacert.message_id == (original["Message-ID"] or "").strip() or None
    expected_files = [p.get_filename() for p in original.walk() if not p.is_multipart() and p.get_filename()]
    assert [a.filename for a in result.attachments if a.filename] == expected_files
    for att in result.attachments:
        if att.filename:
            stdlib_part = next(p for p in original.walk() if p.get_filename() == att.filename)
            assert att.content() == stdlib_part.get_payload(decode=True)


def test_provider_rewrites_the_message_id_of_postacert():
    """Seen at Aruba, Sogei and Namirial: the recipient sees our message under the identificativo."""
    folder = real_fixtures("pec")
    for name in (
        "oca__aruba_avvenuta-consegna_IT03339130126_00009.eml",
        "oca__sdi_busta_RC_ricevuta-consegna_6782414.eml",
        "mlarchive__namirial_busta-trasporto_via-mailman.eml",
    ):
        result = message.parse((folder / name).read_bytes())
        assert result.postacert.message_id == f"<{result.identificativo}>"


def test_negative_control_is_ordinary_mail():
    raw = (real_fixtures("pec") / "biagioT__non-pec_DSN_failure_negative-control.eml").read_bytes()
    result = message.parse(raw)
    assert result.kind == kinds.POSTA_ORDINARIA
    assert result.postacert is None and result.daticert is None
    assert result.provider is None and result.identificativo is None
    assert {a.filename for a in result.attachments} >= {"icon.png", "warning_triangle.png"}


def test_truncated_signature_is_reported():
    raw = (real_fixtures("pec") / "biagioT__accettazione.eml").read_bytes()
    result = message.parse(raw)
    assert result.signature == "missing"
    assert any(p.startswith("signature_missing") for p in result.problems)


def test_mailing_list_rewrap_detected_from_headers_not_subject():
    raw = (real_fixtures("pec") / "mlarchive__namirial_busta-trasporto_via-mailman.eml").read_bytes()
    result = message.parse(raw)
    assert result.subject.startswith("[Osst-users] [SPAM] POSTA CERTIFICATA:")
    assert result.kind == kinds.POSTA_CERTIFICATA
    assert all(r.type == "esterno" for r in result.recipients) and len(result.recipients) == 7
    assert any("re-wrapped" in p for p in result.problems)


def test_envelope_without_daticert_falls_back_to_headers():
    raw = (real_fixtures("pec") / "oca__sdi_busta_MC_mancata-consegna_no-daticert.eml").read_bytes()
    result = message.parse(raw)
    assert result.kind == kinds.POSTA_CERTIFICATA
    assert result.identificativo == "opec288.20190104213401.26494.1867.1.1@pcert.sogei.it"
    assert result.sender == "sdi48@pec.fatturapa.it"
    assert result.receipt_type == "breve"
    assert result.original_message_id == "<29868973923542086.1546634040973@pec.fatturapa.it>"
    assert result.sdi is not None and result.sdi.type == "MC"

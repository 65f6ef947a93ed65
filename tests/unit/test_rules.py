"""The rules document, its conditions, the accepted formats (pecflow.domain.rules)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from pecflow.domain import rules
from pecflow.domain.rules import RulesError, decide, load, sniff

REPO = Path(__file__).resolve().parents[2]
SHA = "ab" * 32


def record(**fields) -> dict:
    return {
        "sha256": SHA,
        "kind": "posta-certificata",
        "from": "per conto di: fornitore@pec.fornitore.it <posta-certificata@pec.gestore.it>",
        "sender": "Fornitore@PEC.fornitore.it",
        "subject": "POSTA CERTIFICATA: Fattura 12/2026",
        "original_subject": "Fattura 12/2026",
        "received_at": "2026-03-02T09:00:00.000000Z",
        "attachments": [],
        "signature": "valid",
    } | fields


def doc(*rule_list, accepted=None) -> rules.RulesDocument:
    data: dict = {"version": 1, "rules": list(rule_list)}
    if accepted is not None:
        data["accepted_formats"] = accepted
    return load(data)


def test_published_schema_is_the_packaged_one():
    published = (REPO / "schemas" / "rules.schema.json").read_bytes()
    packaged = (REPO / "shared" / "pecflow" / "schemas" / "rules.schema.json").read_bytes()
    assert published == packaged


def test_a_bad_document_names_each_rule_field_and_why():
    with pytest.raises(RulesError) as caught:
        load(
            {
                "version": 1,
                "accepted_formats": {"allow": ["pdf", "exe"]},
                "rules": [
                    {"name": "Fatture", "when": {"sendr": ["a@b.it"]}, "then": {"tag": ["f"]}},
                    {"name": "Salva", "then": {"save": {"prefix": "../fuori"}}},
                    {"name": "Vuota", "then": {}},
                    {"name": "fatture", "then": {"tag": ["x"]}},
                ],
            }
        )
    text = "\n".join(caught.value.problems)
    assert "campo accepted_formats.allow[2]: 'exe' non è ammesso" in text
    assert "regola 1 («Fatture»), campo when: campo sconosciuto «sendr» (forse «sender»?)" in text
    assert "regola 2 («Salva»), campo then.save.prefix: '../fuori' non va bene" in text
    assert "regola 3 («Vuota»), campo then: non può essere vuoto" in text
    assert len(caught.value.problems) == 4  # the repeated name is told once the schema holds


def test_a_repeated_rule_name_is_refused():
    with pytest.raises(RulesError, match="regola 2 .*già usato"):
        doc({"name": "A", "then": {"tag": ["x"]}}, {"name": "a", "then": {"tag": ["y"]}})


def test_yaml_and_json_read_alike():
    yaml_text = """
version: 1
rules:
  - name: Fatture
    when: {has_sdi: true}
    then: {tag: [fattura], assign: mario.rossi}
"""
    from_yaml = rules.parse_text(yaml_text)
    from_json = rules.parse_text(json.dumps(from_yaml.source))
    assert from_yaml.rules == from_json.rules
    assert from_yaml.rules[0].then.assign == "mario.rossi"
    with pytest.raises(RulesError, match="non è YAML valido"):
        rules.parse_text("version: [1")


def test_conditions_all_hold_and_a_list_is_any_of_its_values():
    the_rule = {
        "name": "Fornitore",
        "when": {
            "kind": ["posta-certificata"],
            "sender_domain": ["pec.fornitore.it", "altro.it"],
            "subject": "*fattura*",
            "signature": ["valid"],
        },
        "then": {"tag": ["fornitore"]},
    }
    document = doc(the_rule)
    assert [d.rule for d in decide(document, record())] == ["Fornitore"]
    assert decide(document, record(kind="avvenuta-consegna")) == []
    assert decide(document, record(sender="x@pec.altrove.it")) == []
    assert decide(document, record(original_subject="Sollecito")) == []
    assert decide(document, record(signature="invalid")) == []


def test_sender_address_pattern_sdi_and_unchecked_signature():
    document = doc(
        {"name": "Esatto", "when": {"sender": ["fornitore@pec.fornitore.it"]}, "then": {"tag": ["a"]}},
        {"name": "Glob", "when": {"sender_pattern": "*@pec.*.it"}, "then": {"tag": ["b"]}},
        {"name": "SdI", "when": {"has_sdi": True}, "then": {"tag": ["c"]}},
        {"name": "Non verificata", "when": {"signature": ["not-checked"]}, "then": {"tag": ["d"]}},
    )
    plain = record(signature=None)
    assert [d.rule for d in decide(document, plain)] == ["Esatto", "Glob", "Non verificata"]
    assert [d.rule for d in decide(document, record(sdi={"type": "invoice"}))] == ["Esatto", "Glob", "SdI"]


def test_stop_ends_the_rules_and_a_disabled_rule_is_skipped():
    document = doc(
        {"name": "Spenta", "enabled": False, "then": {"tag": ["x"]}},
        {"name": "Prima", "stop": True, "then": {"tag": ["y"]}},
        {"name": "Dopo", "then": {"tag": ["z"]}},
    )
    assert [d.rule for d in decide(document, record())] == ["Prima"]


def test_attachment_types_use_the_content_and_fall_back_to_the_extension():
    document = doc({"name": "XML", "when": {"attachment_types": ["xml"]}, "then": {"tag": ["xml"]}})
    signed_xml = record(attachments=[{"filename": "IT1_A.xml.p7m", "format": "p7m/xml"}])
    disguised = record(attachments=[{"filename": "fattura.xml", "format": "pdf"}])
    old_record = record(attachments=[{"filename": "fattura.XML"}])  # recorded before formats
    assert [d.rule for d in decide(document, signed_xml)] == ["XML"]
    assert decide(document, disguised) == []
    assert [d.rule for d in decide(document, old_record)] == ["XML"]


def test_patterns_are_globs_and_stay_fast_on_hostile_text():
    document = doc({"name": "G", "when": {"subject": "*a*a*a*a*a*a*a*a*a*a*a*a*b"}, "then": {"tag": ["x"]}})
    hostile = record(original_subject="a" * 100_000)
    started = time.perf_counter()
    assert decide(document, hostile) == []
    assert time.perf_counter() - started < 1.0
    # a regular expression is not one: its characters are literal (but [] is a class)
    regex = doc({"name": "R", "when": {"subject": "fattura.+"}, "then": {"tag": ["x"]}})
    assert decide(regex, record(original_subject="fatturaXX")) == []
    assert decide(regex, record(original_subject="fattura.+")) != []


# --- formats --------------------------------------------------------------------------------------------
def sign(signer, content: bytes, encoding=serialization.Encoding.DER) -> bytes:
    cert, key = signer
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content).add_signer(cert, key, hashes.SHA256())
    return builder.sign(encoding, [pkcs7.PKCS7Options.Binary])


INVOICE = b'<?xml version="1.0" encoding="UTF-8"?>\n<p:FatturaElettronica versione="FPR12"/>\n'


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"%PDF-1.7\n...", "pdf"),
        (INVOICE, "xml"),
        (b"\xef\xbb\xbf<FatturaElettronica/>", "xml"),
        (b"<!DOCTYPE html><html></html>", "html"),
        (b"PK\x03\x04" + b"\0" * 26 + b"[Content_Types].xml", "office"),
        (b"PK\x03\x04" + b"\0" * 26 + b"mimetypeapplication/vnd.oasis.opendocument.text", "office"),
        (b"PK\x03\x04" + b"\0" * 26 + b"foto.jpg", "zip"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 50, "office"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "image"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 20, "image"),
        (b"MZ\x90\x00" + b"\0" * 60, "executable"),
        (b"Gentile cliente,\nin allegato la fattura.\n", "text"),
        (b"Caff\xe8 e cornetto", "text"),
        (b"Received: from x\r\nSubject: y\r\n\r\nbody", "eml"),
        (bytes(range(256)) * 4, "other"),
    ],
)
def test_sniff_knows_formats_by_content(data, expected):
    assert sniff(data) == expected


def test_sniff_reads_inside_signed_files_der_pem_and_base64(signer):
    der = sign(signer, INVOICE)
    assert sniff(der) == "p7m/xml"
    assert sniff(sign(signer, INVOICE, serialization.Encoding.PEM)) == "p7m/xml"
    assert sniff(base64.encodebytes(der)) == "p7m/xml"
    assert sniff(sign(signer, b"%PDF-1.4\n")) == "p7m/pdf"
    assert sniff(der[:200]) == "p7m"  # cut: a p7m whose content cannot be read


def test_accepted_formats_quarantine_with_the_reason():
    accepted = {"allow": ["pdf", "xml", "p7m"]}
    document = doc(accepted=accepted)
    fine = record(
        attachments=[
            {"filename": "a.pdf", "format": "pdf"},
            {"filename": "IT1.xml.p7m", "format": "p7m/xml"},
        ]
    )
    assert decide(document, fine) == []
    bad = record(
        attachments=[
            {"filename": "fattura.pdf", "format": "executable"},
            {"filename": "doc.p7m", "format": "p7m/office"},
            {"filename": "finto.pdf", "format": "xml"},
        ]
    )
    [decision] = decide(document, bad)
    assert decision.rule == "formati accettati"
    assert decision.actions.quarantine == (
        "allegato «fattura.pdf»: formato non accettato (programma eseguibile); "
        "allegato «doc.p7m»: formato non accettato (file firmato che contiene documento Office); "
        "allegato «finto.pdf»: il nome dice PDF ma il contenuto è XML"
    )
    lenient = doc(accepted=accepted | {"extension_must_match": False})
    assert [d.actions.quarantine for d in decide(lenient, bad)][0].count("allegato") == 2
    # receipts are the providers' own: never checked; an uncertified message in an anomalia is
    assert decide(document, bad | {"kind": "avvenuta-consegna"}) == []
    assert decide(document, bad | {"kind": "anomalia"})[0].actions.quarantine == decision.actions.quarantine


def test_save_folders_by_layout():
    save = rules.Save("fatture/in", "by-date")
    assert rules.save_folder(save, record()) == f"fatture/in/2026/03/02/{SHA[:16]}"
    by_sender = rules.Save("f", "by-sender")
    assert rules.save_folder(by_sender, record()) == f"f/fornitore@pec.fornitore.it/2026-03-02_{SHA[:16]}"
    assert rules.save_folder(rules.Save("f", "flat"), record()) == f"f/2026-03-02_{SHA[:16]}"
    assert rules.safe_name("../../etc/passwd", "x") == "passwd"
    assert rules.safe_name("fattura 1 (copia).pdf", "x") == "fattura_1_copia_.pdf"


def test_a_quarantine_ends_the_rules():
    document = doc(
        {
            "name": "Sospetti",
            "when": {"subject": "*urgente*"},
            "then": {"quarantine": "da controllare", "tag": ["x"]},
        },
        {"name": "Dopo", "then": {"save": {"prefix": "tutto"}}},
        accepted={"allow": ["pdf"]},
    )
    [held] = decide(document, record(original_subject="URGENTE"))
    assert (held.rule, held.actions.quarantine, held.actions.tags) == ("Sospetti", "da controllare", ("x",))
    # a refused attachment: only the quarantine, no rule saves or assigns what waits for an admin
    [refused] = decide(document, record(attachments=[{"filename": "a.exe", "format": "executable"}]))
    assert refused.rule == "formati accettati"

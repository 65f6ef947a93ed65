"""The campaign manifest: the published schema, good manifests, and bad ones said field by field."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from pecflow.domain import campaign
from pecflow.domain.campaign import Code, Manifest, ManifestError, PdfSpec
from tests.conftest import REPO

MINIMAL = {
    "mailbox": "ufficio@pec.azienda.it",
    "subject": "Avviso {{ numero }}",
    "body_text": "Gentile {{ nome }}",
}


def problems(data) -> dict[str | None, str]:
    with pytest.raises(ManifestError) as caught:
        Manifest.from_dict(data) if isinstance(data, dict) else Manifest.parse(data)
    assert all(i.code == Code.MANIFEST_INVALID for i in caught.value.issues)
    return {i.field: i.reason for i in caught.value.issues}


def test_the_published_schema_and_the_packaged_copy_are_identical():
    published = (REPO / "schemas" / "campaign-manifest.schema.json").read_bytes()
    packaged = (REPO / "shared" / "pecflow" / "schemas" / "campaign-manifest.schema.json").read_bytes()
    assert published == packaged
    assert campaign.schema() == json.loads(published)


def test_the_schema_is_a_valid_draft_2020_12_schema():
    schema = campaign.schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_the_schema_defaults_are_the_dataclass_defaults():
    properties = campaign.schema()["properties"]
    defaults = Manifest(**MINIMAL)
    for name, spec in properties.items():
        if "default" in spec:
            value = getattr(defaults, name)
            assert (list(value) if isinstance(value, tuple) else value) == spec["default"], name


def test_a_minimal_manifest_gets_the_defaults():
    manifest = Manifest.parse(json.dumps(MINIMAL).encode())
    assert manifest.address_column == "pec" and manifest.receipt_type == "completa"
    assert manifest.attachments == () and manifest.pdf is None and manifest.dry_run is False
    assert manifest.max_message_bytes == 30_000_000
    assert {"pdf", "p7m", "xml", "txt", "jpg", "png", "zip"} <= set(manifest.accepted_formats)


def test_a_complete_manifest_and_its_round_trip():
    data = {
        **MINIMAL,
        "name": "Solleciti marzo",
        "description": "secondo sollecito",
        "body_html": "<p>Gentile {{ nome }}</p>",
        "address_column": "Indirizzo PEC",
        "attachments": ["informativa.pdf", "moduli/modulo.p7m"],
        "attachment_column": "Fattura",
        "optional_columns": ["note"],
        "pdf": {"filename": "avviso-{{ numero }}.pdf", "template": "Avviso {{ numero }}"},
        "receipt_type": "sintetica",
        "start_at": "2026-03-02T09:00:00+01:00",
        "dry_run": True,
        "accepted_formats": ["pdf", "p7m"],
        "max_attachment_bytes": 5_000_000,
        "max_message_bytes": 20_000_000,
    }
    manifest = Manifest.parse(json.dumps(data))
    assert manifest.pdf == PdfSpec("avviso-{{ numero }}.pdf", "Avviso {{ numero }}")
    assert manifest.address_key == "indirizzo_pec" and manifest.attachment_key == "fattura"
    assert manifest.optional_keys == {"note"}
    assert manifest.start_time.utcoffset().total_seconds() == 3600
    assert manifest.to_dict() == data
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    Draft202012Validator(campaign.schema()).validate(manifest.to_dict())


def test_start_at_is_normalised_and_utc_z_accepted():
    assert (
        Manifest.from_dict({**MINIMAL, "start_at": "2026-03-02T08:00:00Z"}).start_at
        == "2026-03-02T08:00:00+00:00"
    )
    assert (
        Manifest.from_dict({**MINIMAL, "start_at": "2026-03-02 08:00+02:00"}).start_at
        == "2026-03-02T08:00:00+02:00"
    )


def test_a_utf8_bom_is_accepted():
    assert Manifest.parse(b"\xef\xbb\xbf" + json.dumps(MINIMAL).encode()).mailbox == "ufficio@pec.azienda.it"


def test_manifest_objects_are_hashable_values():
    assert hash(Manifest.from_dict(MINIMAL)) == hash(Manifest.from_dict(dict(MINIMAL)))


@pytest.mark.parametrize(
    "change, field, reason",
    [
        ({"subjet": "x"}, "subjet", "unknown field (did you mean 'subject'?)"),
        ({"colore": "blu"}, "colore", "unknown field (known fields:"),
        ({"pdf": {"filename": "a.pdf", "template": "x", "font": "Arial"}}, "pdf.font", "unknown field"),
        ({"pdf": {"filename": "a.pdf"}}, "pdf.template", "is required"),
        (
            {"receipt_type": "completissima"},
            "receipt_type",
            "must be one of completa, breve, sintetica, not 'completissima'",
        ),
        ({"dry_run": "yes"}, "dry_run", "must be true or false, not a string"),
        ({"attachments": "a.pdf"}, "attachments", "must be a list, not a string"),
        ({"attachments": ["a.pdf", "a.pdf"]}, "attachments", "lists 'a.pdf' more than once"),
        ({"attachments": ["../segreti.pdf"]}, "attachments[0]", "must not contain '.', '..'"),
        ({"attachments": ["C:\\allegati\\a.pdf"]}, "attachments[0]", "separate folders with '/'"),
        ({"attachments": [""]}, "attachments[0]", "must not be empty"),
        ({"subject": ""}, "subject", "must not be empty"),
        ({"max_message_bytes": 10}, "max_message_bytes", "must be at least 10,000, not 10"),
        ({"max_attachment_bytes": 1.5}, "max_attachment_bytes", "must be a whole number, not a number"),
        ({"accepted_formats": []}, "accepted_formats", "must not be empty"),
        (
            {"accepted_formats": [".PDF"]},
            "accepted_formats[0]",
            "'.PDF' is not valid here: expected a file extension",
        ),
        (
            {"start_at": "2026-03-02"},
            "start_at",
            "is not valid here: expected ISO 8601 date and time with its zone",
        ),
        ({"start_at": "2026-03-02T09:00:00"}, "start_at", "with its zone"),
        ({"start_at": "2026-02-30T09:00:00+01:00"}, "start_at", "is not a real date and time"),
        (
            {"mailbox": "ufficio@pec"},
            "mailbox",
            "'ufficio@pec' is not valid here: expected the sending PEC address",
        ),
        ({"mailbox": "uff..icio@pec.azienda.it"}, "mailbox", "is not a valid address: the part before @"),
        ({"address_column": "  "}, "address_column", "has no letter or digit"),
        (
            {"attachment_column": "PEC"},
            "attachment_column",
            "the same column cannot hold the address and the attachment",
        ),
    ],
)
def test_bad_manifests_say_which_field_and_why(change, field, reason):
    found = problems({**MINIMAL, **change})
    assert field in found, found
    assert reason in found[field]


def test_missing_required_fields_are_each_named():
    assert problems({"subject": "x"}) == {"mailbox": "is required", "body_text": "is required"}


def test_every_problem_is_reported_at_once():
    found = problems({**MINIMAL, "receipt_type": "x", "dry_run": 1, "foo": 1})
    assert set(found) == {"receipt_type", "dry_run", "foo"}


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "not valid JSON: Expecting value at line 1 column 1"),
        (b'{"mailbox": "a@b.it",\n "subject": }', "not valid JSON: Expecting value at line 2 column 13"),
        (b"[1, 2]", "the manifest must be a JSON object, not a list"),
        (b"\xff\xfe{}", "the manifest is not UTF-8 text"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_unreadable_manifests(raw, reason):
    found = problems(raw)
    assert reason in found[None]


def test_a_repeated_key_is_an_error_not_a_silent_overwrite():
    found = problems(b'{"mailbox": "a@pec.it", "subject": "x", "body_text": "y", "subject": "z"}')
    assert found == {"subject": "appears twice"}


def test_the_error_message_names_the_field():
    with pytest.raises(ManifestError) as caught:
        Manifest.from_dict({**MINIMAL, "receipt_type": "x"})
    assert str(caught.value) == "field receipt_type: must be one of completa, breve, sintetica, not 'x'"


@pytest.mark.parametrize(
    "header, key",
    [
        ("PEC", "pec"),
        ("  Ragione Sociale ", "ragione_sociale"),
        ("E-mail PEC", "e_mail_pec"),
        ("Importo (€)", "importo"),
        ("Città", "città"),
        ("", ""),
        ("€", ""),
        ("IMPORTO_totale", "importo_totale"),
    ],
)
def test_column_keys(header, key):
    assert campaign.column_key(header) == key


@pytest.mark.parametrize(
    "address",
    [
        "mario.rossi@pec.it",
        "a@b.co",
        "o'brien+fatture@pec.azienda.it",
        "x@xn--80ak6aa92e.com",
        "UFFICIO@PEC.AZIENDA.IT",
        "a" * 64 + "@pec.it",
    ],
)
def test_valid_addresses(address):
    assert campaign.address_problem(address) is None


@pytest.mark.parametrize(
    "address, reason",
    [
        ("", "it is empty"),
        ("mario.rossi@", "nothing after @"),
        ("@pec.it", "nothing before @"),
        ("mario rossi@pec.it", "it contains spaces"),
        ("mario.rossi", "it has no @"),
        ("a@b@pec.it", "more than one @"),
        ("mario@pec", "the domain has no dot"),
        ("mario@pec..it", "empty part"),
        ("mario@-pec.it", "not allowed"),
        ("mario..rossi@pec.it", "the part before @"),
        (".mario@pec.it", "the part before @"),
        ("mario@pec.i", "no top-level domain"),
        ("mario@pec.it1", "no top-level domain"),
        ("Mario Rossi <mario@pec.it>", "without a name"),
        ("a@pec.it; b@pec.it", "more than one address"),
        ("a@pec.it,b@pec.it", "more than one address"),
        ("màrio@pec.it", "non-ASCII"),
        ("a" * 65 + "@pec.it", "longer than 64"),
        ("a@" + "b" * 64 + ".it", "longer than 63"),
        ("a@pec.it\n", "spaces"),
        ("a@" + "b." * 130 + "it", "longer than"),
    ],
)
def test_invalid_addresses_say_why(address, reason):
    assert reason in campaign.address_problem(address)


def test_a_campaign_may_say_its_purpose():
    from pecflow.domain.campaign import Manifest, ManifestError

    base = {"mailbox": "ufficio@pec.azienda.it", "subject": "Avviso", "body_text": "Gentile cliente"}
    assert Manifest.from_dict({**base, "purpose": "sollecito di pagamento (contratto)"}).purpose == (
        "sollecito di pagamento (contratto)"
    )
    assert Manifest.from_dict(base).purpose is None
    with pytest.raises(ManifestError, match="purpose"):
        Manifest.from_dict({**base, "purpose": "x" * 501})

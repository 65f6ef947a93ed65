"""The builder's SdI notifications against the official schema (MessaggiTypes_v1.1.xsd, read from
../shared/fixtures; skipped without it): each PA notification's root is declared, its children
are the type's elements in the type's order, and every required one is there (but ds:Signature,
which the builder does not write: real notifications are XAdES-signed by the SdI)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from local.pecbuild import sdi_builder

XSD = (
    Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "schemas" / "isife__MessaggiTypes_v1.1.xsd"
)
NS = {"xsd": "http://www.w3.org/2001/XMLSchema"}

pytestmark = pytest.mark.skipif(not XSD.is_file(), reason="the official schema is not in ../shared/fixtures")


def sequences() -> dict[str, list[tuple[str, bool]]]:
    """complexType name -> its sequence's (element name, required), ds:Signature left out."""
    schema = ET.parse(XSD).getroot()
    found = {}
    for complex_type in schema.findall("xsd:complexType", NS):
        sequence = complex_type.find("xsd:sequence", NS)
        if sequence is None:
            continue
        found[complex_type.get("name")] = [
            (element.get("name"), element.get("minOccurs", "1") != "0")
            for element in sequence.findall("xsd:element", NS)
            if element.get("name")  # ref="ds:Signature" has none
        ]
    return found


@pytest.mark.parametrize("code", sorted(sdi_builder.RADICI))
def test_each_built_notification_follows_the_schema(code):
    types = sequences()
    root_name = sdi_builder.RADICI[code][0]
    elements = {e.get("name"): e.get("type") for e in ET.parse(XSD).getroot().findall("xsd:element", NS)}
    assert root_name in elements, f"{root_name} is not a root element of the schema"
    expected = types[elements[root_name].split(":", 1)[1]]
    document = sdi_builder.notifica(
        code, identificativo_sdi="111", nome_file="IT01234567890_11111.xml", message_id="123",
        quando=datetime(2026, 3, 2, 9, tzinfo=UTC), riferimento_fattura=("7", "2026"), pec_message_id="opec.1@x",
    )  # fmt: skip
    root = ET.fromstring(document)
    assert root.tag.rpartition("}")[2] == root_name and root.get("versione") == "1.0"
    children = [child.tag.rpartition("}")[2] for child in root]
    names = [name for name, _ in expected]
    assert all(child in names for child in children), f"{code}: {children} not all in {names}"
    positions = [names.index(child) for child in children]
    assert positions == sorted(positions), f"{code}: out of the schema's order: {children}"
    missing = [name for name, required in expected if required and name not in children]
    assert missing == [], f"{code}: required {missing} missing"

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pecflow.pec import daticert, safexml
from pecflow.pec.daticert import Daticert, Destinatario
from tests.conftest import real_fixtures

ROME = timezone(timedelta(hours=1))


def sample(**overrides) -> Daticert:
    giorno, ora, zona = daticert.data_fields(datetime(2026, 11, 23, 9, 5, 7, tzinfo=ROME))
    fields = dict(
        tipo="avvenuta-consegna",
        mittente="ufficio@pec.azienda.it",
        destinatari=(Destinatario("cliente@pec.cliente.it"), Destinatario("x@gmail.com", "esterno")),
        risposte="ufficio@pec.azienda.it",
        oggetto='Fattura n. 12 <urgente> & "altro"',
        gestore_emittente="Gestore di prova S.p.A.",
        giorno=giorno,
        ora=ora,
        zona=zona,
        identificativo="opec1.20261123090507.1.1.1.1@pec.prova.it",
        msgid="<abc@client>",
        ricevuta="breve",
        consegna="cliente@pec.cliente.it",
    )
    fields.update(overrides)
    return Daticert(**fields)


def test_render_then_parse_round_trips():
    record = sample()
    parsed = daticert.parse(daticert.render(record))
    assert parsed == record
    assert parsed.problems == ()
    assert parsed.timestamp == datetime(2026, 11, 23, 9, 5, 7, tzinfo=ROME)


def test_every_tipo_and_errore_round_trips():
    for tipo in daticert.TIPI:
        for errore in daticert.ERRORI:
            record = sample(
                tipo=tipo,
                errore=errore,
                ricezione=("a@pec.it", "b@pec.it"),
                errore_esteso="5.1.1 - utente sconosciuto",
            )
            assert daticert.parse(daticert.render(record)) == record


def test_negative_zone_and_unreadable_date():
    record = daticert.parse(daticert.render(sample(zona="-0330")))
    assert record.timestamp.utcoffset() == -timedelta(hours=3, minutes=30)
    bad = daticert.parse(daticert.render(sample(giorno="31/02/2026")))
    assert bad.timestamp is None
    assert any("unreadable <data>" in p for p in bad.problems)


def test_msgid_normalised_with_angle_brackets():
    assert daticert.normalise_msgid(" <a@b> ") == "<a@b>"
    assert daticert.normalise_msgid("a@b") == "<a@b>"
    assert daticert.normalise_msgid("<>") is None


def test_lenient_content_reported_in_problems():
    xml = (
        b'<postacert tipo="non-esiste" errore="boh"><intestazione>stray<mittente>m</mittente>'
        b"<nuovo/></intestazione><dati><identificativo>i</identificativo></dati></postacert>"
    )
    record = daticert.parse(xml)
    assert record.tipo == "non-esiste"
    joined = " | ".join(record.problems)
    for expected in ("unknown postacert tipo", "unknown errore", "stray text", "unexpected element"):
        assert expected in joined


def test_other_root_and_missing_sections():
    record = daticert.parse(b"<ricevuta/>")
    assert "root element is <ricevuta>" in record.problems[0]
    assert any("<intestazione> missing" in p for p in record.problems)


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty"),
        (b"<postacert>", "not well-formed"),
        (b"<!DOCTYPE p [<!ENTITY a 'b'>]><postacert>&a;</postacert>", "not allowed"),
        (b'<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]><postacert>&x;</postacert>', "not allowed"),
        (b"<postacert>&undefined;</postacert>", "not well-formed"),
        (b"<postacert>" + b"x" * (daticert.MAX_DATICERT_BYTES + 1) + b"</postacert>", "limit"),
    ],
)
def test_unreadable_documents_raise_daticert_error(data, reason):
    with pytest.raises(daticert.DaticertError, match=reason):
        daticert.parse(data)


def test_encodings_expat_does_not_know_are_decoded():
    xml = (
        '<?xml version="1.0" encoding="windows-1252"?><postacert tipo="accettazione">'
        "<intestazione><oggetto>Caffè – €</oggetto></intestazione></postacert>"
    )
    record = daticert.parse(xml.encode("cp1252"))
    assert record.oggetto == "Caffè – €"


def test_utf16_with_bom():
    xml = '<?xml version="1.0" encoding="UTF-16"?><postacert tipo="accettazione"/>'
    assert daticert.parse(xml.encode("utf-16")).tipo == "accettazione"


def test_safexml_limits():
    with pytest.raises(safexml.XmlError, match="deeper"):
        safexml.parse(b"<a>" * 100 + b"</a>" * 100, max_depth=50)
    with pytest.raises(safexml.XmlError, match="elements"):
        safexml.parse(b"<a>" + b"<b/>" * 100 + b"</a>", max_nodes=50)


def test_real_daticert_files_parse_without_surprises():
    folder = real_fixtures("daticert")
    files = sorted(folder.glob("*.xml"))
    assert files
    for path in files:
        record = daticert.parse(path.read_bytes())
        assert record.tipo in daticert.TIPI
        assert record.identificativo and record.timestamp is not None
        unexpected = [p for p in record.problems if "stray text" not in p]
        assert unexpected == [], (path.name, unexpected)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_raise_only_daticert_error(data):
    try:
        daticert.parse(data)
    except daticert.DaticertError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.sampled_from(daticert.TIPI), st.lists(st.emails(), max_size=3))
def test_any_text_round_trips(text, tipo, addresses):
    # XML 1.0 cannot carry most control characters (read as spaces: test_daticert_tolerant.py)
    text = "".join(
        ch
        for ch in text
        if ch in "\t\n" or (ch >= " " and ch not in "\ufffe\uffff" and not 0xD800 <= ord(ch) <= 0xDFFF)
    ).strip()
    record = sample(tipo=tipo, oggetto=text or None, destinatari=tuple(Destinatario(a) for a in addresses))
    assert daticert.parse(daticert.render(record)) == record

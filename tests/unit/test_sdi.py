"""sdi: SdI invoices and notifications found inside a PEC."""

from __future__ import annotations

import base64
import email
import email.policy
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from hypothesis import given, settings
from hypothesis import strategies as st

from pecflow.pec import sdi
from pecflow.pec.sdi import classify_filename, normalise_nome_file, read_file, recognise
from tests.conftest import real_fixtures

PA = "http://www.fatturapa.gov.it/sdi/messaggi/v1.0"
B2B = "http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fattura/messaggi/v1.0"
FATTURE = "http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.2"
DS = "http://www.w3.org/2000/09/xmldsig#"


# --- builders (repo-owned test data) ----------------------------------------------------------------


def element(tag: str, value) -> str:
    if isinstance(value, dict):
        return f"<{tag}>" + "".join(element(k, v) for k, v in value.items()) + f"</{tag}>"
    if isinstance(value, list):
        return "".join(element(tag, v) for v in value)
    return f"<{tag}>{value}</{tag}>"


DIALECTS = {
    "pa-prefixed": lambda root: (
        f'<types:{root} xmlns:types="{PA}" xmlns:ds="{DS}" versione="1.0">',
        f"</types:{root}>",
    ),
    "b2b-prefixed": lambda root: (f'<ns3:{root} xmlns:ns3="{B2B}" versione="1.0">', f"</ns3:{root}>"),
    "b2b-default": lambda root: (f'<{root} xmlns="{B2B}" versione="1.0">', f"</{root}>"),
    "no-namespace": lambda root: (f'<{root} versione="1.0">', f"</{root}>"),
}


def notification(root: str, children: dict, dialect: str = "pa-prefixed", *, signed: bool = False) -> bytes:
    start, end = DIALECTS[dialect](root)
    signature = (
        (
            f'<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo/>'
            "<ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>"
        )
        if signed
        else ""
    )
    body = "".join(element(k, v) for k, v in children.items())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{start}{body}{signature}{end}'.encode()


INVOICE_NAME = "IT01234567890_0A1b2.xml"
BASE = {"IdentificativoSdI": "4242", "NomeFile": INVOICE_NAME}
RIFERIMENTO = {"NumeroFattura": "2024/17", "AnnoFattura": "2024", "PosizioneFattura": "1"}

# root, code, children, expected fields (beyond the identifiers)
CASES = [
    (
        "RicevutaConsegna",
        "RC",
        {
            **BASE,
            "DataOraRicezione": "2024-03-01T10:00:00.000+01:00",
            "DataOraConsegna": "2024-03-01T10:05:00Z",
            "Destinatario": {"Codice": "UFABCD", "Descrizione": "Comune di prova"},
            "MessageId": "991",
            "PecMessageId": "opec123.20240301@pec.example.it",
            "Note": "consegnata",
        },
        {
            "DataOraRicezione": "2024-03-01T10:00:00.000+01:00",
            "DataOraConsegna": "2024-03-01T10:05:00Z",
            "Destinatario/Codice": "UFABCD",
            "Destinatario/Descrizione": "Comune di prova",
            "Note": "consegnata",
        },
    ),
    (
        "NotificaScarto",
        "NS",
        {
            **BASE,
            "DataOraRicezione": "2024-03-01T10:00:00",
            "RiferimentoArchivio": {"IdentificativoSdI": "4000", "NomeFile": "IT01234567890_ARC01.zip"},
            "ListaErrori": {
                "Errore": [
                    {"Codice": "00200", "Descrizione": "File non conforme al formato"},
                    {"Codice": "00305", "Descrizione": "IdCodice non valido"},
                ]
            },
            "MessageId": "992",
        },
        {
            "DataOraRicezione": "2024-03-01T10:00:00",
            "RiferimentoArchivio/IdentificativoSdI": "4000",
            "RiferimentoArchivio/NomeFile": "IT01234567890_ARC01.zip",
        },
    ),
    (
        "RicevutaScarto",
        "NS",
        {
            **BASE,
            "DataOraRicezione": "2024-03-01T10:00:00",
            "ListaErrori": {"Errore": {"Codice": "00404", "Descrizione": "Fattura duplicata"}},
            "MessageId": "993",
        },
        {"DataOraRicezione": "2024-03-01T10:00:00"},
    ),
    (
        "NotificaMancataConsegna",
        "MC",
        {
            **BASE,
            "DataOraRicezione": "2024-03-01T10:00:00",
            "Descrizione": "casella piena",
            "MessageId": "994",
            "PecMessageId": "opec999@pec.example.it",
        },
        {"DataOraRicezione": "2024-03-01T10:00:00", "Descrizione": "casella piena"},
    ),
    (
        "RicevutaImpossibilitaRecapito",
        "MC",
        {
            **BASE,
            "Hash": "ab" * 32,
            "DataOraRicezione": "2024-03-01T10:00:00.000+01:00",
            "DataMessaADisposizione": "2024-03-02",
            "Descrizione": "area riservata",
            "MessageId": "995",
            "PecMessageId": "opec1@pec.example.it",
        },
        {
            "Hash": "ab" * 32,
            "DataMessaADisposizione": "2024-03-02",
            "Descrizione": "area riservata",
            "DataOraRicezione": "2024-03-01T10:00:00.000+01:00",
        },
    ),
    (
        "NotificaEsito",
        "NE",
        {
            **BASE,
            "EsitoCommittente": {
                "IdentificativoSdI": "4242",
                "RiferimentoFattura": RIFERIMENTO,
                "Esito": "EC02",
                "Descrizione": "importo errato",
                "MessageIdCommittente": "77",
            },
            "MessageId": "996",
        },
        {
            "Esito": "EC02",
            "Descrizione": "importo errato",
            "RiferimentoFattura/NumeroFattura": "2024/17",
            "RiferimentoFattura/AnnoFattura": "2024",
            "RiferimentoFattura/PosizioneFattura": "1",
            "MessageIdCommittente": "77",
        },
    ),
    (
        "NotificaDecorrenzaTermini",
        "DT",
        {
            "IdentificativoSdI": "4242",
            "RiferimentoFattura": RIFERIMENTO,
            "NomeFile": INVOICE_NAME,
            "Descrizione": "termini decorsi",
            "MessageId": "997",
        },
        {"Descrizione": "termini decorsi"},
    ),
    (
        "AttestazioneTrasmissioneFattura",
        "AT",
        {
            **BASE,
            "DataOraRicezione": "2024-03-01T10:00:00",
            "Destinatario": {"Codice": "UFABCD"},
            "MessageId": "998",
            "HashFileOriginale": "cd" * 32,
        },
        {"HashFileOriginale": "cd" * 32, "Destinatario/Codice": "UFABCD"},
    ),
    (
        "MetadatiInvioFile",
        "MT",
        {
            **BASE,
            "CodiceDestinatario": "ABC123",
            "Formato": "FPA12",
            "TentativiInvio": "2",
            "MessageId": "999",
        },
        {"CodiceDestinatario": "ABC123", "Formato": "FPA12", "TentativiInvio": "2"},
    ),
    (
        "FileMetadati",
        "MT",
        {**BASE, "Formato": "FPR12", "TentativiInvio": "1", "MessageId": "1000"},
        {"Formato": "FPR12", "TentativiInvio": "1"},
    ),
    (
        "NotificaEsitoCommittente",
        "EC",
        {
            "IdentificativoSdI": "4242",
            "RiferimentoFattura": RIFERIMENTO,
            "Esito": "EC01",
            "Descrizione": "ok",
            "MessageIdCommittente": "78",
        },
        {"Esito": "EC01", "Descrizione": "ok", "RiferimentoFattura/NumeroFattura": "2024/17"},
    ),
    (
        "ScartoEsitoCommittente",
        "SE",
        {
            "IdentificativoSdI": "4242",
            "RiferimentoFattura": RIFERIMENTO,
            "Scarto": "EN01",
            "MessageId": "1001",
            "MessageIdCommittente": "78",
        },
        {"Scarto": "EN01", "MessageIdCommittente": "78"},
    ),
]


@pytest.mark.parametrize("dialect", list(DIALECTS))
@pytest.mark.parametrize("root,code,children,expected", CASES, ids=[c[0] for c in CASES])
def test_notification_in_every_dialect(root, code, children, expected, dialect):
    filename = f"IT01234567890_0A1b2_{code}_001.xml"
    found = read_file(filename, notification(root, children, dialect, signed=True))
    assert found is not None
    assert (found.role, found.type) == ("notification", code)
    assert found.identificativo_sdi == "4242"
    assert found.nome_file == children.get("NomeFile")
    assert found.message_id == children.get("MessageId")
    assert found.pec_message_id == children.get("PecMessageId")
    assert found.fields["versione"] == "1.0"
    for key, value in expected.items():
        assert found.fields[key] == value, key
    assert found.problems == ()
    json.dumps(found.to_dict())


def test_errors_of_a_scarto():
    found = read_file("IT01234567890_0A1b2_NS_001.xml", notification(*CASES[1][:1], CASES[1][2]))
    assert found.errors == (("00200", "File non conforme al formato"), ("00305", "IdCodice non valido"))
    assert found.to_dict()["errors"][1] == {"codice": "00305", "descrizione": "IdCodice non valido"}


def test_content_is_recognised_under_any_name():
    data = notification("RicevutaConsegna", {**BASE, "MessageId": "1"}, "b2b-prefixed")
    for name in ("ricevuta.xml", "allegato", "IT01234567890_0A1b2.xml"):
        found = read_file(name, data)
        assert found is not None and found.type == "RC"
    assert read_file("ricevuta.xml", data).problems == ()
    assert any("file name says invoice" in p for p in read_file("IT01234567890_0A1b2.xml", data).problems)


def test_content_wins_over_the_name():
    data = notification(
        "NotificaScarto",
        {**BASE, "MessageId": "1", "ListaErrori": {"Errore": {"Codice": "1", "Descrizione": "x"}}},
    )
    found = read_file("IT01234567890_0A1b2_RC_001.xml", data)
    assert found.type == "NS"
    assert "IT01234567890_0A1b2_RC_001.xml: the file name says RC, the content is NS" in found.problems


def test_unknown_code_in_the_name_is_tolerated():
    assert classify_filename("IT01234567890_0A1b2_ZZ_001.xml") == ("notification", "ZZ")
    found = read_file("IT01234567890_0A1b2_ZZ_001.xml", b"not xml at all")
    assert (found.role, found.type) == ("notification", "ZZ")
    assert any("unknown notification type code 'ZZ'" in p for p in found.problems)
    assert any("not well-formed" in p for p in found.problems)


def test_name_prefix_and_nome_file_disagree():
    data = notification(
        "RicevutaConsegna",
        {"IdentificativoSdI": "1", "NomeFile": "IT99999999999_00001.xml", "MessageId": "1"},
    )
    found = read_file("IT01234567890_0A1b2_RC_001.xml", data)
    assert any("does not match NomeFile" in p for p in found.problems)
    matching = read_file("IT99999999999_00001_RC_001.xml", data)
    assert matching.problems == ()
    # the PA examples name the signed file: NomeFile ends .xml.p7m, the prefix still matches
    signed_name = notification(
        "RicevutaConsegna",
        {"IdentificativoSdI": "1", "NomeFile": "IT99999999999_00001.XML.P7M", "MessageId": "1"},
    )
    assert read_file("IT99999999999_00001_RC_001.xml", signed_name).problems == ()


def test_missing_identifiers_are_problems():
    found = read_file("IT01234567890_0A1b2_RC_001.xml", notification("RicevutaConsegna", {"MessageId": "1"}))
    assert found.type == "RC"
    assert any("<IdentificativoSdI> missing" in p for p in found.problems)
    assert any("<NomeFile> missing" in p for p in found.problems)


def test_bad_esito_and_scarto_values():
    ne = read_file("x.xml", notification("NotificaEsito", {**BASE, "EsitoCommittente": {"Esito": "EC09"}}))
    assert any("EC09" in p for p in ne.problems)
    se = read_file(
        "x.xml", notification("ScartoEsitoCommittente", {"IdentificativoSdI": "1", "Scarto": "EN7"})
    )
    assert any("EN7" in p for p in se.problems)


def test_long_field_is_cut():
    found = read_file("x.xml", notification("NotificaMancataConsegna", {**BASE, "Descrizione": "d" * 5000}))
    assert len(found.fields["Descrizione"]) == sdi.MAX_FIELD_CHARS
    assert any("Descrizione longer than" in p for p in found.problems)


def test_not_sdi():
    assert read_file("daticert.xml", b'<?xml version="1.0"?><postacert tipo="accettazione"/>') is None
    assert read_file("foto.png", b"\x89PNG\r\n") is None
    assert read_file("note.xml", b"<RicevutaConsegnaX/>") is None
    assert read_file("", b"") is None


# --- file names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,expected",
    [
        ("IT01234567890_11111.xml", ("invoice", None)),
        ("IT01234567890_11111.xml.p7m", ("invoice", None)),
        ("it01234567890_aB1.XML.P7M", ("invoice", None)),
        ("IT01234567890_11111.zip", ("invoice", None)),
        ("DE12_1.xml", ("invoice", None)),
        ("FR" + "A" * 28 + "_12345.xml", ("invoice", None)),
        ("IT01234567890_11111_RC_001.xml", ("notification", "RC")),
        ("IT01234567890_11111_ns_1.xml", ("notification", "NS")),
        ("IT01234567890_11111_MT_A2.xml.p7m", ("notification", "MT")),
        ("some/dir/IT01234567890_11111_DT_001.xml", ("notification", "DT")),
        ("  IT01234567890_11111.xml ", ("invoice", None)),
        ("IT01234567890_123456.xml", None),  # progressive of 6
        ("FR" + "A" * 29 + "_12345.xml", None),
        ("I_11111.xml", None),
        ("IT01234567890_11111.pdf", None),
        ("IT01234567890_11111.xml.p7m.txt", None),
        ("IT01234567890_11111_RC_0001.xml", None),
        ("IT01234567890_11111_RC_001.zip", None),
        ("IT0123_4567890_11111.xml", None),
        ("fattura.xml", None),
        ("", None),
    ],
)
def test_classify_filename(name, expected):
    assert classify_filename(name) == expected


@pytest.mark.parametrize(
    "name,expected",
    [
        ("IT01234567890_11111.xml.p7m", "IT01234567890_11111.xml"),
        ("IT01234567890_11111.XML.P7M", "IT01234567890_11111.xml"),
        ("IT01234567890_11111.Xml", "IT01234567890_11111.xml"),
        ("IT01234567890_11111.xml", "IT01234567890_11111.xml"),
        ("IT01234567890_11111.zip", "IT01234567890_11111.zip"),
        ("IT06363391001_ynFj2.xml.p7m.p7m", "IT06363391001_ynFj2.xml"),
        (" IT01234567890_11111.xml.p7m ", "IT01234567890_11111.xml"),
        ("noextension", "noextension"),
    ],
)
def test_normalise_nome_file(name, expected):
    assert normalise_nome_file(name) == expected


# --- invoices ---------------------------------------------------------------------------------------


def body(numero: str, data: str, totale: str | None, tipo: str = "TD01") -> dict:
    documento = {"TipoDocumento": tipo, "Divisa": "EUR", "Data": data, "Numero": numero}
    if totale is not None:
        documento["ImportoTotaleDocumento"] = totale
    return {
        "DatiGenerali": {"DatiGeneraliDocumento": documento},
        "DatiBeniServizi": {"DettaglioLinee": {"NumeroLinea": "1", "Descrizione": "consulenza"}},
    }


def invoice_xml(versione: str = "FPA12") -> bytes:
    header = {
        "DatiTrasmissione": {
            "IdTrasmittente": {"IdPaese": "IT", "IdCodice": "01234567890"},
            "ProgressivoInvio": "0A1b2",
            "FormatoTrasmissione": versione,
            "CodiceDestinatario": "UFABCD",
        },
        "CedentePrestatore": {
            "DatiAnagrafici": {
                "IdFiscaleIVA": {"IdPaese": "IT", "IdCodice": "01234567890"},
                "Anagrafica": {"Denominazione": "Fornitore Esempio S.r.l. \u00e8"},
                "RegimeFiscale": "RF01",
            }
        },
        "CessionarioCommittente": {
            "DatiAnagrafici": {
                "IdFiscaleIVA": {"IdPaese": "DE", "IdCodice": "123456789"},
                "CodiceFiscale": "RSSMRA80A01H501U",
                "Anagrafica": {"Nome": "Mario", "Cognome": "Rossi"},
            }
        },
    }
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<p:FatturaElettronica versione="{versione}" '
        f'xmlns:p="{FATTURE}">'
        + element("FatturaElettronicaHeader", header)
        + element("FatturaElettronicaBody", body("17", "2024-03-01", "122.00"))
        + element("FatturaElettronicaBody", body("18", "2024-03-02", None, "TD04"))
        + "</p:FatturaElettronica>"
    )
    return xml.encode("utf-8")


def p7m_of(signer, content: bytes) -> bytes:
    cert, key = signer
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


@pytest.fixture(scope="module")
def signed_invoice(signer) -> bytes:
    return p7m_of(signer, invoice_xml())


EXPECTED_PARTIES = {
    "versione": "FPA12",
    "CedentePrestatore/IdFiscaleIVA": "IT01234567890",
    "CedentePrestatore/Denominazione": "Fornitore Esempio S.r.l. \u00e8",
    "CessionarioCommittente/IdFiscaleIVA": "DE123456789",
    "CessionarioCommittente/CodiceFiscale": "RSSMRA80A01H501U",
    "CessionarioCommittente/Denominazione": "Mario Rossi",
}
EXPECTED_SUMMARIES = (
    sdi.InvoiceSummary("TD01", "EUR", "2024-03-01", "17", "122.00"),
    sdi.InvoiceSummary("TD04", "EUR", "2024-03-02", "18", None),
)


def check_invoice(found: sdi.SdiFile) -> None:
    assert (found.role, found.type) == ("invoice", "invoice")
    assert found.fields == EXPECTED_PARTIES
    assert found.invoices == EXPECTED_SUMMARIES
    assert found.identificativo_sdi is None and found.errors == ()


def test_invoice_xml():
    found = read_file(INVOICE_NAME, invoice_xml())
    check_invoice(found)
    assert found.problems == ()
    assert found.to_dict()["invoices"][0] == {
        "tipo_documento": "TD01",
        "divisa": "EUR",
        "data": "2024-03-01",
        "numero": "17",
        "importo_totale_documento": "122.00",
        "scadenze": [],
    }


def test_invoice_p7m(signer):
    found = read_file("IT01234567890_0A1b2.xml.p7m", p7m_of(signer, invoice_xml()))
    check_invoice(found)
    assert found.problems == ()


def test_invoice_p7m_as_base64_text(signer):
    text = base64.encodebytes(p7m_of(signer, invoice_xml()))
    found = read_file("IT01234567890_0A1b2.xml.p7m", text)
    check_invoice(found)
    assert found.problems == ()


def test_invoice_p7m_signed_twice(signer):
    found = read_file("IT01234567890_0A1b2.xml.p7m", p7m_of(signer, p7m_of(signer, invoice_xml())))
    check_invoice(found)


def test_p7m_whose_content_is_base64(signer):
    found = read_file("IT01234567890_0A1b2.xml.p7m", p7m_of(signer, base64.encodebytes(invoice_xml())))
    check_invoice(found)
    assert any("base64" in p for p in found.problems)


def test_invoice_p7m_under_a_plain_name(signer):
    found = read_file("fattura.xml.p7m", p7m_of(signer, invoice_xml()))
    check_invoice(found)


def test_plain_xml_named_p7m():
    found = read_file("IT01234567890_0A1b2.xml.p7m", invoice_xml())
    check_invoice(found)
    assert found.problems == ("IT01234567890_0A1b2.xml.p7m: named .p7m but holds plain XML (not signed)",)


def test_broken_p7m_is_a_problem(signer):
    data = p7m_of(signer, invoice_xml())[:200]
    found = read_file("IT01234567890_0A1b2.xml.p7m", data)
    assert (found.role, found.type, found.invoices) == ("invoice", "invoice", ())
    assert any("unreadable p7m" in p for p in found.problems)
    assert read_file("contratto.pdf.p7m", data) is None


def test_broken_invoice_xml_is_still_an_invoice():
    broken = invoice_xml().replace(b"<p:FatturaElettronica ", b"<p:Fattura Elettronica ", 1)
    found = read_file(INVOICE_NAME, broken)
    assert (found.role, found.type, found.invoices) == ("invoice", "invoice", ())
    assert any("not well-formed" in p for p in found.problems)


def test_zip_invoice_is_not_opened():
    found = read_file("IT01234567890_0A1b2.zip", b"PK\x03\x04" + b"\x00" * 40)
    assert (found.role, found.type) == ("invoice", "invoice")
    assert found.problems == ("IT01234567890_0A1b2.zip: zip archive of invoices, not inspected",)


def test_unknown_invoice_versione():
    found = read_file(INVOICE_NAME, invoice_xml("FPX99"))
    assert any("unknown invoice versione 'FPX99'" in p for p in found.problems)


def test_invoice_without_header_or_body():
    found = read_file(INVOICE_NAME, b'<FatturaElettronica versione="FPR12"/>')
    assert found.type == "invoice"
    assert any("FatturaElettronicaHeader" in p for p in found.problems)
    assert any("FatturaElettronicaBody" in p for p in found.problems)


# --- recognise ----------------------------------------------------------------------------------------


def attachments(*items):
    return [(name, (lambda data=data: data)) for name, data in items]


MT_FILE = (
    "IT01234567890_0A1b2_MT_001.xml",
    notification(
        "FileMetadati", {**BASE, "Formato": "FPA12", "TentativiInvio": "1", "MessageId": "5"}, "b2b-prefixed"
    ),
)


def test_recognise_invoice_with_metadata(signer):
    info = recognise(
        attachments(
            ("IT01234567890_0A1b2.xml.p7m", p7m_of(signer, invoice_xml())), MT_FILE, ("testo.txt", b"hello")
        )
    )
    assert info.type == "MT"
    assert (info.identificativo_sdi, info.nome_file, info.pec_message_id) == ("4242", INVOICE_NAME, None)
    assert [f.type for f in info.files] == ["invoice", "MT"]
    assert info.invoices == EXPECTED_SUMMARIES
    assert info.problems == ()
    assert json.loads(json.dumps(info.to_dict()))["files"][0]["invoices"][1]["numero"] == "18"


def test_recognise_invoice_alone():
    info = recognise(attachments((INVOICE_NAME, invoice_xml())))
    assert info.type == "invoice"
    assert (info.identificativo_sdi, info.nome_file, info.pec_message_id) == (None, None, None)


def test_recognise_notification():
    rc = notification("RicevutaConsegna", CASES[0][2], "pa-prefixed")
    info = recognise(attachments(("IT01234567890_0A1b2_RC_001.xml", rc), ("testo.txt", b"x")))
    assert (info.type, info.identificativo_sdi, info.nome_file, info.pec_message_id) == (
        "RC",
        "4242",
        INVOICE_NAME,
        "opec123.20240301@pec.example.it",
    )


def test_recognise_metadata_for_another_invoice():
    info = recognise(attachments(MT_FILE, ("IT01234567890_99999.xml", invoice_xml())))
    assert info.type == "MT"
    assert any("matches none of the invoice files" in p for p in info.problems)


def test_recognise_metadata_without_invoice():
    info = recognise(attachments(MT_FILE))
    assert info.type == "MT"
    assert "metadata file (MT) without its invoice" in info.problems


def test_recognise_nothing():
    assert recognise([]) is None
    assert recognise(attachments(("daticert.xml", b"<postacert/>"), ("smime.p7s", b"\x30\x00"))) is None


def test_recognise_reads_only_candidates():
    calls = []

    def content(name, data):
        def get():
            calls.append(name)
            return data

        return name, get

    big = b"<RicevutaConsegna>" + b" " * (sdi.MAX_PROBE_BYTES + 1) + b"</RicevutaConsegna>"
    info = recognise(
        [
            content("foto.jpg", b"\xff\xd8"),
            content("lettera.pdf", b"%PDF"),
            content("postacert.eml", b"From: x"),
            content("grande.xml", big),
            content("daticert.xml", b"<postacert/>"),
        ]
    )
    assert info is None
    assert calls == ["grande.xml", "daticert.xml"]


def test_recognise_survives_a_broken_attachment():
    def boom():
        raise RuntimeError("bad base64")

    info = recognise(
        [
            ("IT01234567890_0A1b2_RC_001.xml", boom),
            ("x.xml", boom),
            (None, boom),
            "junk",
            ("IT01234567890_0A1b2.xml", invoice_xml),
        ]
    )
    assert [f.type for f in info.files] == ["RC", "invoice"]
    assert any("content could not be read (RuntimeError: bad base64)" in p for p in info.problems)


def test_recognise_several_notification_types():
    rc = notification("RicevutaConsegna", {**BASE, "MessageId": "1"})
    mc = notification("NotificaMancataConsegna", {**BASE, "MessageId": "2"})
    info = recognise(
        attachments(("IT01234567890_0A1b2_RC_001.xml", rc), ("IT01234567890_0A1b2_MC_001.xml", mc))
    )
    assert info.type == "RC"
    assert "several SdI notification types in one message: MC, RC" in info.problems


# --- hostile XML ----------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE RicevutaConsegna [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<RicevutaConsegna><IdentificativoSdI>1</IdentificativoSdI><Note>&lol9;</Note></RicevutaConsegna>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE RicevutaConsegna [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<RicevutaConsegna><IdentificativoSdI>1</IdentificativoSdI><Note>&xxe;</Note></RicevutaConsegna>
"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE RicevutaConsegna SYSTEM "file:///etc/passwd">
<RicevutaConsegna><IdentificativoSdI>1</IdentificativoSdI><Note>&xxe;</Note></RicevutaConsegna>
"""


@pytest.mark.parametrize("name", ["IT01234567890_0A1b2_RC_001.xml", "bomb.xml"])
@pytest.mark.parametrize("data", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_entity_attacks_are_rejected(name, data):
    found = read_file(name, data)
    assert found is not None and found.type == "RC"
    assert found.identificativo_sdi is None and found.fields == {}
    assert any("not allowed" in p for p in found.problems)
    info = recognise(attachments((name, data)))
    assert info.type == "RC" and any("not allowed" in p for p in info.problems)


def test_external_dtd_is_never_fetched():
    found = read_file("IT01234567890_0A1b2_RC_001.xml", EXTERNAL_DTD)
    assert found is not None and found.type == "RC"
    assert "root:" not in json.dumps(found.to_dict())


def test_deep_nesting_is_a_problem():
    deep = b"<RicevutaConsegna>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</RicevutaConsegna>"
    found = read_file("IT01234567890_0A1b2_RC_001.xml", deep)
    assert any("deeper" in p for p in found.problems)


def test_oversized_file_is_not_read():
    big = b"<RicevutaConsegna>" + b" " * sdi.MAX_FILE_BYTES + b"</RicevutaConsegna>"
    found = read_file("IT01234567890_0A1b2_RC_001.xml", big)
    assert found.type == "RC" and any("limit" in p for p in found.problems)
    assert read_file("grande.xml", big) is None


# --- never raise -----------------------------------------------------------------------------------------

SDI_NAMES = st.one_of(
    st.text(max_size=40),
    st.from_regex(
        r"[A-Za-z]{2}[A-Za-z0-9]{2,28}_[A-Za-z0-9]{1,5}\.(xml|xml\.p7m|zip|XML\.P7M)", fullmatch=True
    ),
    st.from_regex(r"[A-Z]{2}[0-9]{11}_[A-Z0-9]{5}_[A-Z]{2}_[0-9]{3}\.xml", fullmatch=True),
    st.sampled_from(["x.xml", "x.p7m", "daticert.xml", ""]),
)
XMLISH = st.one_of(
    st.binary(max_size=400),
    st.builds(
        lambda root, inner: f"<{root}>{inner}</{root}>".encode(),
        st.sampled_from(sorted(sdi.ROOTS)),
        st.text(max_size=200),
    ),
    st.builds(
        lambda a, b: notification(CASES[0][0], CASES[0][2])[a:b], st.integers(0, 600), st.integers(0, 600)
    ),
)


def _never_raises(name, data):
    found = read_file(name, data)
    if found is not None:
        assert found.role in ("invoice", "notification")
        assert not any("unexpected error" in p for p in found.problems)
        json.dumps(found.to_dict())
    info = recognise([(name, lambda: data)])
    if info is not None:
        json.dumps(info.to_dict())


@settings(max_examples=300, deadline=None)
@given(SDI_NAMES, XMLISH)
def test_random_names_and_bytes_never_raise(name, data):
    _never_raises(name, data)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_mutated_p7m_never_raises(signed_invoice, data):
    sample = bytearray(signed_invoice)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(sample) - 1))
        sample[pos] = data.draw(st.integers(0, 255))
    _never_raises("IT01234567890_0A1b2.xml.p7m", bytes(sample[: data.draw(st.integers(0, len(sample)))]))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_classify_and_normalise_never_raise(name):
    result = classify_filename(name)
    assert result is None or result[0] in ("invoice", "notification")
    assert isinstance(normalise_nome_file(name), str)


# --- real samples (third-party, read from the founders' kit, skipped when absent) --------------------------

# fixture file -> (code, IdentificativoSdI, NomeFile, MessageId, PecMessageId, some fields)
REAL_SDI = {
    "testsdi__IT01234567890_11111_RC_001.xml": (
        "RC",
        "111",
        "IT01234567890_11111.xml.p7m",
        "123456",
        None,
        {
            "DataOraRicezione": "2013-06-06T12:00:00Z",
            "DataOraConsegna": "2013-06-06T12:01:00Z",
            "Destinatario/Codice": "AAA111",
            "Destinatario/Descrizione": "Amministrazione di prova",
            "IntermediarioConDupliceRuolo": "Si",
        },
    ),
    "testsdi__IT01234567890_11111_NS_001.xml": (
        "NS",
        "111",
        "IT01234567890_11111.xml.p7m",
        "123456",
        None,
        {
            "DataOraRicezione": "2013-06-06T12:00:00Z",
            "RiferimentoArchivio/IdentificativoSdI": "100",
            "RiferimentoArchivio/NomeFile": "IT01234567890_11111.zip",
            "Note": "Note",
        },
    ),
    "testsdi__IT01234567890_11111_MC_001.xml": (
        "MC",
        "111",
        "IT01234567890_11111.xml.p7m",
        "123456",
        None,
        {"DataOraRicezione": "2013-06-06T12:00:00", "Descrizione": "Notifica di esempio"},
    ),
    "testsdi__IT01234567890_11111_NE_001.xml": (
        "NE",
        "111",
        "IT01234567890_11111.xml.p7m",
        "123456",
        None,
        {
            "Esito": "EC01",
            "Descrizione": "Notifica di esempio",
            "RiferimentoFattura/NumeroFattura": "1111",
            "RiferimentoFattura/AnnoFattura": "2013",
            "RiferimentoFattura/PosizioneFattura": "2",
            "MessageIdCommittente": "123456",
            "Note": "Notifica di esito di esempio",
        },
    ),
    "testsdi__IT01234567890_11111_DT_001.xml": (
        "DT",
        "111",
        "IT01234567890_11111.xml.p7m",
        "123456",
        None,
        {"Descrizione": "Notifica di esempio"},
    ),
    "testsdi__IT01234567890_11111_AT_001.xml": (
        "AT",
        "111",
        "IT01234567890_11111.xml.p7m",
        "123456",
        None,
        {
            "HashFileOriginale": "2c1f3a240a056d9537a8608fed310812ef7b1b7a410d0152f5c9c9e93486ae44",
            "Destinatario/Codice": "AAAAAA",
        },
    ),
    "testsdi__IT01234567890_11111_EC_001.xml": (
        "EC",
        "111",
        None,
        None,
        None,
        {
            "Esito": "EC01",
            "Descrizione": "Esempio",
            "RiferimentoFattura/NumeroFattura": "1111",
            "MessageIdCommittente": "123456",
        },
    ),
    "testsdi__IT01234567890_11111_SE_001.xml": (
        "SE",
        "111",
        None,
        "123456",
        None,
        {"Scarto": "EN00", "MessageIdCommittente": "123456"},
    ),
    "testsdi__IT01234567890_11111_MT_001.xml": (
        "MT",
        "111",
        "IT01234567890_11111.xml.p7m",
        "123456",
        None,
        {"CodiceDestinatario": "AAA111", "Formato": "SDI10", "TentativiInvio": "1"},
    ),
    "oca__IT03339130126_00009_RC_003.xml": (
        "RC",
        "6782414",
        "IT03339130126_00009.xml",
        "1269788243",
        None,
        {
            "DataOraRicezione": "2018-11-13T16:47:26.000+01:00",
            "DataOraConsegna": "2018-11-13T16:47:32.000+01:00",
        },
    ),
    "oca__IT14627831002_02621_MC_001.xml": (
        "MC",
        "141107829",
        "IT14627831002_02621.xml",
        "1122874802",
        "opec2891.20190104200105.26626.212.1.62@pec.aruba.it",
        {
            "Hash": "91e8b555478dfe9b2ea8fe6223e63ebcbc15f4f95a123d908de14fdb97228c1f",
            "DataMessaADisposizione": "2019-01-05",
            "DataOraRicezione": "2019-01-04T20:01:05.000+01:00",
        },
    ),
    "oca__IT02652600210_00007_MT_002.xml": (
        "MT",
        "7339338",
        "IT02652600210_00007.xml",
        "1809491993",
        None,
        {"Formato": "FPR12", "TentativiInvio": "1"},
    ),
}


def test_real_sdi_folder_is_fully_covered():
    folder = real_fixtures("sdi")
    assert sorted(p.name for p in folder.glob("*.xml")) == sorted(REAL_SDI)


@pytest.mark.parametrize("fixture", sorted(REAL_SDI))
def test_real_sdi_file(fixture):
    path = real_fixtures("sdi") / fixture
    if not path.exists():
        pytest.skip(f"{fixture} not in this copy of the samples")
    code, identificativo, nome_file, message_id, pec_message_id, fields = REAL_SDI[fixture]
    name = fixture.split("__", 1)[1]  # the kit prefixes the source; the SdI name follows
    assert classify_filename(name) == ("notification", code)
    found = read_file(name, path.read_bytes())
    assert (found.role, found.type) == ("notification", code)
    assert (found.identificativo_sdi, found.nome_file, found.message_id, found.pec_message_id) == (
        identificativo,
        nome_file,
        message_id,
        pec_message_id,
    )
    for key, value in fields.items():
        assert found.fields[key] == value, key
    assert found.problems == ()


def test_real_scarto_errors():
    found = read_file(
        "IT01234567890_11111_NS_001.xml",
        (real_fixtures("sdi") / "testsdi__IT01234567890_11111_NS_001.xml").read_bytes(),
    )
    assert found.errors == (("00100", "Certificato di firma scaduto"),)


def test_real_b2b_mc_description():
    found = read_file(
        "IT14627831002_02621_MC_001.xml",
        (real_fixtures("sdi") / "oca__IT14627831002_02621_MC_001.xml").read_bytes(),
    )
    assert found.fields["Descrizione"].startswith("La fattura è disponibile in consultazione")
    assert "Note" not in found.fields  # <Note/> is empty


def real_attachments(eml: str):
    """The named leaf parts of a real PEC, walking into postacert.eml, as recognise() gets them."""
    raw = (real_fixtures("pec") / eml).read_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    return [
        (part.get_filename(), (lambda part=part: part.get_payload(decode=True)))
        for part in message.walk()
        if part.get_filename() and not part.is_multipart()
    ]


def test_real_rc_envelope():
    info = recognise(real_attachments("oca__sdi_busta_RC_ricevuta-consegna_6782414.eml"))
    assert (info.type, info.identificativo_sdi, info.nome_file, info.pec_message_id) == (
        "RC",
        "6782414",
        "IT03339130126_00009.xml",
        None,
    )
    assert [f.filename for f in info.files] == ["IT03339130126_00009_RC_003.xml"]
    assert info.problems == ()


def test_real_mc_envelope_without_daticert():
    info = recognise(real_attachments("oca__sdi_busta_MC_mancata-consegna_no-daticert.eml"))
    assert (info.type, info.identificativo_sdi) == ("MC", "141107829")
    assert info.nome_file == "IT14627831002_02621.xml"
    assert info.pec_message_id == "opec2891.20190104200105.26626.212.1.62@pec.aruba.it"
    assert info.problems == ()


def test_real_invoice_with_metadata():
    info = recognise(real_attachments("oca__sdi_busta_MT_invio-file_7339338.eml"))
    assert (info.type, info.identificativo_sdi) == ("MT", "7339338")
    assert info.nome_file == "IT02652600210_00007.xml"
    invoice = next(f for f in info.files if f.role == "invoice")
    assert invoice.filename == "IT02652600210_00007.xml"
    assert invoice.fields["versione"] == "FPR12"
    assert invoice.fields["CedentePrestatore/IdFiscaleIVA"] == "IT02652600210"
    assert invoice.fields["CedentePrestatore/Denominazione"] == "My Company"
    assert invoice.fields["CessionarioCommittente/IdFiscaleIVA"] == "IT03339130126"
    assert invoice.fields["CessionarioCommittente/Denominazione"] == "Acme spa"
    assert info.invoices == (
        sdi.InvoiceSummary(
            "TD01", "EUR", "2018-12-06", "FATT/2018/0003", "997.96", (("2018-12-21", "997.96"),)
        ),
    )
    assert info.problems == ()


def test_real_invoice_with_broken_xml():
    info = recognise(real_attachments("oca__sdi_busta_MT_invio-file_7339338_broken-xml.eml"))
    assert (info.type, info.identificativo_sdi) == ("MT", "7339338")
    invoice = next(f for f in info.files if f.role == "invoice")
    assert (invoice.type, invoice.invoices) == ("invoice", ())
    assert any(p.startswith("IT02652600210_00007.xml: not well-formed XML") for p in invoice.problems)
    assert invoice.problems[0] in info.problems


def test_real_invoice_as_base64_p7m():
    info = recognise(real_attachments("oca__sdi_busta_MT_invio-file_7339338_base64-p7m.eml"))
    assert (info.type, info.identificativo_sdi) == ("MT", "7339338")
    assert info.nome_file == "IT01234567890_FPR04.xml.p7m"
    invoice = next(f for f in info.files if f.role == "invoice")
    assert invoice.filename == "IT01234567890_FPR04.xml.p7m"
    assert invoice.fields["CedentePrestatore/IdFiscaleIVA"] == "IT02780790107"
    assert invoice.fields["CessionarioCommittente/CodiceFiscale"] == "03533590174"
    assert [(s.numero, s.data) for s in info.invoices] == [("123", "2014-12-18"), ("456", "2014-12-20")]
    assert invoice.problems == ()
    # the test author swapped the invoice but kept the metadata file's name
    assert info.problems == (
        "IT02652600210_00007_MT_002.xml: file name prefix 'IT02652600210_00007' "
        "does not match NomeFile 'IT01234567890_FPR04.xml.p7m'",
    )


@pytest.mark.parametrize(
    "eml",
    [
        "biagioT__accettazione.eml",
        "gopec__busta-trasporto_email_3.eml",
        "mlarchive__namirial_busta-trasporto_via-mailman.eml",
        "biagioT__non-pec_DSN_failure_negative-control.eml",
    ],
)
def test_real_non_sdi_messages(eml):
    assert recognise(real_attachments(eml)) is None

"""The classifier on the repo's own fixtures: every kind, every receipt type, every SdI file,
all built by pecflow's message builder, with every extracted field checked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from local.pecbuild import builder, sdi_builder
from local.pecbuild import corpus as pecmix
from pecflow import cli
from pecflow.pec import kinds, message
from pecflow.pec.daticert import Destinatario

ROME = timezone(timedelta(hours=1))
WHEN = datetime(2026, 3, 2, 10, 30, tzinfo=ROME)
FIELDS = (
    "kind",
    "ref_message_id",
    "original_message_id",
    "identificativo",
    "receipt_type",
    "provider",
    "delivered_to",
    "error",
    "error_detail",
    "message_id",
    "subject",
)


@pytest.fixture(scope="module")
def corpus():
    return pecmix.corpus(400, seed=42)


def test_every_field_of_every_corpus_message(corpus):
    for sample in corpus:
        result = message.parse(sample.raw)
        got = {name: getattr(result, name) for name in FIELDS}
        got["sdi_type"] = result.sdi.type if result.sdi else None
        got["postacert"] = result.postacert is not None
        expected = {k: sample.expected[k] for k in got}
        assert got == expected, sample.name
        assert result.problems == [], (sample.name, result.problems)
        assert result.signature == ("none" if sample.expected["kind"] == kinds.POSTA_ORDINARIA else "present")


def test_corpus_covers_every_kind_and_receipt_type(corpus):
    seen_kinds = {s.expected["kind"] for s in corpus}
    assert seen_kinds == set(kinds.ALL) - {kinds.MALFORMED}
    consegne = {s.expected["receipt_type"] for s in corpus if s.expected["kind"] == kinds.AVVENUTA_CONSEGNA}
    assert consegne == {"completa", "breve", "sintetica"}
    assert {"MT", "RC"} <= {s.expected["sdi_type"] for s in corpus}


def _original(**kw):
    fields = dict(
        mittente="ufficio@pec.azienda.example",
        destinatari=["cliente@pec.cliente.example"],
        oggetto="Contratto n. 7 – firmato",
        testo="In allegato il contratto.\n",
        allegati=[("contratto.pdf", "application/pdf", b"%PDF-1.4 contratto" * 50)],
        message_id="<contratto-7@pec.azienda.example>",
        data=WHEN,
    )
    fields.update(kw)
    return builder.messaggio_originale(**fields)


ID = "opec99.20260302103000.1.1.1.1@pec.simulato.test"
DEST = [Destinatario("cliente@pec.cliente.example"), Destinatario("privato@gmail.example", "esterno")]


@pytest.mark.parametrize(
    "tipo,options,expected",
    [
        ("accettazione", {}, {"error": None, "delivered_to": None}),
        ("non-accettazione", {"errore_esteso": "5.7.0 - destinatari in copia nascosta"}, {"error": "altro"}),
        ("non-accettazione", {"virus": True}, {"error": "virus", "virus": True}),
        (
            "presa-in-carico",
            {"ricezione": ("cliente@pec.cliente.example",)},
            {"covered": ["cliente@pec.cliente.example"]},
        ),
        (
            "avvenuta-consegna",
            {"consegna": "cliente@pec.cliente.example", "tipo_ricevuta": "completa"},
            {"receipt_type": "completa", "delivered_to": "cliente@pec.cliente.example"},
        ),
        (
            "avvenuta-consegna",
            {"consegna": "cliente@pec.cliente.example", "tipo_ricevuta": "breve"},
            {"receipt_type": "breve"},
        ),
        (
            "avvenuta-consegna",
            {"consegna": "cliente@pec.cliente.example", "tipo_ricevuta": "sintetica"},
            {"receipt_type": "sintetica"},
        ),
        (
            "errore-consegna",
            {"consegna": "cliente@pec.cliente.example", "errore": "no-dest"},
            {"error": "no-dest", "permanent_error": True},
        ),
        ("errore-consegna", {"consegna": "cliente@pec.cliente.example", "virus": True}, {"virus": True}),
        (
            "preavviso-errore-consegna",
            {"consegna": "cliente@pec.cliente.example"},
            {"permanent_error": False},
        ),
        (
            "preavviso-errore-consegna",
            {
                "consegna": "cliente@pec.cliente.example",
                "errore_esteso": "5.4.1 - non consegnato entro 24 ore",
            },
            {"permanent_error": True},
        ),
        ("rilevazione-virus", {"consegna": "cliente@pec.cliente.example"}, {"virus": True}),
    ],
)
def test_each_receipt_kind(tipo, options, expected):
    original = _original(tipo_ricevuta=options.pop("tipo_ricevuta", None))
    raw = builder.ricevuta(
        tipo, original, gestore=builder.SIMULATO, identificativo=ID, data=WHEN, destinatari=DEST, **options
    )
    result = message.parse(raw)
    assert result.kind == tipo
    assert result.problems == []
    assert result.ref_message_id == "<contratto-7@pec.azienda.example>"
    assert result.identificativo == ID
    assert result.provider == builder.SIMULATO.name
    assert result.sender == "ufficio@pec.azienda.example"
    assert result.original_subject == "Contratto n. 7 – firmato"
    assert result.timestamp == WHEN
    assert [(r.address, r.type) for r in result.recipients] == [(d.address, d.tipo) for d in DEST]
    for name, value in expected.items():
        assert getattr(result, name) == value, name
    if result.receipt_type == "breve":
        assert [a.filename for a in result.attachments] == ["contratto.pdf.hash"]
    elif result.receipt_type == "completa":
        assert [a.filename for a in result.attachments] == ["contratto.pdf"]
        assert result.attachments[0].content() == b"%PDF-1.4 contratto" * 50


def test_busta_di_trasporto_and_its_original():
    raw = builder.busta_trasporto(
        _original(cc=["altro@pec.altro.example"]),
        gestore=builder.ARUBA,
        identificativo=ID,
        data=WHEN,
        destinatari=DEST,
    )
    result = message.parse(raw)
    assert result.kind == kinds.POSTA_CERTIFICATA and result.problems == []
    assert result.ref_message_id is None
    assert result.original_message_id == "<contratto-7@pec.azienda.example>"
    assert result.message_id == f"<{ID}>"
    assert result.postacert.message_id == f"<{ID}>"
    assert result.postacert.cc == ["altro@pec.altro.example"]
    assert result.receipt_type == "completa"
    assert result.body_text() == "In allegato il contratto.\n"


def test_busta_di_anomalia():
    ordinary = _original(mittente="mario@posta.example")
    raw = builder.busta_anomalia(
        ordinary, gestore=builder.SIMULATO, data=WHEN, motivo="Il messaggio non proviene da un gestore PEC."
    )
    result = message.parse(raw)
    assert result.kind == kinds.ANOMALIA
    assert result.daticert is None and result.problems == []
    assert result.sender == "mario@posta.example"
    assert result.message_id == "<contratto-7@pec.azienda.example>"
    assert result.postacert.kind == kinds.POSTA_ORDINARIA


def test_nested_pec_keeps_the_outer_kind():
    inner = builder.busta_trasporto(
        _original(), gestore=builder.ARUBA, identificativo=ID, data=WHEN, destinatari=DEST
    )
    forwarded = builder.messaggio_originale(
        mittente="cliente@pec.cliente.example",
        destinatari=["terzo@pec.terzo.example"],
        oggetto="I: contratto",
        testo="inoltro",
        allegati=[("postacert.eml", "message/rfc822", inner)],
        data=WHEN,
    )
    outer_id = "opec1.20260302103000.9.9.9.9@pec.legalmail.it"
    raw = builder.busta_trasporto(
        forwarded,
        gestore=builder.LEGALMAIL,
        identificativo=outer_id,
        data=WHEN,
        destinatari=[Destinatario("terzo@pec.terzo.example")],
    )
    result = message.parse(raw)
    assert result.kind == kinds.POSTA_CERTIFICATA and result.identificativo == outer_id
    nested = message.parse(result.postacert.attachments[0].content())
    assert nested.kind == kinds.POSTA_CERTIFICATA and nested.identificativo == ID


@pytest.mark.parametrize("dialetto", ["pa", "b2b"])
@pytest.mark.parametrize("codice", sorted(sdi_builder.RADICI))
def test_every_sdi_notification_in_an_envelope(codice, dialetto):
    nome = "IT01234567890_00042.xml"
    notice = sdi_builder.notifica(
        codice,
        identificativo_sdi="5550001",
        nome_file=nome,
        message_id="77",
        quando=WHEN,
        dialetto=dialetto,
        riferimento_fattura=("42", "2026"),
        pec_message_id=ID,
    )
    files = [(sdi_builder.nome_notifica(nome, codice), notice)]
    if codice == "MT":
        parte = sdi_builder.Parte("IT", "01234567890", "Fornitore S.p.A.")
        files.append(
            (nome, sdi_builder.fattura(parte, parte, [sdi_builder.Documento("42", "2026-03-02", "1220.00")]))
        )
    raw = sdi_builder.busta_sdi(
        files,
        identificativo_sdi="5550001",
        codice=codice,
        destinatario="noi@pec.azienda.example",
        data=WHEN,
        seq=1,
    )
    result = message.parse(raw)
    assert result.kind == kinds.POSTA_CERTIFICATA
    assert result.problems == []
    assert result.sdi.type == codice
    assert result.sdi.identificativo_sdi == "5550001"
    if codice not in ("EC", "SE"):
        assert result.sdi.nome_file == nome
    if codice == "MT":
        assert [i.numero for i in result.sdi.invoices] == ["42"]
    assert result.sender == "sdi01@pec.fatturapa.it"


def test_signed_invoice_p7m_in_an_envelope():
    parte = sdi_builder.Parte("IT", "01234567890", "Fornitore S.p.A.")
    xml = sdi_builder.fattura(parte, parte, [sdi_builder.Documento("9", "2026-03-02", "122.00")])
    p7m = sdi_builder.firma_p7m(xml, builder.Firma.per(builder.SIMULATO))
    nome = sdi_builder.nome_fattura(parte, "00009", p7m=True)
    meta = sdi_builder.notifica("MT", identificativo_sdi="1", nome_file=nome, message_id="1", quando=WHEN)
    raw = sdi_builder.busta_sdi(
        [(sdi_builder.nome_notifica(nome, "MT"), meta), (nome, p7m)],
        identificativo_sdi="1",
        codice="MT",
        destinatario="noi@pec.azienda.example",
        data=WHEN,
        seq=2,
    )
    result = message.parse(raw)
    assert result.sdi.type == "MT" and result.problems == []
    assert result.sdi.invoices[0].numero == "9"


def test_ordinary_xml_attachment_is_not_sdi():
    raw = builder.busta_trasporto(
        _original(allegati=[("ordine_0088.xml", "application/xml", b"<?xml version='1.0'?><ordine/>")]),
        gestore=builder.ARUBA,
        identificativo=ID,
        data=WHEN,
        destinatari=DEST,
    )
    result = message.parse(raw)
    assert result.sdi is None and result.problems == []


def test_header_and_daticert_disagreement_is_reported():
    raw = builder.ricevuta(
        "accettazione", _original(), gestore=builder.SIMULATO, identificativo=ID, data=WHEN, destinatari=DEST
    )
    raw = raw.replace(b"X-Ricevuta: accettazione", b"X-Ricevuta: avvenuta-consegna")
    raw = raw.replace(b"X-Riferimento-Message-ID: <contratto-7@", b"X-Riferimento-Message-ID: <altro@")
    result = message.parse(raw)
    assert result.kind == kinds.ACCETTAZIONE
    assert result.ref_message_id == "<contratto-7@pec.azienda.example>"
    joined = " | ".join(result.problems)
    assert "header says 'avvenuta-consegna' but daticert.xml says 'accettazione'" in joined
    assert "disagrees with daticert msgid" in joined


def test_subject_fallback_only_for_provider_messages():
    plain = b"From: posta-certificata@pec.aruba.it\r\nSubject: ACCETTAZIONE: prova\r\n\r\ntesto"
    result = message.parse(plain)
    assert result.kind == kinds.ACCETTAZIONE
    assert any("taken from the subject" in p for p in result.problems)
    human = b"From: mario@posta.example\r\nSubject: ACCETTAZIONE: prova\r\n\r\ntesto"
    assert message.parse(human).kind == kinds.POSTA_ORDINARIA


def test_unknown_x_ricevuta_is_malformed_with_the_reason():
    result = message.parse(b"From: posta-certificata@p.it\r\nX-Ricevuta: boh\r\nSubject: x\r\n\r\n")
    assert result.kind == kinds.MALFORMED
    assert "unknown X-Ricevuta value 'boh'" in result.problems


# --- the CLI ---------------------------------------------------------------------------------
REQUIRED = {"file", "kind", "ref_message_id", "receipt_type", "provider", "sdi", "problems"}


def test_cli_json_one_object_per_file(tmp_path, capsys, corpus):
    for sample in corpus[:25]:
        (tmp_path / sample.name).write_bytes(sample.raw)
    (tmp_path / "not-mail.eml").write_bytes(b"%PDF-1.4\n\x00\x01binary")
    assert cli.main(["classify", "--json", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 26
    records = [json.loads(line) for line in lines]
    assert all(REQUIRED <= set(r) for r in records)
    by_file = {r["file"].rsplit("/", 1)[-1]: r for r in records}
    assert by_file["not-mail.eml"]["kind"] == "malformed" and by_file["not-mail.eml"]["problems"]
    for sample in corpus[:25]:
        record = by_file[sample.name]
        assert record["kind"] == sample.expected["kind"]
        assert record["ref_message_id"] == sample.expected["ref_message_id"]
        assert record["receipt_type"] == sample.expected["receipt_type"]
        assert record["provider"] == sample.expected["provider"]
        assert (record["sdi"] or {}).get("type") == sample.expected["sdi_type"]


def test_cli_table_and_unreadable_file(tmp_path, capsys, corpus):
    path = tmp_path / "one.eml"
    path.write_bytes(corpus[0].raw)
    assert cli.main(["classify", str(path), str(tmp_path / "missing.eml")]) == 1
    captured = capsys.readouterr()
    assert "KIND" in captured.out and corpus[0].expected["kind"] in captured.out
    assert "could not be read" in captured.err


def test_cli_help_and_no_command(capsys):
    assert cli.main([]) == 2
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["classify", "--help"])
    assert exit_info.value.code == 0
    assert "--json" in capsys.readouterr().out


def test_a_consegna_tells_what_it_refers_to_from_its_headers_alone():
    """The poller's glance at a fetched batch: the X-Riferimento-Message-ID of a receipt on the
    delivery (consegna, errore, ...), bare; nothing for another kind, a consegna without the
    header, or bytes that are no mail."""
    original = builder.messaggio_originale(
        mittente="ufficio@pec.azienda.test", destinatari=["c@pec.cliente.test"], oggetto="Pratica",
        testo="x", message_id="<Pratica-7@PEC.Azienda.test>",
    )  # fmt: skip
    kw = {"gestore": builder.SIMULATO, "destinatari": [Destinatario("c@pec.cliente.test")],
          "identificativo": "opec1.1@pec.simulato.test", "data": datetime(2026, 11, 27, 9, 0, tzinfo=UTC)}  # fmt: skip
    consegna = builder.ricevuta(kinds.AVVENUTA_CONSEGNA, original, consegna="c@pec.cliente.test", **kw)
    accettazione = builder.ricevuta(kinds.ACCETTAZIONE, original, **kw)
    assert message.delivery_reference(consegna) == "pratica-7@pec.azienda.test"
    assert message.delivery_reference(consegna) == message.bare_message_id(
        message.parse(consegna).ref_message_id
    )
    assert message.delivery_reference(accettazione) is None
    errore = builder.ricevuta(kinds.ERRORE_CONSEGNA, original, consegna="c@pec.cliente.test", **kw)
    assert message.delivery_reference(errore) == "pratica-7@pec.azienda.test", "an outcome all the same"
    assert message.delivery_reference(original) is None
    without = consegna.replace(b"X-Riferimento-Message-ID:", b"X-Altro:", 1)
    assert message.delivery_reference(without) is None
    assert message.delivery_reference(b"") is None and message.delivery_reference(b"\xff\x00garbage") is None

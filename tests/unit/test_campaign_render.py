"""Rendering one recipient's PEC: Italian filters, the sandbox, headers nobody can inject into,
one recipient per message, the generated PDF."""

from __future__ import annotations

import email
import re
import shutil
import subprocess
import zlib
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from email import policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pecflow.domain import campaign
from pecflow.domain.campaign import (
    Manifest,
    RenderError,
    compile_templates,
    data,
    importo,
    render_message,
    text_pdf,
)
from pecflow.domain.campaign import pdf as campaign_pdf

WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=1)))
MANIFEST = Manifest.from_dict(
    {
        "mailbox": "ufficio@pec.azienda.it",
        "subject": "Sollecito n. {{ numero }} - {{ nome }}",
        "body_text": "Gentile {{ nome }},\nle ricordiamo l'importo di {{ importo|importo }} "
        "in scadenza il {{ scadenza|data('lungo') }}.\n",
        "body_html": "<p>Gentile {{ nome }},</p><p>importo {{ importo|importo }}</p>",
        "pdf": {
            "filename": "sollecito-{{ numero }}",
            "template": "Sollecito {{ numero }}\n\nGentile {{ nome }}",
        },
        "receipt_type": "breve",
    }
)
ROW = {
    "pec": "mario.rossi@pec.it",
    "nome": "Mario Rossi",
    "numero": "17",
    "importo": "1500.5",
    "scadenza": "2026-03-02",
}


def render(row=ROW, manifest=MANIFEST, **kwargs) -> bytes:
    options = {
        "mailbox": "ufficio@pec.azienda.it",
        "message_id": "<pecflow.c1.2.1@pec.azienda.it>",
        "date": WHEN,
        "attachments": [("informativa.pdf", b"%PDF-1.4 informativa")],
    } | kwargs
    return render_message(manifest, row, **options)


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


# --- Italian filters -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, pattern, expected",
    [
        ("2026-03-02", "%d/%m/%Y", "02/03/2026"),
        ("2026-03-02", "%d %B %Y", "2 marzo 2026"),  # beside a month name: no leading zero
        ("2026-03-12", "%d %B %Y", "12 marzo 2026"),
        ("2026-03-02", "%d.%m.%Y", "02.03.2026"),
        ("2026-03-02", "%-d %B %Y", "2 marzo 2026"),
        ("2026-03-02", "lungo", "2 marzo 2026"),
        ("2026-03-02", "esteso", "lunedì 2 marzo 2026"),
        ("2026-03-02", "%a %-d %b", "lun 2 mar"),
        ("02/03/2026", "breve", "02/03/2026"),
        ("2/3/2026", "%d/%m/%Y", "02/03/2026"),
        ("02.03.2026", "%Y-%m-%d", "2026-03-02"),
        ("02-03-2026 14:05", "%d/%m/%Y %H:%M", "02/03/2026 14:05"),
        ("2026-03-02T14:05:00+01:00", "%d/%m/%Y alle %H:%M", "02/03/2026 alle 14:05"),
        (date(2026, 12, 25), "%A %d %B", "venerdì 25 dicembre"),
        (datetime(2026, 8, 1, 8, 0), "%d %B %Y, %H:%M", "1 agosto 2026, 08:00"),
        ("2026-03-02", "%-d/%-m/%Y", "2/3/2026"),
        ("2026-01-01", "100%% al %d/%m", "100% al 01/01"),
    ],
)
def test_data(value, pattern, expected):
    assert data(value, pattern) == expected


def test_data_default_is_dd_mm_yyyy():
    assert data("2026-03-02") == "02/03/2026" and data(date(2026, 3, 2)) == "02/03/2026"


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "empty"),
        ("31/02/2026", "is not a date"),
        ("02/03/26", "2-digit year"),
        ("domani", "is not a date"),
    ],
)
def test_data_errors(value, message):
    with pytest.raises(ValueError, match=message):
        data(value)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1500", "1.500,00 €"),
        ("1500.5", "1.500,50 €"),
        ("1.500,00", "1.500,00 €"),
        ("1500,5", "1.500,50 €"),
        ("1.500", "1.500,00 €"),
        ("12.345.678", "12.345.678,00 €"),
        ("1,500.00", "1.500,00 €"),
        ("1.50", "1,50 €"),
        ("€ 1.234,56", "1.234,56 €"),
        ("1 234,56 EUR", "1.234,56 €"),
        ("-12,345", "-12,35 €"),
        ("0,005", "0,01 €"),
        ("-0,001", "0,00 €"),
        (1500, "1.500,00 €"),
        (1500.5, "1.500,50 €"),
        (Decimal("999999.999"), "1.000.000,00 €"),
        ("0", "0,00 €"),
    ],
)
def test_importo(value, expected):
    assert importo(value) == expected


def test_importo_without_the_euro_sign():
    assert importo("1500", False) == "1.500,00"
    env = campaign.environment()
    assert env.from_string("{{ x|importo(simbolo=false) }}").render(x="2,5") == "2,50"


@pytest.mark.parametrize("value", ["", "abc", "1.2.3,4,5", "12a", True, "1e5"])
def test_importo_errors(value):
    with pytest.raises(ValueError, match="importo"):
        importo(value)


# --- the sandbox and StrictUndefined ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source, message",
    [
        ("{{ nome.__class__.__mro__ }}", "unsafe|not allowed|has no attribute"),
        ("{{ 'x' * 100000000 }}", "too large"),
        ("{{ 10 ** 100000 }}", "exponent too large"),
        ("{{ cognome }}", "'cognome' is undefined"),
        ("{{ nome.missing }}", "has no attribute 'missing'"),
        ("{{ importo|importo }}", "importo: 'abc' is not an amount"),
    ],
)
def test_templates_that_fail_at_render_time(source, message):
    manifest = Manifest.from_dict({"mailbox": "u@pec.it", "subject": "x", "body_text": source})
    with pytest.raises(RenderError) as caught:
        compile_templates(manifest).render({"nome": "Mario", "importo": "abc"})
    assert caught.value.field == "body_text"
    assert re.search(message, caught.value.reason)


def test_syntax_errors_name_the_template_and_line():
    manifest = Manifest.from_dict(
        {
            "mailbox": "u@pec.it",
            "subject": "Ciao {{ nome }",
            "body_text": "riga 1\nriga 2\n{% if x %}senza fine\n",
            "body_html": "<p>{{ nome }}</p>",
        }
    )
    with pytest.raises(campaign.ManifestError) as caught:
        compile_templates(manifest)
    issues = {i.field: i for i in caught.value.issues}
    assert set(issues) == {"subject", "body_text"}
    assert all(i.code == campaign.Code.TEMPLATE_SYNTAX for i in issues.values())
    assert issues["subject"].reason.startswith("line 1: unexpected '}'")
    assert "line 3" in issues["body_text"].reason or "line 4" in issues["body_text"].reason


def test_template_variables_are_found_per_template():
    templates = compile_templates(MANIFEST)
    assert templates.variables == {"nome", "numero", "importo", "scadenza"}
    assert templates.used_by("scadenza") == "body_text"
    assert templates.used_by("numero") == "subject"
    loops = Manifest.from_dict(
        {
            "mailbox": "u@pec.it",
            "subject": "{% set a = 1 %}{{ a }}",
            "body_text": "{% for i in range(3) %}{{ i }}{{ loop.index }}{% endfor %}{{ b }}",
        }
    )
    assert compile_templates(loops).variables == {"b"}


def test_html_is_autoescaped_and_text_is_not():
    rendered = compile_templates(MANIFEST).render({**ROW, "nome": "<b>Rossi & figli</b>"})
    assert "&lt;b&gt;Rossi &amp; figli&lt;/b&gt;" in rendered.html
    assert "<b>Rossi & figli</b>" in rendered.text


# --- the message --------------------------------------------------------------------------------------------
def test_the_message_headers_and_parts():
    raw = render()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    message = parse(raw)
    assert message["From"] == "ufficio@pec.azienda.it"
    assert message["To"] == "mario.rossi@pec.it"
    assert message["Subject"] == "Sollecito n. 17 - Mario Rossi"
    assert message["Message-ID"] == "<pecflow.c1.2.1@pec.azienda.it>"
    assert message["X-TipoRicevuta"] == "breve"
    assert message["Date"].datetime == WHEN
    assert "Cc" not in message and "Bcc" not in message and "Reply-To" not in message
    body = message.get_body(("plain",)).get_content()
    assert "importo di 1.500,50 €" in body and "2 marzo 2026" in body
    assert "1.500,50 €" in message.get_body(("html",)).get_content()
    files = {part.get_filename(): part for part in message.iter_attachments()}
    assert list(files) == ["informativa.pdf", "sollecito-17.pdf"]
    assert files["informativa.pdf"].get_content() == b"%PDF-1.4 informativa"
    assert files["informativa.pdf"]["Content-Transfer-Encoding"] == "base64"
    assert files["sollecito-17.pdf"].get_content().startswith(b"%PDF-1.4")


def test_the_same_row_renders_the_same_bytes_but_for_the_mime_boundaries():
    def stable(raw):
        return re.sub(rb"===============\d+==", b"B", raw)

    assert stable(render()) == stable(render())


def test_a_plain_text_message_without_attachments():
    manifest = Manifest.from_dict({"mailbox": "u@pec.it", "subject": "Ciao {{ nome }}", "body_text": "Testo"})
    message = parse(render({"pec": "a@pec.it", "nome": "Anna"}, manifest, attachments=[]))
    assert message.get_content_type() == "text/plain" and message["X-TipoRicevuta"] == "completa"


def test_long_non_ascii_subjects_keep_every_space():
    subject = (
        "Sollecito di pagamento fattura n. 123 del 02/03/2026 - Niccolò Forlì S.r.l. " + "è " * 40 + "fine"
    )
    raw = render({**ROW, "nome": subject, "numero": "1"})
    assert parse(raw)["Subject"] == f"Sollecito n. 1 - {subject}"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_non_ascii_subject_and_file_names_are_encoded():
    raw = render({**ROW, "nome": "Niccolò Forlì €"}, attachments=[("fatture/ricevuta è.pdf", b"x")])
    assert raw.isascii()
    message = parse(raw)
    assert message["Subject"] == "Sollecito n. 17 - Niccolò Forlì €"
    assert [p.get_filename() for p in message.iter_attachments()][0] == "ricevuta è.pdf"


def test_optional_columns_missing_from_stored_values_render_empty():
    manifest = Manifest.from_dict(
        {"mailbox": "u@pec.it", "subject": "x", "body_text": "[{{ note }}]", "optional_columns": ["Note"]}
    )
    message = parse(render({"pec": "a@pec.it"}, manifest, attachments=[]))
    assert message.get_content().strip() == "[]"


def test_a_row_is_a_row_or_its_values():
    row = campaign.Row(2, dict(ROW), 5)
    assert parse(render(row))["To"] == "mario.rossi@pec.it"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mailbox": "ufficio@pec\r\nBcc: x@y.it"}, "not a valid address"),
        ({"message_id": "<a@b>\r\nBcc: x@y.it"}, "Message-ID"),
        ({"message_id": "senza-parentesi@b"}, "Message-ID"),
        ({"date": datetime(2026, 3, 2)}, "time zone"),
    ],
)
def test_wrong_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render(**kwargs)


@pytest.mark.parametrize(
    "address", ["", "mario.rossi@", "a@pec.it\r\nBcc: spia@x.it", "a@pec.it, b@pec.it", "Mario <a@pec.it>"]
)
def test_the_recipient_must_be_one_valid_address(address):
    with pytest.raises(RenderError) as caught:
        render({**ROW, "pec": address})
    assert caught.value.field == "to"


def test_header_injection_through_row_values_is_impossible():
    evil = "Rossi\r\nBcc: spia@evil.it\r\nX-TipoRicevuta: sintetica\r\n\r\nbody"
    raw = render(
        {**ROW, "nome": evil, "numero": "1\nCc: altro@evil.it"},
        attachments=[("a\r\nContent-Type: text/html\r\n.pdf", b"x")],
    )
    message = parse(raw)
    assert sorted(message.keys()) == [
        "Content-Type",
        "Date",
        "From",
        "MIME-Version",
        "Message-ID",
        "Subject",
        "To",
        "X-TipoRicevuta",
    ]
    assert message["X-TipoRicevuta"] == "breve"
    assert (
        message["Subject"] == "Sollecito n. 1 Cc: altro@evil.it - Rossi Bcc: spia@evil.it X-TipoRicevuta: "
        "sintetica body"
    )
    header_lines = [
        line for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n") if line and not line[:1].isspace()
    ]
    assert all(
        line.split(b":")[0]
        in {
            b"From",
            b"To",
            b"Subject",
            b"Date",
            b"Message-ID",
            b"X-TipoRicevuta",
            b"MIME-Version",
            b"Content-Type",
        }
        for line in header_lines
    )


_anything = st.text(max_size=80)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nome=_anything, numero=_anything, filename=_anything)
def test_random_values_never_inject_headers(nome, numero, filename):
    row = {**ROW, "nome": nome, "numero": numero}
    raw = render(row, attachments=[(filename or "x.pdf", b"data")])
    message = parse(raw)
    assert sorted(message.keys()) == [
        "Content-Type",
        "Date",
        "From",
        "MIME-Version",
        "Message-ID",
        "Subject",
        "To",
        "X-TipoRicevuta",
    ]
    assert message["To"] == "mario.rossi@pec.it" and message["From"] == "ufficio@pec.azienda.it"
    assert message["X-TipoRicevuta"] == "breve"
    subject = campaign.compile_templates(MANIFEST).render(row).subject
    if "=?" not in subject:  # text shaped like an encoded word is decoded by any reader
        assert message["Subject"] == subject
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    parts = list(message.iter_attachments())
    assert len(parts) == 2 and all(
        set(p.keys()) <= {"Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version"}
        for p in parts
    )


def test_one_message_per_recipient_and_nobody_sees_another_address():
    rows = [{**ROW, "pec": f"destinatario{i}@pec{i}.it", "nome": f"Nome {i}"} for i in range(50)]
    messages = [render(row, message_id=f"<pecflow.c1.{i}.1@pec.azienda.it>") for i, row in enumerate(rows)]
    for i, raw in enumerate(messages):
        message = parse(raw)
        assert message.get_all("To") == [f"destinatario{i}@pec{i}.it"]
        others = [r["pec"].encode() for j, r in enumerate(rows) if j != i]
        assert not any(other in raw for other in others)


def test_the_estimated_size_is_an_upper_bound_close_to_the_real_one():
    templates = compile_templates(MANIFEST)
    for row, files in [
        (ROW, [("a.pdf", b"x" * 10)]),
        ({**ROW, "nome": "è" * 5000}, [("b.pdf", bytes(300_000))]),
        ({**ROW, "nome": "=" * 3000}, [("c.pdf", bytes(range(256)) * 4000), ("d.xml", b"<a/>" * 10)]),
    ]:
        rendered = templates.render(row)
        pdf = len(text_pdf(rendered.pdf_text))
        estimate = campaign.estimated_size(rendered, [len(data) for _, data in files], pdf)
        actual = len(render(row, attachments=files))
        assert actual <= estimate <= actual * 1.1 + 3000, (actual, estimate)


# --- the PDF ----------------------------------------------------------------------------------------------------
def _pdf_structure(pdf: bytes) -> list[bytes]:
    """Check the cross-reference table points at every object; return the decoded page contents."""
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n")
    startxref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[startxref:].startswith(b"xref\n0 ")
    count = int(pdf[startxref:].split(b"\n")[1].split()[1])
    entries = pdf[startxref:].split(b"\n")[3 : 3 + count - 1]
    for number, entry in enumerate(entries, start=1):
        assert len(entry) == 19 and entry.endswith(b" 00000 n ")  # 20 bytes with its LF
        assert pdf[int(entry[:10]) :].startswith(b"%d 0 obj\n" % number)
    streams = re.findall(rb"stream\n(.*?)\nendstream", pdf, re.S)
    return [zlib.decompress(s) for s in streams]


def _shown_text(contents: list[bytes]) -> str:
    lines = []
    for content in contents:
        for match in re.finditer(rb"\(((?:\\.|[^\\)])*)\) Tj", content):
            lines.append(re.sub(rb"\\(.)", rb"\1", match.group(1)).decode("cp1252"))
    return "\n".join(lines)


def test_a_one_page_pdf():
    text = "Gentile Niccolò Forlì (Cantù),\nl'importo è 1.500,00 € \\ fine"
    pdf = text_pdf(text)
    contents = _pdf_structure(pdf)
    assert len(contents) == 1 and b"/Count 1" in pdf
    assert b"/BaseFont /Helvetica /Encoding /WinAnsiEncoding" in pdf
    assert _shown_text(contents) == text


def test_a_long_text_wraps_and_takes_several_pages():
    text = "\n".join(f"Paragrafo {i}: " + "parola " * 40 for i in range(60)) + "\fUltima pagina"
    pdf = text_pdf(text)
    contents = _pdf_structure(pdf)
    pages = int(re.search(rb"/Count (\d+)", pdf).group(1))
    assert pages == len(contents) >= 5
    shown = _shown_text(contents)
    assert " ".join(shown.split()) == " ".join(text.replace("\f", " ").split())
    assert contents[-1].count(b"Tj") == 1 and b"Ultima pagina" in contents[-1]
    widths = [
        campaign_pdf._width(line) * 11 / 1000
        for line in campaign_pdf.wrap(campaign_pdf.winansi(text), (595.28 - 2 * 56.69) * 1000 / 11)
    ]
    assert max(widths) <= 595.28 - 2 * 56.69


def test_a_word_wider_than_the_page_is_cut():
    pdf = text_pdf("x" * 500)
    assert _shown_text(_pdf_structure(pdf)).replace("\n", "") == "x" * 500


def test_characters_outside_winansi_degrade_gracefully():
    assert campaign_pdf.winansi("Łódź ćma\tfine\x07") == "Lódz cma    fine".encode("cp1252")
    assert campaign_pdf.winansi("日本") == b"??"


def test_the_same_text_gives_the_same_pdf():
    assert text_pdf("Sollecito 17") == text_pdf("Sollecito 17")


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) not installed")
def test_pdftotext_reads_what_was_written(tmp_path):
    text = "Sollecito n. 17\n\nGentile Niccolò Forlì,\nl'importo di 1.500,00 € è dovuto.\n" + "testo " * 1500
    path = tmp_path / "avviso.pdf"
    path.write_bytes(text_pdf(text))
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, timeout=30
    )
    assert not out.stderr, out.stderr
    extracted = out.stdout.decode()
    assert "Gentile Niccolò Forlì," in extracted and "1.500,00 € è dovuto." in extracted
    assert " ".join(extracted.split()).count("testo") == 1500
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, timeout=30).stdout.decode()
    assert re.search(r"Pages:\s+2", info) and "595.28 x 841.89" in info


def test_render_and_utc():
    assert parse(render(date=datetime(2026, 3, 2, 8, tzinfo=UTC)))["Date"].datetime.utcoffset() == timedelta(
        0
    )

"""Validation before anything is sent: the bad-CSV corpus, attachments, the report, the
200 MB file, constant memory, and `pecflow campaign validate`."""

from __future__ import annotations

import csv
import io
import json
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pecflow import cli
from pecflow.domain import campaign
from pecflow.domain.campaign import (
    Code,
    CsvLimits,
    DictAttachmentIndex,
    Manifest,
    SqliteAttachmentIndex,
    validate,
)

MANIFEST = {
    "mailbox": "ufficio@pec.azienda.it",
    "subject": "Sollecito {{ numero }}",
    "body_text": "Gentile {{ nome }},\nimporto {{ importo|importo }} entro il {{ scadenza|data }}.\n",
}
HEADER = "Nome;PEC;Numero;Importo;Scadenza\r\n"


def row(i: int, **change) -> str:
    values = {
        "nome": f"Cliente {i}",
        "pec": f"cliente{i}@pec.it",
        "numero": str(i),
        "importo": "1500,5",
        "scadenza": "02/03/2026",
    } | change
    return ";".join(values.values()) + "\r\n"


def check(csv_text: str | bytes, manifest=None, attachments=None, **kwargs) -> campaign.ValidationReport:
    raw = csv_text.encode() if isinstance(csv_text, str) else csv_text
    report = validate(
        Manifest.from_dict(manifest or MANIFEST) if isinstance(manifest or MANIFEST, dict) else manifest,
        io.BytesIO(raw),
        DictAttachmentIndex(attachments or {}),
        **kwargs,
    )
    return report


def codes(report) -> dict[str, int]:
    return dict(report.errors_by_code)


def only(report, code: Code) -> list[campaign.Issue]:
    """The issues of `code`; the report must be invalid and hold nothing else."""
    assert not report.valid
    assert set(report.errors_by_code) == {code}, report.errors_by_code
    return [i for i in report.errors if i.code == code]


def test_a_valid_campaign():
    report = check(HEADER + row(1) + row(2) + "\r\n" + row(3))
    assert report.valid and report.rows == report.valid_rows == 3 and report.error_count == 0
    assert report.encoding == "utf-8" and report.delimiter == ";"
    assert report.header == ("Nome", "PEC", "Numero", "Importo", "Scadenza")
    assert report.merge_fields == ("importo", "nome", "numero", "scadenza")
    out = io.BytesIO()
    assert report.write_errors_csv(out) == 0
    assert out.getvalue() == b"\xef\xbb\xbfrow;column;code;reason\r\n"
    report.close()


# --- the bad-CSV corpus: each a specific error, and the campaign invalid ------------------------------------
def test_wrong_encoding_after_the_first_mib():
    good = "".join(row(i) for i in range(2, 20_000))
    assert len(good) > 1024 * 1024
    bad = row(20_000, nome="Città").encode("cp1252")
    issues = only(check(HEADER.encode() + good.encode() + bad), Code.CSV_ENCODING)
    assert issues[0].row == 20_000 and "0xE0" in issues[0].reason


def test_wrong_encoding_a_workbook_uploaded_as_csv():
    issues = only(check(b"PK\x03\x04" + bytes(200)), Code.CSV_NOT_TEXT)
    assert "xlsx" in issues[0].reason


def test_wrong_encoding_utf16_without_bom():
    only(check((HEADER + row(1)).encode("utf-16-le")), Code.CSV_NOT_TEXT)


def test_missing_address_column():
    issues = only(check("Nome;Email;Numero;Importo;Scadenza\r\n" + row(1)), Code.ADDRESS_COLUMN_MISSING)
    assert (
        issues[0].reason == "no column 'pec' for the recipients' addresses (columns: Nome, Email, Numero, "
        "Importo, Scadenza)"
    )


def test_missing_merge_field_column():
    issues = only(check("Nome;PEC;Numero;Importo\r\nRossi;r@pec.it;1;12\r\n"), Code.MERGE_FIELD_MISSING)
    assert issues[0].field == "body_text" and "{{ scadenza }}" in issues[0].reason


def test_a_merge_field_close_to_a_column_gets_a_hint():
    manifest = {**MANIFEST, "subject": "Sollecito {{ nuemro }}"}
    issues = only(check(HEADER + row(1), manifest), Code.MERGE_FIELD_MISSING)
    assert issues[0].field == "subject" and "did you mean {{ numero }}?" in issues[0].reason


def test_missing_attachment_column():
    manifest = {**MANIFEST, "attachment_column": "Fattura"}
    only(check(HEADER + row(1), manifest), Code.ATTACHMENT_COLUMN_MISSING)


def test_bad_addresses():
    report = check(
        HEADER + row(1, pec="mario.rossi@") + row(2, pec="a b@pec.it") + row(3) + row(4, pec="x@pec")
    )
    issues = only(report, Code.ADDRESS_INVALID)
    assert [i.message for i in issues] == [
        "row 2, column PEC: 'mario.rossi@' is not a valid address: nothing after @",
        "row 3, column PEC: 'a b@pec.it' is not a valid address: it contains spaces",
        "row 5, column PEC: 'x@pec' is not a valid address: the domain has no dot",
    ]
    assert report.rows == 4 and report.valid_rows == 1 and report.invalid_rows == 3


def test_empty_addresses():
    issues = only(check(HEADER + row(1, pec="") + row(2)), Code.ADDRESS_EMPTY)
    assert issues[0].row == 2


def test_duplicates_ignoring_capitals_with_both_rows():
    report = check(HEADER + row(1) + row(2) + row(3, pec="CLIENTE1@PEC.IT") + row(4, pec="cliente2@pec.it"))
    issues = only(report, Code.ADDRESS_DUPLICATE)
    assert [(i.row, i.column) for i in issues] == [(4, "PEC"), (5, "PEC")]
    assert "'CLIENTE1@PEC.IT' is already on row 2" in issues[0].reason
    assert "is already on row 3" in issues[1].reason


def test_missing_per_recipient_attachment():
    manifest = {**MANIFEST, "attachment_column": "Fattura"}
    text = (
        "Nome;PEC;Numero;Importo;Scadenza;Fattura\r\n"
        + row(1).rstrip()
        + ";f1.pdf\r\n"
        + row(2).rstrip()
        + ";fatture/F2.pdf\r\n"
        + row(3).rstrip()
        + ";f3.pdf\r\n"
    )
    issues = only(check(text, manifest, {"f1.pdf": 10, "fatture/f2.pdf": 20}), Code.ATTACHMENT_NOT_FOUND)
    assert [(i.row, i.column) for i in issues] == [(3, "Fattura"), (4, "Fattura")]
    assert "there is 'fatture/f2.pdf'" in issues[0].reason
    assert issues[1].reason == "'f3.pdf' is not in the attachments/ folder"


def test_missing_fixed_attachment():
    manifest = {**MANIFEST, "attachments": ["informativa.pdf", "privacy.pdf"]}
    issues = only(check(HEADER + row(1), manifest, {"privacy.pdf": 100}), Code.ATTACHMENT_NOT_FOUND)
    assert issues[0].row is None and issues[0].field == "attachments[0]"


def test_template_syntax_error():
    manifest = {**MANIFEST, "body_text": "Gentile {{ nome }},\n{% if importo %}\nimporto {{ importo }}\n"}
    report = check(HEADER + row(1), manifest)
    issues = only(report, Code.TEMPLATE_SYNTAX)
    assert issues[0].field == "body_text" and issues[0].row is None and "line" in issues[0].reason
    assert report.rows == 1  # the CSV is still read and counted


def test_template_undefined_variable():
    issues = only(
        check(HEADER + row(1), {**MANIFEST, "body_text": "Gentile {{ cognome }}"}), Code.MERGE_FIELD_MISSING
    )
    assert "{{ cognome }}" in issues[0].reason


def test_template_failing_on_a_row():
    issues = only(
        check(HEADER + row(1) + row(2, importo="mille") + row(3, scadenza="31/02/2026")), Code.RENDER_FAILED
    )
    assert [(i.row, i.field) for i in issues] == [(3, "body_text"), (4, "body_text")]
    assert "importo: 'mille' is not an amount" in issues[0].reason


def test_empty_file():
    only(check(b""), Code.CSV_EMPTY)


def test_header_only():
    report = check(HEADER + "\r\n;;;;\r\n")
    issues = only(report, Code.CSV_HEADER_ONLY)
    assert issues[0].row is None and report.rows == 0


def test_a_200_mb_file(tmp_path):
    """Over the 100 MB limit (CsvLimits.max_bytes): refused at once when its size is known (a
    file, an S3 ContentLength); read as a stream, it stops at the limit in constant memory."""
    path = tmp_path / "recipients.csv"
    note = b"x" * 50_000  # rows with a long note: few rows, many bytes
    with path.open("wb") as out:
        out.write(b"Nome;PEC;Numero;Importo;Scadenza;Nota\r\n")
        i = 0
        while out.tell() < 200 * 1024 * 1024:
            i += 1
            out.write(row(i).rstrip().encode() + b";" + note + b"\r\n")
    assert path.stat().st_size >= 200 * 1024 * 1024
    started = time.monotonic()
    with path.open("rb") as body:
        report = validate(Manifest.from_dict(MANIFEST), body, DictAttachmentIndex())
    issues = only(report, Code.CSV_TOO_LARGE)
    assert "larger than 100 MB" in issues[0].reason and report.bytes_read == 0

    class Unseekable(io.RawIOBase):  # an S3 body: no size, no seek
        def __init__(self, f):
            self.f = f

        def readable(self):
            return True

        def read(self, size=-1):
            return self.f.read(size)

    with path.open("rb") as body:
        tracemalloc.start()
        try:
            report = validate(Manifest.from_dict(MANIFEST), Unseekable(body), DictAttachmentIndex())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert only(report, Code.CSV_TOO_LARGE)[0].row is None
    assert 100 * 1024 * 1024 < report.bytes_read <= 100 * 1024 * 1024 + 65536
    assert report.rows > 1500  # every row before the limit was checked
    assert peak < 8 * 1024 * 1024, peak
    assert time.monotonic() - started < 20


# --- the other errors, each with its code ------------------------------------------------------------------------
def test_ragged_rows():
    report = check(HEADER + row(1) + "Rossi;r@pec.it;1\r\n" + row(3).rstrip() + ";extra\r\n")
    assert codes(report) == {"row-too-few-fields": 1, "row-too-many-fields": 1}
    assert [i.row for i in report.errors] == [3, 4]
    assert "does a value hold a ';' without quotes?" in report.errors[1].reason


def test_trailing_delimiters_and_unnamed_trailing_columns_are_not_ragged():
    report = check(
        "Nome;PEC;Numero;Importo;Scadenza;;\r\n"
        + row(1)
        + row(2).rstrip()
        + ";;;;\r\n"
        + row(3).rstrip()
        + ";\r\n"
    )
    assert report.valid and report.rows == 3


def test_empty_merge_values_are_reported_per_column():
    report = check(HEADER + row(1, nome="", importo="") + row(2))
    issues = only(report, Code.VALUE_EMPTY)
    assert [(i.row, i.column) for i in issues] == [(2, "Nome"), (2, "Importo")]


def test_optional_columns_may_be_empty():
    manifest = {
        **MANIFEST,
        "body_text": "Gentile {{ nome }}{% if nota %} ({{ nota }}){% endif %}",
        "optional_columns": ["Nota"],
    }
    assert check(
        "Nome;PEC;Numero;Nota\r\nRossi;r@pec.it;1;\r\nBianchi;b@pec.it;2;urgente\r\n", manifest
    ).valid


def test_attachment_format_size_and_name():
    manifest = {**MANIFEST, "attachment_column": "File", "max_attachment_bytes": 1000}
    text = "Nome;PEC;Numero;Importo;Scadenza;File\r\n" + "".join(
        row(i).rstrip() + f";{name}\r\n"
        for i, name in enumerate(["a.exe", "grande.pdf", "../x.pdf", "", "ok.PDF"])
    )
    report = check(text, manifest, {"grande.pdf": 5000, "ok.PDF": 10})
    assert [(i.row, i.code) for i in report.errors] == [
        (2, Code.ATTACHMENT_FORMAT),
        (3, Code.ATTACHMENT_TOO_LARGE),
        (4, Code.ATTACHMENT_NAME_INVALID),
        (5, Code.VALUE_EMPTY),
    ]
    assert ".exe files are not accepted" in report.errors[0].reason
    assert report.valid_rows == 1


def test_message_too_large():
    manifest = {**MANIFEST, "attachments": ["a.pdf", "b.pdf"], "max_message_bytes": 1_000_000}
    issues = only(
        check(HEADER + row(1), manifest, {"a.pdf": 400_000, "b.pdf": 400_000}), Code.MESSAGE_TOO_LARGE
    )
    assert "about 1.1 MB with its attachments, over the 1.0 MB limit" in issues[0].reason


def test_generated_pdf_is_checked():
    manifest = {
        **MANIFEST,
        "pdf": {"filename": "avviso-{{ numero }}.pdf", "template": "Avviso {{ numero|importo }}"},
    }
    issues = only(check(HEADER + row(1) + row(2, numero="n/a"), manifest), Code.RENDER_FAILED)
    assert issues[0].row == 3 and issues[0].field == "pdf.template"


def test_duplicate_columns():
    issues = only(
        check("Nome;PEC;nome ;Numero;Importo;Scadenza\r\nA;a@pec.it;B;1;2;02/03/2026\r\n"),
        Code.COLUMN_DUPLICATE,
    )
    assert "'Nome' and 'nome'" in issues[0].reason


def test_a_raw_manifest_with_errors_is_reported_with_the_csv_structure():
    report = validate(
        b'{"mailbox": "x", "subject": "s", "body_text": "b", "colore": 1}',
        io.BytesIO((HEADER + row(1) + "a;b\r\n").encode()),
        DictAttachmentIndex(),
    )
    assert codes(report) == {"manifest-invalid": 2, "row-too-few-fields": 1}
    assert {i.field for i in report.campaign_errors} == {"mailbox", "colore"}
    assert report.rows == 2


def test_cp1252_excel_export_validates():
    raw = ("Nome;PEC;Numero;Importo;Scadenza\r\nNiccolò;n@pec.it;1;1.500,00 €;02/03/2026\r\n;;;;\r\n").encode(
        "cp1252"
    )
    report = check(raw)
    assert report.valid and report.encoding == "cp1252" and report.rows == 1


# --- the report -------------------------------------------------------------------------------------------
def test_the_report_keeps_the_first_errors_and_counts_all():
    text = HEADER + "".join(row(i, pec=f"bad{i}@") for i in range(1, 2501))
    manifest = {**MANIFEST, "attachments": ["manca.pdf"]}
    with check(text, manifest, max_errors=100) as report:
        assert report.error_count == 2501 and len(report.errors) == 101 and report.errors_truncated
        assert report.errors[0].code == Code.ATTACHMENT_NOT_FOUND
        data = report.to_json()
        assert json.loads(json.dumps(data)) == data
        assert data["valid"] is False and data["error_count"] == 2501 and data["errors_truncated"] is True
        assert data["errors"][1] == {
            "row": 2,
            "column": "PEC",
            "field": None,
            "code": "address-invalid",
            "reason": "'bad1@' is not a valid address: nothing after @",
            "message": "row 2, column PEC: 'bad1@' is not a valid address: nothing after @",
        }
        assert report.summary() == {
            "valid": False,
            "rows": 2500,
            "valid_rows": 0,
            "invalid_rows": 2500,
            "messages": 0,
            "error_count": 2501,
            "errors_by_code": {"attachment-not-found": 1, "address-invalid": 2500},
            "encoding": "utf-8",
            "delimiter": ";",
        }
        out = io.BytesIO()
        assert report.write_errors_csv(out) == 2501
        raw = out.getvalue()
        assert raw.startswith(b"\xef\xbb\xbf")
        lines = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
        assert lines[0] == ["row", "column", "code", "reason"]
        assert lines[1] == [
            "",
            "",
            "attachment-not-found",
            "attachments[0]: 'manca.pdf' is not in the attachments/ folder",
        ]
        assert lines[-1] == [
            "2501",
            "PEC",
            "address-invalid",
            "'bad2500@' is not a valid address: nothing after @",
        ]
    with pytest.raises(ValueError, match="closed"):
        report.write_errors_csv(io.BytesIO())


def test_the_errors_csv_is_formula_safe():
    report = check("=Nome;PEC;Numero;Importo;Scadenza\r\n" + row(1, nome="", pec='=HYPERLINK("http://x")@'))
    assert codes(report) == {"address-invalid": 1, "value-empty": 1}
    out = io.BytesIO()
    report.write_errors_csv(out)
    cells = list(csv.reader(io.StringIO(out.getvalue().decode("utf-8-sig")), delimiter=";"))
    assert cells[2][1] == "'=Nome"
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for line in cells for cell in line)


def test_the_scratch_database_goes_away(tmp_path):
    report = check(HEADER + row(1) + row(1), directory=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    report.close()
    assert list(tmp_path.iterdir()) == []


def test_progress_is_reported():
    calls = []
    check(
        HEADER + "".join(row(i) for i in range(1, 2501)),
        progress=lambda *a: calls.append(a),
        progress_every=1000,
    )
    assert [rows for rows, _ in calls] == [1000, 2000, 2500]
    assert calls[-1][1] == len((HEADER + "".join(row(i) for i in range(1, 2501))).encode())


# --- attachment indexes -------------------------------------------------------------------------------------------
def test_sqlite_attachment_index(tmp_path):
    entries = ((f"fatture/f{i}.pdf", i) for i in range(10_000))
    with SqliteAttachmentIndex(entries, directory=tmp_path) as index:
        assert index.get("fatture/f42.pdf") == 42 and index.get("fatture/F42.pdf") is None
        assert index.suggest("FATTURE/F42.PDF") == "fatture/f42.pdf" and index.suggest("x.pdf") is None
        assert len(index) == 10_000
        assert len(list(tmp_path.iterdir())) == 1
    assert list(tmp_path.iterdir()) == []


def test_sqlite_attachment_index_in_a_given_database_and_from_a_folder(tmp_path):
    folder = tmp_path / "attachments"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.pdf").write_bytes(b"12345")
    (folder / "sub" / "b.p7m").write_bytes(b"1")
    index = SqliteAttachmentIndex.from_directory(folder, path=tmp_path / "scratch.sqlite3")
    assert (index.get("a.pdf"), index.get("sub/b.p7m"), index.get("b.p7m")) == (5, 1, None)
    index.close()
    assert (tmp_path / "scratch.sqlite3").exists()  # a database the caller named is the caller's


# --- properties ---------------------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_validation_never_raises_on_random_bytes(raw):
    with validate(
        Manifest.from_dict(MANIFEST),
        io.BytesIO(raw),
        DictAttachmentIndex(),
        limits=CsvLimits(sniff_bytes=256),
    ) as report:
        assert report.valid == (report.error_count == 0)
        assert report.valid is False  # random bytes never make a campaign
        assert all(isinstance(i.code, Code) for i in report.errors)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=500), st.text(max_size=200))
def test_random_manifests_and_csv_text_never_raise(manifest, text):
    with validate(manifest, io.BytesIO((HEADER + text).encode()), DictAttachmentIndex()) as report:
        assert not report.valid or report.error_count == 0


_value = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_value, _value, _value, _value), max_size=20))
def test_random_rows_never_raise(rows):
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Nome", "PEC", "Numero", "Importo", "Scadenza"])
    writer.writerows([(a, b, c, d, "02/03/2026") for a, b, c, d in rows])
    with check(out.getvalue()) as report:
        assert report.rows <= len(rows)


# --- constant memory ---------------------------------------------------------------------------------------------
class Rows(io.RawIOBase):
    """`count` distinct valid rows, produced as they are read (nothing held, nothing on disk)."""

    def __init__(self, count: int):
        self.count, self.done, self.buffer = count, 0, HEADER.encode()

    def readable(self):
        return True

    def read(self, size=-1):
        parts, have = [self.buffer], len(self.buffer)
        while have < size and self.done < self.count:
            self.done += 1
            line = b"Cliente %d;cliente%d@pec.it;%d;%d,50;02/03/2026\r\n" % (
                self.done,
                self.done,
                self.done,
                self.done,
            )
            parts.append(line)
            have += len(line)
        data = b"".join(parts)
        out, self.buffer = data[:size], data[size:]
        return out


def _peak(count: int) -> tuple[int, campaign.ValidationReport]:
    manifest = Manifest.from_dict(MANIFEST)
    tracemalloc.start()
    try:
        report = validate(manifest, Rows(count), DictAttachmentIndex())
        return tracemalloc.get_traced_memory()[1], report
    finally:
        tracemalloc.stop()


def test_memory_is_the_same_for_1000_and_10000_rows():
    """Ten times the rows, the same peak: anything kept per row (30 bytes and up) breaks the 20 %.
    bench/validate_memory.py measures 100,000 rows."""
    check(HEADER + row(1)).close()  # templates compiled, modules loaded
    small, report = _peak(1_000)
    assert report.valid and report.rows == 1_000
    report.close()
    large, report = _peak(10_000)
    assert report.valid and report.rows == 10_000
    report.close()
    assert abs(large - small) <= 0.2 * small, (small, large)


# --- pecflow campaign validate -----------------------------------------------------------------------------------
@pytest.fixture
def package(tmp_path):
    (tmp_path / "attachments").mkdir()
    (tmp_path / "attachments" / "informativa.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "manifest.json").write_text(json.dumps({**MANIFEST, "attachments": ["informativa.pdf"]}))
    (tmp_path / "recipients.csv").write_text(HEADER + row(1) + row(2))
    return tmp_path


def run_cli(*args: str) -> int:
    return cli.main(["campaign", "validate", *args])


def test_cli_valid(package, capsys):
    assert (
        run_cli("--manifest", str(package / "manifest.json"), "--csv", str(package / "recipients.csv")) == 0
    )
    out = capsys.readouterr().out
    assert "recipients.csv: 2 rows, UTF-8, delimiter ';'" in out and "VALID: 2 recipients ready" in out
    report = json.loads((package / "recipients.validation.json").read_text())
    assert report["valid"] is True and report["rows"] == 2
    assert (
        package / "recipients.validation-errors.csv"
    ).read_bytes() == b"\xef\xbb\xbfrow;column;code;reason\r\n"


def test_cli_invalid(package, capsys, tmp_path):
    (package / "recipients.csv").write_text(
        HEADER + row(1) + row(2, pec="rossi@") + row(3, pec="CLIENTE1@pec.it")
    )
    reports = tmp_path / "reports"
    code = run_cli(
        "--manifest",
        str(package / "manifest.json"),
        "--csv",
        str(package / "recipients.csv"),
        "--report-dir",
        str(reports),
        "--show",
        "1",
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "INVALID: 2 error(s): 2 row(s) with errors" in out
    assert "row 3, column PEC: 'rossi@' is not a valid address: nothing after @" in out
    assert "... and 1 more in recipients.validation-errors.csv" in out
    assert json.loads((reports / "recipients.validation.json").read_text())["error_count"] == 2
    lines = (reports / "recipients.validation-errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == 3 and lines[2].startswith("4;PEC;address-duplicate;")


def test_cli_attachments_folder(package, tmp_path):
    other = tmp_path / "altrove"
    other.mkdir()
    assert (
        run_cli(
            "--manifest",
            str(package / "manifest.json"),
            "--csv",
            str(package / "recipients.csv"),
            "--attachments",
            str(other),
        )
        == 1
    )
    assert (
        run_cli(
            "--manifest",
            str(package / "manifest.json"),
            "--csv",
            str(package / "recipients.csv"),
            "--attachments",
            str(tmp_path / "nowhere"),
        )
        == 2
    )


def test_cli_invalid_manifest_is_a_report_not_a_crash(package, capsys):
    (package / "manifest.json").write_text("{ not json")
    assert (
        run_cli("--manifest", str(package / "manifest.json"), "--csv", str(package / "recipients.csv")) == 1
    )
    assert "not valid JSON" in capsys.readouterr().out


def test_cli_usage_errors(package, capsys):
    assert run_cli("--manifest", str(package / "nope.json"), "--csv", str(package / "recipients.csv")) == 2
    assert "nope.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        run_cli("--csv", str(package / "recipients.csv"))
    assert caught.value.code == 2


def test_cli_shows_progress_on_big_files(package, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_PROGRESS_SECONDS", 0.0)
    (package / "recipients.csv").write_text(HEADER + "".join(row(i) for i in range(1, 3001)))
    assert (
        run_cli("--manifest", str(package / "manifest.json"), "--csv", str(package / "recipients.csv")) == 0
    )
    err = capsys.readouterr().err
    assert "… 1,000 rows read" in err and "… 3,000 rows read (100%" in err

"""Reading recipients.csv as people produce it: encodings, delimiters, quoting, limits."""

from __future__ import annotations

import codecs
import csv
import io

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pecflow.domain.campaign import Code, CsvError, CsvLimits, read_rows


def rows_of(data: bytes, **kwargs):
    reader = read_rows(io.BytesIO(data), **kwargs)
    return reader.format, [(r.number, r.values, r.cells) for r in reader]


def error_of(data: bytes, **kwargs) -> CsvError:
    with pytest.raises(CsvError) as caught:
        reader = read_rows(io.BytesIO(data), **kwargs)
        for _ in reader:
            pass
    return caught.value


class Trickle(io.RawIOBase):
    """A stream that returns fewer bytes than asked, as network bodies do."""

    def __init__(self, data: bytes, step: int = 7):
        self.data, self.at, self.step = data, 0, step

    def readable(self):
        return True

    def read(self, size=-1):
        size = self.step if size < 0 else min(size, self.step)
        out = self.data[self.at : self.at + size]
        self.at += len(out)
        return out


ITALIAN = (
    "Nome;Città;PEC;Importo\r\nNiccolò;Forlì;niccolo@pec.it;1.500,00 €\r\nAndrea;Cantù;andrea@pec.it;è 0\r\n"
)


@pytest.mark.parametrize(
    "encoding, detected",
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("cp1252", "cp1252"),
        ("utf-16", "utf-16"),
    ],
)
def test_encodings(encoding, detected):
    fmt, rows = rows_of(ITALIAN.encode(encoding))
    assert fmt.encoding == detected
    assert fmt.header == ("Nome", "Città", "PEC", "Importo")
    assert rows[0][1] == {
        "nome": "Niccolò",
        "città": "Forlì",
        "pec": "niccolo@pec.it",
        "importo": "1.500,00 €",
    }
    assert rows[1][1]["importo"] == "è 0"


def test_windows_1252_is_what_excel_on_italian_windows_writes():
    raw = "nome;nota\r\nà è é ì ò ù;costo 5 €\r\n".encode("cp1252")
    assert b"\x80" in raw and b"\xe0" in raw  # € and à as single bytes: not UTF-8
    fmt, rows = rows_of(raw)
    assert fmt.encoding == "cp1252"
    assert rows[0][1] == {"nome": "à è é ì ò ù", "nota": "costo 5 €"}


@pytest.mark.parametrize("delimiter", [";", ",", "\t"])
def test_delimiters_are_sniffed(delimiter):
    text = (
        delimiter.join(["nome", "pec", "importo"]) + "\n" + delimiter.join(["Rossi", "r@pec.it", "12"]) + "\n"
    )
    fmt, rows = rows_of(text.encode())
    assert fmt.delimiter == delimiter
    assert rows == [(2, {"nome": "Rossi", "pec": "r@pec.it", "importo": "12"}, 3)]


def test_the_delimiter_is_the_one_the_header_and_rows_agree_on():
    # commas in Italian amounts and in the header text must not fool the sniffer
    text = "Cognome, Nome;PEC;Importo (€, IVA inclusa)\nRossi, Mario;r@pec.it;1.500,00\nBianchi, Anna;b@pec.it;2,50\n"
    fmt, rows = rows_of(text.encode())
    assert fmt.delimiter == ";"
    assert rows[0][1] == {
        "cognome_nome": "Rossi, Mario",
        "pec": "r@pec.it",
        "importo_iva_inclusa": "1.500,00",
    }


def test_a_single_column_file():
    fmt, rows = rows_of(b"PEC\r\na@pec.it\r\nb@pec.it\r\n")
    assert fmt.header == ("PEC",) and [r[1] for r in rows] == [{"pec": "a@pec.it"}, {"pec": "b@pec.it"}]


def test_excels_sep_line_sets_the_delimiter_and_is_no_row():
    fmt, rows = rows_of(b"sep=,\r\nnome;x,pec\r\nRossi;y,r@pec.it\r\n")
    assert fmt.delimiter == "," and fmt.header == ("nome;x", "pec") and fmt.header_row == 1
    assert rows == [(2, {"nome_x": "Rossi;y", "pec": "r@pec.it"}, 2)]


def test_quoted_fields_with_delimiters_quotes_and_newlines_stay_one_row():
    text = 'nome;indirizzo;pec\r\n"Rossi; Mario";"Via ""Roma"" 1\r\n20100 Milano";r@pec.it\r\nBianchi;"a\nb";b@pec.it\r\n'
    fmt, rows = rows_of(text.encode())
    assert rows == [
        (2, {"nome": "Rossi; Mario", "indirizzo": 'Via "Roma" 1\r\n20100 Milano', "pec": "r@pec.it"}, 3),
        (3, {"nome": "Bianchi", "indirizzo": "a\nb", "pec": "b@pec.it"}, 3),
    ]


def test_header_names_are_trimmed_and_case_insensitive():
    fmt, rows = rows_of(b"  NOME ;Pec  ; Ragione   Sociale\nRossi;r@pec.it;ACME srl\n")
    assert fmt.header == ("NOME", "Pec", "Ragione   Sociale")
    assert fmt.columns == ("nome", "pec", "ragione_sociale")
    assert fmt.display("ragione_sociale") == "Ragione   Sociale"
    assert rows[0][1] == {"nome": "Rossi", "pec": "r@pec.it", "ragione_sociale": "ACME srl"}


def test_values_are_trimmed():
    _, rows = rows_of(b"nome;pec\n  Rossi  ; r@pec.it \n")
    assert rows[0][1] == {"nome": "Rossi", "pec": "r@pec.it"}


def test_blank_lines_and_empty_excel_rows_are_skipped_but_counted():
    fmt, rows = rows_of(
        b"\r\nnome;pec;;\r\n\r\nRossi;r@pec.it;;\r\n;;;\r\n  ;  ;;\r\nBianchi;b@pec.it;;\r\n\r\n"
    )
    assert fmt.header_row == 2 and fmt.columns == ("nome", "pec", "", "")
    # spreadsheet numbering: what Excel shows beside each row
    assert [(n, v["nome"]) for n, v, _ in rows] == [(4, "Rossi"), (7, "Bianchi")]
    assert all(set(v) == {"nome", "pec"} for _, v, _ in rows)  # unnamed columns left out


def test_ragged_rows_are_yielded_with_their_cell_count():
    fmt, rows = rows_of(b"a;b;c\n1;2;3\n1;2\n1;2;3;4\n1;2;3;;\n")
    assert fmt.width == fmt.named_width == 3
    # trailing empty cells past the header are trailing delimiters, not fields
    assert [(n, cells) for n, _, cells in rows] == [(2, 3), (3, 2), (4, 4), (5, 3)]
    assert rows_of(b"a;b;;\n1;2\n")[0].named_width == 2


@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\r"])
def test_line_endings(ending):
    fmt, rows = rows_of(ending.join([b"nome;pec", b"Rossi;r@pec.it", b"Bianchi;b@pec.it"]) + ending)
    assert [v["nome"] for _, v, _ in rows] == ["Rossi", "Bianchi"]
    assert [n for n, _, _ in rows] == [2, 3]


def test_a_stream_returning_short_reads():
    raw = ITALIAN.encode("cp1252") * 1
    reader = read_rows(Trickle(raw, step=3))
    assert reader.format.encoding == "cp1252"
    assert [r.values["città"] for r in reader] == ["Forlì", "Cantù"]


def test_no_final_newline():
    _, rows = rows_of(b"nome;pec\nRossi;r@pec.it")
    assert rows == [(2, {"nome": "Rossi", "pec": "r@pec.it"}, 2)]


# --- what cannot be read ---------------------------------------------------------------------------------
def test_invalid_utf8_after_the_sniff_window_names_its_row():
    head = b"nome;pec\n" + b"".join(b"Rossi %d;r%d@pec.it\n" % (i, i) for i in range(2, 2000))
    raw = head + b"Citt\xe0;bad@pec.it\n" + b"Rossi;z@pec.it\n"
    error = error_of(raw, limits=CsvLimits(sniff_bytes=4096))
    assert error.issue.code == Code.CSV_ENCODING
    assert error.issue.row == 2000  # header row 1, data rows 2..1999, then this one
    assert "0xE0" in error.issue.reason and "not valid UTF-8" in error.issue.reason


def test_invalid_utf8_after_the_default_one_mib_window():
    lines = [b"nome;pec\n"] + [b"%08d;r%08d@pec.it\n" % (i, i) for i in range(2, 50_000)]
    raw = b"".join(lines)
    assert len(raw) > 1024 * 1024
    error = error_of(raw + b'"multi\nline \x80 row";x@pec.it\n')
    assert error.issue.code == Code.CSV_ENCODING and error.issue.row == 50_000


def test_rows_before_the_bad_byte_are_read():
    reader = read_rows(
        io.BytesIO(b"nome;pec\n" + b"a;a@pec.it\n" * 3000 + b"\xff;x\n"), limits=CsvLimits(sniff_bytes=1024)
    )
    seen = []
    with pytest.raises(CsvError) as caught:
        for row in reader:
            seen.append(row.number)
    assert seen == list(range(2, 3002)) and caught.value.issue.row == 3002


def test_reading_on_after_an_error_raises_it_again():
    reader = read_rows(io.BytesIO(b'nome;pec\n"a;b\n'))
    with pytest.raises(CsvError) as first:
        next(reader)
    with pytest.raises(CsvError) as again:
        next(reader)
    assert again.value is first.value


def test_bytes_undefined_in_windows_1252():
    error = error_of("nome;pec\nà;a@pec.it\n".encode("cp1252") + b"\x81;b@pec.it\n")
    assert (
        error.issue.code == Code.CSV_ENCODING
        and error.issue.row == 3
        and "Windows-1252" in error.issue.reason
    )


@pytest.mark.parametrize(
    "raw, what",
    [
        (b"PK\x03\x04\x14\x00\x06\x00", "Excel .xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", ".xls"),
        (b"%PDF-1.7\n", "PDF"),
        ("nome;pec\n".encode("utf-16-le"), "NUL bytes"),
    ],
)
def test_files_that_are_not_text(raw, what):
    error = error_of(raw)
    assert error.issue.code == Code.CSV_NOT_TEXT and what in error.issue.reason


@pytest.mark.parametrize("raw", [b"", b"\xef\xbb\xbf", b"\r\n\r\n  \n", b"\xff\xfe"])
def test_empty_files(raw):
    assert error_of(raw).issue.code == Code.CSV_EMPTY


def test_an_unclosed_quote():
    error = error_of(b'nome;pec\nRossi;r@pec.it\n"Bianchi;b@pec.it\nVerdi;v@pec.it\n')
    assert error.issue.code == Code.CSV_UNCLOSED_QUOTE and error.issue.row == 3


def test_text_after_a_closing_quote():
    error = error_of(b'nome;pec\n"Rossi" Mario;r@pec.it\n')
    assert error.issue.code == Code.CSV_MALFORMED and error.issue.row == 2 and '""' in error.issue.reason


def test_a_field_over_the_limit():
    error = error_of(b"nome;pec\n" + b"x" * 200 + b";r@pec.it\n", limits=CsvLimits(max_field_chars=100))
    assert error.issue.code == Code.FIELD_TOO_LARGE and error.issue.row == 2 and error.issue.column == "nome"


def test_a_quote_left_open_swallowing_the_file_stops_at_the_field_limit():
    raw = b'nome;pec\n"Rossi;r@pec.it\n' + b"Bianchi;b@pec.it\n" * 20_000
    error = error_of(raw, limits=CsvLimits(max_field_chars=10_000))
    assert error.issue.code == Code.FIELD_TOO_LARGE and error.issue.row == 2


def test_a_line_over_the_row_limit():
    error = error_of(b"nome;pec\n" + b"x;" * 100_000 + b"\n", limits=CsvLimits(max_row_chars=50_000))
    assert error.issue.code == Code.ROW_TOO_LONG and error.issue.row == 2


def test_a_file_over_the_size_limit_is_refused_before_reading_when_its_size_is_known():
    body = io.BytesIO(b"nome;pec\n" + b"a;a@pec.it\n" * 100)
    with pytest.raises(CsvError) as caught:
        read_rows(body, limits=CsvLimits(max_bytes=500))
    assert caught.value.issue.code == Code.CSV_TOO_LARGE and body.tell() == 0
    with pytest.raises(CsvError):
        read_rows(Trickle(b"x"), size=10**9)


def test_a_stream_over_the_size_limit_stops_when_it_passes_it():
    stream = Trickle(b"nome;pec\n" + b"a;a@pec.it\n" * 10_000, step=4096)
    reader = read_rows(stream, limits=CsvLimits(max_bytes=50_000, sniff_bytes=8192))
    count = 0
    with pytest.raises(CsvError) as caught:
        for _ in reader:
            count += 1
    assert caught.value.issue.code == Code.CSV_TOO_LARGE and "split it" in caught.value.issue.reason
    assert 4000 < count < 50_000 // 11 and stream.at <= 50_000 + 65536


# --- any table survives the trip through a spreadsheet-like CSV ----------------------------------------------
_cell = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
_latin = st.text(st.sampled_from(list("abcàèéìòù €ÀÈ;,\t\"'\r\n xyz0123456789@.")), max_size=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_cells_round_trip(data):
    width = data.draw(st.integers(2, 6))
    delimiter = data.draw(st.sampled_from([";", ",", "\t"]))
    encoding = data.draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]))
    cells = _latin if encoding == "cp1252" else _cell
    header = [
        data.draw(st.sampled_from(["", " ", "  "])) + f"Col{i}" + data.draw(st.sampled_from(["", " "]))
        for i in range(width)
    ]
    table = data.draw(st.lists(st.lists(cells, min_size=width, max_size=width), max_size=15))
    # Python 3.11's writer leaves a lone CR unquoted with "\n" line ends (no spreadsheet does): quote all then
    lineterminator, quoting = data.draw(st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\n", csv.QUOTE_ALL)]))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=lineterminator, quoting=quoting)
    writer.writerow(header)
    writer.writerows(table)
    raw = out.getvalue().encode(encoding)
    if encoding == "cp1252":
        try:  # cp1252 text that happens to be valid UTF-8 is UTF-8: nobody can tell
            raw.decode("utf-8")
            assume(raw.isascii())
        except UnicodeDecodeError:
            pass
    reader = read_rows(io.BytesIO(raw))
    assert reader.format.delimiter == delimiter
    assert reader.format.columns == tuple(f"col{i}" for i in range(width))
    expected = [
        {f"col{i}": cell.strip() for i, cell in enumerate(row)}
        for row in table
        if any(cell.strip() for cell in row)
    ]
    got = [row.values for row in reader]
    assert got == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_read_or_fail_with_a_csv_error(raw):
    try:
        reader = read_rows(io.BytesIO(raw), limits=CsvLimits(sniff_bytes=512))
        for row in reader:
            assert row.number > reader.format.header_row
    except CsvError as exc:
        assert exc.issue.code in set(Code)


def test_bom_only_utf16_header():
    raw = codecs.BOM_UTF16_LE + "pec\na@pec.it\n".encode("utf-16-le")
    fmt, rows = rows_of(raw)
    assert fmt.encoding == "utf-16" and rows == [(2, {"pec": "a@pec.it"}, 1)]

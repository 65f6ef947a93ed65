"""A sender controls every byte: the parser stays linear, bounded and crash-proof.

One test per hostile shape that once made the classifier quadratic, huge in memory, or
crash (issue 10). Behaviour is asserted first (kind kept, a problem saying what was not
read, no exception, every string UTF-8-encodable); where time must be bounded, the same
work is timed at n and 4n and the ratio compared, never absolute seconds.
bench/hostile.py measures the same shapes at full size.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local.pecbuild import builder
from pecflow import cli
from pecflow.pec import daticert, kinds, message, mime, p7m, safexml
from tests.unit.test_robustness import _replace_daticert

WHEN = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
RECEIPT = (
    b"From: posta-certificata@pec.esempio.it\r\nTo: mittente@pec.esempio.it\r\n"
    b"Subject: ACCETTAZIONE: prova\r\nDate: Mon, 02 Mar 2026 10:30:00 +0100\r\n"
    b"Message-ID: <ricevuta@pec.esempio.it>\r\nX-Ricevuta: accettazione\r\n"
    b"X-Riferimento-Message-ID: <orig@pec.esempio.it>\r\nMIME-Version: 1.0\r\n"
)


def _original() -> bytes:
    return builder.messaggio_originale(
        mittente="mittente@pec.esempio.it",
        destinatari=["dest@pec.esempio.it"],
        oggetto="prova",
        testo="testo\n",
        message_id="<orig@pec.esempio.it>",
        data=WHEN,
    )


@pytest.fixture(scope="module")
def receipt() -> bytes:
    return builder.ricevuta(
        kinds.ACCETTAZIONE,
        _original(),
        gestore=builder.SIMULATO,
        identificativo="opec.1@pec.simulato.test",
        data=WHEN,
    )


def _utf8_safe(result: message.PecMessage) -> dict:
    """to_dict() as `pecflow classify --json` prints it: must serialise and encode to UTF-8."""
    record = result.to_dict()
    json.dumps(record, ensure_ascii=False).encode("utf-8")
    for problem in result.problems:
        problem.encode("utf-8")
    return record


def _ratio(work, small, large) -> float:
    """Best-of-5 time of work(large) over work(small), with a floor against timer noise."""

    def best(arg):
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            work(arg)
            runs.append(time.perf_counter() - start)
        return min(runs)

    work(small)  # warm-up
    return best(large) / max(best(small), 0.005)


def _linear(work, small, large) -> None:
    """work(4n) stays within 8x work(n): quadratic work would take 16x. A busy machine can
    disturb one measurement, not three in a row."""
    ratios = []
    for _ in range(3):
        ratios.append(_ratio(work, small, large))
        if ratios[-1] <= 8:
            return
    pytest.fail(f"work(4n) / work(n) = {ratios}")


# --- charsets ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "charset",
    ["punycode", "idna", "rot13", "uu", "zlib", "hex", "base64", "x-no-such", "utf-8\x00", "a" * 200],
)
def test_only_known_linear_codecs_decode(charset):
    assert mime.safe_codec(charset) is None


@pytest.mark.parametrize(
    "charset,codec",
    [
        ("UTF-8", "utf_8"),
        ("us-ascii", "ascii"),
        ("ISO-8859-15", "iso8859_15"),
        ("windows-1252", "cp1252"),
        ("Shift_JIS", "shift_jis"),
        ('"koi8-r"', "koi8_r"),
        ("utf-7", "utf_7"),
        ("GB2312", "gb2312"),
    ],
)
def test_usual_charsets_resolve(charset, codec):
    assert mime.safe_codec(charset) == codec


def test_punycode_text_part_is_a_problem_not_quadratic_work():
    raw = RECEIPT + b"Content-Type: text/plain; charset=punycode\r\n\r\n-" + b"a" * 200_000
    result = message.parse(raw)
    assert result.kind == kinds.ACCETTAZIONE
    assert "charset 'punycode' not decoded: text read as UTF-8/Windows-1252" in result.problems
    assert result.body_text() == "-" + "a" * 200_000
    _utf8_safe(result)


def test_punycode_inside_an_anomalia_envelope():
    inner = RECEIPT + b"Content-Type: text/plain; charset=punycode\r\n\r\n-" + b"a" * 200_000
    raw = builder.busta_anomalia(inner, gestore=builder.SIMULATO, data=WHEN, motivo="non certificato")
    result = message.parse(raw)
    assert result.kind == kinds.ANOMALIA
    assert result.postacert.kind == kinds.ACCETTAZIONE
    assert any("charset 'punycode' not decoded" in p for p in result.postacert.problems)


def test_text_decoding_is_linear():
    def work(n):  # valid punycode: Python's decoder is quadratic in it
        mime.Part(b"Content-Type: text/plain; charset=punycode\r\n\r\n-" + b"a" * n).text()

    _linear(work, 200_000, 800_000)


# --- RFC 2047 encoded words ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "value,expected",
    [
        ("=?utf-8?q?Caf=C3=A9?=", "Café"),
        ("Re: =?utf-8?q?Caf=C3=A9?= bar", "Re: Café bar"),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # blanks between words dropped
        ("=?utf-8?q?a?=\t =?iso-8859-1?q?=E8?=", "aè"),
        ("=?utf-8?q?a?= x =?utf-8?q?b?=", "a x b"),  # ... but not other text
        ("=?utf-8?B?w6g=?==?utf-8?B?w6g=?=", "èè"),
        ("=?utf-8?q?=C3?= =?utf-8?q?=A8?=", "è"),  # a character split across words
        ("=?UTF-8*it?Q?caf=C3=A9_bar?=", "café bar"),  # RFC 2231 language, '_' is a space
        ("=?utf-8?b?!!!?= ok", "=?utf-8?b?!!!?= ok"),  # a broken word stays as it is
        ("=?utf-8?q?abc=?=", "abc="),
        ("=?utf-8?q?a", "=?utf-8?q?a"),
        ("plain text", "plain text"),
    ],
)
def test_encoded_words(value, expected):
    assert mime.decode_text(value) == expected


def test_encoded_word_in_an_unknown_charset_is_reported():
    problems = []
    assert mime.decode_text("=?x-bogus?Q?abc?=", problems) == "abc"
    assert problems == ["charset 'x-bogus' not decoded: text read as UTF-8/Windows-1252"]


def test_encoded_words_decode_linearly():
    _linear(lambda n: mime.decode_text("=?utf-8?q?a=C3=A9?= " * n), 20_000, 80_000)
    _linear(lambda n: mime.decode_text("=?utf-8?q?a" * n), 100_000, 400_000)


def test_huge_subject_of_encoded_words_is_cut_and_reported():
    raw = b"From: a@b.it\r\nSubject: " + b"=?utf-8?q?a?= " * 100_000 + b"\r\n\r\nbody\r\n"
    result = message.parse(raw)
    assert result.subject.startswith("aaaa") and len(result.subject) < mime.MAX_FIELD_CHARS // 10
    cut = f"Subject header field of 1400003 characters: only the first {mime.MAX_FIELD_CHARS} read"
    assert cut in result.problems


# --- lone surrogates --------------------------------------------------------------------------------
def test_utf7_surrogate_subject_never_reaches_the_output(tmp_path, capsys):
    raw = RECEIPT.replace(b"Subject: ACCETTAZIONE: prova", b"Subject: =?utf-7?Q?+2D0-?=") + b"\r\nbody\r\n"
    result = message.parse(raw)
    assert result.subject == "\ufffd"
    _utf8_safe(result)
    path = tmp_path / "surrogate.eml"
    path.write_bytes(raw)
    assert cli.main(["classify", "--json", str(path)]) == 0
    line = capsys.readouterr().out.strip()
    assert json.loads(line)["subject"] == "\ufffd"
    line.encode("utf-8")


def test_utf7_filename_and_body_are_clean():
    raw = (
        b"From: a@b.it\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n"
        b"Content-Type: text/plain; charset=utf-7\r\n\r\n+2D0-\r\n--z\r\n"
        b'Content-Type: application/pdf; name="=?utf-7?Q?+2D0-.pdf?="\r\n\r\n%PDF\r\n--z--\r\n'
    )
    result = message.parse(raw)
    assert result.body_text() == "\ufffd"
    assert result.attachments[0].filename == "\ufffd.pdf"
    _utf8_safe(result)


def test_cli_goes_on_after_a_file_that_cannot_be_classified(tmp_path, capsys, monkeypatch):
    good, bad = tmp_path / "a.eml", tmp_path / "b.eml"
    good.write_bytes(RECEIPT + b"\r\nbody\r\n")
    bad.write_bytes(b"boom")
    real = message.classify

    def classify(raw):
        if raw == b"boom":
            raise RuntimeError("exploded")
        return real(raw)

    monkeypatch.setattr(message, "classify", classify)
    assert cli.main(["classify", "--json", str(bad), str(good)]) == 1
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[0]["kind"] is None and "RuntimeError: exploded" in records[0]["problems"][0]
    assert records[1]["kind"] == kinds.ACCETTAZIONE


def test_cli_prints_a_record_whose_strings_hold_surrogates(tmp_path, capsys, monkeypatch):
    path = tmp_path / "a.eml"
    path.write_bytes(RECEIPT + b"\r\nbody\r\n")
    real = message.PecMessage.to_dict
    monkeypatch.setattr(message.PecMessage, "to_dict", lambda self: {**real(self), "subject": "x\udc80y"})
    assert cli.main(["classify", "--json", str(path)]) == 0
    assert cli.main(["classify", str(path)]) == 0
    out = capsys.readouterr().out
    out.encode("utf-8")
    assert json.loads(out.splitlines()[0])["subject"] == "x?y"


# --- daticert.xml in odd encodings ------------------------------------------------------------
def _daticert_xml(receipt: bytes) -> bytes:
    start = receipt.index(b"\r\n\r\n", receipt.index(b"daticert.xml")) + 4
    return base64.b64decode(receipt[start : receipt.index(b"\r\n--", start)])


@pytest.mark.parametrize(
    "encoding,problem",
    [
        ("utf-7", "daticert.xml: encoding 'utf-7' not supported"),
        ("utf-32", "daticert.xml: not well-formed XML"),
        ("x-no-such", "daticert.xml: encoding 'x-no-such' not supported"),
        ("punycode", "daticert.xml: encoding 'punycode' not supported"),
        ("hex", "daticert.xml: encoding 'hex' not supported"),
    ],
)
def test_hostile_daticert_encoding_keeps_the_receipt(receipt, encoding, problem):
    xml = _daticert_xml(receipt).replace(b'encoding="UTF-8"', f'encoding="{encoding}"'.encode())
    result = message.parse(_replace_daticert(receipt, xml))
    assert result.kind == kinds.ACCETTAZIONE
    assert result.ref_message_id == "<orig@pec.esempio.it>"  # from X-Riferimento-Message-ID
    assert any(p.startswith(problem) for p in result.problems), result.problems
    _utf8_safe(result)


def test_daticert_in_shift_jis_is_read_and_reported(receipt):
    xml = _daticert_xml(receipt).replace(b'encoding="UTF-8"', b'encoding="Shift_JIS"')
    xml = xml.decode("utf-8").replace("prova", "プロバ").encode("shift_jis")
    result = message.parse(_replace_daticert(receipt, xml))
    assert result.kind == kinds.ACCETTAZIONE
    assert result.original_subject == "プロバ"
    assert result.provider == builder.SIMULATO.name
    assert "daticert.xml: declares the unusual encoding 'Shift_JIS'" in result.problems


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0" encoding="utf-7"?><a>+2D0-</a>',
        b'<?xml version="1.0" encoding="shift_jis"?><a>x</a>',
        b'<?xml version="1.0" encoding="utf-32"?><a>x</a>',
        b'<?xml version="1.0" encoding="zlib"?><a>x</a>',
        b'<?xml version="1.0" encoding="rot13"?><a>x</a>',
        b'<?xml version="1.0" encoding="idna"?><a>x</a>',
        b'<?xml encoding="cp1252" <a>x</a>',
        b'<?xml version="1.0" encoding="' + b"x" * 5000 + b'"?><a/>',
        b"\xff\xfe\x00\x00<\x00\x00\x00",
        b"<a>\x00</a>",
    ],
)
def test_safexml_raises_only_xml_error(data):
    try:
        safexml.parse(data)
    except safexml.XmlError:
        pass
    try:
        daticert.parse(data)
    except daticert.DaticertError:
        pass


def test_xml_elements_are_bounded_by_the_document_size():
    with pytest.raises(safexml.XmlError, match="elements"):
        safexml.parse(b"<r>" + b"<a/>" * 20_000 + b"</r>")
    assert len(safexml.parse(b"<r>" + b"<abc>12345678</abc>" * 3_000 + b"</r>").children) == 3_000


# --- addresses ----------------------------------------------------------------------------------
@pytest.mark.parametrize("count,why", [(1_000, "a comment left open"), (100_000, "100006 characters")])
def test_from_with_nested_parentheses_is_a_problem_on_from(receipt, count, why):
    raw = receipt.replace(
        b"From: posta-certificata@pec.simulato.test", b"From: " + b"(" * count + b"a@b.it", 1
    )
    assert raw != receipt
    result = message.parse(raw)
    assert result.kind == kinds.ACCETTAZIONE
    assert result.from_address is None
    assert any(p.startswith("From header unreadable: ") and why in p for p in result.problems), (
        result.problems
    )
    _utf8_safe(result)


def test_address_reader_gets_a_bounded_share():
    raw = (
        RECEIPT.replace(b"To: mittente@pec.esempio.it", b"To: " + b"@" * 100_000)
        + b"Cc: "
        + b"<" * 50_000
        + b"\r\n\r\nbody\r\n"
    )
    start = time.perf_counter()
    result = message.parse(raw)
    assert time.perf_counter() - start < 5  # unbounded, reading token by token takes about 1 s here
    assert result.to == [] and result.cc == []
    assert any(p.startswith("To header unreadable: 100000 characters") for p in result.problems)
    assert any(p.startswith("Cc header unreadable: not an address inside '<…>'") for p in result.problems)


def test_addresses_read_are_bounded_per_message():
    raw = b"From: a@b.it\r\n" + (b"To: " + b"a@b," * 6_000 + b"\r\n") * 3 + b"Cc: c@d.it\r\n\r\nbody\r\n"
    result = message.parse(raw)
    assert len(result.to) == message.MAX_ADDRESSES and result.cc == []
    assert f"To: addresses beyond the {message.MAX_ADDRESSES} read for one message ignored" in result.problems


def test_quoted_display_names_take_the_fast_path():
    names = ", ".join(f'"Rossi, Mario {i}" <m{i}@pec.esempio.it>' for i in range(5_000))
    assert message._addresses([names]) == [f"m{i}@pec.esempio.it" for i in range(5_000)]
    assert message._address('"Per conto di: a@b.it" <posta-certificata@pec.it>') == "posta-certificata@pec.it"


@pytest.mark.parametrize(
    "shape",
    [
        lambda n: "a@b" + " " * n + "x",  # the old \s*>?\s* tail
        lambda n: " " * n + "x@y z",
        lambda n: "Per conto di: a" + " " * n + "b",  # the old (.+?)\s*$
    ],
)
def test_address_shapes_do_not_backtrack(shape):
    def work(n):
        value = shape(n)
        message._address(value, "From", [], message._Budget())
        message._ON_BEHALF.match(value)

    _linear(work, 15_000, 60_000)  # within MAX_ADDRESS_CHARS: read token by token


# --- MIME structure ------------------------------------------------------------------------------
def test_mime_bomb_reports_the_part_budget():
    inner = b"Content-Type: multipart/mixed; boundary=i\r\n\r\n" + b"--i\r\n\r\n" * 200 + b"--i--\r\n"
    raw = (
        b"From: a@b.it\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n"
        + b"--o\r\n" * 1
        + (b"--o\r\n").join([inner] * 200)
        + b"--o--\r\n"
    )
    result = message.parse(raw)
    assert f"more than {mime.MAX_TOTAL_PARTS} MIME parts in the message: the rest not read" in result.problems
    assert sum(1 for _ in result.root.walk()) <= mime.MAX_TOTAL_PARTS + 1
    _utf8_safe(result)


def test_deep_nesting_is_cut_and_reported():
    levels = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(20_000)
    )
    result = message.parse(b"From: a@b.it\r\n" + levels + b"\r\nleaf\r\n")
    assert any("nested deeper than" in p for p in result.problems)


def test_boundary_look_alikes_are_skipped_in_c():
    def work(n):
        raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n" + b"--bx\r\n" * n + b"--b--\r\n"
        assert len(mime.Part(raw).children) == 1

    _linear(work, 50_000, 200_000)


def test_delimiters_with_every_tail():
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--bx\r\n--b \r\n\r\ntwo\r\n"
        b"--b-x\r\n--b\t\r\n\r\nthree\r\n--b--"
    )
    assert [p.body for p in mime.Part(raw).children] == [b"one\r\n--bx", b"two\r\n--b-x", b"three"]


def test_delimiters_with_every_tail_among_dense_look_alikes():
    pad = b"--bx\r\n--b-\r\n--bb\r\n" * 40  # dense look-alikes: the tails are looked for one by one
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n"
        + pad
        + b"--b \r\n\r\ntwo\r\n"
        + pad
        + b"--b\t\r\n\r\nthree\r\n"
        + pad
        + b"--b\n\nfour\n"
        + pad
        + b"--b--\r\nepilogue"
    )
    bodies = [p.body for p in mime.Part(raw).children]
    assert bodies == [head + pad[:-2] for head in (b"one\r\n", b"two\r\n", b"three\r\n", b"four\n")]
    inner = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nin\r\n" + pad + b"--b"
    outer = b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n" + inner + b"\r\n--o--\r\n"
    # a delimiter ending the range (its tail past it) opens a last, empty part, as it always did
    assert [p.body for p in mime.Part(outer).children[0].children] == [b"in\r\n" + pad[:-2], b""]


def _reference_split(raw: bytes, start: int, end: int, delim: bytes) -> list[tuple[int, int]]:
    """The delimiter scan as it was written before look-alikes were skipped in C."""
    spans, part_start, closed = [], -1, False
    if raw.startswith(delim, start):
        hit = start
    else:
        hit = raw.find(b"\n" + delim, start, end)
        hit = hit + 1 if hit != -1 else -1
    while hit != -1:
        after = hit + len(delim)
        tail = raw[after : after + 2]
        if tail != b"--" and tail and tail[:1] not in b" \t\r\n":
            hit = raw.find(b"\n" + delim, after, end)
            hit = hit + 1 if hit != -1 else -1
            continue
        if part_start != -1:
            pend = hit - 1 if hit > start and raw[hit - 1] == 0x0A else hit
            if pend > part_start and raw[pend - 1] == 0x0D:
                pend -= 1
            spans.append((part_start, max(pend, part_start)))
        if tail == b"--":
            closed = True
            break
        nl = raw.find(b"\n", after, end)
        part_start = end if nl == -1 else nl + 1
        hit = raw.find(b"\n" + delim, part_start - 1, end)
        hit = hit + 1 if hit != -1 else -1
    if not closed and part_start != -1:
        spans.append((part_start, end))
    return spans


_TOKENS = [b"--b", b"--b--", b"--bx", b"--b-", b"--b ", b"--b\t", b"--bb", b"\r\n", b"\n", b"x", b"\r"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=120), st.integers(0, 60), st.integers(0, 40))
def test_delimiter_scan_matches_the_simple_one(tokens, dense, cut):
    body = b"--bx\n" * dense + b"".join(tokens)  # dense look-alikes switch to the per-tail search
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body + b"\r\n--b--tail"
    part = mime.Part(raw, 0, len(raw) - min(cut, len(body)))
    spans = [(p.start, p.end) for p in part.children]
    assert spans == _reference_split(raw, part.body_start, part.end, b"--b")[: mime.MAX_PARTS]


def test_header_fields_are_capped():
    raw = b"X-A: b\r\n" * 100_000 + b"From: a@b.it\r\nSubject: " + b"s" * 400_000 + b"\r\n\r\nbody"
    part = mime.Part(raw)
    assert len(part.headers) == mime.MAX_HEADER_FIELDS
    assert part.body == b"body"
    assert f"98002 header fields beyond the first {mime.MAX_HEADER_FIELDS} ignored" in part.defects
    fields, _, defects = mime.parse_header_block(b"Subject: " + b"s" * 400_000 + b"\r\n")
    assert len(fields[0][1]) == mime.MAX_FIELD_CHARS - 1  # the blank after the colon stripped
    cut = f"Subject header field of 400003 characters: only the first {mime.MAX_FIELD_CHARS} read"
    assert defects == [cut]


def test_folded_header_is_unfolded_linearly_and_cut():
    folded = b"Subject: start\r\n" + b" more\r\n" * 400_000 + b" end"
    raw = RECEIPT.replace(b"Subject: ACCETTAZIONE: prova", folded) + b"\r\nbody\r\n"
    result = message.parse(raw)
    assert result.kind == kinds.ACCETTAZIONE
    assert result.subject.startswith("start more more")
    assert any(p.startswith("Subject header field of") for p in result.problems)
    _linear(lambda n: mime.parse_header_block(b"Subject: a" + b"\r" * n + b"b\r\n c\r\n"), 50_000, 200_000)


def test_parameters_do_not_backtrack():
    _linear(
        lambda n: mime.parse_params(";" + " " * n + ";x" + " " * n + "; boundary=" + "\t" * n),
        50_000,
        200_000,
    )


def test_rfc2231_continuations_are_bounded_and_their_charset_checked():
    problems = []
    pieces = "".join(f"; filename*{i}*=%C3%A9" for i in range(5_000))
    params = mime.parse_params("; filename*0*=punycode''abc" + pieces, problems)
    assert params["filename"].startswith("abc")
    assert problems == [
        f"5001 parameters in a header field: only the first {mime.MAX_PARAMS} read",
        "charset 'punycode' not decoded: text read as UTF-8/Windows-1252",
    ]
    many = mime.parse_params("".join(f"; f*{i}*=a" for i in range(5_000)))
    assert many["f"] == "a" * mime.MAX_PARAMS


def _parts(header: bytes, count: int) -> bytes:
    return (
        b"From: a@b.it\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
        + b"".join(b"--z\r\n" + header + b"\r\n\r\nx\r\n" for _ in range(count))
        + b"--z--\r\n"
    )


@pytest.mark.parametrize(
    "header,expected",
    [
        (
            b"a: b\r\n" * 1999 + b"Content-Type: text/plain",
            f"(at most {mime.MAX_TOTAL_FIELDS} are read from one message)",
        ),
        (
            b"Content-Type: text/plain" + b"; a=b" * 1000,
            f"(at most {mime.MAX_TOTAL_PARAMS} are read from one message)",
        ),
        (
            b'Content-Type: a/b; name="' + b"=?utf-8?q?a?=" * 1000 + b'"',
            f"encoded words beyond the {mime.MAX_TOTAL_WORDS} decoded for one message left as they are",
        ),
    ],
)
def test_per_message_budgets_of_python_work(header, expected):
    result = message.parse(_parts(header, 25))
    assert result.kind == kinds.POSTA_ORDINARIA
    assert any(expected in p for p in result.problems), result.problems[:5]
    _utf8_safe(result)


def test_nested_decoded_messages_share_a_budget():
    # quoted-printable: each level decodes to about its own size
    raw = b"From: a@b.it\r\n\r\n" + (b"x" * 70 + b"\r\n") * 15_000
    for level in range(6):
        raw = (
            b"From: a@b.it\r\nX-Trasporto: posta-certificata\r\n"
            b"Content-Type: multipart/mixed; boundary=q%d\r\n\r\n--q%d\r\n"
            b"Content-Type: message/rfc822; name=postacert.eml\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n--q%d--\r\n"
            % (level, level, raw.replace(b"=", b"=3D"), level)
        )
    result = message.parse(raw)
    assert any("too many bytes of nested messages to decode" in p for p in result.problems)


# --- p7m -------------------------------------------------------------------------------------------
def test_p7m_elements_are_bounded_by_the_file_size():
    def signed_data(n):
        return (
            b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0\x80\x30\x80\x02\x01\x01\x31\x80"
            + b"\x30\x00" * n
            + b"\x00\x00"
            + b"\x00\x00" * 3
        )

    with pytest.raises(p7m.P7mError, match="too many ASN.1 elements"):
        p7m.extract_signed_content(signed_data(100_000))

    def work(n):
        with pytest.raises(p7m.P7mError):
            p7m.extract_signed_content(signed_data(n))

    _linear(work, 50_000, 200_000)

"""A small PDF writer for the per-recipient documents of a campaign: plain text in Helvetica
(one of the 14 fonts every reader has, so nothing is embedded), WinAnsi (Windows-1252) text,
lines wrapped to the page, as many A4 pages as needed; a form feed starts a new page.
The output depends only on the text, so the same row always gives the same bytes."""

from __future__ import annotations

import codecs
import unicodedata
import zlib

A4 = (595.28, 841.89)  # points
MARGIN = 56.69  # 2 cm

# Helvetica advance widths (1/1000 em) by WinAnsi code, from Adobe's core font metrics
_WIDTHS = (
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    278,
    278,
    355,
    556,
    556,
    889,
    667,
    191,
    333,
    333,
    389,
    584,
    278,
    333,
    278,
    278,
    556,
    556,
    556,
    556,
    556,
    556,
    556,
    556,
    556,
    556,
    278,
    278,
    584,
    584,
    584,
    556,
    1015,
    667,
    667,
    722,
    722,
    667,
    611,
    778,
    722,
    278,
    500,
    667,
    556,
    833,
    722,
    778,
    667,
    778,
    722,
    667,
    611,
    722,
    667,
    944,
    667,
    667,
    611,
    278,
    278,
    278,
    469,
    556,
    333,
    556,
    556,
    500,
    556,
    556,
    278,
    556,
    556,
    222,
    222,
    500,
    222,
    833,
    556,
    556,
    556,
    556,
    333,
    500,
    278,
    556,
    500,
    722,
    500,
    500,
    500,
    334,
    260,
    334,
    584,
    0,
    556,
    0,
    222,
    556,
    333,
    1000,
    556,
    556,
    333,
    1000,
    667,
    333,
    1000,
    0,
    611,
    0,
    0,
    222,
    222,
    333,
    333,
    350,
    556,
    1000,
    333,
    1000,
    500,
    333,
    944,
    0,
    500,
    667,
    278,
    333,
    556,
    556,
    556,
    556,
    260,
    556,
    333,
    737,
    370,
    556,
    584,
    333,
    737,
    333,
    400,
    584,
    333,
    333,
    333,
    556,
    537,
    278,
    333,
    333,
    365,
    556,
    834,
    834,
    834,
    611,
    667,
    667,
    667,
    667,
    667,
    667,
    1000,
    722,
    667,
    667,
    667,
    667,
    278,
    278,
    278,
    278,
    722,
    722,
    778,
    778,
    778,
    778,
    778,
    584,
    778,
    722,
    722,
    722,
    722,
    667,
    667,
    611,
    556,
    556,
    556,
    556,
    556,
    556,
    889,
    500,
    556,
    556,
    556,
    556,
    278,
    278,
    278,
    278,
    556,
    556,
    556,
    556,
    556,
    556,
    556,
    584,
    611,
    556,
    556,
    556,
    556,
    500,
    556,
    500,
)
_CONTROLS = bytes(c for c in range(32) if c not in (10, 12)) + b"\x7f"
_UNDECOMPOSABLE = str.maketrans("łŁđĐıħĦ", "lLdDihH")


def _fallback(error: UnicodeEncodeError) -> tuple[str, int]:
    """Outside WinAnsi: the letter without its accent (ć → c, ł → l), else '?'."""
    text = error.object[error.start : error.end].translate(_UNDECOMPOSABLE)
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return plain.encode("cp1252", "replace").decode("cp1252"), error.end


# typeshed types every handler as taking UnicodeError; this one is only used for encoding
codecs.register_error("pecflow-winansi", _fallback)  # type: ignore[arg-type]


def winansi(text: str) -> bytes:
    """`text` as WinAnsi bytes: tabs as spaces, CR/LF as LF, other control characters dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return text.encode("cp1252", "pecflow-winansi").translate(None, _CONTROLS)


def _width(word: bytes) -> int:
    return sum(map(_WIDTHS.__getitem__, word))


def wrap(text: bytes, max_width: float) -> list[bytes]:
    """Lines no wider than `max_width` (in 1/1000 em); a form feed stays as its own line."""
    lines: list[bytes] = []
    space = _WIDTHS[32]
    for paragraph in text.split(b"\n"):
        for part_index, part in enumerate(paragraph.split(b"\f")):
            if part_index:
                lines.append(b"\f")
            line, width = b"", 0
            for word in part.split(b" "):
                w = _width(word)
                if line and width + space + w <= max_width:
                    line, width = line + b" " + word, width + space + w
                    continue
                if line or width:
                    lines.append(line)
                while w > max_width:  # a word wider than the page: cut it
                    cut, cw = 0, 0
                    while cut < len(word) and cw + _WIDTHS[word[cut]] <= max_width:
                        cw += _WIDTHS[word[cut]]
                        cut += 1
                    cut = max(cut, 1)
                    lines.append(word[:cut])
                    word = word[cut:]
                    w = _width(word)
                line, width = word, w
            lines.append(line)
    return lines


def _escape(line: bytes) -> bytes:
    return line.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def text_pdf(
    text: str, *, font_size: float = 11.0, page: tuple[float, float] = A4, margin: float = MARGIN
) -> bytes:
    """A valid PDF (1.4) showing `text`, wrapped, on one or more pages."""
    leading = round(font_size * 1.3, 2)
    usable = (page[0] - 2 * margin) * 1000 / font_size
    per_page = max(1, int((page[1] - 2 * margin) // leading))
    pages: list[list[bytes]] = [[]]
    for line in wrap(winansi(text), usable):
        if line == b"\f":
            pages.append([])
            continue
        if len(pages[-1]) == per_page:
            pages.append([])
        pages[-1].append(line)
    while len(pages) > 1 and not pages[-1]:
        pages.pop()

    top = page[1] - margin - font_size
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, once the pages are numbered
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Producer (pecflow) >>",
    ]
    kids = []
    for lines in pages:
        ops = [b"BT", b"/F1 %g Tf" % font_size, b"%g TL" % leading, b"%g %g Td" % (margin, top)]
        for i, line in enumerate(lines):
            ops.append((b"T* " if i else b"") + b"(" + _escape(line) + b") Tj")
        ops.append(b"ET")
        stream = zlib.compress(b"\n".join(ops), 9)
        objects.append(
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream"
        )
        content = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] "
            b"/Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (page[0], page[1], content)
        )
        kids.append(len(objects))
    pages_list = b" ".join(b"%d 0 R" % k for k in kids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (pages_list, len(kids))

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)

"""A message as a person reads it: the headers of the message itself (for a PEC envelope, the
sender's message inside it), its text, and its files by position. HTML bodies become plain text
here, so no sender's markup or script ever reaches a screen. Pure: bytes in, values out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from pecflow.pec import mime
from pecflow.pec.message import PecMessage, body_part, parse

MAX_SHOWN_HEADERS = 100
MAX_HEADER_CHARS = 2000
MAX_TEXT_CHARS = 200_000
MAX_HTML_CHARS = 4_000_000  # of an HTML body read for its words: bounds the time it takes


@dataclass(frozen=True, slots=True)
class File:
    index: int  # position among the message's files (as on its record)
    filename: str | None
    content_type: str
    size: int  # as it sits in the message (encoded)


@dataclass(frozen=True, slots=True)
class Reading:
    headers: list[tuple[str, str]]  # name, decoded value; in the order of the message
    text: str | None  # the body as plain text; None when the message has none
    from_html: bool  # the text was made from an HTML body
    text_cut: bool  # longer than MAX_TEXT_CHARS: the rest is in the original
    files: list[File]
    envelope: bool  # a PEC/REM envelope: the headers and text are of the message inside


class NoSuchFile(LookupError):
    """A file position the message does not have."""


def read(raw: bytes) -> Reading:
    """The readable parts of a message. Never raises on bad input (the parser does not)."""
    message = parse(raw)
    inner = message.postacert
    logical = inner if inner is not None else message
    headers: list[tuple[str, str]] = []
    if logical.root is not None:
        for name, value in logical.root.headers.fields[:MAX_SHOWN_HEADERS]:
            shown = mime.decode_text(value) or ""
            headers.append((name, shown[:MAX_HEADER_CHARS]))
    text, from_html = _text(logical)
    cut = text is not None and len(text) > MAX_TEXT_CHARS
    return Reading(
        headers=headers,
        text=text[:MAX_TEXT_CHARS] if text is not None else None,
        from_html=from_html,
        text_cut=cut,
        files=[File(i, a.filename, a.content_type, a.size) for i, a in enumerate(message.attachments)],
        envelope=inner is not None,
    )


def file(raw: bytes, index: int) -> tuple[File, bytes]:
    """One of the message's files, decoded (transfer encoding removed)."""
    attachments = parse(raw).attachments
    if not 0 <= index < len(attachments):
        raise NoSuchFile(f"the message has {len(attachments)} files: there is no file number {index}")
    found = attachments[index]
    return File(index, found.filename, found.content_type, found.size), found.content()


def _text(message: PecMessage) -> tuple[str | None, bool]:
    part = body_part(message.root) if message.root is not None else None
    if part is None:
        return None, False
    if part.content_type == "text/html":
        return html_text(part.text()[:MAX_HTML_CHARS]), True
    return part.text(), False


_BLOCKS = frozenset("p div br li tr h1 h2 h3 h4 h5 h6 table ul ol blockquote pre hr".split())
_HIDDEN = frozenset(("script", "style", "head", "title"))


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.out.append(data)


_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")


def html_text(html: str) -> str:
    """The words of an HTML body, one block per line: no tag, no script, no style."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    text = _SPACES.sub(" ", "".join(parser.out))
    lines = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", lines).strip()

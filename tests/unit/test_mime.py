"""The lazy MIME reader: unit cases, and a differential check against the standard library."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pecflow.pec import mime


def part(text: str | bytes) -> mime.Part:
    return mime.Part(text.encode("latin-1") if isinstance(text, str) else text)


def test_headers_unfolded_case_insensitive_and_repeated():
    p = part("Subject: a\r\n  folded\r\nX-Ricevuta: accettazione\r\nReceived: 1\r\nReceived: 2\r\n\r\nbody")
    assert p.headers.get("subject") == "a  folded"
    assert p.headers.get("X-RICEVUTA") == "accettazione"
    assert p.headers.get_all("received") == ["1", "2"]
    assert p.body == b"body"


def test_lf_only_and_missing_body():
    p = part("From: a@b.it\nSubject: x\n")
    assert p.headers.get("from") == "a@b.it"
    assert p.body == b""


def test_non_header_line_starts_the_body():
    p = part("From: a@b.it\nthis is not a header\nmore\n")
    assert p.headers.get("from") == "a@b.it"
    assert p.body.startswith(b"this is not a header")
    assert "header section not ended by a blank line" in p.defects


def test_space_before_colon_is_tolerated():
    assert part("Subject : hi\n\n").headers.get("subject") == "hi"


def test_content_type_params_quoted_and_rfc2231():
    ctype, params = mime.parse_content_type(
        'Application/PDF; name="a \\"b\\".pdf"; charset=UTF-8; x*=utf-8\'it\'%C3%A8%20s'
    )
    assert ctype == "application/pdf"
    assert params["name"] == 'a "b".pdf'
    assert params["charset"] == "UTF-8"
    assert params["x"] == "è s"


def test_rfc2231_continuations():
    params = mime.parse_params("; filename*0*=utf-8''fattura%20n; filename*1=.1.pdf")
    assert params["filename"] == "fattura n.1.pdf"


def test_encoded_word_filename_and_unknown_charset():
    assert mime.decode_text("=?UTF-8?B?ZmF0dHVyYV/DqC5wZGY=?=") == "fattura_è.pdf"
    assert mime.decode_text("=?x-bogus?Q?abc?=") == "abc"
    assert mime.decode_text("caf\xc3\xa9") == "café"  # raw UTF-8 bytes read as latin-1


def test_multipart_split_matches_the_boundaries():
    raw = (
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\npreamble\r\n--XX\r\n"
        b"Content-Type: text/plain\r\n\r\none\r\n--XXnot-a-delimiter\r\n--XX \r\n\r\ntwo\r\n--XX--\r\nepilogue"
    )
    root = part(raw)
    bodies = [c.body for c in root.children]
    assert bodies == [b"one\r\n--XXnot-a-delimiter", b"two"]
    assert root.all_defects() == []


def test_missing_closing_boundary_keeps_the_last_part():
    root = part("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nfirst\n--b\n\nlast line")
    assert [c.body for c in root.children] == [b"first", b"last line"]
    assert any("closing boundary missing" in d for d in root.all_defects())


def test_boundary_never_found_and_no_boundary():
    assert part("Content-Type: multipart/mixed; boundary=zz\n\nnothing").children == []
    nob = part("Content-Type: multipart/mixed\n\n--x\n\nbody\n--x--")
    assert nob.children == [] and "multipart/mixed without a boundary" in nob.defects


def test_message_rfc822_is_followed_lazily():
    inner = "Subject: inner\r\nMessage-ID: <i@x>\r\n\r\nhello"
    root = part(
        f"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: message/rfc822\r\n"
        f"\r\n{inner}\r\n--B--\r\n"
    )
    msg = root.children[0].message
    assert msg.headers.get("message-id") == "<i@x>" and msg.body == b"hello"


def test_transfer_decoding():
    b64 = part("Content-Transfer-Encoding: base64\n\naGVsbG8gd29y\nbGQ=\n")
    assert b64.decoded() == b"hello world"
    qp = part("Content-Transfer-Encoding: quoted-printable\n\n=E8 soft=\nbreak")
    assert qp.decoded() == b"\xe8 softbreak"
    damaged = part("Content-Transfer-Encoding: base64\n\naGVsbG8*gd29ybGQ")
    assert damaged.decoded().startswith(b"hello")
    assert any("base64" in d for d in damaged.defects)


def test_depth_is_bounded():
    depth = 200
    raw = "".join(f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n" for i in range(depth))
    root = part(raw + "\nleaf\n")
    parts = list(root.walk())
    assert len(parts) <= mime.MAX_DEPTH + 2
    assert any("nested deeper" in d for d in root.all_defects())


# --- differential: on well-formed messages we see the same tree as the standard library ---------
_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzàèé_- .0123456789", min_size=1, max_size=20)
_payloads = st.binary(max_size=300)
_LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@st.composite
def mime_tree(draw, depth=0):
    msg = EmailMessage()
    # no line-break characters: the stdlib would write them raw, producing a non-RFC 5322 header
    msg["Subject"] = draw(st.text(max_size=30).filter(lambda s: not any(c in s for c in _LINE_BREAKS)))
    kind = draw(
        st.sampled_from(
            ["text", "attachment", "multipart", "message"] if depth < 3 else ["text", "attachment"]
        )
    )
    if kind == "text":
        msg.set_content(draw(st.text(max_size=200)))
    elif kind == "attachment":
        msg.set_content(
            draw(_payloads),
            maintype="application",
            subtype="octet-stream",
            filename=draw(_names).strip() or "f",
        )
    elif kind == "message":
        msg.set_content(draw(mime_tree(depth=depth + 1)))
    else:
        msg.make_mixed()
        for child in draw(st.lists(mime_tree(depth=depth + 1), min_size=1, max_size=4)):
            msg.attach(child)
    return msg


def _shape_stdlib(m: email.message.Message):
    out = [(m.get_content_type(), m.get_filename())]
    if m.is_multipart() and m.get_content_type() != "message/rfc822":
        for child in m.get_payload():
            out.append(_shape_stdlib(child))
    elif m.get_content_type() == "message/rfc822":
        out.append(_shape_stdlib(m.get_payload(0)))
    return out


def _shape_ours(p: mime.Part):
    out = [(p.content_type, p.filename)]
    if p.is_multipart:
        for child in p.children:
            out.append(_shape_ours(child))
    elif p.content_type == "message/rfc822":
        out.append(_shape_ours(p.message))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mime_tree(), st.sampled_from(["\r\n", "\n"]))
def test_same_tree_and_payloads_as_the_standard_library(msg, linesep):
    raw = msg.as_bytes(policy=email.policy.default.clone(linesep=linesep))
    ours = mime.Part(raw)
    theirs = email.message_from_bytes(raw)
    assert _shape_ours(ours) == _shape_stdlib(theirs), raw
    ours_leaves = [
        p for p in ours.walk(into_messages=True) if not p.is_multipart and p.content_type != "message/rfc822"
    ]
    their_leaves = [p for p in theirs.walk() if not p.is_multipart()]
    assert [p.decoded() for p in ours_leaves] == [p.get_payload(decode=True) for p in their_leaves], raw

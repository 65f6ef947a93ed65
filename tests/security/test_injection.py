"""Header and CRLF injection: whatever a CSV cell, a received message or an API field holds, the
messages we write have exactly the headers we put there (one To, no Bcc, a Subject on one
logical line), and a value that cannot be an address is refused with a clear error."""

from __future__ import annotations

import io
from email import message_from_bytes
from email.policy import default

import pytest

from pecflow.domain import replies
from pecflow.domain.campaign import (
    DictAttachmentIndex,
    Manifest,
    RenderError,
    compile_templates,
    render_message,
    validate,
)
from pecflow.domain.campaign.manifest import attachment_name_problem
from pecflow.domain.campaign.rendering import safe_filename
from pecflow.pec import message as pec_message
from tests.security.conftest import WHEN

BREAKS = ["\r\n", "\n", "\r", "\r\n ", "\u2028", "\x85", "\x0b", "\x0c"]
INJECTED = "Bcc: spia@pec.evil.test"
MAILBOX = "ufficio@pec.azienda.it"


def headers_of(raw: bytes) -> dict[str, list[str]]:
    parsed = message_from_bytes(raw, policy=default)
    out: dict[str, list[str]] = {}
    for name, value in parsed.items():
        out.setdefault(name.lower(), []).append(str(value))
    return out


def assert_only_our_headers(raw: bytes) -> None:
    found = headers_of(raw)
    assert "bcc" not in found and len(found.get("to", [])) == 1 and len(found.get("subject", [])) == 1, found
    top = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in top and b"\rBcc:" not in top, top


# --- campaign CSV values ---------------------------------------------------------------------------------
def campaign(subject: str = "Avviso per {{ nome }}", **extra) -> Manifest:
    return Manifest.from_dict(
        {"mailbox": MAILBOX, "subject": subject, "body_text": "Gentile {{ nome }}", **extra}
    )


@pytest.mark.parametrize("brk", BREAKS, ids=repr)
def test_a_merge_field_in_the_subject_cannot_add_a_header(brk):
    manifest = campaign()
    raw = render_message(manifest, {"nome": f"Mario{brk}{INJECTED}", "pec": "mario@pec.it"}, mailbox=MAILBOX,
                         message_id="<t@pec.azienda.it>", date=WHEN, templates=compile_templates(manifest))  # fmt: skip
    assert_only_our_headers(raw)
    assert "Mario" in headers_of(raw)["subject"][0]


@pytest.mark.parametrize("brk", BREAKS, ids=repr)
def test_a_recipient_cell_with_a_line_break_is_a_bad_row(brk):
    manifest = campaign()
    row = {"nome": "Mario", "pec": f"mario@pec.it{brk}{INJECTED}"}
    with pytest.raises(RenderError, match="not a valid address"):
        render_message(manifest, row, mailbox=MAILBOX, message_id="<t@pec.azienda.it>", date=WHEN)
    csv = f'Nome;PEC\r\nMario;"mario@pec.it{brk}{INJECTED}"\r\n'.encode()
    report = validate(manifest, io.BytesIO(csv), DictAttachmentIndex())
    assert report.invalid_rows == 1 and report.messages == 0, report.errors


@pytest.mark.parametrize(
    "name",
    [
        "fattura\r\nContent-Type: text/html.pdf",
        "a\nb.pdf",
        'x".pdf; filename="evil.exe',
        "a\x00.pdf",
        "a\u2028b.pdf",
    ],
    ids=repr,
)
def test_an_attachment_name_cannot_add_a_header_or_a_parameter(name):
    assert attachment_name_problem(name) is not None or "\x00" not in name
    cleaned = safe_filename(name)
    assert all(c >= " " and c not in '"\u2028' for c in cleaned), cleaned
    manifest = campaign()
    raw = render_message(manifest, {"nome": "Mario", "pec": "mario@pec.it"}, mailbox=MAILBOX,
                         message_id="<t@pec.azienda.it>", date=WHEN, attachments=[(name, b"%PDF-1.7")])  # fmt: skip
    assert_only_our_headers(raw)
    parts = [p for p in message_from_bytes(raw, policy=default).walk() if p.get_filename()]
    assert [p.get_filename() for p in parts] == [cleaned]


def test_a_cc_with_a_line_break_is_refused_by_the_manifest():
    with pytest.raises(Exception, match="cc"):
        campaign(cc=f"copia@pec.it\r\n{INJECTED}")


# --- replies and forwards: the received subject, the API's address ------------------------------------
@pytest.mark.parametrize("brk", BREAKS, ids=repr)
def test_a_reply_to_a_subject_with_a_line_break_is_sent_on_one_line(brk):
    """The subject comes from the sender, decoded (=?utf-8?q?...=0D=0A...?=): the reply still goes."""
    direct = replies.make_direct("reply", mailbox=MAILBOX, to="cliente@pec.it", text="Buongiorno",
                                 original_subject=f"Pratica{brk}{INJECTED}", original_message_id="<m@pec.it>",
                                 by="otto")  # fmt: skip
    raw = replies.render_direct(direct, "<r@pec.azienda.it>", WHEN)
    assert_only_our_headers(raw)
    assert headers_of(raw)["subject"][0].startswith("Re: Pratica")


def test_an_encoded_line_break_in_a_received_subject_reaches_the_reply_on_one_line():
    received = (b"From: cliente@pec.it\r\nTo: ufficio@pec.azienda.it\r\nMessage-ID: <m@pec.it>\r\n"
                b"Subject: =?utf-8?q?Pratica=0D=0ABcc:_spia@pec.evil.test?=\r\n\r\nciao\r\n")  # fmt: skip
    subject = pec_message.classify(received).subject
    direct = replies.make_direct("reply", mailbox=MAILBOX, to="cliente@pec.it", text="ok",
                                 original_subject=subject, original_message_id="<m@pec.it>", by="otto")  # fmt: skip
    assert_only_our_headers(replies.render_direct(direct, "<r@pec.azienda.it>", WHEN))


@pytest.mark.parametrize("brk", BREAKS, ids=repr)
def test_a_forward_address_with_a_line_break_is_refused(brk):
    with pytest.raises(replies.ReplyError, match="not an address"):
        replies.make_direct("forward", mailbox=MAILBOX, to=f"legale@pec.it{brk}{INJECTED}", text="x",
                            original_subject="Pratica", original_message_id="<m@pec.it>", original_key="k",
                            by="otto")  # fmt: skip


def test_the_forward_route_refuses_an_address_with_a_line_break():
    from tests.unit.test_api import BOX, SHA, call, world

    app, _ = world()
    assert (
        call(app, "POST", f"/mailboxes/{BOX}/messages/{SHA}/handling", body={"act": "take-in-charge"})[0]
        == 200
    )
    status, answer = call(app, "POST", f"/mailboxes/{BOX}/messages/{SHA}/forward",
                          body={"to": f"legale@pec.alfa.test\r\n{INJECTED}", "text": "Per competenza"})  # fmt: skip
    assert status in (400, 422) and "address" in answer["message"], (status, answer)

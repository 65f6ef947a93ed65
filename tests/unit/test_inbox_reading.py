"""Opening a message through the inbox service, on fakes with messages the PEC builder makes:
what it says (the headers and text of the sender's message inside the envelope, HTML reduced to
its words, the files), one file taken out byte for byte and audited as a download, and the
messages of its conversation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from local.pecbuild.builder import (
    ARUBA,
    Destinatario,
    busta_trasporto,
    messaggio_originale,
    nuovo_identificativo,
)
from pecflow.adapters.archive import sha256_hex
from pecflow.domain.access import NotVisible, Person, Role
from pecflow.pec import message as pec_message
from pecflow.pec import reading
from pecflow.services.inbox import MAX_READ_BYTES, Inbox, InboxError
from pecflow.services.receive import build_record
from tests import fakes

BOX = "ufficio@pec.alfa.test"
CLIENTE = "cliente@pec.beta.test"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 50 + b"%%EOF\n"

vera = Person("vera", "vera@alfa.test", roles={BOX: Role.VIEWER})
anna = Person("anna", "anna@alfa.test", roles={BOX: Role.OPERATOR})
estraneo = Person("ugo", "ugo@alfa.test", roles={"altro@pec.alfa.test": Role.ADMIN})


class People:
    def person(self, username):
        return {p.username: p for p in (vera, anna)}.get(username)


class Records(dict):
    def get(self, mailbox, sha256):  # type: ignore[override]
        return super().get((mailbox, sha256))


def envelope(n: int, subject: str, text: str, **original) -> bytes:
    when = T0 + timedelta(hours=n)
    sent = messaggio_originale(
        mittente=CLIENTE, destinatari=[BOX], oggetto=subject, testo=text, data=when, **original
    )
    return busta_trasporto(
        sent,
        gestore=ARUBA,
        identificativo=nuovo_identificativo(ARUBA, when, n),
        data=when,
        destinatari=[Destinatario(BOX, "certificato")],
    )


@pytest.fixture
def world():
    archive, records, audit = fakes.FakeArchive(), Records(), fakes.FakeAuditStore()
    rows = fakes.FakeInboxStore(audit)

    def receive(n: int, raw: bytes) -> str:
        sha = sha256_hex(raw)
        key = archive.store(raw).key
        record = build_record(
            BOX, "INBOX", 1, n, T0 + timedelta(hours=n), raw, sha, key, pec_message.parse(raw)
        )
        records[(BOX, sha)] = record
        rows.add(BOX, record)
        return sha

    inbox = Inbox(
        rows, audit, People(), records, cursor_secret=b"c" * 32, now=fakes.Ticking(), originals=archive
    )
    return inbox, receive, archive, audit, records


def test_a_certified_message_reads_as_the_senders_message_with_its_files(world):
    inbox, receive, archive, audit, _ = world
    sha = receive(
        1,
        envelope(1, "Richiesta documenti – pratica 7", "Buongiorno,\nvi inviamo il preventivo.\n",
                 allegati=[("preventivo firmato.pdf", "application/pdf", PDF)]),
    )  # fmt: skip
    shown = inbox.show(vera, BOX, sha)
    content = shown["content"]
    headers = {h["name"].lower(): h["value"] for h in content["headers"]}
    assert content["envelope"] is True  # the headers are the sender's, not the provider's
    assert CLIENTE in headers["from"] and headers["subject"] == "Richiesta documenti – pratica 7"
    assert content["text"] == "Buongiorno,\nvi inviamo il preventivo.\n" and not content["from_html"]
    assert content["files"] == [
        {"index": 0, "filename": "preventivo firmato.pdf", "content_type": "application/pdf",
         "size": content["files"][0]["size"]},
    ]  # fmt: skip
    assert [e.action for e in audit.events(BOX)] == ["view"]  # opening: a view, nothing else

    link = inbox.file(vera, BOX, sha, 0)
    key = f"files/{sha}/0"
    assert link == {"url": f"https://downloads.test/{key}", "filename": "preventivo firmato.pdf",
                    "content_type": "application/pdf", "size": len(PDF)}  # fmt: skip
    assert archive.downloads[key] == ("preventivo firmato.pdf", PDF)  # the file's bytes, decoded
    last = audit.events(BOX)[-1]
    assert (last.action, last.actor, dict(last.details)) == (
        "download", "vera", {"file": "preventivo firmato.pdf", "index": "0"},  # details are text
    )  # fmt: skip

    with pytest.raises(NotVisible, match="no file number 1"):
        inbox.file(vera, BOX, sha, 1)
    with pytest.raises(NotVisible):  # another mailbox's admin: not found, not forbidden
        inbox.file(estraneo, BOX, sha, 0)
    assert len(audit.events(BOX)) == 2  # refusals leave nothing behind


def test_an_html_only_message_shows_its_words_never_its_markup():
    html = (
        "<html><head><title>t</title><style>p{color:red}</style></head><body>"
        "<p>Gentile cliente,</p><script>alert('x')</script><p>la fattura &egrave; <b>scaduta</b>.</p>"
        "</body></html>"
    )
    raw = messaggio_originale(mittente=CLIENTE, destinatari=[BOX], oggetto="Avviso", testo="", data=T0)
    raw = raw.replace(
        b'Content-Type: text/plain; charset="utf-8"', b'Content-Type: text/html; charset="utf-8"'
    )
    raw = raw.replace(b"\r\n\r\n", b"\r\n\r\n" + html.encode() + b"\r\n", 1)
    read = reading.read(raw)
    assert read.from_html and read.text == "Gentile cliente,\n\nla fattura è scaduta."
    assert "<" not in (read.text or "") and "alert" not in (read.text or "")


def test_a_long_text_is_cut_and_says_so():
    raw = messaggio_originale(
        mittente=CLIENTE, destinatari=[BOX], oggetto="Lungo", testo="parola " * 40_000, data=T0
    )
    read = reading.read(raw)
    assert read.text_cut and len(read.text or "") == reading.MAX_TEXT_CHARS


def test_a_message_too_large_to_open_says_to_download_the_original(world):
    inbox, receive, _, _, records = world
    sha = receive(2, envelope(2, "Grande", "testo\n"))
    records[(BOX, sha)]["size"] = MAX_READ_BYTES + 1
    content = inbox.show(vera, BOX, sha)["content"]
    assert content["too_large"] and "download the original" in content["note"]
    with pytest.raises(InboxError, match="download the original"):
        inbox.file(vera, BOX, sha, 0)


def test_the_thread_is_the_conversation_oldest_first(world):
    inbox, receive, _, _, _ = world
    first = receive(1, envelope(1, "Pratica 7", "prima\n", message_id="<pratica7@pec.beta.test>"))
    answer = receive(
        3,
        envelope(3, "Re: Pratica 7", "seconda\n", message_id="<risposta@pec.beta.test>",
                 in_reply_to="<reply-of-ours@pec.alfa.test>",
                 references=["<pratica7@pec.beta.test>", "<reply-of-ours@pec.alfa.test>"]),
    )  # fmt: skip
    other = receive(2, envelope(2, "Altro", "altro\n", message_id="<altro@pec.beta.test>"))
    thread = inbox.show(vera, BOX, answer)["thread"]
    assert [m["sha256"] for m in thread] == [first, answer]  # not the other conversation
    assert [m["sha256"] for m in inbox.show(vera, BOX, other)["thread"]] == [other]

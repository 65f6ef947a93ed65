"""Reply and forward from the inbox, on fakes: only in your own charge, one outgoing message per
request however often it is repeated, audited with the row, sent by the sender (quota, exactly
once), threaded to the original; a forward carries the original byte for byte."""

from __future__ import annotations

import email
import hashlib
from datetime import UTC, datetime
from email import policy

import pytest

from local.pecbuild import builder
from pecflow.domain.access import Person, Role
from pecflow.domain.handling import Act, HandlingConflict
from pecflow.domain.reconcile import State
from pecflow.domain.replies import subject_for
from pecflow.pec.message import parse
from pecflow.services.inbox import Inbox, InboxError
from pecflow.services.receive import build_record
from pecflow.services.sending import OutgoingMessages, Sender
from tests import fakes

BOX = "ufficio@pec.azienda.test"
anna = Person("anna", "anna@azienda.test", roles={BOX: Role.OPERATOR})
bruno = Person("bruno", "bruno@azienda.test", roles={BOX: Role.OPERATOR})


class Records:
    def __init__(self):
        self.messages = fakes.FakeMessageStore()

    def get(self, mailbox, sha256):
        return self.messages.get(mailbox, sha256)


@pytest.fixture
def office():
    original = builder.messaggio_originale(
        mittente="mario.rossi@pec.cliente.test", destinatari=[BOX], oggetto="Richiesta preventivo",
        testo="Buongiorno, chiedo un preventivo.\n", message_id="<richiesta-1@pec.cliente.test>",
    )  # fmt: skip
    raw = builder.busta_trasporto(
        original,
        gestore=builder.Gestore("Cliente PEC S.p.A.", "pec.cliente.test"),
        identificativo="opec-1.20261126@pec.cliente.test",
        data=datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        destinatari=[builder.Destinatario(BOX, "certificato")],
    )
    sha = hashlib.sha256(raw).hexdigest()
    archive = fakes.FakeArchive()
    archived = archive.store(raw, sha)
    records = Records()
    record = build_record(BOX, "INBOX", 1, 1, None, raw, sha, archived.key, parse(raw))
    records.messages.record(BOX, record)
    audit = fakes.FakeAuditStore()
    rows = fakes.FakeInboxStore(audit)
    rows.add(BOX, record)
    campaigns = fakes.FakeCampaignStore()
    outgoing = fakes.FakeOutgoingStore(campaigns)
    queue = fakes.FakeQueue()
    inbox = Inbox(rows, audit, None, records, cursor_secret=b"c" * 32, outbox=outgoing, send_queue=queue)
    smtp = fakes.FakeSmtp()
    limiter = fakes.FakeRateLimiter(policy="aruba")
    sender = Sender(
        outgoing=outgoing, campaigns=campaigns, archive=archive, mailbox_of={BOX: fakes.config(BOX)}.get,
        acquire=limiter.acquire, release=limiter.release,
        render=OutgoingMessages(lambda *a: pytest.fail("not a campaign job"), archive.get).render,
        submit=smtp.submit,
    )  # fmt: skip
    return inbox, sha, raw, outgoing, queue, sender, smtp, audit


def send_queued(queue, sender):
    return [sender.send(body["message_id"]) for body in queue.bodies()]


def test_a_reply_needs_the_message_in_your_charge(office):
    inbox, sha, *_ = office
    with pytest.raises(HandlingConflict, match="take the message in charge before you reply"):
        inbox.reply(anna, BOX, sha, "Gentile cliente, ...")
    inbox.act(anna, BOX, sha, Act.TAKE)
    with pytest.raises(HandlingConflict) as other:
        inbox.reply(bruno, BOX, sha, "Anche io rispondo")
    assert other.value.code == "held-by-other"


def test_a_reply_goes_once_to_the_certified_sender_threaded_to_the_original(office):
    inbox, sha, raw, outgoing, queue, sender, smtp, audit = office
    inbox.act(anna, BOX, sha, Act.TAKE)
    first = inbox.reply(anna, BOX, sha, "Gentile cliente,\nin allegato il preventivo.\n")
    again = inbox.reply(anna, BOX, sha, "Gentile cliente,\nin allegato il preventivo.\n")  # a double click
    assert first == again and first.startswith("<pecflow.reply.")
    outcomes = send_queued(queue, sender)
    assert [o.state for o in outcomes][0] == State.SENT and all(
        o.state in (State.SENT, None) for o in outcomes[1:]
    )
    (sent,) = smtp.received
    assert sent.recipients == ("mario.rossi@pec.cliente.test",) and sent.mail_from == BOX
    message = email.message_from_bytes(sent.raw, policy=policy.default)
    assert message["Subject"] == "Re: Richiesta preventivo"
    assert message["In-Reply-To"] == "<richiesta-1@pec.cliente.test>"
    assert message["Message-ID"] == first
    assert "in allegato il preventivo" in message.get_body().get_content()
    assert outgoing.job(first).state == State.SENT
    view = inbox.show(anna, BOX, sha)
    assert [(v["message_id"], v["to"], v["state"]) for v in view["sent_from_here"]] == [
        (first, "mario.rossi@pec.cliente.test", "sent")
    ]
    replies = [e for e in audit.events(BOX) if e.action == "reply"]
    assert [(e.actor, e.details["message_id"], e.details["to"]) for e in replies] == [
        ("anna", first, "mario.rossi@pec.cliente.test")
    ]


def test_a_forward_carries_the_original_byte_for_byte(office):
    inbox, sha, raw, outgoing, queue, sender, smtp, _ = office
    inbox.act(anna, BOX, sha, Act.TAKE)
    with pytest.raises(InboxError, match="not an address"):
        inbox.forward(anna, BOX, sha, "legale", "per competenza")
    inbox.forward(anna, BOX, sha, "Studio.Legale@pec.avvocati.test", "Per competenza.")
    send_queued(queue, sender)
    (sent,) = smtp.received
    assert sent.recipients == ("studio.legale@pec.avvocati.test",)
    message = email.message_from_bytes(sent.raw, policy=policy.default)
    assert message["Subject"] == "I: Richiesta preventivo"
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "messaggio-originale.eml" and attachment.get_content() == raw


def test_subjects_lose_the_provider_prefix_and_do_not_pile_up():
    assert subject_for("reply", "POSTA CERTIFICATA: Re: R: Offerta") == "Re: Offerta"
    assert subject_for("forward", "I: Fwd: Offerta") == "I: Offerta"
    assert subject_for("reply", "") == "Re: (senza oggetto)"


def test_empty_text_is_refused(office):
    inbox, sha, *_ = office
    inbox.act(anna, BOX, sha, Act.TAKE)
    with pytest.raises(InboxError, match="the message is empty"):
        inbox.reply(anna, BOX, sha, "   \n")


def test_a_reply_stopped_after_its_act_shows_as_interrupted_and_repeating_it_sends_it_once(office):
    inbox, sha, raw, outgoing, queue, sender, smtp, audit = office
    inbox.act(anna, BOX, sha, Act.TAKE)
    register = outgoing.register

    def stopped(*args, **kwargs):
        raise TimeoutError("the function timed out")

    outgoing.register = stopped
    with pytest.raises(TimeoutError):
        inbox.reply(anna, BOX, sha, "Gentile cliente, confermiamo.")
    outgoing.register = register
    (shown,) = inbox.show(anna, BOX, sha)["sent_from_here"]  # audited, not queued: said so
    assert shown["state"] == "interrupted" and "send it again" in shown["error"]
    assert queue.bodies() == []

    message_id = inbox.reply(anna, BOX, sha, "Gentile cliente, confermiamo.")  # the person repeats it
    assert message_id == shown["message_id"]
    send_queued(queue, sender)
    assert len(smtp.received) == 1 and outgoing.job(message_id).state == State.SENT
    assert [e.action for e in audit.events(BOX)].count("reply") == 1  # one act, one event
    (shown,) = inbox.show(anna, BOX, sha)["sent_from_here"]
    assert shown["state"] == "sent"

"""Auto-replies that cannot loop, on fakes: a certified message a person wrote is answered once,
through the sender (quota, exactly once, threaded, marked automatic, audited by the rules); never a
receipt, an anomaly, a mailer daemon, an automatic message, a provider's address or our own
mailbox, and a sender at most once per period; each skip is on the record with its reason. The
`pdf` action prints the message with its receipts. The dry run says what would be done."""

from __future__ import annotations

import email
import re
import zlib
from datetime import UTC, datetime, timedelta
from email import policy

import pytest

from local.pecbuild import builder
from pecflow.domain import autoreply
from pecflow.domain.reconcile import State
from pecflow.domain.rules import ACTOR, RulesError, load
from pecflow.pec import kinds
from pecflow.pec.daticert import Destinatario
from pecflow.pec.mime import Headers
from pecflow.services.inbox import Inbox
from pecflow.services.receive import Ingestor
from pecflow.services.rules import RuleActs, RuleRunner, dry_run
from pecflow.services.sending import OutgoingMessages, Sender
from tests import fakes
from tests.unit.test_rules_ingestion import Files, People, RulesInMemory

WHEN = datetime(2026, 3, 2, 9, tzinfo=UTC)
BOX = "ufficio@pec.azienda.test"
CLIENT = "mario.rossi@pec.cliente.test"
GESTORE = builder.Gestore("Cliente PEC S.p.A.", "pec.cliente.test")
TEMPLATE = "Gentile {{ mittente }},\nabbiamo ricevuto «{{ oggetto }}» il {{ ricevuto_il }}.\n{{ casella }}\n"
RULES = {
    "version": 1,
    "rules": [
        {
            "name": "Ricevuto",  # on every message: the guards, not a condition, keep receipts unanswered
            "then": {
                "reply": {"template": TEMPLATE, "subject": "Ricevuto: {{ oggetto }}", "once_per": "7d"},
                "pdf": {"prefix": "stampe"},
            },
        }
    ],
}


class Claims:
    """ReplyClaims as the adapter keeps them (one item per mailbox, rule and sender)."""

    def __init__(self):
        self.items: dict[tuple[str, str, str], dict] = {}

    def claim(self, mailbox, sender, rule, *, sha256, now, period):
        held = self.items.get((mailbox, rule, sender))
        if held is None or held["until"] <= now:
            self.items[(mailbox, rule, sender)] = {"until": now + period, "sha256": sha256, "at": now}
            return None
        return None if held["sha256"] == sha256 else held["at"].isoformat()


class World:
    def __init__(self, rules=RULES, now=WHEN):
        self.server = fakes.FakeImapServer()
        self.account = self.server.add_account(BOX, "segreta")
        self.messages = fakes.FakeMessageStore()
        self.mailboxes = fakes.FakeMailboxStore()
        self.audit = fakes.FakeAuditStore()
        self.rows = fakes.FakeInboxStore(self.audit)
        self.outgoing = fakes.FakeOutgoingStore()
        self.queue = fakes.FakeQueue()
        self.claims = Claims()
        self.files = Files()
        self.now = now
        self.archive = fakes.FakeArchive()
        inbox = Inbox(self.rows, self.audit, People(), self.messages, cursor_secret=b"c" * 32,
                      outbox=self.outgoing, send_queue=self.queue)  # fmt: skip
        self.runner = RuleRunner(
            RulesInMemory(rules), files=self.files, acts=RuleActs(inbox, self.rows, self.audit),
            claims=self.claims, replies=inbox, records=self.messages, jobs=self.outgoing,
            now=lambda: self.now,
        )  # fmt: skip
        self.ingestor = Ingestor(archive=self.archive, messages=self.messages, mailboxes=self.mailboxes,
                                 outgoing=self.outgoing, inbox=self.rows, rules=self.runner)  # fmt: skip
        self.config = fakes.config(BOX)
        self.mailboxes.put(self.config)

    def deliver(self, raw: bytes):
        self.account.append(raw, when=self.now)
        session = self.server.open(self.config, "segreta")
        try:
            return self.ingestor.poll(self.config, session)
        finally:
            session.close()

    def record(self, subject: str) -> dict:
        return next(
            r
            for r in self.messages.records(BOX)
            if subject in str(r.get("original_subject") or r.get("subject"))
        )

    def sender(self, smtp):
        limiter = fakes.FakeRateLimiter(policy="aruba")
        return Sender(
            outgoing=self.outgoing, campaigns=fakes.FakeCampaignStore(), archive=self.archive,
            mailbox_of={BOX: self.config}.get, acquire=limiter.acquire, release=limiter.release,
            render=OutgoingMessages(lambda *a: pytest.fail("not a campaign job"), self.archive.get).render,
            submit=smtp.submit,
        )  # fmt: skip


def original(subject: str, sender: str = CLIENT, headers: bytes = b"", msgid: str | None = None) -> bytes:
    raw = builder.messaggio_originale(mittente=sender, destinatari=[BOX], oggetto=subject, testo="Buongiorno.\n",
                                      data=WHEN, message_id=msgid)  # fmt: skip
    return headers + raw


def envelope(subject: str, sender: str = CLIENT, headers: bytes = b"", n: int = 1) -> bytes:
    gestore = builder.Gestore("Cliente PEC S.p.A.", sender.rpartition("@")[2])
    return builder.busta_trasporto(
        original(subject, sender, headers, msgid=f"<m{n}.{zlib.crc32(subject.encode())}@{gestore.domain}>"),
        gestore=gestore, identificativo=f"opec{n}.{zlib.crc32(subject.encode())}@{gestore.domain}",
        data=WHEN + timedelta(seconds=5), destinatari=[Destinatario(BOX)],
    )  # fmt: skip


def skipped(record: dict) -> list[str]:
    return record["rules"].get("skipped", [])


# --- the reply ------------------------------------------------------------------------------------
def test_a_certified_message_is_answered_once_through_the_sender_threaded_marked_and_audited():
    world = World()
    result = world.deliver(envelope("Richiesta preventivo"))
    assert not result.rules_failed
    record = world.record("Richiesta preventivo")
    sha = record["sha256"]
    message_id = autoreply.message_id(BOX, sha, "Ricevuto")
    assert (
        record["rules"]["applied"][0]
        == f"Ricevuto: risposta automatica a {CLIENT} in coda per l'invio ({message_id})"
    )
    job = world.outgoing.job(message_id)
    assert job.state == State.PENDING and job.recipient == CLIENT
    assert job.head["direct"]["automatic"] is True and job.head["origin"] == {"mailbox": BOX, "sha256": sha}
    assert world.rows.row(BOX, sha)["last_reply"] == message_id
    events = [(e.actor, e.action, e.details.get("rule")) for e in world.audit.of_message(BOX, sha)]
    assert (ACTOR, "reply", "Ricevuto") in events

    smtp = fakes.FakeSmtp()
    sender = world.sender(smtp)
    bodies = world.queue.bodies()
    assert [b["message_id"] for b in bodies] == [message_id]
    sender.send(message_id)
    sender.send(message_id)  # the queue delivers twice: it goes once
    (sent,) = smtp.received
    message = email.message_from_bytes(sent.raw, policy=policy.default)
    assert sent.recipients == (CLIENT,) and message["Message-ID"] == message_id
    assert message["Subject"] == "Ricevuto: Richiesta preventivo"
    assert message["Auto-Submitted"] == "auto-replied" and message["X-Auto-Response-Suppress"] == "All"
    assert message["In-Reply-To"] == record["original_message_id"]
    assert record["original_message_id"] in message["References"]
    assert message.get_body().get_content().replace("\r\n", "\n") == (
        f"Gentile {CLIENT},\nabbiamo ricevuto «Richiesta preventivo» il 02/03/2026.\n{BOX}\n"
    )


def test_the_same_sender_is_answered_once_per_period_and_again_after_it():
    world = World()
    world.deliver(envelope("Primo", n=1))
    world.deliver(envelope("Secondo", n=2))
    assert skipped(world.record("Secondo")) == [
        f"Ricevuto: nessuna risposta automatica: a {CLIENT} si è già risposto il 2026-03-02 09:00 "
        "(al più una volta ogni 7 giorni)"
    ]
    world.now = WHEN + timedelta(days=7, seconds=1)
    world.deliver(envelope("Terzo", n=3))
    assert not skipped(world.record("Terzo"))
    assert len(world.queue.bodies()) == 2


def test_rules_run_again_on_a_message_send_its_reply_once():
    world = World()
    world.deliver(envelope("Richiesta"))
    record = world.record("Richiesta")
    again = world.runner.run(BOX, record, world.ingestor.classify(world.archive.get(record["s3_key"])), print)
    assert again is not None and not again[0].failed and not again[0].skipped  # its own claim
    bodies = world.queue.bodies()
    assert len({b["message_id"] for b in bodies}) == 1
    assert len([e for e in world.audit.of_message(BOX, record["sha256"]) if e.action == "reply"]) == 1


def test_without_a_send_queue_the_reply_fails_on_the_record_and_nothing_else_stops():
    world = World()
    world.runner.replies = None
    result = world.deliver(envelope("Richiesta"))
    record = world.record("Richiesta")
    assert record["rules"]["failed"] == [
        "Ricevuto: risposta automatica: RuntimeError: questa installazione non invia risposte automatiche "
        "(nessuna coda di invio)"
    ]
    assert result.recorded == 1 and world.files.objects  # the PDF all the same


# --- never ------------------------------------------------------------------------------------------
def sent_for(world: World) -> list[str]:
    return [b["message_id"] for b in world.queue.bodies()]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (
            b"Auto-Submitted: auto-replied\r\n",
            "scritto da un sistema automatico (Auto-Submitted: auto-replied)",
        ),
        (b"Auto-Submitted: auto-generated\r\n", "(Auto-Submitted: auto-generated)"),
        (b"Precedence: bulk\r\n", "invio automatico o di massa (Precedence: bulk)"),
        (b"Precedence: junk\r\n", "(Precedence: junk)"),
        (b"Precedence: list\r\n", "(Precedence: list)"),
        (b"Precedence: auto_reply\r\n", "(Precedence: auto_reply)"),
        (
            b"X-Auto-Response-Suppress: All\r\n",
            "non ricevere risposte automatiche (X-Auto-Response-Suppress: All)",
        ),
        (b"X-Auto-Response-Suppress: OOF, AutoReply\r\n", "(X-Auto-Response-Suppress: OOF, AutoReply)"),
        (
            b"List-Id: <soci.pec.cliente.test>\r\n",
            "lista di distribuzione (List-Id: <soci.pec.cliente.test>)",
        ),
    ],
)
def test_never_to_an_automatic_message_the_header_inside_postacert_says(headers, reason):
    world = World()
    world.deliver(envelope("Automatico", headers=headers))
    record = world.record("Automatico")
    [skip] = skipped(record)
    assert skip.startswith("Ricevuto: nessuna risposta automatica: ") and reason in skip
    assert record["automatic"] in skip  # kept on the record for the dry run
    assert sent_for(world) == [] and world.claims.items == {}


def test_auto_submitted_no_is_a_person_writing():
    world = World()
    world.deliver(envelope("Scritto", headers=b"Auto-Submitted: no\r\nPrecedence: normal\r\n"))
    assert not skipped(world.record("Scritto")) and len(sent_for(world)) == 1


def test_rem_a_dispatch_is_answered_to_its_sender_and_an_automatic_one_is_not():
    from local.pecbuild import rem_builder

    world = World()
    world.deliver(rem_builder.rem_dispatch(original("Istanza REM"), gestore=GESTORE,
                                           message_id="<rem-1@pec.cliente.test>", data=WHEN))  # fmt: skip
    record = world.record("Istanza REM")
    assert record["kind"] == kinds.POSTA_CERTIFICATA and record["from"] != CLIENT
    assert not skipped(record) and [j.recipient for j in map(world.outgoing.job, sent_for(world))] == [CLIENT]
    world.deliver(rem_builder.rem_dispatch(original("Conferma REM", sender="luca@pec.cliente.test",
                                                    headers=b"Auto-Submitted: auto-replied\r\n"),
                                           gestore=GESTORE, message_id="<rem-2@pec.cliente.test>", data=WHEN))  # fmt: skip
    assert "(Auto-Submitted: auto-replied)" in skipped(world.record("Conferma REM"))[0]


@pytest.mark.parametrize("local", ["MAILER-DAEMON", "postmaster", "no-reply", "posta-certificata"])
def test_never_to_a_daemon_or_a_provider_address(local):
    world = World()
    world.deliver(envelope("Avviso", sender=f"{local}@pec.cliente.test"))
    [skip] = skipped(world.record("Avviso"))
    assert ("servizio automatico" in skip) or ("indirizzo del gestore PEC/REM" in skip)
    assert sent_for(world) == []


def test_never_to_our_own_mailbox():
    world = World()
    world.deliver(envelope("A noi stessi", sender=BOX))
    assert skipped(world.record("A noi stessi")) == [
        "Ricevuto: nessuna risposta automatica: il mittente è questa stessa casella"
    ]
    assert sent_for(world) == []


def test_never_to_an_anomaly_of_a_mailer_daemon():
    world = World()
    bounce = original("Undelivered Mail Returned to Sender", sender="MAILER-DAEMON@mx.cliente.test")
    world.deliver(builder.busta_anomalia(bounce, gestore=GESTORE, data=WHEN, motivo="non certificato"))
    [record] = world.messages.records(BOX)
    assert record["kind"] == kinds.ANOMALIA
    assert skipped(record) == [
        "Ricevuto: nessuna risposta automatica: è un'anomalia (un messaggio non certificato, spesso di "
        "un mailer daemon): alle anomalie non si risponde"
    ]
    assert sent_for(world) == []


@pytest.mark.parametrize("kind", kinds.RICEVUTE)
def test_never_to_a_receipt(kind):
    world = World()
    ours = original("Nostro invio", sender=BOX)
    extra = {"consegna": CLIENT} if kind == kinds.AVVENUTA_CONSEGNA else {}
    if kind in (kinds.ERRORE_CONSEGNA, kinds.PREAVVISO_ERRORE_CONSEGNA):
        extra = {"errore": "no-dest", "errore_esteso": "5.1.1 - utente sconosciuto", "consegna": CLIENT}
    receipt = builder.ricevuta(kind, ours, gestore=GESTORE, identificativo="opec9@pec.cliente.test",
                               data=WHEN, **extra)  # fmt: skip
    world.deliver(receipt)
    [record] = world.messages.records(BOX)
    assert record["kind"] == kind
    assert skipped(record) == [
        f"Ricevuto: nessuna risposta automatica: è una ricevuta ({kind}): alle ricevute non si risponde"
    ]
    assert sent_for(world) == []


def test_never_to_ordinary_mail():
    world = World()
    world.deliver(original("Posta normale", sender="mario@gmail.test"))
    [record] = world.messages.records(BOX)
    assert record["kind"] == kinds.POSTA_ORDINARIA
    assert "si risponde in automatico solo alla posta certificata" in skipped(record)[0]
    assert sent_for(world) == []


def test_refusal_in_words_for_each_case():
    base = {"kind": "posta-certificata", "sender": CLIENT, "from": "posta-certificata@pec.cliente.test"}
    assert autoreply.refusal(BOX, base) is None
    assert "non è un indirizzo" in autoreply.refusal(BOX, base | {"sender": "mario"})
    # a daticert without mittente: the envelope's From is the provider's
    assert "mittente certificato non è indicato" in autoreply.refusal(BOX, base | {"sender": None})
    assert "gestore" in autoreply.refusal(BOX, base | {"sender": "rem-service@rem.cliente.test"})
    assert "gestore" in autoreply.refusal(BOX, base | {"sender": base["from"]})
    assert "gestore" in autoreply.refusal(BOX, base | {"sender": "posta-certificata@pec.cliente.test"})
    assert "malformed" in autoreply.refusal(BOX, base | {"kind": "malformed"})
    assert autoreply.refusal(BOX, base | {"automatic": "X"}) == "X"
    assert autoreply.automatic_sign(Headers([("X-Autoreply", "yes")])) is not None
    assert autoreply.automatic_sign(Headers([("X-Auto-Response-Suppress", "None")])) is None
    assert autoreply.automatic_sign(None) is None


# --- the document ------------------------------------------------------------------------------------
def test_a_bad_reply_action_is_refused_with_every_problem_named():
    with pytest.raises(RulesError) as refused:
        load({"version": 1, "rules": [{"name": "R", "then": {
            "reply": {"template": "{{ nome }} {% if %}", "subject": "{{ pratica }}", "once_per": "7d"}}}]})  # fmt: skip
    assert refused.value.problems == [
        "regola 1 («R»), campo then.reply.subject: usa «pratica», ma le variabili sono mittente, oggetto, "
        "casella, ricevuto_il, identificativo, regola",
        "regola 1 («R»), campo then.reply.template: non è un modello valido (riga 1): Expected an expression, "
        "got 'end of statement block'",
    ]
    with pytest.raises(RulesError) as refused:
        load({"version": 1, "rules": [{"name": "R", "then": {"reply": {"template": "x", "once_per": "1w"}}}]})
    assert "then.reply.once_per" in refused.value.problems[0] and "7d" in refused.value.problems[0]


def test_a_template_that_reaches_outside_the_sandbox_does_not_render():
    document = load({"version": 1, "rules": [{"name": "R", "then": {"reply": {
        "template": "{{ mittente.__class__.__mro__[1].__subclasses__() }}"}}}]})  # fmt: skip
    reply = document.rules[0].then.reply
    with pytest.raises(ValueError, match="non si compone"):
        autoreply.render(reply, BOX, {"sender": CLIENT}, "R")


def test_a_reply_defaults_to_re_their_subject_and_seven_days():
    world = World(
        rules={"version": 1, "rules": [{"name": "R", "then": {"reply": {"template": "Ricevuto."}}}]}
    )
    world.deliver(envelope("POSTA CERTIFICATA: Offerta"))
    smtp = fakes.FakeSmtp()
    [body] = world.queue.bodies()
    world.sender(smtp).send(body["message_id"])
    message = email.message_from_bytes(smtp.received[0].raw, policy=policy.default)
    assert message["Subject"] == "Re: Offerta"
    assert load(world.runner.store.rules(BOX)).rules[0].then.reply.period == timedelta(days=7)


# --- the printable PDF ------------------------------------------------------------------------------
def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-1.4")
    streams = re.findall(rb"\nstream\n(.*?)\nendstream", data, re.S)
    return "\n".join(zlib.decompress(s).decode("cp1252") for s in streams)


def test_the_pdf_shows_the_message_and_the_receipts_of_our_message_it_is_about():
    world = World(rules={"version": 1, "rules": [
        {"name": "Stampa", "when": {"kind": ["posta-certificata", "avvenuta-consegna"]},
         "then": {"pdf": {"prefix": "stampe", "layout": "flat"}}}]})  # fmt: skip
    world.deliver(envelope("Richiesta preventivo"))
    record = world.record("Richiesta preventivo")
    [(key, data)] = world.files.objects.items()
    assert key == f"stampe/2026-03-02_{record['sha256'][:16]}/messaggio.pdf"
    text = pdf_text(data)
    assert f"(Mittente: {CLIENT}) Tj" in text and "(Oggetto: Richiesta preventivo) Tj" in text
    assert "(Buongiorno.) Tj" in text and "Nessun messaggio inviato" in text
    assert record["rules"]["applied"] == [f"Stampa: PDF stampabile in {key} (0 ricevute)"]

    # a delivery receipt of a message we sent: its PDF shows our message with its receipt
    ours = original("Nostro invio", sender=BOX, msgid="<nostro-1@pec.azienda.test>")
    world.outgoing.register(
        "<nostro-1@pec.azienda.test>", mailbox=BOX, recipients=[CLIENT], subject="Nostro invio"
    )
    world.deliver(builder.ricevuta("avvenuta-consegna", ours, gestore=GESTORE, identificativo="opec5@x.test",
                                   data=WHEN + timedelta(minutes=1), consegna=CLIENT))  # fmt: skip
    receipt = next(r for r in world.messages.records(BOX) if r["kind"] == "avvenuta-consegna")
    printed = pdf_text(world.files.objects[f"stampe/2026-03-02_{receipt['sha256'][:16]}/messaggio.pdf"])
    assert (
        "(Messaggio inviato <nostro-1@pec.azienda.test> \\(a cui questo messaggio si riferisce\\)) Tj"
        in printed
    )
    assert f"ricevuta di avvenuta consegna per {CLIENT}" in printed
    assert receipt["rules"]["applied"][0].endswith("(1 ricevute)")


# --- the dry run --------------------------------------------------------------------------------------
def test_the_dry_run_says_what_a_reply_and_a_pdf_would_do_and_sends_nothing():
    world = World(rules=None)
    world.deliver(envelope("Primo", n=1))
    world.deliver(envelope("Secondo", n=2))
    world.deliver(envelope("Automatico", sender="b@pec.cliente.test", n=3))
    document = load(RULES)
    records = sorted(world.messages.records(BOX), key=lambda r: r["uid"])
    trials = list(dry_run(document, records, mailbox=BOX))
    first, second, third = (t.would for t in trials)
    assert (
        first[0]
        == f"Ricevuto: risponderebbe a {CLIENT} con oggetto «Ricevuto: Primo» (non inviata: è una prova)"
    )
    assert first[1].startswith("Ricevuto: PDF stampabile in stampe/2026/03/02/")
    assert second[0].startswith(
        f"Ricevuto: nessuna risposta automatica: a {CLIENT} si sarebbe già risposto il 02/03/2026"
    )
    assert third[0].startswith("Ricevuto: risponderebbe a b@pec.cliente.test")
    assert world.queue.bodies() == [] and world.files.objects == {}

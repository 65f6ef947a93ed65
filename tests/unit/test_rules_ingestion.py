"""The rules at ingestion, on fakes: run once a message is archived, recorded and listed; acts
audited as "regole automatiche"; a disallowed attachment quarantines; a failing rule loses and
blocks nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from local.pecbuild import builder
from pecflow.domain.access import Person, Role
from pecflow.domain.rules import ACTOR
from pecflow.pec.daticert import Destinatario
from pecflow.services.inbox import Inbox
from pecflow.services.receive import Ingestor
from pecflow.services.rules import RuleActs, RuleRunner, RulesDesk, dry_run
from tests import fakes

WHEN = datetime(2026, 3, 2, 9, tzinfo=UTC)
BOX = "ufficio@pec.azienda.test"
PASSWORD = "segreta"
INVOICE = b'<?xml version="1.0"?>\n<p:FatturaElettronica xmlns:p="urn:x"/>\n'
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n"
EXE = b"MZ\x90\x00" + b"\0" * 200

RULES = {
    "version": 1,
    "accepted_formats": {"allow": ["pdf", "xml", "p7m", "text"]},
    "rules": [
        {
            "name": "Fatture fornitore",
            "when": {"sender_domain": ["pec.fornitore.test"], "attachment_types": ["xml"]},
            "then": {
                "save": {"prefix": "fatture", "layout": "by-date"},
                "tag": ["fattura"],
                "assign": "anna",
            },
        },
        {"name": "Tutto", "then": {"tag": ["letto-dalle-regole"]}},
    ],
}


class RulesInMemory:
    def __init__(self, data=None):
        self.data = {BOX: data} if data else {}
        self.reads = 0

    def rules(self, mailbox):
        self.reads += 1
        return self.data.get(mailbox)

    def set_rules(self, mailbox, document, *, by):
        self.data[mailbox] = document


class Files:
    def __init__(self, fail: bool = False):
        self.objects: dict[str, bytes] = {}
        self.fail = fail

    def put(self, key, data, content_type):
        if self.fail:
            raise ConnectionError("S3 non raggiungibile")
        self.objects[key] = data


class People:
    def __init__(self, *people):
        self.by_name = {p.username: p for p in people}

    def person(self, username):
        return self.by_name.get(username)


anna = Person("anna", "anna@azienda.test", roles={BOX: Role.OPERATOR})


class World:
    def __init__(self, rules=RULES, *, files_fail: bool = False):
        self.server = fakes.FakeImapServer()
        self.account = self.server.add_account(BOX, PASSWORD)
        self.messages = fakes.FakeMessageStore()
        self.mailboxes = fakes.FakeMailboxStore()
        self.audit = fakes.FakeAuditStore()
        self.rows = fakes.FakeInboxStore(self.audit)
        self.store = RulesInMemory(rules)
        self.files = Files(files_fail)
        inbox = Inbox(self.rows, self.audit, People(anna), self.messages, cursor_secret=b"c" * 32)
        self.runner = RuleRunner(self.store, files=self.files, acts=RuleActs(inbox, self.rows, self.audit))
        self.ingestor = Ingestor(
            archive=fakes.FakeArchive(),
            messages=self.messages,
            mailboxes=self.mailboxes,
            outgoing=fakes.FakeOutgoingStore(),
            inbox=self.rows,
            rules=self.runner,
        )
        self.config = fakes.config(BOX)
        self.mailboxes.put(self.config)

    def poll(self):
        session = self.server.open(self.config, PASSWORD)
        try:
            return self.ingestor.poll(self.config, session)
        finally:
            session.close()

    def only_record(self) -> dict:
        [record] = self.messages.records(BOX)
        return record


def envelope(sender: str, attachments, subject: str = "Fattura 12") -> bytes:
    original = builder.messaggio_originale(
        mittente=sender,
        destinatari=[BOX],
        oggetto=subject,
        testo="In allegato.",
        allegati=attachments,
        data=WHEN,
    )
    return builder.busta_trasporto(
        original,
        gestore=builder.SIMULATO,
        identificativo="opec1.1@pec.simulato.test",
        data=WHEN + timedelta(seconds=5),
        destinatari=[Destinatario(BOX)],
    )


def test_a_matching_rule_saves_tags_and_assigns_with_its_audit_trail():
    world = World()
    world.account.append(
        envelope(
            "fornitore@pec.fornitore.test",
            [("IT1_0001.xml", "application/octet-stream", INVOICE), ("copia.pdf", "application/pdf", PDF)],
        ),
        when=WHEN,
    )
    result = world.poll()
    assert result.recorded == 1 and not result.rules_failed and not result.quarantined
    record = world.only_record()
    sha = record["sha256"]
    assert [a["format"] for a in record["attachments"]] == ["xml", "pdf"]
    assert record["rules"]["applied"] == [
        f"Fatture fornitore: salvati 4 file in fatture/2026/03/02/{sha[:16]}/",
        "Fatture fornitore: etichetta fattura",
        "Fatture fornitore: assegnato a anna",
        "Tutto: etichetta letto-dalle-regole",
    ]
    folder = f"fatture/2026/03/02/{sha[:16]}"
    assert world.files.objects[f"{folder}/IT1_0001.xml"] == INVOICE
    assert world.files.objects[f"{folder}/copia.pdf"] == PDF
    assert b"In allegato." in world.files.objects[f"{folder}/body.txt"]
    assert b"fornitore@pec.fornitore.test" in world.files.objects[f"{folder}/header.json"]
    row = world.rows.row(BOX, sha)
    assert row["tags"] == ["fattura", "letto-dalle-regole"] and row["holder"] == "anna"
    trail = [(e.actor, e.action, e.details.get("rule")) for e in world.audit.of_message(BOX, sha)]
    assert trail == [
        (ACTOR, "rule", "Fatture fornitore"),
        (ACTOR, "tag", "Fatture fornitore"),
        (ACTOR, "assign", None),
        (ACTOR, "tag", "Tutto"),
    ]
    assert result.rules_applied == 4


def test_rules_run_once_and_the_document_is_read_once_a_minute():
    world = World()
    for i in range(3):
        world.account.append(envelope(f"c{i}@pec.cliente.test", [], subject=f"n. {i}"), when=WHEN)
    world.poll()
    world.poll()  # nothing new: nothing run again
    assert world.store.reads == 1
    assert all(
        r["rules"]["applied"] == ["Tutto: etichetta letto-dalle-regole"] for r in world.messages.records(BOX)
    )


def test_a_disallowed_attachment_quarantines_the_message_kept_and_listed():
    world = World()
    world.account.append(
        envelope("x@pec.cliente.test", [("fattura.pdf", "application/pdf", EXE)]),
        when=WHEN,
    )
    result = world.poll()
    record = world.only_record()
    reason = (
        "regola «formati accettati»: allegato «fattura.pdf»: formato non accettato (programma eseguibile)"
    )
    assert record["quarantined"]["stage"] == "rules" and record["quarantined"]["reason"] == reason
    assert record["quarantined_mailbox"] == BOX
    assert result.quarantined == [f"UID 1: {reason}"]
    status = world.mailboxes.status(BOX)
    assert status["quarantined"] == 1 and status["last_quarantined"]["reason"] == f"rules: {reason}"
    assert world.rows.row(BOX, record["sha256"]) is not None  # still in the inbox, for admins
    assert world.mailboxes.get_cursor(BOX, "INBOX").last_uid == 1


def test_failing_actions_lose_and_block_nothing():
    world = World(files_fail=True)
    raws = [
        envelope("fornitore@pec.fornitore.test", [("IT1.xml", "application/octet-stream", INVOICE)]),
        envelope("fornitore@pec.fornitore.test", [("IT2.xml", "application/octet-stream", INVOICE)], "Due"),
    ]
    for raw in raws:
        world.account.append(raw, when=WHEN)
    world.runner.acts.inbox.people = People()  # anna is gone: the assignment fails too
    result = world.poll()
    assert result.recorded == 2 and world.mailboxes.get_cursor(BOX, "INBOX").last_uid == 2
    assert len(result.rules_failed) == 4
    for record in world.messages.records(BOX):
        failed = record["rules"]["failed"]
        assert failed[0].startswith("Fatture fornitore: salvataggio: ConnectionError: S3 non raggiungibile")
        assert (
            failed[1] == "Fatture fornitore: assegnazione: InboxError: there is no active person called anna"
        )
        assert "Tutto: etichetta letto-dalle-regole" in record["rules"]["applied"]


def test_an_unreadable_document_is_recorded_on_the_message_and_the_poll_goes_on():
    world = World()
    world.store.data[BOX] = {"version": 2}
    world.account.append(envelope("x@pec.cliente.test", []), when=WHEN)
    result = world.poll()
    assert result.recorded == 1 and world.mailboxes.get_cursor(BOX, "INBOX").last_uid == 1
    assert "regole non applicate: RulesError" in result.rules_failed[0]
    assert world.only_record()["rules"]["failed"][0].startswith("regole non applicate")


def test_without_rules_nothing_changes_on_the_record():
    world = World(rules=None)
    world.account.append(envelope("x@pec.cliente.test", [("a.pdf", "application/pdf", PDF)]), when=WHEN)
    world.poll()
    record = world.only_record()
    assert "rules" not in record and "format" not in record["attachments"][0]


def test_the_dry_run_says_what_would_be_done_and_does_nothing():
    world = World(rules=None)
    world.account.append(
        envelope("fornitore@pec.fornitore.test", [("IT1.xml", "application/octet-stream", INVOICE)]),
        when=WHEN,
    )
    world.poll()
    desk = RulesDesk(world.store)
    document = desk.set(None, BOX, RULES, actor="operatore")
    [trial] = dry_run(document, world.messages.records(BOX))
    assert [d.rule for d in trial.decisions] == ["Fatture fornitore", "Tutto"]
    assert trial.decisions[0].actions.describe() == [
        "salva header, body, attachments in fatture/ (by-date)",
        "etichetta fattura",
        "assegna a anna",
    ]
    assert world.files.objects == {} and "tags" not in world.rows.row(BOX, trial.sha256)


def test_only_an_admin_writes_the_rules():
    desk = RulesDesk(RulesInMemory())
    from pecflow.domain.access import Forbidden

    with pytest.raises(Forbidden):
        desk.set(anna, BOX, RULES)
    admin = Person("carla", "c@azienda.test", roles={BOX: Role.ADMIN})
    assert len(desk.set(admin, BOX, RULES).rules) == 2


def test_a_poll_stopped_before_the_rules_runs_them_at_the_next_poll_once():
    world = World()
    world.account.append(
        envelope("fornitore@pec.fornitore.test", [("IT1.xml", "application/octet-stream", INVOICE)]),
        when=WHEN,
    )

    def crash(step, **where):
        if step == "before_rules":
            raise RuntimeError("the poller stopped here")

    world.ingestor.checkpoint = crash
    with pytest.raises(RuntimeError):
        world.poll()
    assert "rules" not in world.only_record()
    world.ingestor.checkpoint = lambda step, **where: None
    world.poll()
    world.poll()
    record = world.only_record()
    assert len(record["rules"]["applied"]) == 4
    assert world.rows.row(BOX, record["sha256"])["tags"] == ["fattura", "letto-dalle-regole"]
    assert len(world.files.objects) == 3
    assert [e.action for e in world.audit.of_message(BOX, record["sha256"])] == [
        "rule",
        "tag",
        "assign",
        "tag",
    ]


def test_the_first_tag_starts_from_the_row_just_written_without_reading_it_back():
    world = World({"version": 1, "rules": [{"name": "Tutto", "then": {"tag": ["visto", "regole"]}}]})
    reads = []
    real_row = world.rows.row
    world.rows.row = lambda mailbox, sha: reads.append(sha) or real_row(mailbox, sha)
    world.account.append(envelope("chiunque@pec.altro.test", [("a.pdf", "application/pdf", PDF)]), when=WHEN)
    result = world.poll()
    assert result.recorded == 1 and not result.rules_failed
    sha = world.only_record()["sha256"]
    assert real_row(BOX, sha)["tags"] == ["visto", "regole"]
    assert reads == []  # the row written for the rule is the row the tag starts from


def test_a_tag_given_a_stale_row_reads_it_again_and_keeps_what_changed():
    world = World({"version": 1, "rules": []})
    world.account.append(envelope("chiunque@pec.altro.test", [("a.pdf", "application/pdf", PDF)]), when=WHEN)
    world.poll()
    sha = world.only_record()["sha256"]
    as_written = world.rows.row(BOX, sha)
    acts = RuleActs(
        Inbox(world.rows, world.audit, People(anna), world.messages, cursor_secret=b"c" * 32),
        world.rows,
        world.audit,
    )
    acts.tag(BOX, sha, ["prima"], "Una")  # the row changes after it was written
    acts.tag(BOX, sha, ["dopo"], "Due", row=as_written)
    assert world.rows.row(BOX, sha)["tags"] == ["prima", "dopo"]

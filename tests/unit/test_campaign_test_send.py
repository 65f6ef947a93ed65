"""A campaign's test send (issue 18): row N (or its group) rendered as the campaign would, sent
through the same mailbox, quota and reconciliation to the chosen address alone, marked as a test,
never counted in the campaign's statistics; `pecflow campaign test-send` and the API route."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from pecflow import cli
from pecflow.api import Services, build_app
from pecflow.domain.access import Role
from pecflow.services.audit import AuditLog
from pecflow.services.campaign_tests import CampaignTests, TestSendError
from pecflow.services.inbox import Inbox
from pecflow.services.people import PeopleAdmin
from pecflow.services.sending import CampaignMessages, OutgoingMessages, Sender
from tests import fakes
from tests.unit.test_api import RANK, ROLES, USER_OF, Records, call

BOX = "ufficio@pec.alfa.test"
MANIFEST = {
    "mailbox": BOX,
    "subject": "Fatture scadute – {{ ragione_sociale }}",
    "body_text": "{% for r in righe %}{{ r.numero }} {{ r.importo|importo }}\n{% endfor %}"
    "Totale {{ righe|sum(attribute='importo')|importo }}\n",
    "group_by": "pec",
    "attachment_column": "fattura",
    "attachments": ["condizioni.pdf"],
    "cc": "archivio@pec.alfa.test",
}
CSV = (
    "PEC;Ragione Sociale;Numero;Importo;Fattura\r\n"
    "rossi@pec.beta.test;Rossi S.r.l.;1;1.000,50;f1.pdf\r\n"
    "bianchi@pec.beta.test;Bianchi;2;20;f2.pdf\r\n"
    "rossi@pec.beta.test;Rossi S.r.l.;3;99,50;f3.pdf\r\n"
)
FILES = {
    "manifest.json": json.dumps(MANIFEST).encode(),
    "recipients.csv": CSV.encode("cp1252"),
    "attachments/condizioni.pdf": b"%PDF condizioni",
    **{f"attachments/f{i}.pdf": f"%PDF {i}".encode() for i in range(1, 4)},
}


class World:
    def __init__(self, files: dict[str, bytes] = FILES):
        self.files = fakes.FakeCampaignFiles("fatture", files)
        self.campaigns = fakes.FakeCampaignStore()
        self.outgoing = fakes.FakeOutgoingStore(self.campaigns)
        self.archive = fakes.FakeArchive()
        self.queue = fakes.FakeQueue()
        self.audit = fakes.FakeAuditStore()
        self.configs = {BOX: fakes.config(BOX)}
        self.tests = CampaignTests(
            self.outgoing,
            self.archive,
            self.queue,
            self.configs.get,
            lambda cid: self.files,
            AuditLog(self.audit),
        )
        self.smtp = fakes.FakeSmtp()
        self.limiter = fakes.FakeRateLimiter(policy="aruba")
        self.sender = Sender(
            outgoing=self.outgoing,
            campaigns=self.campaigns,
            archive=self.archive,
            mailbox_of=self.configs.get,
            acquire=self.limiter.acquire,
            release=self.limiter.release,
            render=OutgoingMessages(CampaignMessages(lambda cid: self.files).render, self.archive.get).render,
            submit=self.smtp.submit,
        )

    def send(self, row: int = 4, to: str = "prova@pec.alfa.test"):
        return self.tests.send(self.files, campaign_id="fatture", row=row, to=to, by="marco")


@pytest.fixture
def clock(monkeypatch) -> fakes.FakeClock:
    return fakes.FakeClock(datetime(2026, 3, 2, 9, tzinfo=UTC)).install(monkeypatch)


def test_the_test_of_a_grouped_row_is_its_whole_message_to_the_chosen_address_alone(clock):
    world = World()
    sent = world.send(row=4)  # the second invoice of Rossi: the message of rows 2 and 4
    assert sent.rows == (2, 4) and sent.to == "prova@pec.alfa.test"
    [entry] = world.queue.bodies()
    assert entry == {"message_id": sent.message_id}
    assert world.sender.send(sent.message_id).state == "sent"  # the same sender, quota and archive
    [received] = world.smtp.received
    assert received.recipients == ("prova@pec.alfa.test",), "never the recipient, never the cc"
    message = message_from_bytes(received.raw, policy=policy.default)
    assert message["Subject"] == "[PROVA] Fatture scadute – Rossi S.r.l." and message["Cc"] is None
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == "1 1.000,50 €\n3 99,50 €\nTotale 1.100,00 €\n"
    names = [part.get_filename() for part in message.iter_attachments()]
    assert names == ["condizioni.pdf", "f1.pdf", "f3.pdf"]
    assert len(world.limiter.acquired) == 1, "a test takes a quota slot like any message"
    job = world.outgoing.job(sent.message_id)
    assert job.campaign_id is None and job.head["test_send"]["rows"] == [2, 4]
    assert world.campaigns.get("fatture") is None, "no campaign item, no counter moved"
    [event] = [e for e in world.audit.events(BOX)]
    assert event.details["change"] == "test send" and event.details["to"] == "prova@pec.alfa.test"


@pytest.mark.parametrize(
    ("row", "to", "reason"),
    [
        (1, "prova@pec.alfa.test", "row 1 is the header"),
        (9, "prova@pec.alfa.test", "row 9 is past the last row (4)"),
        (3, "BIANCHI@pec.beta.test", "is the recipient of row 3: a test goes to an address of yours"),
        (2, "prova@", "'prova@' is not a valid address"),
    ],
)
def test_what_cannot_be_a_test_says_why(clock, row, to, reason):
    world = World()
    with pytest.raises(TestSendError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        world.send(row=row, to=to)
    assert world.queue.sent == [] and world.smtp.received == []


def test_a_missing_file_or_mailbox_is_said_before_anything_is_queued(clock):
    files = {k: v for k, v in FILES.items() if k != "attachments/f3.pdf"}
    with pytest.raises(TestSendError, match="attachments/f3.pdf is not in the campaign's files"):
        World(files).send(row=2)
    world = World()
    world.configs.clear()
    with pytest.raises(TestSendError, match="ufficio@pec.alfa.test is not configured in pecflow"):
        world.send()


def test_the_cli_sends_from_a_folder(tmp_path, monkeypatch, capsys, clock):
    folder = tmp_path / "fatture"
    for name, body in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(body)
    world = World()
    monkeypatch.setattr("pecflow.cli._deployment", lambda args: None)
    monkeypatch.setattr("pecflow.bootstrap.campaign_tests", lambda config: world.tests)
    assert cli.main(["campaign", "test-send", str(folder), "--row", "2", "--to", "prova@pec.alfa.test"]) == 0
    out = capsys.readouterr().out
    assert "test of rows 2, 4 queued from ufficio@pec.alfa.test to prova@pec.alfa.test" in out
    assert (
        world.queue.sent
        and world.outgoing.job(world.queue.bodies()[0]["message_id"]).recipient == "prova@pec.alfa.test"
    )
    assert (
        cli.main(["campaign", "test-send", str(folder), "--row", "3", "--to", "bianchi@pec.beta.test"]) == 1
    )
    assert "pecflow: not sent: bianchi@pec.beta.test is the recipient of row 3" in capsys.readouterr().err


# --- the API route -------------------------------------------------------------------------------------------
def api(world: World):
    audit = world.audit
    store = fakes.FakePeopleStore()
    people = PeopleAdmin(store, AuditLog(audit), fakes.FakeDirectory())
    for name, role in (("nessuno", None), ("vera", Role.VIEWER), ("otto", Role.OPERATOR),
                       ("marco", Role.MANAGER), ("carla", Role.ADMIN)):  # fmt: skip
        people.add("test", name, f"{name}@alfa.test")
        if role:
            people.set_role("test", name, BOX, role)
    inbox = Inbox(fakes.FakeInboxStore(audit), audit, store, Records(key=None), cursor_secret=b"s" * 32)
    return build_app(Services(inbox, people, AuditLog(audit), None, world.tests))


PATH = f"/mailboxes/{BOX}/campaigns/fatture/test-send"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value if r else "no-role")
def test_the_route_for_every_role(clock, role):
    world = World()
    status, payload = call(
        api(world), "POST", PATH, user=USER_OF[role], body={"row": 2, "to": "prova@pec.alfa.test"}
    )
    if RANK[role] >= RANK[Role.MANAGER]:
        assert status == 200, payload
        assert payload["rows"] == [2, 4] and payload["to"] == "prova@pec.alfa.test"
        assert world.outgoing.job(payload["message_id"]).head["test_send"]["by"] == USER_OF[role]
    elif role is None:
        assert status == 404 and "not found" in payload["message"]
    else:
        assert status == 403 and payload["code"] == "forbidden"


def test_the_route_takes_the_manifest_not_yet_submitted_and_says_what_is_wrong(clock):
    files = {k: v for k, v in FILES.items() if k != "manifest.json"}
    world = World(files)
    app = api(world)
    status, payload = call(app, "POST", PATH, user="marco", body={"row": 3, "to": "prova@pec.alfa.test"})
    assert status == 404 and "has no manifest.json" in payload["message"]
    body = {"row": 3, "to": "prova@pec.alfa.test", "manifest": MANIFEST}
    status, payload = call(app, "POST", PATH, user="marco", body=body)
    assert status == 200 and payload["rows"] == [3]
    other = {**body, "manifest": {**MANIFEST, "mailbox": "altro@pec.alfa.test"}}
    status, payload = call(app, "POST", PATH, user="marco", body=other)
    assert status == 400 and "sends from altro@pec.alfa.test" in payload["message"]

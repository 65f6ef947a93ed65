"""GET/PUT /mailboxes/{mailbox}/rules on fakes: admins only, a refused document answered with every
problem, the change audited."""

from __future__ import annotations

import pytest

from pecflow.api import Services, build_app
from pecflow.domain.access import Role
from pecflow.services.audit import AuditLog
from pecflow.services.inbox import Inbox
from pecflow.services.people import PeopleAdmin
from pecflow.services.rules import RulesDesk
from tests import fakes
from tests.unit.test_api import call

BOX = "ufficio@pec.alfa.test"
PATH = f"/mailboxes/{BOX}/rules"
RULES = {
    "version": 1,
    "accepted_formats": {"allow": ["pdf", "xml", "p7m"]},
    "rules": [{"name": "Fatture", "when": {"has_sdi": True}, "then": {"tag": ["fattura"]}}],
}


class RulesInMemory:
    def __init__(self):
        self.data = {}

    def rules(self, mailbox):
        return self.data.get(mailbox)

    def set_rules(self, mailbox, document, *, by):
        if mailbox == "assente@pec.alfa.test":
            raise KeyError("La casella assente@pec.alfa.test non è configurata: aggiungila prima.")
        self.data[mailbox] = document


@pytest.fixture
def world():
    audit = fakes.FakeAuditStore()
    store = fakes.FakePeopleStore()
    people = PeopleAdmin(store, AuditLog(audit), fakes.FakeDirectory())
    for name, role in (("vera", Role.VIEWER), ("marco", Role.MANAGER), ("carla", Role.ADMIN)):
        people.add("test", name, f"{name}@alfa.test")
        people.set_role("test", name, BOX, role)
        people.set_role("test", name, "assente@pec.alfa.test", role)
    inbox = Inbox(fakes.FakeInboxStore(audit), audit, store, None, cursor_secret=b"s" * 32)
    rules = RulesInMemory()
    app = build_app(Services(inbox, people, AuditLog(audit), rules=RulesDesk(rules, AuditLog(audit))))
    return app, rules, audit


def test_an_admin_writes_and_reads_the_rules(world):
    app, rules, audit = world
    assert call(app, "GET", PATH) == (200, {"mailbox": BOX, "document": None})
    status, body = call(app, "PUT", PATH, body=RULES)
    assert (status, body) == (200, {"mailbox": BOX, "rules": 1, "accepted_formats": ["p7m", "pdf", "xml"]})
    assert call(app, "GET", PATH) == (200, {"mailbox": BOX, "document": RULES})
    [event] = [e for e in audit.events(BOX) if e.action == "rules-change"]
    assert event.actor == "carla" and event.details["rules"] == "1"


def test_a_bad_document_is_answered_with_every_problem(world):
    app, rules, _ = world
    bad = {"version": 1, "rules": [{"name": "Fatture", "when": {"sendr": ["x"]}, "then": {"save": {}}}]}
    status, body = call(app, "PUT", PATH, body=bad)
    assert status == 400 and body["code"] == "bad-request"
    assert body["problems"] == [
        "regola 1 («Fatture»), campo then.save: manca il campo prefix",
        "regola 1 («Fatture»), campo when: campo sconosciuto «sendr» (forse «sender»?); campi ammessi: "
        "attachment_types, has_sdi, kind, sender, sender_domain, sender_pattern, signature, subject",
    ]
    assert rules.data == {}


def test_only_admins_and_only_configured_mailboxes(world):
    app, rules, _ = world
    assert call(app, "PUT", PATH, user="marco", body=RULES)[0] == 403
    assert call(app, "GET", PATH, user="vera")[0] == 403
    assert call(app, "GET", "/mailboxes/altro@pec.alfa.test/rules")[0] == 404
    status, body = call(app, "PUT", "/mailboxes/assente@pec.alfa.test/rules", body=RULES)
    assert status == 404 and "non è configurata" in body["message"]


def test_a_reply_and_a_pdf_are_written_and_a_bad_template_is_named(world):
    app, rules, _ = world
    reply = {
        "template": "Gentile {{ mittente }}, ricevuto.",
        "subject": "Ricevuto: {{ oggetto }}",
        "once_per": "3d",
    }
    document = {
        "version": 1,
        "rules": [{"name": "Conferma", "then": {"reply": reply, "pdf": {"prefix": "stampe"}}}],
    }
    assert call(app, "PUT", PATH, body=document)[0] == 200 and rules.data[BOX] == document
    bad = {
        "version": 1,
        "rules": [{"name": "Conferma", "then": {"reply": reply | {"template": "{{ nome }}"}}}],
    }
    status, body = call(app, "PUT", PATH, body=bad)
    assert status == 400 and body["problems"] == [
        "regola 1 («Conferma»), campo then.reply.template: usa «nome», ma le variabili sono mittente, oggetto, "
        "casella, ricevuto_il, identificativo, regola"
    ]
    assert rules.data[BOX] == document

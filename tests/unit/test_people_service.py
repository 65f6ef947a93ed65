"""People and roles on fakes: one account per person with its sign-in account, admins change
only people within their mailboxes, every change audited."""

from __future__ import annotations

import pytest

from pecflow.domain.access import Forbidden, Person, Role
from pecflow.services.audit import AuditLog
from pecflow.services.people import PEOPLE_LOG, PeopleAdmin, PeopleError
from tests import fakes

BOX, OTHER = "ufficio@pec.alfa.test", "legale@pec.alfa.test"
CLI = "cli:root@host"


@pytest.fixture
def admin():
    audit = fakes.FakeAuditStore()
    people = PeopleAdmin(fakes.FakePeopleStore(), AuditLog(audit), fakes.FakeDirectory())
    return people, audit


def test_the_operator_adds_a_person_with_a_sign_in_account(admin):
    people, audit = admin
    anna = people.add(CLI, "Anna.Rossi", "Anna.Rossi@Alfa.test", "Anna Rossi")
    assert (anna.username, anna.email, anna.name, anna.enabled) == (
        "anna.rossi",
        "anna.rossi@alfa.test",
        "Anna Rossi",
        True,
    )
    assert people.directory.accounts["anna.rossi"]["enabled"]
    (event,) = audit.events(PEOPLE_LOG)
    assert (event.actor, event.action, event.message, event.details["change"]) == (
        CLI,
        "person-change",
        "anna.rossi",
        "added",
    )


@pytest.mark.parametrize(
    ("username", "email", "says"),
    [
        ("a", "a@alfa.test", "cannot be a username"),
        ("anna rossi", "a@alfa.test", "cannot be a username"),
        ("anna", "not-an-address", "is not an e-mail address"),
    ],
)
def test_bad_input_is_told_plainly(admin, username, email, says):
    people, _ = admin
    with pytest.raises(PeopleError, match=says):
        people.add(CLI, username, email)


def test_one_account_per_person(admin):
    people, _ = admin
    people.add(CLI, "anna", "anna@alfa.test")
    with pytest.raises(PeopleError, match="already a person called anna"):
        people.add(CLI, "anna", "altra@alfa.test")


def test_roles_are_granted_changed_revoked_and_audited_in_the_mailbox(admin):
    people, audit = admin
    people.add(CLI, "anna", "anna@alfa.test")
    assert people.set_role(CLI, "anna", "Ufficio@PEC.alfa.test", Role.VIEWER).roles == {BOX: Role.VIEWER}
    people.set_role(CLI, "anna", BOX, Role.OPERATOR)
    people.set_role(CLI, "anna", BOX, Role.OPERATOR)  # no change: nothing audited
    assert people.set_role(CLI, "anna", BOX, None).roles == {}
    changes = [(e.details["from"], e.details["to"]) for e in audit.events(BOX)]
    assert changes == [("none", "viewer"), ("viewer", "operator"), ("operator", "none")]
    assert [p.username for p in people.people(BOX)] == []


def test_admins_act_only_within_their_mailboxes(admin):
    people, _ = admin
    for name in ("carla", "anna", "bruno"):
        people.add(CLI, name, f"{name}@alfa.test")
    people.set_role(CLI, "carla", BOX, Role.ADMIN)
    people.set_role(CLI, "bruno", OTHER, Role.VIEWER)
    carla = people.store.person("carla")
    people.set_role(carla, "anna", BOX, Role.OPERATOR)
    with pytest.raises(Forbidden):
        people.set_role(carla, "anna", OTHER, Role.VIEWER)
    assert not people.set_enabled(carla, "anna", False).enabled
    with pytest.raises(PeopleError, match="not bruno"):
        people.set_enabled(carla, "bruno", False)
    with pytest.raises(PeopleError, match="your own account"):
        people.set_enabled(carla, "carla", False)
    assert not people.directory.accounts["anna"]["enabled"]
    with pytest.raises(PeopleError, match="only an admin"):
        people.add(Person("anna", "a", roles={BOX: Role.MANAGER}), "dario", "dario@alfa.test")
    with pytest.raises(PeopleError, match="no person called zeno"):
        people.set_enabled(CLI, "zeno", False)

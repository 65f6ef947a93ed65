"""Roles per person per mailbox: each role allows what the one below does and more; without a
role a mailbox is invisible; disabled people are refused."""

from __future__ import annotations

import pytest

from pecflow.domain.access import (
    MINIMUM_ROLE,
    Action,
    DisabledPerson,
    Forbidden,
    NotVisible,
    Person,
    Role,
    allows,
    may_change_person,
    may_grant,
    people_on,
)

UFFICIO, LEGALE = "ufficio@pec.alfa.test", "legale@pec.alfa.test"

EXPECTED = {  # the table, written out: what each role may do
    Role.VIEWER: {Action.LIST, Action.READ, Action.DOWNLOAD},
    Role.OPERATOR: {
        Action.LIST,
        Action.READ,
        Action.DOWNLOAD,
        Action.TAKE_IN_CHARGE,
        Action.RELEASE,
        Action.MARK_HANDLED,
        Action.REOPEN,
        Action.REPLY,
        Action.FORWARD,
    },
    Role.MANAGER: {
        Action.LIST,
        Action.READ,
        Action.DOWNLOAD,
        Action.TAKE_IN_CHARGE,
        Action.RELEASE,
        Action.MARK_HANDLED,
        Action.REOPEN,
        Action.REPLY,
        Action.FORWARD,
        Action.ASSIGN,
        Action.CAMPAIGN,
    },
    Role.ADMIN: set(Action),
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_each_role_allows_exactly_its_actions(role, action):
    assert allows(role, action) == (action in EXPECTED[role])


def test_every_action_has_a_minimum_role():
    assert set(MINIMUM_ROLE) == set(Action)


def test_no_role_means_not_found_and_a_low_role_means_forbidden():
    anna = Person("anna", "anna@alfa.test", roles={UFFICIO: Role.OPERATOR})
    assert anna.require(UFFICIO, Action.REPLY) is Role.OPERATOR
    with pytest.raises(NotVisible, match="not found"):
        anna.require(LEGALE, Action.LIST)
    with pytest.raises(Forbidden) as refused:
        anna.require(UFFICIO, Action.DELETE)
    assert "your role on ufficio@pec.alfa.test is operator: delete needs admin" in str(refused.value)


def test_mailbox_case_does_not_matter_and_disabled_people_see_nothing():
    anna = Person("anna", "anna@alfa.test", roles={UFFICIO: Role.ADMIN})
    assert anna.role_on("Ufficio@PEC.alfa.test") is Role.ADMIN
    gone = Person("anna", "anna@alfa.test", enabled=False, roles={UFFICIO: Role.ADMIN})
    assert gone.mailboxes() == [] and gone.role_on(UFFICIO) is None
    with pytest.raises(DisabledPerson):
        gone.require(UFFICIO, Action.LIST)


def test_admins_change_only_people_within_their_mailboxes():
    admin = Person("carla", "c@alfa.test", roles={UFFICIO: Role.ADMIN, LEGALE: Role.VIEWER})
    assert may_change_person(admin, None)  # a new person
    assert may_change_person(admin, Person("anna", "a@alfa.test", roles={UFFICIO: Role.VIEWER}))
    assert not may_change_person(
        admin, Person("bruno", "b@alfa.test", roles={UFFICIO: Role.VIEWER, LEGALE: Role.VIEWER})
    )
    assert not may_change_person(Person("anna", "a@alfa.test", roles={UFFICIO: Role.MANAGER}), None)
    assert may_grant(admin, UFFICIO, Role.OPERATOR) and not may_grant(admin, LEGALE, Role.VIEWER)


def test_who_may_be_assigned_a_message():
    people = [
        Person("anna", "a", roles={UFFICIO: Role.OPERATOR}),
        Person("bruno", "b", roles={UFFICIO: Role.VIEWER}),
        Person("carla", "c", roles={UFFICIO: Role.ADMIN}, enabled=False),
        Person("dario", "d", roles={LEGALE: Role.ADMIN}),
    ]
    assert [p.username for p in people_on(UFFICIO, people, Action.TAKE_IN_CHARGE)] == ["anna"]

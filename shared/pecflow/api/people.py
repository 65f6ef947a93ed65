"""/people: the people with a role on the mailboxes I administer, adding one, disabling and
enabling, roles per mailbox."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import Router

from pecflow.api.context import Services, caller
from pecflow.api.models import USERNAME, NewPerson, PersonOut, RoleGrant, answers
from pecflow.domain.access import Action, NotVisible, Person, Role


def _out(person: Person, seen_by: Person) -> PersonOut:
    """A person as `seen_by` may see them: their roles on the mailboxes `seen_by` has a role on
    (another office's mailboxes are not named)."""
    return PersonOut(
        username=person.username,
        email=person.email,
        name=person.name,
        enabled=person.enabled,
        roles={m: r.value for m, r in person.roles.items() if seen_by.role_on(m) is not None},  # type: ignore[misc]
    )


Username = Annotated[str, Path(pattern=USERNAME, description="the person's username")]


def routes(services: Services) -> Router:
    router = Router()

    @router.get("/", summary="the people with a role on a mailbox I administer", tags=["people"],
                responses=answers(404))  # fmt: skip
    def list_people(mailbox: Annotated[str, Query(min_length=3, max_length=254)]) -> list[PersonOut]:
        person = caller(router.current_event, services)
        person.require(mailbox, Action.MANAGE_PEOPLE)
        return [_out(p, person) for p in services.people.people(mailbox)]

    @router.post("/", summary="add a person (an invitation is e-mailed to them)", tags=["people"],
                 responses=answers(400, 415))  # fmt: skip
    def add_person(body: NewPerson) -> PersonOut:
        person = caller(router.current_event, services)
        return _out(services.people.add(person, body.username, body.email, body.name), person)

    @router.post("/<username>/disable", summary="refuse every sign-in and request of a person", tags=["people"],
                 responses=answers(400, 404, 415))  # fmt: skip
    def disable(username: Username) -> PersonOut:
        person = caller(router.current_event, services)
        return _out(services.people.set_enabled(person, username, False), person)

    @router.post("/<username>/enable", summary="let a disabled person in again", tags=["people"],
                 responses=answers(400, 404, 415))  # fmt: skip
    def enable(username: Username) -> PersonOut:
        person = caller(router.current_event, services)
        return _out(services.people.set_enabled(person, username, True), person)

    @router.put("/<username>/roles/<mailbox>", summary="give, change or take away a role on a mailbox",
                tags=["people"], responses=answers(400, 404, 415))  # fmt: skip
    def set_role(username: Username, mailbox: str, body: RoleGrant) -> PersonOut:
        person = caller(router.current_event, services)
        if person.role_on(mailbox) is None:
            raise NotVisible(f"mailbox {mailbox} not found")
        role = Role(body.role) if body.role else None
        return _out(services.people.set_role(person, username, mailbox, role), person)

    return router

"""/mailboxes/{mailbox}/rules (admins): a mailbox's automatic rules and accepted formats, read and
written as the JSON document of schemas/rules.schema.json. A document refused is answered 400 with
every problem, each naming its rule and field."""

from __future__ import annotations

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import Router
from pydantic import BaseModel, Field

from pecflow.api.context import Services, caller
from pecflow.api.models import answers
from pecflow.domain.rules import RulesError
from pecflow.services.rules import RulesDesk


class RulesOut(BaseModel):
    mailbox: str
    document: dict[str, Any] | None = Field(None, description="as stored; null: the mailbox has no rules")


class RulesSaved(BaseModel):
    mailbox: str
    rules: int = Field(..., description="rules in the document")
    accepted_formats: list[str] | None = Field(None, description="null: every format is accepted")


def _problem(status: int, message: str, code: str, **extra: Any) -> Response:
    body = {"message": message, "code": code, **extra}
    return Response(status, content_types.APPLICATION_JSON, json.dumps(body, ensure_ascii=False))


Mailbox = Annotated[str, Path(min_length=3, max_length=254, description="the mailbox's address")]
Document = Annotated[dict[str, Any], Body(description="a rules document (schemas/rules.schema.json)")]


class RulesUnavailable(Exception):
    """This installation's API was wired without the rules."""


def routes(services: Services) -> Router:
    router = Router()

    def desk() -> RulesDesk:
        if services.rules is None:
            raise RulesUnavailable("this installation cannot change rules from the API")
        return services.rules

    @router.get("/<mailbox>/rules", summary="the mailbox's automatic rules and accepted formats (admins)",
                tags=["rules"], responses=answers(400, 404))  # fmt: skip
    def show(mailbox: Mailbox) -> RulesOut:
        person = caller(router.current_event, services)
        return RulesOut(mailbox=mailbox.lower(), document=desk().show(person, mailbox))

    @router.put("/<mailbox>/rules", summary="replace the mailbox's rules: checked against the schema, "
                "every problem named; pollers apply them within a minute (admins)",
                tags=["rules"], responses=answers(400, 404, 415))  # fmt: skip
    def replace(mailbox: Mailbox, document: Document) -> RulesSaved:
        person = caller(router.current_event, services)
        saved = desk().set(person, mailbox, document)
        return RulesSaved(
            mailbox=mailbox.lower(),
            rules=len(saved.rules),
            accepted_formats=sorted(saved.accepted.allow) if saved.accepted else None,
        )

    @router.exception_handler(RulesError)
    def refused(exc: RulesError) -> Response:
        return _problem(400, str(exc), "bad-request", problems=exc.problems)

    @router.exception_handler(KeyError)
    def no_mailbox(exc: KeyError) -> Response:
        return _problem(404, str(exc.args[0] if exc.args else exc), "not-found")

    @router.exception_handler(RulesUnavailable)
    def unavailable(exc: RulesUnavailable) -> Response:
        return _problem(400, str(exc), "bad-request")

    return router

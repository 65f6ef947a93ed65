"""The resolver: who calls (from the authorizer's JWT claims, then the people table), errors as
JSON with a clear message, the routers, the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from pecflow.api import messages, people, replies
from pecflow.api.context import Services, Unauthenticated, caller
from pecflow.api.models import MailboxAccess, Me
from pecflow.domain.access import DisabledPerson, Forbidden, NotVisible
from pecflow.domain.handling import HandlingConflict, NotAllowed
from pecflow.domain.inbox import CursorError, FilterError
from pecflow.services.inbox import InboxError
from pecflow.services.people import PeopleError, PeopleForbidden

API_TITLE = "pecflow"
API_VERSION = "1"


def _problem(status: int, message: str, code: str, **extra: Any) -> Response:
    body = {"message": message, "code": code, **{k: v for k, v in extra.items() if v is not None}}
    return Response(status, content_types.APPLICATION_JSON, json.dumps(body, ensure_ascii=False))


class _Resolver(APIGatewayHttpResolver):
    """API Gateway passes the path as the browser sent it (`rawPath`, percent-encoded: a mailbox
    is `ufficio%40pec.azienda.it` there); Powertools matches it as it is. The routes get it decoded."""

    def resolve(self, event: Any, context: Any) -> dict[str, Any]:
        raw = event.get("rawPath") if isinstance(event, dict) else None
        if raw and "%" in raw:
            event = {**event, "rawPath": unquote(raw)}
        return super().resolve(event, context)


def build_app(services: Services) -> APIGatewayHttpResolver:
    app = _Resolver(enable_validation=True)
    app.include_router(messages.routes(services), prefix="/mailboxes")
    app.include_router(replies.routes(services), prefix="/mailboxes")
    app.include_router(people.routes(services), prefix="/people")

    @app.get("/me", summary="who I am and the mailboxes I may see, with my role on each")
    def me() -> Me:
        person = caller(app.current_event, services)
        return Me(
            username=person.username,
            email=person.email,
            name=person.name,
            mailboxes=[MailboxAccess(mailbox=m, role=r.value) for m, r in sorted(person.roles.items())],  # type: ignore[arg-type]
        )

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> dict:
        return json.loads(openapi_document(app))

    @app.exception_handler(Unauthenticated)
    def unauthenticated(exc: Unauthenticated) -> Response:
        return _problem(401, str(exc), "unauthenticated")

    @app.exception_handler(DisabledPerson)
    def disabled(exc: DisabledPerson) -> Response:
        return _problem(403, "your account is disabled: ask an administrator", "disabled")

    @app.exception_handler(NotVisible)
    def not_visible(exc: NotVisible) -> Response:
        return _problem(404, str(exc), "not-found")

    @app.exception_handler(NotFoundError)
    def no_route(exc: NotFoundError) -> Response:
        return _problem(404, "no such address in this API", "not-found")

    @app.exception_handler([Forbidden, NotAllowed, PeopleForbidden])
    def forbidden(exc: Exception) -> Response:
        return _problem(403, str(exc), "forbidden")

    @app.exception_handler(HandlingConflict)
    def conflict(exc: HandlingConflict) -> Response:
        since = exc.current.since.isoformat() if exc.current.since else None
        return _problem(409, str(exc), exc.code, holder=exc.current.holder, since=since)

    @app.exception_handler([InboxError, PeopleError, FilterError, CursorError])
    def bad_request(exc: Exception) -> Response:
        return _problem(400, str(exc), "bad-request")

    @app.exception_handler(RequestValidationError)
    def invalid(exc: RequestValidationError) -> Response:
        errors = exc.errors()
        where = ", ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'request'}: {e.get('msg')}"
            for e in errors[:5]
        )
        return _problem(422, f"the request is not as this API expects it: {where}", "invalid-request")

    return app


def openapi_document(app: APIGatewayHttpResolver) -> str:
    return app.get_openapi_json_schema(
        title=API_TITLE,
        version=API_VERSION,
        description="Work a company's PEC mailboxes together: messages, presa in carico, audit, people.",
    )


__all__ = ["API_TITLE", "API_VERSION", "Services", "build_app", "openapi_document"]

"""The resolver: who calls (from the authorizer's JWT claims, then the people table), errors as
JSON with a clear message, the routers, the OpenAPI document."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.utilities.typing import LambdaContext

from pecflow.api import (
    campaign_tests,
    campaigns,
    conservation,
    evidence,
    invoices,
    mailboxes,
    messages,
    people,
    replies,
    rules,
)
from pecflow.api.context import Services, Unauthenticated, caller
from pecflow.api.models import MailboxAccess, Me, answers
from pecflow.domain.access import DisabledPerson, Forbidden, NotVisible
from pecflow.domain.handling import HandlingConflict, NotAllowed
from pecflow.domain.inbox import CursorError, FilterError
from pecflow.services.campaign_desk import CampaignConflict, CampaignRefused
from pecflow.services.campaign_tests import TestSendError
from pecflow.services.inbox import InboxError
from pecflow.services.people import NoSuchPerson, PeopleError, PeopleForbidden

API_TITLE = "pecflow"
API_VERSION = "1"


def _problem(status: int, message: str, code: str, **extra: Any) -> Response:
    body = {"message": message, "code": code, **{k: v for k, v in extra.items() if v is not None}}
    return Response(status, content_types.APPLICATION_JSON, json.dumps(body, ensure_ascii=False))


def _methods_at(app: APIGatewayHttpResolver, path: str) -> list[str]:
    """The methods some route takes at this path: the resolver's own table, matched as it matches
    (private to Powertools, pinned in the lock: a unit test of the 405 fails if it changes)."""
    routes = [*app._static_routes, *app._dynamic_routes]
    return sorted({r.method for r in routes if r.rule.match(path)})


JSON = "application/json"


def _not_json(sent: str) -> str:
    return f"send the body as JSON (Content-Type: {JSON}), not {sent or 'no Content-Type'}"


def _refusal(event: Mapping[str, Any]) -> tuple[int, str] | None:
    """Why a request's body cannot be JSON, said before Powertools' validation reads it: this API
    takes JSON bodies only. Powertools would parse a form or multipart body (and raise, a 500, on
    a multipart type without its boundary), and raise on a body that is not UTF-8 (a 500 too)."""
    sent = _content_type(event)
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "")).upper()
    body = event.get("body") or ""
    if sent and not sent.lower().startswith(JSON) and (body or method in ("POST", "PUT", "PATCH")):
        return 415, _not_json(sent)
    if body and event.get("isBase64Encoded"):
        try:
            base64.b64decode(body).decode("utf-8")
        except ValueError:  # not base64, or not UTF-8 text
            return 400, "the body is not JSON: it is not even UTF-8 text"
    return None


def _content_type(event: Mapping[str, Any]) -> str:
    headers = event.get("headers") or {}
    return next((str(v).strip() for k, v in headers.items() if str(k).lower() == "content-type"), "")


class Resolver(APIGatewayHttpResolver):
    """Powertools' resolver, refusing with a clear message the bodies that cannot be JSON, and
    matching the path decoded (API Gateway passes `rawPath` percent-encoded, as the browser sent it)."""

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        refusal = _refusal(event)
        if refusal is not None:
            status, message = refusal
            body = json.dumps({"message": message, "code": "not-json"}, ensure_ascii=False)
            return {
                "statusCode": status,
                "headers": {"Content-Type": JSON},
                "body": body,
                "isBase64Encoded": False,
            }
        raw = event.get("rawPath")
        if raw and "%" in raw:  # the path as the browser sent it: a mailbox is ufficio%40… there
            event = {**event, "rawPath": unquote(raw)}
        sent = _content_type(event)
        if sent != sent.lower():  # Application/JSON: Powertools knows JSON in lower case only
            headers = {k: v for k, v in event["headers"].items() if str(k).lower() != "content-type"}
            event = {**event, "headers": {**headers, "content-type": sent.lower()}}
        return super().resolve(event, context)


def build_app(services: Services) -> APIGatewayHttpResolver:
    app = Resolver(enable_validation=True)
    app.include_router(messages.routes(services), prefix="/mailboxes")
    app.include_router(replies.routes(services), prefix="/mailboxes")
    app.include_router(campaigns.routes(services), prefix="/mailboxes")
    app.include_router(campaign_tests.routes(services), prefix="/mailboxes")
    app.include_router(evidence.routes(services), prefix="/mailboxes")
    app.include_router(people.routes(services), prefix="/people")
    app.include_router(mailboxes.routes(services), prefix="/mailboxes")
    app.include_router(rules.routes(services), prefix="/mailboxes")
    app.include_router(invoices.routes(services), prefix="/mailboxes")
    app.include_router(conservation.routes(services), prefix="/mailboxes")

    @app.get("/me", summary="who I am and the mailboxes I may see, with my role on each", responses=answers())
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

    @app.exception_handler([NotVisible, NoSuchPerson])
    def not_visible(exc: Exception) -> Response:
        return _problem(404, str(exc), "not-found")

    @app.exception_handler(NotFoundError)
    def no_route(exc: NotFoundError) -> Response:
        method, path = app.current_event.http_method.upper(), app.current_event.path
        allowed = _methods_at(app, path)
        if not allowed:
            return _problem(404, "no such address in this API", "not-found")
        response = _problem(
            405, f"{path} does not take {method}: only {', '.join(allowed)}", "method-not-allowed"
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.exception_handler([Forbidden, NotAllowed, PeopleForbidden])
    def forbidden(exc: Exception) -> Response:
        return _problem(403, str(exc), "forbidden")

    @app.exception_handler(HandlingConflict)
    def conflict(exc: HandlingConflict) -> Response:
        since = exc.current.since.isoformat() if exc.current.since else None
        return _problem(409, str(exc), exc.code, holder=exc.current.holder, since=since)

    @app.exception_handler(CampaignConflict)
    def campaign_conflict(exc: CampaignConflict) -> Response:
        return _problem(409, str(exc), "conflict")

    @app.exception_handler(
        [InboxError, PeopleError, FilterError, CursorError, CampaignRefused, TestSendError]
    )
    def bad_request(exc: Exception) -> Response:
        return _problem(400, str(exc), "bad-request")

    @app.exception_handler(RequestUnsupportedContentType)
    def not_json(exc: RequestUnsupportedContentType) -> Response:
        return _problem(415, _not_json(app.current_event.headers.get("content-type") or ""), "not-json")

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
        # every route but this document: the Cognito user pool's token, checked by API Gateway
        security_schemes={"cognito": HTTPBearer(bearerFormat="JWT", description="the id or access token")},
        security=[{"cognito": []}],
    )


__all__ = ["API_TITLE", "API_VERSION", "Services", "build_app", "openapi_document"]

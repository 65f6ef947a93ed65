"""/mailboxes/{mailbox}/invoices: the SdI invoices of a mailbox (received and sent) with their
states and deadlines, exported as CSV, an active invoice sent to the SdI, and the notifications
no invoice was found for yet."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import Router
from pydantic import BaseModel, Field

from pecflow.api.context import Services, caller
from pecflow.api.models import answers
from pecflow.domain import invoices as inv
from pecflow.services.invoices import InvoiceDesk, InvoiceError

Mailbox = Annotated[str, Path(min_length=3, max_length=254, description="the mailbox's address")]
Since = Annotated[
    str | None,
    Query(alias="from", pattern=r"^\d{4}-\d{2}-\d{2}$", description="invoice date from, YYYY-MM-DD"),
]
Until = Annotated[
    str | None, Query(alias="to", pattern=r"^\d{4}-\d{2}-\d{2}$", description="invoice date to, YYYY-MM-DD")
]
Direction = Annotated[
    Literal["active", "passive"] | None, Query(description="active: sent; passive: received")
]
State = Annotated[str | None, Query(max_length=40, description="e.g. inviata, consegnata, ricevuta")]
Supplier = Annotated[str | None, Query(max_length=200, description="VAT number or part of the name")]


class InvoiceList(BaseModel):
    mailbox: str
    invoices: list[dict[str, Any]]
    count: int


class UnmatchedList(BaseModel):
    mailbox: str
    notifications: list[dict[str, Any]] = Field(
        ..., description="SdI notifications no invoice was found for yet"
    )


class InvoiceToSend(BaseModel):
    filename: str = Field(..., min_length=5, max_length=60, description="e.g. IT01234567890_00001.xml(.p7m)")
    content_base64: str = Field(..., min_length=4, max_length=7_500_000, description="the file, base64")


class InvoiceSent(BaseModel):
    message_id: str
    nome_file: str
    to: str
    state: str
    new: bool = Field(..., description="false: this very file was sent before, nothing went out twice")


class InvoicesUnavailable(Exception):
    """This installation's API was wired without invoices."""


def _problem(status: int, message: str, code: str) -> Response:
    body = {"message": message, "code": code}
    return Response(status, content_types.APPLICATION_JSON, json.dumps(body, ensure_ascii=False))


def routes(services: Services) -> Router:
    router = Router()

    def desk() -> InvoiceDesk:
        if services.invoices is None:
            raise InvoicesUnavailable("questa installazione non gestisce le fatture elettroniche")
        return services.invoices

    def chosen(direction, since, until, state, supplier) -> inv.InvoiceFilter:
        try:
            return inv.InvoiceFilter(direction, since, until, state, supplier)
        except ValueError as exc:
            raise InvoiceError(str(exc)) from None

    @router.get("/<mailbox>/invoices", summary="the mailbox's SdI invoices, newest invoice date first",
                tags=["invoices"], responses=answers(400, 404))  # fmt: skip
    def list_invoices(
        mailbox: Mailbox,
        direction: Direction = None,
        since: Since = None,
        until: Until = None,
        state: State = None,
        supplier: Supplier = None,
    ) -> InvoiceList:
        person = caller(router.current_event, services)
        found = desk().find(mailbox, chosen(direction, since, until, state, supplier), person)
        return InvoiceList(mailbox=mailbox.lower(), invoices=found, count=len(found))

    @router.get("/<mailbox>/invoices/export", summary="the invoices as CSV (';'-separated, for a spreadsheet)",
                tags=["invoices"], responses=answers(400, 404))  # fmt: skip
    def export_invoices(
        mailbox: Mailbox,
        direction: Direction = None,
        since: Since = None,
        until: Until = None,
        state: State = None,
        supplier: Supplier = None,
    ):  # a CSV answer, not a model
        person = caller(router.current_event, services)
        text = desk().export(mailbox, chosen(direction, since, until, state, supplier), person)
        return Response(
            200,
            "text/csv; charset=utf-8",
            text,
            headers={"Content-Disposition": 'attachment; filename="fatture.csv"'},
        )

    @router.get("/<mailbox>/invoices/unmatched", summary="SdI notifications no invoice was found for yet",
                tags=["invoices"], responses=answers(400, 404))  # fmt: skip
    def unmatched(mailbox: Mailbox) -> UnmatchedList:
        person = caller(router.current_event, services)
        return UnmatchedList(mailbox=mailbox.lower(), notifications=desk().unmatched(mailbox, person))

    @router.post("/<mailbox>/invoices", summary="send an invoice to the SdI by PEC (operators): through the "
                 "sender, once only; its state follows the SdI's notifications",
                 tags=["invoices"], responses=answers(400, 404, 415))  # fmt: skip
    def send(mailbox: Mailbox, body: InvoiceToSend) -> InvoiceSent:
        person = caller(router.current_event, services)
        try:
            content = base64.b64decode(body.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvoiceError("content_base64: il file non è in base64") from None
        sent = desk().send(mailbox, body.filename, content, by=person.username, person=person)
        return InvoiceSent(**sent.as_dict())

    @router.exception_handler([InvoiceError, InvoicesUnavailable])
    def refused(exc: Exception) -> Response:
        return _problem(400, str(exc), "bad-request")

    return router

"""/mailboxes/{mailbox}/conservation-exports: a period of the mailbox exported for conservation
(pacchetto di versamento, pecflow.domain.conservation), built into the downloads bucket and linked
for five minutes; and the periods exported so far. Administrators of the mailbox only."""

from __future__ import annotations

import datetime as dt

from aws_lambda_powertools.event_handler.router import Router
from pydantic import BaseModel, ConfigDict, Field

from pecflow.api.context import Services, caller, source
from pecflow.api.models import answers
from pecflow.services.conservation import ConservationError


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first: dt.date | None = Field(
        None, description="the first day (Italian time); omit with from_last_export"
    )
    last: dt.date = Field(description="the last day, included: a day already over")
    from_last_export: bool = Field(
        False, description="from the day after the last exported period (--continue)"
    )


class ExportDownload(BaseModel):
    url: str
    filename: str
    first: str
    last: str
    documents: int
    sha256: str  # of the package, as recorded with the period
    notes: list[str]  # e.g. days between exports that no package holds
    expires_in: int = 300


class ExportedPeriod(BaseModel):
    first: str
    last: str
    documents: int
    sent: int = 0
    receipts: int = 0
    records: int = 0  # the period's records when exported
    package_sha256: str
    package_size: int
    index_sha256: str
    filename: str
    created_at: str
    created_by: str


class ExportedPeriods(BaseModel):
    periods: list[ExportedPeriod]
    gaps: list[str]


def routes(services: Services) -> Router:
    router = Router()

    def exports():
        if services.conservation is None:
            raise ConservationError("this installation makes no conservation exports")
        return services.conservation

    @router.post("/<mailbox>/conservation-exports",
                 summary="export a period of the mailbox for conservation (pacchetto di versamento: every "
                 "message and receipt with its AgID metadata and a UNI SInCRO index); a 5-minute link",
                 tags=["conservation"], responses=answers(400, 403, 404))  # fmt: skip
    def export(mailbox: str, request: ExportRequest) -> ExportDownload:
        person = caller(router.current_event, services)
        answer = exports().link(
            person, mailbox.lower(),
            first=request.first.isoformat() if request.first else None, last=request.last.isoformat(),
            continue_=request.from_last_export, source=source(router.current_event),
        )  # fmt: skip
        return ExportDownload(**answer)

    @router.get("/<mailbox>/conservation-exports", summary="the periods exported so far, and any gap",
                tags=["conservation"], responses=answers(400, 403, 404))  # fmt: skip
    def exported(mailbox: str) -> ExportedPeriods:
        person = caller(router.current_event, services)
        return ExportedPeriods(**exports().exported(person, mailbox.lower()))

    return router

"""/mailboxes/{mailbox}/messages: the list with its filters, one message (a view in the audit),
presa in carico, the bin, a message's audit trail; /mailboxes/{mailbox}/audit: the chain's check."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import Router

from pecflow.api.context import Services, caller, source
from pecflow.api.models import (
    AuditCheck,
    AuditEventOut,
    Deletion,
    Download,
    FileDownload,
    HandlingAct,
    HandlingOut,
    MessagePage,
    MessageView,
    answers,
)
from pecflow.domain.access import Action
from pecflow.domain.handling import Act, Handling, Status
from pecflow.domain.inbox import Filters

# a message is named by the SHA-256 of its original: anything else is no message (422, not a lookup)
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="the SHA-256 of the original, hex")]


def _handling(h: Handling) -> HandlingOut:
    return HandlingOut(
        handling=h.status.value,  # type: ignore[arg-type]
        holder=h.holder,
        since=h.since.isoformat() if h.since else None,
        by=h.by,
        note=h.note,
    )


def routes(services: Services) -> Router:
    router = Router()

    @router.get("/<mailbox>/messages", summary="the messages of a mailbox, newest first", tags=["messages"],
                responses=answers(400, 404))  # fmt: skip
    def list_messages(
        mailbox: str,
        kind: Annotated[
            str | None, Query(description="posta-certificata, anomalia, a receipt kind, …")
        ] = None,
        received_from: Annotated[datetime | None, Query(description="ISO 8601 with its zone")] = None,
        received_to: Annotated[datetime | None, Query()] = None,
        handling: Annotated[Literal["da-gestire", "in-carico", "gestito"] | None, Query()] = None,
        holder: Annotated[str | None, Query(max_length=63, description="in whose charge")] = None,
        campaign: Annotated[str | None, Query(max_length=200)] = None,
        sdi: Annotated[bool | None, Query(description="has an SdI file")] = None,
        q: Annotated[
            str | None, Query(max_length=200, description="words of the subject and parties")
        ] = None,
        receipts: Annotated[bool, Query(description="the receipts instead of the messages")] = False,
        bin: Annotated[bool, Query(description="the deleted messages (admins)")] = False,
        cursor: Annotated[str | None, Query(max_length=2000)] = None,
        size: Annotated[int | None, Query(ge=1, le=200)] = None,
    ) -> MessagePage:
        person = caller(router.current_event, services)
        filters = Filters(
            kind=kind,
            received_from=received_from,
            received_to=received_to,
            handling=Status(handling) if handling else None,
            holder=holder,
            campaign=campaign,
            has_sdi=sdi,
            text=q,
            receipts=receipts,
            bin=bin,
        )
        listing = services.inbox.list(person, mailbox, filters, cursor=cursor, size=size)
        return MessagePage(messages=listing.rows, cursor=listing.cursor)

    @router.get("/<mailbox>/messages/<sha256>", summary="one message (recorded in the audit log as a view)",
                tags=["messages"], responses=answers(404))  # fmt: skip
    def show_message(mailbox: str, sha256: Sha256) -> MessageView:
        person = caller(router.current_event, services)
        shown = services.inbox.show(person, mailbox, sha256, source(router.current_event))
        return MessageView(**shown)

    @router.get("/<mailbox>/messages/<sha256>/download", summary="a 5-minute link to the original .eml",
                tags=["messages"], responses=answers(400, 404))  # fmt: skip
    def download(mailbox: str, sha256: Sha256) -> Download:
        person = caller(router.current_event, services)
        return Download(url=services.inbox.download(person, mailbox, sha256, source(router.current_event)))

    @router.get("/<mailbox>/messages/<sha256>/files/<index>", summary="a 5-minute link to one of its files",
                tags=["messages"], responses=answers(400, 404))  # fmt: skip
    def file(mailbox: str, sha256: Sha256, index: Annotated[int, Path(ge=0, le=10_000)]) -> FileDownload:
        person = caller(router.current_event, services)
        found = services.inbox.file(person, mailbox, sha256, index, source(router.current_event))
        return FileDownload(**found)

    @router.post("/<mailbox>/messages/<sha256>/handling",
                 summary="take in charge, release, assign, mark handled or reopen", tags=["presa in carico"],
                 responses=answers(400, 404, 409, 415))  # fmt: skip
    def act(mailbox: str, sha256: Sha256, body: HandlingAct) -> HandlingOut:
        person = caller(router.current_event, services)
        after = services.inbox.act(
            person,
            mailbox,
            sha256,
            Act(body.act),
            to=body.to,
            note=body.note,
            source=source(router.current_event),
        )
        return _handling(after)

    @router.post("/<mailbox>/messages/<sha256>/delete", summary="move to the bin (admins; the original is kept)",
                 tags=["bin"], responses=answers(400, 404, 415))  # fmt: skip
    def delete(mailbox: str, sha256: Sha256, body: Deletion) -> dict:
        person = caller(router.current_event, services)
        services.inbox.delete(person, mailbox, sha256, body.reason, source(router.current_event))
        return {"deleted": True}

    @router.post("/<mailbox>/messages/<sha256>/restore", summary="bring back from the bin (admins)", tags=["bin"],
                 responses=answers(400, 404, 415))  # fmt: skip
    def restore(mailbox: str, sha256: Sha256) -> dict:
        person = caller(router.current_event, services)
        services.inbox.restore(person, mailbox, sha256, source(router.current_event))
        return {"restored": True}

    @router.get("/<mailbox>/messages/<sha256>/audit", summary="who did what with this message, and when",
                tags=["audit"], responses=answers(404))  # fmt: skip
    def trail(mailbox: str, sha256: Sha256) -> list[AuditEventOut]:
        person = caller(router.current_event, services)
        person.require(mailbox, Action.READ)
        return [
            AuditEventOut(
                seq=e.seq,
                at=e.at,
                actor=e.actor,
                action=e.action,
                message=e.message,
                source_ip=e.source_ip,
                client=e.client,
                details=dict(e.details),
            )  # fmt: skip
            for e in services.audit.trail(mailbox, sha256)
        ]

    @router.get("/<mailbox>/audit/verify", summary="check the mailbox's audit chain (admins)", tags=["audit"],
                responses=answers(404))  # fmt: skip
    def verify(mailbox: str) -> AuditCheck:
        person = caller(router.current_event, services)
        person.require(mailbox, Action.MANAGE_PEOPLE)
        verdict = services.audit.verify(mailbox)
        return AuditCheck(
            mailbox=mailbox.lower(), whole=verdict.ok, checked=verdict.checked,
            broken_at=verdict.broken_at, reason=verdict.reason,
        )  # fmt: skip

    return router

"""/mailboxes (administration): the mailboxes I administer, adding one (its IMAP and SMTP logins
tried first: nothing is saved when either fails), and a mailbox's health."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import Router
from pydantic import BaseModel, ConfigDict, Field

from pecflow.api.context import Services, caller
from pecflow.api.models import answers
from pecflow.domain.mailbox import MailboxConfig, Saturation, SaturationPolicy
from pecflow.services.mailbox_desk import (
    MailboxDesk,
    MailboxExists,
    MailboxForbidden,
    MailboxLoginFailed,
    MailboxRefused,
)


class SaturationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["never", "after-days", "above-quota"] = "never"
    days: int = Field(90, ge=1, le=36500, description="after-days: archived messages older than this")
    percent: float = Field(80.0, gt=0, le=100, description="above-quota: usage to bring it under")
    archive_folder: str | None = Field("Archivio-pecflow", max_length=200)
    expunge: bool = Field(False, description="removed from the provider instead of moved")


class NewMailbox(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: str = Field(..., min_length=6, max_length=254)
    password: str = Field(..., min_length=1, max_length=500, description="kept in Secrets Manager only")
    username: str | None = Field(None, max_length=254, description="the login when it is not the address")
    imap_host: str = Field(..., min_length=1, max_length=253)
    imap_port: int = Field(993, ge=1, le=65535)
    smtp_host: str | None = Field(None, max_length=253, description="default: the IMAP host, imap→smtp")
    smtp_port: int = Field(465, ge=1, le=65535)
    folders: list[str] = Field(["INBOX"], min_length=1, max_length=20)
    quota_preset: str = Field("aruba", max_length=100, description="aruba, legalmail, gmail or N/window")
    saturation: SaturationIn = Field(default_factory=lambda: SaturationIn.model_validate({}))

    def config(self) -> MailboxConfig:
        sat = self.saturation
        return MailboxConfig(
            address=self.address.strip().lower(),
            imap_host=self.imap_host.strip(),
            imap_port=self.imap_port,
            smtp_host=(self.smtp_host or "").strip() or self.imap_host.strip().replace("imap", "smtp", 1),
            smtp_port=self.smtp_port,
            folders=tuple(self.folders),
            quota_preset=self.quota_preset.strip().lower(),
            saturation=SaturationPolicy(
                Saturation(sat.mode), days=sat.days, percent=sat.percent,
                archive_folder=sat.archive_folder or None, expunge=sat.expunge,
            ),
            username=(self.username or "").strip() or None,
        )  # fmt: skip


class MailboxOut(BaseModel):
    address: str
    enabled: bool
    imap: str = Field(..., description="host:port")
    smtp: str = Field(..., description="host:port")
    login: str
    quota_preset: str
    saturation: str
    last_poll_at: str | None = None
    last_error: str | None = None


class MailboxAdded(BaseModel):
    mailbox: MailboxOut
    messages: int = Field(..., description="in the first folder, seen by the login check")
    usage_percent: float | None = Field(None, description="of the provider's space, when it says")


class QuotaNow(BaseModel):
    used: int = Field(..., description="sends counted in the current window")
    limit: int
    window: str = Field(..., description="e.g. '250 per 20 minutes rolling'")
    window_seconds: float
    rolling: bool = Field(..., description="any interval of the window's length; else aligned windows")
    timezone: str | None = Field(None, description="aligned windows: calendar days in this zone")


class MailboxHealth(BaseModel):
    mailbox: MailboxOut
    last_success_at: str | None = None
    last_error_at: str | None = None
    error_kind: str | None = Field(None, description="auth | unreachable | tls | protocol")
    consecutive_failures: int = 0
    last_fetched: int | None = None
    space_used_percent: float | None = Field(None, description="of the provider's space, at the last poll")
    quarantined: int = 0
    quota: QuotaNow
    to_handle: int = Field(..., description="messages da gestire")


class QuarantinedOut(BaseModel):
    """A message held in quarantine: archived and recorded, waiting for an admin to look."""

    sha256: str
    received_at: str | None = None
    kind: str | None = None
    sender: str | None = None
    subject: str | None = None
    stage: str | None = Field(None, description="fetch | classify | record | reconcile | rules | fatture")
    reason: str = Field(..., description="why it is held, in words")
    at: str | None = None
    uid: int | None = None


def _out(config: MailboxConfig, status: dict[str, Any]) -> MailboxOut:
    return MailboxOut(
        address=config.address,
        enabled=config.enabled,
        imap=f"{config.imap_host}:{config.imap_port}",
        smtp=f"{config.smtp_host or config.imap_host}:{config.smtp_port}",
        login=config.login,
        quota_preset=config.quota_preset,
        saturation=str(config.saturation.mode),
        last_poll_at=status.get("last_poll_at"),
        last_error=status.get("last_error"),
    )


def _problem(status: int, message: str, code: str, **extra: Any) -> Response:
    body = {"message": message, "code": code, **extra}
    return Response(status, content_types.APPLICATION_JSON, json.dumps(body, ensure_ascii=False))


Mailbox = Annotated[str, Path(min_length=3, max_length=254, description="the mailbox's address")]


def routes(services: Services) -> Router:
    router = Router()

    def desk() -> MailboxDesk:
        if services.mailboxes is None:
            raise MailboxRefused("this installation cannot administer mailboxes from the API")
        return services.mailboxes

    @router.get("/", summary="the mailboxes I administer", tags=["mailboxes"], responses=answers())
    def administered() -> list[MailboxOut]:
        person = caller(router.current_event, services)
        return [_out(config, status) for config, status in desk().administered(person)]

    @router.post("/", summary="add a mailbox: its IMAP and SMTP logins are tried first, nothing saved if "
                 "either fails; I become its admin", tags=["mailboxes"],
                 responses=answers(400, 409, 415))  # fmt: skip
    def add(body: NewMailbox) -> MailboxAdded:
        person = caller(router.current_event, services)
        try:
            config = body.config()
        except ValueError as exc:
            raise MailboxRefused(f"Casella non aggiunta: {exc}") from None
        checked = desk().add(person, config, body.password)
        added, status = desk().mailboxes.get_with_status(config.address)
        assert added is not None
        return MailboxAdded(
            mailbox=_out(added, status), messages=checked["messages"], usage_percent=checked["usage_percent"]
        )

    @router.get("/<mailbox>/health", summary="last poll, last error, sending quota used now, messages "
                "da gestire", tags=["mailboxes"], responses=answers(400, 404))  # fmt: skip
    def health(mailbox: Mailbox) -> MailboxHealth:
        person = caller(router.current_event, services)
        config, status = desk().health(person, mailbox)
        usage = status.get("usage") or {}
        return MailboxHealth(
            mailbox=_out(config, status),
            last_success_at=status.get("last_success_at"),
            last_error_at=status.get("last_error_at"),
            error_kind=status.get("error_kind"),
            consecutive_failures=int(status.get("consecutive_failures") or 0),
            last_fetched=status.get("last_fetched"),
            space_used_percent=usage.get("percent"),
            quarantined=int(status.get("quarantined") or 0),
            quota=QuotaNow(**status["quota"]),
            to_handle=status["to_handle"],
        )

    @router.get("/<mailbox>/quarantine", summary="the messages held in quarantine, newest first, each "
                "with why (admins)", tags=["mailboxes"], responses=answers(400, 404))  # fmt: skip
    def quarantine(mailbox: Mailbox) -> list[QuarantinedOut]:
        person = caller(router.current_event, services)
        return [QuarantinedOut(**held) for held in desk().quarantine(person, mailbox)]

    @router.exception_handler(MailboxLoginFailed)
    def login_failed(exc: MailboxLoginFailed) -> Response:
        return _problem(400, f"{exc} (dettaglio tecnico: {exc.detail})", "login-failed", step=exc.step,
                        kind=exc.kind)  # fmt: skip

    @router.exception_handler(MailboxForbidden)
    def forbidden(exc: MailboxForbidden) -> Response:
        return _problem(403, str(exc), "forbidden")

    @router.exception_handler(MailboxExists)
    def exists(exc: MailboxExists) -> Response:
        return _problem(409, str(exc), "conflict")

    @router.exception_handler(MailboxRefused)
    def refused(exc: MailboxRefused) -> Response:
        return _problem(400, str(exc), "bad-request")

    return router

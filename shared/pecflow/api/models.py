"""The bodies the API accepts and returns (validated by Powertools with pydantic; they make the
OpenAPI document's schemas)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

RoleName = Literal["viewer", "operator", "manager", "admin"]
# pecflow.services.people.USERNAME, in either case (the services lower it)
USERNAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,62}$"


class Problem(BaseModel):
    """Every error: a sentence for the person, and a code for the console."""

    message: str
    code: str
    holder: str | None = None  # 409 on a message someone else holds: who
    since: str | None = None  # and since when (ISO 8601)


class Unauthorized(BaseModel):
    """401: no valid token. API Gateway's authorizer answers it with a message alone; the API, for
    a token naming nobody it knows, with a code too."""

    message: str
    code: str | None = None


ERRORS = {
    400: "the request cannot be done as asked (the message says why)",
    401: "no valid token: sign in again",
    403: "your role on the mailbox does not allow it, or your account is disabled",
    404: "no such mailbox, message or person that you may see (or no such address in this API)",
    409: "someone else holds the message: who, and since when",
    415: "the body is not JSON",
    422: "the request is not as this document describes it (the message says where)",
}


def answers(*errors: int) -> dict[int, OpenAPIResponse]:
    """A route's responses in the OpenAPI document: its return model on 200, and a Problem (the
    JSON body every error has) on each error status the route can answer."""
    declared: dict[int, OpenAPIResponse] = {200: {"description": "done"}}
    # every route: who calls and whether enabled (401, 403), and Powertools' validation (422)
    for status in sorted({401, 403, 422, *errors}):
        model = Unauthorized if status == 401 else Problem
        declared[status] = {"description": ERRORS[status], "content": {"application/json": {"model": model}}}
    return declared


class MailboxAccess(BaseModel):
    mailbox: str
    role: RoleName


class Me(BaseModel):
    username: str
    email: str
    name: str
    mailboxes: list[MailboxAccess]


class MessagePage(BaseModel):
    messages: list[dict[str, Any]]
    cursor: str | None = Field(None, description="pass it back for the next page; null on the last")


class SentView(BaseModel):
    """A message we sent, reconciled: its recipient, state and receipts in order."""

    message_id: str
    subject: str | None = None
    to: str | None = None
    state: str
    error: str | None = None
    receipts: list[dict[str, Any]] = []


class HeaderOut(BaseModel):
    name: str
    value: str


class FileOut(BaseModel):
    index: int = Field(..., description="its number in GET .../files/{index}")
    filename: str | None
    content_type: str
    size: int = Field(..., description="bytes, as it sits in the message (encoded)")


class ContentView(BaseModel):
    headers: list[HeaderOut] = Field(
        ..., description="of the message itself (of an envelope: the one inside)"
    )
    text: str | None = Field(None, description="the body as plain text (an HTML body's words, no markup)")
    from_html: bool = False
    text_cut: bool = Field(False, description="the text goes on in the original")
    envelope: bool = Field(False, description="a PEC or REM envelope: headers and text of the message inside")
    files: list[FileOut]
    too_large: bool = Field(False, description="too large to open here: download the original")
    note: str | None = None


class MessageView(BaseModel):
    message: dict[str, Any] | None
    row: dict[str, Any]
    about: SentView | None = Field(None, description="a receipt's (or a reply's) message of ours")
    sent_from_here: list[SentView] = Field([], description="our reply and forward of this message")
    content: ContentView | None = Field(None, description="what it says, from the archived original")
    thread: list[dict[str, Any]] = Field(
        [], description="the received messages of its conversation, oldest first"
    )


class Download(BaseModel):
    url: str
    expires_in: int = 300


class FileDownload(Download):
    filename: str
    content_type: str = Field(..., description="as the message declares it (served as a download)")
    size: int = Field(..., description="bytes, decoded")


class HandlingAct(BaseModel):
    model_config = ConfigDict(extra="forbid")
    act: Literal["take-in-charge", "release", "assign", "mark-handled", "reopen"]
    to: str | None = Field(None, max_length=63, description="assign: the person's username")
    note: str | None = Field(None, max_length=2000, description="mark-handled: what was done")


class HandlingOut(BaseModel):
    handling: Literal["da-gestire", "in-carico", "gestito"]
    holder: str | None = None
    since: str | None = None
    by: str | None = None
    note: str | None = None


class Deletion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=1, max_length=500, description="kept in the audit log")


class AuditEventOut(BaseModel):
    seq: int
    at: str
    actor: str
    action: str
    message: str | None = None
    source_ip: str | None = None
    client: str | None = None
    details: dict[str, str] = {}


class AuditCheck(BaseModel):
    mailbox: str
    whole: bool
    checked: int
    broken_at: int | None = None
    reason: str | None = None


class NewPerson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(
        ..., pattern=USERNAME, description="2 to 63 letters, digits, '.', '_' or '-'; kept lower-case"
    )
    email: str = Field(..., min_length=3, max_length=254)
    name: str = Field("", max_length=200)


class PersonOut(BaseModel):
    username: str
    email: str
    name: str
    enabled: bool
    roles: dict[str, RoleName]


class RoleGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: RoleName | None = Field(..., description="null takes the role away")

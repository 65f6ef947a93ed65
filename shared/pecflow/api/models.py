"""The bodies the API accepts and returns (validated by Powertools with pydantic; they make the
OpenAPI document's schemas)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RoleName = Literal["viewer", "operator", "manager", "admin"]


class Problem(BaseModel):
    """Every error: a sentence for the person, and a code for the console."""

    message: str
    code: str
    holder: str | None = None  # 409 on a message someone else holds: who
    since: str | None = None  # and since when (ISO 8601)


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
    to: str
    state: str
    error: str | None = None
    receipts: list[dict[str, Any]] = []


class MessageView(BaseModel):
    message: dict[str, Any] | None
    row: dict[str, Any]
    about: SentView | None = Field(None, description="a receipt's (or a reply's) message of ours")
    sent_from_here: list[SentView] = Field([], description="our reply and forward of this message")


class Download(BaseModel):
    url: str
    expires_in: int = 300


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
    username: str = Field(..., min_length=2, max_length=63)
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

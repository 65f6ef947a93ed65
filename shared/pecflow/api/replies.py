"""/mailboxes/{mailbox}/messages/{sha256}/reply and /forward: a person answers or passes on a
message in their own charge; it goes out through the sender (quota, exactly once)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import Router
from pydantic import BaseModel, ConfigDict, Field

from pecflow.api.context import Services, caller, source
from pecflow.api.messages import Sha256
from pecflow.api.models import answers


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(..., min_length=1, max_length=100_000, description="the answer, plain text")


class ForwardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(..., min_length=3, max_length=254, description="the PEC address to pass it on to")
    text: str = Field(..., min_length=1, max_length=100_000, description="a note above the original")


class Sent(BaseModel):
    message_id: str = Field(
        ..., description="the new message's Message-ID: its receipts are reconciled to it"
    )


def routes(services: Services) -> Router:
    router = Router()

    @router.post("/<mailbox>/messages/<sha256>/reply", summary="answer the sender (the message in your charge)",
                 tags=["reply"], responses=answers(400, 404, 409, 415))  # fmt: skip
    def reply(mailbox: str, sha256: Sha256, body: ReplyIn) -> Sent:
        person = caller(router.current_event, services)
        message_id = services.inbox.reply(person, mailbox, sha256, body.text, source(router.current_event))
        return Sent(message_id=message_id)

    @router.post("/<mailbox>/messages/<sha256>/forward", summary="pass the message on, whole, with a note",
                 tags=["reply"], responses=answers(400, 404, 409, 415))  # fmt: skip
    def forward(mailbox: str, sha256: Sha256, body: ForwardIn) -> Sent:
        person = caller(router.current_event, services)
        message_id = services.inbox.forward(
            person, mailbox, sha256, body.to, body.text, source(router.current_event)
        )
        return Sent(message_id=message_id)

    return router

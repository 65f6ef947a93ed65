"""/mailboxes/{mailbox}/campaigns/{campaign_id}/test-send: one row (or group) of a campaign sent to
an address of the user's choice before the real run, for the mailbox's managers and admins
(pecflow.services.campaign_tests)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import Router
from pydantic import BaseModel, ConfigDict, Field

from pecflow.api.context import caller
from pecflow.api.models import answers
from pecflow.services.campaign_tests import TestSendError

CampaignId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="the campaign's id")
]


class TestSendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    row: int = Field(..., ge=2, description="the CSV row, as the spreadsheet numbers it (the header is row 1); "
                     "with group_by, the message of the group holding that row")  # fmt: skip
    to: str = Field(..., min_length=3, max_length=254, description="the PEC address the test goes to, alone")
    manifest: dict[str, Any] | None = Field(
        None,
        description="the manifest not yet submitted (its submission starts the campaign); "
        "default: the campaign's manifest.json",
    )


class TestSendAnswer(BaseModel):
    message_id: str = Field(..., description="follow its receipts like any message sent")
    to: str
    mailbox: str = Field(..., description="the campaign's sending mailbox")
    subject: str = Field(..., description="as the campaign renders it (the test's is marked [PROVA])")
    rows: list[int] = Field(..., description="the CSV rows its message covers")


def routes(services: Any) -> Router:
    router = Router()

    @router.post("/<mailbox>/campaigns/<campaign_id>/test-send",
                 summary="send one row (or group) of a campaign, as the campaign would, to an address of yours",
                 description="Rendered from the uploaded files exactly as the campaign would render that row, "
                             "sent from the campaign's mailbox within its quota, to the address given alone (never "
                             "to the row's recipient, without the campaign's cc), its subject marked [PROVA]; never "
                             "counted in the campaign's statistics.",
                 tags=["campaigns"], responses=answers(400, 404, 415))  # fmt: skip
    def test_send(mailbox: str, campaign_id: CampaignId, body: TestSendRequest) -> TestSendAnswer:
        tests = services.campaign_tests
        person = caller(router.current_event, services)
        if tests is None:
            raise TestSendError("test sends are not set up in this installation")
        sent = tests.send_uploaded(
            person, mailbox, campaign_id, row=body.row, to=body.to, manifest=body.manifest
        )
        return TestSendAnswer(**sent.as_dict())

    return router

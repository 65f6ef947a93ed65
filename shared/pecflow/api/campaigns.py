"""/mailboxes/{mailbox}/campaigns: campaigns from a mailbox, for its managers and admins
(pecflow.services.campaign_desk)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import Router
from pydantic import BaseModel, ConfigDict, Field

from pecflow.api.context import caller
from pecflow.api.models import answers

CampaignId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="the campaign's id")
]


class CampaignPage(BaseModel):
    campaigns: list[dict[str, Any]]
    cursor: str | None = None


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[str] = Field(..., min_length=1, max_length=1000,
                             description="recipients.csv and attachments/<name>, uploaded before the manifest")  # fmt: skip


class UploadLinks(BaseModel):
    links: dict[str, str] = Field(..., description="PUT each file to its link within 15 minutes")


class Submission(BaseModel):
    model_config = ConfigDict(extra="forbid")
    manifest: dict[str, Any] = Field(
        ..., description="as manifest.json (schemas/campaign-manifest.schema.json)"
    )


class CampaignAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["pause", "resume", "cancel", "resend", "redrive"]


class Receipt(BaseModel):
    sha256: str = Field(..., description="open it as /mailboxes/{mailbox}/messages/{sha256}")
    kind: str | None = Field(None, description="accettazione, avvenuta-consegna, errore-consegna, ...")
    at: str | None = Field(None, description="when the provider issued it (ISO 8601)")
    error: str | None = Field(None, description="what a failure receipt says")


class Attempt(BaseModel):
    attempt: int | None = Field(None, description="1, then one more per resend")
    state: str = Field(
        ..., description="the job's state, as in the CSV export (delivered, delivery-failed, ...)"
    )
    shown: str = Field(..., description="the state in words, as the statistics say it")
    message_id: str = Field(..., description="the Message-ID of what was sent for this attempt")
    sent_at: str | None = None
    error: str | None = Field(None, description="why it failed, in words")
    receipts: list[Receipt] = Field(default_factory=list, description="in the order they were issued")


class Recipient(Attempt):
    row: int | None = Field(None, description="the recipient's row in recipients.csv")
    address: str
    earlier: list[Attempt] = Field(default_factory=list, description="the attempts before the latest one")


class RecipientPage(BaseModel):
    recipients: list[Recipient] = Field(
        ..., description="up to 50, in CSV row order (each with its latest attempt)"
    )
    cursor: str | None = Field(None, description="the next page; none at the end")
    read: int = Field(
        ...,
        description="jobs read for this page: a filter few match may give a short page, go on with the cursor",
    )


Outcome = Literal[
    "failed", "to_send", "waiting", "sent", "only_sent", "accepted", "delivered", "delivery_failures",
    "warnings", "errors", "cancelled",
]  # fmt: skip


class Link(BaseModel):
    url: str
    expires_in: int = 900


def routes(services: Any) -> Router:
    router = Router()
    desk = services.campaigns

    @router.get("/<mailbox>/campaigns", summary="the campaigns sent from a mailbox, newest first",
                tags=["campaigns"], responses=answers(400, 404))  # fmt: skip
    def list_campaigns(
        mailbox: str, cursor: Annotated[str | None, Query(max_length=2000)] = None
    ) -> CampaignPage:
        rows, following = desk.campaigns(caller(router.current_event, services), mailbox, cursor)
        return CampaignPage(campaigns=rows, cursor=following)

    @router.get("/<mailbox>/campaigns/<campaign_id>", summary="statistics and validation report",
                tags=["campaigns"], responses=answers(404))  # fmt: skip
    def show(mailbox: str, campaign_id: CampaignId) -> dict:
        return desk.show(caller(router.current_event, services), mailbox, campaign_id)

    @router.get("/<mailbox>/campaigns/<campaign_id>/recipients",
                summary="the recipients' outcomes, 50 a page in CSV row order; state= keeps one outcome",
                tags=["campaigns"], responses=answers(400, 404))  # fmt: skip
    def recipients(
        mailbox: str,
        campaign_id: CampaignId,
        cursor: Annotated[str | None, Query(max_length=2000)] = None,
        state: Annotated[
            Outcome | None,
            Query(
                description="only the rows whose latest attempt is counted in this statistic; "
                "failed: what resend would send again"
            ),
        ] = None,  # fmt: skip
    ) -> RecipientPage:
        person = caller(router.current_event, services)
        return RecipientPage(**desk.recipients(person, mailbox, campaign_id, cursor, state))

    @router.post("/<mailbox>/campaigns/<campaign_id>/upload-links", summary="links to upload the CSV and attachments",
                 tags=["campaigns"], responses=answers(400, 404, 409, 415))  # fmt: skip
    def upload_links(mailbox: str, campaign_id: CampaignId, body: UploadRequest) -> UploadLinks:
        person = caller(router.current_event, services)
        return UploadLinks(links=desk.upload_links(person, mailbox, campaign_id, body.files))

    @router.post("/<mailbox>/campaigns/<campaign_id>/manifest",
                 summary="submit the manifest, last: the campaign is validated, then sent",
                 tags=["campaigns"], responses=answers(400, 404, 409, 415))  # fmt: skip
    def submit(mailbox: str, campaign_id: CampaignId, body: Submission) -> dict:
        desk.submit(caller(router.current_event, services), mailbox, campaign_id, body.manifest)
        return {"submitted": True}

    @router.post("/<mailbox>/campaigns/<campaign_id>/actions", summary="pause, resume, cancel, resend, redrive",
                 tags=["campaigns"], responses=answers(400, 404, 409, 415))  # fmt: skip
    def act(mailbox: str, campaign_id: CampaignId, body: CampaignAction) -> dict:
        return desk.act(caller(router.current_event, services), mailbox, campaign_id, body.action)

    @router.get("/<mailbox>/campaigns/<campaign_id>/export", summary="a 15-minute link to the per-recipient outcome (CSV)",
                tags=["campaigns"], responses=answers(404))  # fmt: skip
    def export(mailbox: str, campaign_id: CampaignId) -> Link:
        return Link(url=desk.export(caller(router.current_event, services), mailbox, campaign_id))

    return router

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
    action: Literal["pause", "resume", "cancel", "resend", "redrive", "confirm"] = Field(
        ..., description="confirm: send a campaign submitted as a dry run, once its report was read"
    )


class Quota(BaseModel):
    preset: str = Field(..., description="aruba, legalmail, gmail or custom:N/WINDOW")
    limit: int = Field(..., description="messages per window")
    window_seconds: float
    rolling: bool


class ProviderTerms(BaseModel):
    mailbox: str
    preset: str | None = Field(None, description="the mailbox's quota preset (or the one its domain tells)")
    provider: str | None = None
    terms: list[str] = Field(..., description="what the provider publishes about automated and mass sending")
    source: str | None = None
    needs_agreement: bool = Field(
        ..., description="the contract forbids automated sending without an agreement"
    )
    quota: Quota | None = None
    first_campaign: bool = Field(..., description="no campaign was ever sent from this mailbox")


class BadRow(BaseModel):
    row: int | None = Field(None, description="the CSV row as the spreadsheet numbers it (header: 1)")
    column: str | None = None
    field: str | None = Field(None, description="the manifest's field, for a manifest problem")
    code: str
    reason: str


class ValidationReport(BaseModel):
    campaign_id: str
    status: str
    invalid_reason: str | None = None
    summary: dict[str, Any] = Field(..., description="as the statistics' validation")
    header: list[str] = Field(..., description="the CSV's columns as written")
    merge_fields: list[str] = Field(..., description="the template variables")
    errors: list[BadRow] = Field(..., description="the first bad rows (validation-errors.csv has them all)")
    error_count: int
    errors_truncated: bool


class Preview(BaseModel):
    rows: list[int] = Field(..., description="the CSV rows this message covers")
    to: str
    cc: str | None = None
    attachments: list[str]
    subject: str | None = None
    text: str | None = None
    pdf: str | None = Field(None, description="the generated PDF's file name")
    error: str | None = Field(None, description="why this message cannot be rendered")


class PreviewPage(BaseModel):
    messages: list[Preview]


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

    @router.get("/<mailbox>/campaign-terms", summary="the sending provider's terms and quota, before a campaign",
                tags=["campaigns"], responses=answers(404))  # fmt: skip
    def terms(mailbox: str) -> ProviderTerms:
        return ProviderTerms(**desk.terms(caller(router.current_event, services), mailbox))

    @router.get("/<mailbox>/campaigns/<campaign_id>/report",
                summary="the validation report: its summary and the first bad rows (row, column, reason)",
                tags=["campaigns"], responses=answers(404))  # fmt: skip
    def report(
        mailbox: str, campaign_id: CampaignId, limit: Annotated[int, Query(ge=1, le=200)] = 200
    ) -> ValidationReport:
        return ValidationReport(
            **desk.report(caller(router.current_event, services), mailbox, campaign_id, limit)
        )

    @router.get("/<mailbox>/campaigns/<campaign_id>/preview",
                summary="the first messages as the campaign renders them (one per group with group_by)",
                tags=["campaigns"], responses=answers(404, 409))  # fmt: skip
    def preview(
        mailbox: str, campaign_id: CampaignId, count: Annotated[int, Query(ge=1, le=10)] = 3
    ) -> PreviewPage:
        shown = desk.preview(caller(router.current_event, services), mailbox, campaign_id, count)
        return PreviewPage(messages=[Preview(**m) for m in shown])

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

    @router.post("/<mailbox>/campaigns/<campaign_id>/actions", summary="pause, resume, cancel, resend, redrive, confirm",
                 tags=["campaigns"], responses=answers(400, 404, 409, 415))  # fmt: skip
    def act(mailbox: str, campaign_id: CampaignId, body: CampaignAction) -> dict:
        return desk.act(caller(router.current_event, services), mailbox, campaign_id, body.action)

    @router.get("/<mailbox>/campaigns/<campaign_id>/export", summary="a 15-minute link to the per-recipient outcome (CSV)",
                tags=["campaigns"], responses=answers(404))  # fmt: skip
    def export(mailbox: str, campaign_id: CampaignId) -> Link:
        return Link(url=desk.export(caller(router.current_event, services), mailbox, campaign_id))

    return router

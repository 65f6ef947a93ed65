"""/mailboxes/{mailbox}/messages/{sha256}/evidence: a message's evidence pack (pecflow.domain.evidence),
built into the downloads bucket and linked for five minutes (a Lambda answers 6 MB at most)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import Router
from pydantic import BaseModel

from pecflow.api.context import Services, caller, source
from pecflow.api.messages import Sha256
from pecflow.api.models import answers
from pecflow.services.evidence import EvidenceError


class EvidenceDownload(BaseModel):
    url: str
    filename: str
    files: int  # in the pack, the manifest and its time-stamp excepted
    timestamped: bool  # False: this installation has no time-stamping authority (TsaUrl)
    expires_in: int = 300


def routes(services: Services) -> Router:
    router = Router()

    @router.get("/<mailbox>/messages/<sha256>/evidence",
                summary="a 5-minute link to the message's evidence pack (zip: the .eml with its receipts, "
                "daticert, timeline, audit trail, summary, manifest time-stamped)",
                tags=["messages"], responses=answers(400, 404))  # fmt: skip
    def evidence(mailbox: str, sha256: Sha256) -> EvidenceDownload:
        person = caller(router.current_event, services)
        if services.evidence is None:
            raise EvidenceError("this installation builds no evidence packs")
        return EvidenceDownload(
            **services.evidence.link(person, mailbox, sha256, source(router.current_event))
        )

    return router

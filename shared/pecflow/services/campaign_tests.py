"""A test send: one row (or group) of a campaign, rendered exactly as the campaign would send it,
to an address of the user's choice, before the real run (`pecflow campaign test-send`, and
POST /mailboxes/{mailbox}/campaigns/{id}/test-send).

The message is rendered here, from the campaign's files (a local folder or the uploaded
package), and archived; then it becomes an outgoing job like any other, with no campaign, queued
on the send queue: the sender sends it from the campaign's mailbox within the same quota,
archives it and reconciles its receipts by Message-ID (`pecflow sent show MESSAGE-ID`). Having no
campaign, it is never counted in the campaign's statistics; it goes to the chosen address alone
(never to the row's recipient, never to the campaign's cc), its subject marked [PROVA], its
head item marked `test_send`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

from pecflow.domain import campaign, clock
from pecflow.domain.access import Action, NotVisible, Person
from pecflow.domain.audit import AuditAction
from pecflow.domain.mailbox import MailboxConfig
from pecflow.domain.ports import Archive, Outbox, Queue
from pecflow.domain.reconcile import State
from pecflow.services.audit import AuditLog
from pecflow.services.sending import own_attachments, queue_entry

MANIFEST, RECIPIENTS = "manifest.json", "recipients.csv"


class CampaignSource(Protocol):
    """A campaign's files: the package uploaded to S3 (CampaignPackage) or a local folder."""

    def read(self, name: str) -> bytes: ...
    def open_with_size(self, name: str) -> tuple[IO[bytes], int | None]: ...
    def exists(self, name: str) -> bool: ...


class TestSendError(ValueError):
    """Why a test send cannot be made, for the person who asked."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True, slots=True)
class TestSend:
    __test__ = False  # not a pytest test class

    message_id: str
    to: str
    mailbox: str
    subject: str
    rows: tuple[int, ...]  # the CSV rows its message covers (more than one with group_by)
    archive_key: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "to": self.to,
            "mailbox": self.mailbox,
            "subject": self.subject,
            "rows": list(self.rows),
        }


@dataclass(slots=True)
class CampaignTests:
    outgoing: Outbox
    archive: Archive
    send_queue: Queue
    mailbox_of: Callable[[str], MailboxConfig | None]
    files_of: Callable[[str], CampaignSource] | None = None  # an uploaded campaign's package (the API)
    audit: AuditLog | None = None
    # the mailbox a recorded campaign sends from (the campaign store); None before its submission
    campaign_mailbox: Callable[[str], str | None] | None = None

    def send(
        self,
        files: CampaignSource,
        *,
        campaign_id: str,
        row: int,
        to: str,
        by: str,
        manifest: campaign.Manifest | None = None,
    ) -> TestSend:
        """Render row `row` of the campaign in `files` (with `manifest`, or its manifest.json)
        and queue it to `to` alone. TestSendError says what is wrong, in words for the user."""
        to = to.strip()
        problem = campaign.address_problem(to)
        if problem:
            raise TestSendError(f"{to!r} is not a valid address: {problem}")
        if manifest is None:
            _present(files, MANIFEST)
            try:
                manifest = campaign.Manifest.parse(files.read(MANIFEST))
            except campaign.ManifestError as exc:
                raise TestSendError(f"manifest.json: {exc}") from None
        if self.mailbox_of(manifest.mailbox.lower()) is None:
            raise TestSendError(
                f"the sending mailbox {manifest.mailbox} is not configured in pecflow (pecflow mailbox add)"
            )

        _present(files, RECIPIENTS)

        def rows() -> Iterator[campaign.Row]:
            body, size = files.open_with_size(RECIPIENTS)
            try:
                yield from campaign.read_rows(body, size=size)
            finally:
                body.close()

        try:
            values, numbers = campaign.message_of_row(manifest, rows, row)
        except (campaign.NoSuchRow, campaign.CsvError) as exc:
            raise TestSendError(str(exc)) from None
        recipient = manifest.address_of(values)
        if to.casefold() == recipient.casefold():
            raise TestSendError(
                f"{to} is the recipient of row {row}: a test goes to an address of yours, never to the recipient"
            )
        attachments = []
        for name in [*manifest.attachments, *own_attachments(manifest, values)]:
            problem = campaign.attachment_name_problem(name)
            if problem:
                raise TestSendError(f"{name!r}: {problem}")
            _present(files, f"attachments/{name}")
            attachments.append((name, files.read(f"attachments/{name}")))
        now = clock.now()
        stamp = hashlib.sha256(f"{campaign_id}|{row}|{to}|{now.isoformat()}".encode()).hexdigest()[:12]
        domain = manifest.mailbox.rpartition("@")[2].lower()
        message_id = f"<pecflow.prova.{campaign_id}.{row}.{stamp}@{domain}>"
        try:
            raw = campaign.render_message(
                manifest,
                values,
                mailbox=manifest.mailbox,
                message_id=message_id,
                attachments=attachments,
                date=now,
                test_to=to,
            )
        except campaign.RenderError as exc:
            raise TestSendError(f"row {row} cannot be rendered: {exc}") from None
        subject = campaign.compile_templates(manifest).render(values).subject
        archived = self.archive.store(raw)
        mark = {
            "campaign_id": campaign_id,
            "row": row,
            "rows": list(numbers),
            "raw_key": archived.key,
            "by": by,
        }
        self.outgoing.register(
            message_id,
            mailbox=manifest.mailbox.lower(),
            recipients=[to],
            subject=f"{campaign.TEST_MARK} {subject}",
            state=State.PENDING,
            extra={"test_send": mark},
        )
        self.send_queue.send(queue_entry(message_id))
        if self.audit is not None:
            self.audit.record(
                manifest.mailbox.lower(), actor=by, action=AuditAction.CAMPAIGN, message=campaign_id,
                details={"change": "test send", "row": row, "rows": len(numbers), "to": to,
                         "message_id": message_id},
            )  # fmt: skip
        return TestSend(message_id, to, manifest.mailbox, subject, numbers, archived.key)

    def send_uploaded(
        self,
        person: Person,
        mailbox: str,
        campaign_id: str,
        *,
        row: int,
        to: str,
        manifest: dict[str, Any] | None = None,
    ) -> TestSend:
        """The API's test send: a campaign uploaded from `mailbox` (its manifest.json, or the
        `manifest` not yet submitted, whose submission would start it), for its managers."""
        person.require(mailbox, Action.CAMPAIGN)
        owner = self.campaign_mailbox(campaign_id) if self.campaign_mailbox is not None else None
        if owner is not None and owner.lower() != mailbox.lower():  # another mailbox's files and rows
            raise NotVisible(f"campaign {campaign_id} not found in {mailbox}")
        if self.files_of is None:
            raise TestSendError("this installation has no campaign bucket")
        files = self.files_of(campaign_id)
        parsed = None
        if manifest is not None:
            try:
                parsed = campaign.Manifest.from_dict(manifest)
            except campaign.ManifestError as exc:
                raise TestSendError(f"manifest: {exc}") from None
        else:
            if not files.exists(MANIFEST):
                raise NotVisible(
                    f"campaign {campaign_id} has no manifest.json: send the manifest with the request"
                )
            try:
                parsed = campaign.Manifest.parse(files.read(MANIFEST))
            except campaign.ManifestError as exc:
                raise TestSendError(f"manifest.json: {exc}") from None
        if parsed.mailbox.lower() != mailbox.lower():
            raise TestSendError(f"the campaign sends from {parsed.mailbox}, not from {mailbox}")
        return self.send(files, campaign_id=campaign_id, row=row, to=to, by=person.username, manifest=parsed)


def _present(files: CampaignSource, name: str) -> None:
    """Nothing when `name` is among the campaign's files; TestSendError saying so otherwise."""
    if not files.exists(name):
        raise TestSendError(f"{name} is not in the campaign's files: upload it first")

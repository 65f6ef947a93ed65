"""Campaigns through the API, for the people allowed to send from a mailbox (its managers and
admins): the mailbox's campaigns, one campaign's statistics and validation report, upload links
for its files, the manifest submitted (which starts it: validation, then the jobs), pause,
resume, cancel, resend, redrive, the per-recipient outcome as a CSV to download. A campaign of
another mailbox is "not found". Every action is in the mailbox's audit log, with who did it.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from typing import Any, BinaryIO, Protocol, cast

from pecflow.domain import campaign as campaign_domain
from pecflow.domain import clock
from pecflow.domain.access import Action, NotVisible, Person
from pecflow.domain.audit import AuditAction
from pecflow.domain.campaign.manifest import CAMPAIGN_ID
from pecflow.domain.inbox import CursorError
from pecflow.services.admin import CampaignAdmin, shown_status
from pecflow.services.audit import AuditLog

ACTIONS = ("pause", "resume", "cancel", "resend", "redrive")
FILE_NAME = re.compile(r"^(recipients\.csv|attachments/[^/\\\x00-\x1f]{1,200})$")


class Uploads(Protocol):
    def upload_link(self, campaign_id: str, name: str, seconds: int = 900) -> str: ...
    def put_manifest(self, campaign_id: str, raw: bytes) -> None: ...
    def export_link(self, campaign_id: str, name: str, body: Any, seconds: int = 900) -> str: ...


class CampaignRefused(ValueError):
    """A request about a campaign that cannot be done as asked (400)."""


class CampaignConflict(ValueError):
    """The campaign is not in a state for this action (409)."""


class CampaignDesk:
    def __init__(self, admin: CampaignAdmin, uploads: Uploads, audit: AuditLog | None = None):
        self.admin, self.uploads, self.audit = admin, uploads, audit

    # --- reading -------------------------------------------------------------------------------------
    def campaigns(
        self, person: Person, mailbox: str, cursor: str | None = None
    ) -> tuple[list[dict], str | None]:
        person.require(mailbox, Action.CAMPAIGN)
        start = _decode(cursor) if cursor else None
        of_mailbox = getattr(self.admin.campaigns, "of_mailbox", None)
        if of_mailbox is None:
            raise RuntimeError("the campaign store cannot list a mailbox's campaigns")
        items, following = of_mailbox(mailbox.lower(), limit=50, start_key=start)
        rows = [
            {
                "campaign_id": c.campaign_id,
                "name": (c.manifest or {}).get("name"),
                "purpose": (c.manifest or {}).get("purpose"),
                "status": str(shown_status(c.status, c.counters or {})),  # the item read once
                "created_at": c.created_at,
                "counters": dict(c.counters or {}),
            }
            for c in items
        ]
        return rows, _encode(following) if following else None

    def show(self, person: Person, mailbox: str, campaign_id: str) -> dict:
        self._mine(person, mailbox, campaign_id)
        stats = self.admin.stats(campaign_id)
        return {**stats, "status": str(stats["status"])}

    # --- starting ------------------------------------------------------------------------------------
    def upload_links(
        self, person: Person, mailbox: str, campaign_id: str, names: list[str]
    ) -> dict[str, str]:
        """Links to PUT the CSV and the attachments with, before the manifest (15 minutes)."""
        self._new_or_mine(person, mailbox, campaign_id)
        bad = [n for n in names if not FILE_NAME.match(n) or ".." in n]
        if bad:
            raise CampaignRefused(
                f"not a campaign file: {', '.join(bad[:5])} (recipients.csv, or attachments/<name>)"
            )
        return {name: self.uploads.upload_link(campaign_id, name) for name in dict.fromkeys(names)}

    def submit(self, person: Person, mailbox: str, campaign_id: str, manifest: Mapping[str, Any]) -> None:
        """The manifest, checked, written last: the campaign starts (validation, then the jobs).
        It must send from this mailbox: a manager of one mailbox never sends from another."""
        self._new_or_mine(person, mailbox, campaign_id)
        try:
            parsed = campaign_domain.Manifest.from_dict(dict(manifest))
        except campaign_domain.ManifestError as exc:
            raise CampaignRefused(f"the manifest is not valid: {exc}") from None
        if parsed.mailbox.lower() != mailbox.lower():
            raise CampaignRefused(f"a campaign of {mailbox} sends from {mailbox}, not from {parsed.mailbox}")
        self.uploads.put_manifest(campaign_id, json.dumps(dict(manifest), ensure_ascii=False).encode())
        self._audit(person, mailbox, campaign_id, "submitted", purpose=parsed.purpose, dry_run=parsed.dry_run)

    # --- running -------------------------------------------------------------------------------------
    def act(self, person: Person, mailbox: str, campaign_id: str, action: str) -> dict:
        self._mine(person, mailbox, campaign_id)
        if action not in ACTIONS:
            raise CampaignRefused(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
        try:
            if action == "resend":
                done: dict = {"new_attempts": self.admin.resend_failed(campaign_id, by=person.username)}
            elif action == "redrive":
                done = self.admin.redrive(campaign_id, by=person.username)
            else:
                done = {"status": str(self.admin.set_status(campaign_id, action, by=person.username))}
        except ValueError as exc:
            raise CampaignConflict(str(exc)) from None
        return done

    def export(self, person: Person, mailbox: str, campaign_id: str) -> str:
        """The per-recipient outcome as a CSV (Excel-safe), and a 15-minute link to it."""
        self._mine(person, mailbox, campaign_id)
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as body:
            jobs = (j.as_dict() for j in self.admin.jobs(campaign_id))
            count = campaign_domain.write_export(cast(BinaryIO, body), jobs)
            body.seek(0)
            name = f"esito-{campaign_id}-{clock.now():%Y%m%d-%H%M%S}.csv"
            link = self.uploads.export_link(campaign_id, name, body)
        self._audit(person, mailbox, campaign_id, "exported", recipients=count)
        return link

    # --- who may -------------------------------------------------------------------------------------
    def _mine(self, person: Person, mailbox: str, campaign_id: str) -> None:
        person.require(mailbox, Action.CAMPAIGN)
        item = self.admin.campaigns.get(campaign_id) if CAMPAIGN_ID.match(campaign_id) else None
        if item is None or (item.mailbox or "").lower() != mailbox.lower():
            raise NotVisible(f"campaign {campaign_id} not found in {mailbox}")

    def _new_or_mine(self, person: Person, mailbox: str, campaign_id: str) -> None:
        person.require(mailbox, Action.CAMPAIGN)
        if not CAMPAIGN_ID.match(campaign_id):
            raise CampaignRefused(f"{campaign_id!r} cannot name a campaign (letters, digits, '-', '_')")
        item = self.admin.campaigns.get(campaign_id)
        if item is not None:
            if (item.mailbox or "").lower() != mailbox.lower():
                raise NotVisible(f"campaign {campaign_id} not found in {mailbox}")
            raise CampaignConflict(
                f"campaign {campaign_id} exists already ({item.status}): a campaign runs once"
            )

    def _audit(self, person: Person, mailbox: str, campaign_id: str, change: str, **details: object) -> None:
        if self.audit is not None:
            self.audit.record(
                mailbox, actor=person.username, action=AuditAction.CAMPAIGN, message=campaign_id,
                details={"change": change, **details},
            )  # fmt: skip


def _encode(key: Mapping[str, Any]) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(dict(key), sort_keys=True).encode()).decode().rstrip("=")


def _decode(cursor: str) -> dict:
    import base64

    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise CursorError("this page link is damaged: start the list again") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise CursorError("this page link is damaged: start the list again")
    return data

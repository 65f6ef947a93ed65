"""What every route needs: the services, who calls, from where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pecflow.domain.access import DisabledPerson, Person
from pecflow.services.audit import AuditLog
from pecflow.services.campaign_desk import CampaignDesk
from pecflow.services.campaign_tests import CampaignTests
from pecflow.services.conservation import ConservationExports
from pecflow.services.evidence import EvidencePacks
from pecflow.services.inbox import Inbox, Source
from pecflow.services.invoices import InvoiceDesk
from pecflow.services.mailbox_desk import MailboxDesk
from pecflow.services.people import PeopleAdmin
from pecflow.services.rules import RulesDesk


@dataclass(frozen=True, slots=True)
class Services:
    inbox: Inbox
    people: PeopleAdmin
    audit: AuditLog
    campaigns: CampaignDesk | None = None
    campaign_tests: CampaignTests | None = None  # test sends of a campaign (api/campaign_tests.py)
    mailboxes: MailboxDesk | None = None  # administration of mailboxes (api/mailboxes.py)
    evidence: EvidencePacks | None = None  # a message's evidence pack (api/evidence.py)
    rules: RulesDesk | None = None  # a mailbox's automatic rules (api/rules.py)
    invoices: InvoiceDesk | None = None  # SdI invoices (api/invoices.py)
    conservation: ConservationExports | None = None  # conservation exports (api/conservation.py)


class Unauthenticated(Exception):
    """No usable identity in the request (the authorizer lets none through; locally, the same)."""


def caller(event: Any, services: Services) -> Person:
    """The person the authorizer's JWT names, as the people table knows them now."""
    try:
        claims = event.request_context.authorizer.jwt_claim or {}
    except (AttributeError, KeyError, TypeError):
        claims = {}
    username = claims.get("cognito:username") or claims.get("username")
    if not username:
        raise Unauthenticated("sign in first: this request carries no identity")
    person = services.people.store.person(str(username).lower())
    if person is None:
        raise Unauthenticated(f"{username} has no pecflow account")
    if not person.enabled:
        raise DisabledPerson(f"the account {person.username} is disabled")
    return person


def source(event: Any) -> Source:
    return Source(ip=event.request_context.http.source_ip, client=(event.headers or {}).get("user-agent"))

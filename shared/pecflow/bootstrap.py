"""The composition root: each service built with its real adapters (DynamoDB, S3, SQS, Secrets
Manager, IMAP, SMTP) from one `Config`. Every keyword a builder takes replaces the part of that
name: tests pass fakes, or a `checkpoint` that crashes at a chosen step. Nothing else in the
package constructs an adapter for a service."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from pecflow.adapters.alerts import (
    AlertChannel,
    AlertGroupsTable,
    AlertSettings,
    Waiting,
    webhook_url_from_secret,
)
from pecflow.adapters.archive import Archive
from pecflow.adapters.campaign_files import CampaignPackage, CampaignUploads
from pecflow.adapters.cognito import CognitoDirectory
from pecflow.adapters.downloads import Downloads
from pecflow.adapters.dynamodb import CampaignStore, MailboxStore, MessageStore, OutgoingStore
from pecflow.adapters.dynamodb.audit import AuditStore
from pecflow.adapters.dynamodb.conservation import ExportedPeriods, PeriodMessages
from pecflow.adapters.dynamodb.inbox import InboxStore
from pecflow.adapters.dynamodb.inbox_counts import InboxCounts
from pecflow.adapters.dynamodb.invoices import InvoiceStore
from pecflow.adapters.dynamodb.people import PeopleStore
from pecflow.adapters.evidence_packs import ArchiveChunks, EvidencePackStore
from pecflow.adapters.invoices import InvoiceFiles
from pecflow.adapters.mail import ImapSession, SmtpSubmitter
from pecflow.adapters.queues import SqsQueue
from pecflow.adapters.ratelimit import RateLimiter
from pecflow.adapters.rules import AutoReplyClaims, MailboxRules, SavedFiles
from pecflow.adapters.secrets import SecretsManager, mailbox_password
from pecflow.adapters.trust import anchors_location, load_anchors, read_bundle
from pecflow.config import Config
from pecflow.domain import clock
from pecflow.domain.ports import PasswordOf
from pecflow.services.admin import CampaignAdmin, MailboxAdmin
from pecflow.services.alerts import PERIOD_SECONDS, AlertChecks, Alerts
from pecflow.services.audit import AuditLog
from pecflow.services.campaign_desk import CampaignDesk
from pecflow.services.campaign_tests import CampaignTests
from pecflow.services.conservation import ConservationExports
from pecflow.services.evidence import EvidencePacks
from pecflow.services.fanout import Fanout
from pecflow.services.inbox import Inbox
from pecflow.services.invoices import InvoiceDesk, InvoiceLedger, prerendered
from pecflow.services.mailbox_desk import MailboxDesk
from pecflow.services.people import PeopleAdmin
from pecflow.services.polling import Poller, PollRequest, schedule_polls
from pecflow.services.receive import Ingestor
from pecflow.services.rules import RuleActs, RuleRunner, RulesDesk
from pecflow.services.sending import (
    CampaignMessages,
    JobDelivery,
    MailboxDirectory,
    OutgoingMessages,
    Sender,
    dead_lettered,
    submitter,
)

if TYPE_CHECKING:
    from pecflow.api.context import Services

__all__ = [
    "alert_checks",
    "alerts",
    "campaign_admin",
    "campaign_files",
    "campaign_store",
    "dead_letters",
    "fanout",
    "ingestor",
    "job_delivery",
    "mailbox_admin",
    "mailbox_store",
    "message_store",
    "outgoing_store",
    "poll_scheduler",
    "poller",
    "sender",
]


# --- adapters ---------------------------------------------------------------------------------------
def mailbox_store(config: Config) -> MailboxStore:
    return MailboxStore(config.mailboxes_table, config.resource("dynamodb"))


def message_store(config: Config) -> MessageStore:
    return MessageStore(config.messages_table, config.resource("dynamodb"))


def outgoing_store(config: Config) -> OutgoingStore:
    return OutgoingStore(
        config.outgoing_table, config.resource("dynamodb"), campaigns_table=config.campaigns_table or None
    )


def inbox_store(config: Config) -> InboxStore:
    return InboxStore(config.inbox_table, config.resource("dynamodb"), audit_table=config.audit_table or None)


def campaign_store(config: Config) -> CampaignStore:
    return CampaignStore(config.campaigns_table, config.resource("dynamodb"))


def campaign_files(config: Config, campaign_id: str) -> CampaignPackage:
    return CampaignPackage(config.client("s3"), config.campaign_bucket, campaign_id)


def password_of(config: Config) -> PasswordOf:
    """The mailbox's password from its secret (cached a few minutes in a warm function)."""

    def read(mailbox: Any, refresh: bool = False) -> str:
        return mailbox_password(mailbox, config.stack_name, refresh=refresh)

    return read


def _parts(parts: dict[str, Callable[[], Any]], overrides: dict[str, Any]) -> dict[str, Any]:
    """The service's parts: each override as given, the other parts built (a fake in place of an
    adapter creates no client). Overrides of other fields pass through to the service's
    constructor, which refuses a name it does not have."""
    return {name: make() for name, make in parts.items() if name not in overrides} | overrides


# --- receiving ----------------------------------------------------------------------------------------
def ingestor(config: Config, **overrides: Any) -> Ingestor:
    """archive, messages, mailboxes, outgoing, checkpoint, on_message, ... (Ingestor's fields);
    `alerts` (an Alerts, or None for none) takes the failed-delivery receipts and the rules' notify."""
    notices = overrides.pop("alerts") if "alerts" in overrides else alerts(config)
    parts: dict[str, Callable[[], Any]] = {
        "archive": lambda: Archive(config.archive_bucket, config.client("s3")),
        "messages": lambda: message_store(config),
        "mailboxes": lambda: mailbox_store(config),
        "outgoing": lambda: outgoing_store(config),
        "inbox": lambda: inbox_store(config) if config.inbox_table else None,
        "check_signature": lambda: signature_checker(config),
        "rules": lambda: rule_runner(config, notifier=notices),
        "on_receipt": lambda: notices.received if notices is not None else None,
        "invoices": lambda: invoice_ledger(config, notices) if config.invoices_table else None,
    }
    return Ingestor(**_parts(parts, overrides))


def invoice_ledger(config: Config, notices: Alerts | None = None) -> InvoiceLedger:
    """SdI invoices on InvoicesTable, their files under the archive bucket's fatture/; a
    rejected one (NS, EC02) raises the `sdi-scartata` alert when `notices` is given."""
    from pecflow.adapters.dynamodb._common import is_service_failure

    def rejected(mailbox: str, key: str, note: str) -> None:
        if notices is not None:
            notices.raise_("sdi-scartata", mailbox=mailbox, example=f"{key.split('#', 1)[-1]}: {note}")

    return InvoiceLedger(
        InvoiceStore(config.invoices_table, config.resource("dynamodb")),
        InvoiceFiles(config.archive_bucket, config.client("s3")),
        is_service_failure=is_service_failure,
        on_rejected=rejected,
    )


def invoice_desk(config: Config) -> InvoiceDesk:
    """Invoices as the CLI and the API work them: listed, exported, an active one sent."""
    return InvoiceDesk(
        invoice_ledger(config),
        outbox=outgoing_store(config),
        send_queue=SqsQueue(config.send_queue_url, config.client("sqs")) if config.send_queue_url else None,
        archive=Archive(config.archive_bucket, config.client("s3")),
        mailbox_of=mailbox_store(config).get,
    )


def rule_runner(config: Config, notifier: Alerts | None = None) -> RuleRunner:
    """The mailboxes' rules as the poller runs them: the documents on MailboxesTable, the saved
    files and PDFs in the archive bucket's rules/, tags, assignments and auto-replies on the inbox
    with their audit events, auto-replies through the send queue (without an inbox, audit or
    people table, or a send queue, those actions fail, recorded on the message); `notify` through
    the alerts (without them it fails, recorded on the message)."""
    acts = inbox = None
    ddb = config.resource("dynamodb")
    if config.inbox_table and config.audit_table and config.people_table:
        audit = AuditStore(config.audit_table, ddb)
        rows = InboxStore(config.inbox_table, ddb, audit_table=config.audit_table)
        people = PeopleStore(config.people_table, ddb)
        send_queue = SqsQueue(config.send_queue_url, config.client("sqs")) if config.send_queue_url else None
        # the rules never list a page: the inbox's cursor secret is not needed here
        inbox = Inbox(rows, audit, people, message_store(config), cursor_secret=b"-",
                      outbox=outgoing_store(config) if send_queue else None, send_queue=send_queue)  # fmt: skip
        acts = RuleActs(inbox, rows, audit)
    return RuleRunner(
        MailboxRules(config.mailboxes_table, ddb),
        files=SavedFiles(config.archive_bucket, config.client("s3")) if config.archive_bucket else None,
        acts=acts,
        notifier=notifier,
        claims=AutoReplyClaims(config.mailboxes_table, ddb),
        replies=inbox if inbox is not None and inbox.send_queue is not None else None,
        records=message_store(config),
        jobs=outgoing_store(config) if config.outgoing_table else None,
    )


def rules_desk(config: Config) -> RulesDesk:
    """Reading and writing a mailbox's rules (the CLI, the API), each change audited."""
    audit = (
        AuditLog(AuditStore(config.audit_table, config.resource("dynamodb"))) if config.audit_table else None
    )
    return RulesDesk(MailboxRules(config.mailboxes_table, config.resource("dynamodb")), audit)


def signature_checker(config: Config) -> Callable[[Any, Any], Any]:
    """(message, received) -> the provider's signature verdict, against the trust anchors read
    once (at cold start) from TRUST_ANCHORS or the archive bucket's trust/anchors.pem."""
    from pecflow.pec.signature import check_message

    location = anchors_location(config.trust_anchors, config.archive_bucket)
    anchors = load_anchors(location, config.client("s3") if location.startswith("s3://") else None)
    return lambda msg, received: check_message(msg, anchors, received=received)


def poller(config: Config, **overrides: Any) -> Poller:
    """mailboxes, ingestor, password_of, open_session, requeue."""
    parts: dict[str, Callable[[], Any]] = {
        "mailboxes": lambda: mailbox_store(config),
        "ingestor": lambda: ingestor(config),
        "password_of": lambda: password_of(config),
        "open_session": lambda: ImapSession.open,
        "requeue": lambda: _requeue_poll(SqsQueue(config.poll_queue_url, config.client("sqs"))),
    }
    return Poller(**_parts(parts, overrides))


def _requeue_poll(queue: SqsQueue) -> Callable[[PollRequest], None]:
    return lambda request: queue.send(request.sqs_entry())


# --- alerts ------------------------------------------------------------------------------------------
def alerts(config: Config, **overrides: Any) -> Alerts | None:
    """groups, channel, period, on_failure (Alerts' fields); None without ALERTS_TABLE and
    ALERTS_TOPIC (an installation from before alerts)."""
    if not (config.alerts_table and config.alerts_topic) and not {"groups", "channel"} <= overrides.keys():
        return None
    parts: dict[str, Callable[[], Any]] = {
        "groups": lambda: AlertGroupsTable(config.alerts_table, config.client("dynamodb")),
        "channel": lambda: AlertChannel(
            config.alerts_topic,
            config.client("sns"),
            webhook_url=(
                webhook_url_from_secret(config.alerts_webhook_secret, config.client("secretsmanager"))
                if config.alerts_webhook_secret
                else None
            ),
        ),
        "period": lambda: (
            int(float(config.alerts_period_minutes) * 60) if config.alerts_period_minutes else PERIOD_SECONDS
        ),
    }
    return Alerts(**_parts(parts, overrides))


def alert_settings(config: Config) -> AlertSettings:
    """Each mailbox's alert thresholds (the CLI)."""
    return AlertSettings(config.mailboxes_table, config.client("dynamodb"))


def alert_checks(config: Config, **overrides: Any) -> AlertChecks | None:
    """The scheduled check (once per period): alerts, waiting, settings_of, claim_run."""
    notices = overrides.pop("alerts") if "alerts" in overrides else alerts(config)
    if notices is None:
        return None
    ddb = config.client("dynamodb")
    groups = AlertGroupsTable(config.alerts_table, ddb)
    parts: dict[str, Callable[[], Any]] = {
        "waiting": lambda: Waiting(config.messages_table, config.inbox_table, ddb),
        "settings_of": lambda: AlertSettings(config.mailboxes_table, ddb).get,
        "claim_run": lambda: lambda key: groups.claim_run(key, int(clock.timestamp()) + 2 * notices.period),
    }
    return AlertChecks(alerts=notices, **_parts(parts, overrides))


def poll_scheduler(config: Config) -> Callable[[str], list[str]]:
    """tick → the mailboxes a poll request was queued for."""
    queue = SqsQueue(config.poll_queue_url, config.client("sqs"))
    return partial(schedule_polls, mailbox_store(config), queue.send_batch)


# --- sending ------------------------------------------------------------------------------------------
def sender(config: Config, **overrides: Any) -> Sender:
    """outgoing, campaigns, archive, mailbox_of, acquire, release, render, submit, check_size,
    checkpoint (Sender's fields)."""
    directory = MailboxDirectory(mailbox_store(config))
    parts: dict[str, Callable[[], Any]] = {
        "outgoing": lambda: outgoing_store(config),
        "campaigns": lambda: campaign_store(config),
        "archive": lambda: Archive(config.archive_bucket, config.client("s3")),
        "mailbox_of": lambda: directory.config,
        "render": lambda: prerendered(  # an invoice's PEC as archived when it was asked for
            OutgoingMessages(
                CampaignMessages(partial(campaign_files, config)).render,
                Archive(config.archive_bucket, config.client("s3")).get,
            ).render,
            Archive(config.archive_bucket, config.client("s3")).get,
        ),
        "submit": lambda: submitter(SmtpSubmitter.open, password_of(config)),
        "check_size": lambda: directory.check_size,
    }
    limiter: list[RateLimiter] = []  # made once, when acquire or release is not overridden

    def rate_limiter() -> RateLimiter:
        if not limiter:
            limiter.append(
                RateLimiter(config.quota_table, directory.policy, dynamodb=config.resource("dynamodb"))
            )
        return limiter[0]

    parts["acquire"] = lambda: rate_limiter().acquire
    parts["release"] = lambda: rate_limiter().release
    return Sender(**_parts(parts, overrides))


def job_delivery(config: Config, **overrides: Any) -> JobDelivery:
    """The sender function's work: `sender` (or its parts) and the send `queue`."""
    queue = overrides.pop("queue", None) or SqsQueue(config.send_queue_url, config.client("sqs"))
    built = overrides.pop("sender", None) or sender(config, **overrides)
    return JobDelivery(built, queue)


def dead_letters(config: Config) -> Callable[[str], str]:
    """message id → the job's state once its dead-lettered queue message is accounted for."""
    return partial(dead_lettered, outgoing_store(config))


def fanout(config: Config, **overrides: Any) -> Fanout:
    """files_of, campaigns, outgoing, send_queue, fanout_queue, margin."""
    parts: dict[str, Callable[[], Any]] = {
        "files_of": lambda: partial(campaign_files, config),
        "campaigns": lambda: campaign_store(config),
        "outgoing": lambda: outgoing_store(config),
        "send_queue": lambda: SqsQueue(config.send_queue_url, config.client("sqs")),
        "fanout_queue": lambda: (
            SqsQueue(config.fanout_queue_url, config.client("sqs")) if config.fanout_queue_url else None
        ),
        "audit": lambda: audit_log(config) if config.audit_table else None,
    }
    return Fanout(**_parts(parts, overrides))


# --- administration -----------------------------------------------------------------------------------
def mailbox_admin(config: Config, **overrides: Any) -> MailboxAdmin:
    parts: dict[str, Callable[[], Any]] = {
        "mailboxes": lambda: mailbox_store(config),
        "secrets": lambda: SecretsManager(config.client("secretsmanager")),
        "open_session": lambda: partial(ImapSession.open, timeout=20),
    }
    return MailboxAdmin(**_parts(parts, overrides), stack_name=config.stack_name)


def _quarantined(store: Any, mailbox: str, limit: int) -> list[Any]:
    return list(store.query(mailbox, index="Quarantined", limit=limit))


def mailbox_desk(config: Config, **overrides: Any) -> MailboxDesk:
    """Mailboxes administered from the API: the login check (IMAP, then SMTP), the password to
    Secrets Manager, the health (the sender's quota slots, the inbox's count "da gestire").
    `people` and `audit` as the API has them."""
    parts: dict[str, Callable[[], Any]] = {
        "mailboxes": lambda: mailbox_store(config),
        "secrets": lambda: SecretsManager(config.client("secretsmanager")),
        "open_imap": lambda: partial(ImapSession.open, timeout=10),
        "open_smtp": lambda: partial(SmtpSubmitter.open, timeout=10),
        "sends_in_window": lambda: (
            RateLimiter(
                config.quota_table,
                MailboxDirectory(mailbox_store(config)).policy,
                dynamodb=config.resource("dynamodb"),
            ).used
        ),
        "to_handle": lambda: InboxCounts(config.inbox_table, config.resource("dynamodb")).to_handle,
        "quarantined": lambda: partial(_quarantined, message_store(config)),
    }
    return MailboxDesk(**_parts(parts, overrides), stack_name=config.stack_name)


def campaign_tests(config: Config, **overrides: Any) -> CampaignTests:
    """Test sends of campaigns: outgoing, archive, send_queue, mailbox_of, files_of, audit,
    campaign_mailbox."""
    parts: dict[str, Callable[[], Any]] = {
        "outgoing": lambda: outgoing_store(config),
        "archive": lambda: Archive(config.archive_bucket, config.client("s3")),
        "send_queue": lambda: SqsQueue(config.send_queue_url, config.client("sqs")),
        "mailbox_of": lambda: mailbox_store(config).get,
        "files_of": lambda: partial(campaign_files, config) if config.campaign_bucket else None,
        "audit": lambda: audit_log(config) if config.audit_table else None,
        "campaign_mailbox": lambda: _campaign_mailbox(campaign_store(config)),
    }
    return CampaignTests(**_parts(parts, overrides))


def _campaign_mailbox(store: Any) -> Callable[[str], str | None]:
    def mailbox(campaign_id: str) -> str | None:
        item = store.get(campaign_id)
        return item.mailbox if item is not None else None

    return mailbox


def campaign_admin(config: Config, **overrides: Any) -> CampaignAdmin:
    parts: dict[str, Callable[[], Any]] = {
        "campaigns": lambda: campaign_store(config),
        "outgoing": lambda: outgoing_store(config),
        "send_queue": lambda: SqsQueue(config.send_queue_url, config.client("sqs")),
        "audit": lambda: audit_log(config) if config.audit_table else None,
    }
    return CampaignAdmin(**_parts(parts, overrides))


def evidence_packs(config: Config, **overrides: Any) -> EvidencePacks:
    """A message's evidence pack: records, audit, originals, rows, outbox, timestamper, packs,
    provider_anchors, tsa_anchors (EvidencePacks' fields)."""
    parts: dict[str, Callable[[], Any]] = {
        "records": lambda: message_store(config),
        "audit": lambda: audit_log(config),
        "originals": lambda: ArchiveChunks(config.client("s3"), config.archive_bucket),
        "rows": lambda: inbox_store(config) if config.inbox_table else None,
        "outbox": lambda: outgoing_store(config) if config.outgoing_table else None,
        "timestamper": lambda: timestamper(config),
        "packs": lambda: (
            EvidencePackStore(config.client("s3"), config.downloads_bucket)
            if config.downloads_bucket
            else None
        ),
        "provider_anchors": lambda: partial(
            _bundle, config, anchors_location(config.trust_anchors, config.archive_bucket)
        ),
        "tsa_anchors": lambda: _bundle(config, config.tsa_anchors),
    }
    return EvidencePacks(**_parts(parts, overrides))


def conservation_exports(config: Config, **overrides: Any) -> ConservationExports:
    """A mailbox's periods exported for conservation: records, periods, originals, audit, outbox,
    packages (ConservationExports' fields)."""
    parts: dict[str, Callable[[], Any]] = {
        "records": lambda: PeriodMessages(config.messages_table, config.resource("dynamodb")),
        "periods": lambda: ExportedPeriods(config.mailboxes_table, config.resource("dynamodb")),
        "originals": lambda: ArchiveChunks(config.client("s3"), config.archive_bucket),
        "audit": lambda: audit_log(config),
        "outbox": lambda: outgoing_store(config) if config.outgoing_table else None,
        "packages": lambda: (
            EvidencePackStore(config.client("s3"), config.downloads_bucket)
            if config.downloads_bucket
            else None
        ),
    }
    return ConservationExports(**_parts(parts, overrides))


def timestamper(config: Config) -> Any:
    """The time-stamping authority of evidence packs (None: TSA_URL not configured)."""
    from pecflow.adapters.tsa import HttpTsa
    from pecflow.pec.signature import read_certificates

    if not config.tsa_url:
        return None
    anchors = _bundle(config, config.tsa_anchors)
    return HttpTsa(config.tsa_url, read_certificates(anchors) if anchors else ())


def _bundle(config: Config, location: str) -> bytes:
    """A PEM bundle's bytes at a file or s3:// location (b"": none configured, none there, or
    none readable: a pack without anchors, whose check then needs them given)."""
    if not location:
        return b""
    try:
        return read_bundle(location, config.client("s3") if location.startswith("s3://") else None) or b""
    except Exception:  # noqa: BLE001 - none readable (S3 says 403 for a missing key): the pack says it has none
        return b""


def audit_log(config: Config) -> AuditLog:
    if not config.audit_table:
        from pecflow.config import ConfigError

        raise ConfigError("this installation has no audit table (AuditTableName): update the stack")
    return AuditLog(AuditStore(config.audit_table, config.resource("dynamodb")))


def people_admin(config: Config) -> PeopleAdmin:
    if not config.people_table:
        from pecflow.config import ConfigError

        raise ConfigError("this installation has no people table (PeopleTableName): update the stack")
    directory = (
        CognitoDirectory(config.user_pool_id, config.client("cognito-idp")) if config.user_pool_id else None
    )
    return PeopleAdmin(
        PeopleStore(config.people_table, config.resource("dynamodb")), audit_log(config), directory
    )


def api_services(config: Config) -> Services:
    """The API's services: the inbox (rows, audit, people, records), people, audit."""
    from aws_lambda_powertools.utilities import parameters

    from pecflow.api.context import Services  # the API's models need pydantic: only the api function

    ddb = config.resource("dynamodb")
    audit = AuditStore(config.audit_table, ddb)
    people = PeopleStore(config.people_table, ddb)
    cursor_secret = str(parameters.get_secret(config.api_secret, max_age=3600)).encode()
    inbox = Inbox(
        InboxStore(config.inbox_table, ddb, audit_table=config.audit_table),
        audit,
        people,
        message_store(config),
        cursor_secret=cursor_secret,
        outbox=outgoing_store(config),
        send_queue=SqsQueue(config.send_queue_url, config.client("sqs")),
        originals=Downloads(
            Archive(config.archive_bucket, config.client("s3")), config.downloads_bucket, config.client("s3")
        ),
    )
    directory = (
        CognitoDirectory(config.user_pool_id, config.client("cognito-idp")) if config.user_pool_id else None
    )
    desk = CampaignDesk(
        campaign_admin(config, audit=AuditLog(audit)),
        CampaignUploads(config.client("s3"), config.campaign_bucket),
        AuditLog(audit),
        cursor_secret=cursor_secret,
        files_of=partial(campaign_files, config) if config.campaign_bucket else None,
        mailbox_of=mailbox_store(config).get,
        fanout_queue=SqsQueue(config.fanout_queue_url, config.client("sqs"))
        if config.fanout_queue_url
        else None,
    )
    tests = campaign_tests(config, audit=AuditLog(audit))
    admin = PeopleAdmin(people, AuditLog(audit), directory)
    mailboxes = mailbox_desk(config, people=admin, audit=AuditLog(audit))
    evidence = evidence_packs(config, audit=AuditLog(audit), rows=inbox.rows, outbox=inbox.outbox)
    rules = RulesDesk(MailboxRules(config.mailboxes_table, ddb), AuditLog(audit))
    invoices = invoice_desk(config) if config.invoices_table else None
    conservation = conservation_exports(config, audit=AuditLog(audit), outbox=inbox.outbox)
    return Services(
        inbox, admin, AuditLog(audit), desk, tests, mailboxes, evidence, rules,
        invoices=invoices, conservation=conservation,
    )  # fmt: skip

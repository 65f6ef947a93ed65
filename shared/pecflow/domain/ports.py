"""The ports: what the services need from the world, as `Protocol`s, and the values and errors
that cross them. The adapters (`pecflow.adapters`) implement them on AWS, IMAP and SMTP;
`tests/fakes.py` implements them in memory. The services import only this module, never an
adapter: `pecflow.bootstrap` decides which implementation each service gets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Protocol

from pecflow.domain.mailbox import Cursor, FolderStatus, MailboxConfig, Usage
from pecflow.domain.reconcile import Job, Move, OutgoingPort, State
from pecflow.domain.records import CampaignRecord, JobRecord, MessageRecord

__all__ = [
    "Archive",
    "ArchiveError",
    "Archived",
    "CampaignFiles",
    "CampaignStore",
    "Checkpoint",
    "Fetched",
    "MailOpener",
    "MailSession",
    "MailboxStore",
    "InboxListing",
    "MailboxUnavailable",
    "MessageStore",
    "OutgoingPort",
    "OutgoingStore",
    "PackageChanged",
    "PasswordOf",
    "Queue",
    "SecretStore",
    "Submission",
    "Submitter",
    "Verification",
    "no_checkpoint",
]


# --- values and errors that cross the ports -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Archived:
    key: str
    created: bool  # False when the object was already there (same bytes)
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    reason: str


class ArchiveError(RuntimeError):
    """An archived object exists under a message's key but is not those bytes."""


class MailboxUnavailable(Exception):
    """The mailbox could not be opened. `kind`: auth | unreachable | tls | protocol."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class PackageChanged(Exception):
    """A pinned campaign file cannot be read as it was pinned (replaced or deleted)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    uid: int
    raw: bytes
    internaldate: datetime | None
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Submission:
    """What the provider's access point answered.

    status: accepted (250 after DATA) | lost (the answer after DATA never came: the message may
    have gone; only its receipts can tell) | temporary (4xx, or no connection: nothing was sent,
    try later) | permanent (5xx: nothing was sent, do not retry) | auth (the mailbox's
    credentials were refused: nothing was sent)."""

    status: str
    code: int | None = None
    text: str = ""
    before_data: bool = False  # refused or failed before DATA began: certainly not sent

    @property
    def sent(self) -> bool:
        return self.status == "accepted"


# A step a service has just completed ("after_archive", "after_claim", ...), with where it is
# (e.g. uid=7). Production passes `no_checkpoint`; tests inject crashes through the bootstrap.
Checkpoint = Callable[..., None]


def no_checkpoint(step: str, **where: object) -> None:
    return None


# --- storage ----------------------------------------------------------------------------------------
class Archive(Protocol):
    """The write-once archive of original messages, keyed by their SHA-256."""

    def store(self, raw: bytes, sha: str | None = None) -> Archived: ...
    def store_again(self, raw: bytes, sha: str) -> Archived: ...  # a damaged copy replaced by the original
    def verify(self, key: str, sha: str, *, deep: bool = True) -> Verification: ...
    def get(self, key: str) -> bytes: ...


class InboxListing(Protocol):
    """What people see of each received message (its row in the inbox: pecflow.domain.inbox)."""

    def add(
        self, mailbox: str, record: dict[str, Any], *, campaign_id: str | None = None, new: bool = False
    ) -> bool: ...
    def index_words(
        self, mailbox: str, rows: list[dict[str, Any]], *, new_rows: Sequence[dict[str, Any]] = ...
    ) -> None:
        """The postings of a batch of rows' words (pecflow.domain.inbox.postings), with the rows
        of messages recorded just now (none there yet) written first, in the same requests."""
        ...


class MessageStore(Protocol):
    """The record of every message received, one per (mailbox, SHA-256)."""

    def record(self, mailbox: str, record: dict[str, Any]) -> bool: ...
    def relocate(self, mailbox: str, sha256: str, *, folder: str, uid: int, uidvalidity: int) -> None: ...
    def get(self, mailbox: str, sha256: str) -> MessageRecord | None: ...
    def set_fields(
        self, mailbox: str, sha256: str, fields: dict[str, Any], remove: Iterable[str] = ()
    ) -> None: ...
    def map_uids(self, mailbox: str, folder: str, uidvalidity: int, shas: Mapping[int, str]) -> None:
        """A fetched batch's UIDs, each with the SHA-256 of the archived message it is (the UID
        map, pecflow.domain.mailbox.uid_map_items): written again, it overwrites its own."""
        ...

    def unmap_uids(
        self, mailbox: str, folder: str, uidvalidity: int, uids: Iterable[int] | None = None
    ) -> None:
        """UIDs gone from the provider out of the map (None: all the folder's under that UIDVALIDITY)."""
        ...

    def at_location(
        self, mailbox: str, folder: str, uidvalidity: int, uids: list[int]
    ) -> dict[int, MessageRecord]:
        """The map's entries for these UIDs, by UID (pecflow.domain.records.on_provider_record)."""
        ...

    def is_service_failure(self, exc: BaseException) -> bool:
        """Did the service (or the network to it) fail, rather than refuse this record?"""
        ...


class MailboxStore(Protocol):
    """Mailbox configurations, their poll status and their cursors."""

    def put(self, config: MailboxConfig) -> None: ...
    def get(self, address: str) -> MailboxConfig | None: ...
    def status(self, address: str) -> dict[str, Any]: ...
    def set_enabled(self, address: str, enabled: bool) -> None: ...
    def get_with_status(self, address: str) -> tuple[MailboxConfig | None, dict[str, Any]]: ...
    def list(self, *, enabled_only: bool = False) -> list[MailboxConfig]: ...
    def record_poll(
        self,
        address: str,
        *,
        ok: bool,
        error_kind: str | None = None,
        error: str | None = None,
        usage: dict[str, Any] | None = None,
        fetched: int = 0,
    ) -> None: ...
    def note_quarantine(self, address: str, *, uid: int, sha256: str, reason: str) -> None: ...
    def get_cursor(self, address: str, folder: str) -> Cursor: ...
    def save_cursor(self, address: str, cursor: Cursor) -> None: ...


class OutgoingStore(OutgoingPort, Protocol):
    """Outgoing messages and their jobs (one per recipient), with their state machine."""

    def add_jobs(self, jobs: list[dict[str, Any]], *, created: list[str] | None = None) -> int: ...
    def job(self, message_id: str) -> JobRecord | None: ...
    def reserve_slot(self, message_id: str, recipient: str, at: float) -> bool: ...
    def set_job_fields(self, message_id: str, recipient: str, fields: dict[str, Any]) -> None: ...
    def campaign_jobs(self, campaign_id: str) -> Iterable[JobRecord]: ...
    def try_move(self, message_id: str, recipient: Job, move: Move, **kwargs: Any) -> bool: ...
    def apply(
        self,
        message_id: str,
        recipient: Job,
        move: Move | None,
        *,
        receipt_id: str | None = None,
        receipt: dict[str, Any] | None = None,
        certified: bool | None = None,
        carried: dict[str, dict[str, Any]] | None = None,
        also_set: dict[str, Any] | None = None,
        only_if: dict[str, Any] | None = None,
        also_remove: tuple[str, ...] = (),
    ) -> State: ...
    def count_in_campaign(self, campaign_id: str, name: str, delta: int) -> None: ...


class Outbox(Protocol):
    """Where a message not of a campaign (a reply, a forward, a campaign's test send) is registered
    for the sender: the outgoing store's `register`."""

    def register(
        self,
        message_id: str,
        *,
        mailbox: str,
        recipients: list[str],
        subject: str | None = None,
        state: Any = ...,
        campaign_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> bool: ...


class CampaignStore(Protocol):
    """The campaign item: definition, status, fan-out progress and counters."""

    def get(self, campaign_id: str) -> CampaignRecord | None: ...
    def create(self, campaign_id: str, fields: dict[str, Any]) -> bool: ...
    def update(
        self, campaign_id: str, fields: dict[str, Any], *, only_if_status: tuple[str, ...] | None = None
    ) -> bool: ...
    def note_problem(self, campaign_id: str, text: str, *, keep: int = 20) -> bool: ...
    def start_counting(self, campaign_id: str, total: int, rows: int | None = None) -> bool: ...
    def add_jobs(self, campaign_id: str, count: int, rows: int | None = None) -> None: ...
    def checkpoint(
        self, campaign_id: str, next_row: int, queued: int, expected_next_row: int, rows: int | None = None
    ) -> bool: ...
    def counters(self, campaign_id: str) -> dict[str, int]: ...


class CampaignFiles(Protocol):
    """One campaign's uploaded files. `pin` notes the version of a file; a read given a pin
    returns those bytes or raises PackageChanged."""

    campaign_id: str

    def pin(self, name: str, version_id: str | None = None) -> dict[str, Any] | None: ...
    def read(self, name: str, pin: dict[str, Any] | None = None) -> bytes: ...
    def open_with_size(
        self, name: str, pin: dict[str, Any] | None = None
    ) -> tuple[IO[bytes], int | None]: ...
    def attachments(self) -> Iterable[tuple[str, int]]: ...
    def put(self, name: str, body: IO[bytes], content_type: str) -> None: ...


class Queue(Protocol):
    """A message queue (SQS): entries as SQS takes them (Id, MessageBody, group, deduplication id)."""

    def send_batch(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Up to 10 entries; the answer lists those refused under "Failed"."""
        ...

    def send(self, entry: dict[str, Any]) -> None: ...
    def change_visibility(self, receipt_handle: str, seconds: int) -> None: ...


class SecretStore(Protocol):
    """Where mailbox passwords live (Secrets Manager): written by the CLI, read by the functions."""

    def put(self, name: str, value: str, description: str) -> None: ...


# --- mail -------------------------------------------------------------------------------------------
class MailSession(Protocol):
    """One logged-in IMAP connection to a mailbox, as the poll uses it."""

    commands: int
    # what the connection raises when it breaks while in use (the poll stops, nothing is lost)
    connection_errors: tuple[type[BaseException], ...]

    def status(self, folder: str) -> FolderStatus: ...
    def select(self, folder: str) -> FolderStatus: ...
    def uids_from(self, first_uid: int) -> list[int]: ...
    def uids_before(self, when: datetime) -> list[int]: ...
    def sizes(self, uids: list[int]) -> list[tuple[int, int]]: ...
    def fetch(self, uids: list[int]) -> list[Fetched]: ...
    def internaldates(self, uids: list[int]) -> dict[int, tuple[datetime | None, int]]: ...
    def usage(self, folder: str = "INBOX") -> Usage | None: ...
    def move(self, folder: str, uids: list[int], target: str) -> None: ...
    def expunge(self, folder: str, uids: list[int]) -> None: ...
    def close(self) -> None: ...


class Submitter(Protocol):
    """One authenticated SMTP connection to the provider's access point."""

    def submit(self, raw: bytes, mail_from: str, recipients: list[str]) -> Submission: ...
    def close(self) -> None: ...


MailOpener = Callable[[MailboxConfig, str], MailSession]
PasswordOf = Callable[..., str]  # (config, refresh=False) -> the mailbox's password

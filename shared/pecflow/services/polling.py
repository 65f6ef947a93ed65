"""The poll flow around the ingestor: which mailboxes to poll on a tick, and what one poll
request does with its outcome (status on the mailbox record, continuation, errors)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pecflow.domain import clock
from pecflow.domain.ports import MailboxStore, MailboxUnavailable, MailOpener, PasswordOf
from pecflow.services.logins import open_with_fresh_password
from pecflow.services.receive import ArchiveFailed, Ingestor, PollResult


@dataclass(frozen=True, slots=True)
class PollRequest:
    mailbox: str
    tick: str
    continuation: int = 0  # > 0: the n-th follow-up of a poll stopped by its deadline

    def body(self) -> str:
        return json.dumps({"mailbox": self.mailbox, "tick": self.tick, "continuation": self.continuation})

    @classmethod
    def parse(cls, body: str) -> PollRequest:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("mailbox"), str):
            raise ValueError(f"not a poll request: {body[:200]!r}")
        return cls(data["mailbox"], str(data.get("tick", "")), int(data.get("continuation", 0)))

    def sqs_entry(self, index: int = 0) -> dict:
        """A FIFO entry: one group per mailbox (one poller at a time), deduplicated per tick."""
        dedupe = hashlib.sha256(f"{self.mailbox}|{self.tick}|{self.continuation}".encode()).hexdigest()
        return {
            "Id": str(index),
            "MessageBody": self.body(),
            "MessageGroupId": self.mailbox,
            "MessageDeduplicationId": dedupe,
        }


def tick_of(when: str | None) -> str:
    """The schedule's time (the event's `time`; None: now), to the minute: two deliveries of one
    tick deduplicate."""
    moment = datetime.fromisoformat(when.replace("Z", "+00:00")) if isinstance(when, str) else clock.now()
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def schedule_polls(mailboxes: MailboxStore, send_batch: Callable[[list[dict]], dict], tick: str) -> list[str]:
    """One poll request per enabled mailbox, in SQS batches of 10. Returns the mailboxes."""
    enabled = [c.address for c in mailboxes.list(enabled_only=True)]
    for start in range(0, len(enabled), 10):
        entries = [
            PollRequest(address, tick).sqs_entry(i) for i, address in enumerate(enabled[start : start + 10])
        ]
        response = send_batch(entries)
        failed = response.get("Failed") or []
        if failed:
            raise RuntimeError(f"poll requests not queued: {failed}")
    return enabled


@dataclass(slots=True)
class PollOutcome:
    request: PollRequest
    result: PollResult | None = None
    error_kind: str | None = None
    error: str | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def handle_poll(
    request: PollRequest,
    *,
    mailboxes: MailboxStore,
    ingestor: Ingestor,
    password_of: PasswordOf,
    open_session: MailOpener,
    requeue: Callable[[PollRequest], None] | None = None,
    time_left: Callable[[], float] = lambda: float("inf"),
    margin: float = 20.0,
    usage_every: float = 3600.0,
) -> PollOutcome:
    """Poll one mailbox. A mailbox that cannot be opened (credentials, network, TLS) is an
    outcome recorded on its record, not an exception: the other mailboxes go on."""
    config, status = mailboxes.get_with_status(request.mailbox)
    if config is None:
        return PollOutcome(request, skipped="unknown mailbox")
    if not config.enabled:
        return PollOutcome(request, skipped="mailbox disabled")
    try:
        session = open_with_fresh_password(config, open_session, password_of)
    except MailboxUnavailable as exc:
        mailboxes.record_poll(config.address, ok=False, error_kind=exc.kind, error=str(exc))
        return PollOutcome(request, error_kind=exc.kind, error=str(exc))
    try:
        result = ingestor.poll(
            config,
            session,
            time_left=time_left,
            margin=margin,
            usage_due=_usage_due(status.get("usage_at"), usage_every),
        )
    except session.connection_errors as exc:
        # the connection broke midway: what was recorded stays recorded (the cursor says so)
        mailboxes.record_poll(config.address, ok=False, error_kind="interrupted", error=str(exc))
        return PollOutcome(request, error_kind="interrupted", error=f"connection lost during the poll: {exc}")
    except ArchiveFailed as exc:
        mailboxes.record_poll(config.address, ok=False, error_kind="archive", error=str(exc))
        return PollOutcome(request, error_kind="archive", error=str(exc))
    except Exception as exc:
        # AWS failing, or a fault of ours: the mailbox says so, and the request is tried again
        mailboxes.record_poll(
            config.address,
            ok=False,
            error_kind="internal",
            error=f"the poll stopped: {type(exc).__name__}: {exc}",
        )
        raise
    finally:
        session.close()
    usage = {"percent": round(result.usage_percent, 2)} if result.usage_percent is not None else None
    kept = archive_problem(result.refused)
    mailboxes.record_poll(
        config.address,
        ok=True,
        usage=usage,
        fetched=result.fetched,
        error_kind=kept and "archive",
        error=kept,
    )
    if result.more and requeue is not None:
        requeue(PollRequest(request.mailbox, request.tick, request.continuation + 1))
    return PollOutcome(request, result)


def archive_problem(refused: list[str]) -> str | None:
    """What the mailbox's health says of archive copies that failed their check (the messages
    stay on the provider), in the office's words, with the details."""
    if not refused:
        return None
    many = f"{len(refused)} messaggi" if len(refused) > 1 else "un messaggio"
    return (
        f"La copia in archivio di {many} non corrisponde all'originale: resta sul server della "
        f"casella finché la copia non è verificata. Dettagli: {'; '.join(refused)}"
    )[:1000]


def _usage_due(last: str | None, every: float) -> bool:
    """IMAP QUOTA is read when messages arrive, and otherwise at most every `every` seconds
    (its cost grows with the mailbox; a poll with nothing new must not)."""
    if not last:
        return True
    then = datetime.fromisoformat(last.replace("Z", "+00:00"))
    return (clock.now() - then).total_seconds() >= every


@dataclass(slots=True)
class Poller:
    """One poll request's work, wired by the bootstrap: the ports `handle_poll` needs."""

    mailboxes: MailboxStore
    ingestor: Ingestor
    password_of: PasswordOf
    open_session: MailOpener
    requeue: Callable[[PollRequest], None] | None = None

    def poll(
        self, request: PollRequest, time_left: Callable[[], float] = lambda: float("inf")
    ) -> PollOutcome:
        return handle_poll(
            request,
            mailboxes=self.mailboxes,
            ingestor=self.ingestor,
            password_of=self.password_of,
            open_session=self.open_session,
            requeue=self.requeue,
            time_left=time_left,
        )

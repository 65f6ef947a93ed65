"""The audit log as the entry points use it: record an act (chained after the mailbox's last
event, again after whoever wrote first when two acts meet), verify a mailbox's chain, export a
period as CSV (for Excel, formula-safe) or JSON lines. The rules of the chain are in
pecflow.domain.audit."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict
from datetime import datetime
from itertools import takewhile
from typing import BinaryIO, Protocol

from pecflow.domain import clock
from pecflow.domain.audit import AuditAction, AuditEvent, ChainHead, Verdict, next_event, verify
from pecflow.domain.campaign.export import export_rows, write_lines

APPEND_ATTEMPTS = 50  # acts on one mailbox in the same instant, each chained after the other

EXPORT_COLUMNS = (
    "seq",
    "at",
    "actor",
    "action",
    "message",
    "source_ip",
    "client",
    "details",
    "prev_hash",
    "hash",
)


class AuditPort(Protocol):
    def head(self, mailbox: str) -> ChainHead: ...
    def append(self, event: AuditEvent) -> bool: ...
    def events(self, mailbox: str, *, after: int = 0) -> Iterable[AuditEvent]: ...
    def of_message(self, mailbox: str, message: str, limit: int = 200) -> list[AuditEvent]: ...


class AuditUnavailable(RuntimeError):
    """The act could not be chained (the log was busy past every attempt): the act must not
    go ahead unrecorded."""


class AuditLog:
    def __init__(
        self,
        store: AuditPort,
        *,
        key: bytes | None = None,
        now: Callable[[], datetime] = clock.now,
    ):
        self.store, self.key, self.now = store, key, now

    def record(
        self,
        mailbox: str,
        *,
        actor: str,
        action: AuditAction | str,
        message: str | None = None,
        source_ip: str | None = None,
        client: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> AuditEvent:
        for _ in range(APPEND_ATTEMPTS):
            event = next_event(
                self.store.head(mailbox),
                actor=actor,
                action=action,
                at=self.now(),
                message=message,
                source_ip=source_ip,
                client=client,
                details=details,
                key=self.key,
            )
            if self.store.append(event):
                return event
        raise AuditUnavailable(f"the audit log of {mailbox} is busy: the act was not done, try again")

    def verify(self, mailbox: str) -> Verdict:
        """Check the chain up to the head read first (events written meanwhile are left for the
        next check)."""
        head = self.store.head(mailbox)
        events = takewhile(lambda e: e.seq <= head.seq, self.store.events(mailbox))
        return verify(mailbox.lower(), events, head, self.key)

    def trail(self, mailbox: str, message: str) -> list[AuditEvent]:
        return self.store.of_message(mailbox, message)

    def export(
        self,
        mailbox: str,
        sink: BinaryIO,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        fmt: str = "csv",
    ) -> int:
        """Write the events between `start` and `end` (inclusive; both optional) to `sink`;
        returns how many."""
        if fmt not in ("csv", "json"):
            raise ValueError(f"export format {fmt!r}: csv or json")
        events = list(_between(self.store.events(mailbox), start, end))
        if fmt == "json":
            for event in events:
                sink.write(json.dumps(asdict(event), ensure_ascii=False, sort_keys=True).encode() + b"\n")
            return len(events)
        rows = ({**asdict(e), "details": dict(e.details) or None} for e in events)
        return max(0, write_lines(sink, export_rows(rows, EXPORT_COLUMNS)) - 1)


def _between(
    events: Iterable[AuditEvent], start: datetime | None, end: datetime | None
) -> Iterator[AuditEvent]:
    for bound in (start, end):
        if bound is not None and bound.tzinfo is None:
            raise ValueError("export dates must carry their time zone")
    for event in events:
        at = datetime.fromisoformat(event.at)
        if (start is None or at >= start) and (end is None or at <= end):
            yield event

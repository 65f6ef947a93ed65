"""The stored shape of an outgoing job, written once: the DynamoDB adapter and the in-memory fake
(tests/fakes.py) both build a new campaign job's items with `job_items`. Pure: no I/O.

The outgoing table holds, per message we send, a head item (sort key `MESSAGE_ROW`) and one row
per recipient carrying the job's state (docs/architecture.md, "The outgoing job state machine").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pecflow.domain.reconcile import State

MESSAGE_ROW = "#message"  # the sort key of a message's head item, beside its recipients' rows
# attributes a new job's row stores even when empty: the moves write each receipt into the map
# (the stores otherwise drop None, "" and empty lists and maps, as DynamoDB would keep them)
KEPT_EMPTY = ("receipts",)


def job_key(row: int, attempt: int) -> str:
    """Sort key of a job in its campaign (index ByCampaign): row order, then attempt."""
    return f"{row:09d}#{attempt:03d}"


def state_stamp(state: State) -> str:
    """The attribute holding when a job reached `state`: at_sent, at_sent_uncertain, ..."""
    return "at_" + state.value.replace("?", "_uncertain").replace("-", "_")


@dataclass(frozen=True, slots=True)
class NewJob:
    """One campaign job to create: a row of the recipients' CSV (and its attempt) for one address."""

    message_id: str
    recipient: str
    mailbox: str
    campaign_id: str
    row: int
    attempt: int
    values: Mapping[str, Any] | None = None  # the row's merge fields

    @classmethod
    def from_dict(cls, job: Mapping[str, Any]) -> NewJob:
        """From the dict the services pass to `OutgoingStore.add_jobs` (KeyError names a
        missing field)."""
        values = job.get("values")
        return cls(
            message_id=str(job["message_id"]),
            recipient=str(job["recipient"]),
            mailbox=str(job["mailbox"]),
            campaign_id=str(job["campaign_id"]),
            row=int(job["row"]),
            attempt=int(job["attempt"]),
            values=dict(values) if values is not None else None,
        )

    @property
    def key(self) -> str:
        return job_key(self.row, self.attempt)


def job_items(job: NewJob, now: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The head item and the recipient's row of a new campaign job, created `now` (ISO time),
    pending. Plain values, before the stores' cleaning; keep `KEPT_EMPTY` through it. The head
    keeps the addresses as given; the row's key is the recipient in lower case."""
    head: dict[str, Any] = {
        "message_id": job.message_id,
        "recipient": MESSAGE_ROW,
        "mailbox": job.mailbox,
        "campaign_id": job.campaign_id,
        "created_at": now,
        "recipients": [job.recipient],
    }
    row: dict[str, Any] = {
        "message_id": job.message_id,
        "recipient": job.recipient.lower(),
        "state": str(State.PENDING),
        "certified": True,
        "campaign_id": job.campaign_id,
        "job_key": job.key,
        "row": job.row,
        "attempt": job.attempt,
        "values": dict(job.values) if job.values is not None else None,
        "created_at": now,
        "updated_at": now,
        "mailbox": job.mailbox,
        state_stamp(State.PENDING): now,
        "receipts": {},
    }
    return head, row

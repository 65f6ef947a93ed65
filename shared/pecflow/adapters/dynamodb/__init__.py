"""DynamoDB adapters: mailboxes and their cursors, message records, outgoing messages.

Table layout (template.yaml is the source of truth for names and indexes):
- Mailboxes (address, item): item "config" holds MailboxConfig and the poll status;
  "cursor#<folder>" holds the folder's Cursor.
- Messages (mailbox, message): one record per distinct raw message per mailbox, message =
  "sha256:<hex>" so a message fetched twice (crash, UIDVALIDITY change) is recorded once.
  No index by date: a period's readers read the mailbox's keys and sort them (received_keys);
  sparse index Unmatched (unmatched_mailbox, received_key) lists receipts whose original is
  unknown; sparse index Quarantined
  (quarantined_mailbox, received_key) lists messages whose processing failed (archived, recorded
  as a bounded summary with the reason). Partition "<mailbox>#uids" holds the mailbox's UID map
  (item "<folder>#<uidvalidity>#<first UID>" per fetched batch: its UIDs still on the provider,
  each with its message's SHA-256), what the saturation guard reads.
- Outgoing (message_id, recipient): "#message" describes one message we sent (mailbox,
  subject, identificativo once accepted, campaign); one row per recipient carries the job
  state and every receipt about it. Sparse index ByIdentificativo (identificativo) finds a
  message from the provider's id (replies, SdI PecMessageId).
Every state change is a conditional write; counters move in the same transaction. A job's move
is conditional on the exact state its counter deltas were computed from: when the job moved
meanwhile it is read again and the move applied from there, if allowed (the counters stay exact).
A write DynamoDB refuses for contention (a transaction cancelled by `TransactionConflict` on the
campaign item every job's counters share, or by throttling; `TransactionConflictException`) is
tried again a few times, then raised: only `ConditionalCheckFailed` means "the condition did not
hold".
"""

from pecflow.adapters.dynamodb._common import (
    CONFLICT_ATTEMPTS,
    MOVE_ATTEMPTS,
    Conflict,
    is_service_failure,
    write_refusal,
)
from pecflow.adapters.dynamodb.campaigns import CampaignStore
from pecflow.adapters.dynamodb.mailboxes import MailboxStore
from pecflow.adapters.dynamodb.messages import MessageStore, record_key
from pecflow.adapters.dynamodb.outgoing import OutgoingStore

__all__ = [
    "CONFLICT_ATTEMPTS",
    "MOVE_ATTEMPTS",
    "CampaignStore",
    "Conflict",
    "MailboxStore",
    "MessageStore",
    "OutgoingStore",
    "is_service_failure",
    "record_key",
    "write_refusal",
]

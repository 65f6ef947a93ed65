"""Races and contention on the DynamoDB stores, run once on each fake of tests/fakes.py and once on
its adapter on moto (as test_fakes_contract.py does), so the two keep the same behaviour.

- A job that moved between the caller's read and the write: the write is conditional on the
  exact state (and certified flag) the campaign counters were computed from; when that state
  changed, the job is read again and the move applied from where it is, if it is allowed there.
  The counters stay exact.
- A transaction cancelled for contention (`TransactionConflict` on the campaign counters item
  every job shares, `ThrottlingError`...) or a single write refused with
  `TransactionConflictException` is tried again a few times, then raised; it is never read as
  "the condition did not hold". moto never cancels a transaction for contention, so on moto the
  store's boto3 client and table are wrapped (`interfere_with`) to raise, for the next writes,
  the ClientError DynamoDB answers (`fakes.contention_error`: its code, message and
  `CancellationReasons`). The fake has the same hook (`FakeOutgoingStore.interfere`).
- A mailbox configuration is stored under its address in lower case, as every read looks it up.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pecflow.adapters.dynamodb import CampaignStore, MailboxStore, OutgoingStore
from pecflow.adapters.dynamodb import _common as dynamodb  # the shared write and refusal logic
from pecflow.domain.mailbox import MailboxConfig
from pecflow.domain.reconcile import (
    CANCEL,
    CLAIM,
    SMTP_ACCEPTED,
    SMTP_FAILED,
    Job,
    State,
    move_for_receipt,
)
from pecflow.pec import kinds
from tests import fakes

_ids = itertools.count(1)


# --- DynamoDB under contention, as moto cannot show it ----------------------------------------------
class _Interfering:
    """A boto3 client or Table whose next writes (transact_write_items, update_item) raise what
    DynamoDB raises under contention (`fakes.contention_error`, the error the fake raises);
    everything else goes to the real one."""

    def __init__(self, real: Any, plan: list[str], calls: list[str]):
        self._real, self._plan, self._calls = real, plan, calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def transact_write_items(self, **request: Any) -> Any:
        self._calls.append("transaction")
        if self._plan:
            raise fakes.contention_error(self._plan.pop(0), transaction=True)
        return self._real.transact_write_items(**request)

    def update_item(self, **request: Any) -> Any:
        if "ConditionExpression" in request:  # a move's own write (a receipt alone has none)
            self._calls.append("update")
            if self._plan:
                raise fakes.contention_error(self._plan.pop(0), transaction=False)
        return self._real.update_item(**request)


def interfere_with(store: OutgoingStore, reasons: list[str]) -> list[str]:
    """The store's next move writes are refused, one per reason; returns the calls seen."""
    plan, calls = list(reasons), []
    store.client = _Interfering(store.client, plan, calls)
    store.table = _Interfering(store.table, plan, calls)
    return calls


@dataclass
class Stores:
    name: str
    mailboxes: Any
    outgoing: Any
    campaigns: Any
    interfere: Any  # reasons -> the store's next move writes refused, one per reason


@pytest.fixture(params=["fake", "moto"])
def stores(request, monkeypatch) -> Stores:
    monkeypatch.setattr(dynamodb, "CONFLICT_BACKOFF_SECONDS", 0.0)
    if request.param == "fake":
        campaigns = fakes.FakeCampaignStore()
        outgoing = fakes.FakeOutgoingStore(campaigns)
        return Stores("fake", fakes.FakeMailboxStore(), outgoing, campaigns, outgoing.interfere)
    aws = request.getfixturevalue("moto_stack")
    ddb = aws.resource("dynamodb")
    outgoing = OutgoingStore(
        aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")
    )
    return Stores(
        "moto",
        MailboxStore(aws.physical("MailboxesTable"), ddb),
        outgoing,
        CampaignStore(aws.physical("CampaignsTable"), ddb),
        lambda reasons: interfere_with(outgoing, reasons),
    )


@pytest.fixture
def uid() -> str:
    return f"race{next(_ids)}"


def _one_job(stores: Stores, uid: str, *, campaign_item: bool = True) -> tuple[str, Job]:
    """A campaign of one pending job (counters: total 1, to_send 1), or a job of a campaign
    whose item does not exist."""
    campaign = f"camp-{uid}"
    if campaign_item:
        stores.campaigns.create(campaign, {"status": "sending"})
        stores.campaigns.start_counting(campaign, 1)
    message_id = f"<pecflow.{uid}.2.1@pec.test>"
    created = stores.outgoing.add_jobs(
        [
            {
                "message_id": message_id,
                "recipient": "Dest@pec.beta.test",
                "mailbox": "ufficio@pec.test",
                "campaign_id": campaign,
                "row": 2,
                "attempt": 1,
                "values": {"nome": "Ditta"},
            }
        ]
    )
    assert created == 1
    return message_id, Job("dest@pec.beta.test", State.PENDING, True, campaign)


def _as(job: Job, state: State, certified: bool = True) -> Job:
    return Job(job.address, state, certified, job.campaign_id)


def _counters(stores: Stores, job: Job) -> dict[str, int]:
    counters = stores.campaigns.counters(job.campaign_id)
    return {name: value for name, value in counters.items() if value}


ACCETTAZIONE = move_for_receipt(kinds.ACCETTAZIONE)
CONSEGNA = move_for_receipt(kinds.AVVENUTA_CONSEGNA)


# --- 1. the counters follow the state the job was really in -----------------------------------------
def test_a_receipt_computed_from_a_stale_state_moves_the_counters_from_the_real_one(stores, uid):
    """The reported drift: a poller reads the job `sending`, the sender records SMTP_ACCEPTED
    (`sent`), then the poller applies the accettazione computed from `sending`."""
    out = stores.outgoing
    msgid, pending = _one_job(stores, uid)
    assert out.try_move(msgid, pending, CLAIM)
    read_by_poller = _as(pending, State.SENDING)
    assert out.try_move(msgid, read_by_poller, SMTP_ACCEPTED)
    after = out.apply(msgid, read_by_poller, ACCETTAZIONE, receipt_id="r1", receipt={"kind": "accettazione"})
    assert after == State.ACCEPTED
    job = out.job(msgid)
    assert job.state == "accepted" and sorted(job.receipts) == ["r1"]
    assert _counters(stores, pending) == {"total": 1, "sent": 1, "waiting": 1, "accepted": 1}


def test_try_move_says_this_write_made_the_move_after_reading_the_job_again(stores, uid):
    out = stores.outgoing
    msgid, pending = _one_job(stores, uid)
    assert out.try_move(msgid, pending, CLAIM)
    # read as pending; claimed meanwhile: SMTP_FAILED is allowed from sending too, so it applies
    assert out.try_move(msgid, pending, SMTP_FAILED, also_set={"error": "refused"})
    assert out.job(msgid).state == "error" and out.job(msgid).error == "refused"
    assert _counters(stores, pending) == {"total": 1, "errors": 1}
    # read as pending; now an error: CANCEL is not allowed from there, nothing moves
    assert not out.try_move(msgid, pending, CANCEL)
    assert out.apply(msgid, pending, CANCEL) == State.ERROR
    assert _counters(stores, pending) == {"total": 1, "errors": 1}


def test_a_move_no_longer_allowed_is_refused_and_counts_nothing(stores, uid):
    out = stores.outgoing
    msgid, pending = _one_job(stores, uid)
    out.try_move(msgid, pending, CLAIM)
    out.try_move(msgid, _as(pending, State.SENDING), SMTP_ACCEPTED)
    read_as_sent = _as(pending, State.SENT)
    assert out.apply(msgid, read_as_sent, CONSEGNA, receipt_id="c1", receipt={"kind": "consegna"}) == (
        State.DELIVERED
    )
    late = out.apply(msgid, read_as_sent, ACCETTAZIONE, receipt_id="a1", receipt={"kind": "accettazione"})
    assert late == State.DELIVERED, "answers the state the job is in"
    assert sorted(out.job(msgid).receipts) == ["a1", "c1"], "the receipt is recorded all the same"
    assert _counters(stores, pending) == {"total": 1, "sent": 1, "accepted": 1, "delivered": 1}


def test_the_certified_flag_the_counters_came_from_is_part_of_the_condition(stores, uid):
    """An accettazione tells (on another poller) that the recipient is external: its job is then
    counted without `waiting`. A consegna computed from the job as it was before must not
    take `waiting` (and `only_sent`) down a second time."""
    out = stores.outgoing
    msgid, pending = _one_job(stores, uid)
    out.try_move(msgid, pending, CLAIM)
    out.try_move(msgid, _as(pending, State.SENDING), SMTP_ACCEPTED)
    read_as_sent = _as(pending, State.SENT)
    assert out.apply(msgid, read_as_sent, ACCETTAZIONE, certified=False) == State.ACCEPTED
    assert _counters(stores, pending) == {"total": 1, "sent": 1, "accepted": 1}
    assert out.apply(msgid, read_as_sent, CONSEGNA) == State.DELIVERED
    assert out.jobs(msgid) == [Job(pending.address, State.DELIVERED, False, pending.campaign_id)]
    assert _counters(stores, pending) == {"total": 1, "sent": 1, "accepted": 1, "delivered": 1}


# --- 2. contention is retried, then raised: never "the condition did not hold" --------------------
def test_a_transaction_cancelled_by_a_conflict_is_tried_again(stores, uid):
    out = stores.outgoing
    msgid, pending = _one_job(stores, uid)
    assert out.try_move(msgid, pending, CLAIM)
    sending = _as(pending, State.SENDING)
    calls = stores.interfere(["TransactionConflict", "ThrottlingError"])
    assert out.try_move(msgid, sending, SMTP_ACCEPTED, also_set={"smtp_answer": "250 ok"})
    assert calls == ["transaction"] * 3, "two cancelled, the third written"
    assert out.job(msgid).state == "sent"
    assert _counters(stores, pending) == {"total": 1, "sent": 1, "only_sent": 1, "waiting": 1}


def test_a_conflict_that_persists_is_raised_and_nothing_moves(stores, uid):
    out = stores.outgoing
    msgid, pending = _one_job(stores, uid)
    out.try_move(msgid, pending, CLAIM)
    calls = stores.interfere(["TransactionConflict"] * 50)
    with pytest.raises(ClientError) as error:
        out.try_move(msgid, _as(pending, State.SENDING), SMTP_ACCEPTED)
    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert 1 < len(calls) < 50, "a bounded number of tries"
    assert out.job(msgid).state == "sending"
    assert _counters(stores, pending) == {"total": 1, "to_send": 1}


def test_a_single_write_refused_by_another_transaction_is_tried_again(stores, uid):
    """CLAIM moves no counter: it is one conditional update, which DynamoDB refuses with
    TransactionConflictException while a transaction holds the job's item."""
    out = stores.outgoing
    msgid, pending = _one_job(stores, uid)
    calls = stores.interfere(["TransactionConflict"])
    assert out.try_move(msgid, pending, CLAIM, also_set={"claimed_at": "t1"})
    assert calls == ["update", "update"], "refused once, then written"
    assert out.job(msgid).state == "sending" and out.job(msgid).claimed_at == "t1"
    assert not out.try_move(msgid, pending, CLAIM), "claimed once"


def test_a_transaction_cancelled_for_invalid_data_is_raised(stores, uid):
    """A cancellation reason other than ConditionalCheckFailed or contention (a ValidationError:
    e.g. a campaign item without its counters) is an error, not a refused move."""
    out = stores.outgoing
    msgid, pending = _one_job(stores, uid)
    out.try_move(msgid, pending, CLAIM)
    stores.interfere(["ValidationError"])
    with pytest.raises(ClientError):
        out.try_move(msgid, _as(pending, State.SENDING), SMTP_ACCEPTED)
    assert out.job(msgid).state == "sending"


def test_a_move_that_cannot_be_counted_is_raised_not_refused(stores, uid):
    """A job of a campaign whose item is missing: the counter half of the move's transaction has
    no document to add to (DynamoDB cancels with a ValidationError, moto raises a
    ValidationException). An error, not "the job moved meanwhile"."""
    out = stores.outgoing
    msgid, pending = _one_job(stores, uid, campaign_item=False)
    assert out.try_move(msgid, pending, CLAIM), "pending to sending counts nothing: no transaction"
    with pytest.raises(ClientError):
        out.try_move(msgid, _as(pending, State.SENDING), SMTP_ACCEPTED)
    assert out.job(msgid).state == "sending"


def test_only_a_failed_condition_is_a_refusal():
    refusal = dynamodb.write_refusal
    condition = ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "UpdateItem")
    assert refusal(condition) == "condition"
    assert refusal(fakes.transaction_cancelled("ConditionalCheckFailed", "None")) == "condition"
    for reason in ("TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"):
        assert refusal(fakes.transaction_cancelled("None", reason)) == "contention", reason
        assert refusal(fakes.transaction_cancelled("ConditionalCheckFailed", reason)) == "contention"
    assert refusal(fakes.contention_error("TransactionConflict", transaction=False)) == "contention"
    assert refusal(fakes.transaction_cancelled("None", "ValidationError")) is None
    assert refusal(fakes.transaction_cancelled("ConditionalCheckFailed", "ValidationError")) is None
    assert refusal(ClientError({"Error": {"Code": "ValidationException"}}, "UpdateItem")) is None
    # a response that kept only the message: the reasons are read from it
    bare = fakes.transaction_cancelled("TransactionConflict", "None")
    del bare.response["CancellationReasons"]
    assert dynamodb.cancellation_reasons(bare) == ["TransactionConflict", "None"]
    assert refusal(bare) == "contention"
    unknown = ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "?"}}, "X")
    assert dynamodb.cancellation_reasons(unknown) == [] and refusal(unknown) is None


# --- 3. mailbox addresses ----------------------------------------------------------------------------
def test_a_mailbox_configured_with_capitals_is_found_under_any_case(stores, uid):
    store = stores.mailboxes
    config = MailboxConfig(f"Ufficio.{uid}@PEC.Azienda.test", "imap.pec.test")
    store.put(config)
    lower = config.address.lower()
    assert store.get(lower) == config and store.get(config.address) == config
    assert store.get_with_status(config.address.upper()) == (config, {})
    store.record_poll(config.address, ok=False, error_kind="auth", error="refused")
    assert store.status(lower)["error_kind"] == "auth"
    store.set_enabled(config.address, False)
    assert store.get(lower).enabled is False
    store.put(MailboxConfig(lower, "imap2.pec.test"))  # the same mailbox, written again
    mine = [c for c in store.list() if uid in c.address.lower()]
    assert [c.imap_host for c in mine] == ["imap2.pec.test"], "one mailbox, not two"
    assert store.status(config.address)["error_kind"] == "auth", "its status kept"

"""The fakes of tests/fakes.py against their adapters: the same scenarios, run once on each fake and
once on the real adapter on moto, so a fake cannot drift from what the services meet in production.

A handful of behaviours per port: conditional transitions refused when the state changed,
idempotent re-records, counters moved once, values cleaned as DynamoDB keeps them, errors where
the adapter raises them. One moto stack serves the whole module (each test uses its own keys).
Where moto itself differs from AWS the scenario says so and is left out (see the fakes).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pecflow.adapters.archive import Archive
from pecflow.adapters.campaign_files import CampaignPackage
from pecflow.adapters.dynamodb import CampaignStore, Conflict, MailboxStore, MessageStore, OutgoingStore
from pecflow.adapters.dynamodb.campaigns import counters_key
from pecflow.adapters.queues import SqsQueue
from pecflow.adapters.ratelimit import RateLimiter
from pecflow.domain.mailbox import Cursor, MailboxConfig
from pecflow.domain.ports import ArchiveError, PackageChanged
from pecflow.domain.quota import QuotaPolicy
from pecflow.domain.reconcile import (
    CLAIM,
    COUNTERS,
    SMTP_ACCEPTED,
    SMTP_FAILED,
    SMTP_RETRY,
    Job,
    Move,
    State,
    move_for_receipt,
)
from pecflow.domain.records import SENDING_ONLY
from pecflow.pec import kinds
from pecflow.services.polling import PollRequest
from tests import fakes

_ids = itertools.count(1)


@dataclass
class Ports:
    """One implementation of the ports under test, and what can happen behind their back."""

    name: str
    mailboxes: Any
    messages: Any
    outgoing: Any
    campaigns: Any
    archive: Any
    limiter_for: Any  # policy -> a rate limiter
    files_for: Any  # campaign id -> its files
    upload: Any  # (campaign id, name, bytes) -> a new version of a campaign file
    corrupt: Any  # (key, bytes): other bytes under the stored checksum
    overwrite: Any  # (key, bytes): a new version, other bytes with their own checksum
    delete: Any  # key: a delete marker
    poll_queue: Any  # the FIFO poll queue
    drain: Any  # () -> the bodies on the poll queue, taken off it
    unrow: Any  # campaign id -> its item without row_counters, as created before they were kept


def _fake_ports() -> Ports:
    campaigns = fakes.FakeCampaignStore()
    archive = fakes.FakeArchive()
    files: dict[str, fakes.FakeCampaignFiles] = {}

    def files_for(campaign_id):
        return files.setdefault(campaign_id, fakes.FakeCampaignFiles(campaign_id))

    queue = fakes.FakeQueue()

    def unrow(campaign_id):
        campaigns.items[campaign_id].pop("row_counters")

    return Ports(
        "fake",
        fakes.FakeMailboxStore(),
        fakes.FakeMessageStore(),
        fakes.FakeOutgoingStore(campaigns),
        campaigns,
        archive,
        lambda policy: fakes.FakeRateLimiter(policy=policy),
        files_for,
        lambda campaign_id, name, body: files_for(campaign_id).replace(name, body),
        archive.corrupt,
        archive.overwrite,
        archive.delete,
        queue,
        queue.bodies,
        unrow,
    )


def _moto_ports(aws) -> Ports:
    ddb, s3 = aws.resource("dynamodb"), aws.client("s3")
    archive = Archive(aws.physical("ArchiveBucket"), s3)
    bucket, campaign_bucket = archive.bucket, aws.physical("CampaignBucket")

    def corrupt(key, body):
        stored = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")["ChecksumSHA256"]
        s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256", ChecksumSHA256=stored)

    sqs, url = aws.client("sqs"), aws.url("PollQueue")

    def drain():
        bodies = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def upload(campaign_id, name, body):
        return s3.put_object(Bucket=campaign_bucket, Key=f"campaigns/{campaign_id}/{name}", Body=body)[
            "VersionId"
        ]

    return Ports(
        "moto",
        MailboxStore(aws.physical("MailboxesTable"), ddb),
        MessageStore(aws.physical("MessagesTable"), ddb),
        OutgoingStore(aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")),
        CampaignStore(aws.physical("CampaignsTable"), ddb),
        archive,
        lambda policy: RateLimiter(aws.physical("QuotaTable"), lambda m: policy, dynamodb=ddb),
        lambda campaign_id: CampaignPackage(s3, campaign_bucket, campaign_id),
        upload,
        corrupt,
        lambda key, body: s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256"),
        lambda key: s3.delete_object(Bucket=bucket, Key=key),
        SqsQueue(url, sqs),
        drain,
        lambda campaign_id: as_of_old(ddb.Table(aws.physical("CampaignsTable")), campaign_id),
    )


def as_of_old(table, campaign_id: str) -> None:
    """A campaign as counted before the row counters were kept, and before the counters had an
    item of their own: its counters on its item, without row_counters."""
    counted = table.get_item(Key=counters_key(campaign_id))["Item"]
    table.delete_item(Key=counters_key(campaign_id))
    table.update_item(
        Key={"campaign_id": campaign_id},
        UpdateExpression="SET counters = :c REMOVE row_counters",
        ExpressionAttributeValues={":c": counted["counters"]},
    )


@pytest.fixture(params=["fake", "moto"])
def ports(request) -> Ports:
    if request.param == "fake":
        return _fake_ports()
    return _moto_ports(request.getfixturevalue("moto_stack"))


@pytest.fixture
def uid() -> str:
    """A token of this test's own: keys no other test in the shared stack uses."""
    return f"k{next(_ids)}"


def _validation_error(error: pytest.ExceptionInfo) -> bool:
    return error.value.response["Error"]["Code"] == "ValidationException"


# --- MailboxStore ----------------------------------------------------------------------------------------
def test_mailbox_registry(ports, uid):
    store = ports.mailboxes
    on = MailboxConfig(f"b{uid}@pec.test", "imap.pec.test", folders=("INBOX", "Ricevute"))
    off = MailboxConfig(f"a{uid}@pec.test", "imap.pec.test", enabled=False)
    store.put(on)
    store.put(off)
    assert store.get(f"B{uid}@PEC.TEST") == on
    assert store.get(f"nobody{uid}@pec.test") is None
    mine = [c.address for c in store.list() if uid in c.address]
    assert mine == [off.address, on.address]
    assert off.address not in [c.address for c in store.list(enabled_only=True)]
    store.set_enabled(off.address, True)
    assert store.get(off.address).enabled
    store.put(on)  # put again: the status is kept
    with pytest.raises(KeyError):
        store.set_enabled(f"nobody{uid}@pec.test", True)
    config, status = store.get_with_status(on.address)
    assert config == on and status == {}
    assert store.get_with_status(f"nobody{uid}@pec.test") == (None, {})


def test_poll_status_counts_failures_and_quarantines(ports, uid):
    store = ports.mailboxes
    address = f"m{uid}@pec.test"
    store.put(MailboxConfig(address, "imap.pec.test"))
    store.record_poll(address, ok=False, error_kind="auth", error="login refused")
    store.record_poll(address, ok=False, error="")
    status = store.status(address)
    assert (status["error_kind"], status["last_error"], status["consecutive_failures"]) == (
        "error",
        "unknown error",
        2,
    )
    store.note_quarantine(address, uid=3, sha256="ab" * 32, reason="record: broken")
    store.note_quarantine(address, uid=4, sha256="cd" * 32, reason="x" * 2000)
    store.record_poll(address, ok=True, usage={"percent": 42.5, "kb": 10.0}, fetched=3)
    status = store.status(address)
    assert "last_error" not in status and "error_kind" not in status and "last_error_at" in status
    assert status["consecutive_failures"] == 0 and status["last_fetched"] == 3
    assert status["usage"] == {"percent": 42.5, "kb": 10}, "whole floats come back as ints"
    assert status["quarantined"] == 2
    assert status["last_quarantined"]["uid"] == 4 and len(status["last_quarantined"]["reason"]) == 1000
    store.put(MailboxConfig(address, "imap2.pec.test"))
    assert store.status(address)["quarantined"] == 2, "a new configuration keeps the status"


def test_status_of_an_unknown_mailbox_cannot_be_written(ports, uid):
    with pytest.raises(ClientError) as error:
        ports.mailboxes.record_poll(f"ghost{uid}@pec.test", ok=False, error="x")
    assert _validation_error(error)
    with pytest.raises(ClientError) as error:
        ports.mailboxes.note_quarantine(f"ghost{uid}@pec.test", uid=1, sha256="a", reason="r")
    assert _validation_error(error)
    assert ports.mailboxes.status(f"ghost{uid}@pec.test") == {}


def test_cursor_moves_forward_only_within_a_uidvalidity(ports, uid):
    store = ports.mailboxes
    address = f"c{uid}@pec.test"
    assert store.get_cursor(address, "INBOX") == Cursor("INBOX")
    store.save_cursor(address, Cursor("INBOX", 5, 10).started(11))
    assert store.get_cursor(address.upper(), "INBOX") == Cursor("INBOX", 5, 10, None, None, 11, 1)
    store.save_cursor(address, Cursor("INBOX", 5, 10).started(11).started(11))
    assert store.get_cursor(address, "INBOX").attempts == 2
    store.save_cursor(address, Cursor("INBOX", 5, 12, 13, 99))
    assert store.get_cursor(address, "INBOX") == Cursor("INBOX", 5, 12, 13, 99)
    with pytest.raises(Conflict):
        store.save_cursor(address, Cursor("INBOX", 5, 11))
    assert store.get_cursor(address, "INBOX").last_uid == 12, "a refused cursor changes nothing"
    store.save_cursor(address, Cursor("INBOX", 6, 0))  # UIDVALIDITY changed: back to the start
    assert store.get_cursor(address, "INBOX") == Cursor("INBOX", 6, 0)
    assert store.get_cursor(address, "Ricevute") == Cursor("Ricevute"), "one cursor per folder"


# --- MessageStore ----------------------------------------------------------------------------------------
def _record(sha: str, uid: int = 3, **fields) -> dict:
    return {
        "sha256": sha,
        "uid": uid,
        "folder": "INBOX",
        "uidvalidity": 5,
        "received_key": f"2026-03-02T10:00:0{uid % 10}Z#{sha[:16]}",
        "kind": kinds.ACCETTAZIONE,
        **fields,
    }


def test_a_message_is_recorded_once(ports, uid):
    store = ports.messages
    box = f"r{uid}@pec.test"
    sha = "ab" * 32
    assert store.record(box, _record(sha)) is True
    assert store.record(box.upper(), _record(sha, uid=9, subject="again")) is False
    kept = store.get(box, sha)
    assert kept.uid == 3 and kept.subject is None, "the first record stays as it was"
    assert kept.mailbox == box and kept.key == f"sha256:{sha}" and kept.as_dict()["message"] == kept.key
    assert store.count(box) == 1 and store.count(f"other{uid}@pec.test") == 0
    assert store.get(box, "cd" * 32) is None


def test_records_are_kept_as_dynamodb_keeps_them(ports, uid):
    store = ports.messages
    box = f"v{uid}@pec.test"
    sha = "ef" * 32
    store.record(
        box,
        _record(
            sha,
            subject=None,
            to=[],
            cc=[],
            error="",
            sdi={},
            problems=["one"],
            size=12.0,
            ratio=0.25,
            attachments=[{"filename": "a.pdf", "content_type": None, "size": 3}],
            nested={"a": None, "b": ""},
        ),
    )
    kept = store.get(box, sha).as_dict()  # the item as stored
    for absent in ("subject", "to", "cc", "error", "sdi"):
        assert absent not in kept, absent
    assert kept["size"] == 12 and isinstance(kept["size"], int) and kept["ratio"] == 0.25
    assert kept["attachments"] == [{"filename": "a.pdf", "size": 3}]
    assert kept["nested"] == {}, "a map emptied by the cleaning is still written"
    store.set_fields(box, sha, {"reconciled": "matched", "outgoing_message_id": None, "problems": []})
    kept = store.get(box, sha)
    assert kept.reconciled == "matched" and kept.outgoing_message_id is None
    assert kept.problems == ["one"], "an empty list does not overwrite"


def test_sparse_indexes_list_what_they_should(ports, uid):
    store = ports.messages
    box = f"i{uid}@pec.test"
    shas = [f"{i:02d}" * 32 for i in range(1, 5)]
    for i, sha in enumerate(shas):
        store.record(box, _record(sha, uid=i + 1, subject=f"Pratica {i}"))
    store.set_fields(box, "99" * 32, {"kind": "x"})  # created by an update, with no received_key
    assert [r.sha256 for r in store.query(box)] == list(reversed(shas)), "newest first"
    assert store.query(box) == [store.get(box, sha) for sha in reversed(shas)], "whole records"
    assert [r.sha256 for r in store.query(box, newest_first=False, limit=2)] == shas[:2]
    store.set_fields(box, shas[1], {"unmatched_mailbox": box})
    store.set_fields(box, shas[2], {"quarantined_mailbox": box, "quarantined": {"stage": "record"}})
    assert [r.sha256 for r in store.query(box, index="Unmatched")] == [shas[1]]
    assert [r.sha256 for r in store.query(box, index="Quarantined")] == [shas[2]]
    store.set_fields(box, shas[1], {"reconciled": "matched"}, remove=["unmatched_mailbox"])
    assert store.query(box, index="Unmatched") == []
    assert store.get(box, shas[1]).reconciled == "matched"
    assert store.count(box) == 5


def test_the_uid_map_says_which_message_each_uid_is_and_keeps_only_what_is_still_there(ports, uid):
    store = ports.messages
    box = f"l{uid}@pec.test"
    sha = {n: f"{n:064x}" for n in range(1, 61)}
    store.record(box, _record(sha[1], uid=1))
    store.map_uids(box, "INBOX", 5, {n: sha[n] for n in range(1, 31)})  # a batch of 30: two items
    store.map_uids(box, "INBOX", 5, {n: sha[n] for n in range(31, 41)})
    store.map_uids(box, "INBOX", 5, {n: sha[n] for n in range(31, 41)})  # written again: harmless
    store.map_uids(box, "INBOX", 5, {35: sha[35]})  # read again one at a time after a crash
    store.map_uids(box, "INBOX", 6, {1: sha[50]})  # after a UIDVALIDITY change
    store.map_uids(box, "INBOX#5", 7, {2: sha[51]})  # a folder whose name runs into the key
    store.map_uids(box, "Ricevute", 5, {3: sha[52]})
    assert store.map_uids(box, "INBOX", 5, {}) is None

    def at(folder="INBOX", uidvalidity=5, uids=range(1, 100)):
        return {n: r.sha256 for n, r in store.at_location(box, folder, uidvalidity, list(uids)).items()}

    found = store.at_location(box, "INBOX", 5, [2, 26, 35, 40, 41, 99])
    assert {n: r.sha256 for n, r in found.items()} == {n: sha[n] for n in (2, 26, 35, 40)}
    one = found[26]
    assert (one.mailbox, one.folder, one.uidvalidity, one.uid) == (box, "INBOX", 5, 26)
    assert one.s3_key == f"messages/{sha[26][:2]}/{sha[26]}.eml"
    assert store.at_location(box, "INBOX", 5, []) == {}
    assert at(uidvalidity=6) == {1: sha[50]} and at("INBOX#5", 7) == {2: sha[51]}
    assert at("Ricevute") == {3: sha[52]} and at("Ricevute", 6) == {} and at("INBOX", 7) == {}
    # beside the records, not among them
    assert store.count(box) == 1 and [r.sha256 for r in store.every(box)] == [sha[1]]
    assert [r.sha256 for r in store.query(box)] == [sha[1]]
    store.unmap_uids(box, "INBOX", 5, [2, 26, 35])  # expunged: out of every item holding them
    kept = [n for n in range(1, 41) if n not in (2, 26, 35)]
    assert at() == {n: sha[n] for n in kept}
    store.unmap_uids(box, "INBOX", 5, range(31, 41))  # a whole batch moved away
    store.unmap_uids(box, "INBOX", 5, [])
    assert sorted(at()) == [n for n in kept if n <= 30]
    store.unmap_uids(box, "INBOX", 6)  # a UIDVALIDITY left behind: all of it
    assert at(uidvalidity=6) == {} and at("INBOX#5", 7) == {2: sha[51]} and at("Ricevute") == {3: sha[52]}


def test_a_record_over_dynamodbs_limit_is_refused_data_not_a_service_failure(ports, uid):
    store = ports.messages
    with pytest.raises(ClientError) as error:
        store.record(f"big{uid}@pec.test", _record("d4" * 32, subject="x" * 410_000))
    assert _validation_error(error) and not store.is_service_failure(error.value)
    assert store.get(f"big{uid}@pec.test", "d4" * 32) is None
    throttled = ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutItem")
    assert store.is_service_failure(throttled) and store.is_service_failure(ConnectionResetError())
    assert not store.is_service_failure(ValueError("parser"))


# --- OutgoingStore ------------------------------------------------------------------------------------------
def test_a_message_is_registered_once_and_found_by_its_identificativo(ports, uid):
    store = ports.outgoing
    msgid = f"<{uid}@pec.azienda.test>"
    assert store.register(msgid, mailbox="Ufficio@PEC.test", recipients=["B@x.test", "a@x.test"], subject="S")
    assert not store.register(msgid, mailbox="ufficio@pec.test", recipients=["c@x.test"])
    head, jobs = store.message_and_jobs(msgid)
    assert head["mailbox"] == "ufficio@pec.test" and head["recipients"] == ["b@x.test", "a@x.test"]
    assert jobs == [Job("a@x.test", State.SENT), Job("b@x.test", State.SENT)], "in recipient order"
    assert store.jobs(msgid) == jobs and store.message(msgid) == head
    view = store.view(msgid)
    assert [j["receipts"] for j in view["jobs"]] == [{}, {}] and "at_sent" in view["jobs"][0]
    assert store.job(msgid).recipient == "a@x.test" and store.job(msgid).head == head
    store.set_identificativo(msgid, f"opec.{uid}")
    store.set_identificativo(msgid, "another")
    assert store.message(msgid)["identificativo"] == f"opec.{uid}", "the first identificativo stays"
    assert store.by_identificativo(f"opec.{uid}") == msgid and store.by_identificativo("another") is None
    assert store.view(f"<none{uid}>") is None and store.job(f"<none{uid}>") is None
    assert store.message_and_jobs(f"<none{uid}>") == (None, [])


def _jobs(uid: str, n: int, campaign: str) -> list[dict]:
    return [
        {
            "message_id": f"<pecflow.{uid}.{row}.1@pec.test>",
            "recipient": f"C{row}@pec.beta.test",
            "mailbox": "ufficio@pec.test",
            "campaign_id": campaign,
            "row": row,
            "attempt": 1,
            "values": {"nome": f"Ditta {row}", "vuoto": ""},
        }
        for row in range(2, n + 2)
    ]


def test_jobs_are_created_once_and_never_rewritten(ports, uid):
    store = ports.outgoing
    campaign = f"camp-{uid}"
    ports.campaigns.create(campaign, {"status": "sending"})
    jobs = _jobs(uid, 3, campaign)
    assert store.add_jobs(jobs[:2]) == 2
    first = jobs[0]["message_id"]
    recipient = Job("c2@pec.beta.test", State.PENDING, True, campaign)
    assert store.try_move(first, recipient, CLAIM, also_set={"claimed_at": "t1"})
    assert store.add_jobs(jobs) == 1, "only the new one"
    assert store.add_jobs(jobs) == 0 and store.add_jobs([]) == 0
    job = store.job(first)
    assert job.state == "sending" and job.claimed_at == "t1", "a job that moved on is not rewritten"
    assert job.values == {"nome": "Ditta 2"} and job.job_key == "000000002#001"
    assert job.head["recipients"] == ["C2@pec.beta.test"], "the head keeps the address as given"
    listed = list(store.campaign_jobs(campaign))
    assert [j.row for j in listed] == [2, 3, 4] and all(j.recipient != "#message" for j in listed)


def test_transitions_are_refused_when_the_state_changed(ports, uid):
    store = ports.outgoing
    campaign = f"camp-{uid}"
    ports.campaigns.create(campaign, {"status": "sending"})
    ports.campaigns.start_counting(campaign, 1)
    [job] = _jobs(uid, 1, campaign)
    store.add_jobs([job])
    msgid, pending = job["message_id"], Job("c2@pec.beta.test", State.PENDING, True, campaign)
    assert store.try_move(msgid, pending, CLAIM, also_set={"claimed_at": "t1", "slot_at": 0})
    assert not store.try_move(msgid, pending, CLAIM, also_set={"claimed_at": "t2"}), "claimed once"
    assert store.apply(msgid, pending, CLAIM) == State.SENDING, "a refused move answers the state now"
    sending = Job(pending.address, State.SENDING, True, campaign)
    assert not store.try_move(msgid, sending, SMTP_RETRY, only_if={"claimed_at": "t0"}), "another claim"
    assert not store.try_move(msgid, sending, SMTP_RETRY, only_if={"claimed_at": None}), "claimed_at is set"
    assert store.job(msgid).claimed_at == "t1" and store.job(msgid).slot_at == 0
    # a move that does not apply to the state the caller read is not even tried
    assert store.apply(msgid, pending, SMTP_ACCEPTED) == State.PENDING
    assert store.try_move(
        msgid, sending, SMTP_ACCEPTED, only_if={"claimed_at": "t1"}, also_set={"smtp_answer": "250 ok"}
    )
    job_now = store.job(msgid)
    assert job_now.state == "sent" and job_now.smtp_answer == "250 ok" and State.SENT in job_now.reached_at
    assert job_now.last_reason == SMTP_ACCEPTED.reason
    assert store.try_move(
        msgid,
        Job(pending.address, State.SENT, True, campaign),
        Move(State.ERROR, frozenset({State.SENT}), "t"),
    )
    counters = ports.campaigns.counters(campaign)
    assert (counters["to_send"], counters["sent"], counters["errors"]) == (0, 0, 1), "each move counted once"
    assert not store.try_move(f"<ghost{uid}>", pending, CLAIM), "no job, no move"


def test_a_move_past_sending_leaves_behind_what_only_sending_needed(ports, uid):
    """The claim, the submitting claim, the quota slot and the last failure matter only while a job
    is pending or sending: the move past them removes them (a row under 1 KB, one write unit),
    unless the move sets one itself; what was sent (its archived copy, its size) stays."""
    store = ports.outgoing
    campaign = f"camp-{uid}"
    ports.campaigns.create(campaign, {"status": "sending"})
    ports.campaigns.start_counting(campaign, 2)
    one, two = _jobs(uid, 2, campaign)
    store.add_jobs([one, two])
    msgid, pending = one["message_id"], Job("c2@pec.beta.test", State.PENDING, True, campaign)
    sending = replace(pending, state=State.SENDING)
    store.set_job_fields(msgid, pending.address, {"last_failure": "t0 OSError: reset"})
    assert store.reserve_slot(msgid, pending.address, 1234.5)
    assert store.try_move(msgid, pending, CLAIM, also_set={"claimed_at": "t1", "slot_at": 0})
    store.set_job_fields(msgid, pending.address, {"submitting_claim": "t1", "sent_s3_key": "k", "size": 9})
    assert store.try_move(msgid, sending, SMTP_RETRY, only_if={"claimed_at": "t1"})
    job = store.job(msgid)
    assert (job.claimed_at, job.submitting_claim, job.slot_at) == ("t1", "t1", 0), "back to pending: all kept"
    assert store.try_move(msgid, pending, CLAIM, also_set={"claimed_at": "t2", "slot_at": 0})
    assert store.try_move(msgid, sending, SMTP_ACCEPTED, also_set={"smtp_answer": "250 ok"})
    [row] = store.view(msgid)["jobs"]
    assert not set(SENDING_ONLY) & set(row), "past sending: gone"
    assert (row["sent_s3_key"], row["size"], row["smtp_answer"]) == ("k", 9, "250 ok")
    assert {"at_pending", "at_sending", "at_sent"} <= set(row) and "created_at" not in row
    # a move that sets one of them keeps it (and removes the others in the same write)
    msgid2 = two["message_id"]
    store.set_job_fields(msgid2, "c3@pec.beta.test", {"last_failure": "t0 boom", "claimed_at": "t1"})
    other = Job("c3@pec.beta.test", State.PENDING, True, campaign)
    assert store.try_move(msgid2, other, SMTP_FAILED, also_set={"slot_at": 0}, also_remove=("last_failure",))
    kept = store.job(msgid2)
    assert (
        kept.state == "error" and kept.slot_at == 0 and kept.claimed_at is None and kept.last_failure is None
    )


def test_a_receipt_is_kept_on_the_job_as_its_entry(ports, uid):
    """What a job's row keeps of a receipt (records.receipt_entry): no copy of what its own record
    says (its type; the recipient when it is the job's; the recording time when it has one)."""
    store = ports.outgoing
    msgid = f"<k{uid}@pec.azienda.test>"
    store.register(msgid, mailbox="u@pec.test", recipients=["a@x.test"])
    a = Job("a@x.test", State.SENT)
    at = "2026-03-02T09:00:00+01:00"
    consegna = {"kind": kinds.AVVENUTA_CONSEGNA, "at": at, "delivered_to": "a@x.test", "error": None,
                "error_detail": None, "receipt_type": "completa"}  # fmt: skip
    delivered = move_for_receipt(kinds.AVVENUTA_CONSEGNA)
    assert store.apply(msgid, a, delivered, receipt_id="r1", receipt=consegna) == State.DELIVERED
    done = replace(a, state=State.DELIVERED)
    store.apply(msgid, done, None, receipt_id="r2", receipt={**consegna, "delivered_to": "A@X.test"})
    store.apply(msgid, done, None, receipt_id="r3", receipt={"kind": "x", "at": None})
    receipts = store.job(msgid).receipts
    assert receipts["r1"] == {"kind": kinds.AVVENUTA_CONSEGNA, "at": at}
    assert receipts["r2"] == {"kind": kinds.AVVENUTA_CONSEGNA, "at": at, "delivered_to": "A@X.test"}
    assert set(receipts["r3"]) == {"kind", "recorded_at"}


def test_moves_count_a_grouped_jobs_rows_with_its_message(ports, uid):
    """group_by: each move of a job adds its deltas to the campaign's counters and, weighted by
    the CSV rows its message covers, to its row_counters, in the same write; a Job given with
    the wrong weight is read again, never counted wrong."""
    store, campaigns = ports.outgoing, ports.campaigns
    campaign = f"camp-{uid}"
    campaigns.create(campaign, {"status": "sending"})
    assert campaigns.start_counting(campaign, 2, 5)
    three, two = _jobs(uid, 2, campaign)
    three["rows"], two["rows"] = [2, 3, 4], [5, 6]
    made: list[str] = []
    assert store.add_jobs([three, two], created=made) == 2 and made == [
        three["message_id"],
        two["message_id"],
    ]
    a = Job("c2@pec.beta.test", State.PENDING, True, campaign, 3)
    assert store.jobs(three["message_id"]) == [a], "a job read knows the rows it covers"
    assert store.try_move(three["message_id"], a, CLAIM)
    assert store.try_move(three["message_id"], replace(a, state=State.SENDING), SMTP_ACCEPTED)
    unweighted = Job("c3@pec.beta.test", State.PENDING, True, campaign)  # rows=1: not as stored
    assert store.try_move(two["message_id"], unweighted, CLAIM)
    assert store.try_move(two["message_id"], replace(unweighted, state=State.SENDING), SMTP_FAILED)
    item = campaigns.get(campaign)
    assert item.counters == {**dict.fromkeys(COUNTERS, 0), "total": 2, "sent": 1, "only_sent": 1, "waiting": 1,
                             "errors": 1}  # fmt: skip
    assert item.row_counters == {**dict.fromkeys(COUNTERS, 0), "total": 5, "sent": 3, "only_sent": 3,
                                 "waiting": 3, "errors": 2}  # fmt: skip
    campaigns.add_jobs(campaign, 1, 2)  # a resend of the two-row job
    assert (
        campaigns.get(campaign).row_counters["to_send"] == 2 and campaigns.counters(campaign)["to_send"] == 1
    )
    assert campaigns.checkpoint(campaign, 7, 2, 0, 5) and campaigns.get(campaign).fanout_queued_rows == 5


def test_a_campaign_without_row_counters_moves_its_message_counters_alone(ports, uid):
    """A campaign created before the row counters were kept: its moves are written (the counters
    by message move as before), its item gets no partial row_counters, and the store notes it."""
    store, campaigns = ports.outgoing, ports.campaigns
    campaign = f"camp-{uid}"
    campaigns.create(campaign, {"status": "sending"})
    campaigns.start_counting(campaign, 1, 3)
    ports.unrow(campaign)
    [job] = _jobs(uid, 1, campaign)
    job["rows"] = [2, 3, 4]
    store.add_jobs([job])
    pending = Job("c2@pec.beta.test", State.PENDING, True, campaign, 3)
    assert store.try_move(job["message_id"], pending, CLAIM)
    assert store.try_move(job["message_id"], replace(pending, state=State.SENDING), SMTP_ACCEPTED)
    assert store.unrowed == {campaign}
    assert store.try_move(
        job["message_id"], replace(pending, state=State.SENT), Move(State.ERROR, frozenset({State.SENT}), "t")
    )
    campaigns.add_jobs(campaign, 1, 3)
    item = campaigns.get(campaign)
    assert item.row_counters is None
    assert (item.counters["total"], item.counters["to_send"], item.counters["sent"], item.counters["errors"]) == (
        2, 1, 0, 1,
    )  # fmt: skip


def test_receipts_are_recorded_once_whatever_the_move(ports, uid):
    store = ports.outgoing
    campaign = f"camp-{uid}"
    ports.campaigns.create(campaign, {"status": "sending"})
    msgid = f"<r{uid}@pec.azienda.test>"
    store.register(msgid, mailbox="u@pec.test", recipients=["a@x.test", "b@x.test"], campaign_id=campaign)
    a = Job("a@x.test", State.SENT, True, campaign)
    delivered = move_for_receipt(kinds.AVVENUTA_CONSEGNA)
    info = {"kind": kinds.AVVENUTA_CONSEGNA, "at": None, "error": None}
    assert store.apply(msgid, a, delivered, receipt_id="r1", receipt=info) == State.DELIVERED
    assert store.apply(msgid, a, delivered, receipt_id="r1", receipt={"kind": "other"}) == State.DELIVERED
    late = Job("a@x.test", State.DELIVERED, True, campaign)
    accepted = move_for_receipt(kinds.ACCETTAZIONE)
    assert store.apply(msgid, late, accepted, receipt_id="r2", receipt={"kind": "accettazione"}) == (
        State.DELIVERED
    )
    failed = move_for_receipt(kinds.ERRORE_CONSEGNA)
    b = Job("b@x.test", State.SENT, True, campaign)
    store.apply(msgid, b, failed, receipt_id="r3", receipt={"kind": "errore", "error_detail": "5.1.1 no"})
    jobs = {j["recipient"]: j for j in store.view(msgid)["jobs"]}
    receipts = jobs["a@x.test"]["receipts"]
    assert sorted(receipts) == ["r1", "r2"] and receipts["r1"]["kind"] == kinds.AVVENUTA_CONSEGNA
    assert "at" not in receipts["r1"] and "recorded_at" in receipts["r1"]
    assert jobs["a@x.test"]["at_accepted"] == jobs["a@x.test"]["at_delivered"], "delivered: accepted too"
    assert "at_accepted" not in jobs["b@x.test"]
    assert jobs["b@x.test"]["state"] == "delivery-failed" and jobs["b@x.test"]["error"] == "5.1.1 no"
    counters = ports.campaigns.counters(campaign)
    assert (counters["delivered"], counters["delivery_failures"], counters["accepted"]) == (1, 1, 1)
    with pytest.raises(ClientError) as error:  # a receipt for a job that does not exist
        store.apply(f"<ghost{uid}>", a, None, receipt_id="r9", receipt={"kind": "x"})
    assert _validation_error(error)


def _campaign_message(ports, uid: str, tag: str, recipient: str) -> tuple[str, Job]:
    """A message of a new campaign to one recipient, registered sent: its Message-ID and job."""
    campaign = f"camp-{uid}"
    ports.campaigns.create(campaign, {"status": "sending"})
    msgid = f"<{tag}{uid}@pec.azienda.test>"
    ports.outgoing.register(msgid, mailbox="u@pec.test", recipients=[recipient], campaign_id=campaign)
    return msgid, Job(recipient, State.SENT, True, campaign)


def test_a_move_carries_other_receipts_in_its_own_write(ports, uid):
    """An avvenuta consegna's write takes its accettazione along (`carried`): both receipts kept
    by the one move, the flag it sets; again, or on a job the move no longer applies to, the
    receipts alone, each only where absent."""
    store = ports.outgoing
    msgid, a = _campaign_message(ports, uid, "c", "a@x.test")
    campaign = a.campaign_id
    at = "2026-03-02T09:00:00+01:00"
    consegna = {"kind": kinds.AVVENUTA_CONSEGNA, "at": at, "delivered_to": "a@x.test"}
    accettazione = {"kind": kinds.ACCETTAZIONE, "at": at, "delivered_to": None}
    delivered = move_for_receipt(kinds.AVVENUTA_CONSEGNA)
    assert (
        store.apply(
            msgid,
            a,
            delivered,
            receipt_id="c1",
            receipt=consegna,
            certified=False,
            carried={"a1": accettazione},
        )
        == State.DELIVERED
    )
    job = store.job(msgid)
    assert job.receipts == {"c1": {"kind": kinds.AVVENUTA_CONSEGNA, "at": at},
                            "a1": {"kind": kinds.ACCETTAZIONE, "at": at}}  # fmt: skip
    assert State.ACCEPTED in job.reached_at and store.jobs(msgid) == [
        replace(a, state=State.DELIVERED, certified=False)
    ]
    done = replace(a, state=State.DELIVERED, certified=False)
    again = {"a1": {"kind": "other"}, "a2": {"kind": kinds.ACCETTAZIONE, "at": None}}
    assert store.apply(msgid, a, delivered, receipt_id="c1", receipt={"kind": "x"}, carried=again) == (
        State.DELIVERED
    )
    assert store.apply(msgid, done, None, carried={"a3": accettazione}) == State.DELIVERED
    receipts = store.job(msgid).receipts
    assert sorted(receipts) == ["a1", "a2", "a3", "c1"] and receipts["a1"]["kind"] == kinds.ACCETTAZIONE
    assert set(receipts["a2"]) == {"kind", "recorded_at"}
    counters = ports.campaigns.counters(campaign)
    assert (counters["accepted"], counters["delivered"], counters["waiting"], counters["only_sent"]) == (
        1,
        1,
        -1,
        -1,
    )


def test_an_accettazione_can_tell_a_recipient_is_external(ports, uid):
    store = ports.outgoing
    msgid, job = _campaign_message(ports, uid, "e", "p@posta.example")
    campaign = job.campaign_id
    store.apply(msgid, job, move_for_receipt(kinds.ACCETTAZIONE), certified=False)
    assert store.jobs(msgid) == [Job("p@posta.example", State.ACCEPTED, False, campaign)]
    counters = ports.campaigns.counters(campaign)
    assert (counters["accepted"], counters["waiting"], counters["only_sent"]) == (1, -1, -1)


def test_a_quota_slot_is_reserved_once_and_only_while_pending(ports, uid):
    store = ports.outgoing
    [job] = _jobs(uid, 1, f"camp-{uid}")
    store.add_jobs([job])
    msgid = job["message_id"]
    assert store.reserve_slot(msgid, "C2@pec.beta.test", 1700000000.25)
    assert not store.reserve_slot(msgid, "c2@pec.beta.test", 1700000001.0), "it holds one already"
    assert store.job(msgid).slot_at == 1700000000.25
    store.set_job_fields(msgid, "C2@pec.beta.test", {"slot_at": 0, "note": None, "tries": 2.0})
    assert store.job(msgid).slot_at == 0 and "note" not in store.job(msgid).extra
    assert store.job(msgid).extra["tries"] == 2
    assert store.reserve_slot(msgid, "c2@pec.beta.test", 1700000002.0)
    assert store.job(msgid).slot_at == 1700000002, "whole floats come back as ints"
    store.set_job_fields(msgid, "c2@pec.beta.test", {"slot_at": 0})
    store.try_move(msgid, Job("c2@pec.beta.test", State.PENDING, True, None), CLAIM)
    assert not store.reserve_slot(msgid, "c2@pec.beta.test", 1700000003.0), "claimed: no slot"
    assert not store.reserve_slot(f"<ghost{uid}>", "c2@pec.beta.test", 1.0)
    store.set_job_fields(f"<ghost{uid}>", "x@y.test", {"last_failure": "boom"})  # an update creates a row
    assert store.job(f"<ghost{uid}>") is None, "a row without its head is no job"


def test_campaign_figures_are_added(ports, uid):
    campaign = f"camp-{uid}"
    ports.campaigns.create(campaign, {"status": "sending"})
    ports.outgoing.count_in_campaign(campaign, "dead_lettered", 1)
    ports.outgoing.count_in_campaign(campaign, "dead_lettered", 1)
    ports.outgoing.count_in_campaign(campaign, "dead_lettered", -1)
    assert ports.campaigns.get(campaign).dead_lettered == 1
    ports.outgoing.count_in_campaign(f"none-{uid}", "dead_lettered", 1)  # an update creates the item
    assert ports.campaigns.get(f"none-{uid}").dead_lettered == 1


# --- CampaignStore ----------------------------------------------------------------------------------------
def test_campaign_lifecycle_writes_are_conditional(ports, uid):
    store = ports.campaigns
    campaign = f"camp-{uid}"
    assert store.create(campaign, {"status": "validating", "mailbox": "u@pec.test", "start_at": None})
    assert not store.create(campaign, {"status": "sending"})
    item = store.get(campaign)
    assert item.status == "validating" and item.start_at is None
    assert item.counters == dict.fromkeys(COUNTERS, 0)
    assert not store.update(campaign, {"status": "paused"}, only_if_status=("sending",))
    assert store.update(
        campaign, {"status": "sending", "manifest": {"a": 1.0}}, only_if_status=("validating",)
    )
    assert store.get(campaign).manifest == {"a": 1}
    assert store.start_counting(campaign, 5) and not store.start_counting(campaign, 7)
    store.add_jobs(campaign, 2)
    counters = store.counters(campaign)
    assert (counters["total"], counters["to_send"], counters["sent"]) == (7, 7, 0)
    assert store.checkpoint(campaign, 11, 10, 0) and not store.checkpoint(campaign, 21, 20, 0)
    assert store.checkpoint(campaign, 21, 20, 11)
    assert (store.get(campaign).fanout_next_row, store.get(campaign).fanout_queued) == (21, 20)
    for i in range(3):
        assert store.note_problem(campaign, f"problem {i}", keep=2) == (i < 2)
    assert store.get(campaign).problems == ["problem 0", "problem 1"]
    assert store.counters(f"none-{uid}") == dict.fromkeys(COUNTERS, 0)


def test_campaign_writes_on_a_missing_campaign(ports, uid):
    store = ports.campaigns
    missing = f"none-{uid}"
    assert not store.update(missing, {"status": "paused"}, only_if_status=("sending",))
    assert not store.note_problem(missing, "x")
    assert store.get(missing) is None
    for write in (lambda: store.start_counting(missing, 3), lambda: store.add_jobs(missing, 3)):
        with pytest.raises(ClientError) as error:
            write()
        assert _validation_error(error)
    assert store.update(missing, {"status": "queuing"}) and store.get(missing).status == "queuing", (
        "an upsert"
    )
    assert store.checkpoint(f"{missing}b", 11, 10, 0)


# --- Archive ----------------------------------------------------------------------------------------------
def test_archive_stores_once_and_verifies(ports, uid):
    archive = ports.archive
    raw = f"From: a@b\r\n\r\noriginale {uid}".encode()
    sha = fakes.sha256_hex(raw)
    first = archive.store(raw, sha)
    again = archive.store(raw)
    assert first.created and not again.created and first.key == again.key == archive.key_for(sha)
    assert first.version_id and again.version_id is None
    assert archive.get(first.key) == raw
    assert archive.verify(first.key, sha) == archive.verify(first.key, sha, deep=False)
    assert archive.verify(first.key, sha).ok


def test_archive_verification_refuses_missing_or_different_objects(ports, uid):
    archive = ports.archive
    raws = [f"From: a@b\r\n\r\n{uid} n. {i}".encode() for i in range(3)]
    shas = [fakes.sha256_hex(r) for r in raws]
    missing = archive.verify(archive.key_for(shas[0]), shas[0])
    assert not missing.ok and "missing" in missing.reason
    for raw in raws:
        archive.store(raw)
    other = fakes.sha256_hex(b"other")
    assert "checksum" in archive.verify(archive.key_for(shas[0]), other).reason
    ports.corrupt(archive.key_for(shas[0]), b"silently corrupted")
    assert archive.verify(archive.key_for(shas[0]), shas[0], deep=False).ok, "only reading tells"
    deep = archive.verify(archive.key_for(shas[0]), shas[0])
    assert not deep.ok and "does not match its stored checksum" in deep.reason
    ports.overwrite(archive.key_for(shas[1]), b"something else")
    changed = archive.verify(archive.key_for(shas[1]), shas[1])
    assert not changed.ok and "differs" in changed.reason
    with pytest.raises(ArchiveError):
        archive.store(raws[1])  # its key holds other bytes now
    ports.delete(archive.key_for(shas[2]))
    assert "missing" in archive.verify(archive.key_for(shas[2]), shas[2]).reason
    assert archive.store(raws[2]).created, "stored again after a delete marker"
    for raw, sha in zip(raws[:2], shas[:2], strict=True):  # the damaged copies replaced by the originals
        again = archive.store_again(raw, sha)
        assert again.created and again.key == archive.key_for(sha) and archive.verify(again.key, sha).ok
        assert archive.get(again.key) == raw
    with pytest.raises(ArchiveError):
        archive.store_again(b"not the original", shas[0])
    assert archive.verify(archive.key_for(shas[0]), shas[0]).ok
    with pytest.raises(ClientError):
        archive.get(archive.key_for(other))


# --- RateLimiter --------------------------------------------------------------------------------------------
def test_rate_limiter_slots(ports, uid):
    policy = QuotaPolicy(2, 60.0)
    limiter = ports.limiter_for(policy)
    box = f"q{uid}@pec.test"
    now = 1_800_000_000.0
    first, second = limiter.acquire(box, now), limiter.acquire(box, now + 1)
    assert (first.allowed, first.at, second.allowed, second.at) == (True, now, True, now + 1)
    refused = limiter.acquire(box, now + 2)
    assert (refused.allowed, refused.at, refused.wait_seconds) == (False, now + 60, 58)
    reserved = limiter.acquire(box, now + 2, horizon=120)
    assert reserved.allowed and reserved.at == now + 60, "reserved ahead, within the horizon"
    assert limiter.release(box, reserved.at) and not limiter.release(box, reserved.at)
    assert limiter.release(box, second.at)
    again = limiter.acquire(box, now + 3)
    assert again.allowed and again.at == now + 60, "a slot given back is free again, after the latest taken"
    assert limiter.slots(box)["version"] == 6


# --- CampaignFiles -------------------------------------------------------------------------------------------
def test_campaign_files_read_what_was_pinned(ports, uid):
    campaign = f"files-{uid}"
    first = ports.upload(campaign, "recipients.csv", b"pec;nome\r\na@b.test;A\r\n")
    ports.upload(campaign, "attachments/b.pdf", b"%PDF-b")
    ports.upload(campaign, "attachments/a.pdf", b"%PDF-aa")
    files = ports.files_for(campaign)
    pin = files.pin("recipients.csv")
    assert pin["version_id"] == first and pin["etag"]
    assert files.pin("manifest.json") is None
    ports.upload(campaign, "recipients.csv", b"pec;nome\r\nz@z.test;Z\r\n")
    assert files.read("recipients.csv", pin) == b"pec;nome\r\na@b.test;A\r\n", "the pinned bytes"
    assert files.read("recipients.csv") == b"pec;nome\r\nz@z.test;Z\r\n", "unpinned: the latest"
    body, size = files.open_with_size("recipients.csv", pin)
    assert body.read() == b"pec;nome\r\na@b.test;A\r\n" and size == 22
    assert sorted(files.attachments()) == [("a.pdf", 7), ("b.pdf", 6)]
    with pytest.raises(PackageChanged):
        files.read("recipients.csv", {"version_id": "gone", "etag": pin["etag"]})
    # a file missing is said as missing (the sender's error for its job), not as S3's NoSuchKey
    with pytest.raises(FileNotFoundError, match="attachments/c.pdf is not among the campaign's files"):
        files.read("attachments/c.pdf")


# --- Queue ------------------------------------------------------------------------------------------------
def test_a_fifo_queue_drops_what_it_has_just_seen(ports, uid):
    queue = ports.poll_queue
    requests = [PollRequest(f"{i}{uid}@pec.test", "2026-03-02T09:00Z") for i in range(3)]
    answer = queue.send_batch([r.sqs_entry(i) for i, r in enumerate(requests)])
    assert [e["Id"] for e in answer["Successful"]] == ["0", "1", "2"] and not answer.get("Failed")
    queue.send_batch([requests[0].sqs_entry(0)])  # the same tick again: a duplicate
    queue.send(PollRequest(requests[0].mailbox, "2026-03-02T09:00Z", 1).sqs_entry())  # a continuation
    bodies = ports.drain()
    assert sorted((b["mailbox"], b["continuation"]) for b in bodies) == sorted(
        [(r.mailbox, 0) for r in requests] + [(requests[0].mailbox, 1)]
    )
    with pytest.raises(ClientError):
        queue.send_batch([r.sqs_entry(i) for i, r in enumerate(requests * 4)])  # over 10 entries

"""Waiting never wears a campaign job out (issue 10, item 5), against moto: a paused job leaves the
send queue and resume (or cancel) puts it back; a waiting job renews its queue message before the
dead-letter limit; a job that still reaches the dead-letter queue becomes an error with its reason
in the statistics, and `redrive` sends it again. The SMTP side is a fake here: what is under test
is the job's life on the queue and in DynamoDB."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pecflow import bootstrap
from pecflow.adapters.archive import Archive
from pecflow.adapters.dynamodb import CampaignStore, OutgoingStore
from pecflow.adapters.mail import Submission
from pecflow.config import Config
from pecflow.domain import clock
from pecflow.domain.mailbox import MailboxConfig
from pecflow.domain.quota import Decision
from pecflow.domain.reconcile import CLAIM, CampaignStatus, Job, State
from pecflow.services.sending import (
    MAX_DELAY_SECONDS,
    RENEW_AFTER_RECEIVES,
    STALE_CLAIM_SECONDS,
    Sender,
    StillSending,
    dead_lettered,
    queue_entry,
    renew,
)

MAILBOX = "ufficio@pec.azienda.test"


class World:
    """A campaign of `n` pending jobs in moto's tables, the send queue, and a sender with a fake SMTP."""

    def __init__(self, aws, n: int = 4, campaign_id: str = "attesa"):
        self.aws, self.id = aws, campaign_id
        ddb = aws.resource("dynamodb")
        self.campaigns = CampaignStore(aws.physical("CampaignsTable"), ddb)
        self.outgoing = OutgoingStore(
            aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")
        )
        self.campaigns.create(campaign_id, {"status": CampaignStatus.SENDING, "mailbox": MAILBOX})
        self.campaigns.start_counting(campaign_id, n)
        self.jobs = [
            {
                "message_id": f"<pecflow.{campaign_id}.{row}.1@pec.azienda.test>",
                "recipient": f"c{row}@pec.beta.test",
                "mailbox": MAILBOX,
                "campaign_id": campaign_id,
                "row": row,
                "attempt": 1,
                "values": {"nome": f"Ditta {row}"},
            }
            for row in range(2, n + 2)
        ]
        self.outgoing.add_jobs(self.jobs)
        self.submitted: list[str] = []
        self.sender = Sender(
            outgoing=self.outgoing,
            campaigns=self.campaigns,
            archive=Archive(aws.physical("ArchiveBucket"), aws.client("s3")),
            mailbox_of=lambda address: MailboxConfig(address, "imap.pec.test"),
            acquire=lambda mailbox, now, horizon=0: Decision(True, 0.0, now),
            release=lambda mailbox, at: None,
            render=lambda campaign, job, message_id, date: f"Message-ID: {message_id}\r\n\r\nx\r\n".encode(),
            submit=self.submit,
        )
        self.deployment = Config(
            "pecflow-test",
            region=aws.region,
            outgoing_table=aws.physical("OutgoingTable"),
            campaigns_table=aws.physical("CampaignsTable"),
            send_queue_url=aws.url("SendQueue"),
        )
        self.sqs = aws.client("sqs")

    def submit(self, config, raw: bytes, recipients: list[str]) -> Submission:
        self.submitted += recipients
        return Submission("accepted", 250, "ok")

    def queued(self) -> list[str]:
        """Drain the send queue: the message ids on it."""
        out = []
        while messages := self.sqs.receive_message(
            QueueUrl=self.aws.url("SendQueue"), MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", []):
            for message in messages:
                out.append(json.loads(message["Body"])["message_id"])
                self.sqs.delete_message(
                    QueueUrl=self.aws.url("SendQueue"), ReceiptHandle=message["ReceiptHandle"]
                )
        return out

    def states(self) -> dict[str, str]:
        return {j.recipient: j.state for j in self.outgoing.campaign_jobs(self.id)}


def test_a_paused_job_leaves_the_queue_and_resume_puts_it_back(aws):
    world = World(aws)
    assert bootstrap.campaign_admin(world.deployment).set_status(world.id, "pause") == CampaignStatus.PAUSED
    for job in world.jobs:
        outcome = world.sender.send(job["message_id"])
        assert (outcome.action, outcome.state) == ("done", "pending"), "off the queue, not delayed on it"
    assert world.submitted == [] and set(world.states().values()) == {"pending"}
    assert world.queued() == [], "nothing left on the queue while paused"
    bootstrap.campaign_admin(world.deployment).set_status(world.id, "resume")
    queued = world.queued()
    assert sorted(queued) == sorted(j["message_id"] for j in world.jobs), "every job back, once"
    for message_id in queued:
        assert world.sender.send(message_id).state == "sent"
    assert sorted(world.submitted) == sorted(j["recipient"] for j in world.jobs)


def test_a_stale_cached_pause_never_parks_a_job_of_a_resumed_campaign(aws):
    world = World(aws, n=1)
    bootstrap.campaign_admin(world.deployment).set_status(world.id, "pause")
    assert world.sender.send(world.jobs[0]["message_id"]).action == "done"  # the cache says: paused
    bootstrap.campaign_admin(world.deployment).set_status(world.id, "resume")
    world.queued()
    outcome = world.sender.send(world.jobs[0]["message_id"])  # cache still says paused
    assert outcome.state == "sent", "the pause is checked again before leaving the queue"


def test_cancelling_a_paused_campaign_cancels_its_parked_jobs(aws):
    world = World(aws, n=3)
    bootstrap.campaign_admin(world.deployment).set_status(world.id, "pause")
    for job in world.jobs:
        world.sender.send(job["message_id"])
    bootstrap.campaign_admin(world.deployment).set_status(world.id, "cancel")
    for message_id in world.queued():
        world.sender.cache.clear()
        assert world.sender.send(message_id).state == "cancelled"
    counters = world.campaigns.counters(world.id)
    assert (counters["to_send"], counters["cancelled"]) == (0, 3)


def test_the_same_job_queued_again_is_not_dropped_as_a_duplicate():
    """SQS FIFO drops a deduplication id seen in the last five minutes: a resume right after a
    pause must still queue the job again."""
    first, again = queue_entry("<a@b>"), queue_entry("<a@b>", again="resume 1")
    assert first["MessageGroupId"] == again["MessageGroupId"]
    assert first["MessageDeduplicationId"] != again["MessageDeduplicationId"]


def test_waiting_renews_the_queue_message_before_the_dead_letter_limit(aws):
    redrive = json.loads(
        aws.client("sqs").get_queue_attributes(
            QueueUrl=aws.url("SendQueue"), AttributeNames=["RedrivePolicy"]
        )["Attributes"]["RedrivePolicy"]
    )
    assert not renew(RENEW_AFTER_RECEIVES - 1) and renew(RENEW_AFTER_RECEIVES)
    assert RENEW_AFTER_RECEIVES < int(redrive["maxReceiveCount"]), "renewed well before SQS gives up"
    assert not renew(1, age=5, delay=MAX_DELAY_SECONDS), "a fresh message waits the longest delay"
    assert renew(1, age=MAX_DELAY_SECONDS, delay=MAX_DELAY_SECONDS), "an old one would pass SQS's 12 hours"


def test_a_dead_lettered_job_is_an_error_with_its_reason_until_redriven(aws):
    world = World(aws, n=3)
    broken = world.jobs[1]
    acquire = world.sender.acquire

    def unavailable(*args, **kwargs):
        raise OSError("QuotaTable: connection reset by peer")

    world.sender.acquire = unavailable
    with pytest.raises(OSError):
        world.sender.send(broken["message_id"])
    assert "connection reset" in world.outgoing.job(broken["message_id"]).last_failure
    assert dead_lettered(world.outgoing, broken["message_id"]) == "error"
    job = world.outgoing.job(broken["message_id"])
    assert job.state == "error" and "connection reset" in job.error and "not sent" in job.error
    stats = bootstrap.campaign_admin(world.deployment).stats(world.id)
    assert (
        stats["counters"]["errors"] == 1 and stats["counters"]["to_send"] == 2 and stats["dead_lettered"] == 1
    )
    assert dead_lettered(world.outgoing, broken["message_id"]) == "error", "a duplicate changes nothing"
    assert bootstrap.campaign_admin(world.deployment).stats(world.id)["dead_lettered"] == 1

    world.sender.acquire = acquire
    done = bootstrap.campaign_admin(world.deployment).redrive(world.id)
    assert done == {"redriven": 1, "queued": 3}, "the dead-lettered job and the two still to send"
    for message_id in world.queued():
        world.sender.send(message_id)
    assert set(world.states().values()) == {"sent"}
    job = world.outgoing.job(broken["message_id"])
    assert job.error is None and job.dead_letter is None and job.redriven_at
    stats = bootstrap.campaign_admin(world.deployment).stats(world.id)
    assert stats["counters"]["errors"] == 0 and stats["counters"]["sent"] == 3 and stats["dead_lettered"] == 0
    assert bootstrap.campaign_admin(world.deployment).redrive(world.id) == {"redriven": 0, "queued": 0}


@pytest.mark.parametrize("submitting", [True, False])
def test_a_job_dead_lettered_while_claimed_waits_for_its_claim_and_is_never_sent_twice(aws, submitting):
    """Another copy of the job's queue message may be being sent right now: nothing is decided
    until the claim is stale; then one that had started its submission is `sent?` (never sent
    again), one that had not is an error that redrive sends."""
    world = World(aws, n=1)
    job = world.jobs[0]
    claim = clock.iso(clock.now() - timedelta(minutes=1))
    world.outgoing.try_move(
        job["message_id"],
        Job(job["recipient"], State.PENDING, True, world.id),
        CLAIM,
        also_set={"claimed_at": claim},
    )
    if submitting:
        world.outgoing.set_job_fields(job["message_id"], job["recipient"], {"submitting_claim": claim})
    with pytest.raises(StillSending):
        dead_lettered(world.outgoing, job["message_id"])
    assert world.outgoing.job(job["message_id"]).state == "sending"
    stale = clock.iso(clock.now() - timedelta(seconds=STALE_CLAIM_SECONDS + 1))
    world.outgoing.set_job_fields(
        job["message_id"],
        job["recipient"],
        {"claimed_at": stale, **({"submitting_claim": stale} if submitting else {})},
    )
    assert dead_lettered(world.outgoing, job["message_id"]) == ("sent?" if submitting else "error")
    assert bootstrap.campaign_admin(world.deployment).redrive(world.id) == (
        {"redriven": 0, "queued": 0} if submitting else {"redriven": 1, "queued": 1}
    )

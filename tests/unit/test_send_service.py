"""The send service (Sender, dead_lettered) against the in-memory fakes: what
tests/integration/test_waiting_jobs.py and the e2e campaign guarantees prove on moto and the
local stack, in memory. What counts is what the provider received (FakeSmtp.received): one
message per recipient, never two, whatever crashes, refusals or duplicates happen around it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from local.pecbuild import builder
from pecflow.domain.ports import no_checkpoint
from pecflow.domain.quota import LATE_FOR_SLOT_SECONDS, Decision, QuotaPolicy
from pecflow.domain.reconcile import CLAIM, CampaignStatus, Job, Move, State
from pecflow.domain.records import SENDING_ONLY, CampaignRecord, JobRecord
from pecflow.services.sending import (
    AUTH_RETRY_SECONDS,
    CAMPAIGN_CACHE_SECONDS,
    RENEW_AFTER_RECEIVES,
    RESERVE_HORIZON_SECONDS,
    STALE_CLAIM_SECONDS,
    TEMPORARY_RETRY_SECONDS,
    JobDelivery,
    Sender,
    StillSending,
    beyond_horizon_wake,
    dead_lettered,
    jobs_ahead,
)
from tests import fakes

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
BOX = "ufficio@pec.azienda.test"
CAMPAIGN = "solleciti"


class Crash(Exception):
    """A fault of ours in the middle of a send (the queue delivers the job again)."""


class SenderDied(BaseException):
    """A Lambda time-out: the code just stops, nothing after it runs."""


class World:
    """A campaign of `n` pending jobs, and a sender wired with the fakes."""

    def __init__(self, n: int = 1, *, policy: QuotaPolicy | str = "aruba", **campaign):
        self.campaigns = fakes.FakeCampaignStore()
        self.outgoing = fakes.FakeOutgoingStore(self.campaigns)
        self.campaigns.create(CAMPAIGN, {"status": CampaignStatus.SENDING, "mailbox": BOX, **campaign})
        self.campaigns.start_counting(CAMPAIGN, n)
        self.jobs = [
            {
                "message_id": f"<pecflow.{CAMPAIGN}.{row}.1@pec.azienda.test>",
                "recipient": f"cliente{row}@pec.beta.test",
                "mailbox": BOX,
                "campaign_id": CAMPAIGN,
                "row": row,
                "attempt": 1,
                "values": {"nome": f"Ditta {row}"},
            }
            for row in range(2, n + 2)
        ]
        self.outgoing.add_jobs(self.jobs)
        self.archive = fakes.FakeArchive()
        self.smtp = fakes.FakeSmtp()
        self.limiter = fakes.FakeRateLimiter(policy=policy)
        self.configs = {BOX: fakes.config(BOX)}
        self.sender = self.new_sender()

    def new_sender(self) -> Sender:
        """Another sender (another Lambda invocation) on the same ports."""
        return Sender(
            outgoing=self.outgoing,
            campaigns=self.campaigns,
            archive=self.archive,
            mailbox_of=self.configs.get,
            acquire=self.limiter.acquire,
            release=self.limiter.release,
            render=self.render,
            submit=self.smtp.submit,
        )

    @staticmethod
    def render(campaign: CampaignRecord | None, job: JobRecord, message_id: str, date: datetime) -> bytes:
        return builder.messaggio_originale(
            mittente=job.mailbox,
            destinatari=[job.recipient],
            oggetto=f"Sollecito n. {job.row}",
            testo=f"Gentile {job.values['nome']}, ...",
            message_id=message_id,
            data=date,
        )

    def send(self, i: int = 0, sender: Sender | None = None):
        return (sender or self.sender).send(self.jobs[i]["message_id"])

    def job(self, i: int = 0) -> JobRecord:
        return self.outgoing.job(self.jobs[i]["message_id"])

    def received(self, i: int = 0) -> int:
        return self.smtp.received_by(self.jobs[i]["recipient"])

    def counters(self) -> dict:
        return {k: v for k, v in self.campaigns.counters(CAMPAIGN).items() if v}

    def crash_at(self, step: str, error: type[BaseException] = Crash) -> None:
        def checkpoint(at: str, **where) -> None:
            if at == step:
                raise error(step)

        self.sender.checkpoint = checkpoint


@pytest.fixture
def clock(monkeypatch) -> fakes.FakeClock:
    return fakes.FakeClock(START).install(monkeypatch)


# --- the way it should go ------------------------------------------------------------------------------
def test_a_job_is_claimed_archived_and_submitted_once(clock):
    world = World()
    seen: dict[str, JobRecord | None] = {}
    world.sender.checkpoint = lambda step: seen.setdefault(step, world.job())
    outcome = world.send()
    assert (outcome.action, outcome.state) == ("done", "sent")
    [received] = world.smtp.received
    assert received.recipients == ("cliente2@pec.beta.test",) and received.mail_from == BOX
    assert f"Message-ID: {world.jobs[0]['message_id']}".encode() in received.raw
    during = seen["after_submit"]
    assert during is not None and during.state == "sending" and during.submitting_claim == during.claimed_at
    assert during.claimed_at is not None, "submitted under its claim"
    job = world.job()
    assert job.state == "sent" and job.reached_at[State.SENDING]
    assert [getattr(job, name) for name in SENDING_ONLY] == [None] * 4, "past sending: claim and slot gone"
    assert world.archive.get(job.sent_s3_key) == received.raw, "what left is what is archived"
    assert job.size == len(received.raw) and job.smtp_answer.startswith("250")
    assert world.limiter.held(BOX) == [clock.t], "one slot, taken now and kept"
    assert world.counters() == {"total": 1, "sent": 1, "only_sent": 1, "waiting": 1}
    again = world.send()  # the queue delivers the message again
    assert (again.action, again.state, again.reason) == ("done", "sent", "already handled")
    assert len(world.smtp.submissions) == 1 and len(world.limiter.acquired) == 1


def test_two_senders_with_the_same_job_send_it_once(clock):
    """A duplicated queue message: the second sender takes its slot, then finds the job claimed."""
    world = World()
    other = world.new_sender()

    def meanwhile(step: str, **where) -> None:
        if step == "after_slot":
            world.sender.checkpoint = no_checkpoint
            assert world.send(sender=world.sender).state == "sent"  # the first sender, all the way

    other.checkpoint = meanwhile
    outcome = world.send(sender=other)
    assert (outcome.action, outcome.reason) == ("done", "claimed by another sender")
    assert world.received() == 1 and world.job().state == "sent"
    assert len(world.limiter.held(BOX)) == 1, "the loser gave its slot back"
    assert world.counters()["sent"] == 1


# --- crashes ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [Crash, SenderDied], ids=["exception", "sender-died"])
@pytest.mark.parametrize(
    "step,final",
    [
        ("after_slot", "sent"),  # not claimed yet: simply sent by the next delivery
        ("after_claim", "sent"),  # claimed, not submitting: sent once the claim is stale
        ("after_archive", "sent"),  # archived, not submitting yet: the same
        ("after_submit", "sent?"),  # submitted: perhaps sent, never again; the receipts will tell
    ],
)
def test_a_crash_at_each_step_never_sends_twice(clock, step, final, error):
    world = World()
    world.crash_at(step, error)
    with pytest.raises(error):
        world.send()
    sent_before = world.received()
    assert sent_before == (1 if step == "after_submit" else 0)
    if error is Crash:
        assert step in world.job().last_failure, "the reason is noted for the dead-letter queue"
    world.sender.checkpoint = no_checkpoint
    retry = world.send()  # the queue delivers it again at once
    if step == "after_slot":
        assert retry.state == "sent"
    else:
        assert (retry.action, retry.reason) == ("delay", "being sent by another invocation")
        assert world.received() == sent_before, "a fresh claim is never sent over"
        clock.advance(STALE_CLAIM_SECONDS + 1)
        retry = world.send()
    assert retry.state == final and world.job().state == final
    for _ in range(3):  # whatever happens later, never a second copy
        clock.advance(STALE_CLAIM_SECONDS + 1)
        world.send()
        world.new_sender().send(world.jobs[0]["message_id"])
    assert world.received() == 1
    assert world.counters() == {"total": 1, "sent": 1, "only_sent": 1, "waiting": 1}


@pytest.mark.parametrize("submitting", [True, False])
def test_a_job_dead_lettered_while_claimed_waits_for_its_claim_and_is_never_sent_twice(clock, submitting):
    world = World()
    world.crash_at("after_submit" if submitting else "after_claim", SenderDied)
    with pytest.raises(SenderDied):
        world.send()
    with pytest.raises(StillSending):
        dead_lettered(world.outgoing, world.jobs[0]["message_id"])
    assert world.job().state == "sending"
    clock.advance(STALE_CLAIM_SECONDS + 1)
    assert dead_lettered(world.outgoing, world.jobs[0]["message_id"], deliveries=50) == (
        "sent?" if submitting else "error"
    )
    job = world.job()
    if submitting:
        assert job.dead_letter is None and world.received() == 1
    else:
        assert "not sent, stopped after 50 attempts" in job.error
        assert world.campaigns.get(CAMPAIGN).dead_lettered == 1 and world.counters()["errors"] == 1
        assert dead_lettered(world.outgoing, world.jobs[0]["message_id"]) == "error", "once"
        assert world.campaigns.get(CAMPAIGN).dead_lettered == 1
    world.sender.checkpoint = no_checkpoint
    world.send()
    assert world.received() == (1 if submitting else 0), "a dead-lettered job waits for redrive"


def test_a_message_that_cannot_be_archived_is_not_sent(clock):
    world = World()
    world.archive.fail_puts(times=1)
    with pytest.raises(Exception, match="reduce your request rate"):
        world.send()
    job = world.job()
    assert job.state == "sending" and job.submitting_claim is None and world.smtp.submissions == []
    assert "ServiceUnavailable" in job.last_failure
    clock.advance(STALE_CLAIM_SECONDS + 1)  # its claim is stale: it never started submitting
    assert world.send().state == "sent" and world.received() == 1
    assert world.archive.get(world.job().sent_s3_key) == world.smtp.received[0].raw


def test_a_job_whose_sender_kept_failing_is_an_error_with_the_reason(clock):
    world = World(2)

    def unavailable(*args, **kwargs):
        raise OSError("QuotaTable: connection reset by peer")

    world.sender.acquire = unavailable
    with pytest.raises(OSError):
        world.send(1)
    assert "connection reset" in world.job(1).last_failure
    assert dead_lettered(world.outgoing, world.jobs[1]["message_id"]) == "error"
    job = world.job(1)
    assert job.state == "error" and "connection reset" in job.error and job.dead_letter
    assert world.counters() == {"total": 2, "to_send": 1, "errors": 1}
    assert dead_lettered(world.outgoing, "<unknown@pec.test>") == "unknown"


# --- the quota ---------------------------------------------------------------------------------------------
def test_a_quota_refusal_beyond_the_horizon_defers_the_job_holding_nothing(clock):
    world = World(2, policy=QuotaPolicy(1, 12 * 3600.0))  # one message per 12 hours
    assert world.send(0).state == "sent"
    outcome = world.send(1)
    assert (outcome.action, outcome.reason) == ("delay", "waiting for a quota slot")
    earliest = 12 * 3600 - RESERVE_HORIZON_SECONDS  # back when its slot can be reserved, spread
    assert earliest <= outcome.delay <= earliest + 1801
    job = world.job(1)
    assert job.state == "pending" and not job.slot_at and job.claimed_at is None
    assert world.received(1) == 0 and len(world.limiter.held(BOX)) == 1


def test_a_job_far_down_the_line_sleeps_until_its_own_slot_can_be_reserved(clock):
    """Refused beyond the horizon, a job sleeps about as long as the jobs ahead of it take to
    leave, not half an hour: at 100 an hour, with 100 sent and 700 holding the next seven hours,
    the 1,500th job has 1,400 ahead, 14 hours: it comes back in about 8 (its slot then 6 hours
    away), once, instead of every half hour."""
    world = World(1600, policy=QuotaPolicy(100, 3600.0))
    world.configs[BOX] = fakes.config(BOX, quota_preset="custom:100/1h")
    counters = world.campaigns.items[CAMPAIGN]["counters"]
    counters["to_send"] -= 100  # 100 gone already
    for _ in range(700):  # this hour's slots taken, and the next six hours reserved
        assert world.limiter.acquire(BOX, clock.t, horizon=RESERVE_HORIZON_SECONDS)
    outcome = world.send(1500)
    assert (outcome.action, outcome.reason) == ("delay", "waiting for a quota slot")
    expected = 1400 * 36 * 1.05 - RESERVE_HORIZON_SECONDS  # 31,320 s
    assert expected <= outcome.delay <= expected + 1
    near = world.send(601)  # just behind: back when the end of the reservations (7 h) can be
    assert near.reason == "waiting for a quota slot"  # reserved, spread over half an hour as before
    assert 3600 <= near.delay <= 3600 + 1801 + 36


def test_the_wake_beyond_the_horizon_and_the_place_in_line():
    hour = 3600.0
    spacing = 4.8  # aruba: 1200 s / 250
    far = beyond_horizon_wake(RESERVE_HORIZON_SECONDS + 60, 10_000, spacing, "<a@b>")
    assert far == pytest.approx(10_000 * spacing * 1.05 - RESERVE_HORIZON_SECONDS)  # about 8 hours
    near = beyond_horizon_wake(RESERVE_HORIZON_SECONDS + 60, 10, spacing, "<a@b>")
    assert 60 <= near < 60 + 1800, "near the front: the spread, as before"
    assert beyond_horizon_wake(RESERVE_HORIZON_SECONDS + 9 * hour, 10, spacing, "<a@b>") >= 9 * hour
    campaign = CampaignRecord(
        CAMPAIGN, counters={"total": 1000, "to_send": 600}, fanout_queued=1000, fanout_queued_rows=1000
    )
    job = JobRecord("<m>", "x@pec.test", State.PENDING, row=2 + 700)
    assert jobs_ahead(campaign, job) == 700 - 400
    grouped = CampaignRecord(
        CAMPAIGN, counters={"total": 500, "to_send": 500}, fanout_queued=500, fanout_queued_rows=1000
    )
    assert jobs_ahead(grouped, job) == 350, "two rows a message: half as many jobs ahead"
    assert (
        jobs_ahead(None, job) == 0
        and jobs_ahead(campaign, JobRecord("<m>", "x@pec.test", State.PENDING)) == 0
    )


def test_a_slot_within_the_horizon_is_reserved_and_the_job_wakes_once_for_it(clock):
    world = World(2, policy=QuotaPolicy(1, 3600.0))
    assert world.send(0).state == "sent"
    outcome = world.send(1)
    assert (outcome.action, outcome.reason) == ("delay", "waiting for its reserved quota slot")
    assert outcome.delay == 3600 and world.job(1).slot_at == clock.t + 3600
    assert world.send(1).reason == "waiting for its reserved quota slot", "woken early: waits again"
    assert len(world.limiter.acquired) == 2, "without taking another slot"
    clock.advance(3600)
    assert world.send(1).state == "sent" and world.job(1).slot_at is None, "its slot used, and left behind"
    assert len(world.limiter.acquired) == 2 and world.received(1) == 1


def test_a_job_is_rendered_only_when_its_slot_is_due(clock):
    """Its files are read once, when it goes: not on each wake while it waits for its slot."""
    world = World(2, policy=QuotaPolicy(1, 3600.0))
    rendered: list[int] = []

    def render(campaign, job, message_id, date):
        rendered.append(job.row)
        return World.render(campaign, job, message_id, date)

    world.sender.render = render
    world.send(0)
    assert world.send(1).action == "delay" and world.send(1).action == "delay"
    clock.advance(3600)
    assert world.send(1).state == "sent"
    assert rendered == [2, 3]


def test_a_job_woken_long_after_its_slot_gives_it_back_and_takes_the_next(clock):
    world = World(2, policy=QuotaPolicy(1, 3600.0))
    world.send(0)
    world.send(1)
    reserved = world.job(1).slot_at
    clock.advance(3600 + LATE_FOR_SLOT_SECONDS + 60)
    outcome = world.send(1)
    assert (BOX, reserved) in world.limiter.released
    assert outcome.state == "sent" and world.received(1) == 1


def test_a_waiting_job_goes_back_on_the_queue_and_is_renewed_before_it_wears_out(clock):
    world = World(2, policy=QuotaPolicy(1, 3600.0))
    queue = fakes.FakeQueue()
    delivery = JobDelivery(world.sender, queue)
    message_id = world.jobs[1]["message_id"]
    world.send(0)
    waiting = delivery.deliver(message_id, queue_message_id="q1", receipt_handle="h1", receive_count=1, age=0)
    assert not waiting.renewed and queue.visibility == [("h1", 3600)] and queue.messages == []
    worn = dict(queue_message_id="q1", receipt_handle="h1", receive_count=RENEW_AFTER_RECEIVES, age=60)
    renewed = delivery.deliver(message_id, **worn)
    assert renewed.renewed and queue.bodies() == [{"message_id": message_id}], "a fresh queue message"
    assert delivery.deliver(message_id, **worn).renewed and queue.bodies() == [], "the same renewal once"
    assert world.received(1) == 0 and world.job(1).state == "pending"


def test_a_busy_limiter_defers_the_job_for_a_moment(clock):
    world = World()
    world.limiter.script(Decision(False, 1.0, None))
    outcome = world.send()
    assert (outcome.action, outcome.delay, outcome.reason) == ("delay", 1, "quota limiter busy")
    assert world.job().state == "pending" and world.received() == 0
    assert world.send().state == "sent"


class StaleRead:
    """The outgoing store as a sender that read the job a moment ago sees it: that first read."""

    def __init__(self, store: fakes.FakeOutgoingStore, job: JobRecord):
        self.store, self.stale = store, job

    def job(self, message_id: str) -> JobRecord:
        return self.stale

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def test_a_copy_of_a_job_that_another_copy_reserved_a_slot_for_gives_its_own_back(clock):
    world = World(2, policy=QuotaPolicy(1, 3600.0))
    world.send(0)
    before = world.job(1)  # a second copy of the queue message reads the job now...
    assert world.send(1).reason == "waiting for its reserved quota slot"  # ...the first reserves
    copy = world.new_sender()
    copy.outgoing = StaleRead(world.outgoing, before)
    outcome = copy.send(world.jobs[1]["message_id"])
    assert (outcome.action, outcome.reason) == ("delay", "another copy of this job holds a slot")
    assert world.job(1).slot_at == clock.t + 3600, "the first copy's reservation stands"
    assert world.limiter.held(BOX) == [clock.t, clock.t + 3600], "the copy's own slot given back"
    clock.advance(3600)
    assert world.send(1).state == "sent" and world.received(1) == 1


# --- refusals ------------------------------------------------------------------------------------------------
def test_an_smtp_refusal_marks_the_job_failed(clock):
    world = World(3)
    world.smtp.refuse_rcpt(550, "5.1.1 Recipient address rejected")
    world.smtp.refuse_data(554, "5.6.0 Message refused")
    world.smtp.refuse_data(554, "5.7.1 Too much traffic", at_command=True)
    for i in range(3):
        outcome = world.send(i)
        assert (outcome.action, outcome.state, outcome.reason) == ("done", "error", "refused")
    jobs = [world.job(i) for i in range(3)]
    assert "SMTP refused: 550 5.1.1" in jobs[0].error and "554 5.6.0" in jobs[1].error
    assert world.smtp.received == []
    assert [at for _, at in world.limiter.released] == [world.limiter.acquired[0][1]], (
        "only a refusal before DATA frees its slot: the provider may count the others"
    )
    assert world.counters() == {"total": 3, "errors": 3}
    assert world.send(0).reason == "already handled" and world.smtp.received == []


def test_a_temporary_refusal_returns_the_job_to_pending_and_it_is_sent_later(clock):
    world = World()
    world.smtp.refuse_rcpt(451, "4.7.1 Quota superata, riprovare tra 10 minuti")
    outcome = world.send()
    assert (outcome.action, outcome.state, outcome.delay) == ("delay", "pending", 600)
    job = world.job()
    assert job.state == "pending" and "SMTP temporary failure: 451" in job.error
    assert world.limiter.held(BOX) == [], "refused before DATA: the slot is free again"
    world.smtp.drop()
    outcome = world.send()
    assert (outcome.state, outcome.delay) == ("pending", TEMPORARY_RETRY_SECONDS)
    assert world.send().state == "sent" and world.received() == 1
    assert world.counters() == {"total": 1, "sent": 1, "only_sent": 1, "waiting": 1}


@pytest.mark.parametrize(
    "kind,delay", [("auth", AUTH_RETRY_SECONDS), ("unreachable", TEMPORARY_RETRY_SECONDS)]
)
def test_an_unavailable_mailbox_defers_the_job_and_frees_its_slot(clock, kind, delay):
    world = World()
    world.smtp.unavailable(kind)
    outcome = world.send()
    assert (outcome.action, outcome.state, outcome.delay) == ("delay", "pending", delay)
    assert kind in outcome.reason and world.job().state == "pending"
    assert world.limiter.held(BOX) == [] and world.smtp.received == []
    assert world.send().state == "sent" and world.received() == 1


def test_a_lost_smtp_answer_leaves_the_job_uncertain_and_never_resends_it(clock):
    world = World()
    world.smtp.lose_answer()
    outcome = world.send()
    assert (outcome.action, outcome.state) == ("done", "sent?")
    job = world.job()
    assert job.state == "sent?" and "no answer after DATA" in job.smtp_answer
    assert world.received() == 1, "it did go"
    assert world.limiter.held(BOX) == [world.limiter.acquired[0][1]], "its slot stays counted"
    for _ in range(2):
        clock.advance(STALE_CLAIM_SECONDS + 1)
        assert world.send().reason == "already handled"
    assert world.received() == 1 and world.counters() == {"total": 1, "sent": 1, "only_sent": 1, "waiting": 1}


# --- the campaign's will ---------------------------------------------------------------------------------------
def test_a_job_of_a_cancelled_campaign_is_cancelled_and_not_sent(clock):
    world = World(2, policy=QuotaPolicy(1, 3600.0))
    world.send(0)
    world.send(1)  # waits for a slot it reserved
    world.campaigns.update(CAMPAIGN, {"status": CampaignStatus.CANCELLED})
    clock.advance(CAMPAIGN_CACHE_SECONDS + 1)  # past the sender's cache of the campaign
    outcome = world.send(1)
    assert (outcome.action, outcome.state) == ("done", "cancelled")
    assert world.job(1).state == "cancelled" and world.received(1) == 0
    assert world.limiter.held(BOX) == [world.limiter.acquired[0][1]], "the reserved slot given back"
    assert world.counters() == {"total": 2, "sent": 1, "only_sent": 1, "waiting": 1, "cancelled": 1}


def test_a_job_of_a_paused_campaign_leaves_the_queue_unsent_until_resumed(clock):
    world = World()
    world.campaigns.update(CAMPAIGN, {"status": CampaignStatus.PAUSED})
    outcome = world.send()
    assert (outcome.action, outcome.state, outcome.reason) == (
        "done",
        "pending",
        "campaign paused: waits for resume",
    )
    assert world.smtp.submissions == [] and world.limiter.acquired == [] and world.job().state == "pending"
    world.campaigns.update(CAMPAIGN, {"status": CampaignStatus.SENDING})
    # the sender's cache still says paused: it reads the campaign again before leaving the queue
    assert world.send().state == "sent" and world.received() == 1


def test_a_job_waits_for_its_campaigns_start(clock):
    world = World(start_at=(START + timedelta(hours=2)).isoformat())
    outcome = world.send()
    assert (outcome.action, outcome.delay, outcome.reason) == ("delay", 7200, "scheduled start")
    assert world.limiter.acquired == [] and world.smtp.submissions == []
    clock.advance(7200)
    assert world.send().state == "sent"


def test_a_job_that_cannot_be_sent_is_an_error_and_gives_its_slot_back(clock):
    world = World(3)
    del world.configs[BOX]
    assert world.send(0).reason == "no such mailbox"
    assert "is not configured" in world.job(0).error
    world.configs[BOX] = fakes.config(BOX)

    def broken_render(campaign, job, message_id, date):
        raise KeyError("nome")

    world.sender.render = broken_render
    assert world.send(1).reason == "render failed" and "cannot render" in world.job(1).error
    world.sender.render = World.render
    world.sender.check_size = lambda config, raw, recipients: "12.0 MB: over the 10 MB the provider takes"
    assert world.send(2).reason == "over the size budget" and "over the 10 MB" in world.job(2).error
    # rendered once its slot is due (a waiting job reads its files once): the slot goes back
    assert len(world.limiter.acquired) == 2 and world.limiter.released == world.limiter.acquired
    assert world.smtp.submissions == []
    assert world.counters() == {"total": 3, "errors": 3}


def test_an_unknown_or_finished_job_is_left_alone(clock):
    world = World()
    assert world.sender.send("<nobody@pec.test>").reason == "unknown job (deleted?)"
    world.outgoing.try_move(
        world.jobs[0]["message_id"], Job(world.jobs[0]["recipient"], State.PENDING, True, CAMPAIGN), CLAIM
    )
    world.outgoing.apply(
        world.jobs[0]["message_id"],
        Job(world.jobs[0]["recipient"], State.SENDING, True, CAMPAIGN),
        Move(State.ERROR, frozenset({State.SENDING}), "test"),
    )
    assert world.send().reason == "already handled" and world.smtp.submissions == []


def test_a_campaigns_cc_is_in_the_envelope_of_each_message_and_counted_in_its_size(clock):
    """Issue 18: the fixed copy goes with every message (one submission, two recipients), its
    size checked for two recipients; the job and the counters stay one per message."""
    world = World(manifest={"cc": "archivio@pec.azienda.test"})
    sizes = []
    world.sender.check_size = lambda config, raw, recipients: sizes.append(recipients)
    assert world.send().state == "sent"
    [received] = world.smtp.received
    assert received.recipients == ("cliente2@pec.beta.test", "archivio@pec.azienda.test")
    assert sizes == [2] and world.counters() == {"total": 1, "sent": 1, "only_sent": 1, "waiting": 1}

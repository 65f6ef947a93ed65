"""Campaign guarantees under retries and waiting, on the local stack (issue 10, items 4, 5 and 6):
a retried fan-out, a long pause, a far-off start, a CSV replaced while queuing. What counts is
what the simulated provider received: one message per recipient, and every recipient served."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from local.pec_provider import Quota
from local.pecbuild import builder
from pecflow import bootstrap
from pecflow.adapters.dynamodb import CampaignStore
from pecflow.domain.reconcile import CampaignStatus
from tests.e2e.test_campaigns import MANIFEST, received_by, settle, upload

PLAIN = {**MANIFEST, "body_text": "Gentile {{ ragione_sociale }}.\n", "attachments": []}
PLAIN.pop("attachment_column")


def _campaign(stack, n: int, *, domain: str, quota: Quota | None = None):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", f"pec.alfa-{domain}.test"), quota=quota)
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", f"pec.beta-{domain}.test"))
    mailbox = f"ufficio@pec.alfa-{domain}.test"
    stack.add_company_mailbox(alfa, mailbox)
    addresses = [beta.add_mailbox(f"cliente{i:02d}@pec.beta-{domain}.test").address for i in range(n)]
    return {**PLAIN, "mailbox": mailbox}, addresses


def _rows(addresses):
    return [{"pec": a, "ragione_sociale": f"Ditta {i}"} for i, a in enumerate(addresses)]


# the crashed invocation has no metric to publish (Lambda's own Errors metric counts the crash)
@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
def test_a_fan_out_retried_after_a_crash_sends_each_recipient_once(stack):
    """The fan-out dies after queuing its first batch, before the checkpoint; Lambda retries the S3
    event a minute later, when the senders have already sent that batch."""
    manifest, addresses = _campaign(stack, 15, domain="retry")
    fanout = stack.runner.module("CampaignFanoutFunction")
    real = CampaignStore.checkpoint
    crashed = []

    def crash_once(self, *args, **kwargs):
        if not crashed:
            crashed.append(True)
            raise RuntimeError("fan-out killed before its checkpoint")
        return real(self, *args, **kwargs)

    campaigns = bootstrap.campaign_store(fanout.config)
    campaigns.checkpoint = crash_once.__get__(campaigns)
    fanout.fanout = bootstrap.fanout(fanout.config, campaigns=campaigns)
    upload(stack, "ritentata", manifest=manifest, rows=_rows(addresses), files={})
    counters = settle(stack, "ritentata")
    assert crashed, "the fan-out crashed once"
    retries = [i for i in stack.runner.invocations_of("CampaignFanoutFunction") if i.attempt > 1]
    assert retries and retries[0].ok, "the S3 event was retried and the retry finished the fan-out"
    assert counters["total"] == 15 and counters["delivered"] == 15
    for address in addresses:
        assert received_by(stack.network, address) == 1, address


def test_a_pause_of_seventy_minutes_then_resume_sends_every_job(stack):
    manifest, addresses = _campaign(stack, 4, domain="pausa")
    upload(
        stack,
        "pausa-lunga",
        manifest={**manifest, "start_at": "2026-03-02T08:20:00+00:00"},
        rows=_rows(addresses),
        files={},
    )
    stack.runner.run_until_idle(60)
    deployment = stack.deployment()
    assert bootstrap.campaign_admin(deployment).set_status("pausa-lunga", "pause") == CampaignStatus.PAUSED
    stack.runner.advance(70 * 60, timeout=300)
    assert stack.network.submissions == [], "nothing leaves while paused"
    bootstrap.campaign_admin(deployment).set_status("pausa-lunga", "resume")
    counters = settle(stack, "pausa-lunga")
    assert counters["delivered"] == 4 and counters["total"] == 4
    assert bootstrap.campaign_admin(deployment).stats("pausa-lunga")["status"] == "completed"
    for address in addresses:
        assert received_by(stack.network, address) == 1, address
    dead = stack.aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.aws.url("SendDeadLetterQueue"), AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert dead["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert stack.runner.invocations_of("CampaignDeadLettersFunction") == []


@pytest.mark.timeout(900)
def test_a_campaign_starting_thirty_days_ahead_sends_every_job(stack):
    """Each job wakes every 12 hours (SQS's longest wait): 60 deliveries of its queue message,
    more than the dead-letter limit of 50, unless waiting renews the message."""
    manifest, addresses = _campaign(stack, 3, domain="avanti")
    upload(
        stack,
        "tra-un-mese",
        manifest={**manifest, "start_at": "2026-04-01T08:00:00+00:00"},
        rows=_rows(addresses),
        files={},
    )
    stack.runner.run_until_idle(60)
    stack.runner.set_schedules_enabled(
        "PollSchedulerFunction", False
    )  # a month of polls finding nothing: skipped
    stack.runner.advance(30 * 86400 - 600, timeout=300)
    assert stack.network.submissions == []
    stack.runner.set_schedules_enabled("PollSchedulerFunction", True)
    counters = settle(stack, "tra-un-mese")
    assert counters["delivered"] == 3
    for address in addresses:
        assert received_by(stack.network, address) == 1, address
    assert stack.runner.invocations_of("CampaignDeadLettersFunction") == [], (
        "nothing reached the dead-letter queue"
    )
    wakeups = [i for i in stack.runner.invocations_of("SenderFunction") if i.ok]
    assert len(wakeups) > 3 * 50, "each job woke more often than the dead-letter limit"
    first = min(s.time for s in stack.network.submissions)
    assert first.timestamp() >= datetime.fromisoformat("2026-04-01T08:00:00+00:00").timestamp(), (
        "not before its start"
    )


def test_a_csv_replaced_while_queuing_queues_exactly_the_validated_rows_once(stack):
    manifest, addresses = _campaign(stack, 15, domain="csv")
    fanout = stack.runner.module("CampaignFanoutFunction")
    # stops after each batch (a margin no deadline leaves): a continuation follows
    real = bootstrap.fanout(fanout.config, margin=10**9)
    replaced = []

    class OneBatchPerInvocation:
        def run(self, campaign_id, **kwargs):
            result = real.run(campaign_id, **kwargs)
            if result.more and not replaced:  # the user uploads another file while the fan-out is queuing
                replaced.append(True)
                upload_csv(stack, "sostituita", [f"mai-validato{i}@pec.gamma.test" for i in range(40)])
            return result

    fanout.fanout = OneBatchPerInvocation()
    upload(stack, "sostituita", manifest=manifest, rows=_rows(addresses), files={})
    counters = settle(stack, "sostituita")
    assert replaced and len(stack.runner.invocations_of("CampaignFanoutFunction")) >= 2
    jobs = list(bootstrap.campaign_admin(stack.deployment()).jobs("sostituita"))
    assert sorted(j.recipient for j in jobs) == sorted(addresses), "exactly the validated rows, once each"
    assert counters["total"] == 15 and counters["delivered"] == 15
    for address in addresses:
        assert received_by(stack.network, address) == 1, address
    assert not any("mai-validato" in rcpt for s in stack.network.submissions for rcpt in s.rcpt_tos)


def upload_csv(stack, campaign_id: str, addresses: list[str]) -> None:
    body = "pec;ragione_sociale\r\n" + "".join(f"{a};Altra {i}\r\n" for i, a in enumerate(addresses))
    stack.aws.client("s3").put_object(
        Bucket=stack.aws.physical("CampaignBucket"),
        Key=f"campaigns/{campaign_id}/recipients.csv",
        Body=body.encode("cp1252"),
    )


def test_a_job_that_reaches_the_dead_letter_queue_shows_as_an_error_and_is_redriven(stack):
    """A job the senders keep failing on (here: its quota slot cannot be read) ends on the
    dead-letter queue: the statistics show it as an error with the reason, never silently, and
    `redrive` sends it once the cause is gone."""
    manifest, addresses = _campaign(stack, 3, domain="dlq")
    handler = stack.runner.module("SenderFunction")
    real = handler.delivery.sender.acquire
    unlucky = addresses[1]
    current = threading.local()  # the job each concurrent invocation is sending

    def failing_for_one(mailbox, now, **kwargs):
        if getattr(current, "recipient", None) == unlucky:
            raise ConnectionResetError("QuotaTable unreachable")
        return real(mailbox, now, **kwargs)

    class Tracking:
        def send(self, message_id):
            job = sender.outgoing.job(message_id)
            current.recipient = job.recipient if job else None
            return sender.send(message_id)

    sender = bootstrap.sender(handler.config, acquire=failing_for_one)
    handler.delivery = bootstrap.job_delivery(handler.config, sender=Tracking())
    upload(stack, "coda-errori", manifest=manifest, rows=_rows(addresses), files={})
    stack.runner.advance(4 * 3600, timeout=300)  # 50 deliveries, 3 minutes apart
    deployment = stack.deployment()
    stats = bootstrap.campaign_admin(deployment).stats("coda-errori")
    assert stats["dead_lettered"] == 1 and stats["counters"]["errors"] == 1
    assert stats["counters"]["delivered"] == 2
    [job] = [j for j in bootstrap.campaign_admin(deployment).jobs("coda-errori") if j.recipient == unlucky]
    assert job.state == "error" and "QuotaTable unreachable" in job.error
    assert stack.runner.invocations_of("CampaignDeadLettersFunction"), "recorded by the dead-letter function"

    handler.delivery = bootstrap.job_delivery(handler.config)  # the cause is gone
    assert bootstrap.campaign_admin(deployment).redrive("coda-errori") == {"redriven": 1, "queued": 1}
    counters = settle(stack, "coda-errori")
    assert counters["delivered"] == 3 and counters["errors"] == 0
    assert bootstrap.campaign_admin(deployment).stats("coda-errori")["dead_lettered"] == 0
    for address in addresses:
        assert received_by(stack.network, address) == 1, address

"""The fault matrix (issue 19, item 1): one parametrised suite on the local stack. Each cell injects
one fault at one boundary (local/faults.py: TCP proxies, the providers' own knobs, botocore hooks,
the runner's redelivery and timeouts, the existing kill points), lets the stack recover, has the
operator act on the inbox, and ends with the same five checks (tests/reliability/invariants.py).
`make reliability` prints the table."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from local.faults import CUT, PLAINTEXT, RESET, STALL, AwsFault
from local.pec_provider import DROP_AFTER_DATA, SMTP_REJECT
from pecflow import bootstrap
from pecflow.domain.reconcile import State
from tests.reliability.invariants import World, check_invariants

BIG = b"%PDF-1.7\n" + os.urandom(90_000) + b"\n%%EOF\n"  # ~120 KB in base64: a FETCH takes many reads


@dataclass(frozen=True)
class Cell:
    boundary: str
    fault: str
    run: Callable[[World], None]
    xfail: str | None = None


# --- IMAP -----------------------------------------------------------------------------------------


def imap_disconnect_mid_fetch(world: World) -> None:
    world.send_in(1, attachment=BIG)
    world.imap.fail(CUT, after=40_000)
    world.poll()
    assert world.imap.failed == [CUT], "the poll met the cut"
    world.saw_mailbox_status()
    world.expect_seen.append(("mailbox health", "interrupted"))


def imap_timeout(world: World) -> None:
    world.imap.fail(STALL)
    world.poll()
    world.imap.heal()
    world.saw_mailbox_status()
    world.expect_seen.append(("mailbox health", "timed out"))


def imap_auth_failure(world: World) -> None:
    dovecot = world.stack.dovecot
    dovecot.add_user(world.office.address, "cambiata-dal-gestore", keep_mail=True)
    world.poll()
    world.saw_mailbox_status()
    world.expect_seen.append(("mailbox health", "auth"))
    dovecot.add_user(world.office.address, world.office.password, keep_mail=True)


def imap_uidvalidity_change(world: World) -> None:
    world.poll()
    dovecot, address = world.stack.dovecot, world.office.address

    def uidvalidity() -> int:
        with dovecot.connect(address) as client:
            return client.folder_status("INBOX", ["UIDVALIDITY"])[b"UIDVALIDITY"]

    before = uidvalidity()
    time.sleep(1.1)  # Dovecot's new UIDVALIDITY is the time in seconds
    # the provider rebuilds the mailbox's index (a restore, a migration): same messages, new UIDs
    maildir = dovecot._users[address][2] / "Maildir"
    for index in [maildir / "dovecot-uidlist", *maildir.glob("dovecot.index*")]:
        index.unlink(missing_ok=True)
    assert uidvalidity() != before, "the provider changed UIDVALIDITY"
    world.send_in(1)


# --- SMTP (the office's campaign of three, through the proxy in front of its access point) ----------


def smtp_reject_at_rcpt(world: World) -> None:
    refused = world.clients[1].address
    world.stack.network.script(refused, SMTP_REJECT)
    world.campaign("rcpt")
    world.settle("rcpt")
    world.never.add(refused)
    world.saw_job_errors("rcpt")
    world.expect_seen.append(("job state", "550 5.1.1"))


def smtp_reject_at_data(world: World) -> None:
    world.alfa.data_replies.append("554 5.6.0 messaggio rifiutato dal gestore")
    world.campaign("data")
    world.settle("data")
    refused = [j.recipient for j in world.jobs("data") if j.state == "error"]
    assert len(refused) == 1, [(j.recipient, j.state) for j in world.jobs("data")]
    world.never |= set(refused)
    world.saw_job_errors("data")
    world.expect_seen.append(("job state", "554 5.6.0"))


def smtp_timeout_after_data(world: World) -> None:
    lost = world.clients[0].address
    world.stack.network.script(lost, DROP_AFTER_DATA, times=1)
    world.campaign("dopo-data")
    world.settle("dopo-data")
    [job] = [j for j in world.jobs("dopo-data") if j.recipient == lost]
    assert State.UNCERTAIN in job.reached_at and job.state == "delivered", "resolved by its receipts"


def smtp_tls_failure(world: World) -> None:
    world.smtp.fail(PLAINTEXT, times=None)
    world.campaign("tls")
    world.stack.runner.advance(10 * 60, timeout=120)
    assert world.smtp.failed and not [
        s for s in world.stack.network.submissions if s.account == world.office.address
    ]
    world.saw_job_errors("tls")
    world.expect_seen.append(("job state", "ssl"))
    world.smtp.heal()
    world.settle("tls")


def smtp_connection_reset(world: World) -> None:
    world.smtp.fail(RESET, times=2)
    world.campaign("reset")
    world.settle("reset")
    assert world.smtp.failed == [RESET, RESET]


# --- S3 -------------------------------------------------------------------------------------------


def s3_put_fails(world: World) -> None:
    world.stack.faults.add(
        AwsFault("s3", "PutObject", error=(500, "InternalError", "internal error"), times=5)
    )
    world.send_in(1)
    world.poll()
    world.saw_mailbox_status()
    world.expect_seen.append(("mailbox health", "archive"))


def s3_checksum_mismatch(world: World) -> None:
    world.stack.faults.add(AwsFault("s3", "PutObject", corrupt=True, times=1))
    world.send_in(1)
    world.poll()
    world.saw_mailbox_status()
    world.expect_seen.append(("mailbox health", "checksum"))


# --- DynamoDB -------------------------------------------------------------------------------------

THROTTLED = (
    400,
    "ProvisionedThroughputExceededException",
    "The level of configured provisioned throughput for the table was exceeded.",
)


def dynamodb_throttling(world: World) -> None:
    world.stack.faults.add(AwsFault("dynamodb", "*", error=THROTTLED, times=4))
    world.send_in(1)
    world.campaign("lenta")
    world.settle("lenta")


def dynamodb_conditional_check_failure(world: World) -> None:
    """Writes that succeeded but whose answer was lost (a 500): botocore's retry meets the
    condition the first write made false."""
    table = world.deployment.outgoing_table.encode()
    world.stack.faults.add(
        AwsFault("dynamodb", "UpdateItem", error=(500, "InternalServerError", "lost answer"),
                 after_success=True, contains=table, times=6)
    )  # fmt: skip
    world.campaign("condizione")
    world.settle("condizione")


def dynamodb_transaction_conflict(world: World) -> None:
    world.stack.faults.add(
        AwsFault("dynamodb", "TransactWriteItems",
                 error=(400, "TransactionCanceledException", "Transaction cancelled [TransactionConflict]"),
                 extra={"CancellationReasons": [{"Code": "TransactionConflict", "Message": "conflict"}]},
                 times=3)
    )  # fmt: skip
    world.send_in(1)
    world.campaign("conflitto")
    world.settle("conflitto")


# --- SQS ------------------------------------------------------------------------------------------


def sqs_duplicate_delivery(world: World) -> None:
    world.campaign("doppia")
    world.stack.runner.run_until_idle(60)
    sqs, queue = world.stack.aws.client("sqs"), world.stack.aws.url("SendQueue")
    for job in world.jobs("doppia"):  # each job on the queue twice, as at-least-once delivery may do
        sqs.send_message(
            QueueUrl=queue, MessageBody=json.dumps({"message_id": job.message_id}),
            MessageGroupId=f"dup-{world.tag}-{job.row}", MessageDeduplicationId=f"dup-{world.tag}-{job.row}",
        )  # fmt: skip
    world.settle("doppia")


def sqs_redelivery_after_visibility_timeout(world: World) -> None:
    """The sender sends, then runs past its timeout: the batch is not deleted, SQS delivers it
    again after the visibility timeout, and the job must not be sent again."""
    handler = world.stack.runner.module("SenderFunction")
    real, hung = handler.delivery, []

    class Hanging:
        def __getattr__(self, name):
            return getattr(real, name)

        def deliver(self, *args, **kwargs):
            result = real.deliver(*args, **kwargs)
            if not hung:
                hung.append(True)
                world.stack.clock.advance(world.stack.runner.functions["SenderFunction"].timeout + 1)
            return result

    handler.delivery = Hanging()
    try:
        world.campaign("rimessa")
        world.settle("rimessa")
    finally:
        handler.delivery = real
    timed_out = [i for i in world.invocations("SenderFunction") if i.error and "timed out" in i.error]
    assert hung and timed_out, "the sender ran past its timeout"


def sqs_poison_message(world: World) -> None:
    sqs = world.stack.aws.client("sqs")
    sqs.send_message(
        QueueUrl=world.stack.aws.url("SendQueue"), MessageBody="{non è json",
        MessageGroupId=f"veleno-{world.tag}", MessageDeduplicationId=f"veleno-{world.tag}",
    )  # fmt: skip
    world.campaign("dopo-veleno")
    world.settle("dopo-veleno")


# --- Lambda ---------------------------------------------------------------------------------------


def _poller_with(world: World, checkpoint) -> Callable[[], None]:
    handler = world.stack.runner.module("MailboxPollerFunction")
    original = handler.poller
    handler.poller = bootstrap.poller(
        handler.config, ingestor=bootstrap.ingestor(handler.config, checkpoint=checkpoint)
    )

    def restore() -> None:
        handler.poller = original

    return restore


def lambda_timeout_mid_batch(world: World) -> None:
    """The poller runs out of time on the second message of its batch: Lambda stops it there."""
    world.send_in(3)
    seen = []

    def out_of_time(step, uid):
        if step == "after_record":
            seen.append(uid)
            if len(seen) == 2:
                world.stack.clock.advance(world.stack.runner.functions["MailboxPollerFunction"].timeout + 1)
                raise SystemExit("Task timed out")

    restore = _poller_with(world, out_of_time)
    try:
        world.poll()
    finally:
        restore()
    assert any(i.error for i in world.invocations("MailboxPollerFunction")), "the poller was stopped"


def lambda_crash_poller(point: str) -> Callable[[World], None]:
    def run(world: World) -> None:
        world.send_in(2)
        hit = []

        def kill(step, uid):
            if step == point and not hit:
                hit.append(uid)
                raise RuntimeError(f"poller killed {point}")

        restore = _poller_with(world, kill)
        try:
            world.poll()
        finally:
            restore()
        assert hit, f"killed {point}"
        world.poll(4)  # the poll queue's visibility timeout, then the mailbox's next polls

    return run


def lambda_crash_sender(point: str) -> Callable[[World], None]:
    def run(world: World) -> None:
        handler = world.stack.runner.module("SenderFunction")
        original, hit = handler.delivery, []

        def kill(step, **where):
            if step == point and not hit:
                hit.append(step)
                raise RuntimeError(f"sender killed {point}")

        handler.delivery = bootstrap.job_delivery(
            handler.config, sender=bootstrap.sender(handler.config, checkpoint=kill)
        )
        try:
            world.campaign(f"crash-{point}".replace("_", "-"))
            world.settle(f"crash-{point}".replace("_", "-"))
        finally:
            handler.delivery = original
        assert hit, f"killed {point}"

    return run


# --- Cognito / API, TSA ---------------------------------------------------------------------------


def api_expired_token_mid_action(world: World) -> None:
    """The operator takes a message in charge, writes a reply; the token expires before they send."""
    world.poll()
    sha = world.take_in_charge()
    issuer = world.stack.issuer
    expired = issuer.issue(f"op-{world.tag}", now=time.time() - 7200)
    status, answer = world.api(
        f"/messages/{sha}/reply", "POST", body={"text": "Gentile cliente,\nrisposta.\n"}, token=expired
    )
    assert status == 401
    world.seen.append(("API answer", f"{status} {answer}"))
    world.expect_seen.append(("API answer", "Unauthorized"))
    world.token = issuer.issue(f"op-{world.tag}")  # signed in again
    status, answer = world.api(
        f"/messages/{sha}/reply", "POST", body={"text": "Gentile cliente,\nrisposta.\n"}
    )
    assert status == 200, answer
    world.audit_expected["reply"] += 1
    world.once.add(world.clients[0].address)
    world.stack.runner.run_until_idle(60)


def tsa_unavailable(world: World) -> None:
    world.poll()
    sha = world.take_in_charge()
    tsa = world.stack.tsa
    tsa.refuse = True
    try:
        status, answer = world.api(f"/messages/{sha}/evidence")
    finally:
        tsa.refuse = False
    assert status != 200
    world.seen.append(("API answer", f"{status} {answer}"))
    world.expect_seen.append(("API answer", "time-stamp"))
    status, answer = world.api(f"/messages/{sha}/evidence")
    assert status == 200 and answer["timestamped"], answer
    # the act is recorded before the pack is built (never an act unrecorded): both attempts are there
    world.audit_expected["evidence"] += 2


CELLS = [
    Cell("IMAP", "disconnect mid-FETCH", imap_disconnect_mid_fetch),
    Cell("IMAP", "timeout", imap_timeout),
    Cell("IMAP", "auth failure", imap_auth_failure),
    Cell("IMAP", "UIDVALIDITY change", imap_uidvalidity_change),
    Cell("SMTP", "reject at RCPT", smtp_reject_at_rcpt),
    Cell("SMTP", "reject at DATA", smtp_reject_at_data),
    Cell("SMTP", "timeout after DATA", smtp_timeout_after_data),
    Cell("SMTP", "TLS failure", smtp_tls_failure),
    Cell("SMTP", "connection reset", smtp_connection_reset),
    Cell("S3", "put fails", s3_put_fails),
    Cell("S3", "checksum mismatch", s3_checksum_mismatch),
    Cell("DynamoDB", "throttling", dynamodb_throttling),
    Cell("DynamoDB", "conditional check failure", dynamodb_conditional_check_failure),
    Cell("DynamoDB", "transaction conflict", dynamodb_transaction_conflict),
    Cell("SQS", "duplicate delivery", sqs_duplicate_delivery),
    Cell("SQS", "redelivery after visibility timeout", sqs_redelivery_after_visibility_timeout),
    Cell("SQS", "poison message", sqs_poison_message),
    Cell("Lambda", "timeout mid-batch (poller)", lambda_timeout_mid_batch),
    *(
        Cell("Lambda", f"poller crash {p}", lambda_crash_poller(p))
        for p in ("after_archive", "after_record", "before_cursor")
    ),
    *(
        Cell("Lambda", f"sender crash {p}", lambda_crash_sender(p))
        for p in ("after_slot", "after_claim", "after_archive", "after_submit")
    ),
    Cell("Cognito/API", "expired token mid-action", api_expired_token_mid_action),
    Cell("TSA", "unavailable (evidence pack)", tsa_unavailable),
]


def _params():
    for n, cell in enumerate(CELLS):
        marks = [pytest.mark.xfail(reason=cell.xfail, strict=True)] if cell.xfail else []
        yield pytest.param(n, cell, id=f"{cell.boundary}-{cell.fault}".replace(" ", "-"), marks=marks)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("order,cell", list(_params()))
def test_fault(world, order, cell):
    world.boundary, world.fault, world.order = cell.boundary, cell.fault, order
    cell.run(world)
    world.poll(2)  # recovered: the schedule's next polls, the queues' redeliveries
    if not world.audit_expected:
        world.take_in_charge()
    check_invariants(world)

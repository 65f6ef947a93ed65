"""No message can stop a mailbox (issue 10, item 1): against a real IMAP server (Dovecot) and moto.

A message whose record would not fit, one the parser fails on, one that kills the poller (time-out,
out of memory), one too large to fetch: each is archived where it can be, recorded as a bounded
summary with the reason, counted on the mailbox, and the mail after it is archived, recorded and
reconciled. A message that cannot be archived stays on the provider and the mailbox says why.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from local.pecbuild import builder
from pecflow.adapters.mail import ImapSession
from pecflow.pec import kinds, message
from pecflow.services.polling import PollRequest, handle_poll
from pecflow.services.receive import MAX_ATTEMPTS, build_record
from tests.integration.test_ingest import config_for, fill, our_traffic, poll

WHEN = datetime(2026, 3, 2, 9, tzinfo=UTC)
GESTORE = builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test")


def long_names_anomalia(to: str) -> bytes:
    """An ordinary e-mail with 100 attachments named with 4,500 characters each, as the provider
    delivers it: inside a busta di anomalia. Its full record is over DynamoDB's 400 KB."""
    files = [
        (f"{i:03d}-" + "nome-lunghissimo-" * 264 + ".pdf", "application/pdf", b"%PDF-1.4 x\n%%EOF\n")
        for i in range(100)
    ]
    ordinary = builder.messaggio_originale(
        mittente="chiunque@example.com",
        destinatari=[to],
        oggetto="Cento allegati",
        testo="x",
        allegati=files,
        data=WHEN,
    )
    return builder.busta_anomalia(ordinary, gestore=GESTORE, data=WHEN, motivo="messaggio non certificato")


def _poll_request(dovecot, wiring, account):
    return handle_poll(
        PollRequest(account.address, "t"),
        mailboxes=wiring.mailboxes,
        ingestor=wiring,
        password_of=lambda c, refresh=False: account.password,
        open_session=ImapSession.open,
    )


@pytest.fixture
def mailbox(dovecot, wiring):
    account = dovecot.fresh_user()
    wiring.mailboxes.put(config_for(dovecot, account))
    return account


def test_a_message_with_a_huge_record_is_recorded_bounded_and_the_mail_after_it_goes_on(
    dovecot, wiring, aws, mailbox
):
    poison = long_names_anomalia(mailbox.address)
    msg = message.parse(poison)
    assert msg.kind == kinds.ANOMALIA and len(msg.attachments) == 100
    assert sum(len(a.filename) for a in msg.attachments) > 400_000, "unbounded, its record would not fit"
    fill(dovecot, mailbox, [poison, *our_traffic(wiring, mailbox.address, 3)])
    outcome = _poll_request(dovecot, wiring, mailbox)
    assert outcome.ok and outcome.result.recorded == 7 and outcome.result.receipts_matched == 6
    record = next(r for r in wiring.messages.query(mailbox.address) if r.kind == kinds.ANOMALIA)
    assert len(record.attachments) == 100 and all(len(a["filename"]) == 255 for a in record.attachments)
    assert any("record fields cut to fit: attachments" in p for p in record.problems)
    assert record.s3_key, "the original is archived whole"
    assert {j.state for i in range(3) for j in wiring.outgoing.jobs(f"<m{i}@pec.azienda.test>")} == {
        "delivered"
    }


def test_a_message_the_parser_fails_on_is_quarantined_and_the_mail_after_it_goes_on(dovecot, wiring, mailbox):
    raws = our_traffic(wiring, mailbox.address, 3)
    bad = raws[2]

    def parser_with_a_bug(raw):
        if raw == bad:
            raise RecursionError("maximum recursion depth exceeded")
        return message.parse(raw)

    wiring.classify = parser_with_a_bug
    fill(dovecot, mailbox, raws)
    outcome = _poll_request(dovecot, wiring, mailbox)
    assert (
        outcome.ok
        and len(outcome.result.quarantined) == 1
        and "RecursionError" in outcome.result.quarantined[0]
    )
    assert outcome.result.receipts_matched == 5, "every other receipt reconciled"
    quarantined = wiring.messages.query(mailbox.address, index="Quarantined")
    assert len(quarantined) == 1
    summary = quarantined[0]
    assert summary.uid == 3 and summary.s3_key and summary.kind == kinds.MALFORMED
    assert summary.quarantined["stage"] == "record" and "RecursionError" in summary.problems[0]
    status = wiring.mailboxes.status(mailbox.address)
    assert status["quarantined"] == 1 and status["last_quarantined"]["uid"] == 3
    assert wiring.mailboxes.get_cursor(mailbox.address, "INBOX").last_uid == 6
    assert wiring.messages.count(mailbox.address) == 6, "every message recorded, the bad one as a summary"


class PollerDied(BaseException):
    """What a Lambda time-out or out-of-memory is to the code running: it just stops."""


def test_a_message_that_kills_the_poller_is_quarantined_after_a_few_polls(dovecot, wiring, mailbox):
    raws = our_traffic(wiring, mailbox.address, 3)
    deadly = raws[3]
    parsed = []

    def parser_that_dies(raw):
        if raw == deadly:
            parsed.append(raw)
            raise PollerDied()
        return message.parse(raw)

    wiring.classify = parser_that_dies
    fill(dovecot, mailbox, raws)
    # the first death is inside a batch (the cursor is written per batch); the polls after it
    # go one message at a time, so the deaths counted are the message's own
    for _ in range(MAX_ATTEMPTS + 1):
        with pytest.raises(PollerDied):
            poll(dovecot, mailbox, wiring)
    assert len(parsed) == MAX_ATTEMPTS + 1
    result = poll(dovecot, mailbox, wiring)
    assert len(parsed) == MAX_ATTEMPTS + 1, "not parsed again"
    assert len(result.quarantined) == 1 and "stopped 2 times" in result.quarantined[0]
    assert wiring.messages.count(mailbox.address) == 6
    summary = wiring.messages.query(mailbox.address, index="Quarantined")[0]
    assert summary.uid == 4 and summary.quarantined["stage"] == "classify" and summary.s3_key
    assert all(
        j.state in ("delivered", "delivery-failed")
        for i in (0, 2)
        for j in wiring.outgoing.jobs(f"<m{i}@pec.azienda.test>")
    )
    assert poll(dovecot, mailbox, wiring).fetched == 0


def test_a_poll_stopped_by_its_deadline_does_not_count_as_an_attempt(dovecot, wiring, mailbox):
    fill(dovecot, mailbox, our_traffic(wiring, mailbox.address, 4))
    for _ in range(MAX_ATTEMPTS + 1):
        budget = iter([100, 100, 0])
        poll(dovecot, mailbox, wiring, time_left=lambda budget=budget: next(budget, 0), margin=10)
    result = poll(dovecot, mailbox, wiring)
    assert result.quarantined == [] and wiring.messages.count(mailbox.address) == 8


def test_a_message_that_cannot_be_archived_stays_and_the_mailbox_says_why(dovecot, wiring, mailbox):
    fill(dovecot, mailbox, our_traffic(wiring, mailbox.address, 2))
    store = wiring.archive.store

    def s3_down(raw, sha=None):
        raise ClientError(
            {"Error": {"Code": "ServiceUnavailable", "Message": "Please reduce your request rate"}},
            "PutObject",
        )

    wiring.archive.store = s3_down
    for _ in range(MAX_ATTEMPTS + 1):
        outcome = _poll_request(dovecot, wiring, mailbox)
    assert (outcome.ok, outcome.error_kind) == (False, "archive")
    status = wiring.mailboxes.status(mailbox.address)
    assert (
        status["error_kind"] == "archive"
        and "UID 1" in status["last_error"]
        and "tried again" in status["last_error"]
    )
    assert wiring.messages.count(mailbox.address) == 0
    wiring.archive.store = store
    outcome = _poll_request(dovecot, wiring, mailbox)
    assert outcome.ok and outcome.result.quarantined == [], "S3 failing was no fault of the message"
    assert wiring.messages.count(mailbox.address) == 4 and "last_error" not in wiring.mailboxes.status(
        mailbox.address
    )


def test_when_dynamodb_fails_the_poll_stops_and_nothing_is_quarantined(dovecot, wiring, mailbox):
    fill(dovecot, mailbox, our_traffic(wiring, mailbox.address, 2))
    record = wiring.messages.record

    def throttled(*args, **kwargs):
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutItem"
        )

    wiring.messages.record = throttled
    for _ in range(MAX_ATTEMPTS + 1):
        with pytest.raises(ClientError):
            _poll_request(dovecot, wiring, mailbox)
    status = wiring.mailboxes.status(mailbox.address)
    assert status["error_kind"] == "internal" and "ProvisionedThroughputExceeded" in status["last_error"]
    wiring.messages.record = record
    outcome = _poll_request(dovecot, wiring, mailbox)
    assert outcome.ok and outcome.result.quarantined == [] and outcome.result.receipts_matched == 4


def test_a_message_too_large_to_fetch_is_left_on_the_provider_and_recorded(dovecot, wiring, mailbox):
    raws = our_traffic(wiring, mailbox.address, 2)
    big = builder.messaggio_originale(
        mittente="x@pec.test",
        destinatari=[mailbox.address],
        oggetto="grande",
        testo="x",
        allegati=[("grande.pdf", "application/pdf", b"%" * 300_000)],
        data=WHEN,
    )
    fill(dovecot, mailbox, [raws[0], big, *raws[1:]])
    wiring.max_message_bytes = 200_000
    result = poll(dovecot, mailbox, wiring)
    assert (
        result.recorded == 4
        and len(result.quarantined) == 1
        and "left on the provider" in result.quarantined[0]
    )
    summary = wiring.messages.query(mailbox.address, index="Quarantined")[0]
    assert summary.uid == 2 and summary.s3_key is None and summary.quarantined["stage"] == "fetch"
    assert result.receipts_matched == 4


def test_records_are_bounded_and_storable_whatever_the_message_says():
    addresses = [f"{'x' * 300}{i}@pec.test" for i in range(300)]
    original = builder.messaggio_originale(
        mittente="a@pec.test", destinatari=addresses, oggetto="Ö" * 40_000, testo="x", data=WHEN
    )
    msg = message.parse(original)
    msg.subject += "\ud800"  # a lone surrogate, as a hostile encoded word can produce
    msg.recipients = [message.Recipient(a, "certificato") for a in addresses]
    msg.problems.extend(f"problem {i} " + "é" * 2000 for i in range(400))
    record = build_record("m@pec.test", "INBOX", 1, 1, WHEN, original, "0" * 64, "k", msg)
    assert len(record["subject"]) == 2000 and len(record["to"]) == 100 and len(record["recipients"]) == 100
    assert len(record["problems"]) == 51
    assert "record fields cut to fit: problems, recipients, subject, to" in record["problems"][-1]
    encoded = json.dumps(record, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    assert len(encoded) < 400_000


def test_a_record_over_its_budget_even_cut_is_a_quarantined_summary(dovecot, wiring, mailbox):
    raws = our_traffic(wiring, mailbox.address, 2)
    heavy = raws[0]

    def parse_heavy(raw):  # 100 addresses of 1,000 four-byte characters in To and in Cc
        msg = message.parse(raw)
        if raw == heavy:
            msg.to = msg.cc = [f"{'𝔞' * 990}{i}@pec.test" for i in range(100)]
        return msg

    wiring.classify = parse_heavy
    fill(dovecot, mailbox, raws)
    result = poll(dovecot, mailbox, wiring)
    assert len(result.quarantined) == 1 and "over the 300,000-byte budget" in result.quarantined[0]
    summary = wiring.messages.query(mailbox.address, index="Quarantined")[0]
    assert summary.kind == kinds.ACCETTAZIONE and summary.ref_message_id == "<m0@pec.azienda.test>"
    assert wiring.messages.count(mailbox.address) == 4
    assert result.receipts_matched == 4, "reconciled all the same: its effect on the job is not lost"
    assert wiring.outgoing.jobs("<m0@pec.azienda.test>")[0].state == "delivered"

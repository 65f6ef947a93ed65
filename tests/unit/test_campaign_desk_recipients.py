"""The recipients of a campaign as pages for the console (CampaignDesk.recipients) on fakes: CSV
row order, each row's latest attempt with its receipts and the earlier ones, the outcome filter
(a read budget per request, never the whole campaign), signed cursors bound to their list."""

from __future__ import annotations

import typing

import pytest

from pecflow.api.campaigns import Outcome
from pecflow.domain.access import Forbidden, NotVisible, Person, Role
from pecflow.domain.inbox import CursorError
from pecflow.domain.reconcile import CLAIM, SMTP_ACCEPTED, SMTP_FAILED, Move, move_for_receipt
from pecflow.pec import kinds
from pecflow.services.admin import CampaignAdmin
from pecflow.services.audit import AuditLog
from pecflow.services.campaign_desk import OUTCOMES, READ_BUDGET, CampaignDesk, CampaignRefused
from tests import fakes

BOX = "ufficio@pec.alfa.test"
marco = Person("marco", "marco@alfa.test", roles={BOX: Role.MANAGER})


def desk_with(rows: int, campaign: str = "solleciti"):
    audit = fakes.FakeAuditStore()
    campaigns = fakes.FakeCampaignStore()
    outgoing = fakes.FakeOutgoingStore(campaigns)
    campaigns.create(campaign, {"status": "sending", "mailbox": BOX})
    campaigns.create("altrui", {"status": "sending", "mailbox": "altro@pec.alfa.test"})
    add(campaigns, outgoing, [job(campaign, row) for row in range(1, rows + 1)])
    admin = CampaignAdmin(campaigns, outgoing, fakes.FakeQueue(), AuditLog(audit))
    return CampaignDesk(admin, fakes.FakeUploads(), AuditLog(audit), cursor_secret=b"k" * 32), outgoing, audit


def add(campaigns, outgoing, jobs: list[dict]) -> None:
    """New jobs, counted in their campaign (as the fan-out and resend do)."""
    created = outgoing.add_jobs(jobs)
    if created:
        campaigns.add_jobs(jobs[0]["campaign_id"], created)


def job(campaign: str, row: int, attempt: int = 1) -> dict:
    return {"message_id": message_id(row, attempt), "recipient": f"Cliente{row}@pec.beta.test",
            "mailbox": BOX, "campaign_id": campaign, "row": row, "attempt": attempt}  # fmt: skip


def message_id(row: int, attempt: int = 1) -> str:
    return f"<c.{row}.{attempt}@pec.alfa.test>"


def move(outgoing, row: int, step: Move, attempt: int = 1, receipt: dict | None = None, **kw) -> None:
    record = outgoing.job(message_id(row, attempt))
    sha = f"{row:032x}{attempt:016x}{len(record.receipts):016x}" if receipt else None
    assert outgoing.try_move(record.message_id, record.as_job(), step, receipt_id=sha, receipt=receipt, **kw)


def receipt(kind: str, at: str, error_detail: str | None = None) -> dict:
    return {"kind": kind, "at": at, "error_detail": error_detail}


def sent(outgoing, row: int, attempt: int = 1) -> None:
    move(outgoing, row, CLAIM, attempt)
    move(outgoing, row, SMTP_ACCEPTED, attempt)


def test_every_row_in_csv_order_fifty_a_page_reading_one_job_per_row_and_one_more():
    desk, _, _ = desk_with(120)
    rows, cursor, reads = [], None, []
    while True:
        page = desk.recipients(marco, BOX, "solleciti", cursor)
        rows += page["recipients"]
        reads.append(page["read"])
        cursor = page["cursor"]
        if cursor is None:
            break
    assert [r["row"] for r in rows] == list(range(1, 121))
    assert reads == [51, 51, 20]  # 122 jobs read for 120 rows
    first = rows[0]
    assert first["address"] == "cliente1@pec.beta.test" and first["state"] == "pending"
    assert first["shown"] == "Da spedire" and first["message_id"] == message_id(1)
    assert first["receipts"] == [] and first["earlier"] == [] and first["attempt"] == 1


def test_a_row_shows_its_latest_attempt_receipts_in_order_and_its_earlier_attempts():
    desk, outgoing, _ = desk_with(3)
    sent(outgoing, 2)
    move(
        outgoing,
        2,
        move_for_receipt(kinds.ACCETTAZIONE),
        receipt=receipt("accettazione", "2026-11-20T09:00:01+01:00"),
    )
    failure = receipt("errore-consegna", "2026-11-20T09:00:09+01:00", "5.1.1 casella inesistente")
    move(outgoing, 2, move_for_receipt(kinds.ERRORE_CONSEGNA), receipt=failure)
    add(desk.admin.campaigns, outgoing, [job("solleciti", 2, attempt=2)])  # resend failed
    sent(outgoing, 2, attempt=2)
    move(outgoing, 2, move_for_receipt(kinds.AVVENUTA_CONSEGNA), attempt=2,
         receipt=receipt("avvenuta-consegna", "2026-11-21T10:00:00+01:00"))  # fmt: skip

    page = desk.recipients(marco, BOX, "solleciti")
    assert [r["row"] for r in page["recipients"]] == [1, 2, 3] and page["cursor"] is None
    row = page["recipients"][1]
    assert (row["attempt"], row["state"], row["shown"]) == (2, "delivered", "Accettata e consegnata")
    assert row["message_id"] == message_id(2, 2) and row["sent_at"]
    assert [r["kind"] for r in row["receipts"]] == ["avvenuta-consegna"]
    (before,) = row["earlier"]
    assert before["state"] == "delivery-failed" and before["shown"] == "Errore di consegna"
    assert before["error"] == "5.1.1 casella inesistente" and before["message_id"] == message_id(2)
    assert [r["kind"] for r in before["receipts"]] == ["accettazione", "errore-consegna"]
    assert all(len(r["sha256"]) == 64 for r in before["receipts"])
    assert before["receipts"][1]["error"] == "5.1.1 casella inesistente"


def test_the_filter_keeps_rows_by_their_latest_attempt_as_the_statistics_count_them():
    desk, outgoing, _ = desk_with(6)
    for row in (1, 2, 3, 4):
        sent(outgoing, row)
    move(outgoing, 2, move_for_receipt(kinds.AVVENUTA_CONSEGNA), receipt=receipt("avvenuta-consegna", "t"))
    move(outgoing, 3, move_for_receipt(kinds.NON_ACCETTAZIONE), receipt=receipt("non-accettazione", "t"))
    move(outgoing, 4, move_for_receipt(kinds.ERRORE_CONSEGNA), receipt=receipt("errore-consegna", "t"))
    move(outgoing, 5, SMTP_FAILED, also_set={"error": "550 5.1.1 utente sconosciuto"})
    add(desk.admin.campaigns, outgoing, [job("solleciti", 4, attempt=2)])  # row 4 resent: pending again

    def rows(outcome):
        return [r["row"] for r in desk.recipients(marco, BOX, "solleciti", outcome=outcome)["recipients"]]

    assert rows("failed") == [3, 5]  # what "resend" would send again (row 4 was resent)
    assert rows("errors") == [3, 5] and rows("delivery_failures") == []
    assert rows("delivered") == [2] and rows("sent") == [1, 2, 3]
    assert rows("to_send") == [4, 6] and rows("only_sent") == [1] and rows("waiting") == [1]
    error = desk.recipients(marco, BOX, "solleciti", outcome="failed")["recipients"][1]
    assert error["shown"] == "Errore (non spedita)" and error["error"] == "550 5.1.1 utente sconosciuto"


def test_an_external_recipient_accepted_is_said_so():
    desk, outgoing, _ = desk_with(1)
    sent(outgoing, 1)
    move(
        outgoing,
        1,
        move_for_receipt(kinds.ACCETTAZIONE),
        receipt=receipt("accettazione", "t"),
        certified=False,
    )
    (row,) = desk.recipients(marco, BOX, "solleciti", outcome="accepted")["recipients"]
    assert row["state"] == "accepted" and "non PEC" in row["shown"]
    assert desk.recipients(marco, BOX, "solleciti", outcome="waiting")["recipients"] == []


def test_a_filter_few_rows_match_reads_at_most_the_budget_per_request_and_goes_on():
    desk, outgoing, _ = desk_with(2500)
    for row in (10, 1500, 2400):
        move(outgoing, row, SMTP_FAILED)
    pages, cursor = [], None
    while True:
        page = desk.recipients(marco, BOX, "solleciti", cursor, outcome="failed")
        pages.append(([r["row"] for r in page["recipients"]], page["read"]))
        cursor = page["cursor"]
        if cursor is None:
            break
    assert all(read <= READ_BUDGET for _, read in pages)
    assert [row for rows, _ in pages for row in rows] == [10, 1500, 2400]
    assert sum(read for _, read in pages) <= 2500 + len(pages)  # a row is re-read at most at a page's edge


def test_a_row_split_across_two_reads_is_taken_whole():
    desk, outgoing, _ = desk_with(60)
    for row in range(1, 61):  # every row resent twice: three jobs a row, read 51, 102, ...
        add(desk.admin.campaigns, outgoing, [job("solleciti", row, 2), job("solleciti", row, 3)])
    first = desk.recipients(marco, BOX, "solleciti")
    second = desk.recipients(marco, BOX, "solleciti", first["cursor"])
    assert [r["row"] for r in first["recipients"] + second["recipients"]] == list(range(1, 61))
    assert all(
        r["attempt"] == 3 and [e["attempt"] for e in r["earlier"]] == [1, 2] for r in first["recipients"]
    )
    assert second["cursor"] is None


def test_cursors_are_signed_and_bound_to_their_campaign_and_filter():
    desk, outgoing, _ = desk_with(60)
    desk.admin.campaigns.create("altra", {"status": "sending", "mailbox": BOX})
    add(desk.admin.campaigns, outgoing, [job("altra", row) for row in range(1, 60)])
    cursor = desk.recipients(marco, BOX, "solleciti")["cursor"]
    assert desk.recipients(marco, BOX, "solleciti", cursor)["recipients"][0]["row"] == 51
    with pytest.raises(CursorError, match="another list or filter"):
        desk.recipients(marco, BOX, "solleciti", cursor, outcome="failed")
    with pytest.raises(CursorError, match="another list or filter"):
        desk.recipients(marco, BOX, "altra", cursor)
    for damaged in ("rotto", cursor[:-3], cursor[:8] + ("A" if cursor[8] != "A" else "B") + cursor[9:]):
        with pytest.raises(CursorError, match="start the list again"):
            desk.recipients(marco, BOX, "solleciti", damaged)
    other = CampaignDesk(desk.admin, desk.uploads, cursor_secret=b"z" * 32)
    with pytest.raises(CursorError, match="damaged"):
        other.recipients(marco, BOX, "solleciti", cursor)


def test_who_may_read_the_recipients_and_that_reading_them_is_not_audited():
    desk, _, audit = desk_with(2)
    with pytest.raises(NotVisible):
        desk.recipients(marco, BOX, "altrui")  # another mailbox's campaign
    with pytest.raises(NotVisible):
        desk.recipients(marco, BOX, "nessuna")
    with pytest.raises(Forbidden):
        desk.recipients(Person("otto", "otto@alfa.test", roles={BOX: Role.OPERATOR}), BOX, "solleciti")
    with pytest.raises(CampaignRefused, match="unknown outcome"):
        desk.recipients(marco, BOX, "solleciti", outcome="spam")
    assert len(desk.recipients(marco, BOX, "solleciti")["recipients"]) == 2
    assert list(audit.events(BOX)) == []


def test_the_api_offers_exactly_the_outcomes_the_desk_filters_by():
    assert set(typing.get_args(Outcome)) == set(OUTCOMES)


def test_a_filter_stops_reading_once_the_counters_say_no_other_row_can_match():
    desk, outgoing, _ = desk_with(2500)
    move(outgoing, 3, SMTP_FAILED)
    page = desk.recipients(marco, BOX, "solleciti", outcome="failed")
    assert [r["row"] for r in page["recipients"]] == [3] and page["cursor"] is None
    assert page["read"] == 51  # not the 2,500 jobs: the counters count one failure
    nothing = desk.recipients(marco, BOX, "solleciti", outcome="cancelled")
    assert nothing == {"recipients": [], "cursor": None, "read": 0}
    move(outgoing, 2400, SMTP_FAILED)
    first = desk.recipients(marco, BOX, "solleciti", outcome="failed")
    assert [r["row"] for r in first["recipients"]] == [3] and first["read"] == READ_BUDGET and first["cursor"]
    second = desk.recipients(marco, BOX, "solleciti", first["cursor"], outcome="failed")
    assert second["recipients"] == [] and second["read"] == READ_BUDGET and second["cursor"]  # still looking
    third = desk.recipients(marco, BOX, "solleciti", second["cursor"], outcome="failed")
    assert [r["row"] for r in third["recipients"]] == [2400] and third["cursor"] is None


def test_a_page_filled_before_the_end_of_the_last_read_still_has_a_cursor():
    desk, outgoing, _ = desk_with(130)
    for row in range(1, 31):
        move(outgoing, row, SMTP_FAILED)
    first = desk.recipients(marco, BOX, "solleciti", outcome="to_send")  # the second read reaches the end
    assert [r["row"] for r in first["recipients"]] == list(range(31, 81)) and first["cursor"]
    rest = desk.recipients(marco, BOX, "solleciti", first["cursor"], outcome="to_send")
    assert [r["row"] for r in rest["recipients"]] == list(range(81, 131)) and rest["cursor"] is None

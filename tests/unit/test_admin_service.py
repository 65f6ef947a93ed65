"""The campaign administration (CampaignAdmin: redrive, resend, the jobs listed) against the
in-memory fakes; tests/e2e/test_campaigns.py and test_campaign_guarantees.py prove the same on the
local stack."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pecflow.domain.reconcile import (
    CLAIM,
    DEAD_LETTER,
    SMTP_ACCEPTED,
    SMTP_FAILED,
    CampaignStatus,
    Job,
    State,
)
from pecflow.domain.records import JobRecord
from pecflow.services.admin import CampaignAdmin
from pecflow.services.sending import message_id_for
from tests import fakes

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
BOX = "ufficio@pec.azienda.test"
CAMPAIGN = "solleciti"


@pytest.fixture
def clock(monkeypatch) -> fakes.FakeClock:
    return fakes.FakeClock(START).install(monkeypatch)


def _world(n: int) -> tuple[CampaignAdmin, fakes.FakeQueue]:
    campaigns = fakes.FakeCampaignStore()
    outgoing = fakes.FakeOutgoingStore(campaigns)
    campaigns.create(CAMPAIGN, {"status": CampaignStatus.SENDING, "mailbox": BOX})
    campaigns.start_counting(CAMPAIGN, n)
    outgoing.add_jobs(
        [
            {
                "message_id": message_id_for(CAMPAIGN, row, 1, BOX),
                "recipient": f"Cliente{row}@pec.beta.test",
                "mailbox": BOX,
                "campaign_id": CAMPAIGN,
                "row": row,
                "attempt": 1,
                "values": {"nome": f"Ditta {row}"},
            }
            for row in range(2, n + 2)
        ]
    )
    queue = fakes.FakeQueue()
    return CampaignAdmin(campaigns=campaigns, outgoing=outgoing, send_queue=queue), queue


def _move(admin: CampaignAdmin, row: int, *moves) -> None:
    state = State.PENDING
    for move, fields in moves:
        recipient = Job(f"cliente{row}@pec.beta.test", state, True, CAMPAIGN)
        assert admin.outgoing.try_move(
            message_id_for(CAMPAIGN, row, 1, BOX), recipient, move, also_set=fields
        )
        state = move.to


def _queued(queue: fakes.FakeQueue) -> list[str]:
    return [json.loads(m["MessageBody"])["message_id"] for m in queue.messages]


def test_the_jobs_of_a_campaign_are_records_in_row_order(clock):
    admin, _ = _world(3)
    jobs = list(admin.jobs(CAMPAIGN))
    assert all(isinstance(job, JobRecord) for job in jobs)
    assert [(job.row, job.attempt, job.state) for job in jobs] == [(r, 1, State.PENDING) for r in (2, 3, 4)]
    assert jobs[0].recipient == "cliente2@pec.beta.test" and jobs[0].values == {"nome": "Ditta 2"}


def test_resend_makes_a_new_attempt_of_each_failed_recipient_once(clock):
    admin, queue = _world(3)
    _move(admin, 2, (SMTP_FAILED, {"error": "550 no such user"}))
    _move(admin, 3, (CLAIM, None), (SMTP_ACCEPTED, None))
    assert admin.resend_failed(CAMPAIGN) == 1
    again = message_id_for(CAMPAIGN, 2, 2, BOX)
    assert _queued(queue) == [again]
    job = admin.outgoing.job(again)
    assert (job.row, job.attempt, job.state, job.mailbox) == (2, 2, State.PENDING, BOX)
    assert job.recipient == "cliente2@pec.beta.test" and job.values == {"nome": "Ditta 2"}
    assert admin.campaigns.counters(CAMPAIGN)["total"] == 4
    assert admin.resend_failed(CAMPAIGN) == 0, "the latest attempt is pending: nothing to resend"


def test_redrive_sends_the_dead_lettered_jobs_and_the_pending_ones_again(clock):
    admin, queue = _world(3)
    _move(admin, 2, (DEAD_LETTER, {"dead_letter": "stopped", "error": "not sent"}))
    _move(admin, 3, (SMTP_FAILED, {"error": "550 no such user"}))
    assert admin.redrive(CAMPAIGN) == {"redriven": 1, "queued": 2}
    assert sorted(_queued(queue)) == sorted(message_id_for(CAMPAIGN, row, 1, BOX) for row in (2, 4))
    job = admin.outgoing.job(message_id_for(CAMPAIGN, 2, 1, BOX))
    assert job.state == State.PENDING and job.dead_letter is None and job.error is None and job.redriven_at
    assert admin.outgoing.job(message_id_for(CAMPAIGN, 3, 1, BOX)).state == State.ERROR, "a refusal stays"


def test_campaign_actions_are_in_the_mailboxs_audit_log(clock):
    from pecflow.services.audit import AuditLog

    admin, _ = _world(2)
    store = fakes.FakeAuditStore()
    admin.audit = AuditLog(store)
    admin.set_status(CAMPAIGN, "pause", by="cli:anna@pc")
    admin.set_status(CAMPAIGN, "resume", by="cli:anna@pc")
    admin.redrive(CAMPAIGN, by="cli:anna@pc")
    events = store.events(BOX)
    assert [(e.actor, e.action, e.message, e.details["change"]) for e in events] == [
        ("cli:anna@pc", "campaign", CAMPAIGN, "pause"),
        ("cli:anna@pc", "campaign", CAMPAIGN, "resume"),
        ("cli:anna@pc", "campaign", CAMPAIGN, "redrive"),
    ]
    assert AuditLog(store).verify(BOX).ok


# --- a grouped campaign's statistics by row (issue 18) -----------------------------------------------
GROUPS = {"rossi": (2, 4, 7, 8), "bianchi": (3, 6), "verdi": (5,)}  # 7 invoice rows, 3 customers


class Counted:
    """A store whose every method call is noted by name, in order: what a view asks of it."""

    def __init__(self, inner) -> None:
        self._inner, self.calls = inner, []

    def __getattr__(self, name: str):
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            self.calls.append(name)
            return value(*args, **kwargs)

        return call


def _grouped_world(*, legacy: bool = False) -> CampaignAdmin:
    """A campaign of 3 PEC covering 7 rows. `legacy`: its item keeps no row counters (created
    before they were kept)."""
    campaigns = fakes.FakeCampaignStore()
    outgoing = fakes.FakeOutgoingStore(campaigns)
    manifest = {"mailbox": BOX, "group_by": "pec"}
    campaigns.create(CAMPAIGN, {"status": CampaignStatus.SENDING, "mailbox": BOX, "manifest": manifest})
    campaigns.start_counting(CAMPAIGN, len(GROUPS), sum(map(len, GROUPS.values())))
    if legacy:
        del campaigns.items[CAMPAIGN]["row_counters"]
    outgoing.add_jobs(
        [
            {"message_id": message_id_for(CAMPAIGN, rows[0], 1, BOX), "recipient": f"{who}@pec.beta.test",
             "mailbox": BOX, "campaign_id": CAMPAIGN, "row": rows[0], "attempt": 1, "values": {"nome": who},
             "rows": list(rows)}
            for who, rows in GROUPS.items()
        ]
    )  # fmt: skip
    return CampaignAdmin(campaigns=campaigns, outgoing=outgoing, send_queue=fakes.FakeQueue())


def _move_group(admin: CampaignAdmin, who: str, *moves) -> None:
    """Move a group's job as the services do: from the job as read (its rows with it)."""
    for move in moves:
        record = admin.outgoing.job(message_id_for(CAMPAIGN, GROUPS[who][0], 1, BOX))
        assert admin.outgoing.try_move(record.message_id, record.as_job(), move)


def _sent_and_failed(admin: CampaignAdmin) -> None:
    _move_group(admin, "rossi", CLAIM, SMTP_ACCEPTED)  # 4 rows sent, waiting
    _move_group(admin, "bianchi", CLAIM, SMTP_FAILED)  # 2 rows in error; verdi's 1 row to send


ROWS_AFTER = {"total": 7, "to_send": 1, "waiting": 4, "sent": 4, "only_sent": 4, "accepted": 0, "delivered": 0,
              "delivery_failures": 0, "warnings": 0, "errors": 2, "cancelled": 0}  # fmt: skip


def test_a_grouped_campaigns_statistics_by_row_are_read_from_its_item_alone(clock):
    admin = _grouped_world()
    _sent_and_failed(admin)
    campaigns, outgoing = Counted(admin.campaigns), Counted(admin.outgoing)
    admin.campaigns, admin.outgoing = campaigns, outgoing
    stats = admin.stats(CAMPAIGN)
    assert stats["rows"] == ROWS_AFTER
    assert stats["counters"] == {
        **ROWS_AFTER,
        "total": 3,
        "waiting": 1,
        "sent": 1,
        "only_sent": 1,
        "errors": 1,
    }
    assert campaigns.calls == ["get"], "one read of the campaign item"
    assert outgoing.calls == [], "no job read, whatever the campaign's size"
    assert admin.row_counters(CAMPAIGN) == ROWS_AFTER, "the same figures as counted from the jobs"


def test_a_grouped_campaign_created_before_the_row_counters_counts_rows_from_its_jobs(clock):
    admin = _grouped_world(legacy=True)
    _sent_and_failed(admin)
    assert admin.outgoing.unrowed == {CAMPAIGN}, "its moves count messages only"
    outgoing = Counted(admin.outgoing)
    admin.outgoing = outgoing
    stats = admin.stats(CAMPAIGN)
    assert stats["rows"] == ROWS_AFTER and stats["counters"]["errors"] == 1
    assert outgoing.calls == ["campaign_jobs"], "its jobs are read once for the view"
    assert admin.campaigns.get(CAMPAIGN).row_counters is None


def test_a_campaign_not_grouping_rows_shows_no_row_figures(clock):
    admin, _ = _world(2)
    assert admin.stats(CAMPAIGN)["rows"] is None


def test_resending_a_group_counts_its_rows_again(clock):
    admin = _grouped_world()
    _sent_and_failed(admin)
    assert admin.resend_failed(CAMPAIGN) == 1
    stats = admin.stats(CAMPAIGN)
    assert (stats["counters"]["total"], stats["counters"]["to_send"]) == (4, 2)
    assert (stats["rows"]["total"], stats["rows"]["to_send"], stats["rows"]["errors"]) == (9, 3, 2)
    assert admin.resend_failed(CAMPAIGN) == 0 and admin.stats(CAMPAIGN)["rows"]["total"] == 9


def test_a_redriven_group_counts_its_rows_back_to_send(clock):
    admin = _grouped_world()
    record = admin.outgoing.job(message_id_for(CAMPAIGN, 3, 1, BOX))
    admin.outgoing.try_move(
        record.message_id, record.as_job(), DEAD_LETTER, also_set={"dead_letter": "stopped"}
    )
    assert admin.stats(CAMPAIGN)["rows"]["errors"] == 2
    assert admin.redrive(CAMPAIGN)["redriven"] == 1
    rows = admin.stats(CAMPAIGN)["rows"]
    assert (rows["errors"], rows["to_send"]) == (0, 7)

"""A grouped campaign's statistics by CSV row on moto (issue 18): kept beside the message counters
by the same writes, so a statistics view is two reads (the campaign item and its counters item)
whatever the campaign's size; a campaign created before they were kept is counted from its jobs,
and its moves go on."""

from __future__ import annotations

from collections import Counter

from pecflow.adapters.dynamodb import CampaignStore, OutgoingStore
from pecflow.domain.reconcile import CLAIM, SMTP_ACCEPTED, SMTP_FAILED, CampaignStatus
from pecflow.services.admin import CampaignAdmin
from pecflow.services.sending import message_id_for
from tests import fakes
from tests.integration.test_fakes_contract import as_of_old

BOX = "ufficio@pec.azienda.test"


def _requests(ddb) -> Counter:
    """The DynamoDB requests made through `ddb` from now on, by operation."""
    made: Counter = Counter()
    ddb.meta.client.meta.events.register(
        "before-call.dynamodb", lambda model, **_: made.update([model.name]), unique_id=f"count-{id(made)}"
    )
    return made


def _campaign(aws, campaign_id: str, jobs: int, *, legacy: bool = False) -> tuple[CampaignAdmin, object]:
    """`jobs` PEC of 3 rows each; the first tenth sent, the next tenth refused by SMTP."""
    ddb = aws.resource("dynamodb")
    campaigns = CampaignStore(aws.physical("CampaignsTable"), ddb)
    outgoing = OutgoingStore(
        aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")
    )
    manifest = {"mailbox": BOX, "group_by": "pec"}
    campaigns.create(campaign_id, {"status": CampaignStatus.SENDING, "mailbox": BOX, "manifest": manifest})
    campaigns.start_counting(campaign_id, jobs, 3 * jobs)
    if legacy:
        as_of_old(campaigns.table, campaign_id)
    job = {"mailbox": BOX, "campaign_id": campaign_id, "attempt": 1, "values": {"nome": "Ditta"}}
    rows = [2 + 3 * n for n in range(jobs)]
    for start in range(0, jobs, 10):
        outgoing.add_jobs(
            [{**job, "message_id": message_id_for(campaign_id, row, 1, BOX), "recipient": f"c{row}@pec.beta.test",
              "row": row, "rows": [row, row + 1, row + 2]} for row in rows[start : start + 10]]
        )  # fmt: skip
    for n, row in enumerate(rows[: jobs // 5]):
        record = outgoing.job(message_id_for(campaign_id, row, 1, BOX))
        moves = (CLAIM, SMTP_ACCEPTED) if n < jobs // 10 else (CLAIM, SMTP_FAILED)
        for move in moves:
            assert outgoing.try_move(record.message_id, record.as_job(), move)
            record = outgoing.job(record.message_id)
    return CampaignAdmin(campaigns=campaigns, outgoing=outgoing, send_queue=fakes.FakeQueue()), ddb


def test_a_statistics_view_is_two_reads_the_campaign_and_its_counters(aws):
    admin, ddb = _campaign(aws, "grande", 100)
    made = _requests(ddb)
    stats = admin.stats("grande")
    assert dict(made) == {"GetItem": 2}, "no job read"
    rows = stats["rows"]
    assert (rows["total"], rows["to_send"], rows["sent"], rows["waiting"], rows["errors"]) == (
        300,
        240,
        30,
        30,
        30,
    )
    assert rows == admin.row_counters("grande"), "the same figures as counted from every job"
    assert stats["counters"]["errors"] == 10


def test_a_campaign_created_before_the_row_counters_is_counted_from_its_jobs(aws):
    admin, ddb = _campaign(aws, "vecchia", 100, legacy=True)
    made = _requests(ddb)
    stats = admin.stats("vecchia")
    assert made["GetItem"] == 2 and made["Query"] >= 1, "its jobs are read"
    assert stats["rows"]["errors"] == 30 and stats["counters"]["errors"] == 10
    assert admin.campaigns.get("vecchia").row_counters is None


def test_a_move_counts_its_rows_in_the_same_write(aws):
    """No request more per move: the rows are added by the transaction that moves the job and its
    message counters. A campaign of old (no counters item, no row counters) costs two refused
    transactions, once per store (then its moves are written as before)."""
    for campaign_id, legacy, first_move in (("nuova", False, 1), ("vecchia", True, 3)):
        admin, ddb = _campaign(aws, campaign_id, 10, legacy=legacy)
        outgoing = OutgoingStore(
            aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")
        )
        records = [outgoing.job(message_id_for(campaign_id, 2 + 3 * n, 1, BOX)) for n in (4, 5)]
        made = _requests(ddb)
        for n, record in enumerate(records):
            assert outgoing.try_move(record.message_id, record.as_job(), CLAIM)
            sending = outgoing.job(record.message_id).as_job()
            made.clear()
            assert outgoing.try_move(record.message_id, sending, SMTP_ACCEPTED)
            assert dict(made) == {"TransactWriteItems": first_move if n == 0 else 1}, campaign_id
        rows = admin.campaigns.get(campaign_id).row_counters
        assert rows is None if legacy else rows["sent"] == 3 * 3


def test_a_move_counts_on_the_counters_item_not_on_the_campaign_item(aws):
    """The campaign item (manifest, file pins: kilobytes, in index ByMailbox) is not rewritten by
    a job's move: its counters item is, a few hundred bytes."""
    admin, ddb = _campaign(aws, "leggera", 10)
    item = admin.campaigns.table.get_item(Key={"campaign_id": "leggera"})["Item"]
    assert item["counters"]["sent"] == 0 and item["row_counters"]["sent"] == 0
    assert admin.stats("leggera")["counters"]["sent"] == 1

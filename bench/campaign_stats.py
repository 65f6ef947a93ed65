"""A grouped campaign's statistics view (API GET /mailboxes/{m}/campaigns/{id}, `campaign status`,
the console's panel polling): DynamoDB requests, items and bytes read per view, against moto with
template.yaml's tables, for a campaign of 2,000 PEC of 3 CSV rows each (--quick: 300; moto
itself slows down with the table's size: 20,000 takes hours there).

Measured twice on the same campaign: as kept now (counters and row_counters on the campaign's
counters item, `CampaignAdmin.stats` reads the campaign item and that one) and as a campaign created before the row counters
were kept (the same view counts the rows from every job: one Query of index ByCampaign, paged,
as every view did before). The jobs are written as the fan-out writes them (`job_items`), 20 of
them moved through the outgoing store so both ways count something.
Target: two requests per view (the campaign item and its counters item), whatever the campaign's size.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from _env import REPO  # first: the paths and fake AWS credentials

BOX = "ufficio@pec.azienda.test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 PEC (under 30 s on an idle machine)")
    parser.add_argument("--jobs", type=int, help="PEC in the campaign (default 2,000)")
    args = parser.parse_args()
    jobs = args.jobs or (300 if args.quick else 2_000)

    from moto import mock_aws

    from local.aws import LocalAws
    from pecflow.adapters.dynamodb import CampaignStore, OutgoingStore
    from pecflow.adapters.dynamodb._common import _clean
    from pecflow.adapters.dynamodb.campaigns import counters_key
    from pecflow.domain.reconcile import CLAIM, SMTP_ACCEPTED, CampaignStatus
    from pecflow.domain.records import KEPT_EMPTY, NewJob, job_items
    from pecflow.services.admin import CampaignAdmin
    from pecflow.services.sending import message_id_for

    with mock_aws():
        aws = LocalAws.in_process(Path(REPO) / "template.yaml")
        ddb = aws.resource("dynamodb")
        campaigns = CampaignStore(aws.physical("CampaignsTable"), ddb)
        outgoing = OutgoingStore(
            aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")
        )
        started = time.perf_counter()
        for campaign_id in ("nuova", "vecchia"):
            manifest = {"mailbox": BOX, "group_by": "pec"}
            campaigns.create(
                campaign_id, {"status": CampaignStatus.SENDING, "mailbox": BOX, "manifest": manifest}
            )
            campaigns.start_counting(campaign_id, jobs, 3 * jobs)
            if campaign_id == "vecchia":  # as kept before: counters on the item, no row_counters
                counted = campaigns.table.get_item(Key=counters_key(campaign_id))["Item"]
                campaigns.table.delete_item(Key=counters_key(campaign_id))
                campaigns.table.update_item(
                    Key={"campaign_id": campaign_id},
                    UpdateExpression="SET counters = :c REMOVE row_counters",
                    ExpressionAttributeValues={":c": counted["counters"]},
                )
            with outgoing.table.batch_writer() as batch:
                for n in range(jobs):
                    row = 2 + 3 * n
                    job = NewJob(message_id_for(campaign_id, row, 1, BOX), f"cliente{n}@pec.beta.test", BOX,
                                 campaign_id, row, 1, {"ragione_sociale": f"Società {n} S.r.l."}, (row, row + 1, row + 2))  # fmt: skip
                    head, item = job_items(job, "2026-03-02T09:00:00+00:00")
                    batch.put_item(Item=_clean(head))
                    batch.put_item(Item=_clean(item, keep=KEPT_EMPTY))
            for n in range(0, jobs, jobs // 20):
                record = outgoing.job(message_id_for(campaign_id, 2 + 3 * n, 1, BOX))
                for move in (CLAIM, SMTP_ACCEPTED):
                    outgoing.try_move(record.message_id, record.as_job(), move)
                    record = outgoing.job(record.message_id)
        print(f"{jobs:,} PEC x 3 rows, twice, written in {time.perf_counter() - started:.0f} s")

        made, read = Counter(), Counter()
        events = ddb.meta.client.meta.events
        events.register("before-call.dynamodb", lambda model, **_: made.update([model.name]))

        def after(http_response, parsed, **_) -> None:
            read["items"] += parsed.get("Count", 1 if "Item" in parsed else 0)
            read["bytes"] += len(http_response.content or b"")

        events.register("after-call.dynamodb", after)
        admin = CampaignAdmin(campaigns=campaigns, outgoing=outgoing, send_queue=None)  # type: ignore[arg-type]
        views = {}
        for campaign_id, how in (("vecchia", "counted from its jobs"), ("nuova", "row_counters kept")):
            made.clear()
            read.clear()
            started = time.perf_counter()
            rows = admin.stats(campaign_id)["rows"]
            seconds = time.perf_counter() - started
            views[campaign_id] = sum(made.values())
            print(f"{how}: {dict(made)}, {read['items']:,} items, {read['bytes']:,} bytes read, "
                  f"{seconds * 1000:,.0f} ms on moto; rows total {rows['total']:,}, sent {rows['sent']:,}")  # fmt: skip
        print(f"campaign_stats: {views['nuova']} requests per view at {jobs:,} PEC (target 2)")


if __name__ == "__main__":
    main()

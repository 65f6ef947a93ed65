"""A campaign's recipients as the console pages them (GET .../campaigns/{id}/recipients): DynamoDB
items read per recipient returned, API requests per page of 50 and Queries per request, for the
whole list and for each outcome filter.

The pages are read by `CampaignDesk.recipients` from index ByCampaign (row order); a filter is
applied to the rows read, with at most READ_BUDGET jobs read per request (no index per outcome):
a filter matching a fraction f of the rows reads about 1/f items per item returned, and a page of
50 takes about 50 / (f * READ_BUDGET) requests. tests/integration/test_campaign_desk.py asserts
the adapter on moto reads exactly what the service counts, page by page.

A campaign shaped like a real one (most delivered, a few waiting, failures, errors, resent rows):
100,000 rows (`--quick`: 10,000), in memory: the jobs sorted as the index keeps them, each Query
returning the `limit` jobs after the cursor's key, as DynamoDB does.
Target: at most 2 items read per item returned for the whole list (the drill-down's first view).
"""

from __future__ import annotations

import argparse
import bisect
import random
import sys
import time
from types import SimpleNamespace

from _env import REPO  # noqa: F401  (first: the paths and fake AWS credentials)

TARGET = 2.0
BOX = "ufficio@pec.azienda.test"
SHARES = (  # the latest attempt's state, and its share of the rows
    ("delivered", 0.86),
    ("accepted", 0.04),
    ("sent", 0.01),
    ("delivery-failed", 0.03),
    ("not-accepted", 0.01),
    ("error", 0.01),
    ("pending", 0.04),
)
RESENT = 0.02  # rows with a failed first attempt and a second one


class IndexByCampaign:
    """campaign_job_page over jobs sorted as index ByCampaign keeps them; counts the Queries."""

    def __init__(self, jobs):
        self.jobs = sorted(jobs, key=lambda j: (j.job_key, j.message_id, j.recipient))
        self.keys = [(j.job_key, j.message_id, j.recipient) for j in self.jobs]
        self.queries = 0

    def campaign_job_page(self, campaign_id, *, after=None, limit=100):
        self.queries += 1
        start = 0
        if after:
            start = bisect.bisect_right(
                self.keys, (after["job_key"], after["message_id"], after["recipient"])
            )
        page = self.jobs[start : start + limit]
        return page, start + limit <= len(self.jobs)


def campaign(n: int, rng: random.Random):
    from pecflow.domain.records import JobRecord, NewJob, job_items

    states = [state for state, share in SHARES for _ in range(round(share * 1000))]
    for row in range(1, n + 1):
        resent = rng.random() < RESENT
        for attempt in (1, 2) if resent else (1,):
            job = NewJob(f"<c.{row}.{attempt}@pec.azienda.test>", f"cliente{row}@pec.esempio.test", BOX,
                         "bench", row, attempt)  # fmt: skip
            _, item = job_items(job, "2026-11-20T09:00:00Z")
            item["state"] = "delivery-failed" if resent and attempt == 1 else rng.choice(states)
            if item["state"] in ("delivery-failed", "not-accepted"):
                item["receipts"] = {f"{row:064x}": {"kind": "errore-consegna", "at": "2026-11-20T09:01:00Z",
                                                    "error_detail": "5.1.1 casella inesistente"}}  # fmt: skip
            yield JobRecord.from_item({k: v for k, v in item.items() if v is not None})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 rows (under 30 s)")
    args = parser.parse_args()
    n = 10_000 if args.quick else 100_000

    from pecflow.domain.access import Person, Role
    from pecflow.domain.reconcile import buckets
    from pecflow.services.campaign_desk import OUTCOMES, READ_BUDGET, CampaignDesk
    from tests import fakes

    started = time.perf_counter()
    index = IndexByCampaign(campaign(n, random.Random(14)))
    campaigns = fakes.FakeCampaignStore()
    campaigns.create("bench", {"status": "sending", "mailbox": BOX})
    counters = campaigns.items["bench"]["counters"]  # as the moves keep them: every job counted
    for job in index.jobs:
        for name in ("total", *buckets(job.state, certified=job.certified)):
            counters[name] += 1
    admin = SimpleNamespace(campaigns=campaigns, outgoing=index)
    desk = CampaignDesk(admin, fakes.FakeUploads(), cursor_secret=b"b" * 32)  # type: ignore[arg-type]
    manager = Person("marco", "marco@azienda.test", roles={BOX: Role.MANAGER})

    print(
        f"a campaign of {n:,} rows ({len(index.jobs):,} jobs), pages of 50, at most {READ_BUDGET} jobs read a request"
    )
    print(
        f"{'filter':18} {'rows':>7} {'read':>8} {'read/row':>9} {'requests/50 rows':>17} {'queries/request':>16}"
    )
    whole = 0.0
    for outcome in (None, *OUTCOMES):
        rows = read = requests = 0
        index.queries = 0
        cursor = None
        while True:
            page = desk.recipients(manager, BOX, "bench", cursor, outcome)
            requests += 1
            rows += len(page["recipients"])
            read += page["read"]
            cursor = page["cursor"]
            if cursor is None:
                break
        ratio = f"{read / rows:9.2f}" if rows else f"{'-':>9}"
        per_page = f"{requests * 50 / rows:17.1f}" if rows else f"{requests:>11} (none)"
        if outcome is None:
            whole = read / rows
        print(
            f"{outcome or '(all)':18} {rows:7d} {read:8d} {ratio} {per_page} {index.queries / requests:16.1f}"
        )
    print(f"\n(+1 GetItem of the campaign item per request; {time.perf_counter() - started:.1f} s)")
    print(
        f"campaign_recipients: {whole:.2f} items read per item returned (all rows, {n:,}) (target <= {TARGET:g})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

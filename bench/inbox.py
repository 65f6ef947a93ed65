"""Listing the inbox without Scan: DynamoDB items read per message shown, and requests per page.

A mailbox shaped like a real PEC box (most items receipts, most messages handled, a few in the
charge of each of five people, some SdI, some campaigns' receipts, a year of dates): for each
filter of the inbox and for word search, the real adapter's plans (`pecflow.domain.inbox`) read
the first three pages of 50, and the figure is DynamoDB's own count of items read (ScannedCount)
per row returned, with the requests per page.

Two tables: moto (the real adapter, `InboxStore.page`, on template.yaml's InboxTable) with a
2,000-message mailbox (`--quick`: 300), and the 100,000-message mailbox (`--quick`: 5,000) in
the in-memory table of the tests (`tests/fakes.FakeInboxStore`), whose rows, items read and
requests per page tests/integration/test_inbox_store.py asserts equal to moto's, page by page.
moto cannot hold the large one: with the indexes it writes ~80 messages a second and answers a
query in seconds at a few thousand messages.
Target: at most 2 items read per item returned, for each filter and for a word search.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from _env import REPO  # first: the paths and fake AWS credentials

TARGET = 2.0
BOX = "ufficio@pec.azienda.test"
PEOPLE = ["anna", "bruno", "carla", "dario", "elena"]
WORDS = (
    "fattura sollecito pagamento contratto verbale assemblea diffida preventivo ordine consegna "
    "ricorso sentenza notifica avviso rimborso reclamo contestazione delibera bando gara offerta"
).split()


def mailbox(n: int, rng: random.Random):
    from pecflow.domain import clock
    from pecflow.domain.handling import Handling, Status

    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(n):
        at = start + timedelta(seconds=int(i * 365 * 86400 / n))
        pick = rng.random()
        kind = (
            "accettazione"
            if pick < 0.30
            else "avvenuta-consegna"
            if pick < 0.58
            else "errore-consegna"
            if pick < 0.60
            else "anomalia"
            if pick < 0.64
            else "posta-ordinaria"
            if pick < 0.67
            else "posta-certificata"
        )
        sha = f"{i:064x}"
        record = {
            "sha256": sha,
            "kind": kind,
            "subject": " ".join(rng.sample(WORDS, 3)) + f" n. {rng.randrange(10**6)}",
            "from": f"cliente{rng.randrange(2000)}@pec.cliente{rng.randrange(300)}.it",
            "to": [BOX],
            "received_at": at.isoformat(),
            "received_key": f"{clock.iso(at)}#{sha[:16]}",  # as the poller writes it
        }
        if kind == "posta-certificata" and rng.random() < 0.15:
            record["sdi"] = {"type": "RC"}
        campaign = (
            f"campagna-{rng.randrange(10)}"
            if kind in ("accettazione", "avvenuta-consegna") and rng.random() < 0.5
            else None
        )
        handling = None
        if kind not in ("accettazione", "avvenuta-consegna", "errore-consegna"):
            p = rng.random()
            who = rng.choice(PEOPLE)
            if p < 0.70:
                handling = Handling(Status.HANDLED, who, at, who, None, 2)
            elif p < 0.80:
                handling = Handling(Status.IN_CHARGE, who, at, who, None, 1)
        yield record, handling, campaign


POLL_SECONDS = 300  # template.yaml's PollSchedule: a poll's batch is what arrived since the last


def items(n: int):
    """Rows and the postings of their words as the poller writes them (`inbox_row`, then
    `postings` per poll batch: the messages received in the same 5 minutes, 25 at most; a word's
    few entries appended to their week's, else day's, open posting while it has room)."""
    from pecflow.adapters.dynamodb._common import _clean
    from pecflow.domain.inbox import inbox_row, joined, open_sks, postings

    rng = random.Random(7)
    batch: list[dict] = []
    window = None
    opened: dict[tuple, dict] = {}  # the hours' open postings, as the appends leave them

    def written(batch: list[dict]):
        for item in postings(BOX, batch):
            for sk in open_sks(item):
                joined_item = joined(opened.get((item["pk"], sk)), item, sk)
                if joined_item is not None:
                    opened[(item["pk"], sk)] = joined_item
                    yield joined_item  # a later append overwrites it
                    break
            else:
                yield item

    for record, handling, campaign in mailbox(n, rng):
        row = _clean(inbox_row(BOX, record, handling, campaign_id=campaign))
        at = int(datetime.fromisoformat(record["received_at"]).timestamp()) // POLL_SECONDS
        if batch and (at != window or len(batch) == 25):
            yield from written(batch)
            batch = []
        window = at
        batch.append(row)
        yield row
    yield from written(batch)


def populate_moto(store, n: int) -> float:
    """The items (`items`) put straight into moto's store: the bench measures reads, and moto's
    HTTP layer would make writing 100,000 messages take most of an hour."""
    from boto3.dynamodb.types import TypeSerializer
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][store.table.meta.client.meta.region_name]
    table = backend.get_table(store.table_name)
    serialize = TypeSerializer().serialize
    began = time.perf_counter()
    for i, item in enumerate(items(n)):
        table.put_item({k: serialize(v) for k, v in item.items()})
        if i and i % 20000 == 0:
            print(f"  {i:,} items written", file=sys.stderr)
    return time.perf_counter() - began


def populate_memory(memory, n: int) -> None:
    for item in items(n):
        memory.items[(item["pk"], item["sk"])] = item


def filters():
    from pecflow.domain.handling import Status
    from pecflow.domain.inbox import Filters

    week = datetime(2026, 6, 1, tzinfo=UTC)
    return [
        ("new messages (the list)", Filters(), True),
        ("receipts", Filters(receipts=True), True),
        ("kind: anomalia", Filters(kind="anomalia"), True),
        ("da gestire", Filters(handling=Status.OPEN), True),
        ("in carico (anyone)", Filters(handling=Status.IN_CHARGE), True),
        ("in whose charge: anna", Filters(holder="anna"), True),
        ("campaign", Filters(campaign="campagna-3"), True),
        ("has an SdI file", Filters(has_sdi=True), True),
        ("received in one week", Filters(received_from=week, received_to=week + timedelta(days=7)), True),
        ("word: fattura", Filters(text="fattura"), True),
        ("word of a party: cliente17", Filters(text="cliente17"), True),
        ("two words: fattura sollecito", Filters(text="fattura sollecito"), False),
        ("word + da gestire", Filters(text="diffida", handling=Status.OPEN), False),
        (
            "da gestire + one week",
            Filters(handling=Status.OPEN, received_from=week, received_to=week + timedelta(days=7)),
            True,
        ),
    ]


def measure(label: str, store, n: int) -> float:
    from pecflow.domain.inbox import plan

    print(f"\n{label}: a mailbox of {n:,} messages, pages of 50, three pages per filter")
    print(f"{'filter':34} {'rows':>5} {'read':>6} {'read/row':>9} {'requests/page':>14}")
    worst = 0.0
    for name, f, counted in filters():
        query = plan(BOX, f)
        rows = read = requests = pages = 0
        start = None
        for _ in range(3):
            page = store.page(query, limit=50, start_key=start)
            pages += 1
            rows += len(page.rows)
            read += page.items_read
            requests += page.requests
            start = page.next_key
            if start is None:
                break
        ratio = read / rows if rows else float("nan")
        if rows and counted:
            worst = max(worst, ratio)
        mark = "" if counted else "  (combination: not in the target)"
        print(f"{name:34} {rows:5d} {read:6d} {ratio:9.2f} {requests / pages:14.1f}{mark}")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="300 messages on moto, 5,000 in memory (under 30 s)"
    )
    args = parser.parse_args()
    on_moto, in_memory = (300, 5_000) if args.quick else (2_000, 100_000)

    from moto import mock_aws

    from local.aws import LocalAws
    from pecflow.adapters.dynamodb.inbox import InboxStore
    from tests.fakes import FakeAuditStore, FakeInboxStore

    with mock_aws():
        aws = LocalAws.in_process(REPO / "template.yaml")
        store = InboxStore(aws.physical("InboxTable"), aws.resource("dynamodb"))
        populate_moto(store, on_moto)
        moto_worst = measure("moto (the real adapter)", store, on_moto)
    memory = FakeInboxStore(FakeAuditStore())
    populate_memory(memory, in_memory)
    worst = measure("in memory (reads counted as DynamoDB counts them)", memory, in_memory)
    print(
        f"\nworst single filter or word search: {moto_worst:.2f} on moto ({on_moto:,}), {worst:.2f} in memory ({in_memory:,})"
    )
    print(
        f"inbox: {worst:.2f} items read per item returned (worst filter, {in_memory:,} messages, pages of 50) (target <= {TARGET:g})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

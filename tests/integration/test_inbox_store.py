"""The inbox on DynamoDB (moto, template.yaml's InboxTable, AuditTable, PeopleTable) against its
fake: the same pages for every filter, the acts and their audit events in one transaction, one
winner of a race, the bin; people and their roles."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from boto3.dynamodb.conditions import Key

from pecflow.adapters.dynamodb._common import _plain, pages
from pecflow.adapters.dynamodb.audit import AuditStore
from pecflow.adapters.dynamodb.inbox import InboxStore
from pecflow.adapters.dynamodb.people import PeopleStore
from pecflow.domain.access import Person, Role
from pecflow.domain.handling import Act, HandlingConflict, Status
from pecflow.domain.inbox import INDEXES, MAX_WORD_CHARS, OPEN_ENTRIES, Filters, inbox_row, word_key
from pecflow.services.audit import AuditLog
from pecflow.services.inbox import Inbox
from tests import fakes

BOX = "ufficio@pec.alfa.test"
KINDS = ["posta-certificata", "posta-certificata", "anomalia", "accettazione", "avvenuta-consegna"]

anna = Person("anna", "anna@alfa.test", roles={BOX: Role.OPERATOR})
bruno = Person("bruno", "bruno@alfa.test", roles={BOX: Role.OPERATOR})
carla = Person("carla", "carla@alfa.test", roles={BOX: Role.ADMIN})


QUIET = "quieta@pec.alfa.test"  # a mailbox whose polls bring one message each
dora = Person("dora", "dora@alfa.test", roles={QUIET: Role.OPERATOR})


class People:
    def person(self, username):
        return {"anna": anna, "bruno": bruno, "carla": carla, "dora": dora}.get(username)


def record(i: int):
    day = 1 + i % 28
    return {
        "sha256": f"{i:064x}",
        "kind": KINDS[i % len(KINDS)],
        "subject": f"Pratica {i} fattura {i % 7} – Società Àlfa" if i % 2 else f"Richiesta {i}",
        "from": f"cliente{i % 5}@pec.beta.it",
        "to": [BOX],
        "received_at": f"2026-11-{day:02d}T09:00:00+00:00",
        "received_key": f"2026-11-{day:02d}T09:{i % 60:02d}:{i % 13:02d}.000000Z#{i:016x}",
        **({"sdi": {"type": "RC"}} if i % 11 == 0 else {}),
    }


@pytest.fixture(scope="module")
def worlds(moto_stack):
    ddb = moto_stack.resource("dynamodb")
    audit = AuditStore(moto_stack.physical("AuditTable"), ddb)
    real = InboxStore(moto_stack.physical("InboxTable"), ddb, audit_table=moto_stack.physical("AuditTable"))
    fake_audit = fakes.FakeAuditStore()
    fake = fakes.FakeInboxStore(fake_audit)
    for i in range(120):
        assert real.add(BOX, record(i))
        fake.add(BOX, record(i))
    assert not real.add(BOX, record(3))  # recorded again: the row stays as it is
    for store in (real, fake):
        # the postings as polls write them: batches of up to 25, whose hours overlap (the same
        # day's 09:00), then some written again in another batching (a poll after a crash), and
        # a word copy of a row as tables written before postings hold it
        for start in range(0, 120, 25):
            store.index_words(BOX, [inbox_row(BOX, record(i)) for i in range(start, min(start + 25, 120))])
        store.index_words(BOX, [inbox_row(BOX, record(i)) for i in range(40, 70, 3)])
    legacy_row = inbox_row(BOX, record(7))
    legacy = {k: v for k, v in legacy_row.items() if k not in INDEXES and v is not None}
    legacy |= {
        "pk": word_key(BOX, "messages", "fattura"),
        "sk": legacy_row["received_key"],
        "row_pk": legacy_row["pk"],
    }
    real.table.put_item(Item=legacy)
    fake.items[(legacy["pk"], legacy["sk"])] = legacy
    inboxes = {
        name: Inbox(rows, a, People(), None, cursor_secret=b"k" * 32, now=fakes.Ticking())
        for name, rows, a in (("dynamodb", real, audit), ("fake", fake, fake_audit))
    }
    for inbox in inboxes.values():  # one in the bin (its words: still in its postings)
        inbox.delete(carla, BOX, f"{21:064x}", "per la prova")
    return inboxes, {"dynamodb": audit, "fake": fake_audit}


def every_page(inbox, filters, size, costs=None, person=carla):
    rows, cursor, pages = [], None, 0
    mailbox = next(iter(person.roles))
    while True:
        listing = inbox.list(person, mailbox, filters, cursor=cursor, size=size)
        pages += 1
        rows += [r["sha256"] for r in listing.rows]
        if costs is not None:
            costs.append((listing.items_read, listing.requests))
        if listing.cursor is None:
            return rows, pages
        cursor = listing.cursor


FILTERS = [
    Filters(),
    Filters(receipts=True),
    Filters(kind="anomalia"),
    Filters(kind="accettazione"),
    Filters(has_sdi=True),
    Filters(has_sdi=False, kind="posta-certificata"),
    Filters(handling=Status.OPEN),
    Filters(received_from=datetime(2026, 11, 5, tzinfo=UTC), received_to=datetime(2026, 11, 9, tzinfo=UTC)),
    Filters(text="fattura"),
    Filters(text="fattura alfa cliente2"),
    Filters(text="richiesta", kind="posta-certificata"),
]


@pytest.mark.parametrize("filters", FILTERS, ids=[f"filter{i}" for i in range(len(FILTERS))])
@pytest.mark.parametrize("size", [7, 50])
def test_the_same_pages_as_the_fake(worlds, filters, size):
    inboxes, _ = worlds
    real_costs, fake_costs = [], []
    real, real_pages = every_page(inboxes["dynamodb"], filters, size, real_costs)
    fake, _ = every_page(inboxes["fake"], filters, size, fake_costs)
    assert real and real == fake and len(set(real)) == len(real)
    assert fake_costs == real_costs  # items read and requests per page, as DynamoDB counts them
    assert real_pages == max(1, -(-len(real) // size))  # no empty last page


def test_a_race_has_one_winner_and_one_audit_event(worlds):
    inboxes, audits = worlds
    inbox, sha = inboxes["dynamodb"], f"{5:064x}"
    results, barrier = {}, threading.Barrier(2)

    def take(person):
        barrier.wait()
        try:
            results[person.username] = inbox.act(person, BOX, sha, Act.TAKE)
        except HandlingConflict as exc:
            results[person.username] = exc

    threads = [threading.Thread(target=take, args=(p,)) for p in (anna, bruno)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    losers = [r for r in results.values() if isinstance(r, HandlingConflict)]
    assert len(losers) == 1 and losers[0].code == "held-by-other"
    (winner,) = [n for n, r in results.items() if not isinstance(r, HandlingConflict)]
    for inbox_ in inboxes.values():  # a word search reads the row as the act left it
        if inbox_ is inbox:
            assert sha in every_page(inbox_, Filters(text="pratica", holder=winner), 50)[0]
            assert sha not in every_page(inbox_, Filters(text="pratica", handling=Status.OPEN), 50)[0]
    trail = AuditLog(audits["dynamodb"]).trail(BOX, sha)
    assert [e.action for e in trail] == ["take-in-charge"]
    assert AuditLog(audits["dynamodb"]).verify(BOX).ok


def dynamodb_size(item: dict) -> int:
    """An item's size as DynamoDB bills it (names and UTF-8 values; a list: 3 bytes and 1 per
    element), for the strings, numbers and lists of strings postings hold."""

    def value(v) -> int:
        if isinstance(v, list):
            return 3 + sum(1 + value(x) for x in v)
        return len(str(v).encode())

    return sum(len(k.encode()) + value(v) for k, v in item.items())


def test_small_polls_share_their_weeks_then_days_open_posting_under_1_kb(moto_stack):
    """A quiet mailbox's polls (one message each) append their words to the week's open posting
    while it has room (one item, under 1 KB: 1 WRU a write), then to the day's, then write items
    of their own;
    a search finds every message, newest first, on DynamoDB and on the fake alike."""
    box = QUIET
    real = InboxStore(moto_stack.physical("InboxTable"), moto_stack.resource("dynamodb"))
    fake = fakes.FakeInboxStore(fakes.FakeAuditStore())
    rows = [
        inbox_row(
            box,
            {
                **record(i),
                "kind": "posta-certificata",
                "subject": f"Sollecito {i}",
                "received_key": f"2026-11-03T10:{i:02d}:00.000000Z#{f'{i:064x}'[:16]}",
            },
        )
        for i in range(22)
    ]
    for store in (real, fake):
        for row in rows:
            assert store.add(box, row)
            store.index_words(box, [row])  # a poll of its own each
        store.index_words(box, rows[3:4])  # one written again (a poll after a crash)
    key = word_key(box, "messages", "sollecito")
    items = [_plain(i) for i in real.table.query(KeyConditionExpression=Key("pk").eq(key))["Items"]]
    fake_items = sorted((i for (pk, _), i in fake.items.items() if pk == key), key=lambda i: i["sk"])
    assert [(i["sk"], i["entries"]) for i in items] == [(i["sk"], i["entries"]) for i in fake_items]
    (opened,) = [i for i in items if i["sk"] == "2026-11-08T23~week"]  # that week's last hour
    (day,) = [i for i in items if i["sk"] == "2026-11-03T23~day"]  # then the day's
    assert len(opened["entries"]) == OPEN_ENTRIES and dynamodb_size(opened) < 1024
    longest = {**opened, "pk": word_key("m" * 64 + "@pec.alfa.test", "messages", "w" * MAX_WORD_CHARS)}
    assert dynamodb_size(longest) < 1024  # a long address, the longest word
    assert len(day["entries"]) == OPEN_ENTRIES  # the week's full: the day's, then items of their own
    assert len(items) == 2 + (22 - 2 * OPEN_ENTRIES) + 1  # (the one written again: its own too)
    for store in (real, fake):
        inbox = Inbox(
            store, fakes.FakeAuditStore(), People(), None, cursor_secret=b"k" * 32, now=fakes.Ticking()
        )
        found, _ = every_page(inbox, Filters(text="sollecito"), 5, person=dora)
        assert found == [f"{i:064x}" for i in reversed(range(22))]


def test_delete_and_restore_on_dynamodb(worlds):
    inboxes, audits = worlds
    inbox, sha = inboxes["dynamodb"], f"{10:064x}"
    inbox.delete(carla, BOX, sha, "inviata per errore")
    assert sha not in every_page(inbox, Filters(), 50)[0]
    assert sha in every_page(inbox, Filters(bin=True), 50)[0]
    inbox.restore(carla, BOX, sha)
    assert sha in every_page(inbox, Filters(), 50)[0]
    assert [e.action for e in AuditLog(audits["dynamodb"]).trail(BOX, sha)] == ["delete", "restore"]


def stored_rows(inbox) -> list[dict]:
    """Every row of the mailbox, read the simplest way (a scan: a test's brute force)."""
    store = inbox.rows
    if isinstance(store, InboxStore):
        scanned = (i for page in pages(store.table.scan) for i in page["Items"])
        return [_plain(i) for i in scanned if i["sk"] == "row"]
    return store.rows()


WORD_SEARCHES = [  # a word search, and what it finds by brute force on a row
    (
        Filters(text="fattura"),
        lambda r: "fattura" in r["words"] and r["list_pk"].startswith(f"{BOX}#messages#"),
    ),
    (
        Filters(
            text="fattura",
            received_from=datetime(2026, 11, 5, tzinfo=UTC),
            received_to=datetime(2026, 11, 9, 9, 30, tzinfo=UTC),
        ),
        lambda r: (
            "fattura" in r["words"]
            and r["list_pk"].startswith(f"{BOX}#messages#")
            and "2026-11-05" <= r["received_key"] <= "2026-11-09T09:30:00.000000Z~"
        ),
    ),
    (
        Filters(text="fattura cliente2"),
        lambda r: {"fattura", "cliente2"} <= set(r["words"]) and r["list_pk"].startswith(f"{BOX}#messages#"),
    ),
    (
        Filters(text="pratica", handling=Status.OPEN),
        lambda r: (
            "pratica" in r["words"]
            and r["list_pk"].startswith(f"{BOX}#messages#")
            and r["handling"] == "da-gestire"
        ),
    ),
    (
        Filters(text="pratica", receipts=True),
        lambda r: "pratica" in r["words"] and r["list_pk"] == f"{BOX}#receipts",
    ),
    (Filters(text="pratica", bin=True), lambda r: "pratica" in r["words"] and r["list_pk"] == f"{BOX}#bin"),
]


@pytest.mark.parametrize("search", range(len(WORD_SEARCHES)))
@pytest.mark.parametrize("size", [1, 3, 200])
def test_word_pages_are_exactly_the_rows_newest_first(worlds, search, size):
    """Postings of overlapping batches in one hour, across hours, written twice, and a word copy
    of before: every page of a word search, put together, is the brute force's list, each once."""
    inboxes, _ = worlds
    filters, found = WORD_SEARCHES[search]
    for inbox in inboxes.values():
        expected = [
            r["sha256"]
            for r in sorted(stored_rows(inbox), key=lambda r: r["received_key"], reverse=True)
            if found(r)
        ]
        rows, pages = every_page(inbox, filters, size)
        assert rows == expected
        assert pages == max(1, -(-len(expected) // size))
    assert inboxes["dynamodb"].list(carla, BOX, filters).rows  # something found in each search, on DynamoDB


def test_people_and_their_roles(moto_stack):
    people = PeopleStore(moto_stack.physical("PeopleTable"), moto_stack.resource("dynamodb"))
    assert people.add(
        Person("dario", "dario@alfa.test", "Dario Neri"), created_at="2026-11-26T09:00:00+00:00"
    )
    assert not people.add(Person("dario", "altro@alfa.test"), created_at="2026-11-26T09:00:00+00:00")
    people.set_role("dario", "Ufficio@PEC.alfa.test", Role.OPERATOR)
    people.set_role("dario", "legale@pec.alfa.test", Role.VIEWER)
    dario = people.person("dario")
    assert dario is not None and dario.roles == {BOX: Role.OPERATOR, "legale@pec.alfa.test": Role.VIEWER}
    assert ("dario", Role.OPERATOR) in people.on_mailbox(BOX)
    people.set_role("dario", "legale@pec.alfa.test", None)
    assert people.person("dario").roles == {BOX: Role.OPERATOR}
    assert people.set_enabled("dario", False) and not people.person("dario").enabled
    assert not people.set_enabled("nessuno", False)
    assert "dario" in [p.username for p in people.everyone()]


def test_a_deleted_message_restored_its_archived_original_untouched(moto_stack):
    """Delete and restore touch the inbox row only: the archived original's bytes, checksum and
    versions, and the message record, stay exactly as they were."""
    import hashlib

    from local.pecbuild import builder
    from pecflow.adapters.archive import Archive
    from pecflow.adapters.dynamodb import MessageStore
    from pecflow.pec.message import parse
    from pecflow.services.receive import build_record

    ddb = moto_stack.resource("dynamodb")
    bucket = moto_stack.physical("ArchiveBucket")
    archive = Archive(bucket, moto_stack.client("s3"))
    messages = MessageStore(moto_stack.physical("MessagesTable"), ddb)
    audit = AuditStore(moto_stack.physical("AuditTable"), ddb)
    rows = InboxStore(moto_stack.physical("InboxTable"), ddb, audit_table=moto_stack.physical("AuditTable"))
    original = builder.messaggio_originale(
        mittente="cliente@pec.beta.test", destinatari=[BOX], oggetto="Diffida", testo="Si diffida.\n",
        message_id="<d1@pec.beta.test>",
    )  # fmt: skip
    raw = builder.busta_trasporto(
        original,
        gestore=builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"),
        identificativo="opec001.20261126090000.00001@pec.beta.test",
        data=datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        destinatari=[builder.Destinatario(BOX, "certificato")],
    )
    sha = hashlib.sha256(raw).hexdigest()
    archived = archive.store(raw, sha)
    record = build_record(BOX, "INBOX", 1, 1, None, raw, sha, archived.key, parse(raw))
    assert messages.record(BOX, record) and rows.add(BOX, record)

    s3 = moto_stack.client("s3")

    def archived_state():
        head = s3.head_object(Bucket=bucket, Key=archived.key, ChecksumMode="ENABLED")
        versions = s3.list_object_versions(Bucket=bucket, Prefix=archived.key).get("Versions", [])
        body = s3.get_object(Bucket=bucket, Key=archived.key)["Body"].read()
        return body, head.get("ChecksumSHA256"), head.get("VersionId"), [v["VersionId"] for v in versions]

    before, stored_record = archived_state(), messages.get(BOX, sha)
    inbox = Inbox(rows, audit, People(), messages, cursor_secret=b"k" * 32)
    inbox.delete(carla, BOX, sha, "duplicato")
    assert archived_state() == before and messages.get(BOX, sha) == stored_record
    inbox.restore(carla, BOX, sha)
    assert archived_state() == before and messages.get(BOX, sha) == stored_record
    assert before[0] == raw and archive.verify(archived.key, sha).ok
    assert [e.action for e in AuditLog(audit).trail(BOX, sha)] == ["delete", "restore"]


MERGED = "archivio@pec.alfa.test"  # a mailbox whose messages are spread over the three states


@pytest.fixture(scope="module")
def spread(moto_stack):
    """90 messages: the newest 30 handled, the 30 before in charge, the oldest 30 to handle (a
    skew: one partition gives a whole page), then every third one of each taken or released
    across (interleaved), on DynamoDB and on the fake."""
    ddb = moto_stack.resource("dynamodb")
    audit = AuditStore(moto_stack.physical("AuditTable"), ddb)
    real = InboxStore(moto_stack.physical("InboxTable"), ddb, audit_table=moto_stack.physical("AuditTable"))
    fake_audit = fakes.FakeAuditStore()
    stores = {"dynamodb": (real, audit), "fake": (fakes.FakeInboxStore(fake_audit), fake_audit)}
    emma = Person("emma", "emma@alfa.test", roles={MERGED: Role.ADMIN})
    inboxes = {}
    for name, (rows, a) in stores.items():
        inbox = Inbox(rows, a, People(), None, cursor_secret=b"k" * 32, now=fakes.Ticking())
        for i in range(90):
            rows.add(MERGED, {**record(i), "to": [MERGED], "kind": "posta-certificata"})
        by_age = sorted(range(90), key=lambda i: record(i)["received_key"])
        for n, i in enumerate(by_age):
            acts = [] if n < 30 else [Act.TAKE] if n < 60 else [Act.TAKE, Act.MARK_HANDLED]
            if n % 3 == 0:  # interleaved: some of each third moved to another state
                acts = [Act.TAKE] if not acts else [Act.TAKE, Act.MARK_HANDLED] if len(acts) == 1 else []
            for act in acts:
                inbox.act(emma, MERGED, f"{i:064x}", act)
        inboxes[name] = (inbox, emma)
    return inboxes


MERGED_FILTERS = [
    (Filters(), lambda r: True),
    (
        Filters(
            received_from=datetime(2026, 11, 5, tzinfo=UTC), received_to=datetime(2026, 11, 20, tzinfo=UTC)
        ),
        lambda r: "2026-11-05" <= r["received_key"] <= "2026-11-20T00:00:00.000000Z~",
    ),
    (Filters(handling=Status.IN_CHARGE), lambda r: r["handling"] == "in-carico"),
    (Filters(has_sdi=False), lambda r: "sdi_pk" not in r),
]


@pytest.mark.parametrize("which", range(len(MERGED_FILTERS)))
@pytest.mark.parametrize("size", [1, 4, 7, 50])
def test_the_messages_of_the_three_states_merged_are_exactly_the_list(spread, which, size):
    """The list of all messages is three partitions (a state each) merged: every page, put
    together, is the brute force's list newest first, each once, on DynamoDB and on the fake
    at the same cost; a page reads at most about twice what it shows."""
    filters, found = MERGED_FILTERS[which]
    costs = {}
    for name, (inbox, person) in spread.items():
        stored = [r for r in stored_rows(inbox) if r["pk"].startswith(f"{MERGED}#m#")]
        assert {r["handling"] for r in stored} == {"da-gestire", "in-carico", "gestito"}
        expected = [
            r["sha256"] for r in sorted(stored, key=lambda r: r["received_key"], reverse=True) if found(r)
        ]
        costs[name] = []
        rows, pages_ = every_page(inbox, filters, size, costs[name], person=person)
        assert rows == expected and pages_ == max(1, -(-len(expected) // size))
    assert costs["dynamodb"] == costs["fake"]
    if size == 50:
        read = sum(c[0] for c in costs["fake"])
        assert read <= 2 * len(expected) + 3, (read, len(expected))

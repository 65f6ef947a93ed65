"""Listing the inbox: each filter is one index's partition, receipts and the bin stay apart, the
other filters are checked on what is read; words; cursors bound to their list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pecflow.domain.handling import Handling, Status
from pecflow.domain.inbox import (
    CursorError,
    Entry,
    FilterError,
    Filters,
    decode_cursor,
    encode_cursor,
    entries_of,
    handling_of,
    has_words,
    inbox_row,
    listing_keys,
    matches,
    page_size,
    plan,
    postings,
    record_words,
    thread_key,
    thread_root,
    word_page,
    words,
)

BOX = "Ufficio@PEC.alfa.test"
M = "ufficio@pec.alfa.test"
SECRET = b"s" * 32


def record(kind="posta-certificata", **extra):
    return {
        "kind": kind,
        "subject": "POSTA CERTIFICATA: Sollecito fattura n. 1234 – Società Àlfa",
        "from": "mario.rossi@pec.beta.it",
        "to": [M],
        "received_key": "2026-11-26T09:00:00.000000Z#abcdef0123456789",
        **extra,
    }


def test_words_are_plain_lowercase_without_accents_stopwords_or_repeats():
    assert words("Società Àlfa S.r.l. – fattura N. 1234, fattura") == ["societa", "alfa", "fattura", "1234"]
    assert record_words(record()) == [
        "sollecito",
        "fattura",
        "1234",
        "societa",
        "alfa",
        "mario",
        "rossi",
        "beta",
        "ufficio",
        "test",
    ]
    assert len(words(" ".join(f"w{i}" for i in range(500)))) == 60


def test_words_every_message_has_are_no_keys_and_no_filter():
    # the mailbox's own address (every message's `to`) and a provider's address (every envelope's
    # and receipt's From) narrow nothing: no word copies for them
    expected = ["sollecito", "fattura", "1234", "societa", "mario", "rossi", "beta"]
    envelope = record(**{"from": "posta-certificata@pec.beta.it", "sender": "mario.rossi@pec.beta.it"})
    assert record_words(envelope, BOX) == expected
    receipt = record("accettazione", **{"from": "posta-certificata@pec.alfa.test"})
    assert "alfa" not in record_words(receipt, BOX) and "test" not in record_words(receipt, BOX)
    assert record_words(record(), BOX) == expected
    # a provider's subject prefix is the receipt's kind (the kind filter): not words of it
    consegna = record("avvenuta-consegna", subject="CONSEGNA: Sollecito fattura n. 1234")
    assert record_words(consegna, BOX) == ["sollecito", "fattura", "1234", "mario", "rossi", "beta"]
    assert plan(BOX, Filters(text="consegna", receipts=True)) == plan(BOX, Filters(receipts=True))
    r = plan(BOX, Filters(text="Consegna sollecito", receipts=True))
    assert (r.key_value, r.words) == (f"{M}#w#receipts#sollecito", ())
    assert plan(BOX, Filters(text="consegna")).key_value == f"{M}#w#messages#consegna"  # a message's word
    # searched, they match every message: the list itself (not an empty result)
    assert plan(BOX, Filters(text="ufficio")) == plan(BOX, Filters())
    p = plan(BOX, Filters(text="Ufficio Rossi"))
    assert (p.key_value, p.words) == (f"{M}#w#messages#rossi", ())


def test_a_new_certified_message_is_listed_as_da_gestire():
    keys = listing_keys(BOX, record())
    assert keys == {
        "list_pk": f"{M}#messages#da-gestire",  # its presa in carico's list
        "kind_pk": None,  # most messages are: the list answers that kind (an index write less)
        "holder_pk": None,
        "campaign_pk": None,
        "sdi_pk": None,
        "thread_pk": None,  # a record without any Message-ID starts no conversation
    }


def test_a_conversation_is_keyed_by_its_first_message_id():
    first = record(message_id="<a@x>", original_message_id="<orig@beta>")
    answer = record(message_id="<c@x>", in_reply_to="<b@y>", references=["<orig@beta>", "<b@y>"])
    late = record(message_id="<d@x>", in_reply_to="<orig@beta>")  # a client that sends only In-Reply-To
    assert thread_root(first) == thread_root(answer) == thread_root(late) == "<orig@beta>"
    keys = {listing_keys(BOX, r)["thread_pk"] for r in (first, answer, late)}
    assert keys == {thread_key(BOX, "<orig@beta>")} and next(iter(keys)).startswith(f"{M}#")
    # the row keeps the root: a change of handling recomputes the same key from the row alone
    row = inbox_row(BOX, {**answer, "sha256": "ab" * 32})
    assert row["thread"] == "<orig@beta>" and listing_keys(BOX, row)["thread_pk"] == row["thread_pk"]
    # receipts belong to the message they are about, not to a conversation
    receipt = record("accettazione", message_id="<r@x>", references=["<orig@beta>"])
    assert listing_keys(BOX, receipt)["thread_pk"] is None and "thread" not in inbox_row(
        BOX, {**receipt, "sha256": "cd" * 32}
    )
    p = plan(BOX, Filters(thread="<orig@beta>", handling=Status.OPEN))
    assert (p.index, p.key_value) == ("ByThread", thread_key(BOX, "<orig@beta>"))
    assert p.residual == (("list_pk", (f"{M}#messages#da-gestire",)),)


@pytest.mark.parametrize(
    ("kind", "listed"),
    [("posta-certificata", "messages"), ("accettazione", "receipts"), ("avvenuta-consegna", "receipts")],
)
def test_a_common_kind_is_its_list_checked_row_by_row(kind, listed):
    assert listing_keys(BOX, record(kind))["kind_pk"] is None
    p = plan(BOX, Filters(kind=kind))
    lists = (f"{M}#receipts",) if listed == "receipts" else tuple(f"{M}#messages#{s}" for s in Status)
    assert (p.index, p.partitions, p.residual) == ("ByList", lists, (("kind", (kind,)),))
    row = inbox_row(BOX, record(kind, sha256="ab" * 32))
    assert matches(row, p) and not matches({**row, "kind": "errore-consegna"}, p)
    # with words: the postings of the kind's list, the kind checked on each row they name
    w = plan(BOX, Filters(kind=kind, text="sollecito"))
    assert w.key_value == f"{M}#w#{listed}#sollecito"
    posting = next(c for c in postings(BOX, [row]) if c["pk"] == w.key_value)
    assert entries_of(posting) == [Entry(str(row["received_key"]), str(row["pk"]))]
    assert matches(row, w) and not matches({**row, "kind": "errore-consegna"}, w)
    # with another filter: that filter's index, the kind checked
    h = plan(BOX, Filters(kind="posta-certificata", handling=Status.OPEN))
    assert (h.index, h.key_value, h.also) == ("ByList", f"{M}#messages#da-gestire", ())
    assert h.residual == (("kind", ("posta-certificata",)),)


def test_receipts_are_listed_apart_and_have_no_presa_in_carico():
    keys = listing_keys(BOX, record("avvenuta-consegna"), campaign_id="solleciti")
    assert keys["list_pk"] == f"{M}#receipts" and keys["holder_pk"] is None
    assert keys["campaign_pk"] == f"{M}#solleciti"


def test_holder_and_bin_keys():
    held = Handling(Status.IN_CHARGE, "Anna", datetime(2026, 1, 1, tzinfo=UTC), "anna", None, 1)
    keys = listing_keys(BOX, record(sdi={"type": "RC"}), held)
    assert (keys["list_pk"], keys["holder_pk"], keys["sdi_pk"]) == (
        f"{M}#messages#in-carico",
        f"{M}#anna",
        f"{M}#sdi",
    )
    binned = listing_keys(BOX, record(), held, deleted=True)
    assert binned["list_pk"] == f"{M}#bin" and [v for v in binned.values() if v] == [f"{M}#bin"]


def test_the_plain_list_is_the_messages_newest_first_without_receipts():
    p = plan(BOX, Filters())
    merged = (f"{M}#messages#da-gestire", f"{M}#messages#in-carico", f"{M}#messages#gestito")
    assert (p.index, p.partitions, p.residual) == ("ByList", merged, ())
    assert plan(BOX, Filters(receipts=True)).key_value == f"{M}#receipts"


@pytest.mark.parametrize(
    ("filters", "index", "value"),
    [
        (Filters(kind="anomalia"), "ByKind", f"{M}#anomalia"),
        (Filters(handling=Status.OPEN), "ByList", f"{M}#messages#da-gestire"),
        (Filters(holder="Anna"), "ByHolder", f"{M}#anna"),
        (Filters(campaign="c1"), "ByCampaign", f"{M}#c1"),
        (Filters(has_sdi=True), "BySdi", f"{M}#sdi"),
        (Filters(bin=True), "ByList", f"{M}#bin"),
        (Filters(text="Rossi fattura"), None, f"{M}#w#messages#fattura"),
    ],
)
def test_each_filter_is_one_partition(filters, index, value):
    p = plan(BOX, filters)
    assert (p.index, p.partitions) == (index, (value,))


def test_several_filters_read_the_most_selective_and_check_the_rest():
    p = plan(BOX, Filters(holder="anna", handling=Status.IN_CHARGE, kind="posta-certificata"))
    assert p.index == "ByHolder"
    item = {
        **record(),
        **listing_keys(BOX, record(), Handling(Status.IN_CHARGE, "anna", None, None, None, 1)),
    }
    assert matches(item, p)
    assert not matches({**item, "list_pk": f"{M}#messages#gestito"}, p)


def test_dates_are_a_range_of_the_sort_key():
    p = plan(
        BOX,
        Filters(
            received_from=datetime(2026, 11, 1, tzinfo=UTC), received_to=datetime(2026, 11, 30, tzinfo=UTC)
        ),
    )
    assert p.sort_from == "2026-11-01T00:00:00.000000Z" and p.sort_to == "2026-11-30T00:00:00.000000Z~"
    assert p.sort_from <= record()["received_key"] <= p.sort_to
    # an offset is the same instant: 02:00 in Rome's summer is midnight UTC
    rome = datetime(2026, 7, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert plan(BOX, Filters(received_from=rome)).sort_from == "2026-07-01T00:00:00.000000Z"
    with pytest.raises(FilterError, match="after"):
        plan(
            BOX,
            Filters(
                received_from=datetime(2026, 12, 1, tzinfo=UTC), received_to=datetime(2026, 11, 1, tzinfo=UTC)
            ),
        )
    with pytest.raises(FilterError, match="time zone"):
        plan(BOX, Filters(received_from=datetime(2026, 12, 1)))


def test_wrong_filters_are_told_plainly():
    with pytest.raises(FilterError, match="unknown kind"):
        plan(BOX, Filters(kind="spam"))
    with pytest.raises(FilterError, match="too short or too common"):
        plan(BOX, Filters(text="di la pec"))
    with pytest.raises(FilterError, match="1 to 200"):
        page_size(500)
    assert page_size(None) == 50


def test_word_search_reads_postings_naming_the_rows_in_the_words_partition():
    rec = record(sha256="ab" * 32)
    row = inbox_row(BOX, rec)
    items = postings(BOX, [row])
    assert {c["pk"] for c in items} == {f"{M}#w#messages#{w}" for w in record_words(rec, BOX)}
    hour = rec["received_key"][:13]
    assert all(
        str(c["sk"]).startswith(f"{hour}#") and entries_of(c) == [Entry(rec["received_key"], str(row["pk"]))]
        for c in items
    )
    assert {c["pk"] for c in postings(BOX, [inbox_row(BOX, record("accettazione", sha256="cd" * 32))])} >= {
        f"{M}#w#receipts#sollecito"
    }
    p = plan(BOX, Filters(text="rossi Fattura", handling=Status.OPEN))
    assert (p.index, p.key_attribute, p.key_value, p.words) == (
        None,
        "pk",
        f"{M}#w#messages#fattura",
        ("rossi",),
    )
    assert has_words(row, p) and matches(row, p)  # the other words and filters: on the row
    both = plan(BOX, Filters(text="fattura bianchi"))  # read by 'fattura', 'bianchi' checked
    assert both.key_value == f"{M}#w#messages#fattura" and not has_words(row, both)
    assert not matches(row, plan(BOX, Filters(text="rossi", has_sdi=True)))
    assert matches(row, plan(BOX, Filters(text="rossi", has_sdi=False)))
    deleted = inbox_row(BOX, rec, deleted={"by": "carla"})
    assert not matches(deleted, p)  # deleted: not in the list
    assert plan(BOX, Filters(text="rossi", receipts=True)).key_value == f"{M}#w#receipts#rossi"


def test_a_posting_lists_a_batch_newest_first_compactly_and_the_same_batch_keeps_its_key():
    recs = [
        record(sha256=f"{i:064x}", received_key=f"2026-11-27T03:0{i}:00.000000Z#{0:016x}") for i in range(3)
    ]
    rows = [inbox_row(BOX, r) for r in recs]
    (fattura,) = [c for c in postings(BOX, rows) if c["pk"] == f"{M}#w#messages#fattura"]
    assert [e.row_pk for e in entries_of(fattura)] == [rows[2]["pk"], rows[1]["pk"], rows[0]["pk"]]
    assert [e.received_key for e in entries_of(fattura)] == [r["received_key"] for r in reversed(recs)]
    assert all(len(e) == 44 - 13 + 48 for e in fattura["entries"])  # the hour and the sha prefix once
    assert postings(BOX, reversed(rows)) == postings(BOX, rows)  # written again: the same items
    assert postings(BOX, rows[:2])[0]["sk"] != fattura["sk"]  # another batch: another item
    # a received_key not as the poller writes it still names its row
    odd = inbox_row(BOX, record(sha256="unfetched-1-2", received_key="2026-11-27T03:00:00Z#x|y"))
    (entry,) = entries_of(postings(BOX, [odd])[0])
    assert entry == Entry("2026-11-27T03:00:00Z#x|y", f"{M}#m#unfetched-1-2")
    # a word copy of a row, as tables written before postings hold them: a one-entry posting
    legacy = {"pk": f"{M}#w#messages#fattura", "sk": recs[0]["received_key"], "row_pk": rows[0]["pk"]}
    assert entries_of(legacy) == [Entry(recs[0]["received_key"], str(rows[0]["pk"]))]


def test_a_row_shows_the_list_fields_and_its_handling():
    held = Handling(Status.IN_CHARGE, "anna", datetime(2026, 11, 26, 9, 0, tzinfo=UTC), "carla", None, 3)
    rec = record(
        sha256="cd" * 32, to=[f"a{i}@x.it" for i in range(8)], attachments=[{}, {}], rem={"event": "X"}
    )
    row = inbox_row(BOX, rec, held)
    assert row["pk"] == f"{M}#m#{'cd' * 32}" and row["sk"] == "row"
    assert (row["to_count"], len(row["to"]), row["attachments"], row["rem_event"]) == (8, 5, 2, "X")
    assert (row["handling"], row["holder"], row["version"], row["holder_pk"]) == (
        "in-carico",
        "anna",
        3,
        f"{M}#anna",
    )
    assert handling_of(row) == held
    assert handling_of(inbox_row(BOX, rec)) == Handling()


def test_cursors_are_bound_to_their_list_and_cannot_be_edited():
    p = plan(BOX, Filters(kind="anomalia"))
    key = {"mailbox": M, "message": "sha256:ab", "kind_pk": f"{M}#anomalia", "received_key": "k"}
    cursor = encode_cursor(key, p, SECRET)
    assert decode_cursor(cursor, p, SECRET) == key
    with pytest.raises(CursorError, match="other filters"):
        decode_cursor(cursor, plan(BOX, Filters(kind="posta-certificata")), SECRET)
    with pytest.raises(CursorError, match="damaged"):
        decode_cursor(cursor[:-3] + "AAA", p, SECRET)
    with pytest.raises(CursorError, match="damaged"):
        decode_cursor("not a cursor!", p, SECRET)
    with pytest.raises(CursorError, match="damaged"):
        decode_cursor(cursor, p, b"another secret")


def test_a_word_page_merges_overlapping_batches_and_continues_from_an_old_cursor():
    """Pure `word_page` on postings in memory: batches overlapping in one hour come out in exact
    received_key order, once each; a cursor of a page read from word copies ({pk, sk}: no row)
    goes on after its received_key."""
    keys = [f"2026-11-27T0{h}:{m:02d}:00.000000Z#{h * 100 + m:016x}" for h in (3, 4) for m in (5, 10, 15, 20)]
    rows = {
        f"{h * 100 + m:016x}" + "0" * 48: inbox_row(
            BOX, record(sha256=f"{h * 100 + m:016x}" + "0" * 48, received_key=k)
        )
        for k, (h, m) in zip(keys, [(h, m) for h in (3, 4) for m in (5, 10, 15, 20)], strict=True)
    }
    ordered = sorted(rows.values(), key=lambda r: r["received_key"])
    items = postings(BOX, ordered[0::2]) + postings(BOX, ordered[1::2]) + postings(BOX, ordered[2:5])
    p = plan(BOX, Filters(text="fattura"))
    stored = sorted((i for i in items if i["pk"] == p.key_value), key=lambda i: i["sk"], reverse=True)
    by_pk = {r["pk"]: r for r in rows.values()}

    def query(sk_from, sk_to, count, start):
        found = [
            i
            for i in stored
            if (sk_to is None or i["sk"] <= sk_to) and (start is None or i["sk"] < start["sk"])
        ]
        return found[:count], (
            {"pk": p.key_value, "sk": found[count - 1]["sk"]} if len(found) > count else None
        )

    def fetch(entries):
        return [by_pk[e.row_pk] for e in entries]

    newest_first = [r["received_key"] for r in reversed(ordered)]
    shown, key = [], None
    while True:
        page, key = word_page(p, 3, key, query, fetch)
        shown += [r["received_key"] for r in page]
        if key is None:
            break
    assert shown == newest_first
    old = {"pk": p.key_value, "sk": newest_first[2]}  # a cursor of word copies: no row
    page, _ = word_page(p, 3, old, query, fetch)
    assert [r["received_key"] for r in page] == newest_first[3:6]

"""How the inbox is listed without reading the whole mailbox. Each received message has a row
in the inbox table: what a list shows (subject, parties, kind, dates), its presa in carico and
whether it is in the bin, and a few listing keys (sparse index keys, each `<mailbox>#<value>`,
sorted by `received_key`). Each filter a person can set is answered by querying the one index
whose partition is exactly that filter, the dates as a range of the sort key; the other filters
are checked on the rows read. Words of the subject and the parties are a token index of
postings: per word (`<mailbox>#w#messages|receipts#<word>`), hour and poll batch one item listing
the batch's messages with that word (`postings`), written once at the batch's end; a word search
merges them newest first and reads the rows they name (`word_page`), so acts change the row alone.
Pure domain code.

Listing keys (attribute → index):
  list_pk     ByList     <mailbox>#messages#da-gestire | #messages#in-carico | #messages#gestito
                         | #receipts | #bin   (a message's list is its presa in carico's state:
                         the whole list of messages is the three merged, `merged_page`)
  kind_pk     ByKind     <mailbox>#<kind>   (only the rarer kinds; not for messages in the bin)
  holder_pk   ByHolder   <mailbox>#<username>                    (in carico or handled by them)
  campaign_pk ByCampaign <mailbox>#<campaign id>                 (a campaign's receipts and replies)
  sdi_pk      BySdi      <mailbox>#sdi                           (messages carrying an SdI file)
  thread_pk   ByThread   <mailbox>#<hash of the thread's first Message-ID> (messages, not receipts)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from math import ceil

from pecflow.domain import clock
from pecflow.domain.handling import Handling, Status
from pecflow.pec import kinds

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_WORDS_PER_MESSAGE = 60  # subject and parties: more than a real message has
MIN_WORD_CHARS = 2
MAX_WORD_CHARS = 40

LIST_MESSAGES, LIST_RECEIPTS, LIST_BIN = "messages", "receipts", "bin"
INDEXES = {
    "list_pk": "ByList",
    "kind_pk": "ByKind",
    "holder_pk": "ByHolder",
    "campaign_pk": "ByCampaign",
    "sdi_pk": "BySdi",
    "thread_pk": "ByThread",
}
RECEIPT_KINDS = frozenset(kinds.RICEVUTE)
# the kinds most rows of their list have: no ByKind key (an index write each saved); a filter on
# one reads its list and checks the kind, reading at most about twice what it shows
COMMON_KINDS = frozenset((kinds.POSTA_CERTIFICATA, kinds.ACCETTAZIONE, kinds.AVVENUTA_CONSEGNA))
# words too common in PEC to narrow anything: never a key of the token index
STOPWORDS = frozenset(
    "pec posta certificata it com di da del della dei delle il la lo le gli un una in per con su re r "
    "fw fwd i e a o ad al alla ai alle nel nella srl spa s r l p".split()
)
_WORD = re.compile(r"[a-z0-9]+")


def words(*texts: str | None) -> list[str]:
    """The searchable words of some texts, in order of first appearance: lower case, accents
    removed, split at anything not a letter or digit, stopwords and one-letter words left out.
    Addresses give their parts too (`mario.rossi@pec.beta.it` → mario, rossi, beta)."""
    seen: dict[str, None] = {}
    for text in texts:
        if not text:
            continue
        plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
        for word in _WORD.findall(plain):
            if MIN_WORD_CHARS <= len(word) <= MAX_WORD_CHARS and word not in STOPWORDS:
                seen.setdefault(word, None)
                if len(seen) >= MAX_WORDS_PER_MESSAGE:
                    return list(seen)
    return list(seen)


PROVIDER_LOCAL_PART = "posta-certificata"  # a provider's own address: envelopes and receipts come from it
# the words of the prefixes providers put before an original subject ("CONSEGNA: ", …): the kind
# of every receipt, told by the kind filter; a receipt's words are its original subject's
PREFIX_WORDS = frozenset(w for prefix, _ in kinds.SUBJECT_PREFIXES for w in _WORD.findall(prefix.lower()))


def _unprefixed(subject: str) -> str:
    upper = subject.upper()
    for prefix, _ in kinds.SUBJECT_PREFIXES:  # longest first
        if upper.startswith(prefix):
            return subject[len(prefix) :]
    return subject


def own_words(mailbox: str) -> frozenset[str]:
    """The words of the mailbox's own address: nearly every message has them (its `to`, a
    receipt's), so they narrow nothing. Never a key of the token index; left out of searches."""
    return frozenset(words(mailbox))


def record_words(record: Mapping[str, object], mailbox: str | None = None) -> list[str]:
    """The words a message is found by: its subject (and its original's), sender and recipients,
    without the words every message of the mailbox has (its own address, see `own_words`),
    without a provider's own address (the From of every envelope and receipt: the certified
    sender is in `sender`) and without a provider's subject prefix ("CONSEGNA: ": the kind).
    Each word is an entry in one posting of the poll batch (`postings`)."""
    texts: list[str | None] = [
        _unprefixed(str(record.get("subject") or "")),
        str(record.get("original_subject") or ""),
    ]
    sender = str(record.get("from") or "")
    if sender.split("@", 1)[0].strip().lower() != PROVIDER_LOCAL_PART:
        texts.append(sender)
    texts.append(str(record.get("sender") or ""))
    for field in ("to", "cc"):
        value = record.get(field) or []
        if isinstance(value, list):
            texts.extend(str(v) for v in value)
    own = own_words(mailbox) if mailbox else frozenset()
    return [w for w in words(*texts) if w not in own]


def is_receipt(kind: str | None) -> bool:
    return kind in RECEIPT_KINDS


def thread_root(record: Mapping[str, object]) -> str | None:
    """The Message-ID a conversation started with: the first of References, else In-Reply-To,
    else the message's own (for a PEC envelope, its sender's Message-ID, which answers cite)."""
    references = record.get("references")
    if isinstance(references, list) and references:
        return str(references[0])
    for field in ("in_reply_to", "original_message_id", "message_id"):
        if record.get(field):
            return str(record[field])
    return None


def thread_key(mailbox: str, root: str) -> str:
    """The ByThread partition of a conversation (Message-IDs may be long: hashed)."""
    return f"{mailbox.lower()}#{hashlib.sha256(root.encode()).hexdigest()[:32]}"


def message_list(mailbox: str, status: Status) -> str:
    """The ByList partition of the messages (not receipts, not in the bin) whose presa in carico
    is in `status`: a state's list is one partition, the list of all messages the three merged."""
    return f"{mailbox.lower()}#{LIST_MESSAGES}#{Status(status).value}"


def message_lists(mailbox: str) -> tuple[str, ...]:
    return tuple(message_list(mailbox, status) for status in Status)


def listing_keys(
    mailbox: str,
    record: Mapping[str, object],
    handling: Handling | None = None,
    *,
    deleted: bool = False,
    campaign_id: str | None = None,
) -> dict[str, str | None]:
    """The listing keys a message record carries now (None: the attribute is removed, so the
    message leaves that index). Written with the record and again with each change of
    handling, deletion or restore."""
    mailbox = mailbox.lower()
    kind = str(record.get("kind") or kinds.MALFORMED)
    receipt = is_receipt(kind)
    handling = handling or Handling()
    keys: dict[str, str | None] = dict.fromkeys(INDEXES)
    if deleted:
        keys["list_pk"] = f"{mailbox}#{LIST_BIN}"
        return keys
    keys["list_pk"] = f"{mailbox}#{LIST_RECEIPTS}" if receipt else message_list(mailbox, handling.status)
    if kind not in COMMON_KINDS:
        keys["kind_pk"] = f"{mailbox}#{kind}"
    if not receipt:
        if handling.status is not Status.OPEN and handling.holder:
            keys["holder_pk"] = f"{mailbox}#{handling.holder.lower()}"
    campaign_id = campaign_id or (str(record["campaign"]) if record.get("campaign") else None)
    if campaign_id:
        keys["campaign_pk"] = f"{mailbox}#{campaign_id}"
    if record.get("sdi") or record.get("sdi_type"):  # a record, or a row
        keys["sdi_pk"] = f"{mailbox}#sdi"
    root = record.get("thread") or (None if receipt else thread_root(record))  # a row, or a record
    if root and not receipt:
        keys["thread_pk"] = thread_key(mailbox, str(root))
    return keys


class FilterError(ValueError):
    """A filter the inbox cannot answer (the API answers 400 with this text)."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What a person asks the list for (all optional; several together narrow the list)."""

    kind: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None
    handling: Status | None = None  # da-gestire, in-carico, gestito
    holder: str | None = None  # in whose charge
    campaign: str | None = None
    has_sdi: bool | None = None
    text: str | None = None  # words of the subject and the parties
    thread: str | None = None  # the Message-ID a conversation started with (thread_root)
    receipts: bool = False  # receipts listed only when asked for
    bin: bool = False  # the deleted messages (admins)


@dataclass(frozen=True, slots=True)
class Plan:
    """One query: an index, its partition value, a sort-key range, and what is left to check on
    each item read (`residual`: attribute → allowed values; `words`: every one must be there)."""

    index: str | None  # None: the table itself (the word items)
    key_attribute: str
    key_value: str
    sort_from: str | None = None
    sort_to: str | None = None
    residual: tuple[tuple[str, tuple[str, ...]], ...] = ()
    words: tuple[str, ...] = ()
    token_index: bool = False  # read the word's postings, then the rows they name
    also: tuple[str, ...] = ()  # more partitions of the index, merged with key_value's (`merged_page`)

    @property
    def partitions(self) -> tuple[str, ...]:
        return (self.key_value, *self.also)


def _sort_bounds(filters: Filters) -> tuple[str | None, str | None]:
    def iso(value: datetime | None) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise FilterError("dates in filters must carry their time zone")
        return clock.iso(value)  # as received_key is written: UTC, microseconds, Z

    start, end = iso(filters.received_from), iso(filters.received_to)
    if start and end and start > end:
        raise FilterError("'received from' is after 'received to'")
    # received_key is "<UTC time>Z#<sha prefix>": '~' sorts after every character of that suffix
    return start, (end + "~") if end else None


def plan(mailbox: str, filters: Filters) -> Plan:
    """The cheapest query for the filters: the most selective single index, the other filters
    checked on what it returns. Words come first (the token index), then thread, holder, campaign,
    SdI, handling, kind, and the plain list last."""
    mailbox = mailbox.lower()
    start, end = _sort_bounds(filters)
    if filters.kind is not None and filters.kind not in kinds.ALL:
        raise FilterError(f"unknown kind {filters.kind!r}: one of {', '.join(kinds.ALL)}")
    if filters.bin and (filters.handling or filters.holder):
        raise FilterError("messages in the bin have no presa in carico to filter on")
    common_kind = filters.kind in COMMON_KINDS and not filters.bin  # no ByKind key: the list, checked
    receipts = filters.receipts if filters.kind is None else is_receipt(filters.kind)
    list_values: tuple[str, ...] = ()
    if filters.bin:
        list_values = (f"{mailbox}#{LIST_BIN}",)
    elif filters.kind is None or common_kind:
        list_values = (f"{mailbox}#{LIST_RECEIPTS}",) if receipts else message_lists(mailbox)

    candidates: list[tuple[str, tuple[str, ...]]] = []  # (attribute, values), most selective first
    wanted = words(filters.text) if filters.text else []
    if filters.text and not wanted:
        raise FilterError("the words searched are too short or too common: add a more specific word")
    wanted = [w for w in wanted if w not in own_words(mailbox)]  # every message has them: no filter
    if filters.receipts or is_receipt(filters.kind):  # a receipt's kind is the kind filter's
        wanted = [w for w in wanted if w not in PREFIX_WORDS]
    if filters.thread:
        candidates.append(("thread_pk", (thread_key(mailbox, filters.thread),)))
    if filters.holder:
        candidates.append(("holder_pk", (f"{mailbox}#{filters.holder.lower()}",)))
    if filters.campaign:
        candidates.append(("campaign_pk", (f"{mailbox}#{filters.campaign}",)))
    if filters.has_sdi:
        candidates.append(("sdi_pk", (f"{mailbox}#sdi",)))
    if filters.handling:  # the state's own list: every other list is left out by it
        candidates.append(("list_pk", (message_list(mailbox, filters.handling),)))
    elif list_values and (filters.bin or not candidates):  # the bin's rows have no other key
        candidates.append(("list_pk", list_values))
    if filters.kind and not filters.bin and not common_kind:
        candidates.append(("kind_pk", (f"{mailbox}#{filters.kind}",)))
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if filters.has_sdi is False:
        extra += (("sdi_pk", ("",)),)  # "" stands for: the attribute is absent
    if filters.kind and (filters.bin or common_kind):
        extra += (("kind", (filters.kind,)),)

    if wanted:
        # the longest word is likely the rarest: its partition is read, the others checked
        ordered = sorted(wanted, key=len, reverse=True)
        checked = tuple(candidates) + extra
        listing = LIST_RECEIPTS if filters.receipts or is_receipt(filters.kind) else LIST_MESSAGES
        return Plan(
            None, "pk", word_key(mailbox, listing, ordered[0]), start, end, checked, tuple(ordered[1:]), True
        )
    attribute, values = candidates[0]
    others = tuple(candidates[1:]) + extra
    return Plan(INDEXES[attribute], attribute, values[0], start, end, others, also=values[1:])


def matches(row: Mapping[str, object], plan: Plan) -> bool:
    """Whether a row read by the plan passes the rest of the filters."""
    for attribute, allowed in plan.residual:
        value = row.get(attribute)
        if (value if value is not None else "") not in allowed:
            return False
    return True


def has_words(row: Mapping[str, object], plan: Plan) -> bool:
    """Whether a row read by a word plan has the other words searched too."""
    present = set(row.get("words") or ())  # type: ignore[call-overload]
    return all(w in present for w in plan.words)


# --- cursors ------------------------------------------------------------------------------------
class CursorError(ValueError):
    """A cursor that is not one this list gave (changed, or from another list)."""


def _plan_tag(plan: Plan) -> str:
    return hashlib.sha256(repr(plan).encode()).hexdigest()[:16]


def encode_cursor(last_key: Mapping[str, object], plan: Plan, secret: bytes) -> str:
    """An opaque cursor for the next page: the last key read, bound to this very list (its
    plan) and signed, so it cannot be edited to reach another mailbox or reused with other filters."""
    body = json.dumps({"k": dict(last_key), "p": _plan_tag(plan)}, sort_keys=True, separators=(",", ":"))
    tag = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:32]
    return base64.urlsafe_b64encode(f"{tag}.{body}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, plan: Plan, secret: bytes) -> dict[str, object]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, body = raw.split(".", 1)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CursorError("this page link is damaged: start the list again") from exc
    expected = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(tag, expected):
        raise CursorError("this page link is damaged: start the list again")
    data = json.loads(body)
    if data.get("p") != _plan_tag(plan):
        raise CursorError("this page link belongs to a list with other filters: start the list again")
    key = data.get("k")
    if not isinstance(key, dict):
        raise CursorError("this page link is damaged: start the list again")
    return key


MAX_REQUEST_ITEMS = 1000


def request_size(room: int, previous: int) -> int:
    """Items a page's next query asks for: room for the page and one more first (one more
    tells whether the list goes on), then twice the previous ask where filters left rows out."""
    return room + 1 if previous == 0 else min(MAX_REQUEST_ITEMS, max(room + 1, previous * 2))


# a partition's query: (partition, before: rows older than this received_key only (None: all),
# the key to resume after, how many items to evaluate) -> (rows matching, the key to go on from)
PartitionQuery = Callable[
    [str, "str | None", "Mapping[str, object] | None", int],
    "tuple[list[dict[str, object]], Mapping[str, object] | None]",
]


@dataclass(slots=True)
class _Stream:
    partition: str
    rows: list[dict[str, object]]
    next_key: Mapping[str, object] | None = None
    done: bool = False
    asked: int = 0  # items the last query evaluated
    thinned: bool = False  # the filters left some of them out


def merged_page(
    plan: Plan, limit: int, start_key: Mapping[str, object] | None, query: PartitionQuery
) -> tuple[list[dict[str, object]], dict[str, object] | None]:
    """Up to `limit` rows of several partitions of one index (`plan.partitions`) newest first, and
    the key to continue from (None: the last page; else the last row's received_key, unique to
    it). Each partition is read a share of the page at a time and read again only once every row
    it gave is shown or older than the others' (a partition's share first, then what the page
    still misses, twice as much where filters left rows out), so a page reads about what it shows
    and a partition's leftover at most."""
    before = str(start_key["received_key"]) if start_key else None
    streams = [_Stream(p, []) for p in plan.partitions]
    share = ceil((limit + 1) / len(streams))
    rows: list[dict[str, object]] = []
    while len(rows) <= limit:
        for stream in streams:
            while not stream.rows and not stream.done:
                missing = limit + 1 - len(rows)
                if stream.asked == 0:
                    ask = min(share, missing)
                else:
                    ask = request_size(missing - 1, stream.asked) if stream.thinned else missing
                found, stream.next_key = query(stream.partition, before, stream.next_key, ask)
                stream.rows = [r for r in found if before is None or str(r["received_key"]) < before]
                stream.rows.reverse()  # oldest first: the newest is popped
                stream.done, stream.asked, stream.thinned = stream.next_key is None, ask, len(found) < ask
        live = [s for s in streams if s.rows]
        if not live:
            break
        newest = max(live, key=lambda s: (str(s.rows[-1]["received_key"]), str(s.rows[-1]["pk"])))
        rows.append(newest.rows.pop())
    if len(rows) <= limit:
        return rows, None
    del rows[limit:]
    return rows, {"received_key": rows[-1]["received_key"]}


def page_size(asked: int | None) -> int:
    if asked is None:
        return PAGE_SIZE
    if not 1 <= asked <= MAX_PAGE_SIZE:
        raise FilterError(f"a page holds 1 to {MAX_PAGE_SIZE} messages")
    return asked


def word_key(mailbox: str, listing: str, word: str) -> str:
    return f"{mailbox.lower()}#w#{listing}#{word}"


def row_key(mailbox: str, sha256: str) -> str:
    return f"{mailbox.lower()}#m#{sha256}"


ROW_SORT = "row"


# --- the token index: postings -----------------------------------------------------------------
POSTING_ENTRIES = 2000  # entries of one posting item (~160 KB: well under DynamoDB's 400 KB)
# open postings: a poll bringing a word for a few messages appends them to their week's open
# posting while it holds at most OPEN_ENTRIES (under 1 KB: 1 WRU a write, as an item of their
# own would cost), else to their day's, else writes them as an item of their own; so a quiet
# mailbox's search reads one posting per several messages, not one each. An open posting's sk is
# the last hour of its week (Monday to Sunday, UTC) or day and its tag: it sorts above every
# posting of its period and below the next period's, so every posting's sk starts with the
# latest hour it may hold.
OPEN_ENTRIES = 9  # whole entries (their hour kept): 92 bytes each, under 1 KB with a long key
WEEK_TAG, DAY_TAG = "~week", "~day"  # on a Sunday the week's sorts above the day's
HOUR = 13  # "2026-11-27T03": the hour bucket of a received_key, the head of a posting's sk


@dataclass(frozen=True, order=True, slots=True)
class Entry:
    """A message in a posting: what sorts it (its row's received_key) and its row's key."""

    received_key: str
    row_pk: str


def _entry(received_key: str, sha256: str) -> str:
    """An entry as a posting stores it, the hour (in the posting's sk) left out: the rest of the
    received_key and of the SHA-256 its tail already starts ("…Z#<sha[:16]>" + sha[16:])."""
    tail = received_key[HOUR:]
    if len(sha256) > 16 and sha256.isalnum() and received_key.endswith("#" + sha256[:16]) and "|" not in tail:
        return tail + sha256[16:]
    return f"{tail}|{sha256}"  # a key not as the poller writes it (a summary's, a test's)


def entries_of(item: Mapping[str, object]) -> list[Entry]:
    """The entries of a posting, or of a word copy of a row as tables written before postings
    hold them (a whole row with `row_pk`, sk its received_key): read as a one-entry posting."""
    pk, sk = str(item["pk"]), str(item["sk"])
    if item.get("row_pk"):
        return [Entry(sk, str(item["row_pk"]))]
    mailbox, hour = pk.rsplit("#w#", 1)[0], "" if sk.endswith((WEEK_TAG, DAY_TAG)) else sk[:HOUR]
    found = []
    for stored in item.get("entries") or ():  # type: ignore[attr-defined]
        text = str(stored)
        if "|" in text:
            tail, sha256 = text.rsplit("|", 1)
        else:
            cut = text.rindex("#") + 17
            tail, sha256 = text[:cut], text[cut - 16 :]
        found.append(Entry(hour + tail, row_key(mailbox, sha256)))
    return found


def listing_of(row: Mapping[str, object]) -> str:
    """The word listing a row is in: receipts apart from the other messages."""
    return LIST_RECEIPTS if is_receipt(str(row.get("kind"))) else LIST_MESSAGES


def postings(mailbox: str, rows: Iterable[Mapping[str, object]]) -> list[dict[str, object]]:
    """The token index's items for a batch of rows: per listing, word and hour of received_key,
    one item listing the rows with that word, newest first, `POSTING_ENTRIES` an item at most.
    Its sk is "<hour>#<tag>", the tag a hash of its entries: the same batch written again
    overwrites its postings; a batch written again otherwise (after a crash) adds postings
    repeating entries, which `word_page` reads once."""
    grouped: dict[tuple[str, str], dict[str, Entry]] = {}
    mailbox = mailbox.lower()
    for row in rows:
        received_key, sha256 = str(row.get("received_key") or ""), str(row.get("sha256") or "")
        if len(received_key) <= HOUR or not sha256:
            continue
        entry = Entry(received_key, row_key(mailbox, sha256))
        for word in row.get("words") or ():  # type: ignore[attr-defined]
            key = (word_key(mailbox, listing_of(row), str(word)), received_key[:HOUR])
            grouped.setdefault(key, {})[_entry(received_key, sha256)] = entry
    items: list[dict[str, object]] = []
    for (pk, hour), entries in sorted(grouped.items()):
        ordered = sorted(entries, key=entries.__getitem__, reverse=True)
        for start in range(0, len(ordered), POSTING_ENTRIES):
            part = ordered[start : start + POSTING_ENTRIES]
            tag = hashlib.sha256("\n".join(part).encode()).hexdigest()[:12]
            items.append({"pk": pk, "sk": f"{hour}#{tag}", "entries": part})
    return items


def open_sks(item: Mapping[str, object]) -> list[str]:
    """The open postings a posting's entries may be appended to instead of being written as an
    item of their own, in the order to try: when they are few (OPEN_ENTRIES // 2 at most), their
    week's, then their day's; none otherwise. An append holds only while there is room
    (`open_room`)."""
    entries = item.get("entries") or ()
    if not 0 < len(entries) <= OPEN_ENTRIES // 2:  # type: ignore[arg-type]
        return []
    return open_postings_of(str(item["sk"]))


def open_postings_of(key: str) -> list[str]:
    """The sks of the open postings of the week and the day a received_key (or an hour) is in."""
    day = date.fromisoformat(key[:10])
    return [f"{day + timedelta(days=6 - day.weekday())}T23{WEEK_TAG}", f"{day}T23{DAY_TAG}"]


def open_entries(item: Mapping[str, object]) -> list[str]:
    """A posting's entries as its week's open posting keeps them: with their hour."""
    return [str(item["sk"])[:HOUR] + str(e) for e in item.get("entries") or ()]  # type: ignore[attr-defined]


def open_room(item: Mapping[str, object]) -> int:
    """The most entries the open posting may already hold for `item`'s entries to join it."""
    return OPEN_ENTRIES - len(item.get("entries") or ())  # type: ignore[arg-type]


def joined(
    held: Mapping[str, object] | None, item: Mapping[str, object], sk: str
) -> dict[str, object] | None:
    """The open posting `sk` (`held`: as stored, None: none yet) with `item`'s entries appended,
    as the adapter's conditional append leaves it; None: it has no room for them."""
    entries = list(held.get("entries") or ()) if held else []  # type: ignore[call-overload]
    if len(entries) > open_room(item):
        return None
    return {"pk": item["pk"], "sk": sk, "entries": [*entries, *open_entries(item)]}


# a Query of postings: (sk from, sk to, Limit, ExclusiveStartKey) -> (items newest first, LastEvaluatedKey)
PostingQuery = Callable[
    [str | None, str | None, int, Mapping[str, object] | None],
    tuple[list[Mapping[str, object]], Mapping[str, object] | None],
]
# the rows of some entries, in their order, those gone left out
RowFetch = Callable[[list[Entry]], list[dict[str, object]]]


def word_page(
    plan: Plan, limit: int, start_key: Mapping[str, object] | None, query: PostingQuery, fetch: RowFetch
) -> tuple[list[dict[str, object]], dict[str, object] | None]:
    """Up to `limit` rows of a word search newest first, and the key to continue from (None:
    the last page). The word's postings are read newest first, each sk starting with the latest
    hour it holds (a batch's: its hour; a week's open posting: the week's last); an entry is
    ready once the postings still unread all start with an earlier hour, so rows come in exact
    received_key order, each once. The rows are then read (`request_size` of them at a time) and
    the other filters and words checked on them. `start_key`: the last row shown, so a next page
    reads again its hour, and its week's and day's open postings."""
    after: Entry | None = None
    if start_key:
        after = Entry(str(start_key["sk"]), str(start_key.get("row") or ""))
    top = after.received_key if after else plan.sort_to
    sk_from = plan.sort_from[:HOUR] if plan.sort_from else None
    sk_to = top[:HOUR] + "~" if top else None  # '~' sorts after "#<tag>" and ":<minutes>"
    # the open postings of `top`'s week and day sort at their ends, above `sk_to`: read apart
    opened = open_postings_of(top) if top else None

    def wanted(entry: Entry) -> bool:
        return (
            (plan.sort_from is None or entry.received_key >= plan.sort_from)
            and (plan.sort_to is None or entry.received_key <= plan.sort_to)
            and (after is None or entry < after)
        )

    ready: list[Entry] = []  # entries no posting still unread can precede, newest first
    hour: str | None = None
    pending: set[Entry] = set()
    last: Mapping[str, object] | None = None
    read_all = False
    postings_read = entries_read = 0

    def take(item: Mapping[str, object]) -> None:
        nonlocal postings_read, entries_read
        found = entries_of(item)
        pending.update(found)
        postings_read, entries_read = postings_read + 1, entries_read + len(found)

    for sk in opened or ():
        for item in query(sk, sk, 1, None)[0] if sk_from is None or sk >= sk_from else ():
            take(item)
    rows: list[dict[str, object]] = []
    ask = 0
    while True:
        room = limit - len(rows)
        ask = request_size(room, ask)
        while len(ready) < ask and not read_all:
            # postings enough for what is missing at the entries per posting seen so far, and one
            # more: a posting of the next hour tells that an hour is read whole
            per = entries_read / postings_read if entries_read else 1.0
            count = max(2, min(MAX_REQUEST_ITEMS, ceil((ask - len(ready)) / per) + 1))
            items, last = query(sk_from, sk_to, count, last)
            for item in items:
                if str(item["sk"])[:HOUR] != hour:  # what is newer than its latest hour is complete
                    hour = str(item["sk"])[:HOUR]
                    done = {e for e in pending if e.received_key[:HOUR] > hour}
                    ready += sorted(filter(wanted, done), reverse=True)
                    pending -= done
                take(item)
            if not last:
                read_all = True
                ready += sorted(filter(wanted, pending), reverse=True)
                pending.clear()
        if not ready:
            return rows, None
        asked, ready = ready[:ask], ready[ask:]
        found_rows = [r for r in fetch(asked) if matches(r, plan) and has_words(r, plan)]
        rows.extend(found_rows[:room])
        if len(found_rows) > room:
            shown = rows[-1]
            return rows, {"pk": plan.key_value, "sk": shown["received_key"], "row": shown["pk"]}
        if not ready and read_all:
            return rows, None


ROW_FIELDS = (
    "sha256",
    "kind",
    "subject",
    "from",
    "sender",  # a PEC envelope's certified sender (its From is the provider's address)
    "received_at",
    "received_key",
    "date",
    "identificativo",
    "original_subject",
)


def inbox_row(
    mailbox: str,
    record: Mapping[str, object],
    handling: Handling | None = None,
    *,
    deleted: Mapping[str, str] | None = None,
    campaign_id: str | None = None,
) -> dict[str, object]:
    """A message's row in the inbox table: what a list shows, its handling, its listing keys."""
    sha256 = str(record["sha256"])
    handling = handling or Handling()
    row: dict[str, object] = {"pk": row_key(mailbox, sha256), "sk": ROW_SORT, "mailbox": mailbox.lower()}
    row |= {f: record[f] for f in ROW_FIELDS if record.get(f) not in (None, "", [])}
    to = record.get("to")
    if isinstance(to, list) and to:
        row["to"] = [str(a) for a in to[:5]]
        row["to_count"] = len(to)
    attachments = record.get("attachments")
    if isinstance(attachments, list) and attachments:
        row["attachments"] = len(attachments)
    sdi = record.get("sdi")
    if isinstance(sdi, Mapping) and sdi.get("type"):
        row["sdi_type"] = str(sdi["type"])
    rem = record.get("rem")
    if isinstance(rem, Mapping) and rem.get("event"):
        row["rem_event"] = str(rem["event"])
    problems = record.get("problems")
    if isinstance(problems, list) and problems:
        row["problems"] = len(problems)
    root = None if is_receipt(str(record.get("kind"))) else thread_root(record)
    if root:
        row["thread"] = root
    found = record_words(record, mailbox)
    if found:
        row["words"] = found
    row |= handling_fields(handling)
    if deleted:
        row["deleted"] = dict(deleted)
    if campaign_id:
        row["campaign"] = campaign_id
    keys = listing_keys(mailbox, record, handling, deleted=bool(deleted), campaign_id=campaign_id)
    row |= {k: v for k, v in keys.items() if v}
    return row


def handling_fields(handling: Handling) -> dict[str, object]:
    return {
        "handling": handling.status.value,
        "holder": handling.holder,
        "since": handling.since.isoformat() if handling.since else None,
        "handled_by": handling.by,
        "note": handling.note,
        "version": handling.version,
    }


def handling_of(row: Mapping[str, object]) -> Handling:
    since = row.get("since")
    return Handling(
        status=Status(str(row.get("handling") or Status.OPEN.value)),
        holder=str(row["holder"]) if row.get("holder") else None,
        since=datetime.fromisoformat(str(since)) if since else None,
        by=str(row["handled_by"]) if row.get("handled_by") else None,
        note=str(row["note"]) if row.get("note") else None,
        version=int(row.get("version") or 0),  # type: ignore[call-overload]
    )

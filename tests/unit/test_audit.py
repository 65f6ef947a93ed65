"""The audit chain: every kind of tampering with the stored events is caught at the right event."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pecflow.domain.audit import GENESIS, AuditAction, ChainHead, event_hash, head_after, next_event, verify

MAILBOX = "ufficio@pec.alfa.test"
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def chain(n: int, key: bytes | None = None, mailbox: str = MAILBOX):
    head, events = ChainHead(mailbox), []
    for i in range(n):
        event = next_event(
            head,
            actor=["anna", "bruno"][i % 2],
            action=list(AuditAction)[i % len(AuditAction)],
            at=T0 + timedelta(seconds=i),
            message=f"msg-{i % 3}",
            source_ip="192.0.2.7",
            client="Mozilla/5.0",
            details={"note": f"n{i}", "empty": None},
            key=key,
        )
        events.append(event)
        head = head_after(event)
    return events, head


def test_a_whole_chain_verifies_and_links_each_event_to_the_one_before():
    events, head = chain(6)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    assert events[0].details == {"note": "n0"}  # empty details are not stored
    verdict = verify(MAILBOX, events, head)
    assert verdict.ok and verdict.checked == 6 and verdict.reason is None


def test_an_empty_log_verifies():
    assert verify(MAILBOX, [], ChainHead(MAILBOX)).ok


def test_a_changed_field_is_caught_at_that_event():
    events, head = chain(5)
    events[2] = replace(events[2], actor="mallory")
    verdict = verify(MAILBOX, events, head)
    assert (verdict.broken_at, verdict.checked) == (3, 2)
    assert "event 3 was changed" in (verdict.reason or "")


def test_a_changed_event_with_its_hash_recomputed_breaks_the_next_link():
    events, head = chain(5)
    forged = replace(events[1], details={"note": "nothing to see"})
    events[1] = replace(forged, hash=event_hash(forged))
    verdict = verify(MAILBOX, events, head)
    assert verdict.broken_at == 3 and "does not follow event 2" in (verdict.reason or "")


def test_with_a_key_a_recomputed_hash_is_a_forgery():
    key = b"k" * 32
    events, head = chain(4, key=key)
    assert verify(MAILBOX, events, head, key=key).ok
    forged = replace(events[3], action="view")
    events[3] = replace(forged, hash=event_hash(forged))  # without the key
    assert verify(MAILBOX, events, head, key=key).broken_at == 4
    assert not verify(MAILBOX, chain(4, key=key)[0], key=None).ok


def test_a_removed_event_is_named():
    events, head = chain(5)
    del events[1]
    verdict = verify(MAILBOX, events, head)
    assert verdict.broken_at == 2 and "event 2 removed" in (verdict.reason or "")


def test_events_cut_from_the_end_are_caught_by_the_head():
    events, head = chain(5)
    verdict = verify(MAILBOX, events[:3], head)
    assert verdict.broken_at == 4 and "last ones were removed" in (verdict.reason or "")
    assert verify(MAILBOX, events[:3]).ok  # without the head, a cut end is not visible


def test_swapped_contents_are_caught():
    events, head = chain(5)
    a, b = events[1], events[3]
    events[1] = replace(b, seq=2)
    events[3] = replace(a, seq=4)
    assert verify(MAILBOX, events, head).broken_at == 2


def test_an_event_of_another_mailbox_is_caught():
    events, head = chain(3)
    other, _ = chain(3, mailbox="altro@pec.alfa.test")
    events[1] = other[1]
    assert verify(MAILBOX, events, head).broken_at == 2


def test_times_need_a_zone():
    with pytest.raises(ValueError, match="time zone"):
        next_event(ChainHead(MAILBOX), actor="anna", action="view", at=datetime(2026, 1, 1))


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=12),
    data=st.data(),
)
def test_any_single_tampering_is_caught_at_or_before_the_tampered_event(n, data):
    events, head = chain(n)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    how = data.draw(st.sampled_from(["alter", "alter-rehash", "remove", "swap", "duplicate"]))
    tampered = list(events)
    if how == "alter":
        tampered[i] = replace(events[i], at="2020-01-01T00:00:00.000000+00:00")
    elif how == "alter-rehash":
        forged = replace(events[i], message="altro")
        tampered[i] = replace(forged, hash=event_hash(forged))
    elif how == "remove":
        del tampered[i]
    elif how == "swap":
        j = data.draw(st.integers(min_value=0, max_value=n - 1).filter(lambda j: j != i)) if n > 1 else i
        if j == i:
            return
        tampered[i], tampered[j] = (
            replace(events[j], seq=events[i].seq),
            replace(events[i], seq=events[j].seq),
        )
    else:
        tampered.insert(i + 1, events[i])
    verdict = verify(MAILBOX, tampered, head)
    assert not verdict.ok
    assert verdict.broken_at is not None and verdict.broken_at <= events[i].seq + 1

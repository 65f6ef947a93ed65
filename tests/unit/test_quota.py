from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from pecflow.domain import quota
from pecflow.domain.quota import (
    MB,
    PRESETS,
    Decision,
    QuotaPolicy,
    admit,
    fits,
    next_slot,
    policy_from,
    prune,
    violations,
)

BASE = datetime(2026, 3, 2, 9, tzinfo=UTC).timestamp()  # realistic epoch magnitudes for float rounding


def rome(*args) -> float:
    from zoneinfo import ZoneInfo

    return datetime(*args, tzinfo=ZoneInfo("Europe/Rome")).timestamp()


# --- presets and policies ---------------------------------------------------------------------------
def test_presets():
    aruba = policy_from("aruba")
    assert (aruba.limit, aruba.window_seconds, aruba.rolling) == (250, 1200.0, True)
    assert (aruba.max_message_bytes, aruba.size_divided_by_recipients) == (100 * MB, True)
    gmail = policy_from("Gmail")
    assert (gmail.limit, gmail.window_seconds, gmail.rolling, gmail.timezone) == (
        100,
        86400.0,
        False,
        "Europe/Rome",
    )
    assert policy_from("legalmail").describe() == "6 per minute rolling"
    assert gmail.describe() == "100 per calendar day (Europe/Rome)"
    assert set(PRESETS) == {"aruba", "gmail", "legalmail"}


def test_policy_from_overrides_and_custom():
    assert policy_from("aruba", margin_seconds=5).margin_seconds == 5
    assert policy_from("aruba", margin_seconds=5).limit == 250
    custom = policy_from("custom", limit=40, window_seconds=3600, rolling=False)
    assert custom == QuotaPolicy(40, 3600, rolling=False)
    with pytest.raises(ValueError, match="limit and window_seconds"):
        policy_from("custom")
    with pytest.raises(ValueError, match="unknown quota preset"):
        policy_from("namirial")
    with pytest.raises(ValueError, match="unknown quota fields"):
        policy_from("aruba", per_minute=3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"limit": 0, "window_seconds": 60}, "limit"),
        ({"limit": 2.5, "window_seconds": 60}, "limit"),
        ({"limit": 1, "window_seconds": 0}, "window_seconds"),
        ({"limit": 1, "window_seconds": math.inf}, "window_seconds"),
        ({"limit": 1, "window_seconds": 60, "margin_seconds": 60}, "margin"),
        ({"limit": 1, "window_seconds": 60, "margin_seconds": -1}, "margin"),
        ({"limit": 1, "window_seconds": 60, "size_divided_by_recipients": True}, "max_message_bytes"),
        ({"limit": 1, "window_seconds": 60, "max_message_bytes": 0}, "max_message_bytes"),
        ({"limit": 1, "window_seconds": 86400, "timezone": "Europe/Rome"}, "fixed windows only"),
        ({"limit": 1, "window_seconds": 3600, "rolling": False, "timezone": "Europe/Rome"}, "calendar day"),
        ({"limit": 1, "window_seconds": 86400, "rolling": False, "timezone": "Mars/Olympus"}, "time zone"),
    ],
)
def test_invalid_policies(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuotaPolicy(**kwargs)


# --- rolling windows --------------------------------------------------------------------------------
def test_rolling_full_window_waits_for_the_first_send_to_leave():
    policy = QuotaPolicy(250, 1200)
    sent = [BASE + i * 0.25 for i in range(250)]
    decision = admit(policy, sent, BASE + 100)
    assert decision == Decision(False, (BASE + 1200) - (BASE + 100), BASE + 1200)
    assert not decision
    assert admit(policy, sent, BASE + 1200)
    assert not admit(policy, sent, BASE + 1199.999)
    # after the first leaves, the second one's turn: the slots come back in the order they were taken
    assert next_slot(policy, [*sent, BASE + 1200], BASE + 1200) == BASE + 1200.25


def test_rolling_window_is_half_open():
    policy = QuotaPolicy(1, 10)
    assert admit(policy, [BASE], BASE + 10).allowed
    assert admit(policy, [BASE], BASE + 9.999) == Decision(False, pytest.approx(0.001, abs=1e-6), BASE + 10)


def test_history_in_any_order_and_in_the_future():
    policy = QuotaPolicy(2, 60)
    # another sender took a slot slightly ahead of our clock: it counts
    assert next_slot(policy, [BASE + 5, BASE], BASE + 1) == BASE + 60
    # a slot taken later than now blocks the window before it too
    assert next_slot(policy, [BASE + 30, BASE + 40], BASE) == BASE + 90


def test_prune_keeps_what_can_still_matter():
    policy = QuotaPolicy(3, 60, margin_seconds=5)
    history = [BASE, BASE + 10, BASE + 64.9, BASE + 70]
    assert prune(policy, history, BASE + 74.9) == [BASE + 10, BASE + 64.9, BASE + 70]
    assert prune(policy, history, BASE + 75) == [BASE + 64.9, BASE + 70]  # 10 + 65: gone at 75
    assert prune(policy, history, BASE + 1000) == []


def test_margin_widens_decisions():
    exact, widened = QuotaPolicy(2, 60), QuotaPolicy(2, 60, margin_seconds=3)
    assert next_slot(exact, [BASE, BASE + 1], BASE + 2) == BASE + 60
    assert next_slot(widened, [BASE, BASE + 1], BASE + 2) == BASE + 63


# --- fixed windows and calendar days ----------------------------------------------------------------
def test_fixed_windows_are_aligned():
    policy = QuotaPolicy(2, 60, rolling=False)
    start = math.floor(BASE / 60) * 60
    assert quota.window_of(policy, start + 59.5) == (start, start + 60)
    assert next_slot(policy, [start + 1, start + 2], start + 30) == start + 60
    assert next_slot(policy, [start + 1], start + 30) == start + 30


def test_fixed_and_rolling_differ_at_the_window_edge():
    fixed, rolling = QuotaPolicy(3, 60, rolling=False), QuotaPolicy(3, 60)
    edge = math.ceil(BASE / 60) * 60
    late = [edge - 3, edge - 2, edge - 1]  # a full window, at its very end
    assert admit(fixed, late, edge).allowed  # a new fixed window: a full quota again
    assert admit(rolling, late, edge) == Decision(False, 57.0, edge + 57)
    burst = [*late, edge, edge + 1, edge + 2]  # fixed: 6 sends within 5 seconds
    assert violations(fixed, burst) == []
    assert violations(rolling, burst) == [edge - 3, edge - 2, edge - 1]


def test_fixed_margin_counts_in_the_next_window_too():
    policy = QuotaPolicy(1, 60, rolling=False, margin_seconds=5)
    start = math.floor(BASE / 60) * 60
    assert quota.counting_windows(policy, start + 57) == ((start, start + 60), (start + 60, start + 120))
    # a slot at 57 may reach the provider in the next window: that window is full too
    assert next_slot(policy, [start + 57], start + 58) == start + 120
    # a full next window pushes a slot back to where the margin no longer reaches it
    counts = {start + 60: 1}  # only the next window is full
    assert quota.next_slot_for_counts(policy, counts, start + 54) == start + 54  # 59 < 60: not reached
    assert quota.next_slot_for_counts(policy, counts, start + 56) == start + 120  # reached: after it


def test_gmail_day_is_the_rome_calendar_day():
    gmail = policy_from("gmail")
    sent = [rome(2026, 5, 4, 23, 50) + i for i in range(100)]
    decision = admit(gmail, sent, rome(2026, 5, 4, 23, 59))
    assert decision.at == rome(2026, 5, 5, 0, 0)  # Rome midnight, 22:00 UTC in May
    assert admit(gmail, sent, rome(2026, 5, 5, 0, 0)).allowed
    # summer time starts and ends: days of 23 and 25 hours
    for day, hours in (
        (datetime(2026, 3, 29), 23),
        (datetime(2026, 10, 25), 25),
        (datetime(2026, 1, 15), 24),
    ):
        start, end = quota.window_of(gmail, rome(day.year, day.month, day.day, 12))
        assert (start, (end - start) / 3600) == (rome(day.year, day.month, day.day), hours)


def test_rome_rule_without_a_tz_database_agrees_with_zoneinfo():
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Rome")
    t = datetime(1997, 1, 1, tzinfo=UTC)
    while t.year < 2038:
        for probe in (t, t + timedelta(minutes=59), t + timedelta(minutes=61)):
            assert quota._rome_offset(probe.timestamp()) == probe.astimezone(zone).utcoffset().total_seconds()
        t += timedelta(days=7, hours=1)
    for year in (2026, 2027, 2030):  # both switches, to the minute
        for month in (3, 10):
            switch = quota._eu_switch(year, month)
            for delta in (-60, 0, 60):
                at = switch + delta
                assert quota._rome_offset(at) == datetime.fromtimestamp(at, zone).utcoffset().total_seconds()


# --- size -------------------------------------------------------------------------------------------
def test_size_budget_divided_by_recipients():
    aruba = policy_from("aruba")
    assert fits(aruba, 60 * MB, 1) == (True, "")
    ok, reason = fits(aruba, 60 * MB, 2)
    assert not ok and reason == (
        "the message is 60.0 MB, over the 50.0 MB the provider accepts (100.0 MB divided by 2 recipients)"
    )
    assert quota.size_budget(aruba, 3) == 33_333_333
    gmail = policy_from("gmail")
    assert fits(gmail, 25 * MB, 10).ok and not fits(gmail, 25 * MB + 1, 1)
    assert fits(QuotaPolicy(1, 60), 10**12, 500).ok  # no size limit known
    with pytest.raises(ValueError):
        fits(aruba, 10, 0)


# --- properties -------------------------------------------------------------------------------------
millis = st.integers(min_value=0, max_value=400_000)


@st.composite
def policies(draw, margins=True):
    rolling = draw(st.booleans())
    window = draw(st.sampled_from([1.0, 7.5, 60.0, 100.0, 1200.0]))
    margin = draw(st.sampled_from([0.0, 0.0, 0.4, 2.0])) if margins else 0.0
    return QuotaPolicy(
        draw(st.integers(1, 6)), window, rolling=rolling, margin_seconds=min(margin, window / 2)
    )


def times(offsets):
    return [BASE + ms / 1000 for ms in offsets]


@settings(max_examples=300, deadline=None)
@given(policies(), st.lists(millis, max_size=80))
def test_whatever_the_order_admitted_sends_never_overfill_a_window(policy, offsets):
    sent = []
    for t in times(offsets):  # attempts in any order and spacing: concurrent senders, skewed clocks
        if admit(policy, sent, t).allowed:
            sent.append(t)
    assert violations(policy, sent) == []


@settings(max_examples=300, deadline=None)
@given(policies(), st.lists(millis, max_size=80))
def test_in_time_order_with_pruning_the_same_sends_are_admitted(policy, offsets):
    full, pruned = [], []
    for t in sorted(times(offsets)):
        a, b = admit(policy, full, t), admit(policy, pruned, t)
        assert a == b
        if a.allowed:
            full.append(t)
            pruned = prune(policy, [*pruned, t], t)
    assert violations(policy, full) == []


@settings(max_examples=300, deadline=None)
@given(policies(), st.lists(millis, max_size=60), millis, st.integers(0, 10**6))
@example(QuotaPolicy(2, 60.0), [0, 0], 1000, 0)
def test_next_slot_is_allowed_and_never_later_than_necessary(policy, offsets, now_ms, probe):
    history, now = times(offsets), BASE + now_ms / 1000
    slot = next_slot(policy, history, now)
    assert slot >= now
    assert admit(policy, history, slot).allowed  # sending at the slot is allowed
    decision = admit(policy, history, now)
    assert decision.allowed == (slot == now) and decision.at == slot
    if slot > now:
        assert decision.wait_seconds == slot - now
        if slot - 0.001 >= now:
            assert not admit(policy, history, slot - 0.001).allowed  # 1 ms earlier is not
        earlier = now + (slot - now) * (probe / 10**6)  # nor anything before it
        if earlier < slot:
            assert not admit(policy, history, earlier).allowed


@settings(max_examples=200, deadline=None)
@given(policies(), st.lists(millis, max_size=60), millis, st.lists(st.integers(0, 600_000), max_size=5))
def test_pruning_changes_no_decision_from_now_on(policy, offsets, now_ms, later_ms):
    history, now = times(offsets), BASE + now_ms / 1000
    kept = prune(policy, history, now)
    for t in [now, *(now + ms / 1000 for ms in later_ms)]:
        assert next_slot(policy, kept, t) == next_slot(policy, history, t)


@settings(max_examples=300, deadline=None)
@given(policies(margins=False), st.sampled_from([0.5, 2.0]), st.lists(millis, max_size=80), st.data())
def test_the_margin_covers_the_time_a_send_takes(exact, margin, offsets, data):
    """Slots decided with a margin stay legal at the provider wherever in [slot, slot + margin)
    each message arrives."""
    assume(margin < exact.window_seconds)
    widened = QuotaPolicy(exact.limit, exact.window_seconds, rolling=exact.rolling, margin_seconds=margin)
    slots = []
    for t in sorted(times(offsets)):
        if admit(widened, slots, t).allowed:
            slots.append(t)
    delays = data.draw(
        st.lists(st.floats(0, margin, exclude_max=True), min_size=len(slots), max_size=len(slots))
    )
    arrivals = [s + d for s, d in zip(slots, delays)]
    assert violations(exact, arrivals) == []


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5), st.floats(1, 100), st.integers(0, 10**6))
def test_fixed_and_rolling_at_window_edges(limit, window, phase):
    """A full window that ends right at the edge: fixed windows start afresh at the edge, the
    rolling window refuses until the first of those sends is one window old."""
    fixed, rolling = QuotaPolicy(limit, window, rolling=False), QuotaPolicy(limit, window)
    start, edge = quota.window_of(fixed, BASE + phase / 1000 * window)
    late = [edge - window / 10 * (i + 1) / limit for i in range(limit)]
    assume(all(start <= t < edge for t in late))
    assert admit(fixed, late, edge).allowed
    refused = admit(rolling, late, edge)
    assert not refused.allowed and refused.at == min(late) + window
    # fixed: a second full quota right after the edge is legal; rolling would see it as over quota
    burst = late + [edge + i * window / 100 for i in range(limit)]
    assert violations(fixed, burst) == [] and violations(rolling, burst) != []


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5), st.lists(st.integers(0, 4 * 86400), max_size=40), st.integers(0, 4 * 86400))
def test_calendar_days_across_summer_time(limit, offsets, now_s):
    policy = QuotaPolicy(limit, 86400.0, rolling=False, timezone="Europe/Rome")
    base = rome(2026, 10, 23)  # spans the 25-hour day of 25 October 2026
    sent = []
    for t in sorted(base + s for s in offsets):
        if admit(policy, sent, t).allowed:
            sent.append(t)
    assert violations(policy, sent) == []
    now = base + now_s
    slot = next_slot(policy, sent, now)
    assert admit(policy, sent, slot).allowed
    if slot > now:
        assert slot == quota.window_of(policy, slot)[0]  # a Rome midnight, the first day with room
        assert datetime.fromtimestamp(slot, UTC).hour in (22, 23)
        assert all(admit(policy, sent, t).allowed is False for t in (now, slot - 0.001) if t >= now)


def test_a_mailbox_quota_setting_names_a_preset_or_a_custom_rate():
    assert quota.policy_from_spec("Aruba") == quota.PRESETS["aruba"]
    custom = quota.policy_from_spec("custom:50/10m")
    assert (custom.limit, custom.window_seconds, custom.rolling) == (50, 600.0, True)
    daily = quota.policy_from_spec("custom:500/1d,fixed", margin_seconds=5)
    assert (daily.limit, daily.window_seconds, daily.rolling, daily.margin_seconds) == (
        500,
        quota.DAY,
        False,
        5,
    )
    assert quota.policy_from_spec("custom:6/60").window_seconds == 60.0
    for bad in ("custom:50", "custom:x/10m", "custom:50/10m,daily", "custom:0/10m", "nessuno"):
        with pytest.raises(ValueError):
            quota.policy_from_spec(bad)

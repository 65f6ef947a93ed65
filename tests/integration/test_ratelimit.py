"""The DynamoDB rate limiter against moto, with the QuotaTable template.yaml defines."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from pecflow.adapters.ratelimit import CONTENTION_WAIT, MAX_ROLLING_LIMIT, RateLimiter
from pecflow.domain import quota
from pecflow.domain.quota import QuotaPolicy, policy_from

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC).timestamp()
BOX = "ufficio@pec.example.it"


@pytest.fixture
def policies():
    return {}


@pytest.fixture
def limiter(aws, policies):
    def policy_for(mailbox):
        return policies.get(mailbox.lower(), QuotaPolicy(5, 60))

    return RateLimiter(aws.physical("QuotaTable"), policy_for, dynamodb=aws.resource("dynamodb"))


def test_sequential_acquisitions_stop_at_the_limit_and_wait_for_the_real_next_slot(limiter):
    taken = [limiter.acquire(BOX, T0 + i) for i in range(5)]
    assert all(d.allowed and d.wait_seconds == 0 and d.at == T0 + i for i, d in enumerate(taken))
    refused = limiter.acquire(BOX, T0 + 10)
    assert not refused.allowed
    stored = limiter.slots(BOX)["times"]
    assert stored == [T0 + i for i in range(5)]
    assert refused.at == quota.next_slot(QuotaPolicy(5, 60), stored, T0 + 10) == T0 + 60
    assert refused.wait_seconds == (T0 + 60) - (T0 + 10)
    assert not limiter.acquire(BOX, refused.at - 0.001).allowed
    assert limiter.acquire(BOX, refused.at).allowed  # exactly at the slot
    assert limiter.slots(BOX)["times"] == [T0 + i for i in range(1, 5)] + [T0 + 60]  # pruned
    assert limiter.stats.as_dict() == {
        "acquired": 6,
        "refused": 2,
        "conflicts": 0,
        "contended": 0,
        "released": 0,
    }


def test_a_refusal_writes_nothing(limiter):
    for i in range(5):
        limiter.acquire(BOX, T0 + i)
    version = limiter.slots(BOX)["version"]
    for i in range(3):
        assert not limiter.acquire(BOX, T0 + 20 + i).allowed
    assert limiter.slots(BOX)["version"] == version


def test_release_gives_the_slot_back(limiter):
    taken = [limiter.acquire(BOX, T0 + i) for i in range(5)]
    assert not limiter.acquire(BOX, T0 + 10).allowed
    assert limiter.release(BOX, taken[2].at) is True  # e.g. the claim failed
    again = limiter.acquire(BOX, T0 + 10)
    assert again.allowed and again.at == T0 + 10
    assert limiter.release(BOX, taken[2].at) is False  # only once
    assert limiter.release(BOX, T0 + 999) is False  # never taken
    assert limiter.release("nobody@pec.example.it", T0) is False
    assert limiter.stats.released == 1


def test_two_mailboxes_are_independent(limiter, policies):
    other = "Amministrazione@PEC.example.it"
    policies[other.lower()] = QuotaPolicy(2, 60)
    for i in range(5):
        assert limiter.acquire(BOX, T0 + i).allowed
    assert limiter.acquire(other, T0 + 5).allowed and limiter.acquire(other, T0 + 6).allowed
    assert not limiter.acquire(other, T0 + 7).allowed
    assert not limiter.acquire(BOX, T0 + 7).allowed
    assert limiter.acquire(other.lower(), T0 + 65).allowed  # the address is case-insensitive
    assert limiter.slots(other)["times"] == [T0 + 6, T0 + 65]


def test_a_clock_behind_gets_its_slot_after_the_latest(limiter):
    assert limiter.acquire(BOX, T0 + 10).at == T0 + 10
    late = limiter.acquire(BOX, T0 + 9.5)  # this sender's clock is half a second behind
    assert late.allowed and late.at == T0 + 10 and late.wait_seconds == 0.5
    assert limiter.slots(BOX)["latest"] == T0 + 10


def acquire_retrying(limiter, mailbox, now):
    """What a sender does when the limiter gave up on contention (at None): try again later."""
    while True:
        decision = limiter.acquire(mailbox, now)
        if decision.allowed or decision.at is not None:
            return decision
        now += decision.wait_seconds


def test_concurrent_senders_never_take_more_than_the_limit(limiter, policies):
    """16 threads at the same instant, 250 slots: exactly 250 taken, the races re-decided."""
    policies[BOX] = policy_from("aruba")
    start = threading.Barrier(16)

    def sender(n):
        start.wait()
        return [acquire_retrying(limiter, BOX, T0 + n / 1000) for _ in range(20)]

    with ThreadPoolExecutor(16) as pool:
        decisions = [d for batch in pool.map(sender, range(16)) for d in batch]
    allowed = [d.at for d in decisions if d.allowed]
    assert len(allowed) == 250 and len(set(allowed)) <= 250
    assert quota.violations(policy_from("aruba"), allowed) == []
    assert sorted(allowed) == limiter.slots(BOX)["times"]
    refused = [d for d in decisions if not d.allowed]
    assert len(refused) == 16 * 20 - 250 and all(d.at >= T0 + 1200 for d in refused)
    assert limiter.stats.acquired == 250 and limiter.stats.conflicts > 0


def test_concurrent_senders_over_many_windows(limiter, policies):
    """Threads sending on a shared clock that moves on: no window over the limit, and every
    window of the busy period used up to it."""
    policy = QuotaPolicy(7, 10)
    policies[BOX] = policy
    lock, ticks, allowed = threading.Lock(), [0], []

    def sender():
        for _ in range(60):
            with lock:
                ticks[0] += 1
                now = T0 + ticks[0] * 0.05  # 20 attempts per second across the threads
            decision = acquire_retrying(limiter, BOX, now)
            if decision.allowed:
                with lock:
                    allowed.append(decision.at)

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert quota.violations(policy, allowed) == []
    span = T0 + ticks[0] * 0.05 - T0
    assert len(allowed) >= 7 * int(span // 10)  # the quota was used, not only respected


def test_contention_gives_up_after_bounded_retries(limiter, monkeypatch):
    limiter.acquire(BOX, T0)
    calls = []

    def always_lose(**kwargs):
        calls.append(kwargs)
        raise ClientError(
            {"Error": {"Code": "ConditionalCheckFailedException", "Message": "lost"}}, "PutItem"
        )

    monkeypatch.setattr(limiter.client, "put_item", always_lose)
    limiter.sleep = lambda seconds: None
    decision = limiter.acquire(BOX, T0 + 1)
    assert (decision.allowed, decision.wait_seconds, decision.at) == (False, CONTENTION_WAIT, None)
    assert len(calls) == limiter.max_attempts and limiter.stats.contended == 1


def test_fixed_windows_keep_counters_not_times(limiter, policies):
    gmail = policy_from("gmail")
    policies[BOX] = gmail
    from zoneinfo import ZoneInfo

    evening = datetime(2026, 5, 4, 22, 0, tzinfo=ZoneInfo("Europe/Rome")).timestamp()
    midnight = datetime(2026, 5, 5, tzinfo=ZoneInfo("Europe/Rome")).timestamp()
    for i in range(100):
        assert limiter.acquire(BOX, evening + i).allowed
    refused = limiter.acquire(BOX, evening + 200)
    assert refused.at == midnight
    stored = limiter.slots(BOX)
    assert stored["times"] == [] and stored["windows"] == [[midnight - 86400, midnight, 100]]
    assert limiter.acquire(BOX, midnight).allowed
    assert limiter.slots(BOX)["windows"] == [[midnight, midnight + 86400, 1]]  # yesterday dropped


def test_large_limits_need_fixed_windows(limiter, policies):
    policies[BOX] = QuotaPolicy(MAX_ROLLING_LIMIT + 1, 3600)
    with pytest.raises(ValueError, match="fixed windows"):
        limiter.acquire(BOX, T0)
    policies[BOX] = QuotaPolicy(50_000, 86400, rolling=False)
    for i in range(3):
        assert limiter.acquire(BOX, T0 + i).allowed
    assert len(limiter.slots(BOX)["windows"]) == 1


def test_an_aruba_item_stays_small(aws, limiter, policies):
    policies[BOX] = policy_from("aruba", margin_seconds=10)
    for i in range(300):
        limiter.acquire(BOX, T0 + i * 0.5)
    item = aws.client("dynamodb").get_item(TableName=aws.physical("QuotaTable"), Key={"mailbox": {"S": BOX}})[
        "Item"
    ]
    assert len(item["times"]["B"]) == 250 * 8
    assert len(limiter.slots(BOX)["times"]) == 250
    size = sum(len(k) + len(v.get("B", b"")) + len(str(v.get("N", v.get("S", "")))) for k, v in item.items())
    assert size < 2_200, size  # 1 read unit, 3 write units a send; DynamoDB allows 400 KB


def test_a_policy_change_carries_the_sends_over(limiter, policies):
    policies[BOX] = QuotaPolicy(3, 60)  # rolling
    for i in range(3):
        limiter.acquire(BOX, T0 + i)
    policies[BOX] = QuotaPolicy(5, 3600, rolling=False)  # now fixed: the three still count
    hour = quota.window_of(policies[BOX], T0 + 10)
    assert limiter.acquire(BOX, T0 + 10).allowed and limiter.acquire(BOX, T0 + 11).allowed
    assert limiter.acquire(BOX, T0 + 12).at == hour[1]
    assert limiter.slots(BOX)["windows"] == [[hour[0], hour[1], 5]]
    policies[BOX] = QuotaPolicy(2, 600)  # rolling again: 5 recent sends
    assert limiter.acquire(BOX, T0 + 20).at == T0 + 20 + 600  # taken as sent at the latest
    assert limiter.release(BOX, T0 + 11) is False  # kept under another policy: not released


def test_reservations_hand_out_successive_future_slots_within_the_quota(aws):
    policy = QuotaPolicy(limit=5, window_seconds=60.0, margin_seconds=2.0, pace_seconds=1.5)
    limiter = RateLimiter(aws.physical("QuotaTable"), lambda _: policy, dynamodb=aws.resource("dynamodb"))
    t0 = 1_000_000.0
    reserved = [limiter.acquire("a@pec.test", t0, horizon=3600) for _ in range(17)]
    assert all(d.allowed for d in reserved)
    slots = [d.at for d in reserved]
    assert slots == sorted(slots) and slots[:5] == [t0] * 5, "slots free now are not delayed by the pace"
    waiting = slots[5:]
    assert all(b - a >= 1.5 for a, b in zip(waiting, waiting[1:])), (
        "reserved slots never closer than the pace"
    )
    assert quota.violations(policy, slots) == []
    assert slots[5] >= slots[0] + 62.0, "the sixth waits for the window (and margin) of the first"
    beyond = limiter.acquire("a@pec.test", t0, horizon=60)
    assert not beyond.allowed and beyond.at > t0 + 60, "beyond the horizon: refused, nothing taken"
    assert limiter.acquire("a@pec.test", t0, horizon=3600).at > slots[-1]

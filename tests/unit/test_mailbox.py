from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pecflow.adapters.secrets import password_from_secret, secret_value
from pecflow.domain.mailbox import (
    ConfigError,
    Cursor,
    FolderStatus,
    MailboxConfig,
    OnProvider,
    PollAction,
    Saturation,
    SaturationPolicy,
    Usage,
    chunks,
    plan_poll,
    saturation_candidates,
)
from pecflow.services.polling import PollRequest, tick_of

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_config_round_trips_through_an_item():
    config = MailboxConfig(
        "ufficio@pec.azienda.it",
        "imaps.pec.aruba.it",
        folders=("INBOX", "Posta inviata"),
        saturation=SaturationPolicy(Saturation.ABOVE_QUOTA, percent=75.5, expunge=True),
    )
    assert MailboxConfig.from_item(config.to_item()) == config
    assert "password" not in str(config.to_item())


@pytest.mark.parametrize(
    "bad,reason",
    [
        (dict(address="nope"), "not a mailbox address"),
        (dict(imap_host=""), "imap_host"),
        (dict(imap_port=0), "not a TCP port"),
        (dict(folders=()), "folder"),
        (dict(saturation=SaturationPolicy(Saturation.AFTER_DAYS, days=0)), "days"),
        (dict(saturation=SaturationPolicy(Saturation.ABOVE_QUOTA, archive_folder=None)), "archive folder"),
    ],
)
def test_invalid_configs_say_why(bad, reason):
    fields = dict(address="a@pec.it", imap_host="imap.pec.it") | bad
    with pytest.raises(ConfigError, match=reason):
        MailboxConfig(**fields).validate()


def test_plan_nothing_new_costs_nothing_more():
    cursor = Cursor("INBOX", uidvalidity=7, last_uid=120, uidnext=121)
    plan = plan_poll(cursor, FolderStatus(uidvalidity=7, uidnext=121, exists=10_000))
    assert plan.action == PollAction.NOTHING_NEW


def test_plan_fetches_from_the_next_uid():
    plan = plan_poll(Cursor("INBOX", 7, 120), FolderStatus(7, 130, 50))
    assert (plan.action, plan.from_uid) == (PollAction.FETCH_NEW, 121)


def test_first_poll_and_empty_mailbox():
    assert plan_poll(Cursor("INBOX"), FolderStatus(9, 1, 0)).action == PollAction.NOTHING_NEW
    first = plan_poll(Cursor("INBOX"), FolderStatus(9, 4, 3))
    assert (first.action, first.from_uid, first.cursor.uidvalidity) == (PollAction.FETCH_NEW, 1, 9)


def test_uidvalidity_change_means_resync_from_scratch():
    plan = plan_poll(Cursor("INBOX", 7, 500), FolderStatus(8, 20, 19))
    assert plan.action == PollAction.RESYNC and plan.from_uid == 1
    assert plan.cursor == Cursor("INBOX", 8, 0)


@given(
    st.lists(st.tuples(st.integers(1, 10_000), st.integers(0, 5_000_000)), unique_by=lambda t: t[0]),
    st.integers(1, 30),
    st.integers(1_000, 20_000_000),
)
def test_chunks_are_bounded_and_complete(items, max_messages, max_bytes):
    batches = chunks(items, max_messages=max_messages, max_bytes=max_bytes)
    assert [uid for batch in batches for uid in batch] == sorted(uid for uid, _ in items)
    sizes = dict(items)
    for batch in batches:
        assert len(batch) <= max_messages
        assert len(batch) == 1 or sum(sizes[u] for u in batch) <= max_bytes


def _messages(n: int) -> list[OnProvider]:
    return [
        OnProvider(uid, 100 * 1024, NOW - timedelta(days=n - uid), archived=uid % 5 != 0)
        for uid in range(1, n + 1)
    ]


def test_after_days_takes_only_old_archived_messages():
    policy = SaturationPolicy(Saturation.AFTER_DAYS, days=10)
    picked = saturation_candidates(policy, None, _messages(30), NOW)
    assert picked and all(m.archived and m.received_at < NOW - timedelta(days=10) for m in picked)
    assert [m.uid for m in picked] == sorted(m.uid for m in picked)


def test_above_quota_frees_just_enough_oldest_first():
    policy = SaturationPolicy(Saturation.ABOVE_QUOTA, percent=50)
    usage = Usage(used_kb=3000, limit_kb=4000)  # 75%: 1000 KB over the 50% line
    picked = saturation_candidates(policy, usage, _messages(30), NOW)
    assert sum(m.size for m in picked) / 1024 >= 1000
    assert sum(m.size for m in picked[:-1]) / 1024 < 1000
    assert all(m.archived for m in picked)
    assert saturation_candidates(policy, Usage(1000, 4000), _messages(30), NOW) == []
    assert saturation_candidates(SaturationPolicy(), usage, _messages(30), NOW) == []


def test_poll_requests_deduplicate_per_tick_and_group_per_mailbox():
    one = PollRequest("a@pec.it", "2026-11-23T12:05Z").sqs_entry()
    again = PollRequest("a@pec.it", "2026-11-23T12:05Z").sqs_entry()
    later = PollRequest("a@pec.it", "2026-11-23T12:10Z").sqs_entry()
    assert one["MessageDeduplicationId"] == again["MessageDeduplicationId"] != later["MessageDeduplicationId"]
    assert one["MessageGroupId"] == "a@pec.it"
    assert PollRequest.parse(one["MessageBody"]) == PollRequest("a@pec.it", "2026-11-23T12:05Z")
    assert tick_of("2026-11-23T12:05:59Z") == "2026-11-23T12:05Z"
    with pytest.raises(ValueError):
        PollRequest.parse('{"tick": 1}')


def test_secret_values():
    assert password_from_secret(secret_value('s3cr3t:"x')) == 's3cr3t:"x'
    assert password_from_secret("bare-password") == "bare-password"
    with pytest.raises(ValueError):
        password_from_secret('{"user": "x"}')


@pytest.mark.parametrize(
    "stored,password",
    [
        ("12345678", "12345678"),
        ("1.50", "1.50"),
        ("true", "true"),
        ("null", "null"),
        ('"quoted"', '"quoted"'),
        ("[1, 2]", "[1, 2]"),
        ('{"password": 12345678}', "12345678"),
        ('{"password": 1.50}', "1.50"),
        ('{"password": true}', "true"),
    ],
)
def test_a_secret_is_read_as_text_whatever_its_json_type(stored, password):
    """A password typed by hand in the console as a bare number (issue 10, item 8) is that text."""
    assert password_from_secret(stored) == password


def test_uidnext_unchanged_means_nothing_new_even_after_deletions():
    cursor = Cursor("INBOX", uidvalidity=7, last_uid=100, uidnext=150)  # 101..149 were deleted
    assert plan_poll(cursor, FolderStatus(7, 150, 80)).action == PollAction.NOTHING_NEW
    assert plan_poll(cursor, FolderStatus(7, 151, 81)).action == PollAction.FETCH_NEW

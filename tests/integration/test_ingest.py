"""The ingestor against a real IMAP server (Dovecot) and moto: no loss, no duplicates, receipts
reconciled, crash points, UIDVALIDITY changes, deadlines, and the saturation guard."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from local.pecbuild import builder
from local.pecbuild import corpus as pecmix
from pecflow.adapters.mail import ImapSession, MailboxUnavailable
from pecflow.domain.mailbox import MailboxConfig, Saturation, SaturationPolicy
from pecflow.domain.ports import no_checkpoint
from pecflow.pec import kinds
from pecflow.pec.daticert import Destinatario
from pecflow.services.polling import PollRequest, handle_poll

WHEN = datetime(2026, 3, 2, 9, tzinfo=UTC)


class Crash(Exception):
    pass


def config_for(dovecot, account, **kw) -> MailboxConfig:
    return MailboxConfig(account.address, dovecot.host, dovecot.port, ca_bundle=dovecot.ca.pem.decode(), **kw)


def poll(dovecot, account, ingestor, config=None, **kw):
    config = config or config_for(dovecot, account)
    session = ImapSession.open(config, account.password)
    try:
        return ingestor.poll(config, session, **kw)
    finally:
        session.close()


def our_traffic(ingestor, address: str, n: int) -> list[bytes]:
    """n messages we sent (registered as outgoing), with the receipts each one produced."""
    raws = []
    for i in range(n):
        to = [f"cliente{i}@pec.cliente.test"]
        msgid = f"<m{i}@pec.azienda.test>"
        original = builder.messaggio_originale(
            mittente=address, destinatari=to, oggetto=f"Pratica {i}", testo="x", message_id=msgid, data=WHEN
        )
        ingestor.outgoing.register(msgid, mailbox=address, recipients=to)
        kw = dict(
            gestore=builder.SIMULATO,
            identificativo=f"opec{i}.1@pec.simulato.test",
            destinatari=[Destinatario(to[0])],
        )
        raws.append(builder.ricevuta(kinds.ACCETTAZIONE, original, data=WHEN + timedelta(seconds=1), **kw))
        if i % 4 == 3:
            raws.append(
                builder.ricevuta(
                    kinds.ERRORE_CONSEGNA,
                    original,
                    consegna=to[0],
                    errore="no-dest",
                    data=WHEN + timedelta(seconds=2),
                    **kw,
                )
            )
        else:
            raws.append(
                builder.ricevuta(
                    kinds.AVVENUTA_CONSEGNA, original, consegna=to[0], data=WHEN + timedelta(seconds=2), **kw
                )
            )
    return raws


def fill(dovecot, account, raws, *, folder="INBOX", when=None):
    for raw in raws:
        dovecot.append(account.address, raw, folder=folder, when=when)


def test_every_message_archived_and_recorded_once_and_receipts_reconciled(dovecot, wiring):
    account = dovecot.fresh_user()
    mixed = [c.raw for c in pecmix.corpus(40, seed=3)]
    ours = our_traffic(wiring, account.address, 10)
    fill(dovecot, account, mixed[:20] + ours[:10])
    first = poll(dovecot, account, wiring)
    fill(dovecot, account, mixed[20:] + ours[10:])
    second = poll(dovecot, account, wiring)
    third = poll(dovecot, account, wiring)
    assert first.fetched + second.fetched == 60 and third.fetched == 0
    assert wiring.messages.count(account.address) == len(set(mixed + ours))
    assert first.receipts_matched + second.receipts_matched == 20
    states = Counter(wiring.outgoing.jobs(f"<m{i}@pec.azienda.test>")[0].state for i in range(10))
    assert states == {"delivered": 8, "delivery-failed": 2}
    unmatched = wiring.messages.query(account.address, index="Unmatched", limit=100)
    corpus_receipts = sum(1 for raw in mixed if b"X-Ricevuta:" in raw)
    assert len(unmatched) == corpus_receipts, "receipts of messages we did not send are kept, listed"


def test_nothing_new_costs_the_same_whatever_the_mailbox_holds(dovecot, wiring):
    small, large = dovecot.fresh_user(), dovecot.fresh_user()
    corpus = [c.raw for c in pecmix.corpus(120, seed=4, sdi=False)]
    fill(dovecot, small, corpus[:5])
    fill(dovecot, large, corpus)
    commands = []
    for account in (small, large):
        poll(dovecot, account, wiring)
        commands.append(poll(dovecot, account, wiring).imap_commands)
    assert commands[0] == commands[1] <= 5


@pytest.mark.parametrize("point", ["after_archive", "after_reconcile", "after_record", "before_cursor"])
def test_a_crash_at_any_step_loses_nothing_and_duplicates_nothing(dovecot, wiring, aws, point):
    account = dovecot.fresh_user()
    raws = our_traffic(wiring, account.address, 6) + [c.raw for c in pecmix.corpus(12, seed=9)]
    fill(dovecot, account, raws)

    def crash_at_uid_7(step, uid):
        if step == point and uid == 7:
            raise Crash(point)

    wiring.checkpoint = crash_at_uid_7
    with pytest.raises(Crash):
        poll(dovecot, account, wiring)
    wiring.checkpoint = no_checkpoint
    poll(dovecot, account, wiring)
    assert wiring.messages.count(account.address) == len(set(raws))
    s3 = aws.client("s3").list_objects_v2(Bucket=aws.physical("ArchiveBucket"))
    assert s3["KeyCount"] == len(set(raws))
    jobs = [wiring.outgoing.jobs(f"<m{i}@pec.azienda.test>")[0] for i in range(6)]
    assert Counter(j.state for j in jobs) == {"delivered": 5, "delivery-failed": 1}
    for i in range(6):
        receipts = wiring.outgoing.view(f"<m{i}@pec.azienda.test>")["jobs"][0]["receipts"]
        assert len(receipts) == 2, "each receipt recorded once on its job"


def test_uidvalidity_change_resyncs_without_duplicates(dovecot, wiring):
    account = dovecot.fresh_user()
    raws = [c.raw for c in pecmix.corpus(15, seed=5, sdi=False)]
    fill(dovecot, account, raws, folder="Ricevute")
    config = config_for(dovecot, account, folders=("Ricevute",))
    poll(dovecot, account, wiring, config)
    with dovecot.connect(account.address) as client:  # the provider rebuilds the folder
        client.delete_folder("Ricevute")
    newcomer = builder.messaggio_originale(
        mittente="a@pec.test", destinatari=[account.address], oggetto="nuovo", testo="x", data=WHEN
    )
    fill(dovecot, account, raws + [newcomer], folder="Ricevute")
    result = poll(dovecot, account, wiring, config)
    assert result.resynced == ["Ricevute"]
    assert result.recorded == 1 and result.already_recorded == 15
    assert wiring.messages.count(account.address) == 16


def test_a_deadline_stops_cleanly_and_the_next_poll_continues(dovecot, wiring):
    account = dovecot.fresh_user()
    raws = [c.raw for c in pecmix.corpus(60, seed=6, sdi=False)]
    fill(dovecot, account, raws)
    wiring.chunk_messages = 10
    budget = iter([100, 100, 100, 0, 0])
    first = poll(dovecot, account, wiring, time_left=lambda: next(budget, 0), margin=10)
    assert first.more and 0 < first.fetched < 60
    rest = poll(dovecot, account, wiring)
    assert not rest.more and first.fetched + rest.fetched == 60
    assert wiring.messages.count(account.address) == len(set(raws))


def test_handle_poll_records_bad_credentials_and_moves_on(dovecot, wiring):
    good, bad = dovecot.fresh_user(), dovecot.fresh_user()
    fill(dovecot, good, [c.raw for c in pecmix.corpus(3, seed=1, sdi=False)])
    for account in (good, bad):
        wiring.mailboxes.put(config_for(dovecot, account))
    passwords = {good.address: good.password, bad.address: "wrong"}
    outcomes = [
        handle_poll(
            PollRequest(a.address, "t"),
            mailboxes=wiring.mailboxes,
            ingestor=wiring,
            password_of=lambda c, refresh=False: passwords[c.address],
            open_session=ImapSession.open,
        )
        for a in (bad, good)
    ]
    assert (outcomes[0].ok, outcomes[0].error_kind) == (False, "auth")
    assert outcomes[1].ok and outcomes[1].result.fetched == 3
    status = wiring.mailboxes.status(bad.address)
    assert status["error_kind"] == "auth" and "login refused" in status["last_error"]
    assert "wrong" not in str(status), "no secret in the mailbox record"


@pytest.mark.parametrize(
    "host,port,kind", [("127.0.0.1", 1, "unreachable"), ("localhost.invalid", 993, "unreachable")]
)
def test_unreachable_hosts_are_a_clear_error(dovecot, host, port, kind):
    config = MailboxConfig("x@pec.test", host, port)
    with pytest.raises(MailboxUnavailable) as error:
        ImapSession.open(config, "pw", timeout=3)
    assert error.value.kind == kind and host in str(error.value)


def test_tls_errors_are_a_clear_error(dovecot):
    config = MailboxConfig("x@pec.test", dovecot.host, dovecot.port)  # our private CA is not trusted
    with pytest.raises(MailboxUnavailable) as error:
        ImapSession.open(config, "pw", timeout=5)
    assert error.value.kind == "tls" and "certificate" in str(error.value).lower()


# --- saturation ----------------------------------------------------------------------------------------
def _saturated(dovecot, wiring, policy):
    account = dovecot.fresh_user()
    raws = [c.raw for c in pecmix.corpus(10, seed=8, sdi=False)]
    fill(dovecot, account, raws[:6], when=datetime.now(UTC) - timedelta(days=200))
    fill(dovecot, account, raws[6:])
    config = config_for(dovecot, account, saturation=policy)
    return account, config, raws


def _inbox(dovecot, account, folder="INBOX"):
    with dovecot.connect(account.address) as client:
        return client.select_folder(folder)[b"EXISTS"] if client.folder_exists(folder) else 0


def test_old_archived_messages_move_to_the_archive_folder(dovecot, wiring):
    policy = SaturationPolicy(Saturation.AFTER_DAYS, days=30, archive_folder="Archivio-pecflow")
    account, config, raws = _saturated(dovecot, wiring, policy)
    result = poll(dovecot, account, wiring, config)
    assert result.moved == 6 and result.refused == []
    assert _inbox(dovecot, account) == 4 and _inbox(dovecot, account, "Archivio-pecflow") == 6


def test_nothing_leaves_the_provider_unless_its_archive_copy_verifies(dovecot, wiring, aws):
    account, config, raws = _saturated(dovecot, wiring, SaturationPolicy(Saturation.NEVER))
    poll(dovecot, account, wiring, config)  # archived and recorded, nothing removed
    assert _inbox(dovecot, account) == 10
    s3 = aws.client("s3")
    bucket = aws.physical("ArchiveBucket")
    records = {r.uid: r for r in wiring.messages.query(account.address, limit=100)}
    missing, tampered = records[1], records[2]
    s3.delete_object(Bucket=bucket, Key=missing.s3_key)  # a delete marker: the object is gone
    s3.put_object(
        Bucket=bucket,
        Key=tampered.s3_key,
        Body=b"something else",  # a new version, other bytes
        ChecksumAlgorithm="SHA256",
    )
    policy = SaturationPolicy(Saturation.AFTER_DAYS, days=30, expunge=True)
    result = poll(dovecot, account, wiring, config_for(dovecot, account, saturation=policy))
    assert result.expunged == 4
    assert len(result.refused) == 2
    assert any("missing" in r for r in result.refused) and any("differs" in r for r in result.refused)
    assert _inbox(dovecot, account) == 6, "the 4 recent ones and the 2 unverifiable ones stay"
    assert wiring.messages.get(account.address, missing.sha256).archive_problem is not None


def test_above_quota_expunges_oldest_first_until_below_the_line(dovecot, wiring):
    account = dovecot.fresh_user(quota="400K")
    blob = bytes(range(256)) * 100  # 25.6 KB, about 35 KB in base64
    raws = [
        builder.messaggio_originale(
            mittente="a@pec.test",
            destinatari=[account.address],
            oggetto=f"n. {i}",
            testo="x",
            allegati=[(f"doc{i}.pdf", "application/pdf", blob)],
            data=WHEN + timedelta(minutes=i),
        )
        for i in range(8)
    ]
    for i, raw in enumerate(raws):
        dovecot.append(account.address, raw, when=WHEN + timedelta(minutes=i))
    policy = SaturationPolicy(Saturation.ABOVE_QUOTA, percent=40, expunge=True)
    result = poll(dovecot, account, wiring, config_for(dovecot, account, saturation=policy))
    assert result.usage_percent > 60 and result.expunged >= 3
    with dovecot.connect(account.address) as client:
        quota = client.get_quota_root("INBOX")[1][0]
        assert quota.usage * 100 / quota.limit <= 40
        client.select_folder("INBOX")
        remaining = client.fetch(client.search(["ALL"]), ["ENVELOPE"])
        subjects = sorted(v[b"ENVELOPE"].subject.decode() for v in remaining.values())
    assert subjects == [f"n. {i}" for i in range(8 - result.expunged, 8)], "the oldest went first"


def test_above_quota_policy_must_expunge():
    from pecflow.domain.mailbox import ConfigError

    with pytest.raises(ConfigError, match="expunge"):
        SaturationPolicy(Saturation.ABOVE_QUOTA, archive_folder="Archivio").validate()

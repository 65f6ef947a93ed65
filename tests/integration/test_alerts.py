"""Alerts on moto in-process with template.yaml's resources (AlertsTable, AlarmsTopic, the
webhook secret): a storm of 1,000 failed deliveries received by the poller gives one grouped
alert per period with its count, then one summary; concurrent pollers publish it once; the
scheduled check counts receipts left unmatched; what was published is read as a subscriber
would (local.alerts.TopicReader)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from local.alerts import TopicReader
from local.pecbuild import builder
from pecflow import bootstrap
from pecflow.adapters.alerts import AlertGroupsTable, AlertSettings
from pecflow.config import Config
from pecflow.pec import kinds
from pecflow.pec.daticert import Destinatario
from pecflow.services.polling import PollOutcome, PollRequest
from tests import fakes

BOX = "ufficio@pec.azienda.test"
CAMPAIGN = "solleciti-marzo"
WHEN = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch):
    return fakes.FakeClock(WHEN).install(monkeypatch)


@pytest.fixture
def config(aws):
    return Config(
        stack_name="pecflow",
        mailboxes_table=aws.physical("MailboxesTable"),
        messages_table=aws.physical("MessagesTable"),
        outgoing_table=aws.physical("OutgoingTable"),
        campaigns_table=aws.physical("CampaignsTable"),
        inbox_table=aws.physical("InboxTable"),
        archive_bucket=aws.physical("ArchiveBucket"),
        alerts_table=aws.physical("AlertsTable"),
        alerts_topic=aws.arn("AlarmsTopic"),
        alerts_webhook_secret=aws.arn("AlertsWebhookSecret"),
    )


@pytest.fixture
def reader(aws):
    return TopicReader(aws)


def failed_deliveries(outgoing, n: int) -> list[bytes]:
    """n campaign messages we sent, each with its errore-consegna receipt."""
    raws = []
    for i in range(n):
        to = f"cliente{i}@pec.cliente.test"
        msgid = f"<m{i}@pec.azienda.test>"
        original = builder.messaggio_originale(
            mittente=BOX, destinatari=[to], oggetto=f"Sollecito {i}", testo="x", message_id=msgid, data=WHEN
        )
        outgoing.register(msgid, mailbox=BOX, recipients=[to], campaign_id=CAMPAIGN)
        raws.append(
            builder.ricevuta(
                kinds.ERRORE_CONSEGNA,
                original,
                gestore=builder.SIMULATO,
                identificativo=f"opec{i}.1@pec.simulato.test",
                destinatari=[Destinatario(to)],
                consegna=to,
                errore="no-dest",
                data=WHEN + timedelta(seconds=2),
            )
        )
    return raws


def poll_new(ingestor, server, mailbox, account, raws):
    for raw in raws:
        account.append(raw, when=WHEN)
    session = server.open(mailbox, "pw")
    try:
        return ingestor.poll(mailbox, session)
    finally:
        session.close()


def test_failed_deliveries_received_over_three_polls_are_one_alert_then_one_summary(config, reader, clock):
    alerts = bootstrap.alerts(config)
    assert alerts is not None
    ingestor = bootstrap.ingestor(config, alerts=alerts, check_signature=None, rules=None, inbox=None)
    server = fakes.FakeImapServer()
    account = server.add_account(BOX, "pw")
    mailbox = fakes.config(BOX)
    ingestor.mailboxes.put(mailbox)
    bootstrap.campaign_store(config).create(CAMPAIGN, {"status": "sending", "mailbox": BOX})
    raws = failed_deliveries(ingestor.outgoing, 30)
    published = []
    for first in range(0, 30, 10):  # three polls of the same hour, 10 new receipts each
        result = poll_new(ingestor, server, mailbox, account, raws[first : first + 10])
        assert result.recorded == 10 and result.receipts_matched == 10 and not result.quarantined
        published.append(alerts.after_poll(PollOutcome(PollRequest(BOX, "t"), result)))
        clock.advance(300)
    assert published == [1, 0, 0]
    [alert] = reader.read()
    assert alert.subject == f"pecflow: Consegne PEC non riuscite - {BOX}"
    assert f"10 messaggi inviati da {BOX} nella campagna {CAMPAIGN}" in alert.text
    assert "destinatario cliente0@pec.cliente.test" in alert.text
    assert alert.attributes == {"causa": "consegna-fallita", "casella": BOX}
    clock.advance(3600)  # the period is over: its summary, once
    assert alerts.summarize() == 1 and alerts.summarize() == 0
    [summary] = reader.read()
    assert "altri 20 casi, 30 in tutto" in summary.text


def test_a_storm_of_1000_failed_deliveries_from_concurrent_pollers_is_one_alert(config, reader, clock):
    """Ten pollers (each its own Alerts, as in ten Lambda containers) note 100 failures each, in
    five polls of twenty: the conditional write lets exactly one publish."""
    failure = builder_receipt()
    published: list[int] = []
    lock = threading.Lock()

    def poller() -> None:
        alerts = bootstrap.alerts(config)
        assert alerts is not None
        for _ in range(5):
            for _ in range(20):
                alerts.received(BOX, failure, CAMPAIGN)
            sent = alerts.flush()
            with lock:
                published.append(sent)

    threads = [threading.Thread(target=poller) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(published) == 1
    [alert] = reader.read()
    assert f"nella campagna {CAMPAIGN}" in alert.text
    clock.advance(3600)
    alerts = bootstrap.alerts(config)
    assert alerts is not None and alerts.summarize() == 1
    [summary] = reader.read()
    assert "1.000 in tutto" in summary.text


def builder_receipt():
    from pecflow.pec.message import parse

    [raw] = failed_deliveries(fakes.FakeOutgoingStore(fakes.FakeCampaignStore()), 1)
    return parse(raw)


def test_the_check_finds_receipts_left_unmatched_and_runs_once_per_period(aws, config, reader, clock):
    from pecflow.adapters.dynamodb import MessageStore

    messages = MessageStore(config.messages_table, aws.resource("dynamodb"))

    def ago(hours: float) -> str:
        return (WHEN - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # one told at an earlier check (30 h), one crossing 24 hours since the last check, one recent
    for n, received in enumerate([ago(30), ago(24.5), ago(1)]):
        sha = f"{n:064x}"
        record = {"sha256": sha, "kind": kinds.ERRORE_CONSEGNA, "received_at": received,
                  "received_key": f"{received}#{sha[:16]}", "subject": f"ricevuta {n}"}  # fmt: skip
        messages.record(BOX, record)
        messages.set_fields(BOX, sha, {"reconciled": "unmatched", "unmatched_mailbox": BOX})
    checks = bootstrap.alert_checks(config)
    assert checks is not None
    AlertSettings(config.mailboxes_table, aws.client("dynamodb")).set(BOX, unmatched_hours=24)
    assert checks.run([BOX]) == 1
    assert checks.run([BOX]) is None
    [alert] = reader.read()
    assert f"2 ricevute arrivate su {BOX} da più di 24 ore" in alert.text
    assert "oggetto «ricevuta 0»" in alert.text
    clock.advance(3600)  # the next period: nothing crossed the threshold since
    assert checks.run([BOX]) == 0 and reader.read() == []


def test_the_webhook_secret_holds_no_url_until_one_is_put(aws, config):
    from pecflow.adapters.alerts import webhook_url_from_secret

    secrets = aws.client("secretsmanager")
    assert webhook_url_from_secret(config.alerts_webhook_secret, secrets)() is None
    secrets.put_secret_value(SecretId=config.alerts_webhook_secret, SecretString="https://chat.test/hook/x")
    assert webhook_url_from_secret(config.alerts_webhook_secret, secrets)() == "https://chat.test/hook/x"


def test_the_tables_grouping_item_counts_every_occurrence(aws, config, clock):
    groups = AlertGroupsTable(config.alerts_table, aws.client("dynamodb"))
    fields = {"cause": "x", "period_end": "2026-03-02T10:00:00.000000Z", "expires": 1}
    assert groups.add("k", 3, fields) == 3
    assert groups.add("k", 4, fields | {"cause": "ignored once set"}) == 7
    assert groups.claim("k", 7) and not groups.claim("k", 7)
    assert groups.add("k", 1, fields) == 8
    [closed] = groups.closed("2026-03-02T10:00:00.000000Z")
    assert closed["count"] == 8 and closed["published_count"] == 7 and closed["cause"] == "x"
    assert groups.claim_summary("k", 8) and groups.closed("2026-03-02T11:00:00.000000Z") == []
    assert not groups.claim("never-added", 1)


def test_a_rules_notify_goes_out_as_an_alert_naming_the_people(aws, config, reader, clock):
    from pecflow.adapters.rules import MailboxRules

    alerts = bootstrap.alerts(config)
    ingestor = bootstrap.ingestor(config, alerts=alerts, check_signature=None, inbox=None)
    assert ingestor.rules is not None and ingestor.rules.notifier is alerts
    server = fakes.FakeImapServer()
    account = server.add_account(BOX, "pw")
    mailbox = fakes.config(BOX)
    ingestor.mailboxes.put(mailbox)
    document = {"version": 1, "rules": [{"name": "Diffide", "then": {"notify": ["mario", "lucia"]}}]}
    MailboxRules(config.mailboxes_table, aws.resource("dynamodb")).set_rules(BOX, document, by="admin")
    raw = (
        f"From: avvocato@studio.test\r\nTo: {BOX}\r\nSubject: Diffida\r\nMessage-ID: <d@studio.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\ntesto\r\n"
    ).encode()
    result = poll_new(ingestor, server, mailbox, account, [raw])
    assert result.rules_applied == 1 and result.rules_failed == []
    [alert] = reader.read()
    assert alert.attributes == {"causa": "avviso-da-regola", "casella": BOX, "persone": ["mario", "lucia"]}
    assert "Regola: «Diffide»." in alert.text and "Per: mario, lucia." in alert.text
    assert "da avvocato@studio.test; oggetto «Diffida»" in alert.text


def test_the_cli_sets_a_mailboxs_thresholds_and_publishes_a_test_alert(config, reader, monkeypatch, capsys):
    from pecflow.cli import main

    for name in ("mailboxes_table", "alerts_table", "alerts_topic", "alerts_webhook_secret", "stack_name"):
        monkeypatch.setenv(name.upper(), getattr(config, name))
    assert main(["alerts", "settings", BOX, "--to-handle-hours", "4"]) == 0
    assert "più di 4 ore, se una ricevuta resta senza messaggio corrispondente più di 24 ore" in (
        capsys.readouterr().out
    )
    assert bootstrap.alert_settings(config).get(BOX) == {"to_handle_hours": 4}
    assert main(["alerts", "test", BOX]) == 0
    [alert] = reader.read()
    assert alert.attributes["casella"] == BOX and "Avviso di prova di pecflow" in alert.text

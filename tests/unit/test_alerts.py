"""Alerts: causes in words office staff understand, grouped per cause, subject and period (one
alert, then at most one summary, however many occurrences), never stopping the work that raised
them; the chat webhook never named in an error."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from pecflow.adapters.alerts import AlertChannel, _sns_subject
from pecflow.domain import alerts as causes
from pecflow.domain.alerts import Occurrence, UnknownCause, alert_text, group_key, period_start
from pecflow.domain.clock import iso as clock_iso
from pecflow.pec import kinds
from pecflow.services.alerts import AlertChecks, Alerts
from pecflow.services.polling import PollOutcome, PollRequest
from pecflow.services.receive import PollResult
from tests.fakes import FakeAlertChannel, FakeAlertGroups, FakeClock

MAILBOX = "ufficio@pec.azienda.test"


@pytest.fixture
def clock(monkeypatch):
    return FakeClock(datetime(2026, 3, 2, 9, 10, tzinfo=UTC)).install(monkeypatch)


@pytest.fixture
def channel():
    return FakeAlertChannel()


@pytest.fixture
def groups():
    return FakeAlertGroups()


@pytest.fixture
def failures():
    return []


@pytest.fixture
def alerts(groups, channel, clock, failures):
    return Alerts(groups, channel, on_failure=failures.append)


@dataclass
class Recipient:
    address: str


@dataclass
class Receipt:
    kind: str
    delivered_to: str | None = "cliente@pec.cliente.test"
    recipients: list = field(default_factory=list)
    original_subject: str | None = "Sollecito di pagamento"
    error: str | None = "no-dest"
    error_detail: str | None = "5.1.1 casella inesistente"
    ref_message_id: str | None = "<abc@pecflow>"


def failed_delivery(n: int = 0) -> Receipt:
    return Receipt(kinds.ERRORE_CONSEGNA, delivered_to=f"cliente{n}@pec.cliente.test")


# --- the causes ------------------------------------------------------------------------------------
def test_an_unknown_cause_is_refused_with_the_known_ones():
    with pytest.raises(UnknownCause, match="sdi-scartata"):
        Occurrence("qualcosa", MAILBOX)


def test_a_group_is_one_cause_one_subject_one_period():
    start = period_start(datetime(2026, 3, 2, 9, 59, tzinfo=UTC), 3600)
    assert start == datetime(2026, 3, 2, 9, tzinfo=UTC)
    failed = Occurrence(causes.CONSEGNA_FALLITA, MAILBOX.upper(), campaign_id="c1")
    assert group_key(failed, start) == "consegna-fallita#campagna:c1#2026-03-02T09:00Z"
    alone = Occurrence(causes.CONSEGNA_FALLITA, MAILBOX)
    assert group_key(alone, start) == f"consegna-fallita#casella:{MAILBOX}#2026-03-02T09:00Z"


def test_the_receipts_that_raise_an_alert():
    assert causes.receipt_cause(kinds.ERRORE_CONSEGNA) == causes.CONSEGNA_FALLITA
    assert causes.receipt_cause(kinds.NON_ACCETTAZIONE) == causes.NON_ACCETTAZIONE
    assert causes.receipt_cause(kinds.PREAVVISO_ERRORE_CONSEGNA) == causes.PREAVVISO
    assert causes.receipt_cause(kinds.AVVENUTA_CONSEGNA) is None
    assert causes.receipt_cause(kinds.POSTA_CERTIFICATA) is None


def test_an_alert_says_what_happened_where_and_what_to_do():
    occurrence = Occurrence(
        causes.CONSEGNA_FALLITA,
        MAILBOX,
        campaign_id="solleciti-marzo",
        count=1234,
        examples=["destinatario x"],
    )
    subject, text = alert_text(occurrence, datetime(2026, 3, 2, 9, tzinfo=UTC), 3600)
    assert subject == f"pecflow: Consegne PEC non riuscite - {MAILBOX}"
    assert "1.234 messaggi inviati da ufficio@pec.azienda.test nella campagna solleciti-marzo" in text
    assert "Alcuni dei messaggi:\n- destinatario x" in text
    assert "Cosa fare: Controllate l'indirizzo" in text
    # Italian time: 10:00 + 1 h in March (CET)
    assert "fino alle 02/03/2026 11:00" in text


@pytest.mark.parametrize("name", sorted(causes.CAUSES))
def test_every_cause_reads_whole(name):
    occurrence = Occurrence(name, MAILBOX, count=3, hours=8)
    _, text = alert_text(occurrence, datetime(2026, 7, 1, tzinfo=UTC), 3600)
    assert "{" not in text and "Cosa fare: " in text
    assert MAILBOX in text


# --- grouping --------------------------------------------------------------------------------------
def test_a_storm_in_one_poll_is_one_alert_with_its_count(alerts, channel):
    for n in range(1000):
        alerts.received(MAILBOX, failed_delivery(n), "solleciti")
    assert alerts.flush() == 1
    [(subject, text, attributes)] = channel.published
    assert "1.000 messaggi" in text and "campagna solleciti" in text
    assert text.count("\n- ") == causes.MAX_EXAMPLES
    assert attributes == {"causa": "consegna-fallita", "casella": MAILBOX}


def test_a_storm_over_many_polls_is_one_alert_then_one_summary_of_the_period(alerts, channel, clock):
    for poll in range(20):
        for n in range(50):
            alerts.received(MAILBOX, failed_delivery(poll * 50 + n), None)
        alerts.flush()
        clock.advance(60)
    assert len(channel.published) == 1
    assert "50 messaggi" in channel.published[0][1]
    assert alerts.summarize() == 0  # the period is not over
    clock.advance(3600)
    assert alerts.summarize() == 1
    assert alerts.summarize() == 0  # once
    subject, text, _ = channel.published[1]
    assert subject.startswith("pecflow: riepilogo - Consegne PEC non riuscite")
    assert "altri 950 casi, 1.000 in tutto" in text


def test_a_new_period_opens_a_new_alert(alerts, channel, clock):
    alerts.raise_(causes.SDI_SCARTATA, mailbox=MAILBOX, example="fattura 12/2026: scarto NS 00200")
    alerts.raise_(causes.SDI_SCARTATA, mailbox=MAILBOX)
    assert len(channel.published) == 1
    clock.advance(3600)
    alerts.raise_(causes.SDI_SCARTATA, mailbox=MAILBOX)
    assert len(channel.published) == 2
    assert "fattura 12/2026: scarto NS 00200" in channel.published[0][1]


def test_each_mailbox_and_cause_is_a_group_of_its_own(alerts, channel):
    alerts.raise_(causes.SDI_SCARTATA, mailbox=MAILBOX)
    alerts.raise_(causes.SDI_SCARTATA, mailbox="altra@pec.azienda.test")
    alerts.raise_(causes.FIRMA_NON_VALIDA, mailbox=MAILBOX)
    assert len(channel.published) == 3


def test_a_mailbox_unreadable_is_alerted_on_the_third_failure(alerts, channel):
    failed = PollOutcome(PollRequest(MAILBOX, "t"), error_kind="auth", error="LOGIN refused")
    assert alerts.after_poll(failed) == 0
    assert alerts.after_poll(failed) == 0
    assert alerts.after_poll(failed) == 1
    assert alerts.after_poll(failed) == 0
    _, text, _ = channel.published[0]
    assert "3 tentativi falliti" in text and "Dettaglio: auth: LOGIN refused" in text


def test_a_poll_tells_saturation_invalid_signatures_and_quarantine(alerts, channel):
    result = PollResult(MAILBOX, usage_percent=93.4)
    result.signatures = {"invalid": 2, "valid": 5}
    result.invalid_signatures = ["UID 7: digest mismatch", "UID 9: digest mismatch"]
    result.quarantined = ["UID 8: ValueError: bad MIME"]
    assert alerts.after_poll(PollOutcome(PollRequest(MAILBOX, "t"), result)) == 3
    published = {a["causa"]: text for _, text, a in channel.published}
    assert "occupata al 93% (soglia 90%)" in published[causes.CASELLA_QUASI_PIENA]
    assert "2 messaggi ricevuti" in published[causes.FIRMA_NON_VALIDA]
    assert "UID 8: ValueError: bad MIME" in published[causes.QUARANTENA]
    assert "la casella continua a essere letta" in published[causes.QUARANTENA]


def test_a_quiet_poll_alerts_nothing(alerts, channel, groups):
    assert (
        alerts.after_poll(PollOutcome(PollRequest(MAILBOX, "t"), PollResult(MAILBOX, usage_percent=40))) == 0
    )
    assert channel.published == [] and groups.items == {}


def test_receipts_that_say_nothing_wrong_are_not_noted(alerts, groups):
    alerts.received(MAILBOX, Receipt(kinds.AVVENUTA_CONSEGNA), "c1")
    assert alerts.flush() == 0 and groups.items == {}


# --- never in the way ------------------------------------------------------------------------------
def test_a_channel_that_fails_is_told_and_does_not_raise(alerts, channel, failures):
    channel.fail = RuntimeError("topic unreachable")
    assert alerts.raise_(causes.SDI_SCARTATA, mailbox=MAILBOX) == 0
    assert failures == [f"avviso sdi-scartata per {MAILBOX} non inviato: RuntimeError: topic unreachable"]


def test_a_table_that_fails_is_told_and_does_not_raise(alerts, groups, failures):
    groups.fail = RuntimeError("throttled")
    assert alerts.after_poll(PollOutcome(PollRequest(MAILBOX, "t"), error_kind="tls", error="x")) == 0
    assert "non registrato: RuntimeError: throttled" in failures[0]


# --- the rules' notify -----------------------------------------------------------------------------
def test_notify_names_the_people_in_the_text_and_in_an_attribute(alerts, channel):
    record = {"from": "fornitore@pec.it", "subject": "Fattura", "kind": "posta-certificata"}
    alerts.notify(["mario", "lucia"], MAILBOX, record, "fatture")
    [(_, text, attributes)] = channel.published
    assert "Regola: «fatture»." in text and "Per: mario, lucia." in text
    assert "da fornitore@pec.it; oggetto «Fattura»" in text
    assert attributes["persone"] == ["mario", "lucia"]


def test_notify_that_cannot_go_out_raises_so_the_rule_records_it(alerts, channel):
    channel.fail = RuntimeError("down")
    with pytest.raises(RuntimeError, match="non inviato"):
        alerts.notify(["mario"], MAILBOX, {"subject": "x"}, "r")


# --- the scheduled check ---------------------------------------------------------------------------
class Waiting:
    def __init__(self):
        self.asked: list[tuple[str, str, str]] = []

    def unmatched_before(self, mailbox, before, since, limit):
        self.asked.append(("unmatched", mailbox, before, since))
        return 4, ["ricevuto 2026-03-01 08:00"]

    def to_handle_before(self, mailbox, before, since, limit):
        self.asked.append(("to_handle", mailbox, before, since))
        return (0, []) if mailbox == MAILBOX else (12, ["oggetto «Diffida»"])


def hours_ago(hours: int) -> str:
    return clock_iso(datetime(2026, 3, 2, 9, 10, tzinfo=UTC) - timedelta(hours=hours))


def test_the_check_runs_once_per_period_with_each_mailboxs_hours(alerts, channel, groups, clock):
    waiting = Waiting()
    settings = {MAILBOX: {"to_handle_hours": 2}}
    checks = AlertChecks(alerts, waiting, lambda m: settings.get(m, {}), lambda k: groups.claim_run(k, 0))
    other = "protocollo@pec.azienda.test"
    assert checks.run([MAILBOX, other]) == 3  # unmatched on both, not taken in charge on the other
    assert checks.run([MAILBOX, other]) is None  # this period's check is done
    # each asked about what crossed its threshold in the last period
    assert ("to_handle", MAILBOX, hours_ago(2), hours_ago(3)) in waiting.asked
    assert ("to_handle", other, hours_ago(8), hours_ago(9)) in waiting.asked  # 8 hours by default
    assert ("unmatched", other, hours_ago(24), hours_ago(25)) in waiting.asked  # 24 hours
    texts = [t for _, t, a in channel.published if a["causa"] == causes.NON_PRESI_IN_CARICO]
    assert texts and "12 messaggi arrivati su protocollo@pec.azienda.test" in texts[0]
    assert "da più di 8 ore" in texts[0]


# --- the channel -----------------------------------------------------------------------------------
class Sns:
    def __init__(self):
        self.calls = []

    def publish(self, **kwargs):
        self.calls.append(kwargs)


SECRET_URL = "https://hooks.chat.test/services/T0/B0/s3cr3t"


def test_the_channel_publishes_to_the_topic_and_posts_text_to_the_webhook():
    sns, posts = Sns(), []
    channel = AlertChannel(
        "arn:topic", sns, webhook_url=lambda: SECRET_URL, post=lambda u, b, t: posts.append((u, b, t)) or 200
    )
    channel.publish("pecflow: Casella PEC già piena - x", "testo", {"causa": "c", "persone": ["a"]})
    [call] = sns.calls
    assert call["Subject"] == "pecflow: Casella PEC gia piena - x"  # SNS takes ASCII only
    assert call["MessageAttributes"]["persone"] == {"DataType": "String.Array", "StringValue": '["a"]'}
    [(url, body, timeout)] = posts
    assert url == SECRET_URL and timeout == 5.0
    assert json.loads(body) == {"text": "*pecflow: Casella PEC già piena - x*\ntesto"}


def test_a_failing_webhook_never_shows_its_url_and_rests_before_trying_again():
    now = [0.0]
    posts = []

    def post(url, body, timeout):
        posts.append(url)
        raise OSError(f"cannot reach {url}")

    channel = AlertChannel(
        "arn:topic", Sns(), webhook_url=lambda: SECRET_URL, post=post, monotonic=lambda: now[0]
    )
    with pytest.raises(RuntimeError) as failed:
        channel.publish("s", "t", {})
    assert "s3cr3t" not in str(failed.value) and "hooks.chat.test" not in str(failed.value)
    assert "(OSError)" in str(failed.value)
    channel.publish("s", "t", {})  # resting: the topic only
    assert len(posts) == 1
    now[0] = 301.0
    with pytest.raises(RuntimeError):
        channel.publish("s", "t", {})
    assert len(posts) == 2


def test_no_webhook_configured_is_the_topic_only():
    sns = Sns()
    AlertChannel("arn:topic", sns).publish("s", "t", {})
    assert len(sns.calls) == 1


def test_the_sns_subject_is_one_ascii_line_under_100_characters():
    assert _sns_subject("à" * 50 + "\nperché " + "x" * 200) == ("a" * 50 + " perche " + "x" * 41)


def test_a_receipt_the_hook_cannot_read_never_raises_into_the_poll(alerts, failures):
    class Odd:
        kind = kinds.ERRORE_CONSEGNA
        delivered_to = None
        recipients = None  # not a list

    alerts.received(MAILBOX, Odd(), None)
    assert failures and "non annotato: TypeError" in failures[0]


def test_a_mailbox_full_at_every_poll_is_one_alert_and_no_summary(alerts, channel, clock):
    full = PollOutcome(PollRequest(MAILBOX, "t"), PollResult(MAILBOX, usage_percent=97))
    for _ in range(10):  # 09:10 to 09:55
        alerts.after_poll(full)
        clock.advance(300)
    assert len(channel.published) == 1
    clock.advance(3600)
    assert alerts.summarize() == 0 and len(channel.published) == 1
    assert "Fino alle 02/03/2026 11:00 non arriveranno altri avvisi uguali." in channel.published[0][1]

"""REM through pecflow's own functions on the local stack (issue 13): campaigns sent from a
mailbox on a REM provider, alone and mixed with PEC providers, end with statistics that match
the simulator's script exactly; REM dispatches and ordinary mail arriving at a REM mailbox are
polled through the event runner, archived byte for byte, recorded with their REM map and listed
by `pecflow inbox list` as certified mail and anomalies."""

from __future__ import annotations

import hashlib
import smtplib
from collections import Counter
from datetime import UTC, datetime

import pytest

from local.pec_provider import FAIL, MAILBOX_FULL, REJECT, VIRUS
from local.pecbuild import builder
from pecflow import bootstrap, cli
from pecflow.domain.reconcile import CampaignStatus, State
from pecflow.pec import kinds
from tests.e2e.test_campaigns import MANIFEST, settle, upload
from tests.e2e.test_ingestion import POLL, mailbox_contents, stores, submit
from tests.e2e.test_rem_provider import gestore

# what a script makes of a recipient: the job's final state, and the receipt that puts it there
# (kind, REM event, REM reason) as the sender's provider reports it: a REM provider with a REM
# receipt (local/pec_rules.py evento_rem), a PEC provider with a PEC one (no REM event)
OUTCOMES = {
    "delivered": (
        State.DELIVERED,
        kinds.AVVENUTA_CONSEGNA,
        "ContentConsignment",
        "MessageConsignedToRecipient",
    ),
    "unknown": (  # FAIL: not registered at its provider
        State.DELIVERY_FAILED,
        kinds.ERRORE_CONSEGNA,
        "RelayFailure",
        "MessageNotAcceptedForUnregisteredRecipient",
    ),
    "full": (
        State.DELIVERY_FAILED,
        kinds.ERRORE_CONSEGNA,
        "ContentConsignmentFailure",
        "MessageNotConsignedForQuota",
    ),
    "virus": (
        State.DELIVERY_FAILED,
        kinds.ERRORE_CONSEGNA,
        "RelayFailure",
        "R_ERDS_MessageRejectedForMalware",
    ),
    "refused": (State.NOT_ACCEPTED, kinds.NON_ACCETTAZIONE, "SubmissionRejection", "InvalidMessageFormat"),
    "external": (State.ACCEPTED, kinds.ACCETTAZIONE, "RelayToNonERDS", "MessageRelayedToNonERDS"),
}
PEC_OUTCOMES = {name: (state, kind, None, None) for name, (state, kind, *_) in OUTCOMES.items()}
Plan = dict[str, tuple[State, str, str | None, str | None]]


def expected_counters(states: list[State]) -> dict[str, int]:
    """The statistics a campaign whose jobs end in `states` shows, written out from the meaning
    of each counter (docs/architecture.md), not from the code under test."""
    count = Counter(states)
    external = count[State.ACCEPTED]  # only the ordinary addresses end at accepted
    return {
        "total": len(states),
        "to_send": 0,
        "waiting": 0,
        "only_sent": 0,
        "warnings": 0,
        "cancelled": 0,
        "sent": len(states),
        "accepted": count[State.DELIVERED] + external,
        "delivered": count[State.DELIVERED],
        "delivery_failures": count[State.DELIVERY_FAILED],
        "errors": count[State.NOT_ACCEPTED],
    }


def script(net, provider, address: str, outcome: str) -> None:
    """Make `address` end as `outcome` says."""
    if outcome in ("delivered", "full", "virus"):
        provider.add_mailbox(address)
    rule = {"unknown": FAIL, "full": MAILBOX_FULL, "virus": VIRUS, "refused": REJECT}.get(outcome)
    if rule is not None:
        net.script(address, rule)


def run_campaign(stack, campaign_id: str, sender: str, plan: Plan) -> dict:
    manifest = {
        **MANIFEST,
        "mailbox": sender,
        "subject": "Comunicazione per {{ nome }}",
        "body_text": "Gentile {{ nome }}.\n",
        "attachments": [],
    }
    manifest.pop("attachment_column")
    upload(
        stack,
        campaign_id,
        manifest=manifest,
        rows=[{"pec": address, "nome": f"Destinatario {i}"} for i, address in enumerate(plan)],
        files={},
    )
    stack.runner.run_until_idle(120)
    stats = bootstrap.campaign_admin(stack.deployment()).stats(campaign_id)
    assert stats["status"] == CampaignStatus.SENDING, stats
    counters = settle(stack, campaign_id)
    failures = [i for i in stack.runner.invocations if not i.ok and "Deferred" not in (i.error or "")]
    assert failures == [], failures[0].error if failures else None
    return counters


def check_jobs(stack, campaign_id: str, plan: Plan) -> None:
    """Each job in the state its script says, with the receipt that put it there."""
    jobs = {j.recipient: j for j in bootstrap.campaign_admin(stack.deployment()).jobs(campaign_id)}
    assert {a: jobs[a.lower()].state for a in plan} == {a: state for a, (state, *_) in plan.items()}
    for address, (state, kind, event, reason) in plan.items():
        job = jobs[address.lower()]
        receipts = {(r["kind"], r.get("rem_event"), r.get("rem_reason")) for r in job.receipts.values()}
        assert (kind, event, reason) in receipts, (address, receipts)
        assert all(bool(e) is bool(event) for _, e, _ in receipts), f"{address}: PEC and REM receipts mixed"
        assert job.certified is (state != State.ACCEPTED), address
        if reason and state in (State.DELIVERY_FAILED, State.NOT_ACCEPTED):  # why, in Italian and English
            assert job.error and " / " in job.error and f"({reason})" in job.error, (address, job.error)


def check_receipts(stack, sender: str, *, rem: bool) -> None:
    """Every receipt the sender's mailbox got is recorded (REM ones with their rem map) and
    matched to what we sent."""
    delivered = Counter(d.kind for d in stack.network.deliveries if d.mailbox == sender and d.error is None)
    messages, _ = stores(stack)
    records = messages.query(sender, limit=500)
    assert Counter(r.kind for r in records) == delivered
    for r in records:
        assert r.kind in kinds.RICEVUTE, r
        assert (r.rem or {}).get("message_type") == ("receipt" if rem else None), r
        assert r.reconciled == "matched" and not r.reconcile_problems, (r.rem, r.reconcile_problems)


@pytest.mark.timeout(600)
def test_a_campaign_from_a_rem_mailbox_ends_as_the_script_says(stack):
    net = stack.network
    uno = net.add_provider(gestore("Uno", True), rem=True)
    due = net.add_provider(gestore("Due", True), rem=True)
    sender = stack.add_company_mailbox(uno).address
    outcomes = ["delivered"] * 6 + ["unknown"] * 2 + ["full", "virus", "refused", "external", "external"]
    plan = {}
    for i, outcome in enumerate(outcomes):
        if outcome == "external":
            address = f"cliente{i}@posta-ordinaria-{due.gestore.domain}.example"
        else:
            address = f"cliente{i}@{due.gestore.domain}"
            script(net, due, address, outcome)
        plan[address] = OUTCOMES[outcome]

    counters = run_campaign(stack, "rem-solleciti", sender, plan)

    assert counters == expected_counters([state for state, *_ in plan.values()])
    assert counters == {  # the same, spelt out for this script
        "total": 13,
        "to_send": 0,
        "waiting": 0,
        "only_sent": 0,
        "warnings": 0,
        "cancelled": 0,
        "sent": 13,
        "accepted": 8,
        "delivered": 6,
        "delivery_failures": 4,
        "errors": 1,
    }
    check_jobs(stack, "rem-solleciti", plan)
    check_receipts(stack, sender, rem=True)
    # the simulator delivered a REM dispatch to each delivered recipient, once
    dispatches = Counter(
        d.mailbox for d in net.deliveries if d.kind == kinds.POSTA_CERTIFICATA and d.error is None
    )
    assert dispatches == {a: 1 for a, (state, *_) in plan.items() if state == State.DELIVERED}
    assert {d.rem_event for d in net.deliveries if d.mailbox == sender} >= {
        "SubmissionAcceptance",
        "SubmissionRejection",
        "ContentConsignment",
        "ContentConsignmentFailure",
        "RelayFailure",
        "RelayToNonERDS",
    }


@pytest.mark.timeout(600)
@pytest.mark.parametrize("sender_on", ["rem", "pec"])
def test_a_mixed_pec_and_rem_campaign_shows_one_set_of_statistics(stack, sender_on):
    net = stack.network
    uno = net.add_provider(gestore("Uno", True), rem=True)
    due = net.add_provider(gestore("Due", True), rem=True)
    tre = net.add_provider(gestore("Tre", False))
    home = uno if sender_on == "rem" else tre
    sender = stack.add_company_mailbox(home).address
    rows = [
        (tre, "delivered"),
        (tre, "delivered"),
        (tre, "unknown"),
        (due, "delivered"),
        (due, "full"),
        (uno, "delivered"),
        (uno, "unknown"),
        (None, "external"),
    ]
    plan: Plan = {}
    for i, (provider, outcome) in enumerate(rows):
        if provider is None:
            address = f"fornitore{i}@posta-{uno.gestore.domain}.example"
        else:
            address = f"cliente{i}@{provider.gestore.domain}"
            script(net, provider, address, outcome)
        # the sender's own provider writes its receipts, whatever the recipient's provider
        plan[address] = (OUTCOMES if home.rem else PEC_OUTCOMES)[outcome]

    counters = run_campaign(stack, f"misto-{sender_on}", sender, plan)

    assert counters == expected_counters([state for state, *_ in plan.values()])
    assert (counters["delivered"], counters["delivery_failures"], counters["accepted"]) == (4, 3, 5)
    check_jobs(stack, f"misto-{sender_on}", plan)
    check_receipts(stack, sender, rem=home.rem)
    # the PEC recipients got buste di trasporto, the REM ones REM dispatches
    delivered = {
        d.mailbox: d.rem_event
        for d in net.deliveries
        if d.kind == kinds.POSTA_CERTIFICATA and d.error is None  # a full mailbox's APPEND failed
    }
    assert delivered == {
        a: None if tre.gestore.domain in a else "SubmissionAcceptance"
        for a, (state, *_) in plan.items()
        if state == State.DELIVERED
    }


ORDINARY = "fornitore@posta-ordinaria.example"


@pytest.mark.timeout(600)
def test_rem_dispatches_and_ordinary_mail_are_archived_recorded_and_listed(
    stack, dovecot, tmp_path, monkeypatch, capsys
):
    net = stack.network
    uno = net.add_provider(gestore("Uno", True), rem=True)
    due = net.add_provider(gestore("Due", True), rem=True)
    tre = net.add_provider(gestore("Tre", False))
    office = stack.add_company_mailbox(uno)
    rem_user, pec_user = due.fresh_mailbox("cliente"), tre.fresh_mailbox("cliente")
    submit(due, rem_user, [office.address], subject="Richiesta REM", msgid="<rem-in-1@cliente.example>")
    submit(tre, pec_user, [office.address], subject="Richiesta PEC", msgid="<pec-in-1@cliente.example>")
    with smtplib.SMTP(net.mx_host, net.mx_port, timeout=20) as mx:  # ordinary mail, through the MX
        mx.sendmail(
            ORDINARY,
            [office.address],
            f"From: {ORDINARY}\r\nTo: {office.address}\r\nSubject: Offerta\r\n"
            "Message-ID: <offerta-1@posta-ordinaria.example>\r\n\r\nBuongiorno.\r\n".encode(),
        )
    # a mailbox moving from PEC to REM still holds PEC buste: appended as the old provider left one
    busta = builder.busta_trasporto(
        builder.messaggio_originale(
            mittente=pec_user.address,
            destinatari=[office.address],
            oggetto="Richiesta PEC di prima",
            testo="Buongiorno.\n",
            message_id="<pec-old@cliente.example>",
        ),
        gestore=tre.gestore,
        identificativo="opec-old@" + tre.gestore.domain,
        data=datetime(2026, 3, 1, 9, tzinfo=UTC),
        destinatari=[builder.Destinatario(office.address)],
    )
    dovecot.append(office.address, busta)
    net.wait_idle(60)
    stack.runner.advance(POLL, timeout=120)  # the schedule fires, the poller runs

    assert all(i.ok for i in stack.runner.invocations_of("MailboxPollerFunction"))
    raws = mailbox_contents(dovecot, office)
    assert len(raws) == 4
    messages, _ = stores(stack)
    records = {r.sha256: r for r in messages.query(office.address)}
    s3 = stack.aws.client("s3")
    bucket = stack.aws.physical("ArchiveBucket")
    for raw in raws:  # archived byte for byte, recorded once
        sha = hashlib.sha256(raw).hexdigest()
        assert (
            hashlib.sha256(s3.get_object(Bucket=bucket, Key=records[sha].s3_key)["Body"].read()).hexdigest()
            == sha
        )
    by_subject = {r.subject: r for r in records.values()}
    assert {s: (r.kind, (r.rem or {}).get("event")) for s, r in by_subject.items()} == {
        "REM Dispatch: Richiesta REM": (kinds.POSTA_CERTIFICATA, "SubmissionAcceptance"),
        "REM Dispatch: Richiesta PEC": (kinds.POSTA_CERTIFICATA, "SubmissionAcceptance"),
        "EXTERNAL: Offerta": (kinds.ANOMALIA, "ReceivedFromNonERDS"),
        "POSTA CERTIFICATA: Richiesta PEC di prima": (kinds.POSTA_CERTIFICATA, None),
    }
    dispatch = by_subject["REM Dispatch: Richiesta REM"]
    assert (
        dispatch.rem["message_type"] == "dispatch"
        and dispatch.rem["ua_message_id"] == "<rem-in-1@cliente.example>"
    )
    assert dispatch.sender == rem_user.address and not dispatch.problems
    anomaly = by_subject["EXTERNAL: Offerta"]
    assert anomaly.rem["reason"] == "MessageReceivedFromNonERDS"
    assert anomaly.rem["reason_text"].startswith("messaggio ricevuto da un sistema di posta ordinaria")

    # pecflow inbox list, as an office worker runs it against the local stack
    state = tmp_path / "stack.json"
    stack.deployment().write(state)
    monkeypatch.setenv("PECFLOW_LOCAL_STATE", str(state))
    capsys.readouterr()
    assert cli.main(["inbox", "list", office.address, "--local"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "4 message(s)"
    listed: list[tuple[str, str | None]] = []  # the kind column, and the line under it
    for line in lines[:-1]:
        if line.startswith(" "):
            listed[-1] = (listed[-1][0], line.strip())
        else:
            listed.append((line[21:47].strip(), None))
    certified = (
        "posta certificata REM / certified REM mail — SubmissionAcceptance: messaggio accettato / "
        "message accepted (MessageAccepted)"
    )
    anomaly = (
        "anomalia REM / REM anomaly — ReceivedFromNonERDS: messaggio ricevuto da un sistema di posta "
        "ordinaria (non REM) / message received from an ordinary (non-REM) e-mail system "
        "(MessageReceivedFromNonERDS)"
    )
    assert sorted(listed, key=str) == sorted(
        [
            ("posta-certificata REM", certified),
            ("posta-certificata REM", certified),
            ("anomalia REM", anomaly),
            ("posta-certificata", None),  # the PEC busta stays PEC
        ],
        key=str,
    )

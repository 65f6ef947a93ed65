"""The rules on moto with template.yaml's tables and bucket: the document kept on the mailbox's
configuration item (untouched by a configuration change), and a poll whose rule saves the
attachments under rules/ in the archive bucket, tags and assigns the message, audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from local.pecbuild import builder
from pecflow import bootstrap
from pecflow.adapters.dynamodb import MailboxStore
from pecflow.adapters.dynamodb.audit import AuditStore
from pecflow.adapters.dynamodb.inbox import InboxStore
from pecflow.adapters.dynamodb.people import PeopleStore
from pecflow.adapters.rules import MailboxRules
from pecflow.config import Config
from pecflow.domain.access import Person, Role
from pecflow.domain.rules import ACTOR, RulesError
from pecflow.pec.daticert import Destinatario
from tests import fakes

BOX = "ufficio@pec.azienda.test"
WHEN = datetime(2026, 3, 2, 9, tzinfo=UTC)
INVOICE = b'<?xml version="1.0"?>\n<p:FatturaElettronica xmlns:p="urn:x"/>\n'
RULES = {
    "version": 1,
    "accepted_formats": {"allow": ["xml", "pdf", "text"]},
    "rules": [
        {
            "name": "Fatture",
            "when": {"attachment_types": ["xml"]},
            "then": {"save": {"prefix": "fatture", "layout": "flat"}, "tag": ["fattura"], "assign": "anna"},
        }
    ],
}


def config_of(aws) -> Config:
    return Config(
        stack_name="prova",
        mailboxes_table=aws.physical("MailboxesTable"),
        messages_table=aws.physical("MessagesTable"),
        outgoing_table=aws.physical("OutgoingTable"),
        campaigns_table=aws.physical("CampaignsTable"),
        inbox_table=aws.physical("InboxTable"),
        audit_table=aws.physical("AuditTable"),
        people_table=aws.physical("PeopleTable"),
        archive_bucket=aws.physical("ArchiveBucket"),
    )


def test_the_document_lives_on_the_configuration_item(aws):
    config = config_of(aws)
    mailboxes = MailboxStore(config.mailboxes_table, aws.resource("dynamodb"))
    desk = bootstrap.rules_desk(config)
    with pytest.raises(KeyError, match="non è configurata"):
        desk.set(None, BOX, RULES, actor="operatore")
    mailboxes.put(fakes.config(BOX))
    desk.set(None, BOX, RULES, actor="operatore")
    mailboxes.put(fakes.config(BOX))  # the configuration written again: the rules stay
    assert desk.show(None, BOX.upper()) == RULES
    with pytest.raises(RulesError):
        desk.set(None, BOX, {"version": 1, "rules": [{"name": "x"}]})
    assert MailboxRules(config.mailboxes_table, aws.resource("dynamodb")).rules(BOX) == RULES
    [event] = AuditStore(config.audit_table, aws.resource("dynamodb")).events(BOX)
    assert (event.actor, event.action, event.details["rules"]) == ("operatore", "rules-change", "1")


def test_a_poll_saves_tags_and_assigns_through_the_adapters(aws):
    config = config_of(aws)
    ddb = aws.resource("dynamodb")
    MailboxStore(config.mailboxes_table, ddb).put(fakes.config(BOX))
    bootstrap.rules_desk(config).set(None, BOX, RULES, actor="operatore")
    people = PeopleStore(config.people_table, ddb)
    people.add(Person("anna", "anna@azienda.test"), created_at="2026-03-01T09:00:00+00:00")
    people.set_role("anna", BOX, Role.OPERATOR)

    server = fakes.FakeImapServer()
    account = server.add_account(BOX, "segreta")
    original = builder.messaggio_originale(
        mittente="fornitore@pec.fornitore.test",
        destinatari=[BOX],
        oggetto="Fattura 12",
        testo="In allegato.",
        allegati=[("IT1_0001.xml", "application/octet-stream", INVOICE)],
        data=WHEN,
    )
    account.append(
        builder.busta_trasporto(
            original,
            gestore=builder.SIMULATO,
            identificativo="opec1.1@pec.simulato.test",
            data=WHEN + timedelta(seconds=5),
            destinatari=[Destinatario(BOX)],
        ),
        when=WHEN,
    )
    ingestor = bootstrap.ingestor(config, check_signature=None)
    session = server.open(fakes.config(BOX), "segreta")
    result = ingestor.poll(fakes.config(BOX), session)
    assert result.recorded == 1 and result.rules_failed == [] and result.rules_applied == 3

    [item] = [
        i for i in ddb.Table(config.messages_table).scan()["Items"] if i["mailbox"] == BOX
    ]  # not its UID map
    sha = item["message"].removeprefix("sha256:")  # the stored record leaves out what its key says
    assert item["rules"]["applied"][0] == f"Fatture: salvati 3 file in fatture/2026-03-02_{sha[:16]}/"
    s3 = aws.client("s3")
    key = f"rules/fatture/2026-03-02_{sha[:16]}/IT1_0001.xml"
    assert s3.get_object(Bucket=config.archive_bucket, Key=key)["Body"].read() == INVOICE
    row = InboxStore(config.inbox_table, ddb, audit_table=config.audit_table).row(BOX, sha)
    assert row["tags"] == ["fattura"] and row["holder"] == "anna"
    trail = AuditStore(config.audit_table, ddb).of_message(BOX, sha)
    assert [(e.actor, e.action) for e in trail] == [(ACTOR, "rule"), (ACTOR, "tag"), (ACTOR, "assign")]


def test_the_cli_sets_shows_and_tries_rules_without_acting(aws, monkeypatch, capsys, tmp_path):
    from pecflow import cli

    config = config_of(aws)
    for name, value in (
        ("STACK_NAME", "prova"),
        ("MAILBOXES_TABLE", config.mailboxes_table),
        ("MESSAGES_TABLE", config.messages_table),
        ("AUDIT_TABLE", config.audit_table),
    ):
        monkeypatch.setenv(name, value)
    ddb = aws.resource("dynamodb")
    MailboxStore(config.mailboxes_table, ddb).put(fakes.config(BOX))
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nrules:\n  - name: Fatture\n    when: {sender_domian: [x.it]}\n    then: {tag: [f]}\n"
    )
    assert cli.main(["rules", "set", BOX, str(bad)]) == 1
    assert "regola 1 («Fatture»), campo when: campo sconosciuto «sender_domian» (forse «sender_domain»?)" in (
        capsys.readouterr().err
    )
    good = tmp_path / "rules.yaml"
    good.write_text(
        "version: 1\nrules:\n  - name: Fatture\n    when: {has_sdi: false, subject: '*fattura*'}\n"
        "    then: {tag: [fattura], assign: anna}\n"
    )
    assert cli.main(["rules", "set", BOX, str(good)]) == 0
    assert "1 regole" in capsys.readouterr().out
    assert cli.main(["rules", "show", BOX, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rules"][0]["name"] == "Fatture"

    now = datetime.now(UTC)
    messages = ddb.Table(config.messages_table)
    for i, subject in enumerate(["La fattura di marzo", "Sollecito", "Fattura vecchia"]):
        when = now - timedelta(days=40 if i == 2 else 1, minutes=i)
        iso = when.isoformat(timespec="microseconds").replace("+00:00", "Z")
        messages.put_item(
            Item={
                "mailbox": BOX,
                "message": f"sha256:{i:064x}",
                "sha256": f"{i:064x}",
                "kind": "posta-certificata",
                "subject": subject,
                "from": "c@pec.cliente.test",
                "received_at": iso,
                "received_key": f"{iso}#{i:016x}",
            }  # fmt: skip
        )
    assert cli.main(["rules", "test", BOX, "--since", "30d"]) == 0
    out = capsys.readouterr().out
    assert "«Fatture»: etichetta fattura; assegna a anna" in out
    assert "Prova senza effetti su 2 messaggi" in out and "1 toccati dalle regole" in out
    assert "Fattura vecchia" not in out and "Sollecito" not in out
    assert "tags" not in json.dumps(messages.scan()["Items"], default=str)


def test_an_auto_reply_claim_is_one_conditional_write_per_sender_and_period(aws):
    from pecflow.adapters.rules import AutoReplyClaims

    config = config_of(aws)
    ddb = aws.resource("dynamodb")
    MailboxStore(config.mailboxes_table, ddb).put(fakes.config(BOX))
    claims, other_poller = (AutoReplyClaims(config.mailboxes_table, ddb) for _ in range(2))
    week = timedelta(days=7)
    assert (
        claims.claim(BOX, "mario@pec.cliente.test", "Ricevuto", sha256="a" * 64, now=WHEN, period=week)
        is None
    )
    # another message of the same sender, another poller: refused, with when it was answered
    later = WHEN + timedelta(hours=1)
    assert other_poller.claim(BOX, "mario@pec.cliente.test", "Ricevuto", sha256="b" * 64, now=later,
                              period=week) == "2026-03-02T09:00:00.000000Z"  # fmt: skip
    # the same message again (its rules ran again): granted, it goes out once by its job id
    assert (
        claims.claim(BOX, "mario@pec.cliente.test", "Ricevuto", sha256="a" * 64, now=later, period=week)
        is None
    )
    # another rule, another sender: their own claims
    assert (
        claims.claim(BOX, "mario@pec.cliente.test", "Altra", sha256="b" * 64, now=later, period=week) is None
    )
    assert (
        claims.claim(BOX, "luca@pec.cliente.test", "Ricevuto", sha256="c" * 64, now=later, period=week)
        is None
    )
    # after the period: answered again
    assert claims.claim(BOX, "mario@pec.cliente.test", "Ricevuto", sha256="d" * 64, now=WHEN + week,
                        period=week) is None  # fmt: skip
    # the mailboxes' listing is not disturbed by the claims
    assert [m.address for m in MailboxStore(config.mailboxes_table, ddb).list()] == [BOX]


def test_the_cli_dry_run_shows_what_an_auto_reply_and_a_pdf_would_do(aws, monkeypatch, capsys, tmp_path):
    from pecflow import cli

    config = config_of(aws)
    for name, value in (("STACK_NAME", "prova"), ("MAILBOXES_TABLE", config.mailboxes_table),
                        ("MESSAGES_TABLE", config.messages_table)):  # fmt: skip
        monkeypatch.setenv(name, value)
    ddb = aws.resource("dynamodb")
    now, isos = datetime.now(UTC), []
    for i, (kind, sender) in enumerate([("posta-certificata", "c@pec.cliente.test"),
                                        ("avvenuta-consegna", "posta-certificata@pec.cliente.test"),
                                        ("posta-certificata", "c@pec.cliente.test")]):  # fmt: skip
        iso = (now - timedelta(hours=3 - i)).isoformat(timespec="microseconds").replace("+00:00", "Z")
        isos.append(iso)
        ddb.Table(config.messages_table).put_item(Item={
            "mailbox": BOX, "message": f"sha256:{i:064x}", "sha256": f"{i:064x}", "kind": kind,
            "subject": f"Messaggio {i}", "sender": sender, "received_at": iso, "received_key": f"{iso}#{i:016x}",
        })  # fmt: skip
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nrules:\n  - name: Ricevuto\n    then:\n      reply: {template: 'Ricevuto, {{ mittente }}.', "
        "subject: 'Ricevuto: {{ oggetto }}', once_per: 7d}\n      pdf: {prefix: stampe, layout: flat}\n"
    )
    assert cli.main(["rules", "test", BOX, "--since", "2d", "--file", str(rules)]) == 0
    out = capsys.readouterr().out
    assert (
        "Ricevuto: risponderebbe a c@pec.cliente.test con oggetto «Ricevuto: Messaggio 0» (non inviata" in out
    )
    assert "Ricevuto: nessuna risposta automatica: è una ricevuta (avvenuta-consegna)" in out
    assert "Ricevuto: nessuna risposta automatica: a c@pec.cliente.test si sarebbe già risposto il" in out
    assert f"Ricevuto: PDF stampabile in stampe/{isos[0][:10]}_{0:016x}/messaggio.pdf" in out
    assert "Nulla è stato salvato, etichettato, assegnato o inviato." in out
    assert [i["item"] for i in ddb.Table(config.mailboxes_table).scan()["Items"]] == []  # no claim

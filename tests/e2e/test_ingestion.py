"""Mailbox ingestion on the local stack, driven only through the event runner: the schedule
queues polls, the poller archives, classifies, records and reconciles what the simulated
providers delivered into real IMAP mailboxes."""

from __future__ import annotations

import hashlib
import random
import smtplib
from collections import Counter

import pytest

from local.alerts import TopicReader
from local.pec_provider import FAIL, NO_DOMAIN, REJECT
from local.pecbuild import builder
from local.pecbuild import corpus as pecmix
from pecflow import bootstrap
from pecflow.adapters.dynamodb import MessageStore, OutgoingStore
from pecflow.domain.reconcile import State
from pecflow.pec import kinds
from pecflow.pec.message import parse

POLL = 5 * 60


def stores(stack):
    deployment = stack.deployment()
    ddb = deployment.resource("dynamodb")
    return (
        MessageStore(deployment.messages_table, ddb),
        OutgoingStore(deployment.outgoing_table, ddb, campaigns_table=deployment.campaigns_table),
    )


def submit(provider, account, to, *, subject, msgid, cc=(), tipo_ricevuta=None, outgoing=None):
    """What the sender function does: register the outgoing message, then send it over SMTPS."""
    raw = builder.messaggio_originale(
        mittente=account.address,
        destinatari=list(to),
        cc=list(cc),
        oggetto=subject,
        testo="Buongiorno,\nin allegato la documentazione.\n",
        message_id=msgid,
        tipo_ricevuta=tipo_ricevuta,
    )
    if outgoing is not None:
        outgoing.register(msgid, mailbox=account.address, recipients=[*to, *cc], subject=subject)
    with smtplib.SMTP_SSL(provider.host, provider.port, context=provider.ssl_context(), timeout=20) as smtp:
        smtp.login(account.address, account.password)
        smtp.sendmail(account.address, [*to, *cc], raw)


def mailbox_contents(dovecot, account) -> list[bytes]:
    with dovecot.connect(account.address) as client:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        data = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
    return [data[uid][b"BODY[]"] for uid in sorted(data)]


@pytest.mark.timeout(900)  # minutes of work for one CPU, shared with a parallel worker
def test_a_thousand_messages_each_archived_recorded_classified_and_reconciled_once(stack, dovecot):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"))
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    offices = [
        stack.add_company_mailbox(alfa, "ufficio@pec.alfa.test"),
        stack.add_company_mailbox(alfa, "amministrazione@pec.alfa.test"),
    ]
    clients = [beta.add_mailbox(f"cliente{i}@pec.beta.test") for i in range(12)]
    colleagues = [alfa.add_mailbox(f"collega{i}@pec.alfa.test") for i in range(3)]
    net.script("cliente10@pec.beta.test", FAIL)
    net.script("nessuno@pec.inesistente.test", NO_DOMAIN)
    messages, outgoing = stores(stack)
    rng = random.Random(5)
    expected_state: dict[str, State] = {}

    for round_ in range(6):  # rounds of traffic, each followed by a poll of both boxes
        for i in range(70):
            n = round_ * 100 + i
            office = offices[i % 2]
            msgid = f"<invio-{n}@pec.alfa.test>"
            pick = rng.random()
            if pick < 0.03:
                to, state = ["nessuno@pec.inesistente.test"], State.DELIVERY_FAILED
            elif pick < 0.07:
                to, state = ["cliente10@pec.beta.test"], State.DELIVERY_FAILED
            elif pick < 0.09:
                net.script("cliente3@pec.beta.test", REJECT, times=1)
                to, state = ["cliente3@pec.beta.test"], State.NOT_ACCEPTED
            elif pick < 0.12:
                to, state = ["mario.rossi@posta-ordinaria.test"], State.ACCEPTED  # external: no consegna
            else:
                to, state = [rng.choice(clients[:10]).address], State.DELIVERED
            submit(
                alfa,
                office,
                to,
                subject=f"Pratica {n}",
                msgid=msgid,
                outgoing=outgoing,
                tipo_ricevuta=rng.choice([None, "breve", "sintetica"]),
            )
            expected_state[msgid] = state
        for i in range(36):  # certified mail reaching us, and ordinary mail
            sender = rng.choice(clients + colleagues)
            provider = alfa if sender in colleagues else beta
            submit(
                provider,
                sender,
                [offices[i % 2].address],
                subject=f"Richiesta {round_}-{i}",
                msgid=f"<in-{round_}-{i}@x>",
            )
        for i in range(8):
            with smtplib.SMTP(net.mx_host, net.mx_port, timeout=20) as mx:
                to = offices[i % 2].address
                mx.sendmail(
                    "fornitore@posta.test",
                    [to],
                    f"From: fornitore@posta.test\r\nTo: {to}\r\nSubject: offerta {round_}-{i}\r\n"
                    f"Message-ID: <ord-{round_}-{i}@posta.test>\r\n\r\nSalve\r\n".encode(),
                )
        net.wait_idle(120)
        stack.runner.advance(POLL, timeout=300)  # the schedule fires, one poller per mailbox runs

    failures = [i for i in stack.runner.invocations if not i.ok]
    assert failures == [], failures[0].error if failures else None
    s3 = stack.aws.client("s3")
    bucket = stack.aws.physical("ArchiveBucket")
    keys = {
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    }
    total = 0
    for office in offices:
        raws = mailbox_contents(dovecot, office)
        total += len(raws)
        distinct = {hashlib.sha256(raw).hexdigest(): raw for raw in raws}
        # each archived once: one S3 object per distinct message, holding exactly its bytes
        assert {f"messages/{sha[:2]}/{sha}.eml" for sha in distinct} <= keys
        for sha in rng.sample(sorted(distinct), 20):
            assert (
                s3.get_object(Bucket=bucket, Key=f"messages/{sha[:2]}/{sha}.eml")["Body"].read()
                == distinct[sha]
            )
        # each recorded once, classified as pecflow classifies its bytes, kinds as the simulator delivered
        records = messages.query(office.address, limit=5000)
        assert len(records) == len(distinct) == messages.count(office.address)
        by_sha = {r.sha256: r for r in records}
        for sha, raw in distinct.items():
            assert by_sha[sha].kind == parse(raw).kind
        delivered = Counter(d.kind for d in net.deliveries if d.mailbox == office.address and d.error is None)
        assert Counter(r.kind for r in records) == delivered
        # every receipt reconciled with what we sent
        receipts = [r for r in records if r.kind in kinds.RICEVUTE]
        assert receipts and all(r.reconciled == "matched" for r in receipts)
    assert total >= 1000
    assert len(keys) == total, "no object archived twice, none missing"
    states = {msgid: outgoing.jobs(msgid)[0].state for msgid in expected_state}
    assert states == expected_state
    external = next(m for m, s in expected_state.items() if s == State.ACCEPTED)
    assert outgoing.jobs(external)[0].certified is False
    polls = stack.runner.invocations_of("MailboxPollerFunction")
    assert len(polls) >= 10, "several polls of each mailbox"


def test_crashing_pollers_are_redelivered_and_lose_or_duplicate_nothing(stack, dovecot):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Gamma PEC S.p.A.", "pec.gamma.test"))
    office = stack.add_company_mailbox(alfa, "ufficio@pec.gamma.test")
    client = alfa.add_mailbox("cliente@pec.gamma.test")
    messages, outgoing = stores(stack)
    for n in range(12):
        submit(
            alfa,
            office,
            [client.address],
            subject=f"n. {n}",
            msgid=f"<k{n}@pec.gamma.test>",
            outgoing=outgoing,
        )
    net.wait_idle(60)

    poller = stack.runner.module("MailboxPollerFunction")
    original = poller.poller

    def rebuild(**parts):  # the handler's poller, built again through the composition root
        poller.poller = bootstrap.poller(poller.config, ingestor=bootstrap.ingestor(poller.config, **parts))

    def failures():
        return [i for i in stack.runner.invocations_of("MailboxPollerFunction") if not i.ok]

    for point, uid in (("after_archive", 3), ("after_record", 9), ("before_cursor", 15)):
        hit = []

        def kill(at, uid=uid, hit=hit):
            if at == uid and not hit:
                hit.append(at)
                raise RuntimeError(f"killed at UID {at}")

        rebuild(checkpoint=lambda step, uid, point=point, kill=kill: kill(uid) if step == point else None)
        before = len(failures())
        for _ in range(8):  # ticks, and the redelivery after the visibility timeout
            stack.runner.advance(POLL, timeout=120)
            if len(failures()) > before:
                break
        assert len(failures()) == before + 1, f"the poller was killed {point}"
    poller.poller = original
    stack.runner.advance(20 * 60, timeout=120)
    raws = mailbox_contents(dovecot, office)
    assert messages.count(office.address) == len({hashlib.sha256(r).hexdigest() for r in raws}) == 24
    assert all(outgoing.jobs(f"<k{n}@pec.gamma.test>")[0].state == State.DELIVERED for n in range(12))


def test_bad_credentials_and_unreachable_hosts_do_not_stop_the_others(stack, dovecot, capsys):
    net = stack.network
    alfa = net.add_provider(builder.Gestore("Delta PEC S.p.A.", "pec.delta.test"))
    good = stack.add_company_mailbox(alfa, "buona@pec.delta.test")
    wrong = stack.add_company_mailbox(alfa, "password-cambiata@pec.delta.test")
    dovecot.add_user(
        wrong.address, "una-nuova-password", keep_mail=True
    )  # changed on the provider, not in pecflow
    from pecflow.domain.mailbox import MailboxConfig

    bootstrap.mailbox_admin(stack.deployment()).add(
        MailboxConfig("irraggiungibile@pec.delta.test", "127.0.0.1", 1), "x", check=False
    )
    dovecot.append(good.address, pecmix.corpus(1, seed=2)[0].raw)
    stack.runner.advance(POLL, timeout=120)
    polls = stack.runner.invocations_of("MailboxPollerFunction")
    assert len(polls) == 3 and all(i.ok for i in polls), "errors are recorded, not raised"
    from pecflow.adapters.dynamodb import MailboxStore

    registry = MailboxStore(stack.deployment().mailboxes_table, stack.deployment().resource("dynamodb"))
    assert registry.status(wrong.address)["error_kind"] == "auth"
    assert registry.status("irraggiungibile@pec.delta.test")["error_kind"] == "unreachable"
    assert registry.status(good.address)["last_fetched"] == 1
    logs = capsys.readouterr().out
    assert logs.count('"MailboxPollErrorsTotal"') >= 2, "the alarm metric is emitted for each failing mailbox"
    assert "una-nuova-password" not in logs and wrong.password not in logs


def test_one_poison_message_does_not_stop_the_mailbox(stack, dovecot, local_aws, capsys):
    """Issue 10, item 1: an ordinary e-mail with 100 attachments named with 4,500 characters
    arrives in a busta di anomalia (its full record is over DynamoDB's 400 KB); a message the
    parser fails on arrives too. The certified mail and receipts after them are archived,
    recorded and reconciled, and the mailbox's status counts what was quarantined."""

    net = stack.network
    alfa = net.add_provider(builder.Gestore("Epsilon PEC S.p.A.", "pec.epsilon.test"))
    office = stack.add_company_mailbox(alfa, "ufficio@pec.epsilon.test")
    client = alfa.add_mailbox("cliente@pec.epsilon.test")
    messages, outgoing = stores(stack)

    parts = []
    for i in range(100):  # each name in RFC 2231 continuations, as mail clients fold long names
        name = f"{i:03d}-" + "nome-lunghissimo-" * 264 + ".pdf"
        pieces = ";\r\n".join(
            f' filename*{n}="{name[k : k + 60]}"' for n, k in enumerate(range(0, len(name), 60))
        )
        parts.append(
            f"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment;\r\n{pieces}\r\n\r\nJVBERi0xLjQK\r\n"
        )
    poison = (
        f"From: x@posta-ordinaria.test\r\nTo: {office.address}\r\nSubject: Cento allegati\r\n"
        "Message-ID: <cento@posta-ordinaria.test>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
        "allegati\r\n" + "".join(f"--b\r\n{part}" for part in parts) + "--b--\r\n"
    )
    with smtplib.SMTP(net.mx_host, net.mx_port, timeout=20) as mx:
        mx.sendmail("x@posta-ordinaria.test", [office.address], poison.encode())
    submit(
        alfa,
        office,
        [client.address],
        subject="parser in difficoltà",
        msgid="<bug@pec.epsilon.test>",
        outgoing=outgoing,
    )
    for n in range(5):
        submit(
            alfa,
            office,
            [client.address],
            subject=f"dopo n. {n}",
            msgid=f"<dopo{n}@pec.epsilon.test>",
            outgoing=outgoing,
        )
    net.wait_idle(60)

    alerts = TopicReader(local_aws)  # issue 17, item 6: someone is told, once, in words they read
    poller = stack.runner.module("MailboxPollerFunction")
    original = poller.poller
    real = original.ingestor.classify

    def buggy(raw):  # the parser failing on the receipts of one message (a bug of ours, say)
        if b"parser in difficolt" in raw or b"<bug@pec.epsilon.test>" in raw:
            raise ValueError("a parser bug")
        return real(raw)

    poller.poller = bootstrap.poller(
        poller.config, ingestor=bootstrap.ingestor(poller.config, classify=buggy)
    )
    try:
        stack.runner.advance(2 * POLL, timeout=120)
    finally:
        poller.poller = original

    assert all(i.ok for i in stack.runner.invocations_of("MailboxPollerFunction"))
    raws = mailbox_contents(dovecot, office)
    assert messages.count(office.address) == len({hashlib.sha256(r).hexdigest() for r in raws}) == 13
    assert all(outgoing.jobs(f"<dopo{n}@pec.epsilon.test>")[0].state == State.DELIVERED for n in range(5))
    anomalia = next(r for r in messages.query(office.address) if r.kind == kinds.ANOMALIA)
    assert len(anomalia.attachments) == 100 and anomalia.s3_key is not None
    assert all(len(a["filename"]) == 255 for a in anomalia.attachments), "names cut, the original whole"
    quarantined = messages.query(office.address, index="Quarantined")
    assert len(quarantined) == 2 and all("a parser bug" in q.problems[0] for q in quarantined)
    mailbox = next(
        s for c, s in bootstrap.mailbox_admin(stack.deployment()).list() if c.address == office.address
    )
    assert mailbox["quarantined"] == 2 and "a parser bug" in mailbox["last_quarantined"]["reason"]
    assert capsys.readouterr().out.count('"MessagesQuarantined"') >= 1, "the alarm metric is emitted"
    [alert] = [a for a in alerts.read() if a.attributes["causa"] == "messaggio-in-quarantena"]
    assert alert.attributes["casella"] == office.address
    assert "sono in quarantena" in alert.text and "a parser bug" in alert.text
    assert f"pecflow inbox list {office.address} --quarantined" in alert.text

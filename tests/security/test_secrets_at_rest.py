"""No secret at rest or in flight: after a whole flow on the local stack (moto, Dovecot, the
simulated providers, the real handlers) - mailbox passwords put in Secrets Manager, a poll, a
reply sent over SMTPS, a mailbox whose stored password is refused (its alert published, the chat
webhook tried), API errors, one on a request carrying a password - no password, webhook URL or
secret value is in any DynamoDB item, S3 object (every version), SQS message left, SNS message
published, Lambda event or outcome, or API answer. tests/conftest.py checks the log lines."""

from __future__ import annotations

import json
import smtplib
from typing import Any
from urllib.parse import quote

import pytest

from local.api_server import json_request
from local.pecbuild import builder
from pecflow import bootstrap
from pecflow.domain import alerts as causes
from tests import conftest

POLL = 5 * 60
OFFICE_PASSWORD = "Ufficio-pw-segreta-2026"
WRONG_PASSWORD = "Vecchia-pw-rifiutata-2025"  # what pecflow holds for a mailbox whose password changed
ARCHIVE_PASSWORD = "Archivio-pw-vera-2026"  # the provider's, not told to pecflow
API_PASSWORD = "Data-in-API-pw-0042"  # given with a mailbox added through the API
CORRESPONDENT_PASSWORD = "Mario-pw-beta-2026"
WEBHOOK = "https://127.0.0.1:9/hooks/T0ken-del-webhook-segreto-4242"  # refused at once: the post fails
SECRETS = (OFFICE_PASSWORD, WRONG_PASSWORD, ARCHIVE_PASSWORD, API_PASSWORD, CORRESPONDENT_PASSWORD,
           WEBHOOK, "T0ken-del-webhook-segreto-4242")  # fmt: skip


def _found_in(where: str, data: bytes | str, secrets: tuple[str, ...]) -> list[str]:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return [f"{where}: holds {secret[:6]}…" for secret in secrets if secret in text]


def _dynamodb(aws: Any, secrets: tuple[str, ...]) -> tuple[int, list[str]]:
    client, items, found = aws.client("dynamodb"), 0, []
    for table in client.list_tables()["TableNames"]:
        for page in client.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                items += 1
                found += _found_in(f"DynamoDB {table}", json.dumps(item, default=str), secrets)
    return items, found


def _s3(aws: Any, secrets: tuple[str, ...]) -> tuple[int, list[str]]:
    s3, objects, found = aws.client("s3"), 0, []
    for bucket in (b["Name"] for b in s3.list_buckets()["Buckets"]):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []):
                objects += 1
                body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
                found += _found_in(f"S3 {bucket}/{version['Key']}", body["Body"].read(), secrets)
    return objects, found


def _moto_backends(module: str) -> list[Any]:
    """moto's in-process backends of a service (the local server runs in this process)."""
    import importlib

    backends = getattr(importlib.import_module(f"moto.{module}.models"), f"{module}_backends")
    return [backend for regions in backends.values() for backend in regions.values()]


def _sqs_left(secrets: tuple[str, ...]) -> tuple[int, list[str]]:
    messages, found = 0, []
    for backend in _moto_backends("sqs"):
        for queue in backend.queues.values():
            for message in queue._messages:  # read without receiving: nothing changes
                messages += 1
                text = message.body + json.dumps(message.message_attributes, default=str)
                found += _found_in(f"SQS {queue.name}", text, secrets)
    return messages, found


def _sns_published(secrets: tuple[str, ...]) -> tuple[list[str], list[str]]:
    notes, found = [], []
    for backend in _moto_backends("sns"):
        for topic in backend.topics.values():
            for sent in topic.sent_notifications:  # (id, message, subject, attributes, group)
                notes.append(json.dumps(sent, default=str, ensure_ascii=False))
                found += _found_in(f"SNS {topic.name}", notes[-1], secrets)
    return notes, found


def _sent(event: dict) -> dict:
    """An event as the function gives it on: an API request's body is what the person typed
    (a mailbox's password, to be kept), the rest is the platform's."""
    return {k: v for k, v in event.items() if not ("requestContext" in event and k == "body")}


@pytest.mark.timeout(600)
def test_no_secret_in_any_table_object_queue_topic_event_or_answer(stack):
    for secret in SECRETS:  # the log lines of the whole session are checked for them too
        conftest.register_secret(secret)
    net, config = stack.network, stack.deployment()
    alfa = net.add_provider(builder.Gestore("Alfa PEC S.p.A.", "pec.alfa.test"))
    beta = net.add_provider(builder.Gestore("Beta PEC S.p.A.", "pec.beta.test"))
    office = alfa.add_mailbox("ufficio@pec.alfa.test", password=OFFICE_PASSWORD)
    bootstrap.mailbox_admin(config).add(
        stack.mailbox_config(office.address, alfa), OFFICE_PASSWORD, check=True
    )
    archive = alfa.add_mailbox("archivio@pec.alfa.test", password=ARCHIVE_PASSWORD)
    bootstrap.mailbox_admin(config).add(
        stack.mailbox_config(archive.address, alfa), WRONG_PASSWORD, check=False
    )  # its password changed on the provider, not in pecflow: its polls are refused
    mario = beta.add_mailbox("mario.rossi@pec.beta.test", password=CORRESPONDENT_PASSWORD)
    stack.aws.client("secretsmanager").put_secret_value(
        SecretId=config.alerts_webhook_secret, SecretString=WEBHOOK
    )
    api_secret = stack.aws.client("secretsmanager").get_secret_value(SecretId=config.api_secret)[
        "SecretString"
    ]
    secrets = (*SECRETS, api_secret)
    api = stack.serve_api()
    anna = stack.add_person("anna", "anna@alfa.test", "Anna", {office.address: "admin"})
    answers: list[tuple[str, int, Any]] = []

    def call(path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        status, answer = json_request(f"{api.url}{path}", method, token=anna, body=body)
        answers.append((f"{method} {path}", status, answer))
        return status, answer

    # a certified message arrives and is polled; the other mailbox's poll is refused
    raw = builder.messaggio_originale(
        mittente=mario.address, destinatari=[office.address], oggetto="Richiesta di preventivo",
        testo="Buongiorno,\nattendo il preventivo.\n", message_id="<richiesta-9@pec.beta.test>",
    )  # fmt: skip
    with smtplib.SMTP_SSL(beta.host, beta.port, context=beta.ssl_context(), timeout=20) as smtp:
        smtp.login(mario.address, CORRESPONDENT_PASSWORD)
        smtp.sendmail(mario.address, [office.address], raw)
    stack.runner.advance(POLL)
    net.wait_idle(60)
    box = f"/mailboxes/{quote(office.address)}"
    status, page = call(f"{box}/messages?handling=da-gestire")
    assert status == 200, page
    (row,) = [m for m in page["messages"] if m["kind"] == "posta-certificata"]

    # a reply, sent by the sender function over SMTPS with the mailbox's password
    sha = row["sha256"]
    assert call(f"{box}/messages/{sha}/handling", "POST", {"act": "take-in-charge"})[0] == 200
    status, sent = call(
        f"{box}/messages/{sha}/reply", "POST", {"text": "Gentile sig. Rossi,\necco il preventivo.\n"}
    )
    assert status == 200, sent
    stack.runner.run_until_idle(120)
    net.wait_idle(60)
    stack.runner.advance(POLL)
    net.wait_idle(60)
    job = bootstrap.outgoing_store(config).job(sent["message_id"])
    assert job is not None and str(job.state) in ("sent", "accepted", "delivered"), job

    # API errors: a mailbox added with its password, whose login check fails; an unknown message
    new = {
        "address": "nuova@pec.alfa.test",
        "password": API_PASSWORD,
        "imap_host": "127.0.0.1",
        "imap_port": 9,
    }
    status, refused = call("/mailboxes", "POST", new)
    assert status == 400 and refused["code"] == "login-failed", refused
    assert call(f"{box}/messages/{'0' * 64}")[0] == 404

    # the refused mailbox's alert, once its polls failed three times: published, the webhook tried
    for _ in range(2):
        stack.runner.advance(POLL)
        net.wait_idle(60)
    notes, published = _sns_published(secrets)
    assert any(causes.LETTURA_FALLITA in note and archive.address in note for note in notes), notes
    pollers = stack.runner.invocations_of("MailboxPollerFunction")
    assert pollers and len(stack.runner.invocations) > len(pollers)

    items, in_tables = _dynamodb(stack.aws, secrets)
    objects, in_objects = _s3(stack.aws, secrets)
    left, in_queues = _sqs_left(secrets)
    in_events = [
        hit
        for i in stack.runner.invocations
        for hit in _found_in(
            f"{i.function} {i.kind} event or outcome",
            json.dumps([_sent(i.event), i.result, i.error, i.traceback], default=str),
            secrets,
        )
    ]
    in_answers = [
        hit for where, _, answer in answers for hit in _found_in(f"API {where}", json.dumps(answer), secrets)
    ]
    assert items > 10 and objects >= 3, "the flow wrote what the scan reads"
    assert not [*in_tables, *in_objects, *in_queues, *published, *in_events, *in_answers]

    # and each scan sees a secret where one is put
    canary = ("Canarino-segreto-77",)
    table = config.mailboxes_table
    keys = stack.aws.client("dynamodb").describe_table(TableName=table)["Table"]["AttributeDefinitions"]
    item = {a["AttributeName"]: {a["AttributeType"]: "1" if a["AttributeType"] == "N" else "x"} for a in keys}
    stack.aws.client("dynamodb").put_item(TableName=table, Item={**item, "note": {"S": f"pw {canary[0]}"}})
    stack.aws.client("s3").put_object(Bucket=config.archive_bucket, Key="canary.txt", Body=canary[0].encode())
    stack.aws.client("sqs").send_message(
        QueueUrl=config.poll_queue_url, MessageBody=json.dumps({"p": canary[0]}), MessageGroupId="canary",
        MessageDeduplicationId="canary",
    )  # fmt: skip
    stack.aws.client("sns").publish(TopicArn=config.alerts_topic, Message=canary[0])
    assert [len(found) for found in (_dynamodb(stack.aws, canary)[1], _s3(stack.aws, canary)[1],
                                     _sqs_left(canary)[1], _sns_published(canary)[1])] == [1, 1, 1, 1]  # fmt: skip


def test_the_scan_finds_a_secret_where_it_is():
    assert _found_in("x", b"...Ufficio-pw-segreta-2026...", SECRETS) == ["x: holds Uffici…"]
    assert _found_in("x", json.dumps({"url": WEBHOOK}), SECRETS)
    assert not _found_in("x", "nothing here", SECRETS)

"""`pecflow mailbox`, `pecflow sent`, `pecflow inbox` against moto (tables from template.yaml)
and a real IMAP server for the login check."""

from __future__ import annotations

import io
import json

import pytest

from pecflow import cli
from pecflow.adapters.dynamodb import MailboxStore, MessageStore, OutgoingStore


@pytest.fixture
def env(aws, monkeypatch):
    for name, logical in (
        ("MAILBOXES_TABLE", "MailboxesTable"),
        ("MESSAGES_TABLE", "MessagesTable"),
        ("OUTGOING_TABLE", "OutgoingTable"),
    ):
        monkeypatch.setenv(name, aws.physical(logical))
    monkeypatch.setenv("STACK_NAME", "pecflow-test")
    return aws


def run(monkeypatch, capsys, argv, stdin=""):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_mailbox_add_checks_the_login_and_keeps_the_password_secret(
    env, dovecot, tmp_path, monkeypatch, capsys
):
    account = dovecot.fresh_user()
    ca = tmp_path / "ca.pem"
    ca.write_bytes(dovecot.ca.pem)
    base = [
        "mailbox",
        "add",
        account.address,
        "--imap-host",
        dovecot.host,
        "--imap-port",
        str(dovecot.port),
        "--ca-bundle",
        str(ca),
        "--password-stdin",
    ]
    code, out, err = run(monkeypatch, capsys, base, stdin="sbagliata\n")
    assert code == 1 and "login refused" in err and "auth" in err
    assert MailboxStore(env.physical("MailboxesTable"), env.resource("dynamodb")).get(account.address) is None
    code, out, err = run(monkeypatch, capsys, base, stdin=account.password + "\n")
    assert code == 0 and "added" in out and "0 message(s) in INBOX" in out
    secret = env.client("secretsmanager").get_secret_value(SecretId=f"pecflow-test/mailbox/{account.address}")
    assert json.loads(secret["SecretString"]) == {"password": account.password}
    item = (
        env.resource("dynamodb")
        .Table(env.physical("MailboxesTable"))
        .get_item(Key={"address": account.address, "item": "config"})["Item"]
    )
    assert account.password not in json.dumps(item, default=str)

    code, out, _ = run(monkeypatch, capsys, ["mailbox", "list"])
    assert code == 0 and account.address in out and "never polled" in out
    assert run(monkeypatch, capsys, ["mailbox", "disable", account.address])[0] == 0
    code, out, _ = run(monkeypatch, capsys, ["mailbox", "list", "--json"])
    listed = json.loads(out.splitlines()[0])
    assert listed["enabled"] is False and "ca_bundle" not in listed
    code, _, err = run(monkeypatch, capsys, ["mailbox", "enable", "nobody@pec.test"])
    assert code == 1 and "no mailbox" in err


def test_invalid_settings_and_missing_target_are_clear_errors(aws, monkeypatch, capsys):
    monkeypatch.delenv("MAILBOXES_TABLE", raising=False)
    code, _, err = run(monkeypatch, capsys, ["mailbox", "list"])
    assert code == 2 and "--stack NAME, --local" in err
    code, _, err = run(monkeypatch, capsys, ["mailbox", "add", "non-un-indirizzo", "--imap-host", "x"])
    assert code == 2 and "not a mailbox address" in err


def test_sent_show_and_inbox_list(env, monkeypatch, capsys):
    ddb = env.resource("dynamodb")
    outgoing = OutgoingStore(env.physical("OutgoingTable"), ddb)
    outgoing.register(
        "<a1@pec.azienda.test>",
        mailbox="ufficio@pec.azienda.test",
        recipients=["c@pec.test"],
        subject="Contratto",
    )
    code, out, _ = run(monkeypatch, capsys, ["sent", "show", "a1@pec.azienda.test"])
    assert code == 0 and "c@pec.test: sent" in out and "Contratto" in out
    assert run(monkeypatch, capsys, ["sent", "show", "<nope@x>"])[0] == 1
    MessageStore(env.physical("MessagesTable"), ddb).record(
        "ufficio@pec.azienda.test",
        {
            "sha256": "cd" * 32,
            "kind": "accettazione",
            "received_key": "2026-03-02T10:00:00Z#1",
            "received_at": "2026-03-02T10:00:00Z",
            "subject": "ACCETTAZIONE: x",
            "reconciled": "unmatched",
            "unmatched_mailbox": "ufficio@pec.azienda.test",
        },
    )
    code, out, _ = run(monkeypatch, capsys, ["inbox", "list", "ufficio@pec.azienda.test", "--unmatched"])
    assert code == 0 and "accettazione" in out and "[unmatched]" in out and "1 message(s)" in out


def test_campaign_upload_validates_then_uploads_the_manifest_last(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CAMPAIGN_BUCKET", env.physical("CampaignBucket"))
    folder = tmp_path / "avvisi-aprile"
    (folder / "attachments").mkdir(parents=True)
    (folder / "attachments" / "avviso.pdf").write_bytes(b"%PDF-1.4 avviso\n%%EOF\n")
    (folder / "recipients.csv").write_bytes(
        "PEC;Nome\r\nuno@pec.test;Società Uno\r\nnon-un-indirizzo;Due\r\n".encode("cp1252")
    )
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "mailbox": "ufficio@pec.test",
                "subject": "Avviso per {{ nome }}",
                "body_text": "Gentile {{ nome }}\n",
                "attachments": ["avviso.pdf"],
            }
        )
    )
    s3 = env.client("s3")
    bucket = env.physical("CampaignBucket")

    code, _, err = run(monkeypatch, capsys, ["campaign", "upload", str(folder)])
    assert code == 1 and "not uploaded" in err
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0, "an invalid campaign uploads nothing"

    (folder / "recipients.csv").write_bytes("PEC;Nome\r\nuno@pec.test;Società Uno\r\n".encode("cp1252"))
    from pecflow.config import Config

    uploaded, client_of = [], Config.client

    def spying_client(self, service):
        client = client_of(self, service)
        if service == "s3":

            class Spy:
                def __getattr__(self, name):
                    return getattr(client, name)

                def upload_file(self, path, bucket, key):
                    uploaded.append(key)
                    return client.upload_file(path, bucket, key)

            return Spy()
        return client

    monkeypatch.setattr(Config, "client", spying_client)
    code, out, err = run(monkeypatch, capsys, ["campaign", "upload", str(folder)])
    assert code == 0 and "campaign avvisi-aprile uploaded" in out, err
    assert uploaded == [
        "campaigns/avvisi-aprile/attachments/avviso.pdf",
        "campaigns/avvisi-aprile/recipients.csv",
        "campaigns/avvisi-aprile/manifest.json",
    ], "the manifest last: its arrival starts the campaign"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert set(uploaded) <= keys
    code, _, err = run(monkeypatch, capsys, ["campaign", "upload", str(folder)])
    assert code == 1 and "already exists" in err


def test_quarantined_messages_show_on_the_mailbox_and_in_the_inbox(env, monkeypatch, capsys):
    from pecflow.domain.mailbox import MailboxConfig

    ddb = env.resource("dynamodb")
    mailboxes = MailboxStore(env.physical("MailboxesTable"), ddb)
    mailboxes.put(MailboxConfig("ufficio@pec.azienda.test", "imap.pec.test"))
    mailboxes.record_poll("ufficio@pec.azienda.test", ok=True, fetched=3)
    MessageStore(env.physical("MessagesTable"), ddb).record(
        "ufficio@pec.azienda.test",
        {
            "sha256": "ef" * 32,
            "kind": "malformed",
            "received_key": "2026-03-02T10:00:00Z#2",
            "uid": 7,
            "received_at": "2026-03-02T10:00:00Z",
            "problems": ["ValueError: a parser bug"],
            "quarantined": {"stage": "record", "reason": "ValueError: a parser bug"},
            "quarantined_mailbox": "ufficio@pec.azienda.test",
        },
    )
    mailboxes.note_quarantine(
        "ufficio@pec.azienda.test", uid=7, sha256="ef" * 32, reason="record: ValueError: a parser bug"
    )
    code, out, _ = run(monkeypatch, capsys, ["mailbox", "list"])
    assert code == 0 and "1 quarantined (last: UID 7, record: ValueError: a parser bug" in out
    assert "--quarantined" in out, "says where to look"
    code, out, _ = run(monkeypatch, capsys, ["inbox", "list", "ufficio@pec.azienda.test", "--quarantined"])
    assert code == 0 and "[quarantined UID 7: ValueError: a parser bug]" in out and "1 message(s)" in out

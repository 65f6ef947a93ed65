"""DynamoDB and S3 adapters against moto, with the tables and bucket template.yaml defines."""

from __future__ import annotations

import base64
import hashlib
import threading
from datetime import UTC, datetime, timedelta

import pytest

from local.aws import item_size
from local.pecbuild import builder
from pecflow.adapters.archive import Archive, sha256_hex
from pecflow.adapters.dynamodb import Conflict, MailboxStore, MessageStore, OutgoingStore
from pecflow.domain.mailbox import Cursor, MailboxConfig
from pecflow.domain.reconcile import COUNTERS, State, reconcile_receipt
from pecflow.pec import kinds, message
from pecflow.pec.daticert import Destinatario

WHEN = datetime(2026, 3, 2, 10, tzinfo=UTC)


@pytest.fixture
def stores(aws):
    ddb = aws.resource("dynamodb")
    return (
        MailboxStore(aws.physical("MailboxesTable"), ddb),
        MessageStore(aws.physical("MessagesTable"), ddb),
        OutgoingStore(aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")),
    )


# --- mailboxes and cursors -----------------------------------------------------------------------------
def test_mailbox_registry(stores):
    mailboxes, _, _ = stores
    on = MailboxConfig("b@pec.test", "imap.pec.test")
    off = MailboxConfig("a@pec.test", "imap.pec.test", enabled=False)
    mailboxes.put(on)
    mailboxes.put(off)
    assert mailboxes.get("B@PEC.TEST") == on
    assert [c.address for c in mailboxes.list()] == ["a@pec.test", "b@pec.test"]
    assert [c.address for c in mailboxes.list(enabled_only=True)] == ["b@pec.test"]
    mailboxes.set_enabled("a@pec.test", True)
    assert mailboxes.get("a@pec.test").enabled
    with pytest.raises(KeyError):
        mailboxes.set_enabled("nobody@pec.test", True)


def test_poll_status_errors_then_recovery(stores):
    mailboxes, _, _ = stores
    mailboxes.put(MailboxConfig("b@pec.test", "imap.pec.test"))
    mailboxes.record_poll("b@pec.test", ok=False, error_kind="auth", error="login refused")
    mailboxes.record_poll("b@pec.test", ok=False, error_kind="auth", error="login refused")
    status = mailboxes.status("b@pec.test")
    assert (status["error_kind"], status["consecutive_failures"]) == ("auth", 2)
    mailboxes.record_poll("b@pec.test", ok=True, usage={"percent": 42.5}, fetched=3)
    status = mailboxes.status("b@pec.test")
    assert "last_error" not in status and status["consecutive_failures"] == 0
    assert status["usage"] == {"percent": 42.5} and status["last_fetched"] == 3


def test_cursor_only_moves_forward_within_a_uidvalidity(stores):
    mailboxes, _, _ = stores
    assert mailboxes.get_cursor("b@pec.test", "INBOX") == Cursor("INBOX")
    mailboxes.save_cursor("b@pec.test", Cursor("INBOX", 5, 10))
    mailboxes.save_cursor("b@pec.test", Cursor("INBOX", 5, 12, 13, 99))
    assert mailboxes.get_cursor("b@pec.test", "INBOX") == Cursor("INBOX", 5, 12, 13, 99)
    with pytest.raises(Conflict):
        mailboxes.save_cursor("b@pec.test", Cursor("INBOX", 5, 11))
    mailboxes.save_cursor("b@pec.test", Cursor("INBOX", 6, 0))  # UIDVALIDITY changed: back to the start
    assert mailboxes.get_cursor("b@pec.test", "INBOX").last_uid == 0


# --- message records --------------------------------------------------------------------------------
def test_the_uid_map_is_one_write_unit_per_batch_of_25_and_gone_once_empty(stores, aws):
    """Stored as the saturation guard's reads and the cost need: a batch's entries packed, 25 to
    an item under 1 KB, in the mailbox's "#uids" partition; an item whose UIDs all left, deleted."""
    _, messages, _ = stores
    client, box, folder = (
        aws.client("dynamodb"),
        "protocollo.generale@pec.comune-esempio.test",
        "Posta in arrivo",
    )
    shas = {uid: hashlib.sha256(str(uid).encode()).hexdigest() for uid in range(4_000_000_001, 4_000_000_051)}
    messages.map_uids(box, folder, 1795751933, shas)

    def items() -> dict[str, dict]:
        found = client.query(
            TableName=messages.table.name,
            KeyConditionExpression="mailbox = :m",
            ExpressionAttributeValues={":m": {"S": f"{box}#uids"}},
        )["Items"]
        return {i["message"]["S"]: i for i in found}

    stored = items()
    assert sorted(stored) == [f"{folder}#1795751933#4000000001", f"{folder}#1795751933#4000000026"]
    assert all(item_size(item) < 1024 for item in stored.values()), [item_size(i) for i in stored.values()]
    assert messages.count(box) == 0 and list(messages.every(box)) == []
    first = list(shas)[:25]
    messages.unmap_uids(box, folder, 1795751933, first[:-1])
    assert len(items()[f"{folder}#1795751933#4000000001"]["uids"]["B"]) == 36, "one entry left"
    messages.unmap_uids(box, folder, 1795751933, first[-1:])
    assert sorted(items()) == [f"{folder}#1795751933#4000000026"]
    assert sorted(messages.at_location(box, folder, 1795751933, list(shas))) == list(shas)[25:]


def test_a_message_is_recorded_once(stores):
    _, messages, _ = stores
    record = {
        "sha256": "ab" * 32,
        "uid": 3,
        "folder": "INBOX",
        "uidvalidity": 5,
        "received_key": "2026-03-02T10:00:00Z#x",
        "kind": "accettazione",
        "subject": "x",
        "to": [],
    }
    assert messages.record("b@pec.test", record) is True
    assert messages.record("b@pec.test", {**record, "uid": 9}) is False
    assert messages.get("b@pec.test", "ab" * 32).uid == 3
    messages.relocate("b@pec.test", "ab" * 32, folder="INBOX", uid=1, uidvalidity=6)
    assert (messages.get("b@pec.test", "ab" * 32).uid, messages.get("b@pec.test", "ab" * 32).uidvalidity) == (
        1,
        6,
    )
    messages.set_fields("b@pec.test", "ab" * 32, {"unmatched_mailbox": "b@pec.test"})
    assert [r.sha256 for r in messages.query("b@pec.test", index="Unmatched")] == ["ab" * 32]
    messages.set_fields("b@pec.test", "ab" * 32, {}, remove=["unmatched_mailbox"])
    assert messages.query("b@pec.test", index="Unmatched") == []
    assert messages.count("b@pec.test") == 1


def _leaving_unprocessed(client, monkeypatch, *, always=False) -> list[int]:
    """The client's BatchGetItem answers as DynamoDB may under load: each request's last third of
    keys left unprocessed (every time when `always`), the rest answered in reverse order. Returns
    the number of keys of each request."""
    real, sizes = client.batch_get_item, []

    def batch_get_item(RequestItems):  # noqa: N803 - boto3's name
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        sizes.append(len(keys))
        cut = len(keys) - max(1, len(keys) // 3) if always or len(keys) > 1 else len(keys)
        answered = real(RequestItems={table: {"Keys": keys[:cut]}})["Responses"][table] if cut else []
        unprocessed = {table: {"Keys": keys[cut:]}} if keys[cut:] else {}
        return {"Responses": {table: answered[::-1]}, "UnprocessedKeys": unprocessed}

    monkeypatch.setattr(client, "batch_get_item", batch_get_item)
    return sizes


FIVE_PAST = "2026-03-02T10:05"  # the fifth record's minute


def test_the_records_by_date_are_read_whole_in_received_order(aws, monkeypatch):
    """No index by date: the readers of a period read the mailbox's keys (its partition, records
    only), sort them by received_key and read the records by BatchGetItem, 100 keys a request,
    asking again for the keys left unprocessed, in that order."""
    from pecflow.adapters.dynamodb import _common
    from pecflow.adapters.dynamodb.conservation import PeriodMessages
    from pecflow.adapters.rules import RecordedMessages

    monkeypatch.setattr(_common, "CONFLICT_BACKOFF_SECONDS", 0.0)
    ddb, table = aws.resource("dynamodb"), aws.physical("MessagesTable")
    messages, box = MessageStore(table, ddb), "d@pec.test"
    shas = [f"{i:064x}" for i in range(130)]
    for i, sha in enumerate(shas):
        when = (WHEN + timedelta(minutes=i)).isoformat().replace("+00:00", "Z")
        record = {"sha256": sha, "received_key": f"{when}#{sha[:16]}", "received_at": when}
        messages.record(box, record | {"kind": "posta-certificata", "subject": f"Pratica {i}", "uid": i})
    MessageStore(table, ddb).record(box + ".altra", {"sha256": "ff" * 32, "received_key": "2026-03-02T10:30"})
    ddb.Table(table).put_item(Item={"mailbox": box, "message": "sha256:" + "ee" * 32})  # no received_key
    whole = [messages.get(box, sha) for sha in shas]
    sizes = _leaving_unprocessed(ddb.meta.client, monkeypatch)
    assert messages.query(box, limit=130) == whole[::-1]
    assert sizes[0] == 100 and sum(sizes) > 130, "100 keys a request, the unprocessed asked again"
    assert messages.query(box, newest_first=False, limit=3) == whole[:3]
    period = PeriodMessages(table, ddb).received_between(box, "2026-03-02T10:05", "2026-03-02T12:00")
    assert [r["subject"] for r in period] == [f"Pratica {i}" for i in range(5, 120)]
    periods = [("2026-03-02T10:05", "2026-03-02T12:00"), ("2026-03-02T12:00", "2027"), ("2025", FIVE_PAST)]
    assert PeriodMessages(table, ddb).counts_between(box, periods) == [115, 10, 5], "start in, end out"
    recorded = RecordedMessages(table, ddb)
    assert [r["uid"] for r in recorded.since(box, "2026-03-02T12:00")] == list(range(120, 130))
    assert recorded.reads == 131 + 10, "the mailbox's items and the period's records"
    _leaving_unprocessed(ddb.meta.client, monkeypatch, always=True)
    with pytest.raises(RuntimeError, match="unread"):
        messages.query(box, limit=1)


# --- outgoing messages and receipts ---------------------------------------------------------------------
def _sent(to=("cliente@pec.cliente.test",), cc=()):
    return builder.messaggio_originale(
        mittente="ufficio@pec.azienda.test",
        destinatari=list(to),
        cc=list(cc),
        oggetto="Contratto",
        testo="x",
        message_id="<c1@pec.azienda.test>",
        data=WHEN,
    )


def _receipt(kind, original, **kw):
    kw.setdefault("destinatari", [Destinatario("cliente@pec.cliente.test")])
    raw = builder.ricevuta(
        kind,
        original,
        gestore=builder.SIMULATO,
        identificativo="opec1.x.1@pec.simulato.test",
        data=WHEN + timedelta(seconds=kw.pop("after", 1)),
        **kw,
    )
    return message.parse(raw), sha256_hex(raw)


def test_receipts_in_any_order_end_in_the_right_state(stores):
    _, _, outgoing = stores
    original = _sent()
    outgoing.register(
        "<c1@pec.azienda.test>", mailbox="ufficio@pec.azienda.test", recipients=["cliente@pec.cliente.test"]
    )
    consegna = _receipt(kinds.AVVENUTA_CONSEGNA, original, consegna="cliente@pec.cliente.test", after=2)
    accettazione = _receipt(kinds.ACCETTAZIONE, original)
    first = reconcile_receipt(outgoing, *consegna)  # the consegna arrives first
    assert first.status == "matched" and first.moves == {"cliente@pec.cliente.test": ("sent", "delivered")}
    again = reconcile_receipt(outgoing, *accettazione)  # the late accettazione moves nothing back
    assert again.moves == {}
    reconcile_receipt(outgoing, *consegna)  # a duplicate changes nothing
    view = outgoing.view("<c1@pec.azienda.test>")
    job = view["jobs"][0]
    assert job["state"] == "delivered"
    assert sorted(r["kind"] for r in job["receipts"].values()) == ["accettazione", "avvenuta-consegna"]
    assert view["identificativo"] == "opec1.x.1@pec.simulato.test"
    assert outgoing.by_identificativo("opec1.x.1@pec.simulato.test") == "<c1@pec.azienda.test>"


def test_unknown_original_is_unmatched(stores):
    _, _, outgoing = stores
    outcome = reconcile_receipt(outgoing, *_receipt(kinds.ACCETTAZIONE, _sent()))
    assert outcome.status == "unmatched" and outcome.problems


def test_campaign_counters_move_with_the_jobs_exactly_once(stores, aws):
    _, _, outgoing = stores
    table = aws.resource("dynamodb").Table(aws.physical("CampaignsTable"))
    table.put_item(
        Item={
            "campaign_id": "camp-1",
            "counters": {name: 0 for name in COUNTERS}
            | {"total": 2, "sent": 2, "only_sent": 2, "waiting": 2},
        }
    )
    to = ["cliente@pec.cliente.test", "privato@posta.example"]
    original = _sent(to=to)
    outgoing.register(
        "<c1@pec.azienda.test>", mailbox="ufficio@pec.azienda.test", recipients=to, campaign_id="camp-1"
    )
    destinatari = [Destinatario(to[0]), Destinatario(to[1], "esterno")]
    accettazione = _receipt(kinds.ACCETTAZIONE, original, destinatari=destinatari)
    # the same receipt applied by many pollers at once moves each job once
    threads = [threading.Thread(target=reconcile_receipt, args=(outgoing, *accettazione)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reconcile_receipt(
        outgoing,
        *_receipt(kinds.AVVENUTA_CONSEGNA, original, destinatari=destinatari, consegna=to[0], after=3),
    )
    counters = {
        k: int(v) for k, v in table.get_item(Key={"campaign_id": "camp-1"})["Item"]["counters"].items()
    }
    assert counters["total"] == 2 and counters["sent"] == 2 and counters["only_sent"] == 0
    assert counters["accepted"] == 2 and counters["delivered"] == 1
    assert counters["waiting"] == 0, "an external recipient waits for no delivery receipt"
    states = {
        j["recipient"]: (j["state"], j["certified"]) for j in outgoing.view("<c1@pec.azienda.test>")["jobs"]
    }
    assert states == {to[0]: ("delivered", True), to[1]: ("accepted", False)}


def test_permanent_preavviso_fails_the_job(stores):
    _, _, outgoing = stores
    original = _sent()
    outgoing.register(
        "<c1@pec.azienda.test>",
        mailbox="ufficio@pec.azienda.test",
        recipients=["cliente@pec.cliente.test"],
        state=State.UNCERTAIN,
    )
    reconcile_receipt(
        outgoing,
        *_receipt(
            kinds.PREAVVISO_ERRORE_CONSEGNA,
            original,
            consegna="cliente@pec.cliente.test",
            errore_esteso="5.4.1 - non consegnato entro 24 ore",
        ),
    )
    assert outgoing.jobs("<c1@pec.azienda.test>")[0].state == State.DELIVERY_FAILED


# --- the archive ---------------------------------------------------------------------------------------
def test_archive_stores_once_and_verifies(aws):
    archive = Archive(aws.physical("ArchiveBucket"), aws.client("s3"))
    raw = b"From: a@b\r\n\r\noriginale"
    sha = sha256_hex(raw)
    first = archive.store(raw, sha)
    again = archive.store(raw, sha)
    assert first.created and not again.created and first.key == again.key
    assert archive.get(first.key) == raw
    assert archive.verify(first.key, sha).ok
    head = aws.client("s3").head_object(Bucket=archive.bucket, Key=first.key)
    assert head["ServerSideEncryption"] == "aws:kms" and head["ObjectLockMode"] == "GOVERNANCE"


def test_verification_refuses_missing_or_different_objects(aws):
    s3 = aws.client("s3")
    archive = Archive(aws.physical("ArchiveBucket"), s3)
    raw = b"From: a@b\r\n\r\noriginale"
    sha = sha256_hex(raw)
    missing = archive.verify(archive.key_for(sha), sha)
    assert not missing.ok and "missing" in missing.reason
    archive.store(raw, sha)
    other = hashlib.sha256(b"other").hexdigest()
    assert "checksum" in archive.verify(archive.key_for(sha), other).reason
    # silently corrupted: the stored checksum says one thing, the bytes another
    corrupt = hashlib.sha256(b"corrupt").hexdigest()
    s3.put_object(
        Bucket=archive.bucket,
        Key=archive.key_for(corrupt),
        Body=b"not what was archived",
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=base64.b64encode(bytes.fromhex(corrupt)).decode(),
    )
    assert archive.verify(archive.key_for(corrupt), corrupt, deep=False).ok
    deep = archive.verify(archive.key_for(corrupt), corrupt)
    assert not deep.ok and "does not match its stored checksum" in deep.reason

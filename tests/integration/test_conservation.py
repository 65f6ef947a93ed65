"""Conservation exports on moto's tables and buckets (template.yaml's): a message we sent, its two
receipts and a PEC received, recorded as the poller leaves them; the package of their period
written by the bootstrap's wiring (records from MessagesTable, originals streamed
from the archive bucket, the period recorded on MailboxesTable by a transaction), byte for byte
and validating; an overlapping period refused; two exports racing on the same head: one recorded;
the API's package uploaded to the downloads bucket and linked; the CLI's export, verify and list."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from local.pecbuild.builder import (
    ARUBA,
    Destinatario,
    Firma,
    busta_trasporto,
    messaggio_originale,
    nuovo_identificativo,
    ricevuta,
)
from pecflow import bootstrap, cli
from pecflow.adapters.archive import Archive, sha256_hex
from pecflow.adapters.dynamodb import MessageStore, OutgoingStore
from pecflow.adapters.dynamodb.conservation import ExportedPeriods
from pecflow.config import Config
from pecflow.domain import conservation as pdv
from pecflow.domain.access import Person, Role
from pecflow.pec import message as pec_message
from pecflow.pec.signature import TrustAnchors, check_message
from pecflow.services.conservation import ConservationError
from pecflow.services.receive import build_record

BOX = "ufficio@pec.alfa.test"
CLIENTE = "cliente@pec.beta.test"
OURS = "<diffida-9@pec.alfa.test>"
DAY = (datetime.now(UTC) - timedelta(days=20)).date()
T0 = datetime(DAY.year, DAY.month, DAY.day, 10, 0, tzinfo=UTC)  # midday in Italy, whatever the season
FIRST, LAST = (DAY - timedelta(days=3)).isoformat(), (DAY + timedelta(days=3)).isoformat()
PROVIDERS = TrustAnchors([Firma.per(ARUBA).autorita.certificato])


@pytest.fixture
def stack(aws):
    s3, ddb = aws.client("s3"), aws.resource("dynamodb")
    archive = Archive(aws.physical("ArchiveBucket"), s3)
    messages = MessageStore(aws.physical("MessagesTable"), ddb)
    outgoing = OutgoingStore(
        aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")
    )
    sent = messaggio_originale(
        mittente=BOX, destinatari=[CLIENTE], oggetto="Diffida", testo="Vi diffidiamo.\n", message_id=OURS, data=T0,
        allegati=[("perizia.pdf", "application/pdf", b"%PDF-1.4 perizia")],
    )  # fmt: skip
    ident = nuovo_identificativo(ARUBA, T0, 9)
    raws = [
        ricevuta("accettazione", sent, gestore=ARUBA, identificativo=ident, data=T0),
        ricevuta("avvenuta-consegna", sent, gestore=ARUBA, identificativo=ident, data=T0 + timedelta(minutes=1)),
        busta_trasporto(
            messaggio_originale(mittente=CLIENTE, destinatari=[BOX], oggetto="Risposta", testo="Ricevuta.\n", data=T0),
            gestore=ARUBA, identificativo=nuovo_identificativo(ARUBA, T0, 10), data=T0 + timedelta(hours=2),
            destinatari=[Destinatario(BOX, "certificato")],
        ),
    ]  # fmt: skip
    outgoing.register(OURS, mailbox=BOX, recipients=[CLIENTE], subject="Diffida")
    receipts = {}
    shas = []
    for uid, raw in enumerate(raws, start=1):
        sha = sha256_hex(raw)
        msg = pec_message.parse(raw)
        at = T0 + timedelta(minutes=uid)
        record = build_record(
            BOX, "INBOX", 1, uid, at, raw, sha, archive.store(raw).key, msg,
            signature=check_message(msg, PROVIDERS, received=at),
        )  # fmt: skip
        if uid < 3:
            record |= {"outgoing_message_id": OURS, "reconciled": "matched"}
            receipts[sha] = {"kind": msg.kind, "at": at.isoformat()}
        messages.record(BOX, record)
        shas.append(sha)
    outgoing.set_job_fields(OURS, CLIENTE, {"receipts": receipts, "sent_s3_key": archive.store(sent).key})
    config = Config(
        stack_name="pecflow", mailboxes_table=aws.physical("MailboxesTable"),
        messages_table=aws.physical("MessagesTable"), outgoing_table=aws.physical("OutgoingTable"),
        audit_table=aws.physical("AuditTable"), inbox_table=aws.physical("InboxTable"),
        archive_bucket=aws.physical("ArchiveBucket"), downloads_bucket=aws.physical("DownloadsBucket"),
    )  # fmt: skip
    return config, [sent, *raws], shas


def check(data: bytes, raws: list[bytes]) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        docs = [n for n in zf.namelist() if n.startswith(pdv.DOCUMENTS)]
        assert [zf.read(n) for n in docs] == raws  # byte for byte, the sent message with its first receipt
        index = zf.read(pdv.INDEX)
        assert pdv.schema_errors(index, pdv.INDEX_SCHEMA) == []
        for name in zf.namelist():
            if name != pdv.INDEX:
                digest = hashlib.sha256(zf.read(name)).hexdigest().encode()
                assert f"<sincro:Path>{name}</sincro:Path>".encode() + b"\n" in index and digest in index
            if name.startswith(pdv.METADATA):
                assert pdv.schema_errors(zf.read(name), pdv.METADATA_SCHEMA) == []


def test_the_package_of_a_period_is_written_and_the_period_recorded_once(aws, stack):
    config, raws, _ = stack
    exports = bootstrap.conservation_exports(config)
    out = io.BytesIO()
    built = exports.write(BOX, out, first=FIRST, last=LAST, actor="cli:test")
    check(out.getvalue(), raws)
    assert (built.documents, built.sent, built.receipts) == (4, 1, 2)
    [recorded] = exports.recorded(BOX)
    assert (recorded["first"], recorded["last"], recorded["package_sha256"]) == (FIRST, LAST, built.sha256)
    with pytest.raises(ConservationError, match=f"già esportato {FIRST} – {LAST}"):
        exports.write(BOX, io.BytesIO(), first=LAST, last=LAST, actor="cli:test")
    assert len(exports.recorded(BOX)) == 1
    [event] = [e for e in bootstrap.audit_log(config).store.events(BOX) if e.action == "conservation-export"]
    assert event.actor == "cli:test"


def test_two_exports_racing_on_the_same_head_record_one(aws, stack):
    config = stack[0]
    periods = ExportedPeriods(config.mailboxes_table, aws.resource("dynamodb"))
    seen, _ = periods.recorded(BOX)
    one = {"first": "2026-01-01", "last": "2026-01-31", "documents": 0}
    other = {"first": "2026-01-15", "last": "2026-02-15", "documents": 0}
    assert periods.record(BOX, one, seen=seen) is True
    assert periods.record(BOX, other, seen=seen) is False  # the head moved since it was read
    assert periods.record(BOX, one, seen=seen + 1) is False  # the same period twice
    count, done = periods.recorded(BOX)
    assert count == 1 and [(p["first"], p["last"]) for p in done] == [("2026-01-01", "2026-01-31")]
    assert bootstrap.mailbox_store(config).list() == []  # the mailbox listing does not see these items


def test_the_api_package_is_uploaded_and_linked_for_minutes(aws, stack):
    config, raws, _ = stack
    ada = Person("ada", "ada@alfa.test", roles={BOX: Role.ADMIN})
    answer = bootstrap.conservation_exports(config).link(ada, BOX, first=FIRST, last=LAST)
    assert parse_qs(urlparse(answer["url"]).query)["X-Amz-Expires"] == ["300"]
    [stored] = aws.client("s3").list_objects_v2(Bucket=config.downloads_bucket, Prefix="conservation/")[
        "Contents"
    ]
    assert stored["Key"].startswith(f"conservation/{BOX}/{FIRST}_{LAST}-")
    data = requests.get(answer["url"], timeout=30).content
    assert hashlib.sha256(data).hexdigest() == answer["sha256"]
    check(data, raws)


def test_the_cli_exports_continues_and_lists(aws, stack, tmp_path, monkeypatch, capsys):
    config, raws, _ = stack
    for name in ("mailboxes_table", "messages_table", "outgoing_table", "audit_table", "inbox_table",
                 "archive_bucket", "downloads_bucket"):  # fmt: skip
        monkeypatch.setenv(name.upper(), getattr(config, name))
    monkeypatch.setenv("STACK_NAME", "pecflow")
    out = tmp_path / "pdv.zip"
    assert cli.main(["conservazione", "export", BOX, "--from", FIRST, "--to", LAST, "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "4 documento/i (1 inviato/i, 2 ricevuta/e)" in said and "registrato come esportato" in said
    check(out.read_bytes(), raws)
    again = tmp_path / "again.zip"
    assert cli.main(["conservazione", "export", BOX, "--from", FIRST, "--to", LAST, "-o", str(again)]) == 1
    assert "già esportato" in capsys.readouterr().err and not again.exists()
    after = (DAY + timedelta(days=5)).isoformat()
    assert cli.main(["conservazione", "export", BOX, "--continue", "--to", after, "-o", str(again)]) == 0
    assert "0 documento/i" in capsys.readouterr().out
    assert cli.main(["conservazione", "verify", str(out)]) == 0
    assert "ESITO: il pacchetto è integro: 4 documento/i, 8 file" in capsys.readouterr().out
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, body.replace(b"Vi diffidiamo", b"Vi diffidiano"))
    assert cli.main(["conservazione", "verify", str(damaged)]) == 1
    said = capsys.readouterr().out
    assert "ALTERATO" in said and "NON supera la verifica" in said
    assert cli.main(["conservazione", "list", BOX]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith(f"{FIRST} – {LAST}") and listed[1].startswith(
        f"{(DAY + timedelta(days=4)).isoformat()} – {after}"
    )

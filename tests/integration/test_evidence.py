"""Evidence packs on moto's tables and buckets (template.yaml's) with the real local TSA
(`openssl ts -reply` over HTTP): a message we sent, its receipts recorded and reconciled, a
received receipt's pack built by the bootstrap's wiring into the downloads bucket by a
multipart upload (an 8 MB attachment, in the message, its consegna and what we sent: several parts), linked for five minutes, downloaded, and
checked offline; the CLI writes the same pack to a file and `pecflow evidence verify` passes it
(exit 0) and fails it once a byte is changed (exit 1), saying which file."""

from __future__ import annotations

import io
import random
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from local.pecbuild.builder import ARUBA, Firma, messaggio_originale, nuovo_identificativo, ricevuta
from local.tsa import LocalTsa
from pecflow import bootstrap, cli
from pecflow.adapters.archive import Archive, sha256_hex
from pecflow.adapters.dynamodb import MessageStore, OutgoingStore
from pecflow.adapters.dynamodb.inbox import InboxStore
from pecflow.config import Config
from pecflow.domain import evidence as pack
from pecflow.domain import evidence_verify
from pecflow.domain.access import Person, Role
from pecflow.pec import message as pec_message
from pecflow.pec.signature import TrustAnchors, check_message, read_certificates
from pecflow.services.receive import build_record

BOX = "ufficio@pec.alfa.test"
CLIENTE = "cliente@pec.beta.test"
OURS = "<diffida-7.20261120@pec.alfa.test>"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PROVIDERS = TrustAnchors([Firma.per(ARUBA).autorita.certificato])
BIG = random.Random(7).randbytes(8 * 1024 * 1024)  # does not compress: the pack is written in several parts


@pytest.fixture
def tsa(tmp_path):
    with LocalTsa(tmp_path / "tsa") as running:
        yield running


@pytest.fixture
def stack(aws, tsa, tmp_path):
    """Our message and its two receipts recorded on moto, as the poller leaves them."""
    s3, ddb = aws.client("s3"), aws.resource("dynamodb")
    archive = Archive(aws.physical("ArchiveBucket"), s3)
    messages = MessageStore(aws.physical("MessagesTable"), ddb)
    inbox = InboxStore(aws.physical("InboxTable"), ddb, audit_table=aws.physical("AuditTable"))
    outgoing = OutgoingStore(
        aws.physical("OutgoingTable"), ddb, campaigns_table=aws.physical("CampaignsTable")
    )
    sent = messaggio_originale(
        mittente=BOX, destinatari=[CLIENTE], oggetto="Diffida", testo="Vi diffidiamo.\n", message_id=OURS,
        data=T0, allegati=[("perizia.bin", "application/octet-stream", BIG)],
    )  # fmt: skip
    ident = nuovo_identificativo(ARUBA, T0, 7)
    raws = [
        ricevuta("accettazione", sent, gestore=ARUBA, identificativo=ident, data=T0),
        ricevuta(
            "avvenuta-consegna", sent, gestore=ARUBA, identificativo=ident, data=T0 + timedelta(minutes=1)
        ),
    ]  # a completa consegna: it carries the original
    outgoing.register(OURS, mailbox=BOX, recipients=[CLIENTE], subject="Diffida")
    receipts = {}
    for uid, raw in enumerate(raws, start=1):
        sha = sha256_hex(raw)
        msg = pec_message.parse(raw)
        record = build_record(
            BOX, "INBOX", 1, uid, T0, raw, sha, archive.store(raw).key, msg,
            signature=check_message(msg, PROVIDERS, received=T0),
        )  # fmt: skip
        record |= {"outgoing_message_id": OURS, "reconciled": "matched"}
        messages.record(BOX, record)
        inbox.add(BOX, record)
        receipts[sha] = {"kind": msg.kind, "at": (T0 + timedelta(minutes=uid)).isoformat()}
    outgoing.set_job_fields(OURS, CLIENTE, {"receipts": receipts, "sent_s3_key": archive.store(sent).key})
    anchors_file = tmp_path / "tsa-ca.pem"
    anchors_file.write_bytes(tsa.anchors_pem)
    s3.put_object(Bucket=aws.physical("ArchiveBucket"), Key="trust/anchors.pem", Body=PROVIDERS.pem())
    config = Config(
        stack_name="pecflow", mailboxes_table=aws.physical("MailboxesTable"),
        messages_table=aws.physical("MessagesTable"), outgoing_table=aws.physical("OutgoingTable"),
        audit_table=aws.physical("AuditTable"), inbox_table=aws.physical("InboxTable"),
        archive_bucket=aws.physical("ArchiveBucket"), downloads_bucket=aws.physical("DownloadsBucket"),
        tsa_url=tsa.url, tsa_anchors=str(anchors_file),
    )  # fmt: skip
    return config, list(receipts), anchors_file


def _check(data: bytes, tsa: LocalTsa) -> evidence_verify.Report:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return evidence_verify.verify(
            zf, provider_anchors=PROVIDERS, tsa_anchors=read_certificates(tsa.anchors_pem)
        )


def test_the_api_pack_is_uploaded_in_parts_linked_for_minutes_and_holds(aws, stack, tsa):
    config, (accettazione, consegna), _ = stack
    packs = bootstrap.evidence_packs(config)
    vera = Person("vera", "vera@alfa.test", roles={BOX: Role.VIEWER})
    answer = packs.link(vera, BOX, consegna)
    assert answer["timestamped"] and answer["filename"] == f"fascicolo-{consegna[:16]}.zip"
    query = parse_qs(urlparse(answer["url"]).query)
    assert query["X-Amz-Expires"] == ["300"]
    [stored] = aws.client("s3").list_objects_v2(Bucket=config.downloads_bucket, Prefix="evidence/")[
        "Contents"
    ]
    assert stored["Key"].startswith(f"evidence/{consegna}/") and stored["Key"] in answer["url"]
    head = aws.client("s3").head_object(Bucket=config.downloads_bucket, Key=stored["Key"], PartNumber=1)
    assert head["PartsCount"] >= 2  # streamed: more than one part
    data = requests.get(answer["url"], timeout=30).content
    report = _check(data, tsa)
    assert report.ok, report.failures()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert [n for n in names if n.startswith(pack.RECEIPTS)] == [
            pack.receipt_path(1, "accettazione", accettazione),
            pack.receipt_path(2, "avvenuta-consegna", consegna),
        ]
        assert (
            zf.read(pack.PROVIDER_ANCHORS) == PROVIDERS.pem() and zf.read(pack.TSA_ANCHORS) == tsa.anchors_pem
        )
    [event] = bootstrap.audit_log(config).trail(BOX, consegna)
    assert (event.action, event.actor) == ("evidence", "vera")


def test_openssl_alone_checks_the_stamp_as_the_readme_says(aws, stack, tsa, tmp_path):
    config, (accettazione, _), _ = stack
    out = tmp_path / "fascicolo.zip"
    with out.open("wb") as f:
        bootstrap.evidence_packs(config).write(BOX, accettazione, f, actor="cli:test")
    with zipfile.ZipFile(out) as zf:
        zf.extractall(tmp_path / "x")
    x = tmp_path / "x"
    command = [
        "openssl",
        "ts",
        "-verify",
        "-data",
        "manifest.json",
        "-in",
        "manifest.tsr",
        "-CAfile",
        pack.TSA_ANCHORS,
    ]
    run = subprocess.run(command, cwd=x, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and "Verification: OK" in run.stdout, run.stderr
    (x / "manifest.json").write_bytes((x / "manifest.json").read_bytes().replace(b"cli:test", b"cli:tesT"))
    run = subprocess.run(command, cwd=x, capture_output=True, text=True, timeout=30)
    assert run.returncode != 0 and "Verification: FAILED" in run.stdout


def test_a_tsa_that_is_down_gives_no_pack_and_says_so(aws, stack, tsa):
    config, (_, consegna), _ = stack
    tsa.refuse = True
    vera = Person("vera", "vera@alfa.test", roles={BOX: Role.VIEWER})
    with pytest.raises(
        ValueError, match="could not be time-stamped: the time-stamping authority .* did not answer"
    ):
        bootstrap.evidence_packs(config).link(vera, BOX, consegna)
    listed = aws.client("s3").list_multipart_uploads(Bucket=config.downloads_bucket)
    assert not listed.get("Uploads")  # the upload was aborted, nothing left half-written


def test_the_cli_writes_the_pack_and_verify_passes_it_then_fails_one_changed_byte(
    aws, stack, tsa, tmp_path, monkeypatch, capsys
):
    config, (accettazione, _), anchors_file = stack
    for name in ("mailboxes_table", "messages_table", "outgoing_table", "audit_table", "inbox_table",
                 "archive_bucket", "downloads_bucket", "tsa_url", "tsa_anchors"):  # fmt: skip
        monkeypatch.setenv(name.upper(), getattr(config, name))
    monkeypatch.setenv("STACK_NAME", "pecflow")
    out = tmp_path / "fascicolo.zip"
    assert cli.main(["evidence", BOX, accettazione, "-o", str(out)]) == 0
    assert "manifest time-stamped" in capsys.readouterr().out
    providers = tmp_path / "gestori.pem"
    providers.write_bytes(PROVIDERS.pem())
    argv = ["evidence", "verify", str(out), "--anchors", str(providers), "--tsa-anchors", str(anchors_file)]
    assert cli.main(argv) == 0
    said = capsys.readouterr().out
    assert "ESITO: il fascicolo è integro" in said and "Nota" not in said  # independent anchors given

    changed = tmp_path / "changed.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(changed, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == pack.TIMELINE:
                body = body.replace(b"ricevuta di accettazione", b"ricevuta di accettaziome")
            dst.writestr(info.filename, body)
    argv[2] = str(changed)
    assert cli.main(argv) == 1
    said = capsys.readouterr().out
    assert f"ERRORE  {pack.TIMELINE}: ALTERATO" in said and "NON supera la verifica" in said

    assert cli.main(["evidence", BOX, "0" * 64, "-o", str(tmp_path / "none.zip")]) == 1
    assert "not found" in capsys.readouterr().err and not (tmp_path / "none.zip").exists()

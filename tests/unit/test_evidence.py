"""The evidence pack of a message, on fakes with messages the PEC builder signs: what it holds
(the .eml byte for byte, every receipt, the daticert, timeline, audit trail, summary, manifest,
time-stamp), who may have it (as reading: no role, not found) and the audit event it leaves;
then `verify`: a pack as built holds, and one byte changed in any kind of file, a file removed
or added, two receipts swapped, another manifest or a bad time-stamp each fail with their own
words. The TSA is `openssl ts -reply` (local.tsa) called without a socket."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from local.pecbuild.builder import (
    ARUBA,
    Destinatario,
    Firma,
    busta_trasporto,
    messaggio_originale,
    nuovo_identificativo,
    ricevuta,
)
from local.tsa import LocalTsa
from pecflow.adapters.archive import sha256_hex
from pecflow.domain import evidence as pack
from pecflow.domain import evidence_verify
from pecflow.domain.access import NotVisible, Person, Role
from pecflow.domain.records import JobRecord
from pecflow.pec import evidence_timestamp as ts
from pecflow.pec import message as pec_message
from pecflow.pec.signature import TrustAnchors, check_message, read_certificates
from pecflow.services.audit import AuditLog
from pecflow.services.evidence import EvidenceError, EvidencePacks
from pecflow.services.receive import build_record
from tests import fakes

BOX = "ufficio@pec.alfa.test"
CLIENTE = "cliente@pec.beta.test"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
OURS = "<pratica-7.20261120@pec.alfa.test>"

vera = Person("vera", "vera@alfa.test", roles={BOX: Role.VIEWER})
estraneo = Person("ugo", "ugo@alfa.test", roles={"altro@pec.alfa.test": Role.ADMIN})
PROVIDERS = TrustAnchors([Firma.per(ARUBA).autorita.certificato])


class Records(dict):
    def get(self, mailbox, sha256):  # type: ignore[override]
        return super().get((mailbox, sha256))


class Chunks:
    """The archive read in small chunks, as the S3 adapter reads it."""

    def __init__(self, archive: fakes.FakeArchive, size: int = 4096):
        self.archive, self.size = archive, size

    def chunks(self, key):
        data = self.archive.get(key)
        for i in range(0, len(data), self.size):
            yield data[i : i + self.size]


class Jobs:
    def __init__(self):
        self.jobs: dict[str, JobRecord] = {}

    def job(self, message_id):
        return self.jobs.get(message_id)


class Packs:
    """The downloads bucket: packs by key, links to them."""

    def __init__(self):
        self.packs: dict[str, bytes] = {}

    @contextlib.contextmanager
    def writer(self, key):
        out = io.BytesIO()
        yield out
        self.packs[key] = out.getvalue()

    def link(self, key, filename):
        return f"https://downloads.test/{key}?as={filename}"


class OpensslStamper:
    """The local TSA's `openssl ts -reply`, asked directly (unit tests have no sockets)."""

    def __init__(self, tsa: LocalTsa):
        self.tsa, self.url = tsa, "http://tsa.test/tsa"
        self.anchors = read_certificates(tsa.anchors_pem)

    def stamp(self, digest):
        query, nonce = ts.request(digest)
        answer = self.tsa.reply(query)
        return answer, ts.check_response(answer, digest, self.anchors, nonce=nonce)


@pytest.fixture(scope="module")
def tsa(tmp_path_factory):
    return LocalTsa(tmp_path_factory.mktemp("tsa"))


@pytest.fixture
def world(tsa):
    archive, records, audit_store, jobs = fakes.FakeArchive(), Records(), fakes.FakeAuditStore(), Jobs()
    rows = fakes.FakeInboxStore(audit_store)

    def receive(n: int, raw: bytes, **extra) -> str:
        sha = sha256_hex(raw)
        key = archive.store(raw).key
        msg = pec_message.parse(raw)
        record = build_record(
            BOX, "INBOX", 1, n, T0 + timedelta(minutes=n), raw, sha, key, msg,
            signature=check_message(msg, PROVIDERS, received=T0),
        )  # fmt: skip
        record.update(extra)
        records[(BOX, sha)] = record
        rows.add(BOX, record)
        return sha

    sent = messaggio_originale(
        mittente=BOX, destinatari=[CLIENTE], oggetto="Diffida – pratica 7", testo="Vi diffidiamo.\n",
        message_id=OURS, data=T0, allegati=[("diffida.pdf", "application/pdf", b"%PDF-1.4 " * 400)],
    )  # fmt: skip
    ident = nuovo_identificativo(ARUBA, T0, 7)
    accettazione = ricevuta("accettazione", sent, gestore=ARUBA, identificativo=ident, data=T0)
    consegna = ricevuta(
        "avvenuta-consegna", sent, gestore=ARUBA, identificativo=ident, data=T0 + timedelta(minutes=2)
    )
    sha_acc = receive(1, accettazione, outgoing_message_id=OURS, reconciled="matched")
    sha_con = receive(2, consegna, outgoing_message_id=OURS, reconciled="matched")
    sent_key = archive.store(sent).key
    jobs.jobs[OURS] = JobRecord.from_item(
        {
            "message_id": OURS, "recipient": CLIENTE, "state": "delivered", "mailbox": BOX,
            "sent_s3_key": sent_key, "at_sent": T0.isoformat(), "at_delivered": (T0 + timedelta(minutes=2)).isoformat(),
            "receipts": {sha_acc: {"kind": "accettazione", "at": T0.isoformat()},
                         sha_con: {"kind": "avvenuta-consegna", "at": (T0 + timedelta(minutes=2)).isoformat()}},
            "head": {"subject": "Diffida – pratica 7", "recipient": "#message"},
        }
    )  # fmt: skip
    service = EvidencePacks(
        records, AuditLog(audit_store, now=fakes.Ticking()), Chunks(archive), rows=rows, outbox=jobs,
        timestamper=OpensslStamper(tsa), packs=Packs(), provider_anchors=PROVIDERS.pem, tsa_anchors=tsa.anchors_pem,
        now=lambda: T0 + timedelta(days=1),
    )  # fmt: skip
    return service, receive, archive, audit_store, {"acc": sha_acc, "con": sha_con, "sent": sent}


def build(service, sha) -> bytes:
    out = io.BytesIO()
    service.write(BOX, sha, out, actor="cli:test")
    return out.getvalue()


def verdict(data: bytes, tsa: LocalTsa | None = None, anchors=PROVIDERS):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return evidence_verify.verify(
            zf, provider_anchors=anchors, tsa_anchors=read_certificates(tsa.anchors_pem) if tsa else None
        )


def test_the_pack_of_a_delivery_receipt_holds_the_message_its_receipts_and_the_proofs(world, tsa):
    service, _, archive, audit, sha = world
    data = build(service, sha["con"])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert zf.read(pack.MESSAGE) == archive.get(archive.key_for(sha["con"]))  # byte for byte
        receipts = sorted(n for n in names if n.startswith(pack.RECEIPTS))
        assert [n.split("-", 1)[1] for n in receipts] == [
            f"accettazione-{sha['acc'][:16]}.eml", f"avvenuta-consegna-{sha['con'][:16]}.eml",
        ]  # fmt: skip
        assert zf.read(next(n for n in names if n.startswith(pack.SENT))) == sha["sent"]
        daticerts = [n for n in names if n.startswith(pack.XML)]
        assert len(daticerts) == 3 and all(b"<postacert" in zf.read(n) for n in daticerts)
        manifest = json.loads(zf.read(pack.MANIFEST))
        listed = {f["path"]: f for f in manifest["files"]}
        assert set(listed) == set(names) - {pack.MANIFEST, pack.TOKEN}
        for name, item in listed.items():
            assert hashlib.sha256(zf.read(name)).hexdigest() == item["sha256"]
        timeline = json.loads(zf.read(pack.TIMELINE))
        assert [e["event"] for e in timeline if "message_id" in e and "sha256" in e] == [
            "ricevuta di accettazione", "ricevuta di avvenuta consegna",
        ]  # fmt: skip
        assert all(e.get("signature") == "valid" for e in timeline if "sha256" in e)
        trail = json.loads(zf.read(pack.AUDIT))
        assert [e["action"] for e in trail] == ["evidence"]  # the pack's own making is in it
        summary = zf.read(pack.SUMMARY)
        assert summary.startswith(b"%PDF-1.4")
        stamp = ts.check_response(
            zf.read(pack.TOKEN), hashlib.sha256(zf.read(pack.MANIFEST)).digest(),
            read_certificates(tsa.anchors_pem),
        )  # fmt: skip
        assert stamp.chained
    assert [(e.action, e.actor) for e in audit.events(BOX)] == [("evidence", "cli:test")]

    report = verdict(data, tsa)
    assert report.ok, [v for v in report.verdicts if not v.ok]
    signed = [v for v in report.verdicts if v.path.endswith(".eml") and not v.path.startswith(pack.SENT)]
    assert len(signed) == 3 and all("firma del gestore valida" in v.words for v in signed)


def test_the_pack_of_a_received_certified_message_holds_it_and_its_daticert(world, tsa):
    service, receive, archive, _, _ = world
    sent = messaggio_originale(
        mittente=CLIENTE, destinatari=[BOX], oggetto="Ricorso", testo="In allegato.\n", data=T0
    )
    busta = busta_trasporto(
        sent, gestore=ARUBA, identificativo=nuovo_identificativo(ARUBA, T0, 9), data=T0,
        destinatari=[Destinatario(BOX, "certificato")],
    )  # fmt: skip
    sha = receive(9, busta)
    data = build(service, sha)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert zf.read(pack.MESSAGE) == busta
        assert not [n for n in names if n.startswith((pack.RECEIPTS, pack.SENT))]  # nothing sent: no receipts
        [xml] = [n for n in names if n.startswith(pack.XML)]
        assert b'tipo="posta-certificata"' in zf.read(xml)
        assert "Ricorso" in pack.summary_text(
            mailbox=BOX, fields=service.records.get(BOX, sha), sent=[], entries=[], created_at=T0,
            created_by="x", tsa_url=None,
        )  # fmt: skip
    assert verdict(data, tsa).ok


def test_the_summary_says_in_italian_who_sent_what_and_when_each_receipt_came():
    fields = {"kind": "avvenuta-consegna", "sender": BOX, "recipients": [{"address": CLIENTE, "type": "certificato"}],
              "original_subject": "Diffida", "timestamp": "2026-11-20T10:02:00+01:00", "sha256": "ab" * 32,
              "signature": "valid", "signer": {"subject": "CN=Aruba", "serial": "1f", "issuer": "CN=CA"}}  # fmt: skip
    receipt = pack.Receipt("cd" * 32, "accettazione", "2026-11-20T09:00:00+00:00", "ricevute/001-a.eml",
                           {"signature": "invalid", "signer": {"subject": "CN=Aruba"}})  # fmt: skip
    sent = [pack.Sent(OURS, "riguarda", "Diffida", CLIENTE, "delivered", None, {}, (receipt,))]
    text = pack.summary_text(
        mailbox=BOX, fields=fields, sent=sent, entries=[pack.Entry("messaggio.eml", "ab" * 32, 10, "messaggio")],
        created_at=T0, created_by="vera", tsa_url="https://tsa.example",
    )  # fmt: skip
    assert "Tipo: ricevuta di avvenuta consegna" in text
    assert f"Mittente: {BOX}" in text and f"Destinatari: {CLIENTE} (certificato)" in text
    assert "20/11/2026 10:00:00 (ora italiana): ricevuta di accettazione" in text
    assert "Firma del gestore: valida; firmato da CN=Aruba (certificato n. 1f, emesso da CN=CA)" in text
    assert "Firma del gestore: NON VALIDA" in text
    assert "ab" * 32 in text and "Stato: consegnato" in text
    assert pack.summary_pdf(text).startswith(b"%PDF-1.4")


def test_a_person_who_may_read_the_message_gets_a_link_to_its_pack(world, tsa):
    service, _, _, audit, sha = world
    answer = service.link(vera, BOX, sha["acc"])
    [(key, data)] = service.packs.packs.items()
    assert key.startswith(f"evidence/{sha['acc']}/") and key.endswith(".zip")
    assert answer == {"url": f"https://downloads.test/{key}?as=fascicolo-{sha['acc'][:16]}.zip",
                      "filename": f"fascicolo-{sha['acc'][:16]}.zip", "files": answer["files"], "timestamped": True}  # fmt: skip
    assert verdict(data, tsa).ok
    assert [(e.action, e.actor) for e in audit.events(BOX)] == [("evidence", "vera")]


def test_no_role_is_not_found_and_leaves_nothing(world):
    service, _, _, audit, sha = world
    with pytest.raises(NotVisible):
        service.link(estraneo, BOX, sha["con"])
    with pytest.raises(NotVisible):
        service.write(BOX, "0" * 64, io.BytesIO(), actor="cli:test")
    assert audit.events(BOX) == [] and service.packs.packs == {}


def test_a_damaged_archive_gives_no_pack(world):
    service, _, archive, _, sha = world
    archive.corrupt(archive.key_for(sha["acc"]), b"not the receipt")
    with pytest.raises(EvidenceError, match="does not match its hash"):
        build(service, sha["con"])


def test_a_tsa_that_refuses_gives_no_pack(world):
    service, _, _, _, sha = world

    class Refusing:
        url = "http://tsa.test"

        def stamp(self, digest):
            raise ts.TimestampError("the TSA refused the time-stamp (rejection: bad request)")

    service.timestamper = Refusing()
    with pytest.raises(EvidenceError, match="could not be time-stamped: the TSA refused"):
        build(service, sha["con"])


# --- verify: each kind of change caught, in its own words ---------------------------------------
def _rewrite(data: bytes, change) -> bytes:
    """The pack with `change(name, bytes) -> bytes | None` applied to each file (None: dropped)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = change(info.filename, src.read(info))
            if body is not None:
                dst.writestr(info.filename, body)
    return out.getvalue()


def _flip(body: bytes, at: int | None = None) -> bytes:
    at = len(body) // 2 if at is None else at
    return body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]


@pytest.fixture
def built(world):
    service, _, _, _, sha = world
    return build(service, sha["con"])


def _failed(report) -> dict[str, str]:
    return {v.path: v.words for v in report.failures()}


@pytest.mark.parametrize(
    "target",
    [pack.MESSAGE, pack.RECEIPTS, pack.SENT, pack.XML, pack.TIMELINE, pack.AUDIT, pack.SUMMARY,
     pack.PROVIDER_ANCHORS, pack.TSA_ANCHORS],
)  # fmt: skip
def test_one_byte_changed_in_any_file_is_caught_in_that_file(built, tsa, target):
    done = []

    def change(name, body):
        if name.startswith(target) and not done:
            done.append(name)
            return _flip(body)
        return body

    failed = _failed(verdict(_rewrite(built, change), tsa))
    assert failed[done[0]].startswith("ALTERATO")
    # nothing else fails, but the XML taken out of a changed .eml (no longer the one inside it)
    others = {n: w for n, w in failed.items() if n != done[0]}
    assert all(n.startswith(pack.XML) and "non è uguale" in w for n, w in others.items())


def test_a_changed_manifest_or_time_stamp_is_caught(built, tsa):
    def manifest_changed(name, body):
        if name == pack.MANIFEST:  # a file's hash "updated" to cover a change: the stamp no longer holds
            return body.replace(b'"size": ', b'"size":  ', 1)
        return body

    failed = _failed(verdict(_rewrite(built, manifest_changed), tsa))
    assert "its hash differs from the manifest's" in failed[pack.TOKEN]

    failed = _failed(
        verdict(_rewrite(built, lambda n, b: _flip(b, len(b) - 40) if n == pack.TOKEN else b), tsa)
    )
    assert list(failed) == [pack.TOKEN] and "NON VALIDA" in failed[pack.TOKEN]

    failed = _failed(verdict(_rewrite(built, lambda n, b: None if n == pack.TOKEN else b), tsa))
    assert failed == {pack.TOKEN: "manca la marca temporale del manifest"}


def test_a_stamp_from_a_tsa_nobody_trusts_is_caught(built, tmp_path):
    other = LocalTsa(tmp_path)  # another CA: the pack's TSA does not chain to it
    failed = _failed(verdict(built, other))
    assert "does not chain to the TSA anchors given" in failed[pack.TOKEN]


def test_a_removed_an_added_and_two_swapped_receipts_are_caught(built, tsa):
    with zipfile.ZipFile(io.BytesIO(built)) as zf:
        receipts = sorted(n for n in zf.namelist() if n.startswith(pack.RECEIPTS))
        bodies = {n: zf.read(n) for n in receipts}
    failed = _failed(verdict(_rewrite(built, lambda n, b: None if n == receipts[0] else b), tsa))
    assert failed.pop(receipts[0]) == "MANCANTE: il manifest lo elenca ma non è nel fascicolo"
    [(_, words)] = failed.items()  # and its daticert, which has nothing to be checked against
    assert words.endswith(f"non si trova il messaggio da cui è stato estratto ({receipts[0]})")

    grown = io.BytesIO(built)
    with zipfile.ZipFile(grown, "a") as zf:
        zf.writestr("ricevute/999-extra.eml", b"x")
    assert _failed(verdict(grown.getvalue(), tsa)) == {
        "ricevute/999-extra.eml": "file aggiunto: non è elencato nel manifest"
    }

    swapped = {receipts[0]: bodies[receipts[1]], receipts[1]: bodies[receipts[0]]}
    failed = _failed(verdict(_rewrite(built, lambda n, b: swapped.get(n, b)), tsa))
    assert all(failed[n].startswith("ALTERATO") for n in receipts)
    assert set(failed) - set(receipts) == {
        n for n in failed if n.startswith(pack.XML)
    }  # theirs no longer inside


def test_signatures_are_checked_against_the_anchors_given(built, tsa):
    nobody = TrustAnchors()  # anchors given but none of them the providers' CA
    failed = _failed(verdict(built, tsa, anchors=nobody))
    signed = [n for n in failed if n.endswith(".eml")]
    assert len(signed) == 3 and all("non è riconosciuto" in failed[n] for n in signed)
    report = verdict(built, tsa, anchors=None)  # the pack's own anchors, said in the notes
    assert report.ok and any("contenute nel fascicolo" in n for n in report.notes)


def test_a_receipt_forged_with_the_manifest_and_stamp_remade_is_caught_by_its_signature(world, tsa):
    """Whoever holds the TSA could remake manifest and stamp: the provider's signature still fails."""
    service, _, archive, _, sha = world
    key = archive.key_for(sha["acc"])
    original = archive.get(key)
    forged = _flip(original, original.find(b"daticert.xml") + 300)  # inside the signed part
    archive.overwrite(key, forged)
    built = io.BytesIO()
    sha_forged = sha256_hex(forged)
    # the record now names the forged bytes (as a pack rebuilt by a forger would)
    service.outbox.jobs[OURS].receipts[sha_forged] = service.outbox.jobs[OURS].receipts.pop(sha["acc"])  # type: ignore[attr-defined]
    service.records[(BOX, sha_forged)] = service.records[(BOX, sha["acc"])]
    service.write(BOX, sha["con"], built, actor="cli:test")
    failed = _failed(verdict(built.getvalue(), tsa))
    [name] = [n for n in failed if n.startswith(pack.RECEIPTS)]
    assert "NON VALIDA" in failed[name]


def test_verify_reads_nothing_but_the_zip(built, tsa, tmp_path):
    path = Path(tmp_path / "fascicolo.zip")
    path.write_bytes(built)
    with zipfile.ZipFile(path) as zf:
        assert evidence_verify.verify(
            zf, provider_anchors=PROVIDERS, tsa_anchors=read_certificates(tsa.anchors_pem)
        ).ok


@pytest.mark.parametrize("family", ["pec", "rem"])
def test_the_certified_xml_of_a_large_message_is_taken_from_its_head_and_tail(family):
    import random

    from local.pecbuild import rem_builder
    from pecflow.pec import mime, rem

    big = random.Random(3).randbytes(3 * pack.PARSE_BYTES)
    sent = messaggio_originale(mittente=CLIENTE, destinatari=[BOX], oggetto="Perizia", testo="Allegata.\n",
                               data=T0, allegati=[("perizia.bin", "application/octet-stream", big)])  # fmt: skip
    if family == "pec":
        raw = busta_trasporto(sent, gestore=ARUBA, identificativo=nuovo_identificativo(ARUBA, T0, 3), data=T0,
                              destinatari=[Destinatario(BOX, "certificato")])  # fmt: skip
        expected = next(p for p in mime.Part(raw).walk() if p.filename == "daticert.xml").decoded()
        role = pack.ROLE_DATICERT
    else:
        raw = rem_builder.rem_dispatch(sent, gestore=ARUBA, message_id="<rem-1@pec.aruba.it>", data=T0)
        evidence = rem.survey(mime.Part(raw)).evidence
        assert evidence is not None
        expected, role = evidence.decoded(), pack.ROLE_REM
    head, tail = raw[: pack.PARSE_BYTES], raw[-pack.PARSE_BYTES :]
    assert pack.certified_xml(head, tail, complete=False) == [(role, expected)]
    assert pack.certified_xml(raw, complete=True) == [(role, expected)]


def test_the_cli_packs_a_recorded_message_without_an_inbox_row_a_person_does_not(world, tsa):
    service, _, archive, _, _ = world
    raw = messaggio_originale(mittente=CLIENTE, destinatari=[BOX], oggetto="Vecchio", testo="x\n", data=T0)
    sha = sha256_hex(raw)
    service.records[(BOX, sha)] = {"sha256": sha, "kind": "posta-ordinaria", "s3_key": archive.store(raw).key}
    with pytest.raises(NotVisible):  # a person sees what the inbox shows
        service.link(vera, BOX, sha)
    data = build(service, sha)  # recorded before the inbox existed: the operator still packs it
    report = verdict(data, tsa)
    assert report.ok and "posta ordinaria" in next(v.words for v in report.verdicts if v.path == pack.MESSAGE)


def test_the_pack_of_a_rem_message_holds_its_evidence_xml_and_holds(world, tsa):
    from local.pecbuild import rem_builder

    service, receive, _, _, _ = world
    sent = messaggio_originale(
        mittente=CLIENTE, destinatari=[BOX], oggetto="REM", testo="Via REM.\n", data=T0
    )
    sha = receive(
        11, rem_builder.rem_dispatch(sent, gestore=ARUBA, message_id="<rem-11@pec.aruba.it>", data=T0)
    )
    data = build(service, sha)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest = json.loads(zf.read(pack.MANIFEST))
        [xml] = [f for f in manifest["files"] if f["role"] == pack.ROLE_REM]
        assert xml["of"] == pack.MESSAGE and b"19522" in zf.read(xml["path"])
    report = verdict(data, tsa)
    assert report.ok, report.failures()

"""The real PEC samples of ../shared/fixtures/pec (read, never copied; skipped without them) run
through both packs. Each one's evidence pack holds it byte for byte, with a manifest whose hashes
hold and a time-stamp that verifies; the providers' signatures are judged as at ingestion, with
AgID CA1 (taken from the samples' own signatures) as the anchor: the three real signatures valid,
the anonymised and edited samples invalid, the unsigned ones missing, and nothing crashes.
Together they make one conservation package whose index and metadata validate, whose every
document is the sample byte for byte under the hash the index gives, and whose metadata say
each seal's verdict."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.serialization import pkcs7

from pecflow.adapters.archive import sha256_hex
from pecflow.domain import conservation as pdv
from pecflow.domain import evidence as pack
from pecflow.domain import evidence_verify
from pecflow.pec import message as pec_message
from pecflow.pec import mime, safexml, signature
from pecflow.pec.signature import TrustAnchors, read_certificates
from pecflow.services.audit import AuditLog
from pecflow.services.conservation import ConservationExports
from pecflow.services.evidence import EvidencePacks
from pecflow.services.receive import build_record
from tests import fakes
from tests.conftest import real_fixtures
from tests.unit.test_conservation import Chunks, Periods, Records
from tests.unit.test_evidence import OpensslStamper, tsa  # noqa: F401 - the fixture

BOX = "conservazione@pec.alfa.test"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
EXPECTED = {  # tests/unit/test_signature.py says why each is what it is
    "biagioT__accettazione.eml": signature.MISSING,
    "biagioT__errore-consegna_no-dest.eml": signature.MISSING,
    "biagioT__non-pec_DSN_failure_negative-control.eml": signature.MISSING,
    "gopec__accettazione.eml": signature.INVALID,
    "gopec__avvenuta-consegna_email_2.eml": signature.INVALID,
    "gopec__busta-trasporto_email_3.eml": signature.INVALID,
    "gopec__errore-consegna.eml": signature.INVALID,
    "mlarchive__namirial_busta-trasporto_via-mailman.eml": signature.VALID,
    "oca__aruba_accettazione_IT03339130126_00009.eml": signature.VALID,
    "oca__aruba_avvenuta-consegna_IT03339130126_00009.eml": signature.VALID,
    "oca__sdi_busta_MC_mancata-consegna_no-daticert.eml": signature.INVALID,
    "oca__sdi_busta_MT_invio-file_7339338.eml": signature.INVALID,
    "oca__sdi_busta_MT_invio-file_7339338_base64-p7m.eml": signature.INVALID,
    "oca__sdi_busta_MT_invio-file_7339338_broken-xml.eml": signature.INVALID,
    "oca__sdi_busta_RC_ricevuta-consegna_6782414.eml": signature.INVALID,
}


@pytest.fixture(scope="module")
def samples():
    folder = real_fixtures("pec")
    found = {p.name: p.read_bytes() for p in sorted(folder.glob("*.eml"))}
    assert set(EXPECTED) <= set(found), set(EXPECTED) - set(found)
    return {name: found[name] for name in EXPECTED}


@pytest.fixture(scope="module")
def agid(samples):
    """AgID CA1, from the p7s of a real signature (as an installation imports AgID's list)."""
    msg = pec_message.parse(samples["oca__aruba_accettazione_IT03339130126_00009.eml"])
    certificates = pkcs7.load_der_pkcs7_certificates(mime.SignedLayout(msg.root).signature.decoded())
    return TrustAnchors([c for c in certificates if c.subject.rfc4514_string().startswith("CN=AgID CA1")])


@pytest.fixture(scope="module")
def recorded(samples, agid):
    archive, records = fakes.FakeArchive(), {}
    for n, (name, raw) in enumerate(samples.items()):
        sha, msg = sha256_hex(raw), pec_message.parse(raw)
        at = T0 + timedelta(minutes=n)
        records[name] = build_record(
            BOX, "INBOX", 1, n + 1, at, raw, sha, archive.store(raw).key, msg,
            signature=signature.check_message(msg, agid, received=at),
        ) | {"mailbox": BOX}  # fmt: skip
    return archive, records


def test_the_samples_are_judged_at_ingestion_as_their_signatures_are(recorded):
    _, records = recorded
    assert {name: r.get("signature") for name, r in records.items()} == EXPECTED


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_sample_makes_an_evidence_pack_that_holds(name, samples, agid, recorded, tsa):  # noqa: F811
    archive, records = recorded
    by_sha = {(BOX, r["sha256"]): r for r in records.values()}

    class Store:
        def get(self, mailbox, sha256):
            return by_sha.get((mailbox, sha256))

    packs = EvidencePacks(
        Store(), AuditLog(fakes.FakeAuditStore(), now=fakes.Ticking()), Chunks(archive, 4096),
        timestamper=OpensslStamper(tsa), provider_anchors=agid.pem, tsa_anchors=tsa.anchors_pem,
        now=lambda: T0 + timedelta(days=30),
    )  # fmt: skip
    out = io.BytesIO()
    packs.write(BOX, records[name]["sha256"], out, actor="cli:test")
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as zf:
        assert zf.read(pack.MESSAGE) == samples[name]  # byte for byte
        manifest = json.loads(zf.read(pack.MANIFEST))
        for item in manifest["files"]:
            assert hashlib.sha256(zf.read(item["path"])).hexdigest() == item["sha256"]
        report = evidence_verify.verify(
            zf, provider_anchors=agid, tsa_anchors=read_certificates(tsa.anchors_pem)
        )
    verdicts = {v.path: v for v in report.verdicts}
    message = verdicts[pack.MESSAGE]
    assert report.stamp is not None  # the time-stamp over the manifest verifies
    others = [v for v in report.verdicts if v.path != pack.MESSAGE]
    assert all(v.ok for v in others), [v for v in others if not v.ok]
    outcome = EXPECTED[name]
    ordinary = records[name]["kind"] == "posta-ordinaria"
    assert message.ok == (outcome == signature.VALID or ordinary), message.words
    if outcome == signature.VALID:
        assert "firma del gestore valida (firmatario CN=" in message.words
    elif outcome == signature.INVALID:
        assert "NON VALIDA" in message.words
    elif not ordinary:
        assert "assente" in message.words


def test_the_samples_make_one_conservation_package_that_validates(samples, recorded):
    archive, records = recorded
    source = Records()
    source.items = list(records.values())
    periods = Periods()
    exports = ConservationExports(
        source, periods, Chunks(archive, 4096), AuditLog(fakes.FakeAuditStore(), now=fakes.Ticking()),
        now=lambda: T0 + timedelta(days=30),
    )  # fmt: skip
    out = io.BytesIO()
    built = exports.write(BOX, out, first="2026-11-01", last="2026-11-03", actor="cli:test")
    assert built.documents == len(samples) and built.receipts == sum(
        1 for r in records.values() if pdv.category_of(r["kind"]) == pdv.RECEIPT
    )
    by_sha = {r["sha256"]: name for name, r in records.items()}
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as zf:
        index = zf.read(pdv.INDEX)
        assert pdv.schema_errors(index, pdv.INDEX_SCHEMA) == []
        root = safexml.parse(index)
        files = [f for g in root.children if g.tag == "FileGroup" for f in g.children if f.tag == "File"]
        assert len(files) == len(samples)
        for file in files:
            path, digest = file.find("Path").text, file.find("Hash").text
            name = by_sha[digest]
            assert zf.read(path) == samples[name] and hashlib.sha256(samples[name]).hexdigest() == digest
            meta_path = file.find("MoreInfo/ExternalMetadata/Path").text
            meta = zf.read(meta_path)
            assert hashlib.sha256(meta).hexdigest() == file.find("MoreInfo/ExternalMetadata/Hash").text
            assert pdv.schema_errors(meta, pdv.METADATA_SCHEMA) == [], name
            fields = safexml.parse(meta)
            sealed = fields.find("Verifica/SigillatoElettronicamente").text
            note = fields.find("Note").text
            outcome = EXPECTED[name]
            assert sealed == ("false" if outcome == signature.MISSING else "true"), name
            assert pdv.SEAL_WORDS[outcome] in note, (name, note)
            assert fields.find("IdDoc/ImprontaCrittograficaDelDocumento/Impronta").text == digest
        check = pdv.verify_package(zf)
        assert check.ok and check.documents == len(samples), check.problems
    assert periods.items[BOX][0]["package_sha256"] == built.sha256

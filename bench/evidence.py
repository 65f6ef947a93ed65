"""Evidence packs: peak memory of a pack of a large message against a small one (the pack is
streamed, so memory must not grow with its size), and the time to build each.

Small: a message of 20 KB with one receipt. Large: a 500-recipient message (500 receipts: the
accettazione, one completa consegna carrying the original with its attachment, 498 sintetica)
whose attachment is 48 MB (`--quick`: 8 MB, and each receipt's daticert lists only its own
recipient: making 500 receipts that list 500 recipients takes a minute); the pack is made for the completa consegna, so the
large files (the consegna, as the pack's message and as a receipt, and what we sent) are each
streamed in. Each pack is built in its own process (peak RSS, `ru_maxrss`, of that process) by
the real service and the real S3 multipart writer, from the originals on disk read in 256 KB
chunks as from S3, into an S3 client that hashes each part and drops it, time-stamped by
`openssl ts -reply` (local.tsa, without HTTP). The messages are made beforehand in the parent
process. Also: the providers' signature check per message as a ratio of the classify time, for
PEC receipts and for REM receipts (S/MIME, and the evidence's XAdES signature); and the
conservation export (pacchetto di versamento) of the large case's period: every receipt and the
sent message, each with its metadata, the index, both validated; its time and peak RSS.
Target: the large pack's peak at most 1.2 x the small pack's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _env import REPO  # first: the paths and fake AWS credentials

TARGET = 1.2
BOX = "ufficio@pec.alfa.test"
OURS = "<bench-evidence@pec.alfa.test>"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def make_case(directory: Path, *, attachment: int, recipients: int, listed: bool = True) -> dict:
    """The sent message and its receipts as files, with the records the service reads."""
    import random

    from local.pecbuild.builder import ARUBA, Firma, messaggio_originale, nuovo_identificativo, ricevuta
    from pecflow.pec import message as pec_message
    from pecflow.pec.signature import TrustAnchors, check_message
    from pecflow.services.receive import build_record

    directory.mkdir(parents=True, exist_ok=True)
    anchors = TrustAnchors([Firma.per(ARUBA).autorita.certificato])
    to = [f"destinatario{i:03d}@pec.beta.test" for i in range(recipients)]

    def submitted(allegati, to=to):
        return messaggio_originale(
            mittente=BOX, destinatari=to, oggetto="Comunicazione", testo="In allegato.\n", message_id=OURS,
            data=T0, tipo_ricevuta="sintetica", allegati=allegati,
        )  # fmt: skip

    sent = submitted([("allegato.bin", "application/octet-stream", random.Random(1).randbytes(attachment))])
    light = submitted([])  # the same headers: what a sintetica receipt is made from
    one = {a: submitted([], [a]) for a in to} if not listed else {}  # --quick: each receipt lists its own
    ident = nuovo_identificativo(ARUBA, T0, 1)
    raws = [ricevuta("accettazione", sent, gestore=ARUBA, identificativo=ident, data=T0)]
    completa = sent.replace(b"X-TipoRicevuta: sintetica", b"X-TipoRicevuta: completa", 1)
    for i, address in enumerate(to):
        raws.append(
            ricevuta("avvenuta-consegna", completa if i == 0 else one.get(address, light), gestore=ARUBA, identificativo=ident,
                     data=T0 + timedelta(seconds=i + 1), consegna=address)
        )  # fmt: skip
    del completa
    receipts = {}
    for uid, raw in enumerate(raws, start=1):
        sha = hashlib.sha256(raw).hexdigest()
        (directory / sha).write_bytes(raw)
        msg = pec_message.parse(raw)
        record = build_record(
            BOX, "INBOX", 1, uid, T0, raw, sha, sha, msg, signature=check_message(msg, anchors, received=T0)
        )
        (directory / f"{sha}.json").write_text(json.dumps({**record, "outgoing_message_id": OURS}))
        receipts[sha] = {"kind": msg.kind, "at": (T0 + timedelta(seconds=uid)).isoformat()}
    sent_sha = hashlib.sha256(sent).hexdigest()
    (directory / sent_sha).write_bytes(sent)
    job = {
        "message_id": OURS, "recipient": to[0], "state": "delivered", "mailbox": BOX, "sent_s3_key": sent_sha,
        "receipts": receipts, "head": {"subject": "Comunicazione", "recipient": "#message"},
    }  # fmt: skip
    target = hashlib.sha256(raws[1]).hexdigest()  # the first consegna (the completa one)
    case = {"job": job, "target": target, "anchors": anchors.pem().decode()}
    (directory / "case.pickle").write_bytes(pickle.dumps(case))
    return {"files": len(raws) + 1, "bytes": sum(len(r) for r in raws) + len(sent)}


def measure(directory: Path) -> None:
    """In a process of its own: build the pack of the case in `directory`; print its figures."""
    from local.tsa import LocalTsa
    from pecflow.adapters.evidence_packs import MultipartWriter
    from pecflow.domain.records import JobRecord
    from pecflow.pec import evidence_timestamp as ts
    from pecflow.services.audit import AuditLog
    from pecflow.services.evidence import EvidencePacks
    from tests import fakes

    case = pickle.loads((directory / "case.pickle").read_bytes())

    class Originals:
        def chunks(self, key):
            with open(directory / key, "rb") as f:
                while chunk := f.read(256 * 1024):
                    yield chunk

    class Records:
        def get(self, mailbox, sha):  # one at a time, as from DynamoDB
            path = directory / f"{sha}.json"
            return json.loads(path.read_text()) if path.exists() else None

    class Jobs:
        def job(self, message_id):
            return JobRecord.from_item(case["job"])

    class DroppingS3:
        """Each part hashed and dropped (what S3 keeps is not this process's memory)."""

        def __init__(self):
            self.size, self.parts = 0, 0

        def create_multipart_upload(self, **kw):
            return {"UploadId": "u"}

        def upload_part(self, Body, **kw):  # noqa: N803 - boto3's names
            self.size += len(Body)
            self.parts += 1
            return {"ETag": hashlib.md5(Body).hexdigest()}  # noqa: S324 - S3's ETag

        def complete_multipart_upload(self, **kw):
            pass

        def abort_multipart_upload(self, **kw):
            pass

    s3 = DroppingS3()

    class Packs:
        from contextlib import contextmanager

        @contextmanager
        def writer(self, key):
            out = MultipartWriter(s3, "downloads", key)
            yield out
            out.complete()

        def link(self, key, filename):
            return key

    tsa = LocalTsa(directory / "tsa")

    class Stamper:
        url = "local openssl ts"

        def stamp(self, digest):
            query, nonce = ts.request(digest)
            answer = tsa.reply(query)
            return answer, ts.check_response(answer, digest, (), nonce=nonce, require_anchor=False)

    audit = fakes.FakeAuditStore()
    packs = EvidencePacks(
        Records(), AuditLog(audit), Originals(), outbox=Jobs(), timestamper=Stamper(), packs=Packs(),
        provider_anchors=lambda: case["anchors"].encode(), tsa_anchors=tsa.anchors_pem,
    )  # fmt: skip
    from pecflow.domain.access import Person, Role

    person = Person("bench", "bench@alfa.test", roles={BOX: Role.VIEWER})
    started = time.perf_counter()
    answer = packs.link(person, BOX, case["target"])
    elapsed = time.perf_counter() - started
    peak = _peak_rss_mb()
    print(json.dumps({"peak_mb": peak, "seconds": elapsed, "pack_mb": s3.size / 1e6, "parts": s3.parts,
                      "files": answer["files"]}))  # fmt: skip


def measure_conservation(directory: Path) -> None:
    """In a process of its own: the conservation package of the case's period, streamed into the
    same dropping S3 writer as a pack; print its figures."""
    from contextlib import contextmanager

    from pecflow.adapters.evidence_packs import MultipartWriter
    from pecflow.domain.access import Person, Role
    from pecflow.domain.records import JobRecord
    from pecflow.services.audit import AuditLog
    from pecflow.services.conservation import ConservationExports
    from tests import fakes

    case = pickle.loads((directory / "case.pickle").read_bytes())
    names = sorted(p.name for p in directory.glob("*.json"))

    class Records:  # one at a time, as PeriodMessages streams them (the period's keys, read whole)
        def received_between(self, mailbox, start, end):
            for name in names:
                yield json.loads((directory / name).read_text()) | {"mailbox": BOX}

        def counts_between(self, mailbox, periods):
            return [len(names) for _ in periods]

    class Periods:
        def recorded(self, mailbox):
            return 0, []

        def record(self, mailbox, period, *, seen):
            return True

    class Originals:
        def chunks(self, key):
            with open(directory / key, "rb") as f:
                while chunk := f.read(256 * 1024):
                    yield chunk

    class Jobs:
        def job(self, message_id):
            return JobRecord.from_item(case["job"])

    class Parts:
        size = parts = 0

        def create_multipart_upload(self, **kw):
            return {"UploadId": "u"}

        def upload_part(self, Body, **kw):  # noqa: N803 - boto3's names
            self.size += len(Body)
            self.parts += 1
            return {"ETag": "e"}

        def complete_multipart_upload(self, **kw):
            pass

        def abort_multipart_upload(self, **kw):
            pass

    s3 = Parts()

    class Packages:
        @contextmanager
        def writer(self, key):
            out = MultipartWriter(s3, "downloads", key)
            yield out
            out.complete()

        def link(self, key, filename):
            return key

    exports = ConservationExports(
        Records(), Periods(), Originals(), AuditLog(fakes.FakeAuditStore()), outbox=Jobs(), packages=Packages(),
        now=lambda: T0 + timedelta(days=30), api_documents=10_000,
    )  # fmt: skip
    person = Person("bench", "bench@alfa.test", roles={BOX: Role.ADMIN})
    day = (T0 - timedelta(days=1)).date().isoformat(), (T0 + timedelta(days=1)).date().isoformat()
    started = time.perf_counter()
    answer = exports.link(person, BOX, first=day[0], last=day[1])
    elapsed = time.perf_counter() - started
    print(json.dumps({"peak_mb": _peak_rss_mb(), "seconds": elapsed, "pack_mb": s3.size / 1e6,
                      "documents": answer["documents"]}))  # fmt: skip


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: ru_maxrss would carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(directory: Path, mode: str = "--measure") -> dict:
    out = subprocess.run(
        [sys.executable, __file__, mode, str(directory)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def signature_cost(directory: Path, n: int = 200) -> float:
    """The providers' signature check of a receipt, as a ratio of classifying it."""
    from local.pecbuild.builder import ARUBA, Firma
    from pecflow.pec import message as pec_message
    from pecflow.pec.signature import TrustAnchors, check_message

    anchors = TrustAnchors([Firma.per(ARUBA).autorita.certificato])
    files = [p for p in sorted(directory.iterdir()) if p.is_file() and not p.suffix]
    raws = [p.read_bytes() for p in files if p.stat().st_size < 200_000][:n]
    t0 = time.perf_counter()
    parsed = [pec_message.parse(raw) for raw in raws]
    classify = time.perf_counter() - t0
    t0 = time.perf_counter()
    for msg in parsed:
        check_message(msg, anchors, received=T0)
    return (time.perf_counter() - t0) / classify


def rem_signature_cost(n: int = 20) -> tuple[float, float]:
    """A REM receipt's check (the S/MIME signature and its evidence's XAdES one): as a ratio of
    classifying it, and in milliseconds."""
    from local.pecbuild.builder import ARUBA, Firma, messaggio_originale
    from local.pecbuild.rem_builder import rem_receipt
    from pecflow.pec import message as pec_message
    from pecflow.pec.signature import VALID, TrustAnchors, check_message

    anchors = TrustAnchors([Firma.per(ARUBA).autorita.certificato])
    sent = messaggio_originale(
        mittente=BOX, destinatari=["destinatario@rem.beta.test"], oggetto="Comunicazione", testo="Testo.\n",
        message_id=OURS, data=T0,
    )  # fmt: skip
    raws = [
        rem_receipt("ContentConsignment", sent, gestore=ARUBA, message_id=f"REM-{i}@pec.aruba.it",
                    data=T0 + timedelta(seconds=i), evidence_id=f"EV-{i}")
        for i in range(n)
    ]  # fmt: skip
    t0 = time.perf_counter()
    parsed = [pec_message.parse(raw) for raw in raws]
    classify = time.perf_counter() - t0
    t0 = time.perf_counter()
    checks = [check_message(msg, anchors, received=T0) for msg in parsed]
    elapsed = time.perf_counter() - t0
    assert all(c.outcome == VALID and c.evidence and c.evidence.outcome == VALID for c in checks), checks[0]
    return elapsed / classify, elapsed / n * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true",
        help="an 8 MB attachment instead of 48 MB, each receipt listing its own recipient only (< 30 s)",
    )  # fmt: skip
    parser.add_argument("--measure", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--measure-conservation", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(Path(args.measure))
        return 0
    if args.measure_conservation:
        measure_conservation(Path(args.measure_conservation))
        return 0
    attachment = (8 if args.quick else 48) * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bench-evidence-") as work:
        small_dir, large_dir = Path(work) / "small", Path(work) / "large"
        made_small = make_case(small_dir, attachment=20 * 1024, recipients=1)
        made_large = make_case(large_dir, attachment=attachment, recipients=500, listed=not args.quick)
        small, large = run_case(small_dir), run_case(large_dir)
        for name, made, got in (("small", made_small, small), ("large", made_large, large)):
            print(
                f"{name}: {made['files']} messages ({made['bytes'] / 1e6:.1f} MB) -> pack of {got['files']} files, "
                f"{got['pack_mb']:.1f} MB in {got['parts']} part(s), built in {got['seconds']:.2f} s, "
                f"peak RSS {got['peak_mb']:.1f} MB"
            )
        print(f"signature check per message: {signature_cost(large_dir):.2f} x the classify time")
        rem_ratio, rem_ms = rem_signature_cost()
        print(
            f"REM signature check per message (S/MIME + evidence XAdES): {rem_ratio:.2f} x the classify time "
            f"({rem_ms:.1f} ms)"
        )
        kept = run_case(large_dir, "--measure-conservation")
        print(
            f"conservation export: {kept['documents']} documents ({made_large['bytes'] / 1e6:.1f} MB) -> package of "
            f"{kept['pack_mb']:.1f} MB (index and metadata validated) in {kept['seconds']:.2f} s, "
            f"peak RSS {kept['peak_mb']:.1f} MB ({kept['peak_mb'] / small['peak_mb']:.2f} x the small pack's)"
        )
    ratio = large["peak_mb"] / small["peak_mb"]
    print(f"evidence_memory: {ratio:.2f} x (target <= {TARGET})")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
